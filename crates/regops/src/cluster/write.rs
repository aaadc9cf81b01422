//! Carrying out a plan: Secrets first, then the references to them, deletions last; bounded
//! concurrency; transient failures retried with capped, jittered exponential backoff; each
//! object's outcome reported. Nothing that is not in the plan is written, and nothing is
//! decided here: each change carries its write (`regops_core::write`), which is rendered and
//! sent as planned. What stays here is execution: a Secret's data, derived by the credential
//! step planning used (plans never hold it); references to Secrets that failed are held back;
//! and after a 409 the one object is read again and the change merged into it again.
//!
//! Write strategy per kind:
//! - Secrets: server-side apply, field manager `regops`; a Secret whose type differs, or an
//!   immutable one whose data must change, is deleted and created again.
//! - ServiceAccounts: `imagePullSecrets` is an atomic list, so apply would replace it whole.
//!   The plan adds and removes only regops' own entries to the list it read, and the whole
//!   list is written with the resourceVersion it read; on 409 regops reads again, applies the
//!   change's additions and removals to what it read, and retries.
//! - Workloads: the pod template's `imagePullSecrets` is a list keyed by name, so regops
//!   server-side applies only its own entries (field manager `regops.<spec>`, one per spec so
//!   specs never drop each other's entries); others' entries stay.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use regops_core::desired::Desired;
use regops_core::observed::{Observed, Workload};
use regops_core::ownership::{self, KUBESPHERE_ANNOTATION, MANAGED_BY_LABEL, SPEC_ANNOTATION};
use regops_core::plan::{Action, Change, Plan};
use regops_core::report::{ItemResult, Outcome, Report};
use regops_core::request::{self as bodies, SecretApply};
use regops_core::write::{ConfigMapWrite, SecretWrite, ServiceAccountWrite, WorkloadWrite, Write};
use regops_spec::kind::ObjectKind;
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::cluster::Connection;
use crate::cluster::retry::retry;
use crate::errors::describe;

pub struct Options {
    pub spec: String,
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

/// A Secret as planned, and its data.
#[derive(Clone, Copy)]
struct SecretOut<'a> {
    write: &'a SecretWrite,
    data: &'a SecretString,
}

async fn write_secret(
    conn: &Connection,
    c: &Change,
    out: SecretOut<'_>,
    opts: &Options,
) -> SecretWritten {
    let w = out.write;
    if c.action == Action::Replace {
        // The Secret to adopt is the one the plan read (by uid); one made anew since is not.
        let adopting = w.adopt_uid.as_deref();
        match delete_if_still_ours(conn, c, opts, adopting).await {
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
    let mut pp = PatchParams::apply(&w.field_manager);
    // Adoption forces the take-over of a Secret someone made (the plan says when: not after a
    // replacement's delete, where one someone created meanwhile must not be taken).
    pp.force = opts.force_conflicts || w.force;
    pp.dry_run = opts.dry_run;
    match apply_secret(conn, c, out, None, pp.clone()).await {
        Ok(uid) => {
            drop_last_applied(conn, c, w, opts).await?;
            Ok((None, uid))
        }
        Err(e) if namespace_terminating(&e) => {
            Err(NotWritten::Skipped("its namespace is being deleted".into()))
        }
        Err(e) if is_apply_conflict(&e) && !pp.force && w.restore => {
            restore_secret(conn, c, out, opts, pp, &e).await
        }
        Err(e) => Err(describe(&e).into()),
    }
}

/// A Secret carrying regops' label and this spec's annotation is regops' whole: a change
/// someone made to it (`kubectl patch`, `kubectl edit`) took a field from regops' field
/// manager (the `conflict`), and is undone. Ownership is checked again on a fresh read, and
/// the forced apply is bound to the version read, so nothing that changed since is taken.
async fn restore_secret(
    conn: &Connection,
    c: &Change,
    out: SecretOut<'_>,
    opts: &Options,
    pp: PatchParams,
    conflict: &kube::Error,
) -> SecretWritten {
    let api: Api<Secret> = conn.namespaced(&c.namespace);
    let fresh = retry(conn, || api.get_metadata(&c.name))
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
        .filter(|m| m.manager.as_deref() != Some(out.write.field_manager.as_str()))
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
    let uid = apply_secret(conn, c, out, fresh.metadata.resource_version, forced)
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
    drop_last_applied(conn, c, out.write, opts).await?;
    Ok((Some(note), uid))
}

/// Removes `kubectl apply`'s copy of the Secret's data, when the plan found one (an adopted
/// Secret made with `kubectl apply`): a merge patch, as server-side apply cannot remove what
/// another field manager set.
async fn drop_last_applied(
    conn: &Connection,
    c: &Change,
    w: &SecretWrite,
    opts: &Options,
) -> Result<(), NotWritten> {
    if !w.drop_last_applied {
        return Ok(());
    }
    let pp = PatchParams {
        field_manager: Some(w.field_manager.to_string()),
        dry_run: opts.dry_run,
        ..PatchParams::default()
    };
    let body = bodies::without_last_applied();
    let patch = Patch::Merge(&body);
    let request = kube::core::Request::new(ObjectKind::Secret.collection_path(Some(&c.namespace)));
    retry(conn, || send(conn, request.patch(&c.name, &pp, &patch)))
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
    conn: &Connection,
    c: &Change,
    out: SecretOut<'_>,
    resource_version: Option<String>,
    pp: PatchParams,
) -> Result<Option<String>, kube::Error> {
    let body = SecretApply {
        namespace: &c.namespace,
        name: &c.name,
        write: out.write,
        data: out.data,
        resource_version: resource_version.as_deref(),
    };
    let patch = Patch::Apply(&body);
    let request = kube::core::Request::new(ObjectKind::Secret.collection_path(Some(&c.namespace)));
    retry(conn, || send(conn, request.patch(&c.name, &pp, &patch))).await
}

/// Sends a write and reads its answer, keeping only the object's uid (for the Events about
/// it): the answer is neither held nor deserialised into an object (a Secret's would hold its
/// data); it passes through a buffer zeroized on drop, and only `metadata.uid` is picked out.
async fn send(
    conn: &Connection,
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
    let body = conn
        .client
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
    conn: &Connection,
    c: &Change,
    w: &ConfigMapWrite,
    opts: &Options,
) -> Written {
    let mut pp = PatchParams::apply(&w.field_manager);
    pp.force = opts.force_conflicts;
    pp.dry_run = opts.dry_run;
    let body = bodies::config_map_body(&c.namespace, &c.name, w);
    let patch = Patch::Apply(&body);
    let request =
        kube::core::Request::new(ObjectKind::ConfigMap.collection_path(Some(&c.namespace)));
    match retry(conn, || send(conn, request.patch(&c.name, &pp, &patch))).await {
        Ok(_) => Ok(None),
        Err(e) if namespace_terminating(&e) => {
            Err(NotWritten::Skipped("its namespace is being deleted".into()))
        }
        Err(e) => Err(describe(&e).into()),
    }
}

/// The list as planned, written with the resourceVersion it was read at; on 409 read again,
/// the change's additions and removals applied to what was read, and written again.
async fn write_service_account(
    conn: &Connection,
    c: &Change,
    w: &ServiceAccountWrite,
    opts: &Options,
) -> Written {
    let api: Api<ServiceAccount> = conn.namespaced(&c.namespace);
    let mut list: Vec<String> = w.entries.iter().map(|e| e.to_string()).collect();
    let mut rv: Option<String> = w.resource_version.as_deref().map(Into::into);
    for _ in 0..5 {
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
        match retry(conn, || send(conn, request.patch(&c.name, &pp, &merge))).await {
            Ok(_) => return Ok(None),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Err(NotWritten::Skipped("deleted since the plan read it".into()));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let fresh = match retry(conn, || api.get(&c.name)).await {
                    Ok(f) => f,
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        return Err(NotWritten::Skipped("deleted since the plan read it".into()));
                    }
                    Err(e) => return Err(describe(&e).into()),
                };
                let present: Vec<String> = fresh
                    .image_pull_secrets
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| r.name)
                    .collect();
                list = bodies::entries_after(&present, &c.add, &c.remove);
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
    conn: &Connection,
    kind: ObjectKind,
    namespace: &str,
    name: &str,
) -> Result<Option<Workload>, kube::Error> {
    let request = kube::core::Request::new(kind.collection_path(Some(namespace)));
    let get = || async {
        let req = request
            .get(name, &kube::api::GetParams::default())
            .map_err(kube::Error::BuildRequest)?;
        conn.client
            .request::<regops_core::observed::wire::Object>(req)
            .await
    };
    match retry(conn, get).await {
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
/// template, the KubeSphere annotation merged per container, as planned. The annotation's
/// value is shared with KubeSphere's console, which may have written it last: it was merged
/// from the version read and is applied with that version as a precondition (so forcing takes
/// nothing newer); when the workload changed since, it is read again and merged again.
// Kept whole (over 80 lines): one retry loop: build, apply, and on a conflict read and merge
// again; its state is the loop's.
async fn write_workload(
    conn: &Connection,
    c: &Change,
    w: &WorkloadWrite,
    opts: &Options,
    blocked: &BTreeSet<(String, String)>,
) -> Written {
    let kind = c.kind;
    if kind.workload().is_none() {
        return Err(format!("internal: {kind} is not a workload").into());
    }
    let held = |s: &str| blocked.contains(&(c.namespace.clone(), s.to_string()));
    // This spec's containers, for merging again after a conflict: those of Secrets not
    // applied are left out.
    let mut kubesphere: BTreeMap<String, String> = w
        .kubesphere
        .as_ref()
        .map(|k| k.wanted.clone())
        .unwrap_or_default();
    kubesphere.retain(|_, s| !held(s));
    let request = kube::core::Request::new(kind.collection_path(Some(&c.namespace)));
    // The pod template's annotation: as planned, then as merged again on a fresh read.
    let mut template_value: Option<String> = w.kubesphere.as_ref().map(|k| k.value.clone());
    let mut rv: Option<String> = w
        .kubesphere
        .as_ref()
        .and_then(|k| k.resource_version.as_deref())
        .map(Into::into);
    for _ in 0..5 {
        let shared = template_value.is_some();
        let body = bodies::workload_body(
            kind,
            &c.namespace,
            &c.name,
            w,
            &held,
            (template_value.as_deref(), rv.as_deref()),
        );
        let mut pp = PatchParams::apply(&w.field_manager);
        // Forcing is safe where the apply is bound to the version its merge was made from.
        pp.force = opts.force_conflicts || (shared && rv.is_some());
        pp.dry_run = opts.dry_run;
        let patch = Patch::Apply(&body);
        match retry(conn, || send(conn, request.patch(&c.name, &pp, &patch))).await {
            Ok(_) => return Ok(None),
            Err(kube::Error::Api(s)) if s.code == 409 && shared => {
                let Some(fresh) = read_workload(conn, kind, &c.namespace, &c.name)
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
                return match read_workload(conn, kind, &c.namespace, &c.name).await {
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

async fn delete_secret(conn: &Connection, c: &Change, opts: &Options) -> Written {
    match delete_if_still_ours(conn, c, opts, None).await? {
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
    conn: &Connection,
    c: &Change,
    opts: &Options,
    adopting: Option<&str>,
) -> Result<Deleted, NotWritten> {
    let api: Api<Secret> = conn.namespaced(&c.namespace);
    let fresh = match retry(conn, || api.get_metadata(&c.name)).await {
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
    match retry(conn, || api.delete(&c.name, &dp)).await {
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

/// The data of each Secret a plan writes, by namespace and name: derived for this apply by the
/// credential step planning used (plans never hold it).
pub struct SecretData<'a>(BTreeMap<(&'a str, &'a str), &'a SecretString>);

impl<'a> SecretData<'a> {
    pub fn of(desired: &'a Desired) -> SecretData<'a> {
        SecretData(
            desired
                .secrets
                .iter()
                .map(|d| ((d.namespace.as_str(), d.name.as_str()), &d.dockerconfigjson))
                .collect(),
        )
    }
}

/// The change's write, or why there is none: a plan made by this regops carries one for every
/// change it writes.
fn planned(c: &Change) -> Result<&Write, NotWritten> {
    c.write.as_ref().ok_or_else(|| {
        NotWritten::Failed(format!(
            "internal: the plan carries no write for this {} change",
            c.kind
        ))
    })
}

fn mismatch(c: &Change) -> NotWritten {
    NotWritten::Failed(format!(
        "internal: the plan's write is not one for a {} change",
        c.kind
    ))
}

/// What every write of one apply reads: the client, the Secrets' data, the flags.
struct Run<'a> {
    conn: &'a Connection,
    data: &'a SecretData<'a>,
    opts: &'a Options,
    progress: &'a (dyn Fn(&ItemResult) + Sync),
    lock_lost: &'a (dyn Fn() -> bool + Sync),
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
        let r = match (planned(c), self.data.0.get(&key)) {
            (Ok(Write::Secret(write)), Some(data)) => {
                write_secret(self.conn, c, SecretOut { write, data }, self.opts).await
            }
            (Ok(_), None) => Err("internal: no data derived for this Secret"
                .to_string()
                .into()),
            (Ok(_), Some(_)) => Err(mismatch(c)),
            (Err(e), _) => Err(e),
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

    async fn config_map(&self, c: &Change) -> ItemResult {
        let item = match self.stopped(c) {
            Some(item) => item,
            None => {
                let r = match planned(c) {
                    Ok(Write::ConfigMap(w)) => write_config_map(self.conn, c, w, self.opts).await,
                    Ok(_) => Err(mismatch(c)),
                    Err(e) => Err(e),
                };
                done(c, r, self.opts.dry_run)
            }
        };
        self.finish(item)
    }

    /// A ServiceAccount or workload. `blocked`: Secrets that failed or are in conflict, which
    /// nothing is made to reference.
    async fn reference(&self, c: &Change, blocked: &BTreeSet<(String, String)>) -> ItemResult {
        if let Some(item) = self.stopped(c) {
            return self.finish(item);
        }
        let r = match planned(c) {
            Ok(Write::ServiceAccount(w)) => {
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
                    write_service_account(self.conn, c, w, self.opts).await
                }
            }
            Ok(Write::Workload(w)) => write_workload(self.conn, c, w, self.opts, blocked).await,
            Ok(_) => Err(mismatch(c)),
            Err(e) => Err(e),
        };
        self.finish(done(c, r, self.opts.dry_run))
    }

    async fn delete(&self, c: &Change) -> ItemResult {
        let item = if let Some(item) = self.stopped(c) {
            item
        } else if self.opts.prune {
            let r = match planned(c) {
                Ok(Write::Delete) => delete_secret(self.conn, c, self.opts).await,
                Ok(_) => Err(mismatch(c)),
                Err(e) => Err(e),
            };
            done(c, r, self.opts.dry_run)
        } else {
            result(c, Outcome::Skipped, Some("pass --prune to delete".into()))
        };
        self.finish(item)
    }
}

/// Carries out the plan's changes as planned: Secrets (with `data`), then the references to
/// them, then deletions, each phase with bounded concurrency. `progress` is told of each
/// object as it finishes.
// Kept whole (over 80 lines): the three phases in apply order, each waiting for the last.
pub async fn run(
    conn: &Connection,
    plan: &Plan,
    data: &SecretData<'_>,
    opts: &Options,
    progress: &(dyn Fn(&ItemResult) + Sync),
    lock_lost: &(dyn Fn() -> bool + Sync),
) -> Report {
    let run = Run {
        conn,
        data,
        opts,
        progress,
        lock_lost,
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
        report.results.push(run.config_map(c).await);
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
