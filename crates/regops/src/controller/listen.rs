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
//! And the kubelet keeps its place: one peer (an address) holds at most [`PER_PEER`]
//! connections, and the last [`RESERVE`] places go only to a peer that holds none, so a pod
//! that keeps opening connections cannot starve the probes (they come from the node's address,
//! one at a time).
//!
//! [`MAX_CONNECTIONS`]: MAX_CONNECTIONS
//! [`PER_PEER`]: PER_PEER
//! [`RESERVE`]: RESERVE
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
/// Connections one peer address may hold at once.
pub const PER_PEER: usize = 8;
/// Places kept for a peer that holds no connection (the kubelet's next probe).
pub const RESERVE: usize = 16;

/// Who holds the connections: how many in all, and per peer address.
#[derive(Default)]
struct Places {
    held: std::sync::Mutex<(usize, std::collections::HashMap<std::net::IpAddr, usize>)>,
}

/// A place taken; given back when dropped.
struct Place {
    places: Arc<Places>,
    peer: std::net::IpAddr,
}

impl Places {
    /// A place for a connection from `peer`, or `None`: all taken, the peer holds its share, or
    /// only the reserve is left and the peer already holds one.
    fn take(self: &Arc<Self>, peer: std::net::IpAddr) -> Option<Place> {
        // A poisoned lock only means a thread panicked while counting: the counts stand.
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let (total, by_peer) = &mut *held;
        let mine = by_peer.get(&peer).copied().unwrap_or(0);
        let open = *total < MAX_CONNECTIONS
            && mine < PER_PEER
            && (*total < MAX_CONNECTIONS - RESERVE || mine == 0);
        if !open {
            return None;
        }
        *total += 1;
        *by_peer.entry(peer).or_default() += 1;
        Some(Place {
            places: self.clone(),
            peer,
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self.places.held.lock().unwrap_or_else(|e| e.into_inner());
        let (total, by_peer) = &mut *held;
        *total = total.saturating_sub(1);
        if let Some(n) = by_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_peer.remove(&self.peer);
            }
        }
    }
}

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
    let places = Arc::new(Places::default());
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            // Out of descriptors or similar: wait a little rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // No place: this one is closed (dropped) at once, and the ones held time out soon.
        let Some(slot) = places.take(peer.ip()) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_holds_its_share_and_the_reserve_is_for_newcomers() {
        let places = Arc::new(Places::default());
        let greedy: std::net::IpAddr = [127, 0, 0, 2].into();
        let mine: Vec<Place> = (0..20).filter_map(|_| places.take(greedy)).collect();
        assert_eq!(mine.len(), PER_PEER);
        // Many peers fill the shared places; then only peers holding none get the reserve.
        let mut others: Vec<Place> = Vec::new();
        for i in 0..200u8 {
            let peer: std::net::IpAddr = [10, 0, 1, i].into();
            others.extend(places.take(peer));
            others.extend(places.take(peer));
        }
        assert_eq!(mine.len() + others.len(), MAX_CONNECTIONS);
        drop(others.pop());
        let kubelet: std::net::IpAddr = [192, 168, 0, 1].into();
        assert!(places.take(kubelet).is_some(), "a newcomer gets the place");
        drop(mine);
        assert!(
            places.take(greedy).is_some(),
            "places come back when dropped"
        );
    }
}
