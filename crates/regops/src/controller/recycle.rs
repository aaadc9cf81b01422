//! `apply --watch --recycle-stuck-pods`: deleting the pods stuck pulling an image from a
//! registry regops has just provided a pull secret for, so that their controller recreates
//! them at once instead of after the kubelet's backoff (up to five minutes), or never (a pod
//! admitted before its ServiceAccount had the entry never gets it).
//!
//! A pod is recycled only when all of these hold:
//! - a container or init container is waiting with `ImagePullBackOff` or `ErrImagePull`;
//! - that container's image pulls from one of the registries of the pull secrets regops has
//!   just written (or referenced) in the pod's namespace;
//! - the pod has a controller owner (a ReplicaSet, StatefulSet, DaemonSet, Job): a bare pod
//!   would not come back.
//!
//! Deletions carry the pod's uid as a precondition (never its replacement's), are spaced to at
//! most [`PER_SECOND`] a second, and each is logged. Pods are read with a namespaced LIST for a
//! few namespaces, or one LIST of `status.phase=Pending` pods across the cluster for more (a
//! pod that cannot pull its image is Pending).

use std::collections::BTreeSet;
use std::time::Duration;

use kube::api::{DeleteParams, ListParams, Preconditions};
use regops_core::image::ImageRef;
use serde::Deserialize;

use crate::cluster::Connection;
use crate::cluster::retry::retry;

/// The waiting reasons of a container that cannot pull its image (kubelet's
/// `images.ErrImagePullBackOff` and `images.ErrImagePull`).
pub const REASONS: [&str; 2] = ["ImagePullBackOff", "ErrImagePull"];

/// Deletions per second, at most.
pub const PER_SECOND: u32 = 5;

/// Up to this many namespaces are read one by one; past it, one cluster-wide LIST.
const NAMESPACED_MAX: usize = crate::cluster::read::NAMESPACED_READ_MAX;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PodList {
    pub metadata: ListMeta,
    pub items: Vec<Pod>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListMeta {
    #[serde(rename = "continue")]
    pub continue_: Option<String>,
}

/// A pod, as far as recycling reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Pod {
    pub metadata: PodMeta,
    pub status: PodStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodMeta {
    pub name: String,
    pub namespace: String,
    pub uid: Option<String>,
    pub owner_references: Vec<OwnerRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
    pub controller: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStatus {
    pub container_statuses: Vec<ContainerStatus>,
    pub init_container_statuses: Vec<ContainerStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContainerStatus {
    pub image: String,
    pub state: ContainerState,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContainerState {
    pub waiting: Option<Waiting>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Waiting {
    pub reason: String,
}

/// A pod to recycle, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Stuck {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    pub image: String,
    pub reason: String,
    /// Its controller, `Kind/name`.
    pub owner: String,
}

/// Whether `pod` is stuck pulling from one of `servers` and would come back if deleted.
pub fn stuck(pod: &Pod, servers: &[String]) -> Option<Stuck> {
    let owner = pod
        .metadata
        .owner_references
        .iter()
        .find(|o| o.controller == Some(true))?;
    let status = pod
        .status
        .container_statuses
        .iter()
        .chain(&pod.status.init_container_statuses)
        .find(|c| {
            c.state
                .waiting
                .as_ref()
                .is_some_and(|w| REASONS.contains(&w.reason.as_str()))
                && servers
                    .iter()
                    .any(|s| ImageRef::parse(&c.image).pulls_from(s))
        })?;
    Some(Stuck {
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        image: status.image.clone(),
        reason: status
            .state
            .waiting
            .as_ref()
            .map(|w| w.reason.clone())
            .unwrap_or_default(),
        owner: format!("{}/{}", owner.kind, owner.name),
    })
}

/// Spaces deletions to at most [`PER_SECOND`] a second, across calls.
pub struct Limiter {
    next: tokio::time::Instant,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            next: tokio::time::Instant::now(),
        }
    }
}

impl Limiter {
    async fn wait(&mut self) {
        tokio::time::sleep_until(self.next).await;
        self.next = tokio::time::Instant::now() + Duration::from_secs(1) / PER_SECOND;
    }
}

async fn list(
    conn: &Connection,
    namespace: Option<&str>,
    params: ListParams,
) -> Result<Vec<Pod>, kube::Error> {
    let path = match namespace {
        Some(ns) => format!("/api/v1/namespaces/{ns}/pods"),
        None => "/api/v1/pods".to_string(),
    };
    let limits = conn.ctx.list_limits;
    let exceeded = |e: crate::cluster::read::Exceeded| {
        kube::Error::Service(Box::new(std::io::Error::other(format!(
            "the API server's LIST of pods {e}"
        ))))
    };
    let request = kube::core::Request::new(path);
    let mut params = params.limit(crate::cluster::read::PAGE);
    let pages = async {
        let (mut out, mut pages, mut items) = (Vec::new(), 0u64, 0u64);
        loop {
            // Each page within the size of a LIST page, the LIST within its pages, objects
            // and time (`--max-list-*`, `--list-timeout`), as every read of the cluster.
            let page: PodList = retry(conn, || async {
                let req = request.list(&params).map_err(kube::Error::BuildRequest)?;
                let body = conn.client.request_stream(req).await?;
                let mut body = std::pin::pin!(body);
                let mut buf = Vec::new();
                crate::bounded::read_to_end(&mut body, &mut buf, crate::bounded::PAGE_LIMIT)
                    .await
                    .map_err(|e| kube::Error::Service(Box::new(e)))?;
                serde_json::from_slice(&buf).map_err(kube::Error::SerdeError)
            })
            .await?;
            pages += 1;
            items = items.saturating_add(page.items.len() as u64);
            if items > limits.items {
                return Err(exceeded(crate::cluster::read::Exceeded::Items(
                    limits.items,
                )));
            }
            out.extend(page.items.into_iter().filter(|p| {
                !p.status.container_statuses.is_empty()
                    || !p.status.init_container_statuses.is_empty()
            }));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(_) if pages >= limits.pages => {
                    return Err(exceeded(crate::cluster::read::Exceeded::Pages(
                        limits.pages,
                    )));
                }
                Some(token) => params = params.continue_token(&token),
                None => return Ok(out),
            }
        }
    };
    tokio::time::timeout(limits.time, pages)
        .await
        .map_err(|_| exceeded(crate::cluster::read::Exceeded::Time(limits.time)))?
}

/// Finds and deletes the stuck pods of `namespaces`, each with the registries (`servers`)
/// regops just provided there; `log` hears of each deletion. `halt` is asked before each
/// deletion (the Lease lost, or a stop asked): once true, nothing more is deleted. Returns how
/// many were deleted.
pub async fn recycle(
    conn: &Connection,
    namespaces: &[(String, Vec<String>)],
    limiter: &mut Limiter,
    log: &(dyn Fn(&str) + Sync),
    halt: &(dyn Fn() -> bool + Sync),
) -> Result<usize, kube::Error> {
    if namespaces.is_empty() {
        return Ok(0);
    }
    let pending = ListParams::default().fields("status.phase=Pending");
    let pods = if namespaces.len() <= NAMESPACED_MAX {
        let mut all = Vec::new();
        for (ns, _) in namespaces {
            all.extend(list(conn, Some(ns), pending.clone()).await?);
        }
        all
    } else {
        let wanted: BTreeSet<&str> = namespaces.iter().map(|(n, _)| n.as_str()).collect();
        let mut all = list(conn, None, pending).await?;
        all.retain(|p| wanted.contains(p.metadata.namespace.as_str()));
        all
    };
    let mut deleted = 0;
    for pod in &pods {
        let Some(servers) = namespaces
            .iter()
            .find(|(n, _)| *n == pod.metadata.namespace)
            .map(|(_, s)| s)
        else {
            continue;
        };
        let Some(s) = stuck(pod, servers) else {
            continue;
        };
        limiter.wait().await;
        if halt() {
            break;
        }
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> = conn.namespaced(&s.namespace);
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: s.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match retry(conn, || api.delete(&s.name, &dp)).await {
            Ok(_) => {
                deleted += 1;
                log(&format!(
                    "recycled pod {}/{} ({} for {}): {} recreates it with the pull secret",
                    s.namespace, s.name, s.reason, s.image, s.owner
                ));
            }
            // Gone already, or replaced (another uid): nothing to do.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => log(&format!(
                "cannot recycle pod {}/{}: {}",
                s.namespace,
                s.name,
                crate::errors::describe(&e)
            )),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pod(owner: bool, image: &str, reason: &str, init: bool) -> Pod {
        let status = serde_json::json!([{"name": "c", "image": image, "state": {"waiting": {"reason": reason}}}]);
        let key = if init {
            "initContainerStatuses"
        } else {
            "containerStatuses"
        };
        let owners = if owner {
            serde_json::json!([{"kind": "ReplicaSet", "name": "web-7d9", "controller": true}])
        } else {
            serde_json::json!([{"kind": "ConfigMap", "name": "x"}])
        };
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-7d9-abc", "namespace": "web", "uid": "u1", "ownerReferences": owners},
            "status": {"phase": "Pending", key: status}
        }))
        .unwrap()
    }

    #[test]
    fn only_controlled_pods_stuck_on_a_registry_just_provided() {
        let servers = vec!["harbor.example.com".to_string()];
        let s = stuck(
            &pod(
                true,
                "harbor.example.com/web/app:1",
                "ImagePullBackOff",
                false,
            ),
            &servers,
        )
        .unwrap();
        assert_eq!(
            (s.reason.as_str(), s.owner.as_str(), s.uid.as_deref()),
            ("ImagePullBackOff", "ReplicaSet/web-7d9", Some("u1"))
        );
        assert!(
            stuck(
                &pod(true, "harbor.example.com/web/app:1", "ErrImagePull", true),
                &servers
            )
            .is_some()
        );
        // Not controlled: it would not come back.
        assert!(
            stuck(
                &pod(
                    false,
                    "harbor.example.com/web/app:1",
                    "ImagePullBackOff",
                    false
                ),
                &servers
            )
            .is_none()
        );
        // Another registry (Docker Hub, as the kubelet normalises `nginx`).
        assert!(
            stuck(
                &pod(true, "nginx:1.27", "ImagePullBackOff", false),
                &servers
            )
            .is_none()
        );
        // Waiting for another reason.
        assert!(
            stuck(
                &pod(
                    true,
                    "harbor.example.com/web/app:1",
                    "ContainerCreating",
                    false
                ),
                &servers
            )
            .is_none()
        );
        // Docker Hub provided: `nginx` is docker.io.
        assert!(
            stuck(
                &pod(true, "nginx:1.27", "ErrImagePull", false),
                &["docker.io".to_string()]
            )
            .is_some()
        );
    }
}
