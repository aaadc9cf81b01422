//! Minting short-lived registry tokens from a cloud identity: Amazon ECR ([`aws`]), Google
//! Artifact Registry and GCR ([`gcp`]), Azure Container Registry ([`acr`]). Each source finds
//! its identity the way its cloud's SDKs do (environment, files, the workload identity of a
//! pod, the metadata server), asks for a token over HTTPS and says when it expires.
//!
//! Every endpoint can be moved with the cloud's standard override (`AWS_ENDPOINT_URL_ECR`,
//! `AWS_ENDPOINT_URL_STS`, `GCE_METADATA_HOST`, the key file's `token_uri`,
//! `AZURE_AUTHORITY_HOST`), which is how the tests reach local fakes. Tokens live in
//! `secrecy` types; an error names the step that failed and never holds a token or a body.

pub mod acr;
pub mod aws;
pub mod gcp;
pub mod sigv4;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use regops_spec::{SecretSource, Spec};
use zeroize::Zeroizing;

use crate::inputs::credentials::Login;

/// Why a token could not be minted: the step, and what went wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintError {
    pub step: String,
    pub message: String,
}

impl MintError {
    /// `step` failed: `message` (a sentence, or an error said with its causes).
    pub fn new(step: impl Into<String>, message: impl std::fmt::Display) -> Self {
        MintError {
            step: step.into(),
            message: message.to_string(),
        }
    }
}

/// Why a request to a cloud endpoint got no answer: where, never what was sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A plain-HTTP URL that may not carry a token request ([`plain_http_check`]).
    #[error("{0}")]
    PlainHttp(PlainHttpRefused),
    #[error("{0}")]
    Tls(#[from] crate::registry::TlsError),
    #[error("bad endpoint {url}: {why}")]
    BadEndpoint { url: String, why: String },
    #[error("bad request to {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: hyper::http::Error,
    },
    #[error("no answer from {url} in {secs} s")]
    Timeout { url: String, secs: u64 },
    /// The connection failed: said with every cause (DNS, refused, TLS).
    #[error("cannot reach {url}: {}", crate::errors::chain(.source).join(": "))]
    Unreachable {
        url: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("{url}: {source}")]
    Body {
        url: String,
        #[source]
        source: crate::bounded::BoundError,
    },
}

impl std::fmt::Display for MintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.step, self.message)
    }
}

impl std::error::Error for MintError {}

/// What a source reads from its run: its settings (the process environment, or a test's),
/// how long one request may take (`--request-timeout`) and the run's clock.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    vars: &'a dyn Fn(&str) -> Option<String>,
    /// How long one request may take, its answer included.
    pub timeout: Duration,
    clock: &'a dyn crate::clock::Clock,
}

impl<'a> Env<'a> {
    /// The process environment, with the run's context.
    pub fn process(ctx: &'a crate::context::RunContext) -> Env<'a> {
        Env {
            vars: &process_var,
            timeout: ctx.request_timeout,
            clock: &*ctx.clock,
        }
    }

    /// Settings read from `vars`, with the default request timeout, on the system clock.
    pub fn vars(vars: &'a dyn Fn(&str) -> Option<String>) -> Env<'a> {
        Env {
            vars,
            timeout: crate::context::RunContext::DEFAULT_REQUEST_TIMEOUT,
            clock: &crate::clock::SystemClock,
        }
    }

    /// The setting `key`, if it is set.
    pub fn var(&self, key: &str) -> Option<String> {
        (self.vars)(key)
    }

    /// Unix seconds now, on the run's clock.
    pub fn now(&self) -> i64 {
        crate::clock::unix_now(self.clock)
    }
}

fn process_var(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// An answer: status, the headers a source reads, the body (zeroed on drop: it holds tokens).
pub struct Reply {
    pub status: u16,
    /// The `Date` header, for telling a clock-skew refusal.
    pub date: Option<String>,
    pub body: Zeroizing<Vec<u8>>,
}

impl Reply {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One HTTP request to a cloud endpoint: at most `timeout` (`--request-timeout`), its answer
/// included; the body zeroed after sending.
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: Zeroizing<Vec<u8>>,
    pub timeout: Duration,
}

impl<'a> Request<'a> {
    /// A GET of `url`, within `env`'s request timeout.
    pub fn get(url: &'a str, env: Env<'_>) -> Self {
        Request {
            method: "GET",
            url,
            headers: Vec::new(),
            body: Zeroizing::new(Vec::new()),
            timeout: env.timeout,
        }
    }

    /// A POST of `body` to `url`, within `env`'s request timeout.
    pub fn post(url: &'a str, content_type: &str, body: Zeroizing<Vec<u8>>, env: Env<'_>) -> Self {
        Request {
            method: "POST",
            url,
            headers: vec![("content-type", content_type.to_string())],
            body,
            timeout: env.timeout,
        }
    }

    pub fn header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Sends it. The error says where it could not be sent, never what.
    pub async fn send(self) -> Result<Reply, SendError> {
        plain_http_check(self.url).map_err(SendError::PlainHttp)?;
        let connector = crate::registry::connector(None)?;
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
        let mut req = hyper::Request::builder()
            .method(self.method)
            .uri(self.url)
            .header("user-agent", concat!("regops/", env!("CARGO_PKG_VERSION")));
        for (k, v) in &self.headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(&self.body)))
            .map_err(|source| SendError::Request {
                url: self.url.to_string(),
                source,
            })?;
        let url = self.url;
        let started = tokio::time::Instant::now();
        let resp = tokio::time::timeout(self.timeout, client.request(req))
            .await
            .map_err(|_| SendError::Timeout {
                url: url.to_string(),
                secs: self.timeout.as_secs(),
            })?
            .map_err(|source| SendError::Unreachable {
                url: url.to_string(),
                source,
            })?;
        let status = resp.status().as_u16();
        let date = resp
            .headers()
            .get("date")
            .and_then(|d| d.to_str().ok())
            .map(str::to_string);
        let body = crate::bounded::body(
            resp.into_body(),
            crate::bounded::ANSWER_LIMIT,
            self.timeout.saturating_sub(started.elapsed()),
        )
        .await
        .map_err(|source| SendError::Body {
            url: url.to_string(),
            source,
        })?;
        Ok(Reply { status, date, body })
    }
}

/// The clouds' metadata and container-credential endpoints, which speak plain HTTP on
/// link-local addresses by design (EC2 IMDS, ECS and EKS Pod Identity, the GCE metadata
/// server).
const METADATA_HOSTS: &[&str] = &[
    "169.254.169.254",
    "169.254.170.2",
    "169.254.170.23",
    "[fd00:ec2::254]",
    "[fd00:ec2::23]",
    "metadata.google.internal",
];

/// Token endpoints speak HTTPS: an `http://` URL is refused unless it is on loopback (a local
/// fake, in tests) or a cloud metadata address, whoever chose it (an environment override, a
/// key file's `token_uri`, a registry).
pub fn plain_http_check(url: &str) -> Result<(), PlainHttpRefused> {
    let Some(rest) = url.strip_prefix("http://") else {
        return if url.starts_with("https://") {
            Ok(())
        } else {
            Err(PlainHttpRefused::NotHttps(url.to_string()))
        };
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let bare = match host.strip_prefix('[') {
        Some(_) => host.split_inclusive(']').next().unwrap_or(host),
        None => host.split(':').next().unwrap_or(host),
    };
    if regops_spec::trust::is_loopback_host(host)
        || METADATA_HOSTS.iter().any(|m| m.eq_ignore_ascii_case(bare))
    {
        return Ok(());
    }
    Err(PlainHttpRefused::PlainHttp(url.to_string()))
}

/// Why [`plain_http_check`] refused a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainHttpRefused {
    #[error("`{0}` is not an https:// URL")]
    NotHttps(String),
    #[error(
        "refused to send a token request to {0} over plain HTTP: token endpoints must be https:// (only loopback and the clouds' metadata addresses may be plain HTTP)"
    )]
    PlainHttp(String),
}

/// The longest a minted token is believed to live (ECR's is 12 hours, the others' less): an
/// answer saying longer is cut to this, so that a token is renewed in time whatever a cloud
/// (or something posing as one) says.
pub const MAX_TOKEN_LIFETIME: i64 = 24 * 3_600;

/// When a token expires: `at` as the cloud said it (Unix seconds), else `now + default`;
/// refused if already past, cut to [`MAX_TOKEN_LIFETIME`] from now, without overflow.
pub fn token_expiry(now: i64, at: Option<i64>, default: i64, step: &str) -> Result<i64, MintError> {
    let at = at.unwrap_or_else(|| now.saturating_add(default));
    if at <= now {
        return Err(MintError::new(
            step,
            format!(
                "the token it gave has already expired (at {})",
                regops_spec::rules::format_timestamp(at)
            ),
        ));
    }
    Ok(at.min(now.saturating_add(MAX_TOKEN_LIFETIME)))
}

/// A credential file a cloud's SDK would read (a key file, a token file, the shared config):
/// a regular file of at most 1 MiB, read into a buffer zeroed on drop. The path comes from the
/// environment, not the spec, but `/dev/zero` or a FIFO there must not hang or fill regops.
pub fn read_file(
    path: impl AsRef<std::path::Path>,
) -> Result<Zeroizing<String>, crate::inputs::confined::ReadError> {
    crate::inputs::confined::read_text(path.as_ref(), crate::inputs::confined::SECRET_FILE_LIMIT)
}

/// How far the service's clock (its `Date` header) is from ours, in seconds, when it says.
pub fn skew(reply: &Reply, now: i64) -> Option<i64> {
    let date = reply.date.as_deref()?;
    let t = jiff::fmt::rfc2822::parse(date).ok()?;
    Some(t.timestamp().as_second() - now)
}

/// The sentence for a refusal that may come of a wrong clock: the skew when the service's
/// `Date` shows one over five minutes.
pub fn skew_note(reply: &Reply, now: i64) -> Option<String> {
    let s = skew(reply, now)?;
    (s.abs() > 300).then(|| {
        format!(
            "this machine's clock is {} minutes {} the service's (its Date: {}); fix the clock (NTP) and run again",
            (s.abs() + 30) / 60,
            if s > 0 { "behind" } else { "ahead of" },
            reply.date.as_deref().unwrap_or("?")
        )
    })
}

/// Mints a token for credential `name` of `spec`: its source, and the registry that uses it
/// (ACR exchanges at the registry).
pub async fn mint(spec: &Spec, name: &str, env: Env<'_>) -> Result<Login, MintError> {
    let cred = spec
        .credentials
        .get(name)
        .ok_or_else(|| MintError::new("find the credential", "not in the spec"))?;
    let registry = spec
        .registries
        .values()
        .find(|r| r.credential.value == name);
    match &cred.password {
        SecretSource::Ecr { ecr } => aws::mint(ecr, env).await,
        SecretSource::Gcp { .. } => gcp::mint(env).await,
        SecretSource::Acr { acr } => {
            let reg = registry.ok_or_else(|| {
                MintError::new("find the registry", "no registry uses this credential")
            })?;
            acr::mint(acr, &reg.server.value, reg.insecure, env).await
        }
        _ => Err(MintError::new(
            "mint a token",
            "its password is not minted from a cloud",
        )),
    }
}

/// [`mint`] from synchronous code (`render` and `validate`, which need every token before they
/// start), on a thread of its own with its own runtime. Never from async code: planning mints
/// with [`mint`] itself (`Prepared::mint_due`), so a hung endpoint blocks no runtime.
pub fn mint_blocking(
    spec: &Spec,
    name: &str,
    ctx: &crate::context::RunContext,
) -> Result<Login, MintError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| MintError::new("start the async runtime", e.to_string()))?;
            rt.block_on(mint(spec, name, Env::process(ctx)))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(MintError::new(
                "mint a token",
                "the minting thread panicked",
            ))
        })
    })
}

/// The home directory, for `~/.aws` and gcloud's well-known file.
pub fn home(env: Env<'_>) -> Option<std::path::PathBuf> {
    env.var("HOME").map(std::path::PathBuf::from)
}

/// `error` and `error_description` of an OAuth 2.0 error answer (RFC 6749 §5.2), or the status.
pub fn oauth_error(reply: &Reply) -> String {
    let v = reply.json();
    let field = |k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k))
            .and_then(|e| e.as_str())
            .map(str::to_string)
    };
    match (field("error"), field("error_description")) {
        (Some(e), Some(d)) => format!("HTTP {}: {e}: {d}", reply.status),
        (Some(e), None) => format!("HTTP {}: {e}", reply.status),
        _ => match v
            .as_ref()
            .and_then(|v| v.pointer("/error/message"))
            .and_then(|m| m.as_str())
        {
            Some(m) => format!("HTTP {}: {m}", reply.status),
            None => format!("HTTP {}", reply.status),
        },
    }
}

/// POSTs a form to an OAuth 2.0 endpoint as `step`: the answer when it is a success, else its
/// `error` and `error_description`.
pub async fn post_form(
    url: &str,
    step: &str,
    body: Zeroizing<Vec<u8>>,
    env: Env<'_>,
) -> Result<Reply, MintError> {
    let reply = Request::post(url, "application/x-www-form-urlencoded", body, env)
        .send()
        .await
        .map_err(|e| MintError::new(step, e))?;
    if reply.ok() {
        Ok(reply)
    } else {
        Err(MintError::new(step, oauth_error(&reply)))
    }
}

/// A string field of a JSON answer.
pub fn json_field(reply: &Reply, field: &str, step: &str) -> Result<String, MintError> {
    reply
        .json()
        .and_then(|v| v.get(field)?.as_str().map(str::to_string))
        .ok_or_else(|| MintError::new(step, format!("the answer has no {field}")))
}

/// Form-encodes `pairs` (values may be secret; the result is zeroed on drop).
pub fn form(pairs: &[(&str, &str)]) -> Zeroizing<Vec<u8>> {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    Zeroizing::new(s.finish().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clouds_expiry_is_checked_and_cut_to_the_longest_lifetime() {
        let now = 1_000_000;
        assert_eq!(token_expiry(now, None, 3_600, "s"), Ok(now + 3_600));
        assert_eq!(token_expiry(now, Some(now + 60), 3_600, "s"), Ok(now + 60));
        assert_eq!(
            token_expiry(now, Some(i64::MAX), 3_600, "s"),
            Ok(now + MAX_TOKEN_LIFETIME)
        );
        assert!(token_expiry(now, Some(now), 3_600, "s").is_err());
        assert!(token_expiry(now, Some(i64::MIN), 3_600, "s").is_err());
        // expires_in added without overflow.
        assert_eq!(
            token_expiry(now, Some(now.saturating_add(i64::MAX)), 3_600, "s"),
            Ok(now + MAX_TOKEN_LIFETIME)
        );
    }

    #[test]
    fn token_endpoints_must_be_https_but_on_loopback_and_metadata_addresses() {
        for ok in [
            "https://login.microsoftonline.com/t/oauth2/v2.0/token",
            "http://127.0.0.1:8080/token",
            "http://localhost/x",
            "http://[::1]:9/x",
            "http://169.254.169.254/latest/api/token",
            "http://169.254.170.23/v1/credentials",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://[fd00:ec2::254]/latest",
        ] {
            assert_eq!(plain_http_check(ok), Ok(()), "{ok}");
        }
        for refused in [
            "http://login.example.com/token",
            "http://10.0.0.1/token",
            "http://127.0.0.1.evil.com/token",
            "http://user@evil.com/token",
            "ftp://x/token",
            "http://169.254.169.254.evil.com/",
        ] {
            assert!(plain_http_check(refused).is_err(), "{refused}");
        }
    }
}
