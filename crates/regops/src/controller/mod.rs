//! The controller, `regops apply --watch`: its loop, and the parts only it uses.
//!
//! - [`watches`]: the watches and the queue of namespaces they feed;
//! - [`recycle`]: what `--recycle-stuck-pods` deletes;
//! - [`listen`]: the HTTP endpoint (`/healthz`, `/readyz`, `/metrics`);
//! - [`metrics`]: what it counts;
//! - [`refresh`]: values from secret managers, read again every `refreshInterval`.
//!
//! The Lease it is elected on is [`crate::cluster::lock`]'s, the same one `regops apply` takes; the
//! command's flags are turned into a `Controller` by `cli/commands/watch.rs`; a reload reads the
//! spec as at the start ([`crate::ops::load`]).
//!
//! The loop, on one thread:
//! 1. take the Lease (a standby waits here, polling it every second, until the leader dies);
//! 2. note where each watch starts (a one-item LIST per resource), start the watches, and
//!    run one full apply: read, plan and write exactly as `regops apply` does;
//! 3. then take work from the [`Queue`]: the namespaces the watches named, planned and applied
//!    with namespaced reads (as `-n`), or a full apply (on `--resync`, after a watch had to list
//!    again, after a spec reload, after a failure, or when many namespaces wait);
//!    Values from secret managers are read again on their own schedule ([`refresh`]), off the
//!    loop; one that changed has the namespaces holding it planned again;
//! 4. between passes, look at the spec files (`--spec-poll`) and SIGHUP; a valid new spec
//!    replaces the old (new watches, then a full apply), an invalid one is reported and the
//!    old one stays in force;
//! 5. on SIGTERM or SIGINT, start no new write, let those in flight finish, release the
//!    Lease and exit 0. A lost Lease (another replica took it) exits 1, as client-go's leader
//!    election does, so the replica restarts as a standby.

pub mod listen;
pub mod metrics;
pub mod recycle;
pub mod refresh;
pub mod watches;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use regops_core::plan::Action;
use regops_core::report::{ItemResult, Outcome as ItemOutcome, Report};
use tokio::time::Instant;

use crate::ExitStatus;
use crate::failure::{Failure, Outcome};
use crate::ops::prepared::Prepared;
use crate::output::{Log, Term};
use metrics::{Metrics, Pass, Scope};
use watches::{Prints, Queue, RETRY_FIRST, RETRY_MAX, Work};

/// What the controller (`apply --watch`) is told when it is built.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    pub run: crate::ops::options::RunOptions,
    /// Log JSON lines rather than text.
    pub json_log: bool,
    /// How long the work loop may go without progress before `/healthz` fails.
    pub healthz_stall: Duration,
    /// The file whose mtime says the loop made progress (for an exec liveness probe).
    pub progress_file: Option<std::path::PathBuf>,
    /// How often a full apply runs whatever the watches said.
    pub resync: Duration,
    /// How often the spec's files are read again for a change.
    pub spec_poll: Duration,
    /// Whether pods stuck pulling from a registry just provided are deleted to retry.
    pub recycle_stuck_pods: bool,
    /// How often values from secret managers are read again (`--secret-refresh`, and its
    /// floor `--secret-refresh-min`).
    pub secret_refresh: refresh::Intervals,
}

/// With --recycle-stuck-pods, the namespaces just provided are looked at again this long after
/// (a pod admitted just before may not have failed its first pull yet).
const RECHECK: Duration = Duration::from_secs(20);

pub(crate) struct Controller<'a> {
    args: &'a ControllerOptions,
    term: &'a Term,
    log: Log,
    conn: crate::cluster::Connection,
    target: crate::cluster::client::Target,
    prepared: Prepared,
    /// The cluster of the spec's `clusters` this controller works on, if the spec lists any.
    cluster: Option<String>,
    /// The spec in force, and the last one rejected (so it is reported once, not every poll).
    spec_print: u64,
    rejected_print: Option<u64>,
    metrics: Arc<Metrics>,
    queue: Arc<Queue>,
    /// What the reads and watches have seen of each object (to ignore status-only events).
    prints: Arc<Prints>,
    /// SIGTERM or SIGINT: no new writes; leave after the pass.
    stop: Arc<AtomicBool>,
    /// SIGHUP: read the spec again.
    hangup: Arc<AtomicBool>,
    watches: Vec<(Arc<AtomicBool>, tokio::task::JoinHandle<()>)>,
    /// A full apply scheduled after a full read failed.
    retry: Option<Instant>,
    /// Namespaces whose writes failed, each retried alone with its own backoff.
    retries: watches::Retries,
    /// Minted credentials whose token could not be had, each tried again with its own backoff
    /// by a pass over the namespaces whose Secrets were held back for want of it.
    mint_retries: watches::Retries,
    /// The namespaces with a Secret held back (a token or helper that failed), as the last
    /// passes over them planned: what a token asked for again is needed in.
    held_back: std::collections::BTreeSet<String>,
    /// When the first minted token comes within its `refreshBefore` (from the last full pass).
    renew_at: Option<Instant>,
    /// Values from secret managers: when each is read again, and the reads in flight.
    refresh: refresh::Refresh,
    /// The namespaces whose pull secrets hold a value [`Controller::refresh`] reads, with the
    /// credentials of those values (as the last passes over them planned): where a value that
    /// changed is written.
    holders: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    retry_wait: Duration,
    /// --recycle-stuck-pods: the deletions' pace, and the namespaces to look at again.
    limiter: recycle::Limiter,
    rechecks: Vec<(Instant, Provided)>,
    /// The apply session: the Lease, the writes, and the Events of every pass (one recorder,
    /// so that repeats, a conflict every resync, are one series).
    session: crate::ops::session::Session,
}

/// Namespaces where regops just wrote a pull secret (or a reference to one), with the
/// registries those pull secrets log in to.
type Provided = Vec<(String, Vec<String>)>;

/// The spec a controller starts with: prepared, narrowed to its cluster of a fleet (if the spec
/// lists any), and the print of its files ([`crate::ops::load::spec_print`]) that a reload compares.
pub(crate) struct Spec {
    pub(crate) prepared: Prepared,
    pub(crate) cluster: Option<String>,
    pub(crate) print: u64,
}

impl<'a> Controller<'a> {
    /// A controller as the flags say, on a connected client, before it has done anything.
    pub(crate) fn new(
        args: &'a ControllerOptions,
        term: &'a Term,
        (conn, target): (crate::cluster::Connection, crate::cluster::client::Target),
        spec: Spec,
        session: crate::ops::session::Session,
    ) -> Self {
        let metrics = Arc::new(Metrics::new(
            &spec.prepared.loaded.name,
            spec.cluster.as_deref(),
        ));
        // The spec was just prepared: every value from a secret manager was read.
        let refresh = refresh::Refresh::new(
            &spec.prepared.loaded.spec,
            args.secret_refresh,
            Instant::now(),
        );
        metrics.secret_sources_read(&refresh.kinds(), conn.ctx.clock.unix_secs());
        Controller {
            args,
            term,
            log: Log {
                json: args.json_log,
            },
            conn,
            target,
            prepared: spec.prepared,
            cluster: spec.cluster,
            spec_print: spec.print,
            rejected_print: None,
            metrics,
            queue: Arc::new(Queue::default()),
            prints: Arc::new(Prints::default()),
            stop: Arc::new(AtomicBool::new(false)),
            hangup: Arc::new(AtomicBool::new(false)),
            watches: Vec::new(),
            retry: None,
            renew_at: None,
            refresh,
            holders: std::collections::BTreeMap::new(),
            retry_wait: RETRY_FIRST,
            retries: watches::Retries::new(RETRY_FIRST, RETRY_MAX),
            mint_retries: watches::Retries::new(RETRY_FIRST, RETRY_MAX),
            held_back: std::collections::BTreeSet::new(),
            limiter: recycle::Limiter::default(),
            rechecks: Vec::new(),
            session,
        }
    }
}

impl Controller<'_> {
    pub(crate) async fn run(&mut self, listener: Option<tokio::net::TcpListener>) -> Outcome {
        if let Some(l) = listener {
            tokio::spawn(listen::serve(
                l,
                self.metrics.clone(),
                self.args.healthz_stall,
            ));
        }
        if let Some(path) = self.args.progress_file.clone() {
            tokio::spawn(write_progress(path));
        }
        self.listen_for_signals()?;
        let Some(lock) = self.lead().await? else {
            self.log.info("stopped while waiting for the Lease");
            return Ok(ExitStatus::Success);
        };
        self.metrics.set_leader(true);
        self.metrics.set_ready(false);
        let status = self.control(&lock).await;
        self.stop_watches();
        let lost = lock.lost();
        lock.release().await;
        self.metrics.set_leader(false);
        if lost {
            self.log.error("lost the Lease (another replica holds it, or it could not be renewed in time): exiting so this replica restarts as a standby");
            return Ok(ExitStatus::Failure);
        }
        self.log
            .info("stopped: writes in flight finished and the Lease was released");
        status
    }

    /// SIGTERM and SIGINT set the stop flag, SIGHUP the reload flag; both wake the loop.
    fn listen_for_signals(&self) -> Result<(), Failure> {
        use tokio::signal::unix::{SignalKind, signal};
        let fail = |e: std::io::Error| Failure::msg(format!("cannot listen for signals: {e}"));
        let mut term = signal(SignalKind::terminate()).map_err(fail)?;
        let mut int = signal(SignalKind::interrupt()).map_err(fail)?;
        let mut hup = signal(SignalKind::hangup()).map_err(fail)?;
        let (stop, hangup, queue) = (self.stop.clone(), self.hangup.clone(), self.queue.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => stop.store(true, Ordering::SeqCst),
                    _ = int.recv() => stop.store(true, Ordering::SeqCst),
                    _ = hup.recv() => hangup.store(true, Ordering::SeqCst),
                }
                queue.wake();
            }
        });
        Ok(())
    }

    /// Waits for the Lease (until stopped); `None` if stopped first.
    async fn lead(&self) -> Result<Option<crate::cluster::lock::Lock>, Failure> {
        let session = &self.session;
        let on_wait = |other: &str| {
            // A standby is ready: it can take over (a rollout must not wait on it).
            self.log
                .info(&format!("standby: the Lease is held by `{other}`; waiting"));
            self.metrics.set_ready(true);
        };
        let log = self.log;
        let warn = move |m: &str| log.warn(m);
        let waiting = crate::ops::session::Waiting {
            wait: None,
            poll: session.times.retry_period,
            on_wait: &on_wait,
            warn: &warn,
        };
        let connect = crate::cluster::client::lock_connect(
            self.args.run.cluster.kubeconfig.clone(),
            self.args.run.cluster.context.clone(),
        );
        let lease = format!("{}/{}", session.lease_namespace, session.lease_name);
        self.log
            .info(&format!("taking the Lease {lease} as `{}`", session.holder));
        let acquire = session.take_lease(&self.conn, connect, &waiting);
        let stopped = async {
            while !self.stop.load(Ordering::SeqCst) {
                self.queue.wait().await;
            }
        };
        tokio::select! {
            taken = acquire => {
                let lock = taken.map_err(|e| Failure::Message { help: e.help(), message: e.to_string() })?;
                self.log.info(&format!("leader: holding the Lease {lease}"));
                Ok(Some(lock))
            }
            () = stopped => Ok(None),
        }
    }

    /// The leader's loop; returns when stopped or when the Lease is lost.
    async fn control(&mut self, lock: &crate::cluster::lock::Lock) -> Outcome {
        if !self.start_watches().await {
            return Ok(ExitStatus::Success);
        }
        self.queue.full();
        let mut next_resync = Instant::now() + self.args.resync;
        let mut next_poll = Instant::now() + self.args.spec_poll;
        loop {
            crate::cluster::progress::beat();
            if self.stop.load(Ordering::SeqCst) || lock.lost() {
                return Ok(ExitStatus::Success);
            }
            if self.hangup.swap(false, Ordering::SeqCst) {
                self.log.info("SIGHUP: reading the spec again");
                self.reload(true).await;
            }
            if Instant::now() >= next_poll {
                self.reload(false).await;
                next_poll = Instant::now() + self.args.spec_poll;
            }
            if self
                .rechecks
                .first()
                .is_some_and(|(at, _)| *at <= Instant::now())
            {
                let (_, provided) = self.rechecks.remove(0);
                self.recycle(&provided, lock).await;
                continue;
            }
            let now = Instant::now();
            for ns in self.retries.take_due(now) {
                self.queue.touch(&ns);
            }
            if !self.mint_retries.take_due(now).is_empty() {
                // Asked again by planning the namespaces that wait for it (the tokens that
                // failed are forgotten first); a full apply only when none is known.
                self.prepared.forget_failed_tokens();
                if self.held_back.is_empty() {
                    self.log
                        .info("a token that failed is asked for again: a full apply");
                    self.queue.full();
                } else {
                    self.log.info(&format!(
                        "a token that failed is asked for again, for the {} namespaces waiting for it",
                        self.held_back.len()
                    ));
                    for ns in &self.held_back {
                        self.queue.touch(ns);
                    }
                }
            }
            if self.refresh.next_due().is_some_and(|at| at <= now) {
                let policy = self.prepared.loaded.policy.clone();
                self.refresh.start_due(now, &policy, &self.conn.ctx);
            }
            if let Some(work) = self.queue.take() {
                if work == Work::Full {
                    next_resync = Instant::now() + self.args.resync;
                }
                self.pass(work, lock).await;
                continue;
            }
            let retry_at = self.retry.unwrap_or(next_resync);
            let recheck_at = self.rechecks.first().map_or(next_resync, |(at, _)| *at);
            let renew_at = self.renew_at.unwrap_or(next_resync);
            let refresh_at = self.refresh.next_due().unwrap_or(next_resync);
            let idle = self.refresh.idle();
            let requeue_at = [self.retries.next_due(), self.mint_retries.next_due()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(next_resync);
            tokio::select! {
                () = self.queue.wait() => {}
                Some((key, got)) = self.refresh.next_done(), if !idle => {
                    self.refreshed(&key, got);
                }
                () = tokio::time::sleep_until(refresh_at) => {}
                () = tokio::time::sleep_until(renew_at) => {
                    if self.renew_at.take().is_some() {
                        self.log.info("renewal: a minted token is within refreshBefore; a full apply");
                        self.queue.full();
                    }
                }
                () = tokio::time::sleep_until(next_resync) => {
                    self.log.info("resync: a full apply");
                    self.queue.full();
                }
                () = tokio::time::sleep_until(retry_at) => {
                    if self.retry.take().is_some() {
                        self.queue.full();
                    }
                }
                () = tokio::time::sleep_until(next_poll) => {}
                () = tokio::time::sleep_until(requeue_at) => {}
                () = tokio::time::sleep_until(recheck_at) => {}
                // The Lease's renewal runs on its own thread: look at it every second.
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Starts a watch per resource the spec depends on, from versions read now; false if
    /// stopped before they could be read.
    async fn start_watches(&mut self) -> bool {
        self.stop_watches();
        let watched = watches::watched(&self.prepared.loaded.spec);
        let mut wait = RETRY_FIRST;
        let versions = loop {
            match watches::versions(&self.conn, &watched).await {
                Ok(v) => break v,
                Err(e) => {
                    self.log.error(&format!(
                        "cannot read where to start watching: {}; trying again in {} s",
                        crate::errors::describe(&e),
                        wait.as_secs()
                    ));
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = async { while !self.stop.load(Ordering::SeqCst) { self.queue.wait().await } } => {}
                    }
                    if self.stop.load(Ordering::SeqCst) {
                        return false;
                    }
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        };
        let log = self.log;
        let shared = watches::Shared {
            queue: self.queue.clone(),
            prints: self.prints.clone(),
            metrics: self.metrics.clone(),
            log: Arc::new(move |m: &str| log.warn(m)),
            error: Arc::new(move |m: &str| log.error(m)),
        };
        for (w, version) in watched.into_iter().zip(versions) {
            let stop = Arc::new(AtomicBool::new(false));
            let task = tokio::spawn(watches::run(
                self.conn.clone(),
                w,
                version,
                shared.clone(),
                stop.clone(),
            ));
            self.watches.push((stop, task));
        }
        true
    }

    /// The spec read again (a reload), narrowed to the controller's cluster as at the start.
    fn reprepare(&self) -> Result<Prepared, Failure> {
        let mut prepared = crate::ops::load::prepare(&self.args.run, self.term)?;
        if let Some(name) = self.cluster.as_deref() {
            if !prepared.loaded.spec.clusters.contains_key(name) {
                return Err(Failure::msg(format!(
                    "the new spec has no cluster `{name}`, the one this controller works on"
                )));
            }
            prepared.loaded.spec = regops_spec::fleet::for_cluster(&prepared.loaded.spec, name);
        }
        Ok(prepared)
    }

    fn stop_watches(&mut self) {
        for (stop, task) in self.watches.drain(..) {
            stop.store(true, Ordering::SeqCst);
            task.abort();
        }
    }

    /// Reads the spec again if its files changed (or `forced`, for SIGHUP). A valid spec
    /// replaces the one in force (new watches, then a full apply); an invalid one is reported
    /// once and the one in force stays.
    async fn reload(&mut self, forced: bool) {
        let print = match crate::ops::load::spec_print(&self.args.run.spec) {
            Ok(p) => p,
            Err(f) => {
                if forced || self.rejected_print != Some(0) {
                    self.report(f);
                    self.log
                        .error("cannot read the spec files; the spec in force stays");
                    self.metrics.reload(false);
                }
                self.rejected_print = Some(0);
                return;
            }
        };
        if !forced && print == self.spec_print && self.rejected_print.is_some() {
            // A bad version reverted: the files are the spec in force again. Said, so that the
            // error logged before is not the last word.
            self.rejected_print = None;
            self.metrics.spec_restored();
            self.log
                .info("the spec files are back to the spec in force; nothing to reload");
            return;
        }
        if !forced && (print == self.spec_print || self.rejected_print == Some(print)) {
            return;
        }
        let name = self.prepared.loaded.name.clone();
        match self.reprepare() {
            Ok(p) if p.loaded.name != name => {
                self.log.error(&format!(
                    "the new spec is named `{}`, not `{name}`: its Secrets and Lease would be another spec's; the spec in force stays (restart regops to switch)",
                    p.loaded.name
                ));
                self.rejected_print = Some(print);
                self.metrics.reload(false);
            }
            Ok(p) => {
                self.prepared = p;
                // Read whole again with the spec; reads in flight for the old one are dropped.
                self.refresh = refresh::Refresh::new(
                    &self.prepared.loaded.spec,
                    self.args.secret_refresh,
                    Instant::now(),
                );
                self.metrics
                    .secret_sources_read(&self.refresh.kinds(), self.conn.ctx.clock.unix_secs());
                self.holders.clear();
                self.spec_print = print;
                self.rejected_print = None;
                self.metrics.reload(true);
                self.log
                    .info("spec reloaded: restarting the watches, then a full apply");
                if self.start_watches().await {
                    self.queue.full();
                }
            }
            Err(f) => {
                self.report(f);
                self.log
                    .error("the new spec is invalid (above); the last good spec stays in force");
                self.rejected_print = Some(print);
                self.metrics.reload(false);
            }
        }
    }

    /// Shows why something failed: on the terminal as every command does, or, with `--output
    /// json`, as one JSON log line (a log collector gets one record, not a drawn box).
    fn report(&self, f: crate::failure::Failure) {
        if self.log.json {
            self.log.error(&f.text());
        } else {
            f.report(self.term);
        }
    }

    /// One pass: read (the whole cluster, or the namespaces), plan, write, log, count.
    async fn pass(&mut self, work: Work, lock: &crate::cluster::lock::Lock) {
        let started = Instant::now();
        let (scope, only) = match work {
            Work::Full => (Scope::Full, self.prepared.only.clone()),
            Work::Namespaces(mut set) => {
                if let Some(filter) = &self.prepared.only {
                    set.retain(|n| filter.contains(n));
                }
                if set.is_empty() {
                    return;
                }
                (Scope::Namespaces, Some(set))
            }
        };
        let what = match &only {
            Some(set) if scope == Scope::Namespaces => format!(
                "namespace{} {}",
                if set.len() == 1 { "" } else { "s" },
                set.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            _ => "full apply".to_string(),
        };
        let loaded = &self.prepared.loaded;
        let read = crate::cluster::read::from_cluster(
            &self.conn,
            &self.target,
            &loaded.spec,
            &loaded.name,
            only.as_ref(),
        );
        let observed = match read.await {
            Ok(o) => o,
            Err(e) => {
                self.log
                    .error(&format!("{what}: cannot read the cluster: {e}"));
                self.account(scope, started, None, &Report::default());
                match (&scope, &only) {
                    (Scope::Namespaces, Some(set)) => {
                        let now = Instant::now();
                        for ns in set {
                            self.retries.failed(ns, now);
                        }
                        self.metrics.awaiting_retry(self.retries.len());
                    }
                    _ => self.schedule_retry(),
                }
                return;
            }
        };
        // What this read saw is what later events are compared with.
        let prints = regops_core::fingerprint::all_by_kind(&observed);
        if scope == Scope::Full {
            self.prints.reset(prints);
        } else {
            self.prints.update(prints);
        }
        if scope == Scope::Full {
            self.prepared.forget_failed_tokens();
        }
        let (desired, plan) = self
            .prepared
            .plan_for(&observed, &self.target.to_string(), only.as_ref())
            .await;
        // The next renewal, on a timer: when the first token held comes due. A full pass
        // sees every token; a namespace pass may hold one newly minted (a token that failed
        // and was asked for again), which must not wait for the next full pass.
        let due = desired.renew_at.map(|at| {
            let wait = u64::try_from(at.saturating_sub(self.conn.ctx.unix_now())).unwrap_or(0);
            Instant::now() + Duration::from_secs(wait.max(1))
        });
        self.renew_at = if scope == Scope::Full {
            due
        } else {
            [self.renew_at, due].into_iter().flatten().min()
        };
        match (&scope, &only) {
            (Scope::Namespaces, Some(set)) => self.held_back.retain(|ns| !set.contains(ns)),
            _ => self.held_back.clear(),
        }
        self.note_holders(scope, only.as_ref(), &desired);
        self.held_back.extend(
            desired
                .secrets
                .iter()
                .filter(|d| d.held.is_some())
                .map(|d| d.namespace.clone()),
        );
        self.log_plan(&what, &plan);
        let report = if plan.has_changes() {
            self.write(&plan, &desired, &observed, lock).await
        } else {
            Report::default()
        };
        self.account(scope, started, Some(&plan), &report);
        self.log_pass(scope, &what, started, &plan, &report);
        if self.args.recycle_stuck_pods {
            let provided = provided(&report, &desired);
            if !provided.is_empty() {
                self.recycle(&provided, lock).await;
                self.rechecks.push((Instant::now() + RECHECK, provided));
            }
        }
        self.requeue_failures(scope, only.as_ref(), &report);
        if scope == Scope::Full {
            self.retry_wait = RETRY_FIRST;
        }
    }

    /// After a pass: which namespaces hold a value from a secret manager, as it planned them.
    fn note_holders(
        &mut self,
        scope: Scope,
        only: Option<&std::collections::BTreeSet<String>>,
        desired: &regops_core::desired::Desired,
    ) {
        match (scope, only) {
            (Scope::Namespaces, Some(set)) => self.holders.retain(|ns, _| !set.contains(ns)),
            _ => self.holders.clear(),
        }
        let read = self.refresh.credentials();
        if read.is_empty() {
            return;
        }
        let by_secret = refresh::credentials_by_pull_secret(&self.prepared.loaded.spec);
        for d in &desired.secrets {
            let Some(creds) = by_secret.get(d.name.as_str()) else {
                continue;
            };
            for c in creds.iter().filter(|c| read.contains(**c)) {
                self.holders
                    .entry(d.namespace.clone())
                    .or_default()
                    .insert((*c).to_string());
            }
        }
    }

    /// A read of a secret manager ended: counted; a value that changed replaces its
    /// credentials' password, and the namespaces holding it are planned again (a full apply
    /// when no pass has said where it is held yet). A failure keeps the last good value.
    fn refreshed(&mut self, key: &str, got: refresh::Read) {
        use secrecy::ExposeSecret;
        let ok = got.as_ref().map(|_| ()).map_err(Clone::clone);
        match self.refresh.settle(key, ok, Instant::now()) {
            refresh::Settled::Gone => {}
            refresh::Settled::Failed {
                kind,
                credentials,
                why,
                retry,
            } => {
                self.metrics.secret_source_failed(kind);
                let names: Vec<String> = credentials.into_iter().collect();
                self.log.warn(&format!(
                    "credential {}: cannot read its {kind} secret again: {why}; its Secrets keep the value last read; asked again in {} s",
                    names.join(", "),
                    retry.as_secs()
                ));
            }
            refresh::Settled::Read { kind, credentials } => {
                self.metrics
                    .secret_source_read(kind, self.conn.ctx.clock.unix_secs());
                let Ok((value, record)) = got else { return };
                let mut changed = Vec::new();
                for name in credentials {
                    let Some(login) = self.prepared.logins.get_mut(&name) else {
                        continue;
                    };
                    if login.password.expose_secret() != value.as_str() {
                        login.password = secrecy::SecretString::from(value.as_str().to_owned());
                        login.source_digest = Some(record.clone());
                        changed.push(name);
                    }
                }
                if changed.is_empty() {
                    return;
                }
                let namespaces: Vec<&String> = self
                    .holders
                    .iter()
                    .filter(|(_, creds)| changed.iter().any(|c| creds.contains(c)))
                    .map(|(ns, _)| ns)
                    .collect();
                let names = changed.join(", ");
                if self.holders.is_empty() && !self.metrics.ready() {
                    self.log.info(&format!(
                        "the {kind} secret of credential {names} changed at its source: a full apply"
                    ));
                    self.queue.full();
                    return;
                }
                self.log.info(&format!(
                    "the {kind} secret of credential {names} changed at its source: {} namespace{} planned again",
                    namespaces.len(),
                    if namespaces.len() == 1 { "" } else { "s" }
                ));
                for ns in namespaces {
                    self.queue.touch(ns);
                }
            }
        }
    }

    /// After a pass: each namespace with a failed write is retried alone, with its own
    /// backoff (never a full apply); the namespaces of the pass that went through are
    /// forgotten. Each minted credential whose token failed is tried again with its own
    /// backoff; one that came through is forgotten.
    fn requeue_failures(
        &mut self,
        scope: Scope,
        only: Option<&std::collections::BTreeSet<String>>,
        report: &Report,
    ) {
        let now = Instant::now();
        let failed: std::collections::BTreeSet<&str> = report
            .results
            .iter()
            .filter(|r| r.outcome == ItemOutcome::Failed)
            .map(|r| r.namespace.as_str())
            .collect();
        match (scope, only) {
            (Scope::Namespaces, Some(set)) => {
                for ns in set.iter().filter(|ns| !failed.contains(ns.as_str())) {
                    self.retries.succeeded(ns);
                }
            }
            _ => self.retries.retain(|ns| failed.contains(ns)),
        }
        for ns in &failed {
            let wait = self.retries.failed(ns, now);
            self.log.warn(&format!(
                "namespace {ns}: a write failed; it is retried alone in {} s",
                wait.as_secs_f64()
            ));
        }
        self.metrics.awaiting_retry(self.retries.len());
        let (failed_mints, minted) = self.prepared.mint_outcomes();
        for name in minted {
            self.mint_retries.succeeded(&name);
        }
        for name in failed_mints {
            if !self.mint_retries.waiting(&name) {
                let wait = self.mint_retries.failed(&name, now);
                self.metrics.mint_failed();
                self.log.warn(&format!(
                    "credential {name}: no token; asked again in {} s",
                    wait.as_secs_f64()
                ));
            }
        }
    }

    /// The plan's warnings (by kind: one line for many alike, as the plan's views show them)
    /// and conflicts.
    fn log_plan(&self, what: &str, plan: &regops_core::plan::Plan) {
        for g in &plan.warning_groups {
            self.log.warn(&format!("{what}: {}", g.message.raw()));
        }
        for c in &plan.conflicts {
            self.log.warn(&format!(
                "{what}: conflict, left alone: {} {}/{}: {}",
                c.kind,
                c.namespace,
                c.name,
                c.message.raw()
            ));
        }
    }

    /// Carries the plan out as `apply` does, with the session; new writes stop when the
    /// Lease is lost or a SIGTERM came.
    async fn write(
        &self,
        plan: &regops_core::plan::Plan,
        desired: &regops_core::desired::Desired,
        observed: &regops_core::observed::Observed,
        lock: &crate::cluster::lock::Lock,
    ) -> Report {
        let log = self.log;
        let item = move |r: &ItemResult| log_item(log, r);
        let stop = &self.stop;
        let written = self
            .session
            .write(
                &self.conn,
                plan,
                desired,
                observed,
                Some(lock),
                &item,
                &|| stop.load(Ordering::SeqCst),
            )
            .await;
        if let Some(w) = written.events_warning {
            self.log.warn(&w);
        }
        written.report
    }

    /// Counts a pass (`plan`: `None` when the read failed); a full one also sets the drift
    /// gauges and readiness.
    fn account(
        &self,
        scope: Scope,
        started: Instant,
        plan: Option<&regops_core::plan::Plan>,
        report: &Report,
    ) {
        let failed = report.failed();
        self.metrics.pass(&Pass {
            scope,
            success: plan.is_some() && failed == 0,
            seconds: started.elapsed().as_secs_f64(),
            applied: report.count(ItemOutcome::Applied) as u64,
            failed: failed as u64,
            skipped: report.count(ItemOutcome::Skipped) as u64,
        });
        if let (Scope::Full, Some(plan)) = (scope, plan) {
            let changes = plan
                .changes
                .iter()
                .filter(|c| c.action != Action::Noop)
                .count();
            self.metrics.full_sync(
                changes,
                plan.conflicts.len(),
                (failed == 0).then(|| self.conn.ctx.clock.unix_secs()),
            );
            if !self.metrics.ready() {
                self.log.info("first full apply ended: ready");
            }
            self.metrics.set_ready(true);
        }
    }

    /// A line for a pass that changed something, and for every full one.
    fn log_pass(
        &self,
        scope: Scope,
        what: &str,
        started: Instant,
        plan: &regops_core::plan::Plan,
        report: &Report,
    ) {
        let changes = plan
            .changes
            .iter()
            .filter(|c| c.action != Action::Noop)
            .count();
        if changes == 0 && scope != Scope::Full {
            return;
        }
        let (applied, failed, skipped) = (
            report.count(ItemOutcome::Applied),
            report.failed(),
            report.count(ItemOutcome::Skipped),
        );
        let ms = (started.elapsed().as_secs_f64() * 1000.0).round();
        let mut fields = serde_json::Map::new();
        fields.insert("scope".into(), format!("{scope:?}").to_lowercase().into());
        fields.insert("applied".into(), applied.into());
        fields.insert("failed".into(), failed.into());
        fields.insert("skipped".into(), skipped.into());
        fields.insert("durationMs".into(), ms.into());
        let summary = if changes == 0 {
            "in sync".to_string()
        } else {
            format!("{applied} applied, {failed} failed, {skipped} skipped")
        };
        self.log.line(
            if failed > 0 { "error" } else { "info" },
            &format!("{what}: {summary} in {ms} ms"),
            &fields,
        );
    }

    /// Deletes the pods stuck on the registries just provided (--recycle-stuck-pods).
    async fn recycle(&mut self, provided: &Provided, lock: &crate::cluster::lock::Lock) {
        let log = self.log;
        let told = |m: &str| log.warn(m);
        // Each deletion is a write: made only while the Lease is held and no stop was asked.
        let stop = &self.stop;
        let halt = || lock.lost() || stop.load(Ordering::SeqCst);
        let recycled = crate::cluster::retry::fenced(
            Some(lock.held()),
            recycle::recycle(&self.conn, provided, &mut self.limiter, &told, &halt),
        )
        .await;
        match recycled {
            Ok(n) => self.metrics.recycled(n),
            Err(e) => self.log.error(&format!(
                "cannot look for pods stuck pulling images: {}",
                crate::errors::describe(&e)
            )),
        }
    }

    /// A full read failed: a full apply follows after a wait that grows with each failure in
    /// a row (what failed may be anywhere the read looked).
    fn schedule_retry(&mut self) {
        let at = Instant::now() + self.retry_wait;
        self.log.warn(&format!(
            "a full apply follows in {} s",
            self.retry_wait.as_secs()
        ));
        self.retry = Some(self.retry.map_or(at, |r| r.min(at)));
        self.retry_wait = (self.retry_wait * 2).min(RETRY_MAX);
    }
}

/// The namespaces where a pull secret was just written or referenced by a ServiceAccount,
/// with the registries of the pull secrets regops wants there.
fn provided(report: &Report, desired: &regops_core::desired::Desired) -> Provided {
    let namespaces: std::collections::BTreeSet<&str> = report
        .results
        .iter()
        .filter(|r| {
            r.outcome == ItemOutcome::Applied
                && r.action != Action::Delete
                && matches!(
                    r.kind,
                    regops_spec::kind::ObjectKind::Secret
                        | regops_spec::kind::ObjectKind::ServiceAccount
                )
        })
        .map(|r| r.namespace.as_str())
        .collect();
    namespaces
        .into_iter()
        .map(|ns| {
            let mut servers: Vec<String> = desired
                .secrets
                .iter()
                .filter(|s| s.namespace == ns)
                .flat_map(|s| s.logins.iter().map(|(server, _)| server.clone()))
                .collect();
            servers.sort();
            servers.dedup();
            (ns.to_string(), servers)
        })
        .filter(|(_, servers)| !servers.is_empty())
        .collect()
}

/// Each write, as it ends: applied and failed ones, and deletions left for `--prune` (drift a
/// person may want to know of).
fn log_item(log: Log, r: &ItemResult) {
    let verb = format!("{:?}", r.action).to_lowercase();
    let object = format!("{} {}/{}", r.kind, r.namespace, r.name);
    let detail = r
        .message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    let mut fields = serde_json::Map::new();
    fields.insert("action".into(), verb.clone().into());
    fields.insert("kind".into(), r.kind.to_string().into());
    fields.insert("namespace".into(), r.namespace.clone().into());
    fields.insert("name".into(), r.name.clone().into());
    match r.outcome {
        ItemOutcome::Applied | ItemOutcome::DryRun => {
            log.line("info", &format!("{verb} {object}{detail}"), &fields);
        }
        ItemOutcome::Failed => log.line(
            "error",
            &format!("failed: {verb} {object}{detail}"),
            &fields,
        ),
        ItemOutcome::Skipped if r.action == Action::Delete => log.line(
            "warn",
            &format!("drift: {object} is no longer wanted; not deleted without --prune"),
            &fields,
        ),
        ItemOutcome::Skipped => log.line(
            "info",
            &format!("skipped: {verb} {object}{detail}"),
            &fields,
        ),
    }
}

/// Writes the time of the work loop's last progress (Unix seconds) to `path` every 2 seconds,
/// for `regops alive` (the exec liveness probe). Written whole, then renamed into place, so a
/// probe never reads half a line.
async fn write_progress(path: std::path::PathBuf) {
    let tmp = path.with_extension("tmp");
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let last = now - crate::cluster::progress::since_progress().as_secs_f64();
        // A full disk or a missing directory is the probe's to report (it fails).
        if std::fs::write(&tmp, format!("{last:.3}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}
