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

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use regops_core::desired::{Desired, DesiredSecret};
use regops_core::observed::{
    Observed, Secret as ObservedSecret, ServiceAccount as ObservedServiceAccount, Workload,
};
use regops_core::ownership::{self, KUBESPHERE_ANNOTATION, MANAGED_BY_LABEL, SPEC_ANNOTATION};
use regops_core::plan::{Action, Change, Plan};
use regops_core::report::{ItemResult, Outcome, Report};
use regops_core::request::{self as bodies, SecretApply};
use regops_spec::kind::ObjectKind;
use zeroize::Zeroizing;

use crate::cluster::retry::retry;
use crate::errors::describe;

/// The field manager for Secrets.
pub const FIELD_MANAGER: &str = ownership::SECRET_FIELD_MANAGER;

pub struct Options {
    pub spec: String,
    pub commit: Option<String>,
    pub prune: bool,
    pub dry_run: bool,
    pub force_conflicts: bool,
    pub concurrency: usize,
}

/// Why a write did not happen: it failed, or there was nothing to do after all (the object
/// went away since the plan read it, or its namespace is being deleted).
enum NotWritten {
    Failed(String),
    Skipped(String),
}

impl From<String> for NotWritten {
    fn from(m: String) -> Self {
        NotWritten::Failed(m)
    }
}

/// A write's result: done (with a note for the report, such as whose change it overwrote),
/// or not written.
type Written = Result<Option<String>, NotWritten>;

fn is_apply_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s)
        if s.code == 409 && s.reason == "Conflict" && s.message.starts_with("Apply failed"))
}

/// The 403 a namespace being deleted answers to a create (NamespaceLifecycle admission).
fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 && s.message.contains("because it is being terminated"))
}

/// Whether a Secret as just read still carries this spec's ownership marks.
fn still_owned(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: &str,
) -> bool {
    fn get<'m>(m: &'m Option<BTreeMap<String, String>>, k: &str) -> Option<&'m str> {
        m.as_ref().and_then(|m| m.get(k)).map(String::as_str)
    }
    ownership::marks_owned(
        get(&meta.labels, MANAGED_BY_LABEL),
        get(&meta.annotations, SPEC_ANNOTATION),
        spec,
    )
}

/// A Secret's write: as [`Written`], with the uid the answer gave.
type SecretWritten = Result<(Option<String>, Option<String>), NotWritten>;

async fn write_secret(
    client: &Client,
    c: &Change,
    d: &DesiredSecret,
    seen: Option<&ObservedSecret>,
    opts: &Options,
) -> SecretWritten {
    if c.action == Action::Replace {
        // The Secret to adopt is the one the plan read (by uid); one made anew since is not.
        let adopting = seen.and_then(|s| s.uid.as_deref()).filter(|_| d.adopt);
        match delete_if_still_ours(client, c, opts, adopting).await {
            // Gone since the plan: the create below is all there is to do.
            Ok(Deleted::Now | Deleted::Already) => {}
            Err(NotWritten::Failed(why)) => {
                return Err(format!("not replaced: {why}").into());
            }
            Err(other) => return Err(other),
        }
        if opts.dry_run {
            // A dry-run delete removes nothing, so the create that follows would meet the old
            // Secret ("field is immutable"): the server validated the delete; the create is
            // what the plan shows.
            return Ok((
                Some(
                    "would replace: the server accepted the delete; the new Secret is as planned"
                        .into(),
                ),
                None,
            ));
        }
    }
    let mut pp = PatchParams::apply(FIELD_MANAGER);
    // Adoption forces the take-over of a Secret someone made; after a replacement's delete
    // there is none to take over, and one someone created meanwhile must not be (without
    // force, their fields are a conflict).
    pp.force = opts.force_conflicts || (d.adopt && c.action != Action::Replace);
    pp.dry_run = opts.dry_run;
    match apply_secret(client, c, d, opts, None, pp.clone()).await {
        Ok(uid) => {
            drop_last_applied(client, c, opts).await?;
            Ok((None, uid))
        }
        Err(e) if namespace_terminating(&e) => {
            Err(NotWritten::Skipped("its namespace is being deleted".into()))
        }
        Err(e)
            if is_apply_conflict(&e)
                && !pp.force
                && seen.is_some_and(|h| h.owned_by(&opts.spec)) =>
        {
            restore_secret(client, c, d, opts, pp, &e).await
        }
        Err(e) => Err(describe(&e).into()),
    }
}

/// A Secret carrying regops' label and this spec's annotation is regops' whole: a change
/// someone made to it (`kubectl patch`, `kubectl edit`) took a field from regops' field
/// manager (the `conflict`), and is undone. Ownership is checked again on a fresh read, and
/// the forced apply is bound to the version read, so nothing that changed since is taken.
async fn restore_secret(
    client: &Client,
    c: &Change,
    d: &DesiredSecret,
    opts: &Options,
    pp: PatchParams,
    conflict: &kube::Error,
) -> SecretWritten {
    let api: Api<Secret> = Api::namespaced(client.clone(), &c.namespace);
    let fresh = retry(|| api.get_metadata(&c.name))
        .await
        .map_err(|e| describe(&e))?;
    if !still_owned(&fresh.metadata, &opts.spec) {
        return Err(format!(
            "{} (it no longer carries this spec's ownership marks, so it is left alone)",
            describe(conflict)
        )
        .into());
    }
    let others: Vec<String> = fresh
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.manager.as_deref() != Some(FIELD_MANAGER))
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.get("f:data").is_some())
        })
        .filter_map(|m| m.manager)
        .map(|m| format!("`{m}`"))
        .collect();
    let mut forced = pp;
    forced.force = true;
    let uid = apply_secret(client, c, d, opts, fresh.metadata.resource_version, forced)
        .await
        .map_err(|e| describe(&e))?;
    let note = if others.is_empty() {
        "restored: it had been changed in the cluster".to_string()
    } else {
        format!(
            "restored: overwrote the change made by {}",
            others.join(", ")
        )
    };
    drop_last_applied(client, c, opts).await?;
    Ok((Some(note), uid))
}

/// Removes `kubectl apply`'s copy of the Secret's data, when the plan found one (an adopted
/// Secret made with `kubectl apply`): a merge patch, as server-side apply cannot remove what
/// another field manager set.
async fn drop_last_applied(client: &Client, c: &Change, opts: &Options) -> Result<(), NotWritten> {
    if !c
        .causes
        .iter()
        .any(|k| matches!(k, regops_core::plan::Cause::LastAppliedRemoved))
    {
        return Ok(());
    }
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        dry_run: opts.dry_run,
        ..PatchParams::default()
    };
    let body = bodies::without_last_applied();
    let patch = Patch::Merge(&body);
    let request = kube::core::Request::new(ObjectKind::Secret.collection_path(Some(&c.namespace)));
    retry(|| send(client, request.patch(&c.name, &pp, &patch)))
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "written, but kubectl's copy of its old data was not removed: {}",
                describe(&e)
            )
            .into()
        })
}

/// One server-side apply of a Secret, retried on transient failures.
async fn apply_secret(
    client: &Client,
    c: &Change,
    d: &DesiredSecret,
    opts: &Options,
    resource_version: Option<String>,
    pp: PatchParams,
) -> Result<Option<String>, kube::Error> {
    let body = SecretApply {
        desired: d,
        spec: &opts.spec,
        commit: opts.commit.as_deref(),
        resource_version: resource_version.as_deref(),
    };
    let patch = Patch::Apply(&body);
    let request = kube::core::Request::new(ObjectKind::Secret.collection_path(Some(&c.namespace)));
    retry(|| send(client, request.patch(&c.name, &pp, &patch))).await
}

/// Sends a write and reads its answer, keeping only the object's uid (for the Events about
/// it): the answer is neither held nor deserialised into an object (a Secret's would hold its
/// data); it passes through a buffer zeroized on drop, and only `metadata.uid` is picked out.
async fn send(
    client: &Client,
    request: Result<hyper::Request<Vec<u8>>, kube::core::request::Error>,
) -> Result<Option<String>, kube::Error> {
    #[derive(serde::Deserialize)]
    struct Answer {
        metadata: Option<Meta>,
    }
    #[derive(serde::Deserialize)]
    struct Meta {
        uid: Option<String>,
    }
    let body = client
        .request_stream(request.map_err(kube::Error::BuildRequest)?)
        .await?;
    let mut body = std::pin::pin!(body);
    let mut chunk = Zeroizing::new([0u8; 4096]);
    let mut answer: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    loop {
        let n = futures::AsyncReadExt::read(&mut body, &mut chunk[..])
            .await
            .map_err(|e| kube::Error::Service(Box::new(e)))?;
        if n == 0 {
            break;
        }
        // An answer is the object written: a Secret is at most 1 MiB. Past a bound, the uid
        // is not worth holding more.
        if answer.len() < ANSWER_LIMIT {
            // Grown by hand so that no reallocation leaves a copy behind unzeroized.
            if answer.capacity() < answer.len() + n {
                let mut bigger = Zeroizing::new(Vec::with_capacity(
                    (answer.len() + n).max(answer.capacity() * 2),
                ));
                bigger.extend_from_slice(&answer);
                answer = bigger;
            }
            answer.extend_from_slice(&chunk[..n]);
        }
    }
    Ok(serde_json::from_slice::<Answer>(&answer)
        .ok()
        .and_then(|a| a.metadata)
        .and_then(|m| m.uid))
}

/// The most of a write's answer read for its uid.
const ANSWER_LIMIT: usize = 2 << 20;

/// The node-trust ConfigMap: one server-side apply, field manager `regops`. Planned only when
/// it is absent or carries this spec's marks. An update is bound to the version the plan read
/// (which carried the marks), so one changed since is not written over (409: plan again).
async fn write_config_map(
    client: &Client,
    c: &Change,
    d: &regops_core::desired::NodeTrustMap,
    resource_version: Option<&str>,
    opts: &Options,
) -> Written {
    let mut pp = PatchParams::apply(FIELD_MANAGER);
    pp.force = opts.force_conflicts;
    pp.dry_run = opts.dry_run;
    let bound = resource_version.filter(|_| c.action == Action::Update);
    let body = bodies::config_map_apply(&opts.spec, d, bound);
    let patch = Patch::Apply(&body);
    let request =
        kube::core::Request::new(ObjectKind::ConfigMap.collection_path(Some(&c.namespace)));
    match retry(|| send(client, request.patch(&c.name, &pp, &patch))).await {
        Ok(_) => Ok(None),
        Err(e) if namespace_terminating(&e) => {
            Err(NotWritten::Skipped("its namespace is being deleted".into()))
        }
        Err(e) => Err(describe(&e).into()),
    }
}

/// Read, union, write with the read resourceVersion; on 409 read again.
async fn write_service_account(
    client: &Client,
    c: &Change,
    seen: Option<&ObservedServiceAccount>,
    opts: &Options,
) -> Written {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &c.namespace);
    let mut present: Vec<String> = seen
        .map(|s| s.image_pull_secrets.clone())
        .unwrap_or_default();
    let mut rv = seen.and_then(|s| s.resource_version.clone());
    for _ in 0..5 {
        let list = bodies::entries_after(&present, &c.add, &c.remove);
        let patch = bodies::service_account_patch(
            &opts.spec,
            &list,
            rv.as_deref(),
            c.record.as_ref().map(Option::as_deref),
        );
        let pp = PatchParams {
            dry_run: opts.dry_run,
            ..PatchParams::default()
        };
        let merge = Patch::Merge(&patch);
        let request = kube::core::Request::new(
            ObjectKind::ServiceAccount.collection_path(Some(&c.namespace)),
        );
        match retry(|| send(client, request.patch(&c.name, &pp, &merge))).await {
            Ok(_) => return Ok(None),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Err(NotWritten::Skipped("deleted since the plan read it".into()));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let fresh = match retry(|| api.get(&c.name)).await {
                    Ok(f) => f,
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        return Err(NotWritten::Skipped("deleted since the plan read it".into()));
                    }
                    Err(e) => return Err(describe(&e).into()),
                };
                present = fresh
                    .image_pull_secrets
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| r.name)
                    .collect();
                rv = fresh.metadata.resource_version;
            }
            Err(e) => return Err(describe(&e).into()),
        }
    }
    Err(
        "the ServiceAccount kept changing under regops (409 five times); run apply again"
            .to_string()
            .into(),
    )
}

/// A workload as it is now, for a write that must be redone against the latest version.
async fn read_workload(
    client: &Client,
    kind: ObjectKind,
    namespace: &str,
    name: &str,
) -> Result<Option<Workload>, kube::Error> {
    let request = kube::core::Request::new(kind.collection_path(Some(namespace)));
    let get = || async {
        let req = request
            .get(name, &kube::api::GetParams::default())
            .map_err(kube::Error::BuildRequest)?;
        client
            .request::<regops_core::observed::wire::Object>(req)
            .await
    };
    match retry(get).await {
        Ok(obj) => {
            let mut o = Observed::default();
            o.push(0, Some(kind.as_str()), obj, &mut Vec::new());
            Ok(o.workloads.pop())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// Server-side applies this spec's entries (field manager `regops.<spec>`) and, on the pod
/// template, the KubeSphere annotation merged per container. The annotation's value is shared
/// with KubeSphere's console, which may have written it last: it is merged from the version
/// read and applied with that version as a precondition (so forcing takes nothing newer);
/// when the workload changed since, it is read again and merged again.
// Kept whole (over 80 lines): one retry loop: build, apply, and on a conflict read and merge
// again; its state is the loop's.
async fn write_workload(
    client: &Client,
    c: &Change,
    desired: &Desired,
    seen: Option<&Workload>,
    opts: &Options,
    blocked: &BTreeSet<(String, String)>,
) -> Written {
    let (kind, Some(workload_kind)) = (c.kind, c.kind.workload()) else {
        return Err(format!("internal: {} is not a workload", c.kind).into());
    };
    let wanted = desired
        .workloads
        .get(&(c.namespace.clone(), workload_kind, c.name.clone()))
        .cloned()
        .unwrap_or_default();
    let entries: Vec<String> = wanted
        .secrets
        .iter()
        .filter(|s| !blocked.contains(&(c.namespace.clone(), (*s).clone())))
        .cloned()
        .collect();
    let mut kubesphere = wanted.kubesphere.clone();
    kubesphere.retain(|_, s| !blocked.contains(&(c.namespace.clone(), s.clone())));
    let record: Vec<String> = match &c.record {
        Some(Some(v)) => v.split(',').map(str::to_string).collect(),
        Some(None) => Vec::new(),
        None => seen
            .map(|w| ownership::added_by(&w.annotations, &opts.spec))
            .unwrap_or_default(),
    };
    let manager = ownership::workload_field_manager(&opts.spec);
    let request = kube::core::Request::new(kind.collection_path(Some(&c.namespace)));
    // The pod template's annotation: as planned, then as merged again on a fresh read.
    let mut template_value: Option<String> = match &c.kubesphere_annotation {
        Some(v) => v.clone(),
        None => seen.and_then(|w| w.template_annotations.get(KUBESPHERE_ANNOTATION).cloned()),
    };
    let mut rv = seen.and_then(|w| w.resource_version.clone());
    for _ in 0..5 {
        let shared = template_value.is_some();
        let body = bodies::workload_apply(
            kind,
            &c.namespace,
            &c.name,
            &opts.spec,
            &bodies::WorkloadFields {
                entries: &entries,
                record: &record,
                kubesphere: template_value.as_deref(),
                resource_version: rv.as_deref(),
            },
        );
        let mut pp = PatchParams::apply(&manager);
        // Forcing is safe where the apply is bound to the version its merge was made from.
        pp.force = opts.force_conflicts || (shared && rv.is_some());
        pp.dry_run = opts.dry_run;
        let patch = Patch::Apply(&body);
        match retry(|| send(client, request.patch(&c.name, &pp, &patch))).await {
            Ok(_) => return Ok(None),
            Err(kube::Error::Api(s)) if s.code == 409 && shared => {
                let Some(fresh) = read_workload(client, kind, &c.namespace, &c.name)
                    .await
                    .map_err(|e| describe(&e))?
                else {
                    return Err(NotWritten::Skipped("deleted since the plan read it".into()));
                };
                template_value = ownership::merge_kubesphere(
                    fresh
                        .template_annotations
                        .get(KUBESPHERE_ANNOTATION)
                        .map(String::as_str),
                    &kubesphere,
                    &c.remove,
                );
                rv = fresh.resource_version;
            }
            // A server-side apply to a workload deleted since the plan would create one from
            // regops' few fields; the API server refuses it as invalid (422). Nothing to do.
            Err(kube::Error::Api(s)) if s.code == 422 || s.code == 404 => {
                return match read_workload(client, kind, &c.namespace, &c.name).await {
                    Ok(None) => Err(NotWritten::Skipped("deleted since the plan read it".into())),
                    _ => Err(describe(&kube::Error::Api(s)).into()),
                };
            }
            Err(e) if namespace_terminating(&e) => {
                return Err(NotWritten::Skipped("its namespace is being deleted".into()));
            }
            Err(e) => return Err(describe(&e).into()),
        }
    }
    Err(
        "the workload kept changing under regops (409 five times); run apply again"
            .to_string()
            .into(),
    )
}

async fn delete_secret(client: &Client, c: &Change, opts: &Options) -> Written {
    match delete_if_still_ours(client, c, opts, None).await? {
        Deleted::Now => Ok(None),
        Deleted::Already => Err(NotWritten::Skipped("already gone".into())),
    }
}

/// How a delete ended.
enum Deleted {
    Now,
    /// Gone before regops read it again.
    Already,
}

/// Deletes a Secret regops owns (prune, and a replacement's first half): ownership checked
/// again on a fresh read (this spec's marks, or, for `adopting`, that very uid), and the
/// delete bound to what was read (uid and resourceVersion), so nothing that changed since the
/// plan read it is deleted.
async fn delete_if_still_ours(
    client: &Client,
    c: &Change,
    opts: &Options,
    adopting: Option<&str>,
) -> Result<Deleted, NotWritten> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &c.namespace);
    let fresh = match retry(|| api.get_metadata(&c.name)).await {
        Ok(f) => f,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Deleted::Already),
        Err(e) => return Err(describe(&e).into()),
    };
    let adoptable = adopting.is_some() && fresh.metadata.uid.as_deref() == adopting;
    if !still_owned(&fresh.metadata, &opts.spec) && !adoptable {
        return Err(
            "no longer owned by this spec (nor the Secret planned for adoption); left alone"
                .to_string()
                .into(),
        );
    }
    let dp = DeleteParams {
        dry_run: opts.dry_run,
        preconditions: Some(kube::api::Preconditions {
            resource_version: fresh.metadata.resource_version.clone(),
            uid: fresh.metadata.uid.clone(),
        }),
        ..DeleteParams::default()
    };
    match retry(|| api.delete(&c.name, &dp)).await {
        Ok(_) => Ok(Deleted::Now),
        // Gone by the time the delete arrived (or deleted by a first try whose answer was
        // lost): what was asked for is done.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Deleted::Now),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            Err("it changed while regops read it; run apply again"
                .to_string()
                .into())
        }
        Err(e) => Err(describe(&e).into()),
    }
}

fn result(c: &Change, outcome: Outcome, message: Option<String>) -> ItemResult {
    ItemResult {
        action: c.action,
        kind: c.kind,
        namespace: c.namespace.clone(),
        name: c.name.clone(),
        outcome,
        message,
        uid: None,
    }
}

fn done(c: &Change, r: Written, dry_run: bool) -> ItemResult {
    match r {
        Ok(note) => result(
            c,
            if dry_run {
                Outcome::DryRun
            } else {
                Outcome::Applied
            },
            note,
        ),
        Err(NotWritten::Skipped(m)) => result(c, Outcome::Skipped, Some(m)),
        Err(NotWritten::Failed(m)) => result(c, Outcome::Failed, Some(m)),
    }
}

/// What every write of one apply reads: the client, the plan's inputs, and the objects as the
/// plan read them, by key (looked up once per change, not searched).
struct Run<'a> {
    client: &'a Client,
    desired: &'a Desired,
    opts: &'a Options,
    progress: &'a (dyn Fn(&ItemResult) + Sync),
    lock_lost: &'a (dyn Fn() -> bool + Sync),
    secrets: BTreeMap<(&'a str, &'a str), &'a DesiredSecret>,
    observed_secrets: BTreeMap<(&'a str, &'a str), &'a ObservedSecret>,
    service_accounts: BTreeMap<(&'a str, &'a str), &'a ObservedServiceAccount>,
    workloads: BTreeMap<(&'a str, ObjectKind, &'a str), &'a Workload>,
}

impl Run<'_> {
    /// Once the lock is lost another apply may be writing: nothing new is started.
    fn stopped(&self, c: &Change) -> Option<ItemResult> {
        (self.lock_lost)().then(|| {
            result(
                c,
                Outcome::Skipped,
                Some("not written: the lock was lost (another apply may be writing)".into()),
            )
        })
    }

    fn finish(&self, item: ItemResult) -> ItemResult {
        (self.progress)(&item);
        // A write done is the work loop's progress (/healthz).
        crate::cluster::progress::beat();
        item
    }

    async fn secret(&self, c: &Change) -> ItemResult {
        if let Some(item) = self.stopped(c) {
            return self.finish(item);
        }
        let key = (c.namespace.as_str(), c.name.as_str());
        let r = match self.secrets.get(&key) {
            Some(d) => {
                let seen = self.observed_secrets.get(&key).copied();
                write_secret(self.client, c, d, seen, self.opts).await
            }
            None => Err("internal: no desired Secret for this change"
                .to_string()
                .into()),
        };
        let mut uid = None;
        let r = r.map(|(note, written)| {
            uid = written;
            note
        });
        let mut item = done(c, r, self.opts.dry_run);
        item.uid = uid;
        self.finish(item)
    }

    /// A ServiceAccount or workload. `blocked`: Secrets that failed or are in conflict, which
    /// nothing is made to reference.
    async fn reference(&self, c: &Change, blocked: &BTreeSet<(String, String)>) -> ItemResult {
        if let Some(item) = self.stopped(c) {
            return self.finish(item);
        }
        let key = (c.namespace.as_str(), c.name.as_str());
        let r = if c.kind == ObjectKind::ServiceAccount {
            let held: Vec<&str> = c
                .add
                .iter()
                .filter(|s| blocked.contains(&(c.namespace.clone(), (*s).clone())))
                .map(String::as_str)
                .collect();
            if !held.is_empty() {
                // The list is written whole: without the held entries it would still be
                // written, so the write waits for the Secret instead.
                Err(NotWritten::Skipped(format!(
                    "not written: Secret {} was not applied",
                    held.join(", ")
                )))
            } else {
                let seen = self.service_accounts.get(&key).copied();
                write_service_account(self.client, c, seen, self.opts).await
            }
        } else {
            let seen = self.workloads.get(&(key.0, c.kind, key.1)).copied();
            write_workload(self.client, c, self.desired, seen, self.opts, blocked).await
        };
        self.finish(done(c, r, self.opts.dry_run))
    }

    async fn delete(&self, c: &Change) -> ItemResult {
        let item = if let Some(item) = self.stopped(c) {
            item
        } else if self.opts.prune {
            done(
                c,
                delete_secret(self.client, c, self.opts).await,
                self.opts.dry_run,
            )
        } else {
            result(c, Outcome::Skipped, Some("pass --prune to delete".into()))
        };
        self.finish(item)
    }
}

/// Carries out the plan's changes: Secrets, then the references to them, then deletions,
/// each phase with bounded concurrency. `progress` is told of each object as it finishes.
// Kept whole (over 80 lines): the three phases in apply order, each waiting for the last.
pub async fn run(
    client: &Client,
    plan: &Plan,
    desired: &Desired,
    observed: &Observed,
    opts: &Options,
    progress: &(dyn Fn(&ItemResult) + Sync),
    lock_lost: &(dyn Fn() -> bool + Sync),
) -> Report {
    let run = Run {
        client,
        desired,
        opts,
        progress,
        lock_lost,
        secrets: desired
            .secrets
            .iter()
            .map(|d| ((d.namespace.as_str(), d.name.as_str()), d))
            .collect(),
        observed_secrets: observed
            .secrets
            .iter()
            .map(|s| ((s.namespace.as_str(), s.name.as_str()), s))
            .collect(),
        service_accounts: observed
            .service_accounts
            .iter()
            .map(|s| ((s.namespace.as_str(), s.name.as_str()), s))
            .collect(),
        workloads: observed
            .workloads
            .iter()
            .map(|w| {
                let kind = ObjectKind::from(w.kind);
                ((w.namespace.as_str(), kind, w.name.as_str()), w)
            })
            .collect(),
    };
    let run = &run;
    let n = opts.concurrency.max(1);
    let of = |pick: fn(&Change) -> bool| plan.changes.iter().filter(move |c| pick(c));
    let mut report = Report::default();

    // 1. Secrets.
    let secrets: Vec<ItemResult> = futures::stream::iter(of(|c| {
        c.kind == ObjectKind::Secret
            && matches!(c.action, Action::Create | Action::Update | Action::Replace)
    }))
    .map(|c| run.secret(c))
    .buffer_unordered(n)
    .collect()
    .await;
    // References to Secrets that failed, or are in conflict, are not written.
    let mut blocked: BTreeSet<(String, String)> = secrets
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::Skipped))
        .map(|r| (r.namespace.clone(), r.name.clone()))
        .collect();
    blocked.extend(
        plan.conflicts
            .iter()
            .map(|c| (c.namespace.clone(), c.name.clone())),
    );
    report.results.extend(secrets);

    // 1b. The node-trust ConfigMap (nothing references it; it is written with the Secrets'
    // field manager and marks).
    for c in of(|c| {
        c.kind == ObjectKind::ConfigMap && matches!(c.action, Action::Create | Action::Update)
    }) {
        let item = match (run.stopped(c), &desired.node_trust) {
            (Some(item), _) => item,
            (None, Some(d)) => {
                let seen = observed
                    .config_maps
                    .iter()
                    .find(|m| m.namespace == c.namespace && m.name == c.name)
                    .and_then(|m| m.resource_version.as_deref());
                done(
                    c,
                    write_config_map(client, c, d, seen, opts).await,
                    opts.dry_run,
                )
            }
            (None, None) => result(
                c,
                Outcome::Failed,
                Some("internal: no desired ConfigMap for this change".into()),
            ),
        };
        report.results.push(run.finish(item));
    }

    // 2. ServiceAccounts and workloads.
    let blocked = &blocked;
    let references: Vec<ItemResult> = futures::stream::iter(of(|c| c.action == Action::Patch))
        .map(|c| run.reference(c, blocked))
        .buffer_unordered(n)
        .collect()
        .await;
    report.results.extend(references);

    // 3. Deletions, after the references to them are gone.
    for c in of(|c| c.action == Action::Delete) {
        report.results.push(run.delete(c).await);
    }
    // Stable order for reports: the plan's.
    report.sort_as(plan);
    report
}
