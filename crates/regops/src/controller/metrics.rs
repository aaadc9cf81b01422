//! What `apply --watch` counts, and its Prometheus text form (served on `/metrics`).
//!
//! Every series carries the spec's name (`spec="…"`), as the drift metrics file does, and for a
//! spec with `clusters` the cluster's (`cluster="…"`):
//! - `regops_leader`: 1 while this replica holds the Lease and writes, else 0;
//! - `regops_ready`: 1 once the first full apply has ended (or while waiting as a standby);
//! - `regops_reconciles_total{scope="full|namespaces",outcome="success|failure"}`;
//! - `regops_reconcile_duration_seconds{scope}`: a histogram of passes (read, plan, write);
//! - `regops_writes_total{outcome="applied|failed|skipped"}`: writes carried out;
//! - `regops_objects_in_drift`: objects the latest full apply found out of step (before writing);
//! - `regops_conflicts`: conflicts the latest full apply found (left alone, for a person);
//! - `regops_watch_restarts_total{resource,reason="closed|expired|error|limit"}`;
//! - `regops_spec_reloads_total{outcome="success|failure"}`;
//! - `regops_spec_valid`: 1 while the spec files as they are now are the spec in force, 0 while
//!   a version that failed to load is kept out (the last good spec stays in force);
//! - `regops_spec_last_reload_timestamp_seconds`: when the spec files were last read again;
//! - `regops_pods_recycled_total`: pods deleted by `--recycle-stuck-pods`;
//! - `regops_namespaces_awaiting_retry`: namespaces whose writes failed, waiting to be retried
//!   alone (each with its own backoff);
//! - `regops_mint_failures_total`: tokens that could not be minted (each retried with backoff);
//! - `regops_secret_source_failures_total{kind="aws|vault|…"}`: reads of a secret manager's
//!   value that failed (each retried with backoff; the Secrets keep the last good value);
//! - `regops_secret_source_last_success_timestamp_seconds{kind}`: when a value of that kind
//!   was last read (at the start, a reload, or a refresh);
//! - `regops_last_full_sync_timestamp_seconds` and `regops_seconds_since_last_full_sync`
//!   (successful full applies; the second is computed at each scrape, for simple alerts).

use regops_core::prometheus::{Exposition, Type, escape};
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// The histogram's upper bounds, in seconds: a namespace pass takes milliseconds, a full apply
/// of a large cluster seconds.
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Scope of a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Full,
    Namespaces,
}

impl Scope {
    fn label(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::Namespaces => "namespaces",
        }
    }
}

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Default, Clone)]
struct Values {
    leader: bool,
    ready: bool,
    reconciles: BTreeMap<(Scope, bool), u64>,
    durations: BTreeMap<Scope, Histogram>,
    writes: BTreeMap<&'static str, u64>,
    in_drift: u64,
    conflicts: u64,
    watch_restarts: BTreeMap<(String, &'static str), u64>,
    reloads: BTreeMap<bool, u64>,
    /// The spec files as they are now failed to load (the last good spec is in force).
    spec_rejected: bool,
    last_reload: Option<f64>,
    recycled: u64,
    awaiting_retry: u64,
    mint_failures: u64,
    /// By source kind (`aws`, `vault`): reads that failed, and when one last succeeded.
    source_failures: BTreeMap<&'static str, u64>,
    source_success: BTreeMap<&'static str, f64>,
    last_full_sync: Option<f64>,
}

/// The counters, shared between the controller and the HTTP listener.
pub struct Metrics {
    /// The labels every series carries, rendered: `spec="web"` or `spec="web",cluster="eu"`.
    labels: String,
    values: Mutex<Values>,
}

/// The outcome of one pass, as counted.
pub struct Pass {
    pub scope: Scope,
    pub success: bool,
    pub seconds: f64,
    pub applied: u64,
    pub failed: u64,
    pub skipped: u64,
}

impl Metrics {
    /// Counters for `spec`, labelled with `cluster` too when the spec lists clusters.
    pub fn new(spec: &str, cluster: Option<&str>) -> Self {
        let mut labels = format!("spec=\"{}\"", escape(spec));
        if let Some(c) = cluster {
            labels.push_str(&format!(",cluster=\"{}\"", escape(c)));
        }
        Metrics {
            labels,
            values: Mutex::default(),
        }
    }

    fn values(&self) -> std::sync::MutexGuard<'_, Values> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent in a way that
        // matters more than losing them.
        self.values.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_leader(&self, leader: bool) {
        self.values().leader = leader;
    }

    pub fn set_ready(&self, ready: bool) {
        self.values().ready = ready;
    }

    pub fn ready(&self) -> bool {
        self.values().ready
    }

    pub fn pass(&self, p: &Pass) {
        let mut v = self.values();
        *v.reconciles.entry((p.scope, p.success)).or_default() += 1;
        v.durations.entry(p.scope).or_default().observe(p.seconds);
        *v.writes.entry("applied").or_default() += p.applied;
        *v.writes.entry("failed").or_default() += p.failed;
        *v.writes.entry("skipped").or_default() += p.skipped;
    }

    /// What the latest full apply found, and when it succeeded (Unix seconds).
    pub fn full_sync(&self, in_drift: usize, conflicts: usize, succeeded_at: Option<f64>) {
        let mut v = self.values();
        v.in_drift = in_drift as u64;
        v.conflicts = conflicts as u64;
        if succeeded_at.is_some() {
            v.last_full_sync = succeeded_at;
        }
    }

    pub fn watch_restart(&self, resource: &str, reason: &'static str) {
        *self
            .values()
            .watch_restarts
            .entry((resource.to_string(), reason))
            .or_default() += 1;
    }

    /// How many namespaces wait to be retried.
    pub fn awaiting_retry(&self, namespaces: usize) {
        self.values().awaiting_retry = namespaces as u64;
    }

    /// A token could not be minted.
    pub fn mint_failed(&self) {
        self.values().mint_failures += 1;
    }

    /// The secret-manager kinds the spec reads, all read successfully at `now` (Unix
    /// seconds: the spec was just prepared, which reads them all); their failure counters
    /// start at 0. Kinds no longer read are dropped.
    pub fn secret_sources_read(&self, kinds: &std::collections::BTreeSet<&'static str>, now: f64) {
        let mut v = self.values();
        v.source_failures.retain(|k, _| kinds.contains(k));
        v.source_success.retain(|k, _| kinds.contains(k));
        for k in kinds {
            v.source_failures.entry(k).or_default();
            v.source_success.insert(k, now);
        }
    }

    /// A value of a secret manager of `kind` was read at `now` (Unix seconds).
    pub fn secret_source_read(&self, kind: &'static str, now: f64) {
        let mut v = self.values();
        v.source_failures.entry(kind).or_default();
        v.source_success.insert(kind, now);
    }

    /// A read from a secret manager of `kind` failed.
    pub fn secret_source_failed(&self, kind: &'static str) {
        *self.values().source_failures.entry(kind).or_default() += 1;
    }

    pub fn recycled(&self, pods: usize) {
        self.values().recycled += pods as u64;
    }

    /// A reload of the spec, and whether the files now load (the spec in force is theirs).
    pub fn reload(&self, success: bool) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.reload_at(success, now);
    }

    /// As [`Metrics::reload`], at `now` (Unix seconds).
    pub fn reload_at(&self, success: bool, now: f64) {
        let mut v = self.values();
        *v.reloads.entry(success).or_default() += 1;
        v.spec_rejected = !success;
        v.last_reload = Some(now);
    }

    /// The spec files are back to the spec in force (a bad version reverted): valid again.
    pub fn spec_restored(&self) {
        self.values().spec_rejected = false;
    }

    /// The Prometheus text exposition (version 0.0.4), at `now` (Unix seconds).
    pub fn render(&self, now: f64) -> String {
        render(&self.labels, &self.values().clone(), now)
    }
}

// Kept whole (over 80 lines): the exposition in order, one family after another.
fn render(labels: &str, v: &Values, now: f64) -> String {
    use Type::{Counter, Gauge, Histogram};
    let s = labels;
    let with = |more: &str| format!("{s},{more}");
    let mut o = Exposition::new();
    o.family(
        "regops_leader",
        Gauge,
        "Whether this replica holds the Lease and writes.",
    );
    o.sample("regops_leader", s, u8::from(v.leader));
    o.family(
        "regops_ready",
        Gauge,
        "Whether the first full apply has ended (or this replica is a standby).",
    );
    o.sample("regops_ready", s, u8::from(v.ready));
    let name = "regops_reconciles_total";
    o.family(
        name,
        Counter,
        "Passes (read, plan, write) by scope and outcome.",
    );
    for scope in [Scope::Full, Scope::Namespaces] {
        for (ok, outcome) in [(true, "success"), (false, "failure")] {
            let n = v.reconciles.get(&(scope, ok)).copied().unwrap_or(0);
            let more = format!("scope=\"{}\",outcome=\"{outcome}\"", scope.label());
            o.sample(name, &with(&more), n);
        }
    }
    let name = "regops_reconcile_duration_seconds";
    o.family(name, Histogram, "How long passes take, by scope.");
    for scope in [Scope::Full, Scope::Namespaces] {
        let h = v.durations.get(&scope).cloned().unwrap_or_default();
        let l = scope.label();
        for (i, le) in BUCKETS.iter().enumerate() {
            let more = format!("scope=\"{l}\",le=\"{le}\"");
            o.sample(&format!("{name}_bucket"), &with(&more), h.counts[i]);
        }
        let more = format!("scope=\"{l}\",le=\"+Inf\"");
        o.sample(&format!("{name}_bucket"), &with(&more), h.count);
        let scoped = with(&format!("scope=\"{l}\""));
        o.sample(&format!("{name}_sum"), &scoped, h.sum);
        o.sample(&format!("{name}_count"), &scoped, h.count);
    }
    let name = "regops_writes_total";
    o.family(name, Counter, "Writes by outcome.");
    for outcome in ["applied", "failed", "skipped"] {
        let n = v.writes.get(outcome).copied().unwrap_or(0);
        o.sample(name, &with(&format!("outcome=\"{outcome}\"")), n);
    }
    o.family(
        "regops_objects_in_drift",
        Gauge,
        "Objects the latest full apply found out of step, before writing.",
    );
    o.sample("regops_objects_in_drift", s, v.in_drift);
    o.family(
        "regops_conflicts",
        Gauge,
        "Conflicts the latest full apply found and left for a person.",
    );
    o.sample("regops_conflicts", s, v.conflicts);
    let name = "regops_watch_restarts_total";
    o.family(
        name,
        Counter,
        "Watch requests renewed, by resource and reason.",
    );
    for ((resource, reason), n) in &v.watch_restarts {
        let more = format!("resource=\"{}\",reason=\"{reason}\"", escape(resource));
        o.sample(name, &with(&more), n);
    }
    let name = "regops_spec_reloads_total";
    o.family(
        name,
        Counter,
        "Spec reloads by outcome (a failed one keeps the last good spec).",
    );
    for (ok, outcome) in [(true, "success"), (false, "failure")] {
        let n = v.reloads.get(&ok).copied().unwrap_or(0);
        o.sample(name, &with(&format!("outcome=\"{outcome}\"")), n);
    }
    o.family(
        "regops_spec_valid",
        Gauge,
        "1 while the spec files as they are now are the spec in force; 0 while a version that failed to load is kept out (the last good spec stays in force).",
    );
    o.sample("regops_spec_valid", s, u8::from(!v.spec_rejected));
    if let Some(t) = v.last_reload {
        o.family(
            "regops_spec_last_reload_timestamp_seconds",
            Gauge,
            "When the spec files were last read again (a change, or SIGHUP).",
        );
        o.sample(
            "regops_spec_last_reload_timestamp_seconds",
            s,
            format!("{t:.3}"),
        );
    }
    o.family(
        "regops_pods_recycled_total",
        Counter,
        "Pods stuck pulling from a registry just provided, deleted for their controller to recreate.",
    );
    o.sample("regops_pods_recycled_total", s, v.recycled);
    o.family(
        "regops_namespaces_awaiting_retry",
        Gauge,
        "Namespaces whose writes failed, waiting to be retried alone with their own backoff.",
    );
    o.sample("regops_namespaces_awaiting_retry", s, v.awaiting_retry);
    o.family(
        "regops_mint_failures_total",
        Counter,
        "Tokens that could not be minted from a cloud identity (each retried with backoff).",
    );
    o.sample("regops_mint_failures_total", s, v.mint_failures);
    let name = "regops_secret_source_failures_total";
    if !v.source_failures.is_empty() {
        o.family(
            name,
            Counter,
            "Reads of a secret manager's value that failed, by source kind (each retried with backoff; the Secrets keep the last good value).",
        );
    }
    for (kind, n) in &v.source_failures {
        o.sample(name, &with(&format!("kind=\"{}\"", escape(kind))), n);
    }
    let name = "regops_secret_source_last_success_timestamp_seconds";
    if !v.source_success.is_empty() {
        o.family(
            name,
            Gauge,
            "When a value was last read from a secret manager of this kind.",
        );
    }
    for (kind, t) in &v.source_success {
        o.sample(
            name,
            &with(&format!("kind=\"{}\"", escape(kind))),
            format!("{t:.3}"),
        );
    }
    if let Some(t) = v.last_full_sync {
        o.family(
            "regops_last_full_sync_timestamp_seconds",
            Gauge,
            "When the latest successful full apply ended.",
        );
        o.sample(
            "regops_last_full_sync_timestamp_seconds",
            s,
            format!("{t:.3}"),
        );
        o.family(
            "regops_seconds_since_last_full_sync",
            Gauge,
            "Seconds since the latest successful full apply ended.",
        );
        o.sample(
            "regops_seconds_since_last_full_sync",
            s,
            format!("{:.3}", (now - t).max(0.0)),
        );
    }
    o.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_what_happened() {
        let m = Metrics::new("web\"x", None);
        m.set_leader(true);
        m.set_ready(true);
        m.pass(&Pass {
            scope: Scope::Namespaces,
            success: true,
            seconds: 0.02,
            applied: 2,
            failed: 0,
            skipped: 1,
        });
        m.pass(&Pass {
            scope: Scope::Full,
            success: false,
            seconds: 3.0,
            applied: 0,
            failed: 1,
            skipped: 0,
        });
        m.full_sync(4, 1, Some(1000.0));
        m.watch_restart("namespaces", "expired");
        m.reload_at(false, 1000.0);
        m.awaiting_retry(1);
        m.mint_failed();
        insta::assert_snapshot!(m.render(1012.5));
    }

    /// Each secret-manager kind the spec reads has its failure counter (from 0) and the time
    /// of its last good read; a failure counts for its kind alone; a kind the spec no longer
    /// reads is dropped.
    #[test]
    fn secret_sources_are_counted_by_kind() {
        let m = Metrics::new("web", None);
        assert!(!m.render(0.0).contains("regops_secret_source"));
        m.secret_sources_read(&["aws", "vault"].into(), 100.0);
        m.secret_source_failed("aws");
        m.secret_source_failed("aws");
        m.secret_source_read("vault", 160.5);
        let text = m.render(200.0);
        for line in [
            "regops_secret_source_failures_total{spec=\"web\",kind=\"aws\"} 2",
            "regops_secret_source_failures_total{spec=\"web\",kind=\"vault\"} 0",
            "regops_secret_source_last_success_timestamp_seconds{spec=\"web\",kind=\"aws\"} 100.000",
            "regops_secret_source_last_success_timestamp_seconds{spec=\"web\",kind=\"vault\"} 160.500",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
        m.secret_sources_read(&["vault"].into(), 300.0);
        let text = m.render(300.0);
        assert!(!text.contains("kind=\"aws\""), "{text}");
    }

    #[test]
    fn no_full_sync_yet_means_no_age() {
        let text = Metrics::new("web", None).render(5.0);
        assert!(
            !text.contains("regops_seconds_since_last_full_sync"),
            "{text}"
        );
        assert!(text.contains("regops_leader{spec=\"web\"} 0"), "{text}");
    }
}
