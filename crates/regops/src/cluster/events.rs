//! Recording Kubernetes Events (`events.k8s.io/v1`) of what an apply did, as client-go's
//! `tools/events` recorder does: reporting controller `regops.dev/<spec>`, this process as
//! the reporting instance, and a repeat of an Event (same object, reason, action and note)
//! within six minutes folded into the first one's `series` instead of a new Event: the first
//! repeat patches the series at once, later ones are counted and written at most every 30
//! minutes and when the series ends. Which Events a pass records, and the cap that keeps a
//! pass over 10,000 namespaces to a few dozen, is [`regops_core::events`].
//!
//! Recording never fails an apply: an Event the server refuses (RBAC without
//! `events.k8s.io/events` `create` and `patch`, say) is counted, and the caller warns once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use regops_core::events::{Event, PassEvents, Regarding};
use serde_json::json;

use crate::cluster::Connection;

/// A series not seen again for this long is over (client-go's `finishTime`).
const FINISH: Duration = Duration::from_secs(6 * 60);
/// A series' count is written at most this often while it lasts (client-go's `refreshTime`).
const REFRESH: Duration = Duration::from_secs(30 * 60);
/// Events sent at once.
const CONCURRENCY: usize = 8;

type Key = (Regarding, &'static str, &'static str, String, &'static str);

/// One Event recorded, and its series.
struct Series {
    namespace: String,
    name: String,
    count: u32,
    /// The count the server has.
    written: u32,
    last_seen: Instant,
    last_written: Instant,
    last_observed: String,
}

/// What one call recorded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Events created.
    pub created: usize,
    /// Series written (an Event's count patched).
    pub patched: usize,
    /// Repeats folded into a series without a request.
    pub folded: usize,
    /// Events or patches the server refused, and the first reason.
    pub failed: usize,
    pub first_error: Option<String>,
}

/// The recorder of one spec, kept for the life of the process (the controller's passes share
/// it, so their repeats become series).
pub struct Recorder {
    controller: String,
    instance: String,
    spec: String,
    series: Mutex<HashMap<Key, Series>>,
}

/// `2026-12-05T08:00:00.000000Z`, the API's MicroTime.
fn micro_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

/// A name for a new Event, as client-go makes them: the object's name and the time in hex
/// (with a counter, so two Events made in one nanosecond differ).
fn event_name(regarding: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    // A name is at most 253 characters; the object's (a Secret's, up to 253) is cut to fit.
    let suffix = format!(".{nanos:x}{seq:x}");
    let keep = regarding.len().min(253 - suffix.len());
    let mut base = regarding[..keep].to_string();
    while base.ends_with(['.', '-']) {
        base.pop();
    }
    format!("{base}{suffix}")
}

impl Recorder {
    /// `regops.dev/<spec>` reporting, as `instance` (this process: host and pid).
    pub fn new(spec: &str, instance: &str) -> Self {
        // The reporting controller is a qualified name: its name part at most 63 characters.
        let name: String = spec.chars().take(63).collect();
        Recorder {
            controller: format!("regops.dev/{name}"),
            instance: instance.chars().take(128).collect(),
            spec: spec.into(),
            series: Mutex::new(HashMap::new()),
        }
    }

    fn body(&self, e: &Event, namespace: &str, name: &str, now: &str) -> serde_json::Value {
        let mut regarding = json!({
            "apiVersion": e.regarding.api_version,
            "kind": e.regarding.kind,
            "name": e.regarding.name,
        });
        if !e.regarding.namespace.is_empty() {
            regarding["namespace"] = json!(e.regarding.namespace);
        }
        if let Some(uid) = &e.regarding.uid {
            regarding["uid"] = json!(uid);
        }
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "eventTime": now,
            "reportingController": self.controller,
            "reportingInstance": self.instance,
            "action": e.action,
            "reason": e.reason,
            "regarding": regarding,
            "note": e.note,
            "type": e.type_.as_str(),
        })
    }

    /// Records a pass's Events, and a summary Event on `lease` for each reason past the cap.
    pub async fn record(
        &self,
        conn: &Connection,
        pass: PassEvents,
        lease: Option<Regarding>,
    ) -> Recorded {
        let mut events = pass.events;
        if let Some(lease) = lease {
            for beyond in pass.beyond {
                events.push(regops_core::events::summary(
                    lease.clone(),
                    &self.spec,
                    beyond,
                    regops_core::events::PER_REASON,
                ));
            }
        }
        let now = micro_now();
        let at = conn.ctx.clock.now();
        enum Send {
            Create(String, serde_json::Value),
            Patch(String, String, u32, String),
        }
        let mut sends = Vec::new();
        let mut out = Recorded::default();
        {
            let mut series = self
                .series
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Series over: their last counts written, then forgotten.
            series.retain(|_, s| {
                let over = at.duration_since(s.last_seen) >= FINISH;
                if over && s.count > s.written {
                    sends.push(Send::Patch(
                        s.namespace.clone(),
                        s.name.clone(),
                        s.count,
                        s.last_observed.clone(),
                    ));
                }
                !over
            });
            for e in &events {
                let key: Key = (
                    e.regarding.clone(),
                    e.reason,
                    e.action,
                    e.note.clone(),
                    e.type_.as_str(),
                );
                match series.get_mut(&key) {
                    Some(s) => {
                        s.count += 1;
                        s.last_seen = at;
                        s.last_observed.clone_from(&now);
                        if s.count == 2 || at.duration_since(s.last_written) >= REFRESH {
                            s.written = s.count;
                            s.last_written = at;
                            sends.push(Send::Patch(
                                s.namespace.clone(),
                                s.name.clone(),
                                s.count,
                                now.clone(),
                            ));
                        } else {
                            out.folded += 1;
                        }
                    }
                    _ => {
                        let namespace = if e.regarding.namespace.is_empty() {
                            "default".to_string()
                        } else {
                            e.regarding.namespace.clone()
                        };
                        let name = event_name(&e.regarding.name);
                        let body = self.body(e, &namespace, &name, &now);
                        series.insert(
                            key,
                            Series {
                                namespace: namespace.clone(),
                                name: name.clone(),
                                count: 1,
                                written: 1,
                                last_seen: at,
                                last_written: at,
                                last_observed: now.clone(),
                            },
                        );
                        sends.push(Send::Create(namespace, body));
                    }
                }
            }
        }
        let results: Vec<Result<bool, SendFailed>> =
            futures::stream::iter(sends.into_iter().map(|send| async move {
                match send {
                    Send::Create(ns, body) => {
                        let api: Api<k8s_openapi::api::events::v1::Event> = conn.namespaced(&ns);
                        let event: k8s_openapi::api::events::v1::Event =
                            serde_json::from_value(body)?;
                        let pp = PostParams::default();
                        crate::cluster::retry::retry(conn, || api.create(&pp, &event))
                            .await
                            .map(|_| true)
                            .map_err(SendFailed::Api)
                    }
                    Send::Patch(ns, name, count, observed) => {
                        let api: Api<k8s_openapi::api::events::v1::Event> = conn.namespaced(&ns);
                        let body =
                            json!({"series": {"count": count, "lastObservedTime": observed}});
                        let (pp, patch) = (PatchParams::default(), Patch::Merge(&body));
                        crate::cluster::retry::retry(conn, || api.patch(&name, &pp, &patch))
                            .await
                            .map(|_| false)
                            .map_err(SendFailed::Api)
                    }
                }
            }))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for r in results {
            match r {
                Ok(true) => out.created += 1,
                Ok(false) => out.patched += 1,
                Err(e) => {
                    out.failed += 1;
                    out.first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        out
    }
}

/// Why one Event could not be sent.
#[derive(Debug, thiserror::Error)]
enum SendFailed {
    /// The Event regops built does not read as one (a bug, not the cluster's doing).
    #[error("{0}")]
    Body(#[from] serde_json::Error),
    /// The API refused it, or could not be reached.
    #[error("{}", crate::errors::describe(.0))]
    Api(#[source] kube::Error),
}

/// The Lease a pass holds, as the object its summary Events are about.
pub fn lease(namespace: &str, name: &str) -> Regarding {
    Regarding {
        api_version: "coordination.k8s.io/v1".into(),
        kind: "Lease".into(),
        namespace: namespace.into(),
        name: name.into(),
        uid: None,
    }
}

/// The uid of each object as read (`observed`) or as written (`report`), for `regarding`.
pub fn uids(
    observed: &regops_core::observed::Observed,
    report: &regops_core::report::Report,
) -> HashMap<(regops_spec::kind::ObjectKind, String, String), String> {
    use regops_spec::kind::ObjectKind;
    let mut out = HashMap::new();
    for s in &observed.secrets {
        if let Some(uid) = &s.uid {
            out.insert(
                (ObjectKind::Secret, s.namespace.clone(), s.name.clone()),
                uid.clone(),
            );
        }
    }
    for s in &observed.service_accounts {
        if let Some(uid) = &s.uid {
            out.insert(
                (
                    ObjectKind::ServiceAccount,
                    s.namespace.clone(),
                    s.name.clone(),
                ),
                uid.clone(),
            );
        }
    }
    for w in &observed.workloads {
        if let Some(uid) = &w.uid {
            out.insert(
                (w.kind.into(), w.namespace.clone(), w.name.clone()),
                uid.clone(),
            );
        }
    }
    // A Secret made anew (created, replaced) has the uid its write answered with.
    for r in &report.results {
        if let Some(uid) = &r.uid {
            out.insert((r.kind, r.namespace.clone(), r.name.clone()), uid.clone());
        }
    }
    out
}

impl Recorder {
    /// Records the Events of one apply (nothing for a dry run: nothing was done).
    pub async fn record_apply(
        &self,
        conn: &Connection,
        plan: &regops_core::plan::Plan,
        report: &regops_core::report::Report,
        observed: &regops_core::observed::Observed,
        lease: Option<Regarding>,
    ) -> Recorded {
        let uids = uids(observed, report);
        let pass = regops_core::events::of_apply(
            plan,
            report,
            &|kind, ns, name| uids.get(&(kind, ns.to_string(), name.to_string())).cloned(),
            regops_core::events::PER_REASON,
        );
        self.record(conn, pass, lease).await
    }
}

impl Recorded {
    /// A warning to show when some Events could not be recorded (the apply itself is not
    /// affected).
    pub fn warning(&self) -> Option<String> {
        (self.failed > 0).then(|| {
            format!(
                "{} Event{} could not be recorded (the apply is not affected): {}",
                self.failed,
                if self.failed == 1 { "" } else { "s" },
                self.first_error.as_deref().unwrap_or("no reason given")
            )
        })
    }
}
