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

/// One connection held: which, whether it is still waiting for its request (a probe's comes at
/// once; a slowloris' never), and how to close it.
struct Conn {
    id: u64,
    since: std::time::Instant,
    waiting: Arc<std::sync::atomic::AtomicBool>,
    close: Option<tokio::task::AbortHandle>,
}

/// How long a connection may wait for its request before a newcomer from its peer may take its
/// place: a probe's request comes within milliseconds, and must not be taken by the churn of a
/// peer that keeps reopening.
const EVICTABLE_AFTER: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Held {
    total: usize,
    by_peer: std::collections::HashMap<std::net::IpAddr, Vec<Conn>>,
    next: u64,
}

/// Who holds the connections: how many in all, and per peer address.
#[derive(Default)]
struct Places {
    held: std::sync::Mutex<Held>,
}

/// A place taken; given back when dropped.
struct Place {
    places: Arc<Places>,
    peer: std::net::IpAddr,
    id: u64,
    /// Cleared once the connection's request has arrived.
    waiting: Arc<std::sync::atomic::AtomicBool>,
}

impl Places {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        // A poisoned lock only means a thread panicked while counting: the counts stand.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a connection from `peer`, or `None`: all taken, or only the reserve is left
    /// and the peer already holds one. A peer at its share gets the place of its oldest
    /// connection that has waited for a request for [`EVICTABLE_AFTER`], which is closed: one
    /// address (the node's, which the kubelet's probes share with every hostNetwork pod there)
    /// cannot keep a newcomer of its own out by holding connections open.
    fn take(self: &Arc<Self>, peer: std::net::IpAddr) -> Option<Place> {
        self.take_at(peer, std::time::Instant::now())
    }

    fn take_at(self: &Arc<Self>, peer: std::net::IpAddr, now: std::time::Instant) -> Option<Place> {
        use std::sync::atomic::Ordering;
        let mut held = self.held();
        let Held {
            total,
            by_peer,
            next,
        } = &mut *held;
        let mine = by_peer.entry(peer).or_default();
        if mine.len() >= PER_PEER {
            let oldest = mine.iter().position(|c| {
                c.waiting.load(Ordering::Relaxed)
                    && now.saturating_duration_since(c.since) >= EVICTABLE_AFTER
            })?;
            let evicted = mine.remove(oldest);
            if let Some(close) = evicted.close {
                close.abort();
            }
            *total = total.saturating_sub(1);
        }
        let open =
            *total < MAX_CONNECTIONS && (*total < MAX_CONNECTIONS - RESERVE || mine.is_empty());
        if !open {
            if mine.is_empty() {
                by_peer.remove(&peer);
            }
            return None;
        }
        *next += 1;
        let waiting = Arc::new(std::sync::atomic::AtomicBool::new(true));
        mine.push(Conn {
            id: *next,
            since: now,
            waiting: waiting.clone(),
            close: None,
        });
        *total += 1;
        Some(Place {
            places: self.clone(),
            peer,
            id: *next,
            waiting,
        })
    }

    /// How to close connection `id` of `peer` (its task), for an eviction.
    fn closes_with(&self, peer: std::net::IpAddr, id: u64, close: tokio::task::AbortHandle) {
        if let Some(c) = self
            .held()
            .by_peer
            .get_mut(&peer)
            .and_then(|conns| conns.iter_mut().find(|c| c.id == id))
        {
            c.close = Some(close);
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self.places.held();
        let Held { total, by_peer, .. } = &mut *held;
        if let Some(conns) = by_peer.get_mut(&self.peer) {
            // An evicted connection's place was given back when it was evicted.
            if let Some(i) = conns.iter().position(|c| c.id == self.id) {
                conns.remove(i);
                *total = total.saturating_sub(1);
            }
            if conns.is_empty() {
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
        "/healthz" | "/livez" => match crate::cluster::progress::since_progress() {
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
        let waiting = slot.waiting.clone();
        let (slot_peer, slot_id) = (slot.peer, slot.id);
        let task = tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| {
                // The request has come: this connection is no longer one that holds a place
                // without asking anything.
                waiting.store(false, std::sync::atomic::Ordering::Relaxed);
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
        places.closes_with(slot_peer, slot_id, task.abort_handle());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_holds_its_share_and_the_reserve_is_for_newcomers() {
        let places = Arc::new(Places::default());
        let greedy: std::net::IpAddr = [127, 0, 0, 2].into();
        // A peer at its share gets the place of its oldest connection still waiting: it holds
        // PER_PEER at most, however many it opens.
        let t0 = std::time::Instant::now();
        let mut mine: Vec<Place> = (0..PER_PEER)
            .filter_map(|_| places.take_at(greedy, t0))
            .collect();
        // Young connections are not evicted: a probe's request comes within milliseconds.
        assert!(
            places
                .take_at(greedy, t0 + Duration::from_millis(10))
                .is_none()
        );
        // Once they have waited that long, newcomers take their places one by one (and the
        // newcomers, young, are not taken in turn).
        let later = t0 + EVICTABLE_AFTER;
        mine.extend((0..20 - PER_PEER).filter_map(|_| places.take_at(greedy, later)));
        assert_eq!(mine.len(), 2 * PER_PEER);
        assert_eq!(places.held().by_peer[&greedy].len(), PER_PEER);
        assert_eq!(places.held().total, PER_PEER);
        // The evicted places were given back once: dropping their holders changes nothing.
        mine.drain(..PER_PEER);
        assert_eq!(places.held().total, PER_PEER);
        // Connections whose request came are not evicted: with all PER_PEER answering, a ninth
        // from that peer waits for one of them (refused now).
        for p in &mine {
            p.waiting.store(false, std::sync::atomic::Ordering::Relaxed);
        }
        assert!(places.take_at(greedy, later + EVICTABLE_AFTER).is_none());
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
