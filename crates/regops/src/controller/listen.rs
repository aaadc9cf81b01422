//! The `--listen` endpoint of `apply --watch`: plain HTTP/1.1 for the kubelet's probes and
//! Prometheus.
//!
//! - `GET /healthz`: 200 while the work loop makes progress (a turn of its loop, a page read,
//!   a write, a look at the Lease while standing by) within `--healthz-stall`, else 503: a
//!   stuck loop is restarted by the kubelet;
//! - `GET /readyz`: 200 once the first full apply has ended, or while waiting as a standby
//!   for the Lease (a standby is ready to take over; a rollout must not wait on it), else 503;
//! - `GET /metrics`: [`crate::controller::metrics`] in the Prometheus text format.
//!
//! Nothing else is served (404), and nothing served holds a credential. The port may be
//! reachable by anyone in the cluster, so each connection is bounded: at most
//! [`MAX_CONNECTIONS`] at once (more are closed at once), [`HEADER_TIMEOUT`] to send its
//! headers, one request per connection, [`CONNECTION_DEADLINE`] in all, 8 KiB of buffer.
//!
//! [`MAX_CONNECTIONS`]: MAX_CONNECTIONS
//! [`HEADER_TIMEOUT`]: HEADER_TIMEOUT
//! [`CONNECTION_DEADLINE`]: CONNECTION_DEADLINE

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::controller::metrics::Metrics;

fn answer(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Connections served at once; one more is closed as soon as it is accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client has to send its request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one connection lasts, whatever it does.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

fn route(
    req: &Request<hyper::body::Incoming>,
    metrics: &Metrics,
    stall: Duration,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match req.uri().path() {
        "/healthz" | "/livez" => match crate::controller::metrics::since_progress() {
            quiet if quiet > stall => answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!(
                    "the work loop has made no progress for {} s (--healthz-stall {} s)\n",
                    quiet.as_secs(),
                    stall.as_secs()
                ),
            ),
            _ => answer(StatusCode::OK, "text/plain", "ok\n".into()),
        },
        "/readyz" if metrics.ready() => answer(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the first full apply has not ended\n".into(),
        ),
        "/metrics" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            answer(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics.render(now),
            )
        }
        _ => answer(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Binds `addr` (so a taken port is an error at start, not later).
pub async fn bind(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves connections until the task is dropped; `/healthz` fails after `stall` without
/// progress.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, stall: Duration) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or similar: wait a little rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // Full: this one is closed (dropped) at once, and the ones held time out soon.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| {
                let r = route(&req, &metrics, stall);
                async move { Ok::<_, Infallible>(r) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .max_buf_size(8 * 1024);
            // A client that hangs up mid-request, or is cut off, is its own business.
            let _ = tokio::time::timeout(
                CONNECTION_DEADLINE,
                builder.serve_connection(TokioIo::new(stream), service),
            )
            .await;
        });
    }
}
