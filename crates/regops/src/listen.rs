//! The `--listen` endpoint of `apply --watch`: plain HTTP/1.1 for the kubelet's probes and
//! Prometheus.
//!
//! - `GET /healthz`: 200 while the process runs its loop (the kubelet restarts it otherwise);
//! - `GET /readyz`: 200 once the first full apply has ended, or while waiting as a standby
//!   for the Lease (a standby is ready to take over; a rollout must not wait on it), else 503;
//! - `GET /metrics`: [`crate::metrics`] in the Prometheus text format.
//!
//! Nothing else is served (404), and nothing served holds a credential.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::metrics::Metrics;

fn answer(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn route(req: &Request<hyper::body::Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match req.uri().path() {
        "/healthz" | "/livez" => answer(StatusCode::OK, "text/plain", "ok\n".into()),
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

/// Serves connections until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or similar: wait a little rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let r = route(&req, &metrics);
                async move { Ok::<_, Infallible>(r) }
            });
            // A client that hangs up mid-request is its own business.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
