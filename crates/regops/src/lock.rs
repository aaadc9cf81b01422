//! One apply at a time per spec and cluster: a `coordination.k8s.io/v1` Lease, renewed while
//! the apply runs, released at the end, and taken over (with a warning) once it has expired.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

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
}

impl LockError {
    pub fn help(&self) -> Option<String> {
        match self {
            LockError::Held { .. } => Some("wait for it to finish (--lock-wait SECONDS), or, if it died, for the lease to expire".into()),
            LockError::Api { .. } => Some("regops needs get, create, update and delete on leases.coordination.k8s.io in the lock's namespace".into()),
        }
    }
}

pub struct Lock {
    api: Api<Lease>,
    name: String,
    renewal: tokio::task::JoinHandle<()>,
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

fn expired(lease: &Lease) -> bool {
    let Some(spec) = &lease.spec else { return true };
    if spec.holder_identity.as_deref().is_none_or(str::is_empty) {
        return true;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    match &spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) {
        Some(t) => jiff::Timestamp::now().as_second() > t.0.as_second() + duration,
        None => true,
    }
}

/// Takes the lock, waiting up to `wait` for another holder to finish. `warn` hears of a
/// stale lock taken over.
pub async fn acquire(
    client: &Client,
    namespace: &str,
    name: &str,
    holder: &str,
    duration_secs: i32,
    wait: Duration,
    warn: &(dyn Fn(&str) + Sync),
) -> Result<Lock, LockError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let api_err = |e: kube::Error| LockError::Api {
        namespace: namespace.into(),
        name: name.into(),
        detail: e.to_string(),
    };
    let deadline = tokio::time::Instant::now() + wait;
    let pp = PostParams::default();
    loop {
        let existing = retry(|| api.get_opt(name)).await.map_err(api_err)?;
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
            Some(l) if expired(l) => {
                let previous = l
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.clone())
                    .filter(|h| !h.is_empty());
                let mut next = mine.clone();
                next.metadata.resource_version = l.metadata.resource_version.clone();
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
                let spec = l.spec.clone().unwrap_or_default();
                if tokio::time::Instant::now() >= deadline {
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
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        match taken {
            Ok(_) => break,
            // Someone else was quicker: look again.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(api_err(e)),
        }
    }
    let renew_api = api.clone();
    let renew_name = name.to_string();
    let every = Duration::from_secs(u64::try_from(duration_secs / 3).unwrap_or(1).max(1));
    let renewal = tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Ok(mut lease) = renew_api.get(&renew_name).await {
                if let Some(spec) = lease.spec.as_mut() {
                    spec.renew_time = Some(now());
                }
                let _ = renew_api
                    .replace(&renew_name, &PostParams::default(), &lease)
                    .await;
            }
        }
    });
    Ok(Lock {
        api,
        name: name.to_string(),
        renewal,
    })
}

impl Lock {
    /// Stops renewing and deletes the lease.
    pub async fn release(self) {
        self.renewal.abort();
        let dp = DeleteParams::default();
        let _ = retry(|| self.api.delete(&self.name, &dp)).await;
    }
}
