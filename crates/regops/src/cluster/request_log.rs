//! `-v` and `-vv` (or `RUST_LOG`): each API request on stderr, as `kubectl -v=6` shows them:
//! verb, path with its query, status and duration. With `-vv`, also each retry and why. Never
//! a header (the bearer token is one), never a body (Secrets are in them), never a credential:
//! what is logged is taken from the request line and the status line only.

// This module's output is stderr by design: it is the log.
#![allow(clippy::print_stderr)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

static LEVEL: AtomicU8 = AtomicU8::new(0);

/// Sets the level for this process: 0 quiet, 1 requests, 2 requests and retries.
pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

pub fn level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

/// The level from `-v` (counted) and `RUST_LOG`: `debug` (or `regops=debug`) logs requests,
/// `trace` also retries; the higher of the two wins.
pub fn level_from(verbose: u8, rust_log: Option<&str>) -> u8 {
    let from_env = rust_log.map_or(0, |v| {
        v.split(',')
            .filter_map(|d| {
                let (target, level) = match d.split_once('=') {
                    Some((t, l)) => (Some(t.trim()), l.trim()),
                    None => (None, d.trim()),
                };
                if target.is_some_and(|t| t != "regops" && !t.starts_with("regops::")) {
                    return None;
                }
                match level.to_ascii_lowercase().as_str() {
                    "trace" => Some(2),
                    "debug" => Some(1),
                    _ => Some(0),
                }
            })
            .max()
            .unwrap_or(0)
    });
    verbose.max(from_env).min(2)
}

/// Says a retry: on a terminal always (a person waiting sees why), elsewhere at `-v`.
pub fn retrying(line: impl FnOnce() -> String) {
    use std::io::IsTerminal;
    if level() >= 1 || std::io::stderr().is_terminal() {
        eprintln!("regops: {}", regops_spec::untrusted::terminal(&line()));
    }
}

/// Logs a line at `-vv`.
pub fn detail(line: impl FnOnce() -> String) {
    if level() >= 2 {
        eprintln!("regops: {}", regops_spec::untrusted::terminal(&line()));
    }
}

/// The tower layer kube's client is built with.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestLog;

impl<S> tower::Layer<S> for RequestLog {
    type Service = Logged<S>;
    fn layer(&self, inner: S) -> Logged<S> {
        Logged { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Logged<S> {
    inner: S,
}

/// The request line as logged: method, path and query. Kubernetes API paths and queries hold
/// names, selectors and continue tokens, never credentials.
fn request_line<B>(req: &hyper::Request<B>) -> String {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    format!("{} {path}", req.method())
}

impl<S, ReqBody, ResBody> tower::Service<hyper::Request<ReqBody>> for Logged<S>
where
    S: tower::Service<hyper::Request<ReqBody>, Response = hyper::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: hyper::Request<ReqBody>) -> Self::Future {
        if level() == 0 {
            return Box::pin(self.inner.call(req));
        }
        let line = request_line(&req);
        let start = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            let ms = start.elapsed().as_millis();
            match &r {
                // The status line's reason phrase is the standard one for the code, not the
                // server's text.
                Ok(resp) => eprintln!("regops: {line} {} in {ms} ms", resp.status()),
                Err(e) => eprintln!(
                    "regops: {line} failed after {ms} ms: {}",
                    regops_spec::untrusted::terminal(&e.to_string())
                ),
            }
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_come_from_flags_and_rust_log() {
        assert_eq!(level_from(0, None), 0);
        assert_eq!(level_from(1, None), 1);
        assert_eq!(level_from(5, None), 2);
        assert_eq!(level_from(0, Some("debug")), 1);
        assert_eq!(level_from(0, Some("regops=trace")), 2);
        assert_eq!(level_from(0, Some("hyper=trace,regops=info")), 0);
        assert_eq!(level_from(0, Some("warn,regops::observe=debug")), 1);
        assert_eq!(level_from(2, Some("info")), 2);
    }

    #[test]
    fn the_request_line_is_method_path_and_query_only() {
        let req = hyper::Request::builder()
            .method("GET")
            .uri("https://10.0.0.1:6443/api/v1/secrets?labelSelector=a%3Db&limit=500")
            .header("authorization", "Bearer MARKER-token")
            .body(())
            .unwrap_or_default();
        assert_eq!(
            request_line(&req),
            "GET /api/v1/secrets?labelSelector=a%3Db&limit=500"
        );
    }
}
