//! Reading the cluster: a small, fixed number of paged LIST calls per resource kind, never a
//! request per namespace or per object. Or a state file instead of a cluster.

use std::path::Path;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{ListParams, ObjectList};
use kube::{Api, Client};
use regops_core::observed::{Observed, Skipped};
use regops_core::ownership::{self, MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use regops_spec::{Spec, WorkloadKind};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cluster::{ClusterError, Target, api_error};

/// Items per LIST page.
pub const PAGE: u32 = 500;

/// Every item of a paged LIST: `fetch` is asked for one page at a time.
async fn paged<T, F, Fut>(params: ListParams, mut fetch: F) -> Result<Vec<T>, kube::Error>
where
    T: Clone,
    F: FnMut(ListParams) -> Fut,
    Fut: std::future::Future<Output = Result<ObjectList<T>, kube::Error>>,
{
    let mut out = Vec::new();
    let mut params = params.limit(PAGE);
    loop {
        let page = fetch(params.clone()).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

fn with_kind(mut v: Value, kind: &str) -> Value {
    v["kind"] = Value::String(kind.to_string());
    v
}

/// Every object of a LIST, as JSON carrying `kind`.
async fn list_all<K>(
    api: &Api<K>,
    params: ListParams,
    kind: &str,
    target: &Target,
    resource: &str,
    group: &str,
) -> Result<Vec<Value>, ClusterError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + serde::Serialize,
{
    let items = paged(params, |p| async move { api.list(&p).await })
        .await
        .map_err(|e| api_error(e, target, "list", resource, group, None))?;
    Ok(items
        .iter()
        .map(|i| with_kind(serde_json::to_value(i).unwrap_or(Value::Null), kind))
        .collect())
}

/// Every object of a LIST by metadata only (no `type`, no data), as JSON carrying `kind`.
async fn list_metadata<K>(
    api: &Api<K>,
    params: ListParams,
    kind: &str,
    target: &Target,
    resource: &str,
) -> Result<Vec<Value>, ClusterError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let items = paged(params, |p| async move { api.list_metadata(&p).await })
        .await
        .map_err(|e| api_error(e, target, "list", resource, "", None))?;
    Ok(items.iter().map(|i| with_kind(serde_json::json!({ "metadata": serde_json::to_value(&i.metadata).unwrap_or(Value::Null) }), kind)).collect())
}

/// Reads what the plan needs:
/// - namespaces (metadata only);
/// - Secrets labelled as regops' (all namespaces);
/// - for each pull secret name, Secrets of that name in any namespace, metadata only (to find
///   collisions), or whole where the spec would adopt them;
/// - ServiceAccounts, when a binding names some, and else those marked with this spec's label;
/// - each workload kind a binding selects, and of the other kinds those marked.
pub async fn from_cluster(
    client: &Client,
    target: &Target,
    spec: &Spec,
    spec_name: &str,
) -> Result<Observed, ClusterError> {
    let mut objects = list_metadata(
        &Api::<Namespace>::all(client.clone()),
        ListParams::default(),
        "Namespace",
        target,
        "namespaces",
    )
    .await?;
    let secrets: Api<Secret> = Api::all(client.clone());
    let owned = list_all(
        &secrets,
        ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")),
        "Secret",
        target,
        "secrets",
        "",
    )
    .await?;
    let mut seen: std::collections::BTreeSet<(String, String)> = std::collections::BTreeSet::new();
    let mut push_secret = |v: Value, objects: &mut Vec<Value>| {
        let key = (
            v["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            v["metadata"]["name"].as_str().unwrap_or("").to_string(),
        );
        if seen.insert(key) {
            objects.push(v);
        }
    };
    for s in owned {
        push_secret(s, &mut objects);
    }
    // Secrets bearing a pull secret's name that regops does not own are collisions: their
    // metadata is enough, and their data stays out of regops' memory. Only where the spec
    // would adopt them is the whole object read.
    for (name, ps) in &spec.pull_secrets {
        let by_name = ListParams::default().fields(&format!("metadata.name={name}"));
        let found = if ps.adopt {
            list_all(&secrets, by_name, "Secret", target, "secrets", "").await?
        } else {
            list_metadata(&secrets, by_name, "Secret", target, "secrets").await?
        };
        for s in found {
            push_secret(s, &mut objects);
        }
    }
    // What the bindings select is listed whole; of the rest, only objects marked as carrying
    // this spec's entries (so that entries are removed when a binding leaves the spec).
    let marked = ListParams::default().labels(&ownership::added_key(spec_name));
    let select = |wanted: bool| {
        if wanted {
            ListParams::default()
        } else {
            marked.clone()
        }
    };
    let sas_wanted = spec.bindings.iter().any(|b| !b.service_accounts.is_empty());
    objects.extend(
        list_all(
            &Api::<ServiceAccount>::all(client.clone()),
            select(sas_wanted),
            "ServiceAccount",
            target,
            "serviceaccounts",
            "",
        )
        .await?,
    );
    let kinds: Vec<WorkloadKind> = spec
        .bindings
        .iter()
        .filter_map(|b| b.workloads.as_ref())
        .flat_map(|w| {
            if w.kinds.is_empty() {
                WorkloadKind::ALL.to_vec()
            } else {
                w.kinds.iter().map(|k| k.value).collect()
            }
        })
        .collect();
    for kind in WorkloadKind::ALL {
        let params = select(kinds.contains(&kind));
        let items = match kind {
            WorkloadKind::Deployment => {
                list_all(
                    &Api::<Deployment>::all(client.clone()),
                    params,
                    "Deployment",
                    target,
                    "deployments",
                    "apps",
                )
                .await?
            }
            WorkloadKind::StatefulSet => {
                list_all(
                    &Api::<StatefulSet>::all(client.clone()),
                    params,
                    "StatefulSet",
                    target,
                    "statefulsets",
                    "apps",
                )
                .await?
            }
            WorkloadKind::DaemonSet => {
                list_all(
                    &Api::<DaemonSet>::all(client.clone()),
                    params,
                    "DaemonSet",
                    target,
                    "daemonsets",
                    "apps",
                )
                .await?
            }
            WorkloadKind::Job => {
                list_all(
                    &Api::<Job>::all(client.clone()),
                    params,
                    "Job",
                    target,
                    "jobs",
                    "batch",
                )
                .await?
            }
            WorkloadKind::CronJob => {
                list_all(
                    &Api::<CronJob>::all(client.clone()),
                    params,
                    "CronJob",
                    target,
                    "cronjobs",
                    "batch",
                )
                .await?
            }
        };
        objects.extend(items);
    }
    let (observed, _skipped) = Observed::from_objects(&objects);
    Ok(observed)
}

#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("cannot read the state file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the state file {path} is not valid YAML: {detail}")]
    Parse { path: String, detail: String },
}

/// Reads a state file: a `kubectl get ... -o yaml` List, or multi-document YAML (JSON too).
pub fn from_file(path: &Path) -> Result<(Observed, Vec<Skipped>), StateFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| StateFileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).map_err(|e| StateFileError::Parse {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    Ok(Observed::from_objects(&docs))
}
