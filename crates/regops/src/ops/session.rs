//! An apply session: what every writer of a plan shares. `regops apply` (of a fresh plan or a
//! saved one), each cluster of a fleet's apply and `apply --watch`'s leader all:
//!
//! 1. read and plan without the Lease, so a cluster that already matches gets no write, not
//!    even the Lease ([`Session::stage`]);
//! 2. take the spec's Lease and read and plan again under it, so the plan carried out is made
//!    from a cluster no other apply of this spec is writing to;
//! 3. write the plan fenced by the Lease: a request starts only while the Lease is held, and
//!    no new write starts once it is lost ([`Session::write`], [`crate::cluster::retry::fenced`]);
//! 4. record the Events of what was written, against the Lease (not once it is lost: another
//!    process may be writing);
//! 5. release the Lease.
//!
//! What the user sees (the plan, the confirmation, progress, the report) is the caller's.

use std::time::Duration;

use regops_core::desired::Desired;
use regops_core::observed::Observed;
use regops_core::plan::Plan;
use regops_core::report::{ItemResult, Report};

use crate::cluster::lock::{self, Lock, LockError};

/// How the writes go: the flags of `apply` that shape them.
#[derive(Clone, Debug)]
pub struct Writes {
    /// Delete the Secrets regops made that the spec no longer names (`--prune`).
    pub prune: bool,
    /// Send every write as a server-side dry run (`--dry-run=server`).
    pub dry_run: bool,
    /// Take over fields another field manager owns (`--force-conflicts`).
    pub force_conflicts: bool,
    /// At most this many writes at once (`--concurrency`).
    pub concurrency: usize,
}

/// One spec's writer: its Lease, this process's name in it, how its writes go, and the Events
/// it records (a long-lived session, the controller's, folds repeats into series).
pub struct Session {
    /// The spec's name: the field manager of its workload entries, the Events' controller.
    pub spec: String,
    /// The Lease's namespace (`--lock-namespace`).
    pub lease_namespace: String,
    /// The Lease's name: `--lock-name`, or `regops-<spec>`.
    pub lease_name: String,
    /// This process, as the Lease's `holderIdentity` and the Events' instance name it.
    pub holder: String,
    /// The Lease's duration, renew deadline and retry period.
    pub times: lock::Times,
    pub writes: Writes,
    recorder: crate::cluster::events::Recorder,
}

/// What [`Session::write`] did.
pub struct Written {
    pub report: Report,
    /// The Lease was lost during the writes: those not yet started were not made.
    pub lock_lost: bool,
    /// Some Events could not be recorded (the writes are not affected).
    pub events_warning: Option<String>,
}

/// A cluster read and planned, under its Lease when there is something to write.
pub struct Staged {
    pub observed: Observed,
    pub desired: Desired,
    pub plan: Plan,
    /// `None` for a dry run or a plan with nothing to write.
    pub lock: Option<Lock>,
}

/// How a waiting process hears of the Lease: `on_wait` once it is found held by another live
/// process, `warn` of a takeover or a failed renewal.
pub struct Waiting<'a> {
    /// How long to wait for another holder; `None`: until taken (a standby controller).
    pub wait: Option<Duration>,
    /// How often to read the Lease again while waiting.
    pub poll: Duration,
    pub on_wait: &'a (dyn Fn(&str) + Sync),
    pub warn: &'a (dyn Fn(&str) + Sync),
}

impl Session {
    /// A session for `spec`; the Lease is `lease_name`, or `regops-<spec>`.
    pub fn new(
        spec: &str,
        lease_namespace: &str,
        lease_name: Option<&str>,
        times: lock::Times,
        writes: Writes,
    ) -> Session {
        let holder = lock::holder_identity();
        Session {
            spec: spec.into(),
            lease_namespace: lease_namespace.into(),
            lease_name: lease_name.map_or_else(|| format!("regops-{spec}"), Into::into),
            recorder: crate::cluster::events::Recorder::new(spec, &holder),
            holder,
            times,
            writes,
        }
    }

    /// Takes the spec's Lease, renewed on its own thread with its own client (from `connect`)
    /// until released.
    pub async fn take_lease(
        &self,
        conn: &crate::cluster::Connection,
        connect: lock::Connect,
        waiting: &Waiting<'_>,
    ) -> Result<Lock, LockError> {
        let settings = lock::Settings {
            namespace: &self.lease_namespace,
            name: &self.lease_name,
            holder: &self.holder,
            times: self.times,
            wait: waiting.wait,
            poll: waiting.poll,
            on_wait: waiting.on_wait,
        };
        lock::acquire(conn, &settings, waiting.warn, connect).await
    }

    /// Steps 1 and 2: `read` reads and plans; when its plan has something to write and this
    /// is no dry run, `take` takes the Lease and `read` runs again under it. The Lease is
    /// released again if that second read fails.
    pub async fn stage<E, T>(
        &self,
        read: impl AsyncFn() -> Result<(Observed, Desired, Plan), E>,
        take: T,
    ) -> Result<Staged, E>
    where
        T: AsyncFnOnce() -> Result<Lock, E>,
    {
        let (observed, desired, plan) = read().await?;
        if !plan.has_changes() || self.writes.dry_run {
            return Ok(Staged {
                observed,
                desired,
                plan,
                lock: None,
            });
        }
        // The first read is dropped before the second: memory holds one cluster's read.
        drop((observed, desired, plan));
        let lock = take().await?;
        match read().await {
            Ok((observed, desired, plan)) => Ok(Staged {
                observed,
                desired,
                plan,
                lock: Some(lock),
            }),
            Err(e) => {
                lock.release().await;
                Err(e)
            }
        }
    }

    /// Steps 3 and 4: carries out `plan` (when it has changes), fenced by `lock` when there is
    /// one, and records its Events (when it has changes or conflicts; none for a dry run or
    /// once the Lease is lost). New writes stop when the Lease is lost or `stop` says so;
    /// `progress` hears of each object as it finishes. The plan's changes carry their writes;
    /// `desired` gives only the Secrets' data, derived by the credential step planning used.
    #[allow(clippy::too_many_arguments)]
    pub async fn write(
        &self,
        conn: &crate::cluster::Connection,
        plan: &Plan,
        desired: &Desired,
        observed: &Observed,
        lock: Option<&Lock>,
        progress: &(dyn Fn(&ItemResult) + Sync),
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Written {
        let lost = || lock.is_some_and(Lock::lost);
        let halt = || lost() || stop();
        let opts = crate::cluster::write::Options {
            spec: self.spec.clone(),
            prune: self.writes.prune,
            dry_run: self.writes.dry_run,
            force_conflicts: self.writes.force_conflicts,
            concurrency: self.writes.concurrency,
        };
        let report = if plan.has_changes() {
            crate::cluster::retry::fenced(
                lock.map(Lock::held),
                crate::cluster::write::run(
                    conn,
                    plan,
                    &crate::cluster::write::SecretData::of(desired),
                    &opts,
                    progress,
                    &halt,
                ),
            )
            .await
        } else {
            Report::default()
        };
        let lock_lost = lost();
        let mut events_warning = None;
        let something = plan.has_changes() || !plan.conflicts.is_empty();
        if something && !self.writes.dry_run && !lock_lost {
            let lease = crate::cluster::events::lease(&self.lease_namespace, &self.lease_name);
            let recorded = self
                .recorder
                .record_apply(conn, plan, &report, observed, Some(lease))
                .await;
            events_warning = recorded.warning();
        }
        Written {
            report,
            lock_lost,
            events_warning,
        }
    }
}

/// Releases the Leases at once: each release waits for its renewal to stop (up to a renew
/// deadline when a renewal is out), and one slow cluster must not hold up the others'
/// standbys.
pub async fn release_all(locks: impl IntoIterator<Item = Lock>) {
    futures::future::join_all(locks.into_iter().map(Lock::release)).await;
}
