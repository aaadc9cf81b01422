//! One apply at a time per spec and cluster: a `coordination.k8s.io/v1` Lease, renewed while
//! the apply runs, released at the end, and taken over (with a warning) once it has expired.
//!
//! The rules, after client-go's leader election (k8s.io/client-go/tools/leaderelection):
//! - **Expiry is judged by observed time, never by comparing clocks.** A Lease held by another
//!   process is expired when this process has seen the same record (resourceVersion) for a
//!   whole lease duration, measured on its own monotonic clock; the holder's `renewTime` is
//!   written by the holder's clock and is not compared with ours, so clock skew between
//!   hosts cannot make a live holder look dead.
//! - **Renewal runs on its own** thread, runtime and client: it goes on while the main thread
//!   waits for a typed `yes` or is busy. It renews only while the Lease still
//!   names this process, with the resourceVersion it read (so a takeover in between is seen,
//!   not overwritten).
//! - **Three times, as client-go's**: the Lease lasts `duration` (`--lock-duration`, 15 s) without
//!   renewal; the holder renews every `retry_period` (`--retry-period`, 2 s); and it gives up
//!   writing once `renew_deadline` (`--renew-deadline`, 10 s) has passed since its last
//!   successful renewal, well before a standby may take over (one whole `duration` of seeing
//!   the Lease unchanged). The gap between the two is what keeps two holders from writing at
//!   once while the old one's renewals fail or are slow.
//! - **A lost lock stops the writing.** When the Lease names another holder, or the renew
//!   deadline has passed since the last renewal, [`Lock::lost`] is true: apply starts no new
//!   write, reports what was and was not done, and exits 1. The deadline is judged by the
//!   writer itself on the monotonic clock, not only by the renewal thread: a process that was
//!   paused (SIGSTOP, a frozen VM) and resumes after a standby took over finds the lock lost
//!   before its next write, whatever its renewal thread has had time to notice.
//! - **A Lease that already names this process is renewed before it counts as held** (a
//!   restarted container keeps its hostname and pid 1, so it finds its own name).
//! - **Release deletes only this process's Lease**, with uid and resourceVersion
//!   preconditions, so it never deletes the next holder's.
//! - **A lost answer is not a lost lock**: a create retried after a dropped response that
//!   meets 409 reads the Lease, and if it names this process, the lock is held.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, Client};
use tokio::time::Instant;

use crate::clock::SharedClock;
use crate::cluster::Connection;
use crate::cluster::retry::retry;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another apply holds the lock {namespace}/{name} since {since} (holder `{holder}`)")]
    Held {
        namespace: String,
        name: String,
        holder: String,
        since: String,
    },
    #[error("cannot take the lock {namespace}/{name}: {detail}")]
    Api {
        namespace: String,
        name: String,
        detail: String,
    },
    /// The lock is the first request an apply makes: a cluster that cannot be reached fails
    /// here, and must be told as such (not as missing permissions).
    #[error("cannot reach the cluster to take the lock: {detail}")]
    Unreachable { detail: String },
    #[error("the cluster refused the credentials (401 Unauthorized) when taking the lock")]
    Unauthorized,
}

impl LockError {
    pub fn help(&self) -> Option<String> {
        match self {
            LockError::Held { .. } => Some("wait for it to finish (--lock-wait 5m, say), or, if it died, for the lease to expire".into()),
            LockError::Api { .. } => Some("regops needs get, create, update and delete on leases.coordination.k8s.io in the lock's namespace".into()),
            LockError::Unreachable { .. } => Some("check the server address and that the cluster is up (`kubectl cluster-info` with the same kubeconfig)".into()),
            LockError::Unauthorized => Some("the token or certificate in the kubeconfig is missing, expired or wrong".into()),
        }
    }
}

/// This process's identity in a Lease's `holderIdentity` (and in its User-Agent): the pod's
/// name (`POD_NAME`, from the downward API, as deploy/controller sets it) or else the host
/// name, and the process id, as client-go's examples make it. The pod's name comes first
/// because pods with `hostNetwork` all have their node's host name, and each its own pid 1:
/// two replicas on one node would otherwise share an identity and each take the Lease as
/// its own.
pub fn holder_identity() -> String {
    let host = std::env::var("POD_NAME")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "regops".into());
    format!("{host}/{}", std::process::id())
}

/// When the Lease was last renewed, as milliseconds after `base` on the run's monotonic
/// clock: shared by the renewal thread (which writes it) and the writers (which judge the
/// deadline).
#[derive(Clone)]
struct Renewed {
    clock: SharedClock,
    base: Instant,
    millis: Arc<AtomicU64>,
}

impl Renewed {
    /// Renewed by a request sent at `at` on `clock`.
    fn since(clock: SharedClock, at: Instant) -> Renewed {
        Renewed {
            clock,
            base: at,
            millis: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Renewed by a request sent at `at`: the time it was *sent*, not answered. A standby
    /// starts its clock when it sees the new version, which is after the request was sent, so
    /// judging the renew deadline from the sending keeps the leader's writes inside the
    /// standby's wait however late the answer comes (an answer stamped on arrival would
    /// stretch the leader's window by the answer's delay).
    fn set(&self, at: Instant) {
        let ms =
            u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_max(ms, Ordering::SeqCst);
    }

    fn elapsed(&self) -> Duration {
        let at = self.base + Duration::from_millis(self.millis.load(Ordering::SeqCst));
        self.clock.now().saturating_duration_since(at)
    }
}

/// Whether writing may go on: the Lease still ours as far as this process knows, and renewed
/// within the renew deadline. Cheap; cloned into every writer.
#[derive(Clone)]
pub struct Held {
    lost: Arc<AtomicBool>,
    renewed: Renewed,
    deadline: Duration,
}

impl Held {
    /// Whether the lock is lost: another process may be writing now, or soon may be.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst) || self.renewed.elapsed() >= self.deadline
    }

    /// How long writing may go on if no renewal succeeds from now.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_sub(self.renewed.elapsed())
    }

    /// A lock renewed now with a long deadline, lost when `lost` is set (for tests of what
    /// checks it).
    #[cfg(test)]
    pub(crate) fn for_test(lost: Arc<AtomicBool>) -> Held {
        Held {
            lost,
            renewed: Renewed::since(crate::clock::system(), Instant::now()),
            deadline: Duration::from_secs(3600),
        }
    }
}

pub struct Lock {
    conn: Connection,
    api: Api<Lease>,
    name: String,
    holder: String,
    held: Held,
    stop: Arc<AtomicBool>,
    renewal: Option<std::thread::JoinHandle<()>>,
}

/// Builds the renewal's own client, on the renewal's thread and runtime (a kube client is
/// driven by the runtime it was built on); it talks to the cluster of the connection the lock
/// was taken through, with that run's context.
pub type Connect = Box<
    dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Client>>>> + Send,
>;

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

fn holder_of(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

fn duration_of(lease: &Lease) -> Duration {
    let secs = lease
        .spec
        .as_ref()
        .and_then(|s| s.lease_duration_seconds)
        .unwrap_or(0);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// What this process has seen of another holder's Lease: its resourceVersion, and when (on
/// the local monotonic clock) that version was first seen.
struct Observation {
    resource_version: Option<String>,
    since: Instant,
}

impl Observation {
    /// Updates with the Lease as read now; whether it has gone unrenewed for its duration.
    fn expired(this: &mut Option<Observation>, lease: &Lease, at: Instant) -> bool {
        if holder_of(lease).is_none() {
            return true;
        }
        let rv = lease.metadata.resource_version.clone();
        match this {
            Some(o) if o.resource_version == rv => at.duration_since(o.since) >= duration_of(lease),
            _ => {
                *this = Some(Observation {
                    resource_version: rv,
                    since: at,
                });
                false
            }
        }
    }
}

/// client-go's three leader-election times (`LeaseDuration`, `RenewDeadline`,
/// `RetryPeriod`), with its defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Times {
    /// How long the Lease lasts without renewal (what a standby waits for).
    pub duration: Duration,
    /// How long the holder goes on writing without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the holder renews, and a standby looks at the Lease.
    pub retry_period: Duration,
}

impl Default for Times {
    fn default() -> Times {
        Times {
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Lease times that client-go would refuse (`leaderelection.NewLeaderElector`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimesError {
    #[error("--lock-duration must be at least 1s (a Lease counts whole seconds)")]
    UnderASecond,
    #[error(
        "--lock-duration ({duration:?}) must be longer than --renew-deadline ({renew_deadline:?}): a standby takes over after the duration, and the leader must have stopped writing before"
    )]
    DurationNotLonger {
        duration: Duration,
        renew_deadline: Duration,
    },
    #[error(
        "--renew-deadline ({renew_deadline:?}) must be longer than 1.2 x --retry-period ({retry_period:?}), as client-go requires"
    )]
    DeadlineNotLonger {
        renew_deadline: Duration,
        retry_period: Duration,
    },
}

impl Times {
    /// client-go's checks (leaderelection.NewLeaderElector): the duration longer than the
    /// renew deadline, and the deadline longer than the retry period with its jitter (x1.2).
    /// The Lease records whole seconds, so the duration is at least one.
    pub fn check(&self) -> Result<(), TimesError> {
        if self.duration < Duration::from_secs(1) {
            return Err(TimesError::UnderASecond);
        }
        if self.duration <= self.renew_deadline {
            return Err(TimesError::DurationNotLonger {
                duration: self.duration,
                renew_deadline: self.renew_deadline,
            });
        }
        if self.renew_deadline.as_secs_f64() <= 1.2 * self.retry_period.as_secs_f64() {
            return Err(TimesError::DeadlineNotLonger {
                renew_deadline: self.renew_deadline,
                retry_period: self.retry_period,
            });
        }
        Ok(())
    }

    /// The duration as the Lease's `leaseDurationSeconds`: whole seconds, rounded up.
    fn lease_seconds(&self) -> i32 {
        let secs = self.duration.as_secs() + u64::from(self.duration.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }
}

/// Which Lease, held by whom, for how long, and how patiently it is waited for.
#[derive(Clone, Copy)]
pub struct Settings<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// This process, as the Lease's `holderIdentity` names it.
    pub holder: &'a str,
    pub times: Times,
    /// How long to wait for another holder; `None`: until the Lease is taken (a standby
    /// replica of `apply --watch`).
    pub wait: Option<Duration>,
    /// How often a waiting process reads the Lease again: the retry period for a standby,
    /// quicker for a one-off apply waiting on another.
    pub poll: Duration,
    /// Told once, with the holder's identity, when the Lease is found held by another live
    /// process (this one waits).
    pub on_wait: &'a (dyn Fn(&str) + Sync),
}

/// Takes the lock, waiting up to `wait` for another holder to finish. A holder that stopped
/// renewing is taken over once this process has watched its Lease stay the same for a whole
/// lease duration, so `wait` must exceed the duration for a crashed holder to be taken over
/// (`--lock-wait` defaults to 90 s, the lease to 15 s); `warn` hears of a takeover.
// Kept whole (over 80 lines): one loop over the Lease's states (absent, ours, someone else's
// and live, expired), as client-go's tryAcquireOrRenew.
pub async fn acquire(
    conn: &Connection,
    settings: &Settings<'_>,
    warn: &(dyn Fn(&str) + Sync),
    connect: Connect,
) -> Result<Lock, LockError> {
    let Settings {
        namespace,
        name,
        holder,
        times,
        wait,
        poll,
        on_wait,
    } = *settings;
    let duration_secs = times.lease_seconds();
    let mut told = false;
    let clock = conn.ctx.clock.clone();
    let api: Api<Lease> = conn.namespaced(namespace);
    let api_err = |e: kube::Error| match e {
        kube::Error::Api(s) if s.code == 401 => LockError::Unauthorized,
        kube::Error::Api(_) => LockError::Api {
            namespace: namespace.into(),
            name: name.into(),
            detail: e.to_string(),
        },
        other => LockError::Unreachable {
            detail: crate::errors::root_cause(&other),
        },
    };
    let deadline = wait.map(|w| clock.now() + w);
    let pp = PostParams::default();
    let mut seen: Option<Observation> = None;
    let sent = loop {
        let existing = retry(conn, || api.get_opt(name)).await.map_err(api_err)?;
        // A standby's work is this wait (/healthz).
        crate::cluster::progress::beat();
        let mine = Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                ..LeaseSpec::default()
            }),
        };
        // The Lease counts as renewed from when the attempt that took it was sent (see
        // `Renewed::set`): each attempt stamps it, so retries do not eat the renew deadline.
        let mut sent = clock.now();
        let taken = match &existing {
            None => {
                retry(conn, || {
                    sent = clock.now();
                    api.create(&pp, &mine)
                })
                .await
            }
            // Ours already: a create whose answer was lost and was retried, or this process's
            // name from before a restart (same host name, same pid). Renewed before it counts
            // as held, with the resourceVersion read, so a takeover in between is a 409.
            Some(l) if holder_of(l) == Some(holder) => {
                let mut next = l.clone();
                if let Some(spec) = next.spec.as_mut() {
                    spec.renew_time = Some(now());
                    spec.lease_duration_seconds = Some(duration_secs);
                }
                retry(conn, || {
                    sent = clock.now();
                    api.replace(name, &pp, &next)
                })
                .await
            }
            Some(l) if Observation::expired(&mut seen, l, clock.now()) => {
                let previous = holder_of(l).map(str::to_string);
                let mut next = mine.clone();
                next.metadata.resource_version = l.metadata.resource_version.clone();
                let transitions = l.spec.as_ref().and_then(|s| s.lease_transitions);
                if let Some(spec) = next.spec.as_mut() {
                    spec.lease_transitions = Some(transitions.unwrap_or(0) + 1);
                }
                let r = retry(conn, || {
                    sent = clock.now();
                    api.replace(name, &pp, &next)
                })
                .await;
                if r.is_ok()
                    && let Some(p) = previous
                {
                    warn(&format!(
                        "took over the lock {namespace}/{name}: its holder `{p}` stopped renewing it"
                    ));
                }
                r
            }
            Some(l) => {
                if !told {
                    on_wait(holder_of(l).unwrap_or_default());
                    told = true;
                }
                if deadline.is_some_and(|d| clock.now() >= d) {
                    let spec = l.spec.clone().unwrap_or_default();
                    return Err(LockError::Held {
                        namespace: namespace.into(),
                        name: name.into(),
                        holder: spec.holder_identity.unwrap_or_default(),
                        since: spec
                            .acquire_time
                            .map(|t| t.0.to_string())
                            .unwrap_or_else(|| "an unknown time".into()),
                    });
                }
                clock.sleep(poll).await;
                continue;
            }
        };
        match taken {
            Ok(_) => break sent,
            // Someone else was quicker, or our own create's answer was lost: look again (a
            // Lease naming this process is then taken as held).
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(api_err(e)),
        }
    };
    let held = Held {
        lost: Arc::new(AtomicBool::new(false)),
        renewed: Renewed::since(clock.clone(), sent),
        deadline: times.renew_deadline,
    };
    let stop = Arc::new(AtomicBool::new(false));
    // The renewal has a thread, a runtime and a client of its own: it goes on whatever the
    // main thread is doing (waiting for a typed `yes`, or busy), and apply's own runtime stays
    // single-threaded.
    let renewal = {
        let (lease_ns, lease_name, me, base) = (
            namespace.to_string(),
            name.to_string(),
            holder.to_string(),
            conn.clone(),
        );
        let (held, stop) = (held.clone(), stop.clone());
        std::thread::Builder::new()
            .name("regops-lock".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    held.lost.store(true, Ordering::SeqCst);
                    return;
                };
                rt.block_on(async move {
                    let Some(client) = connect().await else {
                        held.lost.store(true, Ordering::SeqCst);
                        return;
                    };
                    let conn = base.with_client(client);
                    renew(&conn, &lease_ns, lease_name, me, times, held, stop).await;
                });
            })
            .map_err(|e| LockError::Api {
                namespace: namespace.into(),
                name: name.into(),
                detail: format!("cannot start the lock's renewal: {e}"),
            })?
    };
    Ok(Lock {
        conn: conn.clone(),
        api,
        name: name.to_string(),
        holder: holder.to_string(),
        held,
        stop,
        renewal: Some(renewal),
    })
}

/// Renews every retry period while the Lease names `holder`; marks the lock lost (and stops)
/// when it names another holder or is gone, or when no renewal has succeeded within the renew
/// deadline (client-go's renew loop). Each attempt gets what is left of the deadline.
async fn renew(
    conn: &Connection,
    namespace: &str,
    name: String,
    holder: String,
    times: Times,
    held: Held,
    stop: Arc<AtomicBool>,
) {
    let api: Api<Lease> = conn.namespaced(namespace);
    let clock = &conn.ctx.clock;
    let every = times.retry_period.max(Duration::from_millis(50));
    loop {
        // Wait a retry period, looking for the stop every 50 ms.
        let until = clock.now() + every;
        while clock.now() < until {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            clock.sleep(Duration::from_millis(50).min(every)).await;
        }
        if stop.load(Ordering::SeqCst) || held.lost() {
            held.lost.store(true, Ordering::SeqCst);
            return;
        }
        let attempt = async {
            let Some(mut lease) = api.get_opt(&name).await? else {
                return Ok::<Option<Instant>, kube::Error>(None);
            };
            if holder_of(&lease) != Some(holder.as_str()) {
                return Ok(None);
            }
            if let Some(spec) = lease.spec.as_mut() {
                spec.renew_time = Some(now());
            }
            let sent = clock.now();
            // The resourceVersion read is sent back: a takeover in between is a 409.
            api.replace(&name, &PostParams::default(), &lease).await?;
            Ok(Some(sent))
        };
        let left = times.renew_deadline.saturating_sub(held.renewed.elapsed());
        match tokio::time::timeout(left, attempt).await {
            Ok(Ok(Some(sent))) => held.renewed.set(sent),
            Ok(Ok(None)) => {
                held.lost.store(true, Ordering::SeqCst);
                return;
            }
            // A failed or slow renewal is tried again at the next tick, as long as the renew
            // deadline has not passed.
            Ok(Err(_)) | Err(_) => {
                if held.lost() {
                    held.lost.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
}

impl Lock {
    /// Whether the lock was lost: another process may be applying now.
    pub fn lost(&self) -> bool {
        self.held.lost()
    }

    /// A cheap handle on [`Lock::lost`] for the writers.
    pub fn held(&self) -> Held {
        self.held.clone()
    }

    /// Stops renewing and deletes the Lease if it still names this process, with its uid and
    /// resourceVersion as preconditions: never the next holder's.
    pub async fn release(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(renewal) = self.renewal.take() {
            // It stops within 50 ms, or after the renewal it is sending (bounded by the renew
            // deadline). Waited for without blocking the runtime: other clusters of a fleet,
            // and the controller's listener, go on meanwhile.
            while !renewal.is_finished() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let _ = renewal.join();
        }
        let Ok(Some(lease)) = retry(&self.conn, || self.api.get_opt(&self.name)).await else {
            return;
        };
        if holder_of(&lease) != Some(self.holder.as_str()) {
            return;
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: lease.metadata.uid.clone(),
                resource_version: lease.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        // 404 (gone already, or a retried delete whose first answer was lost) and 409 (it
        // changed hands meanwhile) both leave nothing of ours to delete.
        let _ = retry(&self.conn, || self.api.delete(&self.name, &dp)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_times_are_checked_as_client_go_checks_them() {
        assert_eq!(Times::default().check(), Ok(()));
        let t = |d: u64, r: u64, p: u64| Times {
            duration: Duration::from_millis(d),
            renew_deadline: Duration::from_millis(r),
            retry_period: Duration::from_millis(p),
        };
        assert!(
            t(10_000, 10_000, 2_000).check().is_err(),
            "duration = deadline"
        );
        assert!(
            t(15_000, 2_400, 2_000).check().is_err(),
            "deadline = 1.2 x retry"
        );
        assert!(t(15_000, 2_500, 2_000).check().is_ok());
        assert!(t(500, 400, 100).check().is_err(), "under a second");
        assert_eq!(t(2_500, 1_000, 100).lease_seconds(), 3, "rounded up");
    }

    /// A Lease that already names this process (a restarted container: same host name, same
    /// pid) is renewed, with the resourceVersion read, before the lock counts as held.
    #[test]
    fn a_lease_in_this_processs_name_is_renewed_before_it_is_held() {
        let server = kube_test_server::TestServer::start(kube_test_server::Config::default())
            .expect("test server");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let me = holder_identity();
        server
            .seed(serde_json::json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "regops-x", "namespace": "default"},
                "spec": {"holderIdentity": me, "leaseDurationSeconds": 15,
                         "renewTime": "2020-01-01T00:00:00.000000Z"}
            }))
            .expect("seed");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (client, _) = crate::cluster::client::connect(Some(&kubeconfig), None)
                .await
                .expect("client");
            let settings = Settings {
                namespace: "default",
                name: "regops-x",
                holder: &me,
                times: Times::default(),
                wait: Some(Duration::ZERO),
                poll: Duration::from_millis(50),
                on_wait: &|_: &str| {},
            };
            let path = kubeconfig.clone();
            let connect: Connect = Box::new(move || {
                Box::pin(async move {
                    crate::cluster::client::connect(Some(&path), None)
                        .await
                        .ok()
                        .map(|(c, _)| c)
                })
            });
            let conn = Connection::new(client, crate::context::RunContext::default());
            let lock = acquire(&conn, &settings, &|_: &str| {}, connect)
                .await
                .expect("held");
            assert!(!lock.lost());
            lock.release().await;
        });
        let renewals: Vec<_> = server
            .log()
            .into_iter()
            .filter(|l| l.resource == "leases" && l.verb == "update")
            .collect();
        assert_eq!(renewals.len(), 1, "renewed once on taking it: {renewals:?}");
        assert_eq!(renewals[0].status, 200);
    }

    /// A test server (with `seed`, if any), and a runtime and connection to it whose run
    /// goes by `clock`; the renewal connects the same way.
    struct OnServer {
        server: kube_test_server::TestServer,
        _dir: tempfile::TempDir,
        kubeconfig: std::path::PathBuf,
        rt: tokio::runtime::Runtime,
    }

    impl OnServer {
        fn start(seed: Option<serde_json::Value>) -> OnServer {
            let server = kube_test_server::TestServer::start(kube_test_server::Config::default())
                .expect("test server");
            if let Some(obj) = seed {
                server.seed(obj).expect("seed");
            }
            let dir = tempfile::tempdir().expect("tempdir");
            let kubeconfig = dir.path().join("kubeconfig");
            server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            OnServer {
                server,
                _dir: dir,
                kubeconfig,
                rt,
            }
        }

        fn conn(&self, clock: SharedClock) -> Connection {
            let (client, _) = self
                .rt
                .block_on(crate::cluster::client::connect(
                    Some(&self.kubeconfig),
                    None,
                ))
                .expect("client");
            let ctx = crate::context::RunContext {
                clock,
                ..crate::context::RunContext::default()
            };
            Connection::new(client, ctx)
        }

        fn renewal(&self) -> Connect {
            crate::cluster::client::lock_connect(Some(self.kubeconfig.clone()), None)
        }

        /// Takes the Lease as this process through `conn`, waiting up to `wait`; `warn` hears
        /// of a takeover.
        fn take(
            &self,
            conn: &Connection,
            wait: Duration,
            warn: &(dyn Fn(&str) + Sync),
        ) -> Result<Lock, LockError> {
            let me = holder_identity();
            self.rt
                .block_on(acquire(conn, &settings(&me, wait), warn, self.renewal()))
        }

        fn lease(&self) -> serde_json::Value {
            self.server
                .object("leases", "default", "regops-x")
                .expect("the Lease")
        }
    }

    fn settings<'a>(me: &'a str, wait: Duration) -> Settings<'a> {
        Settings {
            namespace: "default",
            name: "regops-x",
            holder: me,
            times: Times::default(),
            wait: Some(wait),
            poll: Duration::from_secs(2),
            on_wait: &|_: &str| {},
        }
    }

    fn held_by_other() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "regops-x", "namespace": "default"},
            "spec": {"holderIdentity": "other/1", "leaseDurationSeconds": 15,
                     "renewTime": "2020-01-01T00:00:00.000000Z"}
        })
    }

    /// Waits (in real time, a few seconds at most) until `done`, while the renewal thread
    /// moves the clock on by sleeping on it.
    fn until(done: impl Fn() -> bool) {
        let give_up = std::time::Instant::now() + Duration::from_secs(20);
        while !done() && std::time::Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// A holder that stopped renewing is taken over once this process has seen its Lease
    /// unchanged for the whole lease duration (15 s) on the run's clock, polling every retry
    /// period: at 16 s, not before. The clock is the test's: no second of it is waited.
    #[test]
    fn a_silent_holder_is_taken_over_after_the_lease_duration_on_the_runs_clock() {
        let on = OnServer::start(Some(held_by_other()));
        let clock = crate::clock::ManualClock::new();
        let conn = on.conn(clock.clone());
        let me = holder_identity();
        let told = std::sync::Mutex::new(Vec::new());
        let warn = |m: &str| {
            told.lock()
                .expect("told")
                .push((m.to_string(), clock.elapsed()));
        };
        let lock = on
            .take(&conn, Duration::from_secs(90), &warn)
            .expect("taken over");
        let told = told.lock().expect("told").clone();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].0.contains("`other/1` stopped renewing"), "{told:?}");
        assert_eq!(told[0].1, Duration::from_secs(16), "taken over at 16 s");
        let lease = on.lease();
        assert_eq!(lease["spec"]["holderIdentity"], me.as_str());
        assert_eq!(lease["spec"]["leaseTransitions"], 1);
        on.rt.block_on(lock.release());
    }

    /// A Lease held by another is waited for up to `--lock-wait` on the run's clock, then
    /// refused, naming its holder; nothing is written to it.
    #[test]
    fn another_holder_is_waited_for_up_to_the_wait_on_the_runs_clock() {
        let on = OnServer::start(Some(held_by_other()));
        let clock = crate::clock::ManualClock::new();
        let conn = on.conn(clock.clone());
        let r = on.take(&conn, Duration::from_secs(10), &|_: &str| {});
        let Err(LockError::Held { holder, .. }) = r else {
            panic!("not refused as held");
        };
        assert_eq!(holder, "other/1");
        assert_eq!(
            clock.elapsed(),
            Duration::from_secs(10),
            "polled until the wait"
        );
        assert_eq!(on.lease()["spec"]["holderIdentity"], "other/1");
        assert!(
            on.server.log().iter().all(|l| l.verb == "get"),
            "only read while waiting"
        );
    }

    /// The holder renews every retry period (2 s) on the run's clock and keeps the lock: a
    /// minute of it is 30 renewals.
    #[test]
    fn a_held_lock_is_renewed_every_retry_period_and_kept() {
        let on = OnServer::start(None);
        let clock = crate::clock::ManualClock::new();
        let conn = on.conn(clock.clone());
        let lock = on.take(&conn, Duration::ZERO, &|_: &str| {}).expect("held");
        until(|| clock.elapsed() >= Duration::from_secs(60));
        assert!(
            clock.elapsed() >= Duration::from_secs(60),
            "the renewal stopped"
        );
        assert!(!lock.lost());
        // Released, the renewal stops and the clock with it: the renewals are then those of
        // the time it ran, one per retry period.
        on.rt.block_on(lock.release());
        let ran = clock.elapsed();
        let renewals = on
            .server
            .log()
            .iter()
            .filter(|l| l.resource == "leases" && l.verb == "update" && l.status == 200)
            .count();
        let periods = usize::try_from(ran.as_secs() / 2).unwrap_or(usize::MAX);
        assert!(
            (periods.saturating_sub(1)..=periods + 1).contains(&renewals),
            "{renewals} renewals in {ran:?}"
        );
        assert!(
            on.server.object("leases", "default", "regops-x").is_none(),
            "released"
        );
    }

    /// Renewals that fail (the API server answers 500) lose the lock once the renew deadline
    /// (10 s) has passed since the last one that succeeded, on the run's clock; the Lease
    /// still names this process, so the loss is the deadline's, as client-go's renew loop
    /// gives up.
    #[test]
    fn failing_renewals_lose_the_lock_at_the_renew_deadline_on_the_runs_clock() {
        let on = OnServer::start(None);
        let clock = crate::clock::ManualClock::new();
        let conn = on.conn(clock.clone());
        let me = holder_identity();
        let mut fault = kube_test_server::Fault::status(500);
        fault.verb = Some("update".into());
        fault.resource = Some("leases".into());
        on.server.add_fault(fault);
        let lock = on.take(&conn, Duration::ZERO, &|_: &str| {}).expect("held");
        until(|| lock.lost());
        assert!(lock.lost(), "still held after {:?}", clock.elapsed());
        let at = clock.elapsed();
        assert!(
            at >= Duration::from_secs(10) && at <= Duration::from_secs(13),
            "lost at {at:?}"
        );
        assert_eq!(on.lease()["spec"]["holderIdentity"], me.as_str());
        on.server.clear_faults();
        on.rt.block_on(lock.release());
    }

    fn lease(holder: &str, rv: &str, renew_seconds_ago: i64) -> Lease {
        let t = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_secs(renew_seconds_ago))
            .unwrap_or_else(|_| jiff::Timestamp::now());
        Lease {
            metadata: ObjectMeta {
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(10),
                renew_time: Some(MicroTime(t)),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn expiry_is_observed_time_not_the_holders_clock() {
        let start = Instant::now();
        let mut seen = None;
        // A renewTime two hours old (the holder's clock is behind): not expired on sight.
        let skewed = lease("other", "1", 7200);
        assert!(!Observation::expired(&mut seen, &skewed, start));
        assert!(!Observation::expired(
            &mut seen,
            &skewed,
            start + Duration::from_secs(9)
        ));
        // Renewed (a new resourceVersion): the clock starts again.
        let renewed = lease("other", "2", 7200);
        assert!(!Observation::expired(
            &mut seen,
            &renewed,
            start + Duration::from_secs(11)
        ));
        assert!(!Observation::expired(
            &mut seen,
            &renewed,
            start + Duration::from_secs(20)
        ));
        // Unchanged for a whole duration since it was first seen: expired.
        assert!(Observation::expired(
            &mut seen,
            &renewed,
            start + Duration::from_secs(21)
        ));
        // A renewTime in the future (the holder's clock is ahead) does not keep a silent
        // holder alive either.
        let mut seen = None;
        let ahead = lease("other", "7", -7200);
        assert!(!Observation::expired(&mut seen, &ahead, start));
        assert!(Observation::expired(
            &mut seen,
            &ahead,
            start + Duration::from_secs(10)
        ));
        // No holder: free.
        let mut seen = None;
        assert!(Observation::expired(&mut seen, &lease("", "1", 0), start));
    }
}
