//! The HTTP layer: authentication, RBAC-like denial, faults, the request log, then the API.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::api::{self, Request, Response, Store};
use crate::faults::{Fault, FaultAction, LogEntry, Rng};
use crate::status::ApiError;

/// Who may do what, when the server is started with a policy. Requests that no rule allows
/// are denied with 403.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub verbs: Vec<String>,
    /// Resource plurals (`secrets`); `*` is not accepted here on purpose.
    pub resources: Vec<String>,
}

impl Rule {
    pub fn new(verbs: &[&str], resources: &[&str]) -> Self {
        Rule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) faults: Vec<Fault>,
    /// Faults cleared before they ever fired (a test whose fault was never met tests nothing).
    pub(crate) unfired: Vec<Fault>,
    pub(crate) rng: Rng,
    pub(crate) log: Vec<LogEntry>,
    pub(crate) policy: Option<Policy>,
}

pub(crate) struct Shared {
    pub(crate) inner: Mutex<Inner>,
    pub(crate) token: Option<String>,
    /// Woken after every request that reached the store, for watches.
    pub(crate) changed: tokio::sync::Notify,
    /// How often a quiet watch that allows bookmarks gets one, in milliseconds.
    pub(crate) bookmark_ms: std::sync::atomic::AtomicU64,
    /// Raised to end every open watch (as an API server restart or a proxy's idle timeout
    /// does); a watch ends when it finds the epoch it started in has passed.
    pub(crate) watch_epoch: std::sync::atomic::AtomicU64,
    /// Served under this path, as behind Rancher's cluster proxy (`/k8s/clusters/<id>`);
    /// other paths are 404.
    pub(crate) path_prefix: Option<String>,
    /// Keep the bodies of writes in the log ([`crate::TestServer::record_bodies`]).
    pub(crate) record_bodies: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub(crate) fn bookmark_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.bookmark_ms
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(1),
        )
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock (a bug in a test) must not hide every later request.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes an `application/x-www-form-urlencoded` query (`+` is a space).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode_component(k), decode_component(v)),
            None => (decode_component(p), String::new()),
        })
        .collect()
}

/// A response body: whole, or streamed (a watch).
pub(crate) type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

fn http_response(r: Response) -> hyper::Response<Body> {
    let mut b = hyper::Response::builder()
        .status(r.status)
        .header("content-type", "application/json");
    if let Some(secs) = r.retry_after {
        b = b.header("retry-after", secs.to_string());
    }
    // `Warning: 299 - "text"`, the text quoted with `"` and `\` escaped, as kube-apiserver
    // writes them (the recorder of staging/src/k8s.io/apiserver/pkg/endpoints/filters/
    // warning.go, through `NewWarningHeader` in k8s.io/apimachinery/pkg/util/net/http.go); a
    // text with control characters is refused there, and not sent here.
    for w in r
        .warnings
        .iter()
        .filter(|w| !w.chars().any(char::is_control))
    {
        let quoted = w.replace('\\', "\\\\").replace('"', "\\\"");
        b = b.header("warning", format!("299 - \"{quoted}\""));
    }
    let body = match r.raw {
        Some(raw) => raw,
        None => serde_json::to_vec(&r.body).unwrap_or_default(),
    };
    b.body(Full::new(Bytes::from(body)).boxed())
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new()).boxed()))
}

/// A watch's answer: 200, and the events its channel gives, as they come.
fn stream_response(rx: tokio::sync::mpsc::Receiver<Bytes>) -> hyper::Response<Body> {
    hyper::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(crate::watch::Channel::new(rx).boxed())
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new()).boxed()))
}

/// The error a service returns to make hyper drop the connection.
#[derive(Debug, thiserror::Error)]
#[error("connection closed by fault injection")]
pub struct Dropped;

// Kept whole (over 80 lines): the route table: one arm per path and verb, read top to bottom
// like the API's own list.
async fn serve(
    req: hyper::Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<hyper::Response<Body>, Dropped> {
    // Injected latency counts from here: a server "answering in 10 ms" answers 10 ms after the
    // request arrived, however long the request waited for the store.
    let arrived = tokio::time::Instant::now();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let path = match &shared.path_prefix {
        None => parts.uri.path().to_string(),
        Some(prefix) => match parts.uri.path().strip_prefix(prefix.as_str()) {
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            _ => {
                let e = ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                );
                return Ok(http_response(e.into()));
            }
        },
    };
    let request = Request {
        method: parts.method.as_str().to_string(),
        path,
        query: parse_query(parts.uri.query().unwrap_or("")),
        content_type: header("content-type"),
        user_agent: header("user-agent"),
        accept: header("accept"),
        body,
    };
    let action = api::classify(&request);
    let mut entry = LogEntry {
        user_agent: header("user-agent"),
        method: request.method.clone(),
        verb: action
            .as_ref()
            .map(|a| a.verb.to_string())
            .unwrap_or_default(),
        resource: action
            .as_ref()
            .map(|a| a.resource.to_string())
            .unwrap_or_default(),
        namespace: action.as_ref().and_then(|a| a.namespace.clone()),
        path: request.path.clone(),
        query: parts.uri.query().unwrap_or("").to_string(),
        status: 0,
        dry_run: crate::api::is_dry_run(&request),
        server_time: std::time::Duration::ZERO,
        at: arrived.into_std(),
        answered: arrived.into_std(),
        body: (shared
            .record_bodies
            .load(std::sync::atomic::Ordering::Relaxed)
            && matches!(request.method.as_str(), "POST" | "PUT" | "PATCH"))
        .then(|| request.body.clone()),
    };

    // Authentication.
    if let Some(token) = &shared.token
        && header("authorization") != format!("Bearer {token}")
    {
        let r: Response = ApiError::new(401, "Unauthorized", "Unauthorized").into();
        entry.status = r.status;
        entry.answered = std::time::Instant::now();
        shared.lock().log.push(entry);
        return Ok(http_response(r));
    }

    // Faults, in order; latency delays and lets later rules and the request go on.
    let mut delay = std::time::Duration::ZERO;
    let mut response_time = std::time::Duration::ZERO;
    let mut outcome: Option<FaultAction> = None;
    // How many times the fault that decides the answer has fired, this one included (the
    // endless faults name their objects by it).
    let mut fired = 0;
    {
        let mut inner = shared.lock();
        let Inner { faults, rng, .. } = &mut *inner;
        for fault in faults.iter_mut() {
            let roll = rng.next_f64();
            if fault.fires(action.as_ref(), roll) {
                match &fault.action {
                    FaultAction::Latency(d) => delay += *d,
                    FaultAction::ResponseTime(d) => response_time = response_time.max(*d),
                    other => {
                        outcome = Some(other.clone());
                        fired = fault.fired;
                        break;
                    }
                }
            }
        }
    }
    if !delay.is_zero() {
        sleep_precisely_until(arrived + delay).await;
    }
    // The server's own time: from here (after any injected latency) to a serialised answer.
    let started = std::time::Instant::now();
    let response = match outcome {
        Some(FaultAction::CloseConnection) => {
            entry.status = 0;
            entry.answered = std::time::Instant::now();
            shared.lock().log.push(entry);
            return Err(Dropped);
        }
        Some(FaultAction::Status { code, retry_after }) => {
            let reason = match code {
                429 => "TooManyRequests",
                409 => "Conflict",
                500 => "InternalError",
                503 => "ServiceUnavailable",
                504 => "Timeout",
                _ => "InternalError",
            };
            let mut e = ApiError::new(code, reason, format!("injected fault: {code}"));
            e.retry_after = retry_after;
            Response::from(e)
        }
        Some(FaultAction::StatusMessage { code, ref message }) => {
            Response::from(ApiError::new(code, status_reason(code), message.clone()))
        }
        Some(FaultAction::EndlessList) => crate::hostile::endless_page(&request, fired),
        Some(FaultAction::EndlessWatch) => match crate::hostile::endless_watch(&request, fired) {
            Ok(rx) => {
                entry.status = 200;
                entry.server_time = started.elapsed();
                shared.lock().log.push(entry);
                return Ok(stream_response(rx));
            }
            Err(e) => Response::from(e),
        },
        _ => {
            let mut inner = shared.lock();
            let denied = match (&inner.policy, &action) {
                (Some(policy), Some(a)) => !policy.rules.iter().any(|r| {
                    r.verbs.iter().any(|v| v == a.verb)
                        && r.resources.iter().any(|x| x == a.resource)
                }),
                _ => false,
            };
            if denied {
                let a = action
                    .as_ref()
                    .map(|a| (a.verb, a.resource, a.group, a.namespace.clone()));
                let (verb, resource, group, ns) = a.unwrap_or(("", "", "", None));
                let scope = ns.map_or("at the cluster scope".to_string(), |n| {
                    format!("in the namespace \"{n}\"")
                });
                let mut e = ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{resource} is forbidden: User \"system:serviceaccount:regops:regops\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
                    ),
                );
                e.details = serde_json::json!({"kind": resource, "group": group});
                Response::from(e)
            } else if action.as_ref().is_some_and(|a| a.verb == "watch") {
                drop(inner);
                match crate::watch::start(&request, shared.clone()) {
                    Ok(rx) => {
                        entry.status = 200;
                        entry.server_time = started.elapsed();
                        shared.lock().log.push(entry);
                        return Ok(stream_response(rx));
                    }
                    Err(e) => Response::from(e),
                }
            } else {
                let r = inner.store.handle(&request);
                drop(inner);
                shared.changed.notify_waiters();
                r
            }
        }
    };
    // Faults that come after the work is done: the store has changed, the answer is lost.
    let response = match outcome {
        Some(FaultAction::CommitThenDrop) => {
            entry.status = 0;
            entry.answered = std::time::Instant::now();
            shared.lock().log.push(entry);
            return Err(Dropped);
        }
        Some(FaultAction::CommitThenStatus(code)) => {
            let reason = match code {
                502 => "BadGateway",
                503 => "ServiceUnavailable",
                504 => "Timeout",
                _ => "InternalError",
            };
            Response::from(ApiError::new(
                code,
                reason,
                format!("injected fault after the request was carried out: {code}"),
            ))
        }
        _ => response,
    };
    entry.status = response.status;
    let answer = http_response(response);
    entry.server_time = started.elapsed();
    entry.answered = std::time::Instant::now().max((arrived + delay + response_time).into_std());
    shared.lock().log.push(entry);
    if !response_time.is_zero() {
        sleep_precisely_until(arrived + delay + response_time).await;
    }
    Ok(answer)
}

/// Waits until `deadline`, to within a fraction of a millisecond. tokio's timer has a 1 ms
/// grain and fires after it (a 10 ms sleep takes 10.5 to 12 ms), which would make an injected
/// latency longer than it says; the last 2 ms are slept on a blocking thread, whose sleep is
/// precise.
async fn sleep_precisely_until(deadline: tokio::time::Instant) {
    if let Some(coarse) = deadline.checked_sub(std::time::Duration::from_millis(2)) {
        tokio::time::sleep_until(coarse).await;
    }
    let rest = deadline.saturating_duration_since(tokio::time::Instant::now());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

async fn serve_io<I>(io: I, shared: Arc<Shared>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| serve(req, shared.clone()));
    // Errors here are injected drops or clients hanging up: nothing to report.
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// Accepts connections (over TLS when an acceptor is given) until `shutdown` fires.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    // The namespace controller: finalizes deleted namespaces when due (see
    // api::Store::run_namespace_controller), waking the watches it changed.
    let controller = shared.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            let changed = controller
                .lock()
                .store
                .run_namespace_controller(std::time::Instant::now());
            if changed {
                controller.changed.notify_waiters();
            }
        }
    });
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => return,
        };
        let Ok((stream, _peer)) = accepted else {
            continue;
        };
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_io(stream, shared).await;
                    }
                }
                None => serve_io(stream, shared).await,
            }
        });
    }
}

pub(crate) fn bound_addr(listener: &TcpListener) -> std::io::Result<SocketAddr> {
    listener.local_addr()
}

/// The `reason` the API server gives with `code` (`metav1.StatusReason`, in
/// staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/types.go).
fn status_reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}
