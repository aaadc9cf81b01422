//! Carrying out a plan: Secrets first, then the references to them, deletions last; bounded
//! concurrency; transient failures retried with capped, jittered exponential backoff; each
//! object's outcome reported. Nothing that is not in the plan is written.
//!
//! Write strategy per kind:
//! - Secrets: server-side apply, field manager `regops`; a Secret whose type differs, or an
//!   immutable one whose data must change, is deleted and created again.
//! - ServiceAccounts: `imagePullSecrets` is an atomic list, so apply would replace it whole.
//!   regops reads it (from the plan's LIST), adds and removes only its own entries, and writes
//!   the whole list with the resourceVersion it read; on 409 it reads again and retries.
//! - Workloads: the pod template's `imagePullSecrets` is a list keyed by name, so regops
//!   server-side applies only its own entries (field manager `regops.<spec>`, one per spec so
//!   specs never drop each other's entries); others' entries stay.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource};
use regops_core::desired::{Desired, DesiredSecret};
use regops_core::observed::{Observed, ServiceAccount as ObservedServiceAccount, Workload};
use regops_core::ownership::{
    self, KUBESPHERE_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, SECRET_KEY, SECRET_TYPE,
    SOURCE_COMMIT_ANNOTATION, SPEC_ANNOTATION,
};
use regops_core::plan::{Action, Change, Plan};
use regops_spec::WorkloadKind;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::retry::retry;

/// The field manager for Secrets.
pub const FIELD_MANAGER: &str = "regops";

pub struct Options {
    pub spec: String,
    pub commit: Option<String>,
    pub prune: bool,
    pub dry_run: bool,
    pub force_conflicts: bool,
    pub concurrency: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Applied,
    DryRun,
    Skipped,
    Failed,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    pub action: Action,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub results: Vec<ItemResult>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome == Outcome::Failed)
            .count()
    }
    pub fn count(&self, o: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == o).count()
    }
}

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s)
            if s.code == 409 && s.reason == "Conflict" && s.message.starts_with("Apply failed") =>
        {
            format!(
                "{} (another field manager owns it; pass --force-conflicts to take ownership)",
                s.message
            )
        }
        kube::Error::Api(s) if s.code == 403 => format!("forbidden: {}", s.message),
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => {
            let mut cur: &dyn std::error::Error = other;
            while let Some(next) = cur.source() {
                cur = next;
            }
            cur.to_string()
        }
    }
}

/// The applied configuration of one Secret; serialises the data without keeping a copy.
struct SecretBody<'a> {
    desired: &'a DesiredSecret,
    spec: &'a str,
    commit: Option<&'a str>,
}

impl std::fmt::Debug for SecretBody<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Secret {}/{} (data: sensitive value)",
            self.desired.namespace, self.desired.name
        )
    }
}

impl Serialize for SecretBody<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut annotations = BTreeMap::from([(SPEC_ANNOTATION, self.spec)]);
        if let Some(c) = self.commit {
            annotations.insert(SOURCE_COMMIT_ANNOTATION, c);
        }
        let metadata = json!({
            "name": self.desired.name,
            "namespace": self.desired.namespace,
            "labels": { MANAGED_BY_LABEL: MANAGED_BY_VALUE },
            "annotations": annotations,
        });
        let encoded = Zeroizing::new(
            STANDARD.encode(self.desired.dockerconfigjson.expose_secret().as_bytes()),
        );
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("apiVersion", "v1")?;
        m.serialize_entry("kind", "Secret")?;
        m.serialize_entry("metadata", &metadata)?;
        m.serialize_entry("type", SECRET_TYPE)?;
        m.serialize_entry("data", &BTreeMap::from([(SECRET_KEY, encoded.as_str())]))?;
        m.end()
    }
}

async fn write_secret(
    client: &Client,
    c: &Change,
    d: &DesiredSecret,
    opts: &Options,
) -> Result<(), String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &c.namespace);
    if c.action == Action::Replace {
        let dp = DeleteParams {
            dry_run: opts.dry_run,
            ..DeleteParams::default()
        };
        match retry(|| api.delete(&c.name, &dp)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(format!("delete before re-create: {}", describe(&e))),
        }
    }
    let mut pp = PatchParams::apply(FIELD_MANAGER);
    pp.force = opts.force_conflicts || d.adopt;
    pp.dry_run = opts.dry_run;
    let body = SecretBody {
        desired: d,
        spec: &opts.spec,
        commit: opts.commit.as_deref(),
    };
    let patch = Patch::Apply(&body);
    let request = kube::core::Request::new(Secret::url_path(&(), Some(&c.namespace)));
    retry(|| send(client, request.patch(&c.name, &pp, &patch)))
        .await
        .map_err(|e| describe(&e))
}

/// Sends a write and reads its answer past without keeping it: regops needs nothing from it,
/// so it is neither deserialised nor held (a Secret's answer would hold its data; the small
/// buffer it passes through is zeroized).
async fn send(
    client: &Client,
    request: Result<hyper::Request<Vec<u8>>, kube::core::request::Error>,
) -> Result<(), kube::Error> {
    let body = client
        .request_stream(request.map_err(kube::Error::BuildRequest)?)
        .await?;
    let mut body = std::pin::pin!(body);
    let mut chunk = Zeroizing::new([0u8; 4096]);
    loop {
        let n = futures::AsyncReadExt::read(&mut body, &mut chunk[..])
            .await
            .map_err(|e| kube::Error::Service(Box::new(e)))?;
        if n == 0 {
            return Ok(());
        }
    }
}

fn pull_list(names: &[String]) -> Value {
    Value::Array(names.iter().map(|n| json!({ "name": n })).collect())
}

/// Read, union, write with the read resourceVersion; on 409 read again.
async fn write_service_account(
    client: &Client,
    c: &Change,
    seen: Option<&ObservedServiceAccount>,
    opts: &Options,
) -> Result<(), String> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &c.namespace);
    let mut present: Vec<String> = seen
        .map(|s| s.image_pull_secrets.clone())
        .unwrap_or_default();
    let mut rv = seen.and_then(|s| s.resource_version.clone());
    let key = ownership::added_key(&opts.spec);
    for _ in 0..5 {
        let mut list: Vec<String> = present
            .iter()
            .filter(|p| !c.remove.contains(p))
            .cloned()
            .collect();
        for a in &c.add {
            if !list.contains(a) {
                list.push(a.clone());
            }
        }
        let mut patch = json!({ "imagePullSecrets": pull_list(&list) });
        if let Some(rv) = &rv {
            patch["metadata"] = json!({ "resourceVersion": rv });
        }
        if let Some(record) = &c.record {
            patch["metadata"]["annotations"] = json!({ key.as_str(): record });
            let marker = record.as_ref().map(|_| ownership::MARKER_VALUE);
            patch["metadata"]["labels"] = json!({ key.as_str(): marker });
        }
        let pp = PatchParams {
            dry_run: opts.dry_run,
            ..PatchParams::default()
        };
        let merge = Patch::Merge(&patch);
        let request = kube::core::Request::new(ServiceAccount::url_path(&(), Some(&c.namespace)));
        match retry(|| send(client, request.patch(&c.name, &pp, &merge))).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let fresh = retry(|| api.get(&c.name)).await.map_err(|e| describe(&e))?;
                present = fresh
                    .image_pull_secrets
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| r.name)
                    .collect();
                rv = fresh.metadata.resource_version;
            }
            Err(e) => return Err(describe(&e)),
        }
    }
    Err("the ServiceAccount kept changing under regops (409 five times); run apply again".into())
}

async fn write_workload(
    client: &Client,
    c: &Change,
    desired: &Desired,
    seen: Option<&Workload>,
    opts: &Options,
    blocked: &BTreeSet<(String, String)>,
) -> Result<(), String> {
    let kind = WorkloadKind::ALL
        .into_iter()
        .find(|k| k.as_str() == c.kind)
        .ok_or("unknown workload kind")?;
    let wanted = desired
        .workloads
        .get(&(c.namespace.clone(), kind, c.name.clone()))
        .cloned()
        .unwrap_or_default();
    let entries: Vec<String> = wanted
        .secrets
        .iter()
        .filter(|s| !blocked.contains(&(c.namespace.clone(), (*s).clone())))
        .cloned()
        .collect();
    let api_version = if matches!(kind, WorkloadKind::Job | WorkloadKind::CronJob) {
        "batch/v1"
    } else {
        "apps/v1"
    };
    let mut body = json!({ "apiVersion": api_version, "kind": c.kind, "metadata": { "name": c.name, "namespace": c.namespace } });
    let mut annotations = serde_json::Map::new();
    let record: Vec<String> = match &c.record {
        Some(Some(v)) => v.split(',').map(str::to_string).collect(),
        Some(None) => Vec::new(),
        None => seen
            .map(|w| ownership::added_by(&w.annotations, &opts.spec))
            .unwrap_or_default(),
    };
    if let Some(v) = ownership::record_value(&record) {
        annotations.insert(ownership::added_key(&opts.spec), json!(v));
        body["metadata"]["labels"] =
            json!({ ownership::added_key(&opts.spec): ownership::MARKER_VALUE });
    }
    if !wanted.kubesphere.is_empty() {
        let value = c
            .kubesphere_annotation
            .clone()
            .or_else(|| seen.and_then(|w| w.annotations.get(KUBESPHERE_ANNOTATION).cloned()));
        if let Some(v) = value {
            annotations.insert(KUBESPHERE_ANNOTATION.into(), json!(v));
        }
    }
    if !annotations.is_empty() {
        body["metadata"]["annotations"] = Value::Object(annotations);
    }
    if !entries.is_empty() {
        let pod = json!({ "template": { "spec": { "imagePullSecrets": pull_list(&entries) } } });
        body["spec"] = if kind == WorkloadKind::CronJob {
            json!({ "jobTemplate": { "spec": pod } })
        } else {
            pod
        };
    }
    let mut pp = PatchParams::apply(&format!("{FIELD_MANAGER}.{}", opts.spec));
    pp.force = opts.force_conflicts;
    pp.dry_run = opts.dry_run;
    let ns = Some(c.namespace.as_str());
    let patch = Patch::Apply(&body);
    let path = match kind {
        WorkloadKind::Deployment => Deployment::url_path(&(), ns),
        WorkloadKind::StatefulSet => StatefulSet::url_path(&(), ns),
        WorkloadKind::DaemonSet => DaemonSet::url_path(&(), ns),
        WorkloadKind::Job => Job::url_path(&(), ns),
        WorkloadKind::CronJob => CronJob::url_path(&(), ns),
    };
    let request = kube::core::Request::new(path);
    retry(|| send(client, request.patch(&c.name, &pp, &patch)))
        .await
        .map_err(|e| describe(&e))
}

async fn delete_secret(client: &Client, c: &Change, opts: &Options) -> Result<(), String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &c.namespace);
    // Ownership was checked on the object read for the plan; check again on a fresh read.
    let fresh = retry(|| api.get(&c.name)).await.map_err(|e| describe(&e))?;
    let labels = fresh.metadata.labels.clone().unwrap_or_default();
    let annotations = fresh.metadata.annotations.clone().unwrap_or_default();
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY_VALUE)
        || annotations.get(SPEC_ANNOTATION) != Some(&opts.spec)
    {
        return Err("no longer owned by this spec; left alone".into());
    }
    let dp = DeleteParams {
        dry_run: opts.dry_run,
        preconditions: Some(kube::api::Preconditions {
            resource_version: fresh.metadata.resource_version.clone(),
            uid: fresh.metadata.uid.clone(),
        }),
        ..DeleteParams::default()
    };
    retry(|| api.delete(&c.name, &dp))
        .await
        .map(|_| ())
        .map_err(|e| describe(&e))
}

fn result(c: &Change, outcome: Outcome, message: Option<String>) -> ItemResult {
    ItemResult {
        action: c.action,
        kind: c.kind.clone(),
        namespace: c.namespace.clone(),
        name: c.name.clone(),
        outcome,
        message,
    }
}

fn done(c: &Change, r: Result<(), String>, dry_run: bool) -> ItemResult {
    match r {
        Ok(()) => result(
            c,
            if dry_run {
                Outcome::DryRun
            } else {
                Outcome::Applied
            },
            None,
        ),
        Err(m) => result(c, Outcome::Failed, Some(m)),
    }
}

/// Carries out the plan's changes. `progress` is told of each object as it finishes.
pub async fn run(
    client: &Client,
    plan: &Plan,
    desired: &Desired,
    observed: &Observed,
    opts: &Options,
    progress: &(dyn Fn(&ItemResult) + Sync),
) -> Report {
    let n = opts.concurrency.max(1);
    let secrets: BTreeMap<(&str, &str), &DesiredSecret> = desired
        .secrets
        .iter()
        .map(|d| ((d.namespace.as_str(), d.name.as_str()), d))
        .collect();
    let secrets = &secrets;
    // The objects as the plan read them, by key: looked up once per change, not searched.
    let service_accounts: BTreeMap<(&str, &str), &ObservedServiceAccount> = observed
        .service_accounts
        .iter()
        .map(|s| ((s.namespace.as_str(), s.name.as_str()), s))
        .collect();
    let workloads: BTreeMap<(&str, &str, &str), &Workload> = observed
        .workloads
        .iter()
        .map(|w| ((w.namespace.as_str(), w.kind.as_str(), w.name.as_str()), w))
        .collect();
    let (service_accounts, workloads) = (&service_accounts, &workloads);
    let mut report = Report::default();
    let todo = |a: Action| {
        plan.changes.iter().filter(move |c| {
            c.action == a
                || (a == Action::Create && matches!(c.action, Action::Update | Action::Replace))
        })
    };

    // 1. Secrets.
    let phase1: Vec<ItemResult> =
        futures::stream::iter(todo(Action::Create).filter(|c| c.kind == "Secret"))
            .map(|c| async move {
                let r = match secrets.get(&(c.namespace.as_str(), c.name.as_str())) {
                    Some(d) => write_secret(client, c, d, opts).await,
                    None => Err("internal: no desired Secret for this change".into()),
                };
                let item = done(c, r, opts.dry_run);
                progress(&item);
                item
            })
            .buffer_unordered(n)
            .collect()
            .await;
    // References to Secrets that failed, or are in conflict, are not written.
    let mut blocked: BTreeSet<(String, String)> = phase1
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .map(|r| (r.namespace.clone(), r.name.clone()))
        .collect();
    blocked.extend(
        plan.conflicts
            .iter()
            .map(|c| (c.namespace.clone(), c.name.clone())),
    );
    report.results.extend(phase1);

    // 2. ServiceAccounts and workloads.
    let blocked_ref = &blocked;
    let phase2: Vec<ItemResult> = futures::stream::iter(todo(Action::Patch))
        .map(|c| async move {
            let held: Vec<&String> = c
                .add
                .iter()
                .filter(|s| blocked_ref.contains(&(c.namespace.clone(), (*s).clone())))
                .collect();
            let item = if !held.is_empty() && c.kind == "ServiceAccount" {
                result(
                    c,
                    Outcome::Skipped,
                    Some(format!(
                        "not written: Secret {} was not applied",
                        held.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                )
            } else {
                let key = (c.namespace.as_str(), c.name.as_str());
                let r = if c.kind == "ServiceAccount" {
                    write_service_account(client, c, service_accounts.get(&key).copied(), opts)
                        .await
                } else {
                    let seen = workloads.get(&(key.0, c.kind.as_str(), key.1)).copied();
                    write_workload(client, c, desired, seen, opts, blocked_ref).await
                };
                done(c, r, opts.dry_run)
            };
            progress(&item);
            item
        })
        .buffer_unordered(n)
        .collect()
        .await;
    report.results.extend(phase2);

    // 3. Deletions, after the references to them are gone.
    for c in todo(Action::Delete) {
        let item = if opts.prune {
            done(c, delete_secret(client, c, opts).await, opts.dry_run)
        } else {
            result(c, Outcome::Skipped, Some("pass --prune to delete".into()))
        };
        progress(&item);
        report.results.push(item);
    }
    // Stable order for reports: the plan's.
    let order: BTreeMap<(String, String, String), usize> = plan
        .changes
        .iter()
        .enumerate()
        .map(|(i, c)| ((c.kind.clone(), c.namespace.clone(), c.name.clone()), i))
        .collect();
    report.results.sort_by_key(|r| {
        order
            .get(&(r.kind.clone(), r.namespace.clone(), r.name.clone()))
            .copied()
            .unwrap_or(usize::MAX)
    });
    report
}
