//! `watch=true`: a stream of JSON events, one per line, over a chunked response, as the API
//! server sends them (k8s.io/apimachinery/pkg/apis/meta/v1 `WatchEvent`):
//!
//! - without `resourceVersion` (or with "0"), the objects that exist first, as `ADDED`, then
//!   every change after them;
//! - with a `resourceVersion`, the changes after it; one older than the changes the server
//!   keeps is answered with an `ERROR` event holding a 410 `Expired` Status ("too old resource
//!   version"), on a 200 response, as kube-apiserver answers it (kubernetes/kubernetes#25151);
//! - `allowWatchBookmarks=true`: `BOOKMARK` events carrying only the version the watch has
//!   reached, so that a quiet watch can resume without a relist;
//! - `timeoutSeconds`: the stream ends after that long, cleanly.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Frame;
use serde_json::json;

use crate::api::{Event, Request, WatchFilter, WatchStart};
use crate::resources;
use crate::server::Shared;
use crate::status::ApiError;

/// A response body fed by a channel: each message is one chunk.
pub(crate) struct Channel(tokio::sync::mpsc::Receiver<Bytes>);

impl Channel {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        Channel(rx)
    }
}

impl hyper::body::Body for Channel {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }
}

fn line(v: &serde_json::Value) -> Bytes {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

fn event_line(e: &Event) -> Bytes {
    line(&json!({ "type": e.type_, "object": e.object }))
}

/// Starts a watch: checks the request, and streams its events from a task of its own.
pub(crate) fn start(
    request: &Request,
    shared: Arc<Shared>,
) -> Result<tokio::sync::mpsc::Receiver<Bytes>, ApiError> {
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let p = resources::parse_path(&request.path).ok_or_else(not_found)?;
    if p.name.is_some() || p.subresource.is_some() {
        return Err(not_found());
    }
    let (filter, start) = shared.lock().store.watch_request(&p, request)?;
    let timeout = match request.param("timeoutSeconds") {
        Some(t) => Some(Duration::from_secs(t.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid timeoutSeconds `{t}`"))
        })?)),
        None => None,
    };
    let bookmarks = request
        .param("allowWatchBookmarks")
        .is_some_and(|b| b == "true" || b == "1");
    let kind = (p.resource.kind, p.resource.api_version());
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(stream(shared, filter, start, timeout, bookmarks, kind, tx));
    Ok(rx)
}

/// A watch past its start: the store keeps every change it has not been given yet.
struct Live {
    shared: Arc<Shared>,
    id: u64,
}

impl Live {
    /// Registers a watch that has been given every change up to `taken`.
    fn start(shared: &Arc<Shared>, store: &mut crate::api::Store, taken: u64) -> Live {
        Live {
            shared: shared.clone(),
            id: store.start_live(taken),
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.shared.lock().store.end_live(self.id);
    }
}

/// Sends the changes after `cursor` and moves it on; `Err` when the client has gone or (for
/// a watch not yet live) the changes are no longer kept, after sending the 410 event. The
/// first call that succeeds makes the watch live. Returns the store's version.
async fn drain(
    shared: &Arc<Shared>,
    filter: &WatchFilter,
    cursor: &mut u64,
    live: &mut Option<Live>,
    tx: &tokio::sync::mpsc::Sender<Bytes>,
) -> Result<u64, ()> {
    let (batch, now) = {
        let mut inner = shared.lock();
        let now = inner.store.resource_version();
        let batch = match live {
            Some(l) => Ok(inner.store.live_changes(l.id, filter, *cursor)),
            None => {
                let batch = inner.store.watch_events(filter, *cursor);
                if batch.is_ok() {
                    *live = Some(Live::start(shared, &mut inner.store, now));
                }
                batch
            }
        };
        (batch, now)
    };
    match batch {
        Ok(events) => {
            for e in &events {
                tx.send(event_line(e)).await.map_err(|_| ())?;
                *cursor = e.rv;
            }
            // Every change up to `now` has been looked at.
            *cursor = (*cursor).max(now);
            Ok(now)
        }
        Err(compacted) => {
            let status = ApiError::new(
                410,
                "Expired",
                format!("too old resource version: {cursor} ({compacted})"),
            );
            let _ = tx
                .send(line(
                    &json!({ "type": "ERROR", "object": status.to_status() }),
                ))
                .await;
            Err(())
        }
    }
}

async fn stream(
    shared: Arc<Shared>,
    filter: WatchFilter,
    start: WatchStart,
    timeout: Option<Duration>,
    bookmarks: bool,
    (kind, api_version): (&'static str, String),
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let epoch = shared.watch_epoch.load(std::sync::atomic::Ordering::SeqCst);
    let mut live = None;
    let mut cursor = match start {
        WatchStart::After(rv) => rv,
        WatchStart::Now => {
            let (existing, rv) = {
                let mut inner = shared.lock();
                let (existing, rv) = inner.store.watch_snapshot(&filter);
                live = Some(Live::start(&shared, &mut inner.store, rv));
                (existing, rv)
            };
            for e in &existing {
                if tx.send(event_line(e)).await.is_err() {
                    return;
                }
            }
            rv
        }
    };
    loop {
        // Registered before the store is read, so a change made in between still wakes it.
        let changed = shared.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if shared.watch_epoch.load(std::sync::atomic::Ordering::SeqCst) != epoch {
            return;
        }
        if drain(&shared, &filter, &mut cursor, &mut live, &tx)
            .await
            .is_err()
        {
            return;
        }
        let interval = shared.bookmark_interval();
        tokio::select! {
            () = &mut changed => {}
            () = tokio::time::sleep(interval), if bookmarks => {
                // Nothing of this watch's happened up to `now`: it may resume from there.
                let Ok(now) = drain(&shared, &filter, &mut cursor, &mut live, &tx).await else {
                    return;
                };
                cursor = cursor.max(now);
                let mark = json!({ "type": "BOOKMARK", "object": {
                    "kind": kind, "apiVersion": api_version,
                    "metadata": { "resourceVersion": cursor.to_string() } } });
                if tx.send(line(&mark)).await.is_err() {
                    return;
                }
            }
            () = sleep_until(deadline) => return,
            () = tx.closed() => return,
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
