//! A saved plan (`regops plan --out FILE`): the plan, and what it was made from, so that
//! `regops apply FILE` can refuse to carry it out once any of that has moved. Pure: the file's
//! shape, what to record of a cluster as read, and the comparisons.
//!
//! What is recorded, and what counts as moved:
//!
//! - the spec: a digest of its files and of the age ciphertext files its credentials name
//!   (never plaintext), its commit; a different digest refuses the plan;
//! - the cluster: its server and the uid of its `kube-system` namespace (which lives as long
//!   as the cluster: a cluster rebuilt behind the same address is another cluster);
//! - every object read: its resourceVersion. Secrets and ServiceAccounts moved when their
//!   resourceVersion changed. Namespaces and workloads carry a status their controllers
//!   rewrite without anyone editing them (a Deployment's replicas), so for them what counts is
//!   what planning reads (labels, annotations, containers, entries: [`crate::fingerprint`]);
//!   the resourceVersion is shown.
//!
//! Beside the plan, each change's write (`crate::write`): what `apply FILE` sends. No
//! credential is in it: Secret data is derived again at apply from the same spec.

use std::collections::BTreeMap;

use regops_spec::masked;
use serde::{Deserialize, Serialize};

use crate::observed::Observed;
use crate::plan::Plan;
use crate::warning::Warning;

/// What `kind:` a saved plan file says it is.
pub const KIND: &str = "SavedPlan";
/// The version of the saved plan format. 2: each change carries its kind's `apiVersion`, and
/// the file the workload kinds its spec declared. 3: the file carries each change's write.
pub const FORMAT_VERSION: &str = "3";

/// A saved plan, as written to the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedPlan {
    /// Always [`KIND`].
    pub kind: String,
    /// Always [`FORMAT_VERSION`].
    pub format_version: String,
    /// The regops that made it; only the same version applies it (the fingerprints of what
    /// planning reads are that version's).
    pub regops_version: String,
    /// When it was made (RFC 3339), for people.
    pub created: String,
    pub spec: SpecRecord,
    pub cluster: ClusterRecord,
    /// The namespaces it was limited to (`-n`), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// The workload kinds the spec declared (`workloadKinds:`), so that the plan's changes
    /// of those kinds read back before the spec is loaded; the spec's digest then proves it
    /// declares the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workload_kinds: Vec<KindRecord>,
    /// Every object read, by kind, namespace and name.
    pub objects: Vec<ObjectVersion>,
    /// The plan, as `plan -o json` shows it.
    pub plan: Plan,
    /// The plan's warnings whole (the plan's JSON keeps only their text).
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// Each change's write, in the order of `plan.changes` (`null` for a change that writes
    /// nothing). Only in the file: read, they are the changes' own.
    #[serde(default)]
    pub writes: Vec<Option<crate::write::Write>>,
}

/// Which spec a plan was made from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecRecord {
    pub name: String,
    /// The spec's files, so that `apply FILE` finds them without `-f`: relative to the top of
    /// the git repository they are in when `from_repository` (so the plan applies from any
    /// directory inside it), else as given.
    pub files: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_repository: bool,
    /// `sha256:<hex>` of the spec's files: each one's path inside its root and its bytes.
    pub digest: String,
    /// For each credential whose password is age ciphertext, the digest of that ciphertext
    /// (`age:<hex>`: an `ageFile` is outside the spec's files, and its bytes count too). Never
    /// a digest of plaintext: a password given in clear (`env`, `file`) is not recorded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ciphertexts: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default)]
    pub dirty: bool,
}

/// Which cluster a plan was made against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRecord {
    /// The kubeconfig context and server, for people.
    pub target: String,
    /// The API server's URL.
    pub server: String,
    /// The uid of the `kube-system` namespace: the cluster's identity.
    pub kube_system_uid: String,
}

/// A workload kind the spec declared, as `workloadKinds:` says it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KindRecord {
    pub kind: String,
    pub api_version: String,
    pub resource: String,
    pub pod_template: String,
}

/// The records of the kinds `spec` declares.
pub fn kind_records(spec: &regops_spec::Spec) -> Vec<KindRecord> {
    spec.workload_kinds
        .values()
        .map(|d| KindRecord {
            kind: d.name.value.clone(),
            api_version: d.api_version.value.clone(),
            resource: d.resource.value.clone(),
            pod_template: d.pod_template.value.clone(),
        })
        .collect()
}

/// Adds the kinds a saved plan records to the kind table, checked by the rules the spec's
/// `workloadKinds:` is (the file is data anyone may hand over).
fn declare_recorded(bytes: &[u8]) -> Result<(), PlanFileError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Kinds {
        #[serde(default)]
        workload_kinds: Vec<KindRecord>,
    }
    let malformed = |e: serde_json::Error| PlanFileError::Malformed(masked::json(&e).to_string());
    let kinds: Kinds = serde_json::from_slice(bytes).map_err(malformed)?;
    for (i, k) in kinds.workload_kinds.iter().enumerate() {
        let bad = |what: &str| {
            PlanFileError::Malformed(format!("workload kind {i} has an invalid {what}"))
        };
        regops_spec::rules::kind_name(&k.kind).map_err(|_| bad("name"))?;
        regops_spec::rules::group_version(&k.api_version).map_err(|_| bad("apiVersion"))?;
        regops_spec::rules::dns1035_label(&k.resource).map_err(|_| bad("resource"))?;
        regops_spec::rules::field_path(&k.pod_template).map_err(|_| bad("podTemplate"))?;
        let (group, version) = k
            .api_version
            .split_once('/')
            .ok_or_else(|| bad("apiVersion"))?;
        regops_spec::kind::declare(&regops_spec::kind::Declaration {
            name: k.kind.clone(),
            group: group.into(),
            version: version.into(),
            plural: k.resource.clone(),
            template: k.pod_template.split('.').map(str::to_string).collect(),
        })
        .map_err(|e| PlanFileError::Malformed(format!("workload kind {i}: {e}")))?;
    }
    Ok(())
}

/// One object as it was read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectVersion {
    /// `Namespace`, `Secret`, `ServiceAccount` or a workload kind.
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// For namespaces and workloads: a fingerprint of what planning reads of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reads: Option<String>,
}

impl ObjectVersion {
    fn key(&self) -> (&str, &str, &str) {
        (&self.kind, &self.namespace, &self.name)
    }

    /// `Namespace web`, `Secret web/pull`.
    fn shown(&self) -> String {
        if self.namespace.is_empty() {
            format!("{} {}", self.kind, self.name)
        } else {
            format!("{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Every object of `observed`, in a fixed order, with what [`moved`] compares.
pub fn versions(observed: &Observed) -> Vec<ObjectVersion> {
    let hex = |fp: u64| Some(format!("{fp:016x}"));
    let rv = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut out: Vec<ObjectVersion> = Vec::new();
    for n in &observed.namespaces {
        out.push(ObjectVersion {
            kind: "Namespace".into(),
            namespace: String::new(),
            name: n.name.clone(),
            resource_version: rv(&n.resource_version),
            reads: hex(crate::fingerprint::namespace(n).1),
        });
    }
    for s in &observed.secrets {
        out.push(ObjectVersion {
            kind: "Secret".into(),
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            resource_version: rv(&s.resource_version),
            reads: None,
        });
    }
    for s in &observed.service_accounts {
        out.push(ObjectVersion {
            kind: "ServiceAccount".into(),
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            resource_version: rv(&s.resource_version),
            reads: None,
        });
    }
    for w in &observed.workloads {
        out.push(ObjectVersion {
            kind: w.kind.as_str().into(),
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            resource_version: rv(&w.resource_version),
            reads: hex(crate::fingerprint::workload(w).1),
        });
    }
    out.sort_by(|a, b| a.key().cmp(&b.key()));
    // The same Secret can be read by two LISTs (regops' own, and those bearing a pull
    // secret's name); it is one object.
    out.dedup_by(|a, b| a.key() == b.key());
    out
}

/// How one object differs from what the plan was made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Moved {
    /// Edited since: the resourceVersions before and now.
    Changed {
        object: String,
        from: String,
        to: String,
    },
    /// There now, not when planned.
    Appeared { object: String },
    /// Gone since the plan.
    Gone { object: String },
}

impl std::fmt::Display for Moved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Moved::Changed { object, from, to } => {
                write!(f, "{object} changed (resourceVersion {from} → {to})")
            }
            Moved::Appeared { object } => write!(f, "{object} appeared"),
            Moved::Gone { object } => write!(f, "{object} is gone"),
        }
    }
}

/// What moved between the objects a plan was made from (`then`) and those read now (`now`,
/// both as [`versions`] makes them).
pub fn moved(then: &[ObjectVersion], now: &[ObjectVersion]) -> Vec<Moved> {
    let index = |v: &[ObjectVersion]| -> BTreeMap<(String, String, String), ObjectVersion> {
        v.iter()
            .map(|o| {
                (
                    (o.kind.clone(), o.namespace.clone(), o.name.clone()),
                    o.clone(),
                )
            })
            .collect()
    };
    let (then, now) = (index(then), index(now));
    let mut out = Vec::new();
    for (key, before) in &then {
        match now.get(key) {
            None => out.push(Moved::Gone {
                object: before.shown(),
            }),
            Some(after) => {
                let changed = match (&before.reads, &after.reads) {
                    (Some(a), Some(b)) => a != b,
                    _ => before.resource_version != after.resource_version,
                };
                if changed {
                    out.push(Moved::Changed {
                        object: before.shown(),
                        from: before.resource_version.clone(),
                        to: after.resource_version.clone(),
                    });
                }
            }
        }
    }
    for (key, after) in &now {
        if !then.contains_key(key) {
            out.push(Moved::Appeared {
                object: after.shown(),
            });
        }
    }
    out
}

/// Where the plan made now differs from the saved one, one line per object, in plan order
/// (empty: the same plan). Compared: each change's action and everything it would write, and
/// the conflicts.
pub fn differences(saved: &Plan, now: &Plan) -> Vec<String> {
    type Key<'a> = (regops_spec::kind::ObjectKind, &'a str, &'a str);
    fn index(p: &Plan) -> BTreeMap<Key<'_>, &crate::plan::Change> {
        p.changes
            .iter()
            .map(|c| ((c.kind, c.namespace.as_str(), c.name.as_str()), c))
            .collect()
    }
    fn shown(k: &Key<'_>) -> String {
        format!("{} {}/{}", k.0, k.1, k.2)
    }
    let (a, b) = (index(saved), index(now));
    let mut out = Vec::new();
    // What is carried out is the saved plan's changes, each in turn: they must be the plan
    // made again's one for one, not only alike object by object (a repeated object would be
    // compared once and carried out twice). Their order is not compared: a declared kind's
    // place in the kind table, and so in the plan's order, depends on when it was read.
    fn keys(p: &Plan) -> Vec<Key<'_>> {
        let mut k: Vec<Key<'_>> = p
            .changes
            .iter()
            .map(|c| (c.kind, c.namespace.as_str(), c.name.as_str()))
            .collect();
        k.sort_unstable();
        k
    }
    if keys(saved) != keys(now) {
        out.push(format!(
            "the saved plan holds {} changes, repeating an object or not the same objects; planned again, {}",
            saved.changes.len(),
            now.changes.len()
        ));
    }
    for (k, was) in &a {
        match b.get(k) {
            None => out.push(format!(
                "{}: planned {}, now not in the plan",
                shown(k),
                action(was.action)
            )),
            Some(is) if !same(was, is) => out.push(if is.action == was.action {
                format!(
                    "{}: {} differently than planned",
                    shown(k),
                    action(is.action)
                )
            } else {
                format!(
                    "{}: planned {}, now {}",
                    shown(k),
                    action(was.action),
                    action(is.action)
                )
            }),
            Some(_) => {}
        }
    }
    for (k, is) in &b {
        if !a.contains_key(k) {
            out.push(format!(
                "{}: not in the saved plan, now {}",
                shown(k),
                action(is.action)
            ));
        }
    }
    if saved.conflicts != now.conflicts {
        out.push(format!(
            "conflicts: {} planned, {} now",
            saved.conflicts.len(),
            now.conflicts.len()
        ));
    }
    out
}

/// Whether a change made again (`now`) is the saved one: equal, its write included, but for
/// the resourceVersion a workload's KubeSphere value is bound to: a workload's status moves
/// it without anyone editing what planning reads, and a stale one is a conflict apply resolves
/// by reading the workload again and merging again.
fn same(saved: &crate::plan::Change, now: &crate::plan::Change) -> bool {
    if saved == now {
        return true;
    }
    match (&saved.write, &now.write) {
        (Some(a), Some(b)) if a.same_but_workload_version(b) => {
            let mut now = now.clone();
            now.write.clone_from(&saved.write);
            *saved == now
        }
        _ => false,
    }
}

fn action(a: crate::plan::Action) -> &'static str {
    use crate::plan::Action;
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Patch => "patch",
        Action::Delete => "delete",
        Action::Noop => "no change",
    }
}

/// Why a saved plan file cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("not a saved regops plan: {0}")]
    Malformed(String),
    #[error("a saved plan of format {found}; this regops reads format {FORMAT_VERSION}")]
    Format { found: String },
}

/// Reads a saved plan from its file's bytes (already bounded in size by the caller).
pub fn parse(bytes: &[u8]) -> Result<SavedPlan, PlanFileError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        kind: Option<String>,
        format_version: Option<String>,
    }
    // A plan file may hold what a secret would (anyone may hand one over, and its errors go
    // into CI logs): an error says where and what kind, never the text (masked::json).
    let malformed = |e: serde_json::Error| PlanFileError::Malformed(masked::json(&e).to_string());
    let head: Head = serde_json::from_slice(bytes).map_err(malformed)?;
    if head.kind.as_deref() != Some(KIND) {
        return Err(PlanFileError::Malformed(format!("`kind` is not `{KIND}`")));
    }
    if head.format_version.as_deref() != Some(FORMAT_VERSION) {
        // The version is shown only when it looks like one.
        let found = head
            .format_version
            .filter(|v| v.len() <= 16 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'))
            .unwrap_or_else(|| "another".to_string());
        return Err(PlanFileError::Format { found });
    }
    declare_recorded(bytes)?;
    let mut saved: SavedPlan = serde_json::from_slice(bytes).map_err(malformed)?;
    // A change's apiVersion is its kind's: one that differs was not written by regops.
    if let Some(c) = saved
        .plan
        .changes
        .iter()
        .find(|c| c.api_version != c.kind.facts().api_version)
    {
        return Err(PlanFileError::Malformed(format!(
            "a change of kind `{}` says apiVersion `{}`, and that kind is `{}`",
            c.kind,
            regops_spec::untrusted::terminal(&c.api_version),
            c.kind.facts().api_version
        )));
    }
    // One change per object, as a plan makes them: a repeated object would be carried out
    // twice while only one of its changes is compared with the plan made again.
    let mut seen = std::collections::BTreeSet::new();
    if let Some(c) = saved
        .plan
        .changes
        .iter()
        .find(|c| !seen.insert((c.kind, c.namespace.as_str(), c.name.as_str())))
    {
        return Err(PlanFileError::Malformed(format!(
            "it holds two changes of {} {}/{}",
            c.kind,
            regops_spec::untrusted::terminal(&c.namespace),
            regops_spec::untrusted::terminal(&c.name)
        )));
    }
    saved.plan.warnings = std::mem::take(&mut saved.warnings);
    let writes = std::mem::take(&mut saved.writes);
    if writes.len() != saved.plan.changes.len() {
        return Err(PlanFileError::Malformed(format!(
            "it holds {} writes for {} changes",
            writes.len(),
            saved.plan.changes.len()
        )));
    }
    for (c, w) in saved.plan.changes.iter_mut().zip(writes) {
        c.write = w;
    }
    Ok(saved)
}

/// The file's bytes (JSON): the plan's warnings are kept whole beside it.
pub fn to_bytes(saved: &SavedPlan) -> Result<Vec<u8>, serde_json::Error> {
    let mut saved = saved.clone();
    saved.warnings = saved.plan.warnings.clone();
    saved.writes = saved.plan.changes.iter().map(|c| c.write.clone()).collect();
    let mut out = serde_json::to_vec_pretty(&saved)?;
    out.push(b'\n');
    Ok(out)
}

/// What a saved plan was made from, for people. What a saved plan says of itself. The file is data (anyone may hand one over): every
/// string read from it is escaped by `regops_spec::untrusted`.
fn provenance(saved: &SavedPlan) -> String {
    use regops_spec::untrusted::terminal;
    let mut out = format!(
        "Saved plan of spec `{}` ({}{}{}), made {} by regops {}.\nCluster: {} (kube-system uid {}); {} objects read{}.\n\n",
        terminal(&saved.spec.name),
        terminal(&saved.spec.digest),
        saved
            .spec
            .commit
            .as_deref()
            .map_or(String::new(), |c| format!(", commit {}", terminal(c))),
        if saved.spec.dirty {
            ", with uncommitted changes"
        } else {
            ""
        },
        terminal(&saved.created),
        terminal(&saved.regops_version),
        terminal(&saved.cluster.target),
        terminal(&saved.cluster.kube_system_uid),
        saved.objects.len(),
        if saved.namespaces.is_empty() {
            String::new()
        } else {
            format!(" in namespaces {}", terminal(&saved.namespaces.join(", ")))
        },
    );
    out.truncate(out.trim_end().len());
    out.push_str("\n\n");
    out
}

/// `regops show FILE`: the plan's own views, after what it was made from (in JSON, the plan
/// alone, equal to `plan --output json`).
pub struct SavedPlanView<'a>(pub &'a SavedPlan);

impl crate::format::View for SavedPlanView<'_> {
    const FORMATS: &'static [(crate::format::Format, &'static str)] =
        <crate::view::PlanView<'_> as crate::format::View>::FORMATS;

    fn write(
        &self,
        format: crate::format::Format,
        style: &crate::format::Style,
        w: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        use crate::format::Format;
        let saved = self.0;
        match format {
            Format::Text => w.write_all(provenance(saved).as_bytes())?,
            Format::Json => {}
            Format::Markdown => {
                use regops_spec::untrusted::code;
                write!(
                    w,
                    "_Saved plan of {}{}, against {}, made {} by regops {}._\n\n",
                    code(&saved.spec.name),
                    saved
                        .spec
                        .commit
                        .as_deref()
                        .map_or(String::new(), |c| format!(" at commit {}", code(c))),
                    code(&saved.cluster.server),
                    code(&saved.created),
                    code(&saved.regops_version),
                )?
            }
        }
        crate::view::PlanView(&saved.plan).write(format, style, w)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::observed::{Labels, Namespace};

    fn ns(name: &str, team: &str, rv: &str) -> Namespace {
        let mut labels = Labels::new();
        labels.insert("team".into(), team.into());
        Namespace {
            name: name.into(),
            labels,
            annotations: Labels::new(),
            terminating: false,
            resource_version: Some(rv.into()),
        }
    }

    fn observed(namespaces: Vec<Namespace>) -> Observed {
        Observed {
            namespaces,
            ..Observed::default()
        }
    }

    /// A namespace counts as moved when what planning reads of it changed, not when only its
    /// resourceVersion did (a controller's status write); one that appears or goes is named.
    #[test]
    fn what_moved_is_what_planning_reads() {
        let then = versions(&observed(vec![ns("a", "web", "1"), ns("b", "web", "2")]));
        let same_reads = versions(&observed(vec![ns("a", "web", "7"), ns("b", "web", "2")]));
        assert_eq!(moved(&then, &same_reads), []);
        let relabelled = versions(&observed(vec![
            ns("a", "data", "8"),
            ns("b", "web", "2"),
            ns("c", "web", "9"),
        ]));
        let shown: Vec<String> = moved(&then, &relabelled)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "Namespace a changed (resourceVersion 1 → 8)",
                "Namespace c appeared"
            ]
        );
        let gone = versions(&observed(vec![ns("a", "web", "1")]));
        assert_eq!(
            moved(&then, &gone),
            [Moved::Gone {
                object: "Namespace b".into()
            }]
        );
    }

    /// The file is read back as written, and a file of another kind or format is refused.
    #[test]
    fn a_saved_plan_reads_back_as_written() {
        let plan = crate::plan::compute(
            "s",
            "t",
            crate::plan::Source::default(),
            &crate::desired::Desired::default(),
            &Observed::default(),
            None,
        );
        let saved = SavedPlan {
            workload_kinds: Vec::new(),
            kind: KIND.into(),
            format_version: FORMAT_VERSION.into(),
            regops_version: "0".into(),
            created: "2026-01-01T00:00:00Z".into(),
            spec: SpecRecord {
                name: "s".into(),
                files: vec!["regops.yaml".into()],
                from_repository: false,
                digest: "sha256:00".into(),
                ciphertexts: BTreeMap::new(),
                commit: None,
                dirty: false,
            },
            cluster: ClusterRecord {
                target: "t".into(),
                server: "https://k".into(),
                kube_system_uid: "u".into(),
            },
            namespaces: Vec::new(),
            objects: versions(&observed(vec![ns("a", "web", "1")])),
            plan,
            warnings: Vec::new(),
            writes: Vec::new(),
        };
        let back = parse(&to_bytes(&saved).unwrap()).unwrap();
        assert_eq!(back.objects, saved.objects);
        assert_eq!(back.spec, saved.spec);
        assert_eq!(differences(&back.plan, &saved.plan), Vec::<String>::new());
        assert!(matches!(
            parse(br#"{"kind":"SavedPlan","formatVersion":"9"}"#),
            Err(PlanFileError::Format { .. })
        ));
        assert!(matches!(
            parse(br#"{"kind":"Plan"}"#),
            Err(PlanFileError::Malformed(_))
        ));
    }

    fn workload_plan(rv: &str, entry: &str) -> Plan {
        use crate::write::{Entry, KubeSphereWrite, Shared, WorkloadWrite, Write};
        let mut plan = crate::plan::compute(
            "s",
            "t",
            crate::plan::Source::default(),
            &crate::desired::Desired::default(),
            &Observed::default(),
            None,
        );
        let mut c = crate::plan::Change::new(
            crate::plan::Action::Patch,
            regops_spec::kind::ObjectKind::Deployment,
            "web",
            "api",
        );
        c.write = Some(Write::Workload(Shared::from(WorkloadWrite {
            field_manager: "regops.s".into(),
            spec: "s".into(),
            entries: vec![Entry {
                name: entry.into(),
                recorded: true,
            }]
            .as_slice()
            .into(),
            kubesphere: Some(Box::new(KubeSphereWrite {
                value: format!(r#"{{"app":"{entry}"}}"#),
                wanted: BTreeMap::from([("app".to_string(), entry.to_string())]),
                resource_version: Some(rv.into()),
            })),
        })));
        plan.changes.push(c);
        plan
    }

    /// The plan made again must be the saved one, writes included; only the version a
    /// workload's KubeSphere value is bound to may differ (its status moves it; a stale one is
    /// a conflict apply resolves by reading again).
    #[test]
    fn writes_are_compared_but_a_workloads_version() {
        let saved = workload_plan("7", "pull");
        assert_eq!(
            differences(&saved, &workload_plan("9", "pull")),
            Vec::<String>::new()
        );
        assert_eq!(
            differences(&saved, &workload_plan("7", "other")),
            ["Deployment web/api: patch differently than planned"]
        );
    }

    /// A saved plan of `plan`, its record made up.
    fn saved_plan(plan: Plan) -> SavedPlan {
        SavedPlan {
            workload_kinds: Vec::new(),
            kind: KIND.into(),
            format_version: FORMAT_VERSION.into(),
            regops_version: "0".into(),
            created: "2026-01-01T00:00:00Z".into(),
            spec: SpecRecord {
                name: "s".into(),
                files: vec!["regops.yaml".into()],
                from_repository: false,
                digest: "sha256:00".into(),
                ciphertexts: BTreeMap::new(),
                commit: None,
                dirty: false,
            },
            cluster: ClusterRecord {
                target: "t".into(),
                server: "https://k".into(),
                kube_system_uid: "u".into(),
            },
            namespaces: Vec::new(),
            objects: Vec::new(),
            plan,
            warnings: Vec::new(),
            writes: Vec::new(),
        }
    }

    /// The writes read back onto their changes, and a file whose writes do not match its
    /// changes one for one is refused.
    #[test]
    fn writes_read_back_onto_their_changes() {
        let plan = workload_plan("7", "pull");
        let saved = saved_plan(plan.clone());
        let bytes = to_bytes(&saved).unwrap();
        let back = parse(&bytes).unwrap();
        assert_eq!(back.plan.changes, plan.changes);
        assert!(back.writes.is_empty());
        let mut doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        doc["writes"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::Value::Null);
        assert!(matches!(
            parse(doc.to_string().as_bytes()),
            Err(PlanFileError::Malformed(m)) if m == "it holds 2 writes for 1 changes"
        ));
    }

    /// A crafted file that repeats an object (a change of the attacker's before the one that
    /// matches the plan made again) is refused when read, and told apart when compared: only
    /// one change per object could be compared, and both would be carried out.
    #[test]
    fn a_plan_that_repeats_an_object_is_refused_and_differs() {
        let plan = workload_plan("7", "pull");
        let mut doubled = plan.clone();
        let mut extra = doubled.changes[0].clone();
        extra.add = vec!["attacker".into()];
        doubled.changes.insert(0, extra);
        let diffs = differences(&doubled, &plan);
        assert!(
            diffs.iter().any(|d| d.contains("repeating an object")),
            "{diffs:?}"
        );
        assert!(differences(&plan, &plan).is_empty());
        let saved = saved_plan(doubled);
        let bytes = to_bytes(&saved).unwrap();
        assert!(matches!(
            parse(&bytes),
            Err(PlanFileError::Malformed(m)) if m.starts_with("it holds two changes of ")
        ));
    }

    /// A plan file is data anyone may hand over: the kinds it records are checked as the
    /// spec's `workloadKinds:` is, before any is added to the kind table.
    #[test]
    fn a_saved_plan_declaring_a_kind_out_of_bounds_is_refused() {
        for (kind, api_version, resource) in [
            ("Secret", "evil.example.com/v1", "secrets"),
            ("Sneaky", "v1", "secrets"),
            ("Sneaky", "rbac.authorization.k8s.io/v1", "clusterroles"),
            ("Sneaky", "evil.example.com/v1", "../../api/v1/secrets"),
        ] {
            let file = serde_json::json!({
                "kind": KIND, "formatVersion": FORMAT_VERSION,
                "workloadKinds": [{"kind": kind, "apiVersion": api_version,
                                   "resource": resource, "podTemplate": "spec.template"}]
            });
            let e = parse(file.to_string().as_bytes()).unwrap_err();
            assert!(
                matches!(e, PlanFileError::Malformed(_)),
                "{kind} {api_version}: {e}"
            );
            assert!(regops_spec::kind::ObjectKind::parse("Sneaky").is_none());
        }
    }
}
