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
//! - **A lost lock stops the writing.** When the Lease names another holder, or could not be
//!   renewed within its duration, [`Lock::lost`] turns true: apply starts no new write,
//!   reports what was and was not done, and exits 1.
//! - **Release deletes only this process's Lease**, with uid and resourceVersion
//!   preconditions, so it never deletes the next holder's.
//! - **A lost answer is not a lost lock**: a create retried after a dropped response that
//!   meets 409 reads the Lease, and if it names this process, the lock is held.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, Client};
use tokio::time::Instant;

use crate::retry::retry;

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
            LockError::Held { .. } => Some("wait for it to finish (--lock-wait SECONDS), or, if it died, for the lease to expire".into()),
            LockError::Api { .. } => Some("regops needs get, create, update and delete on leases.coordination.k8s.io in the lock's namespace".into()),
            LockError::Unreachable { .. } => Some("check the server address and that the cluster is up (`kubectl cluster-info` with the same kubeconfig)".into()),
            LockError::Unauthorized => Some("the token or certificate in the kubeconfig is missing, expired or wrong".into()),
        }
    }
}

pub struct Lock {
    api: Api<Lease>,
    name: String,
    holder: String,
    lost: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    renewal: Option<std::thread::JoinHandle<()>>,
}

/// Builds the renewal's own client, on the renewal's thread and runtime (a kube client is
/// driven by the runtime it was built on).
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

/// Which Lease, held by whom, for how long, and how patiently it is waited for.
#[derive(Clone, Copy)]
pub struct Settings<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// This process, as the Lease's `holderIdentity` names it.
    pub holder: &'a str,
    pub duration_secs: i32,
    /// How long to wait for another holder; `None`: until the Lease is taken (a standby
    /// replica of `apply --watch`).
    pub wait: Option<Duration>,
    /// How often a waiting process reads the Lease again (client-go's `RetryPeriod`).
    pub poll: Duration,
    /// Told once, with the holder's identity, when the Lease is found held by another live
    /// process (this one waits).
    pub on_wait: &'a (dyn Fn(&str) + Sync),
}

/// Takes the lock, waiting up to `wait` for another holder to finish. A holder that stopped
/// renewing is taken over once this process has watched its Lease stay the same for a whole
/// lease duration, so `wait` must exceed the duration for a crashed holder to be taken over
/// (`--lock-wait` defaults to 90 s, the lease to 60 s); `warn` hears of a takeover.
// Kept whole (over 80 lines): one loop over the Lease's states (absent, ours, someone else's
// and live, expired), as client-go's tryAcquireOrRenew.
pub async fn acquire(
    client: &Client,
    settings: &Settings<'_>,
    warn: &(dyn Fn(&str) + Sync),
    connect: Connect,
) -> Result<Lock, LockError> {
    let Settings {
        namespace,
        name,
        holder,
        duration_secs,
        wait,
        poll,
        on_wait,
    } = *settings;
    let mut told = false;
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let api_err = |e: kube::Error| match e {
        kube::Error::Api(s) if s.code == 401 => LockError::Unauthorized,
        kube::Error::Api(_) => LockError::Api {
            namespace: namespace.into(),
            name: name.into(),
            detail: e.to_string(),
        },
        other => LockError::Unreachable {
            detail: crate::cluster::root_cause(&other),
        },
    };
    let deadline = wait.map(|w| Instant::now() + w);
    let pp = PostParams::default();
    let mut seen: Option<Observation> = None;
    loop {
        let existing = retry(|| api.get_opt(name)).await.map_err(api_err)?;
        // A standby's work is this wait (/healthz).
        crate::metrics::beat();
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
        let taken = match &existing {
            None => retry(|| api.create(&pp, &mine)).await,
            // Ours already (a create whose answer was lost, then retried): held.
            Some(l) if holder_of(l) == Some(holder) => Ok(l.clone()),
            Some(l) if Observation::expired(&mut seen, l, Instant::now()) => {
                let previous = holder_of(l).map(str::to_string);
                let mut next = mine.clone();
                next.metadata.resource_version = l.metadata.resource_version.clone();
                let transitions = l.spec.as_ref().and_then(|s| s.lease_transitions);
                if let Some(spec) = next.spec.as_mut() {
                    spec.lease_transitions = Some(transitions.unwrap_or(0) + 1);
                }
                let r = retry(|| api.replace(name, &pp, &next)).await;
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
                if deadline.is_some_and(|d| Instant::now() >= d) {
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
                tokio::time::sleep(poll).await;
                continue;
            }
        };
        match taken {
            Ok(_) => break,
            // Someone else was quicker, or our own create's answer was lost: look again (a
            // Lease naming this process is then taken as held).
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(api_err(e)),
        }
    }
    let lost = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    // The renewal has a thread, a runtime and a client of its own: it goes on whatever the
    // main thread is doing (waiting for a typed `yes`, or busy), and apply's own runtime stays
    // single-threaded.
    let renewal = {
        let (lease_ns, lease_name, me) =
            (namespace.to_string(), name.to_string(), holder.to_string());
        let (lost, stop) = (lost.clone(), stop.clone());
        let duration = Duration::from_secs(u64::try_from(duration_secs).unwrap_or(1).max(1));
        std::thread::Builder::new()
            .name("regops-lock".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    lost.store(true, Ordering::SeqCst);
                    return;
                };
                rt.block_on(async move {
                    let Some(client) = connect().await else {
                        lost.store(true, Ordering::SeqCst);
                        return;
                    };
                    let api: Api<Lease> = Api::namespaced(client, &lease_ns);
                    renew(api, lease_name, me, duration, lost, stop).await;
                });
            })
            .map_err(|e| LockError::Api {
                namespace: namespace.into(),
                name: name.into(),
                detail: format!("cannot start the lock's renewal: {e}"),
            })?
    };
    Ok(Lock {
        api,
        name: name.to_string(),
        holder: holder.to_string(),
        lost,
        stop,
        renewal: Some(renewal),
    })
}

/// Renews every third of the duration while the Lease names `holder`; marks the lock lost
/// (and stops) when it names another holder, is gone, or could not be renewed for a whole
/// duration.
async fn renew(
    api: Api<Lease>,
    name: String,
    holder: String,
    duration: Duration,
    lost: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let every = (duration / 3).max(Duration::from_millis(200));
    let mut renewed = Instant::now();
    loop {
        // Wait a third of the duration, looking for the stop every 50 ms.
        let until = Instant::now() + every;
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let attempt = async {
            let Some(mut lease) = api.get_opt(&name).await? else {
                return Ok::<bool, kube::Error>(false);
            };
            if holder_of(&lease) != Some(holder.as_str()) {
                return Ok(false);
            }
            if let Some(spec) = lease.spec.as_mut() {
                spec.renew_time = Some(now());
            }
            // The resourceVersion read is sent back: a takeover in between is a 409.
            api.replace(&name, &PostParams::default(), &lease).await?;
            Ok(true)
        };
        match tokio::time::timeout(every, attempt).await {
            Ok(Ok(true)) => renewed = Instant::now(),
            Ok(Ok(false)) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            // A failed or slow renewal is tried again at the next tick, as long as the Lease
            // can still be ours.
            Ok(Err(_)) | Err(_) => {
                if renewed.elapsed() >= duration {
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
}

impl Lock {
    /// Whether the lock was lost: another process may be applying now.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// A cheap handle on [`Lock::lost`] for the writers.
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }

    /// Stops renewing and deletes the Lease if it still names this process, with its uid and
    /// resourceVersion as preconditions: never the next holder's.
    pub async fn release(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(renewal) = self.renewal.take() {
            // It stops within 50 ms, or after the renewal it is sending (bounded by a third of
            // the duration). Nothing else runs on this runtime meanwhile: blocking is fine.
            let _ = renewal.join();
        }
        let Ok(Some(lease)) = retry(|| self.api.get_opt(&self.name)).await else {
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
        let _ = retry(|| self.api.delete(&self.name, &dp)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
