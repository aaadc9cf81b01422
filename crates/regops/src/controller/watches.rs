//! Watching the cluster for what `apply --watch` reacts to, and the queue of work it feeds.
//!
//! One watch per resource the spec depends on:
//! - namespaces (metadata only): a new namespace, or one relabelled or re-annotated into or
//!   out of a scope;
//! - the Secrets regops owns (metadata only: their data never reaches regops through a
//!   watch): one deleted or edited by hand;
//! - ServiceAccounts, when a binding names some (only the named ones count);
//! - each workload kind a binding selects.
//!
//! An event only names a namespace for the [`Queue`]; the namespace is then planned and
//! applied with the same code as a full apply. A watch starts from the resourceVersion of a
//! one-item LIST made before the full apply that follows it, so no change between the two is
//! missed. It resumes from the last resourceVersion seen (bookmarks keep that fresh). On
//! `410 Gone` (the version is too old to resume from) it lists again and asks for a full
//! apply, since events in between are lost; after any other error it resumes after a capped
//! exponential backoff. Status-only updates (a Deployment scaling, a namespace's phase) do not
//! count: each watch keeps a small fingerprint (two integers) of what planning reads, per object
//! it has seen change, and ignores events that leave it as it was.
//!
//! A watch holds at most `--max-list-items` objects ([`crate::cluster::read::ListLimits`]), so a
//! server whose watch only ever adds new objects cannot grow regops' memory: past the cap the
//! watch says so (an error naming the flag), forgets what it held, and lists again after a
//! backoff of its own, then a full apply (whose LISTs keep to the same limits). The queue holds
//! at most [`FULL_AFTER`] namespaces; past that they are one full apply.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use kube::api::{ListParams, WatchParams};
use regops_core::fingerprint;
use regops_core::observed::{Observed, wire};
use regops_core::ownership::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use regops_spec::kind::ObjectKind;
use regops_spec::{Spec, WorkloadKind};
use serde::Deserialize;

use crate::cluster::Connection;
use crate::controller::metrics::Metrics;

/// Up to this many namespaces are planned together in one fast pass (each is read with
/// namespaced LISTs, as `-n` does).
pub const BATCH: usize = crate::cluster::read::NAMESPACED_READ_MAX;

/// With more namespaces than this waiting, one full apply (a few LISTs per kind) costs less
/// than namespace passes (a few LISTs per namespace).
pub const FULL_AFTER: usize = 8 * BATCH;

/// What the controller does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Work {
    /// Read the whole cluster and apply (at the start, on resync, after a relist or a reload).
    Full,
    /// Plan and apply only these namespaces.
    Namespaces(BTreeSet<String>),
}

/// Namespaces waiting to be planned, deduplicated, and whether a full apply is due: memory is
/// bounded by the namespaces, however many events name them.
#[derive(Default)]
pub struct Queue {
    state: Mutex<QueueState>,
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct QueueState {
    dirty: BTreeSet<String>,
    full: bool,
}

impl Queue {
    fn state(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // A panic while holding the lock cannot leave the set half-changed: take it as it is.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Something in `namespace` changed. Past [`FULL_AFTER`] namespaces waiting, they are
    /// one full apply (as [`Queue::take`] would make them), so the set never grows past it
    /// however many namespaces the events name while a pass runs.
    pub fn touch(&self, namespace: &str) {
        let mut s = self.state();
        if !s.full && !s.dirty.contains(namespace) {
            s.dirty.insert(namespace.to_string());
        }
        if s.dirty.len() > FULL_AFTER {
            s.full = true;
            s.dirty.clear();
        }
        drop(s);
        self.wake.notify_one();
    }

    /// A full apply is due.
    pub fn full(&self) {
        self.state().full = true;
        self.wake.notify_one();
    }

    /// The next piece of work, if any. A full apply covers every namespace waiting, so it
    /// empties the set; namespaces touched while it runs are planned after it.
    pub fn take(&self) -> Option<Work> {
        let mut s = self.state();
        if s.full || s.dirty.len() > FULL_AFTER {
            s.full = false;
            s.dirty.clear();
            return Some(Work::Full);
        }
        if s.dirty.is_empty() {
            return None;
        }
        let mut batch = BTreeSet::new();
        while batch.len() < BATCH {
            let Some(ns) = s.dirty.pop_first() else { break };
            batch.insert(ns);
        }
        Some(Work::Namespaces(batch))
    }

    /// Waits until something is queued (or [`Queue::wake`] is called).
    pub async fn wait(&self) {
        self.wake.notified().await;
    }

    /// Wakes a [`Queue::wait`] with nothing queued (to look at a stop flag).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// After a failure (a full read, a namespace's write, a token), the controller's retry waits
/// this long, doubling with each failure in a row up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(2);
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// Retries, each key (a namespace, a minted credential) with its own exponential backoff, as
/// kube-runtime's `error_policy` requeues one object and client-go's workqueue rate-limits
/// one item: a failure waits `first`, doubling with each failure in a row up to `max`; a
/// success forgets the key. One namespace that keeps failing costs a pass of its own now and
/// then, never a full apply of the cluster. Pure: the caller gives the time.
#[derive(Debug)]
pub struct Retries {
    first: Duration,
    max: Duration,
    waiting: BTreeMap<String, Retry>,
}

#[derive(Debug)]
struct Retry {
    failures: u32,
    due: Option<Instant>,
}

impl Retries {
    pub fn new(first: Duration, max: Duration) -> Retries {
        Retries {
            first,
            max,
            waiting: BTreeMap::new(),
        }
    }

    /// `key` failed at `now`: it is due again after its backoff, which is returned.
    pub fn failed(&mut self, key: &str, now: Instant) -> Duration {
        let r = self.waiting.entry(key.to_string()).or_insert(Retry {
            failures: 0,
            due: None,
        });
        let wait = self
            .first
            .checked_mul(1u32 << r.failures.min(20))
            .map_or(self.max, |w| w.min(self.max));
        r.failures = r.failures.saturating_add(1);
        r.due = Some(now + wait);
        wait
    }

    /// `key` succeeded: its backoff starts again from `first` at its next failure.
    pub fn succeeded(&mut self, key: &str) {
        self.waiting.remove(key);
    }

    /// Keeps only the keys `keep` says (after a full pass: the ones that failed again).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.waiting.retain(|k, _| keep(k));
    }

    /// Whether `key` is waiting for a retry.
    pub fn waiting(&self, key: &str) -> bool {
        self.waiting.get(key).is_some_and(|r| r.due.is_some())
    }

    /// The keys due at `now`, each taken once (its failure count is kept until it succeeds).
    pub fn take_due(&mut self, now: Instant) -> Vec<String> {
        let mut due = Vec::new();
        for (k, r) in &mut self.waiting {
            if r.due.is_some_and(|d| d <= now) {
                r.due = None;
                due.push(k.clone());
            }
        }
        due
    }

    /// When the next key comes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.waiting.values().filter_map(|r| r.due).min()
    }

    /// How many keys wait for a retry.
    pub fn len(&self) -> usize {
        self.waiting.values().filter(|r| r.due.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The fingerprints of the objects the watches and the last reads have seen (see
/// [`regops_core::fingerprint`]), by kind: an event whose object reads as before calls for
/// nothing. A full apply replaces them all with what it read, so they follow the cluster, not
/// the events: about 24 bytes per namespace, ServiceAccount and workload watched. A watch adds
/// an object only while its kind holds fewer than its cap (`--max-list-items`): a server whose
/// watch only ever adds objects cannot grow them without bound.
#[derive(Default)]
pub struct Prints {
    known: Mutex<HashMap<&'static str, HashMap<u64, u64>>>,
}

type Known = HashMap<&'static str, HashMap<u64, u64>>;

impl Prints {
    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        // Plain integers: a panic elsewhere cannot leave them inconsistent.
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After a full read: exactly what it saw.
    pub fn reset(&self, prints: impl Iterator<Item = (&'static str, (u64, u64))>) {
        let mut fresh = Known::new();
        for (kind, (key, print)) in prints {
            fresh.entry(kind).or_default().insert(key, print);
        }
        *self.known() = fresh;
    }

    /// After a read of some namespaces: what it saw there.
    pub fn update(&self, prints: impl Iterator<Item = (&'static str, (u64, u64))>) {
        let mut known = self.known();
        for (kind, (key, print)) in prints {
            known.entry(kind).or_default().insert(key, print);
        }
    }

    /// Records an object's fingerprint; whether it differs from the one known (or none was).
    /// `None`, recording nothing, for an object not known when `cap` of its kind are.
    fn changed(&self, kind: &'static str, key: u64, print: u64, cap: usize) -> Option<bool> {
        let mut known = self.known();
        let of_kind = known.entry(kind).or_default();
        if !of_kind.contains_key(&key) && of_kind.len() >= cap {
            return None;
        }
        Some(of_kind.insert(key, print) != Some(print))
    }

    fn forget(&self, kind: &'static str, key: u64) {
        if let Some(of_kind) = self.known().get_mut(kind) {
            of_kind.remove(&key);
        }
    }

    /// Forgets every object of `kind` (its watch went past its cap; the full apply that
    /// follows reads them again).
    fn forget_kind(&self, kind: &'static str) {
        self.known().remove(kind);
    }

    pub fn len(&self) -> usize {
        self.known().values().map(HashMap::len).sum()
    }

    /// How many objects of `kind` are known.
    pub fn len_of(&self, kind: &str) -> usize {
        self.known().get(kind).map_or(0, HashMap::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which objects of a watched resource count.
#[derive(Clone, Debug)]
enum Filter {
    /// Every object.
    All,
    /// ServiceAccounts with one of these names.
    Named(BTreeSet<String>),
}

/// One resource to watch.
#[derive(Clone, Debug)]
pub struct Watched {
    /// The resource's plural, for logs and metrics.
    pub resource: &'static str,
    /// The kind the items are (`Namespace`, `Deployment`).
    kind: &'static str,
    namespaces: bool,
    path: String,
    labels: Option<String>,
    metadata_only: bool,
    filter: Filter,
    /// For a kind a spec declares, where its pod template is: events are read as unstructured
    /// JSON ([`wire::Object::unstructured`]), as its LIST pages are.
    declared_template: Option<&'static [&'static str]>,
}

/// What `spec` depends on, as watches: see the module's documentation.
pub fn watched(spec: &Spec) -> Vec<Watched> {
    let mut out = vec![
        Watched {
            resource: "namespaces",
            kind: "Namespace",
            namespaces: true,
            path: "/api/v1/namespaces".into(),
            labels: None,
            metadata_only: true,
            filter: Filter::All,
            declared_template: None,
        },
        Watched {
            resource: "secrets",
            kind: "Secret",
            namespaces: false,
            path: ObjectKind::Secret.collection_path(None),
            labels: Some(format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")),
            metadata_only: true,
            filter: Filter::All,
            declared_template: None,
        },
    ];
    let names: BTreeSet<String> = spec
        .bindings
        .iter()
        .flat_map(|b| b.service_accounts.iter().map(|s| s.value.clone()))
        .collect();
    if !names.is_empty() {
        out.push(Watched {
            resource: "serviceaccounts",
            kind: "ServiceAccount",
            namespaces: false,
            path: ObjectKind::ServiceAccount.collection_path(None),
            labels: None,
            metadata_only: false,
            filter: Filter::Named(names),
            declared_template: None,
        });
    }
    let mut kinds: BTreeSet<WorkloadKind> = BTreeSet::new();
    for w in spec.bindings.iter().filter_map(|b| b.workloads.as_ref()) {
        kinds.extend(w.selected_kinds());
    }
    for k in kinds {
        let kind = ObjectKind::from(k);
        out.push(Watched {
            resource: kind.facts().plural,
            kind: kind.facts().name,
            namespaces: false,
            path: kind.collection_path(None),
            labels: None,
            metadata_only: false,
            filter: Filter::All,
            declared_template: kind.is_declared().then(|| k.facts().template.path()),
        });
    }
    out
}

/// What a watch event is: its type and object (read as LIST items are).
struct Event {
    type_: String,
    object: wire::Object,
}

/// A watch would hold more objects than its cap (`--max-list-items`).
#[derive(Debug, PartialEq, Eq)]
struct OverCap;

/// Whether an event calls for planning its namespace, and which; [`OverCap`] for an object
/// new to a watch that holds `cap` objects already.
fn relevant(
    w: &Watched,
    event: Event,
    prints: &Prints,
    cap: usize,
) -> Result<Option<String>, OverCap> {
    let meta = &event.object.metadata;
    let Some(name) = meta.name.clone() else {
        return Ok(None);
    };
    if let Filter::Named(names) = &w.filter
        && !names.contains(&name)
    {
        return Ok(None);
    }
    let namespace = if w.namespaces {
        name.clone()
    } else {
        let Some(ns) = meta.namespace.clone() else {
            return Ok(None);
        };
        ns
    };
    let key = fingerprint::key(w.kind, if w.namespaces { "" } else { &namespace }, &name);
    match event.type_.as_str() {
        // A namespace, ServiceAccount or workload that is gone needs nothing; a Secret of
        // regops' that is gone must be put back.
        "DELETED" => {
            prints.forget(w.kind, key);
            return Ok((w.resource == "secrets").then_some(namespace));
        }
        // Regops' own creates are ADDED events; edits by hand are the drift.
        _ if w.resource == "secrets" => return Ok((event.type_ != "ADDED").then_some(namespace)),
        _ => {}
    }
    // The watch says what the items are; metadata-only items call themselves
    // `PartialObjectMetadata`.
    let mut object = event.object;
    object.kind = None;
    let mut one = Observed::default();
    one.push(0, Some(w.kind), object, &mut Vec::new());
    if one.namespaces.iter().any(|n| n.terminating) {
        return Ok(None);
    }
    let Some((key, print)) = fingerprint::only(&one) else {
        return Ok(None);
    };
    let changed = prints.changed(w.kind, key, print, cap).ok_or(OverCap)?;
    Ok(changed.then_some(namespace))
}

/// A capped exponential backoff with jitter: 200 ms doubling to 30 s.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(30);

    fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    async fn wait(&mut self) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // Not for security: spreads the watches of several replicas apart.
        let jitter = 0.75 + f64::from(nanos % 500) / 1000.0;
        tokio::time::sleep(self.next.mul_f64(jitter)).await;
        self.next = (self.next * 2).min(Self::MAX);
    }
}

#[derive(Deserialize)]
struct ListHead {
    metadata: ListHeadMeta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListHeadMeta {
    resource_version: String,
}

/// The resourceVersion to watch from: a one-item LIST's, read within the size of one watch
/// event and the time a LIST may take (`--list-timeout`).
async fn current_version(conn: &Connection, w: &Watched) -> Result<String, kube::Error> {
    let request = kube::core::Request::new(w.path.as_str());
    let mut lp = ListParams::default().limit(1);
    if let Some(l) = &w.labels {
        lp = lp.labels(l);
    }
    let read = crate::cluster::retry::retry(conn, || async {
        let req = if w.metadata_only {
            request.list_metadata(&lp)
        } else {
            request.list(&lp)
        }
        .map_err(kube::Error::BuildRequest)?;
        let body = conn.client.request_stream(req).await?;
        let mut body = std::pin::pin!(body);
        let mut buf = Vec::new();
        crate::bounded::read_to_end(&mut body, &mut buf, crate::bounded::EVENT_LIMIT)
            .await
            .map_err(|e| kube::Error::Service(Box::new(e)))?;
        let head: ListHead = serde_json::from_slice(&buf).map_err(kube::Error::SerdeError)?;
        Ok(head.metadata.resource_version)
    });
    let time = conn.ctx.list_limits.time;
    tokio::time::timeout(time, read).await.map_err(|_| {
        kube::Error::Service(Box::new(std::io::Error::other(format!(
            "the LIST {}",
            crate::cluster::read::Exceeded::Time(time)
        ))))
    })?
}

/// How long one watch request lasts before it is renewed (the server ends it then): three to
/// four minutes, spread so that the watches of a process do not all renew at once.
fn watch_timeout(resource: &str) -> u32 {
    let mut h = DefaultHasher::new();
    resource.hash(&mut h);
    std::process::id().hash(&mut h);
    180 + u32::try_from(h.finish() % 60).unwrap_or(0)
}

/// A watch whose server has not ended it this long after its own timeout is taken as a
/// connection that died without a word, and is resumed.
const SILENCE_GRACE: Duration = Duration::from_secs(30);

/// Why a watch request ended.
enum Ended {
    /// The server closed it (its timeout): resume from the last version.
    Closed,
    /// The version is too old (410): list again.
    Expired,
    /// A failed request or a broken stream: resume after a backoff.
    Failed(String),
    /// The watch went past its cap of objects (`--max-list-items`): forget them, list again
    /// after a backoff of its own (the events that filled it reset the other), then a full
    /// apply.
    OverCap,
}

/// What one watch shares with the controller.
#[derive(Clone)]
pub struct Shared {
    pub queue: Arc<Queue>,
    pub prints: Arc<Prints>,
    pub metrics: Arc<Metrics>,
    /// A warning, and an error, in the controller's log.
    pub log: Arc<dyn Fn(&str) + Send + Sync>,
    pub error: Arc<dyn Fn(&str) + Send + Sync>,
}

/// Watches one resource until `stop`, touching the queue with each namespace an event calls
/// for; starts from `version` (taken before the full apply the caller runs next).
pub async fn run(
    conn: Connection,
    w: Watched,
    mut version: String,
    shared: Shared,
    stop: Arc<AtomicBool>,
) {
    let mut backoff = Backoff::new();
    let request = kube::core::Request::new(w.path.as_str());
    let mut params = WatchParams::default().timeout(watch_timeout(w.resource));
    // Bookmarks (`allowWatchBookmarks=true`, on by default in WatchParams) keep the version to
    // resume from fresh on a quiet watch.
    params.bookmarks = true;
    if let Some(l) = &w.labels {
        params = params.labels(l);
    }
    // Resuming from the last version loses nothing (the server answers 410 when it cannot);
    // after this many failed watches in a row, regops lists again all the same, as
    // client-go's reflector does after a watch error.
    const RELIST_AFTER: u32 = 3;
    let mut failures = 0;
    let cap = conn.ctx.list_limits.items;
    let mut over_cap = Backoff::new();
    while !stop.load(Ordering::SeqCst) {
        let ended = watch_once(
            &conn,
            &w,
            &request,
            &params,
            &mut version,
            &shared,
            &mut backoff,
        )
        .await;
        // What happened, as counted, and whether to list again.
        let (reason, relist) = match &ended {
            Ended::Closed => ("closed", false),
            Ended::Expired => ("expired", true),
            Ended::Failed(_) => ("error", failures + 1 >= RELIST_AFTER),
            Ended::OverCap => ("limit", true),
        };
        shared.metrics.watch_restart(w.resource, reason);
        match ended {
            Ended::Closed => {
                failures = 0;
                over_cap.reset();
            }
            Ended::Failed(why) if !relist => {
                failures += 1;
                (shared.log)(&format!("watch of {} failed ({why}); resuming", w.resource));
                backoff.wait().await;
            }
            Ended::Failed(_) | Ended::Expired | Ended::OverCap => {
                if matches!(ended, Ended::OverCap) {
                    shared.prints.forget_kind(w.kind);
                    (shared.error)(&format!(
                        "the watch of {} {}",
                        w.resource,
                        crate::cluster::read::Exceeded::Items(cap)
                    ));
                    over_cap.wait().await;
                }
                if failures > 0 {
                    backoff.wait().await;
                }
                failures = 0;
                (shared.log)(&format!(
                    "watch of {}: listing again, then a full apply ({})",
                    w.resource,
                    if reason == "expired" {
                        "410 Gone: the version is too old to resume from".to_string()
                    } else if reason == "limit" {
                        format!("past {} objects", crate::cluster::read::thousands(cap))
                    } else {
                        format!("{RELIST_AFTER} failed watches in a row")
                    }
                ));
                loop {
                    match current_version(&conn, &w).await {
                        Ok(v) => {
                            version = v;
                            break;
                        }
                        Err(e) => {
                            (shared.log)(&format!("cannot list {} again: {e}", w.resource));
                            backoff.wait().await;
                            if stop.load(Ordering::SeqCst) {
                                return;
                            }
                        }
                    }
                }
                // Events between the old version and the new one may be lost.
                shared.queue.full();
            }
        }
    }
}

/// One watch request, read line by line (one event per line) to its end, or until it would
/// hold more than `--max-list-items` objects.
async fn watch_once(
    conn: &Connection,
    w: &Watched,
    request: &kube::core::Request,
    params: &WatchParams,
    version: &mut String,
    shared: &Shared,
    backoff: &mut Backoff,
) -> Ended {
    let built = if w.metadata_only {
        request.watch_metadata(params, version)
    } else {
        request.watch(params, version)
    };
    let req = match built {
        Ok(r) => r,
        Err(e) => return Ended::Failed(e.to_string()),
    };
    let body = match conn.client.request_stream(req).await {
        Ok(b) => b,
        Err(kube::Error::Api(s)) if s.code == 410 => return Ended::Expired,
        Err(e) => return Ended::Failed(crate::errors::describe(&e)),
    };
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(u64::from(params.timeout.unwrap_or(0)))
        + SILENCE_GRACE;
    let mut body = std::pin::pin!(body);
    let mut line = Vec::new();
    let cap = usize::try_from(conn.ctx.list_limits.items).unwrap_or(usize::MAX);
    loop {
        let next = crate::bounded::next_line(&mut body, &mut line, crate::bounded::EVENT_LIMIT);
        match tokio::time::timeout_at(deadline, next).await {
            Err(_) => {
                return Ended::Failed("the server sent nothing past the watch's timeout".into());
            }
            Ok(Ok(false)) => return Ended::Closed,
            Ok(Err(e)) => return Ended::Failed(format!("a watch event: {e}")),
            Ok(Ok(true)) => {}
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&line) else {
            return Ended::Failed("an event that is not JSON".into());
        };
        let type_ = value["type"].as_str().unwrap_or("").to_string();
        let object = value["object"].take();
        match type_.as_str() {
            "ERROR" if object["code"] == 410 => return Ended::Expired,
            "ERROR" => {
                return Ended::Failed(format!(
                    "{} {}",
                    object["code"],
                    object["message"].as_str().unwrap_or("")
                ));
            }
            "BOOKMARK" => {
                if let Some(v) = object["metadata"]["resourceVersion"].as_str() {
                    v.clone_into(version);
                }
                backoff.reset();
            }
            "ADDED" | "MODIFIED" | "DELETED" => {
                backoff.reset();
                let read = match w.declared_template {
                    None => wire::Object::from_value(&object),
                    Some(template) => wire::Object::unstructured(template, object),
                };
                let Ok(object) = read else {
                    continue;
                };
                if let Some(v) = &object.metadata.resource_version {
                    version.clone_from(v);
                }
                match relevant(w, Event { type_, object }, &shared.prints, cap) {
                    Ok(Some(ns)) => shared.queue.touch(&ns),
                    Ok(None) => {}
                    Err(OverCap) => return Ended::OverCap,
                }
            }
            _ => {}
        }
    }
}

/// The resourceVersion each watch starts from, read before the full apply that follows.
pub async fn versions(conn: &Connection, watched: &[Watched]) -> Result<Vec<String>, kube::Error> {
    let mut out = Vec::with_capacity(watched.len());
    for w in watched {
        out.push(current_version(conn, w).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Ten minutes of simulated time with one namespace failing at every pass and a thousand
    /// others fine, with the controller's backoff: the failing one is retried 8 times (after
    /// 2, 4, 8 ... 256 s), and nothing else is ever due. Each retry is a pass over that one
    /// namespace, at most 20 requests (asserted from the server's log by
    /// `tests/it/watch.rs::one_namespace_refused_forever_is_retried_alone_with_backoff`), so the
    /// bound is 8 x 20 = 160 requests in ten minutes; a full apply per failure cost about 148
    /// LISTs at 10,000 namespaces each time, every 5 minutes, for ever.
    #[test]
    fn one_namespace_failing_forever_is_retried_eight_times_in_ten_minutes() {
        let mut r = Retries::new(RETRY_FIRST, RETRY_MAX);
        let start = Instant::now();
        let mut now = start;
        r.failed("bad", now);
        for i in 0..1000 {
            r.succeeded(&format!("ns-{i}"));
        }
        let mut attempts = Vec::new();
        let end = start + Duration::from_secs(600);
        while let Some(at) = r.next_due() {
            if at > end {
                break;
            }
            now = at;
            let due = r.take_due(now);
            assert_eq!(due, ["bad"]);
            attempts.push(now.duration_since(start).as_secs());
            r.failed("bad", now);
        }
        assert_eq!(attempts, [2, 6, 14, 30, 62, 126, 254, 510]);
        const REQUESTS_PER_RETRY: usize = 20;
        assert!(attempts.len() * REQUESTS_PER_RETRY <= 160);
        assert_eq!(r.len(), 1);
        // A success forgets it: the next failure waits the first backoff again.
        r.succeeded("bad");
        assert!(r.is_empty() && r.next_due().is_none());
        assert_eq!(r.failed("bad", now), RETRY_FIRST);
    }

    #[test]
    fn retries_are_taken_once_and_kept_until_they_succeed() {
        let mut r = Retries::new(Duration::from_secs(2), Duration::from_secs(60));
        let t = Instant::now();
        assert_eq!(r.failed("a", t), Duration::from_secs(2));
        assert_eq!(r.failed("b", t), Duration::from_secs(2));
        assert!(r.take_due(t + Duration::from_secs(1)).is_empty());
        assert_eq!(r.take_due(t + Duration::from_secs(2)), ["a", "b"]);
        assert!(
            r.take_due(t + Duration::from_secs(3)).is_empty(),
            "taken once"
        );
        assert!(!r.waiting("a"));
        // b failed again: 4 s now; a is dropped by a full pass that found it fine.
        assert_eq!(
            r.failed("b", t + Duration::from_secs(3)),
            Duration::from_secs(4)
        );
        r.retain(|k| k == "b");
        assert_eq!(r.failed("a", t), Duration::from_secs(2), "a starts over");
        for _ in 0..40 {
            r.failed("b", t);
        }
        assert_eq!(r.failed("b", t), Duration::from_secs(60), "capped");
    }

    /// Whether an event calls for a pass, with no cap on what a watch holds.
    fn relevant(w: &Watched, event: Event, prints: &Prints) -> Option<String> {
        super::relevant(w, event, prints, usize::MAX).unwrap()
    }

    /// A watch that only ever adds objects holds at most its cap of them: the first object
    /// past it is refused (and recorded nowhere); objects it knows still count; a deletion
    /// makes room; the other kinds have caps of their own.
    #[test]
    fn a_watch_holds_at_most_its_cap_of_objects() {
        let w = watched(&spec(SPEC));
        let (ns, deploys) = (&w[0], &w[3]);
        let prints = Prints::default();
        let named = |name: &str, team: &str| {
            event(
                "ADDED",
                serde_json::json!({"metadata": {"name": name, "labels": {"team": team}}}),
            )
        };
        for i in 0..3 {
            assert_eq!(
                super::relevant(ns, named(&format!("n{i}"), "web"), &prints, 3),
                Ok(Some(format!("n{i}")))
            );
        }
        assert_eq!(
            super::relevant(ns, named("n3", "web"), &prints, 3),
            Err(OverCap)
        );
        assert_eq!(prints.len_of("Namespace"), 3);
        assert_eq!(
            super::relevant(ns, named("n0", "api"), &prints, 3),
            Ok(Some("n0".into())),
            "a known object still counts"
        );
        super::relevant(
            ns,
            event("DELETED", serde_json::json!({"metadata": {"name": "n1"}})),
            &prints,
            3,
        )
        .unwrap();
        assert_eq!(
            super::relevant(ns, named("n3", "web"), &prints, 3),
            Ok(Some("n3".into()))
        );
        let deploy = serde_json::json!({"metadata": {"name": "d", "namespace": "a"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        assert_eq!(
            super::relevant(deploys, event("ADDED", deploy), &prints, 3),
            Ok(Some("a".into()))
        );
        prints.forget_kind("Namespace");
        assert_eq!((prints.len_of("Namespace"), prints.len()), (0, 1));
    }

    /// However many namespaces events name while a pass runs, the queue holds at most
    /// FULL_AFTER of them: past it, one full apply.
    #[test]
    fn the_queue_stays_bounded() {
        let q = Queue::default();
        for i in 0..10 * FULL_AFTER {
            q.touch(&format!("ns-{i}"));
            assert!(q.state().dirty.len() <= FULL_AFTER);
        }
        assert_eq!(q.take(), Some(Work::Full));
        assert_eq!(q.take(), None);
    }

    fn event(kind: &str, json: serde_json::Value) -> Event {
        Event {
            type_: kind.into(),
            object: wire::Object::from_value(&json).unwrap(),
        }
    }

    fn spec(yaml: &str) -> Spec {
        let mut sources = regops_spec::Sources::default();
        sources.add(
            "t.yaml".into(),
            yaml.into(),
            regops_spec::source::SpecFormat::Yaml,
        );
        regops_spec::load(sources, "t").ok().unwrap().spec
    }

    const SPEC: &str = "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: t }
registries:
  harbor: { server: harbor.example.com, credential: robot }
credentials:
  robot: { username: robot, password: { env: T } }
scopes:
  web: { selector: { matchLabels: { team: web } } }
pullSecrets:
  harbor-pull: { registries: [harbor], scope: web }
bindings:
  - { pullSecret: harbor-pull, serviceAccounts: [default, builder] }
  - { pullSecret: harbor-pull, workloads: { kinds: [Deployment, CronJob] } }
";

    #[test]
    fn the_watches_follow_the_bindings() {
        let w = watched(&spec(SPEC));
        let names: Vec<&str> = w.iter().map(|w| w.resource).collect();
        assert_eq!(
            names,
            [
                "namespaces",
                "secrets",
                "serviceaccounts",
                "deployments",
                "cronjobs"
            ]
        );
        assert_eq!(
            w[1].labels.as_deref(),
            Some("app.kubernetes.io/managed-by=regops")
        );
        assert!(w[0].metadata_only && w[1].metadata_only && !w[2].metadata_only);
        let bare = SPEC.replace(
            "  - { pullSecret: harbor-pull, serviceAccounts: [default, builder] }\n",
            "",
        );
        let names: Vec<&str> = watched(&spec(&bare)).iter().map(|w| w.resource).collect();
        assert_eq!(names, ["namespaces", "secrets", "deployments", "cronjobs"]);
    }

    #[test]
    fn only_changes_planning_reads_call_for_a_pass() {
        let w = watched(&spec(SPEC));
        let (ns, sas, deploys) = (&w[0], &w[2], &w[3]);
        let prints = Prints::default();
        let team = |labels: serde_json::Value| serde_json::json!({"metadata": {"name": "a", "resourceVersion": "5", "labels": labels}});
        // A new namespace; then a status-only change (same labels): ignored.
        assert_eq!(
            relevant(
                ns,
                event("ADDED", team(serde_json::json!({"team": "web"}))),
                &prints
            ),
            Some("a".into())
        );
        assert_eq!(
            relevant(
                ns,
                event("MODIFIED", team(serde_json::json!({"team": "web"}))),
                &prints
            ),
            None
        );
        // Relabelled: a pass (in or out of scope).
        assert_eq!(
            relevant(
                ns,
                event("MODIFIED", team(serde_json::json!({"team": "api"}))),
                &prints
            ),
            Some("a".into())
        );
        // Being deleted, or gone: nothing to do.
        let deleting = serde_json::json!({"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z", "labels": {"team": "x"}}});
        assert_eq!(
            relevant(ns, event("MODIFIED", deleting.clone()), &prints),
            None
        );
        assert_eq!(relevant(ns, event("DELETED", deleting), &prints), None);

        // ServiceAccounts: only the names the bindings give.
        let sa = |name: &str, entries: serde_json::Value| serde_json::json!({"metadata": {"name": name, "namespace": "a"}, "imagePullSecrets": entries});
        let prints = Prints::default();
        assert_eq!(
            relevant(
                sas,
                event("ADDED", sa("other", serde_json::json!([]))),
                &prints
            ),
            None
        );
        assert_eq!(
            relevant(
                sas,
                event("ADDED", sa("builder", serde_json::json!([]))),
                &prints
            ),
            Some("a".into())
        );
        // Its entry removed by hand: a pass.
        assert_eq!(
            relevant(
                sas,
                event(
                    "MODIFIED",
                    sa("builder", serde_json::json!([{"name": "x"}]))
                ),
                &prints
            ),
            Some("a".into())
        );
        assert_eq!(
            relevant(
                sas,
                event("DELETED", sa("builder", serde_json::json!([]))),
                &prints
            ),
            None
        );

        // A Deployment: scaling and status do not count, a new image does.
        let deploy = |replicas: u32, image: &str| {
            serde_json::json!({"metadata": {"name": "d", "namespace": "a"}, "spec": {"replicas": replicas,
              "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}, "status": {"replicas": replicas}})
        };
        let prints = Prints::default();
        assert!(relevant(deploys, event("MODIFIED", deploy(1, "nginx")), &prints).is_some());
        assert!(relevant(deploys, event("MODIFIED", deploy(3, "nginx")), &prints).is_none());
        assert!(
            relevant(
                deploys,
                event("MODIFIED", deploy(3, "harbor.example.com/web")),
                &prints
            )
            .is_some()
        );
    }

    /// The objects a full read saw are known: their first status-only event is no pass (the
    /// read and the event are fingerprinted alike).
    #[test]
    fn a_full_read_makes_objects_known() {
        let w = watched(&spec(SPEC));
        let deploys = &w[3];
        let deploy = |replicas: u32| {
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "d", "namespace": "a", "labels": {"app": "d"}},
              "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
        };
        let prints = Prints::default();
        let (read, _) = Observed::from_objects(&[deploy(1)]);
        prints.reset(fingerprint::all_by_kind(&read));
        assert_eq!(prints.len(), 1);
        assert_eq!(
            relevant(deploys, event("MODIFIED", deploy(4)), &prints),
            None
        );
        // Unknown to the read (a reset forgets what it did not see): a pass.
        prints.reset(std::iter::empty());
        assert!(relevant(deploys, event("MODIFIED", deploy(4)), &prints).is_some());
    }

    #[test]
    fn regops_secrets_count_when_edited_or_deleted() {
        let w = watched(&spec(SPEC));
        let secrets = &w[1];
        let s = serde_json::json!({"metadata": {"name": "harbor-pull", "namespace": "a"}});
        let prints = Prints::default();
        assert_eq!(relevant(secrets, event("ADDED", s.clone()), &prints), None);
        assert_eq!(
            relevant(secrets, event("MODIFIED", s.clone()), &prints),
            Some("a".into())
        );
        assert_eq!(
            relevant(secrets, event("DELETED", s), &prints),
            Some("a".into())
        );
    }

    #[test]
    fn the_queue_batches_namespaces_and_a_full_apply_covers_them() {
        let q = Queue::default();
        assert_eq!(q.take(), None);
        for i in 0..10 {
            q.touch(&format!("ns-{i:02}"));
            q.touch(&format!("ns-{i:02}"));
        }
        let Some(Work::Namespaces(first)) = q.take() else {
            panic!()
        };
        assert_eq!(first.len(), BATCH);
        let Some(Work::Namespaces(rest)) = q.take() else {
            panic!()
        };
        assert_eq!(rest.len(), 10 - BATCH);
        assert_eq!(q.take(), None);
        q.touch("a");
        q.full();
        assert_eq!(q.take(), Some(Work::Full));
        assert_eq!(q.take(), None, "the full apply covered `a`");
        for i in 0..=FULL_AFTER {
            q.touch(&format!("ns-{i}"));
        }
        assert_eq!(
            q.take(),
            Some(Work::Full),
            "past FULL_AFTER, one full apply"
        );
    }
}
