//! The kinds of object regops reads and writes, and one table of what the Kubernetes API says
//! about each: its group and version, its resource name, and for a workload where it keeps its
//! pod template and what a change to that template does. Every crate asks this table (the spec
//! for the names `kinds:` accepts, the core for paths, wording and what may be patched, the CLI
//! for what to LIST and watch); none spells these facts itself.
//!
//! Adding a workload kind is one variant of [`ObjectKind`] and one row of `FACTS`, in the same
//! place; the tests below check the two agree. `docs/design.md` ("Adding a workload kind")
//! says what else a kind needs (RBAC, the test server's resource) and how a custom kind would
//! be added.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An object kind regops writes: a row of the kind table. The built-in kinds are the first
/// rows (named by the constants below, so they read and match like enum variants); a spec's
/// `workloadKinds:` adds rows when it is loaded ([`declare`]). A row, once added, stays for the
/// life of the process, so an `ObjectKind` is a small copyable handle that is always valid.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKind(u16);

#[allow(non_upper_case_globals)]
impl ObjectKind {
    pub const Secret: ObjectKind = ObjectKind(0);
    pub const ServiceAccount: ObjectKind = ObjectKind(1);
    pub const Deployment: ObjectKind = ObjectKind(2);
    pub const StatefulSet: ObjectKind = ObjectKind(3);
    pub const DaemonSet: ObjectKind = ObjectKind(4);
    pub const ReplicaSet: ObjectKind = ObjectKind(5);
    pub const Job: ObjectKind = ObjectKind(6);
    pub const CronJob: ObjectKind = ObjectKind(7);
    /// Node trust (`nodeTrust:`): the rendered files node-sync reads; never selected by a
    /// binding.
    pub const ConfigMap: ObjectKind = ObjectKind(8);
}

impl std::fmt::Debug for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the API says about one kind.
#[derive(Debug)]
pub struct KindFacts {
    pub kind: ObjectKind,
    /// As in `kind:` (`CronJob`).
    pub name: &'static str,
    /// As in `apiVersion:` (`batch/v1`).
    pub api_version: &'static str,
    /// The API group, empty for the core group.
    pub group: &'static str,
    /// The resource, as in the URL (`cronjobs`).
    pub plural: &'static str,
    /// For the kinds a binding can select: where the pod template is and what changing it
    /// does.
    pub workload: Option<WorkloadFacts>,
}

/// What a workload kind does with its pod template.
#[derive(Debug)]
pub struct WorkloadFacts {
    /// Where the kind keeps its pod template.
    pub template: TemplateAt,
    /// Whether a change to the pod template rolls the pods that run now. A CronJob's template
    /// is used by its next Jobs, a ReplicaSet's by the pods it makes next; a Job's cannot
    /// change once it exists.
    pub rolls_pods: bool,
    /// What a change to the pod template does, said of one object and of several.
    pub template_note: (&'static str, &'static str),
    /// Whether the pod template may change after the object is created (a Job's may not:
    /// kube-apiserver's `ValidateJobSpecUpdate` answers 422 "field is immutable").
    pub template_mutable: bool,
    /// Whether a binding whose `kinds:` is omitted selects this kind. A kind left out is
    /// listed and watched only by specs that name it: most ReplicaSets belong to a Deployment
    /// (about ten per Deployment, with the default revision history), so listing them for
    /// every spec would cost reads and memory for objects regops must not patch, and RBAC that
    /// grants no ReplicaSets would fail every plan.
    pub by_default: bool,
    /// Whether one with a controlling owner, of any kind, has its template written by that
    /// owner (a ReplicaSet by its Deployment, or by an Argo Rollout): it is never patched, and
    /// the plan says to bind the owner. (A workload whose controller is itself a kind in this
    /// table is never patched, whatever this says.)
    pub copied_by_controller: bool,
}

/// Where a workload keeps its pod template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateAt {
    /// `spec.template` (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job).
    Spec,
    /// `spec.jobTemplate.spec.template` (CronJob).
    JobTemplate,
    /// Where a spec's `workloadKinds:` says (`podTemplate: spec.template`).
    Declared {
        path: &'static [&'static str],
        metadata: &'static str,
    },
}

impl TemplateAt {
    /// The path from the object to its pod template.
    pub const fn path(self) -> &'static [&'static str] {
        match self {
            TemplateAt::Spec => &["spec", "template"],
            TemplateAt::JobTemplate => &["spec", "jobTemplate", "spec", "template"],
            TemplateAt::Declared { path, .. } => path,
        }
    }

    /// The path of the pod template's metadata, as the plan names fields.
    pub const fn metadata(self) -> &'static str {
        match self {
            TemplateAt::Spec => "spec.template.metadata",
            TemplateAt::JobTemplate => "spec.jobTemplate.spec.template.metadata",
            TemplateAt::Declared { metadata, .. } => metadata,
        }
    }
}

const ROLLS: (&str, &str) = ("will roll its pods", "their pods will roll");

/// The built-in rows, in the order of [`ObjectKind`]'s constants: `FACTS[kind.0]` is `kind`'s
/// row (a test checks it).
const FACTS: [KindFacts; 9] = [
    KindFacts {
        kind: ObjectKind::Secret,
        name: "Secret",
        api_version: "v1",
        group: "",
        plural: "secrets",
        workload: None,
    },
    KindFacts {
        kind: ObjectKind::ServiceAccount,
        name: "ServiceAccount",
        api_version: "v1",
        group: "",
        plural: "serviceaccounts",
        workload: None,
    },
    KindFacts {
        kind: ObjectKind::Deployment,
        name: "Deployment",
        api_version: "apps/v1",
        group: "apps",
        plural: "deployments",
        workload: Some(WorkloadFacts {
            template: TemplateAt::Spec,
            rolls_pods: true,
            template_note: ROLLS,
            template_mutable: true,
            by_default: true,
            copied_by_controller: false,
        }),
    },
    KindFacts {
        kind: ObjectKind::StatefulSet,
        name: "StatefulSet",
        api_version: "apps/v1",
        group: "apps",
        plural: "statefulsets",
        workload: Some(WorkloadFacts {
            template: TemplateAt::Spec,
            rolls_pods: true,
            template_note: ROLLS,
            template_mutable: true,
            by_default: true,
            copied_by_controller: false,
        }),
    },
    KindFacts {
        kind: ObjectKind::DaemonSet,
        name: "DaemonSet",
        api_version: "apps/v1",
        group: "apps",
        plural: "daemonsets",
        workload: Some(WorkloadFacts {
            template: TemplateAt::Spec,
            rolls_pods: true,
            template_note: ROLLS,
            template_mutable: true,
            by_default: true,
            copied_by_controller: false,
        }),
    },
    // The ReplicaSet controller makes pods from the template as it needs them and never
    // replaces a running pod because the template changed (pkg/controller/replicaset), so a
    // change reaches the pods made next. One with a controller (a Deployment, an Argo Rollout)
    // is never patched (the plan says to bind the controller): its template is the
    // controller's to write, and one that differs makes a Deployment roll out a new one.
    KindFacts {
        kind: ObjectKind::ReplicaSet,
        name: "ReplicaSet",
        api_version: "apps/v1",
        group: "apps",
        plural: "replicasets",
        workload: Some(WorkloadFacts {
            template: TemplateAt::Spec,
            rolls_pods: false,
            template_note: (
                "the pods it makes next get this; running pods are unchanged",
                "the pods they make next get this; running pods are unchanged",
            ),
            template_mutable: true,
            by_default: false,
            copied_by_controller: true,
        }),
    },
    KindFacts {
        kind: ObjectKind::Job,
        name: "Job",
        api_version: "batch/v1",
        group: "batch",
        plural: "jobs",
        workload: Some(WorkloadFacts {
            template: TemplateAt::Spec,
            rolls_pods: false,
            template_note: (
                "cannot change: a Job's pod template is fixed once it exists",
                "cannot change: a Job's pod template is fixed once it exists",
            ),
            template_mutable: false,
            by_default: true,
            copied_by_controller: false,
        }),
    },
    KindFacts {
        kind: ObjectKind::CronJob,
        name: "CronJob",
        api_version: "batch/v1",
        group: "batch",
        plural: "cronjobs",
        workload: Some(WorkloadFacts {
            template: TemplateAt::JobTemplate,
            rolls_pods: false,
            template_note: (
                "its next Jobs get this; running Jobs are unchanged",
                "their next Jobs get this; running Jobs are unchanged",
            ),
            template_mutable: true,
            by_default: true,
            copied_by_controller: false,
        }),
    },
    KindFacts {
        kind: ObjectKind::ConfigMap,
        name: "ConfigMap",
        api_version: "v1",
        group: "",
        plural: "configmaps",
        workload: None,
    },
];

/// How many built-in rows are workloads.
const fn count_workloads() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < FACTS.len() {
        if FACTS[i].workload.is_some() {
            n += 1;
        }
        i += 1;
    }
    n
}

const WORKLOADS: usize = count_workloads();

/// At most this many rows are declared in one process: a controller that reloads a spec whose
/// declarations change adds rows each time, and each row is kept for the process's life.
pub const MAX_DECLARED: usize = 256;

/// The rows spec declarations added, after the built-in ones: `DECLARED[i]` is the row of
/// `ObjectKind(FACTS.len() + i)`. Append-only, and each row leaked, so that `facts()` can hand
/// out `&'static` rows as it does for the built-in ones.
static DECLARED: std::sync::RwLock<Vec<&'static KindFacts>> = std::sync::RwLock::new(Vec::new());

fn declared_rows() -> std::sync::RwLockReadGuard<'static, Vec<&'static KindFacts>> {
    // A poisoned lock only means a writer panicked between two statements of `declare`, which
    // pushes one whole row at a time: the vector is whole either way.
    DECLARED
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A workload kind a spec declares under `workloadKinds:`, as written there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declaration {
    /// As in `kind:` (`Rollout`).
    pub name: String,
    /// The API group (`argoproj.io`), never empty.
    pub group: String,
    /// The version (`v1alpha1`).
    pub version: String,
    /// The resource, as in the URL (`rollouts`).
    pub plural: String,
    /// The path of the pod template (`["spec", "template"]`).
    pub template: Vec<String>,
}

/// Why a declaration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeclareError {
    #[error("`{0}` is a kind regops knows already")]
    BuiltIn(String),
    #[error("more than {MAX_DECLARED} workload kinds were declared in this process")]
    TooMany,
}

/// Adds the row of a kind a spec declares, or finds the same row added before. A declared
/// kind's pod template rolls its pods when it changes (as a Deployment's, an Argo Rollout's
/// or an OpenKruise CloneSet's does), may change after creation, is selected only by bindings
/// that name it, and one with a controlling owner is left to that owner only when the owner
/// is a workload kind.
///
/// A name declared again with other facts (a spec edited under a running controller) gets a
/// new row, which [`ObjectKind::parse`] finds from then on; the old row stays valid.
pub fn declare(d: &Declaration) -> Result<WorkloadKind, DeclareError> {
    if FACTS.iter().any(|f| f.name == d.name) {
        return Err(DeclareError::BuiltIn(d.name.clone()));
    }
    let api_version = format!("{}/{}", d.group, d.version);
    let path: Vec<&str> = d.template.iter().map(String::as_str).collect();
    let same = |f: &KindFacts| {
        f.name == d.name
            && f.api_version == api_version
            && f.plural == d.plural
            && f.workload
                .as_ref()
                .is_some_and(|w| w.template.path() == path.as_slice())
    };
    if let Some(f) = declared_rows().iter().rev().find(|f| same(f)) {
        return Ok(WorkloadKind(f.kind));
    }
    let mut rows = DECLARED
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Another thread may have added it between the two locks.
    if let Some(f) = rows.iter().rev().find(|f| same(f)) {
        return Ok(WorkloadKind(f.kind));
    }
    if rows.len() >= MAX_DECLARED {
        return Err(DeclareError::TooMany);
    }
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let template: Vec<&'static str> = d.template.iter().map(|p| leak(p.clone())).collect();
    let metadata = leak(format!("{}.metadata", d.template.join(".")));
    // The index fits: FACTS.len() + MAX_DECLARED is far below u16::MAX.
    let kind = ObjectKind((FACTS.len() + rows.len()) as u16);
    let row: &'static KindFacts = Box::leak(Box::new(KindFacts {
        kind,
        name: leak(d.name.clone()),
        api_version: leak(api_version),
        group: leak(d.group.clone()),
        plural: leak(d.plural.clone()),
        workload: Some(WorkloadFacts {
            template: TemplateAt::Declared {
                path: Box::leak(template.into_boxed_slice()),
                metadata,
            },
            rolls_pods: true,
            template_note: ROLLS,
            template_mutable: true,
            by_default: false,
            copied_by_controller: false,
        }),
    }));
    rows.push(row);
    Ok(WorkloadKind(kind))
}

impl ObjectKind {
    /// Every built-in kind, in the table's order.
    pub const ALL: [ObjectKind; FACTS.len()] = {
        let mut all = [ObjectKind::Secret; FACTS.len()];
        let mut i = 0;
        while i < FACTS.len() {
            all[i] = FACTS[i].kind;
            i += 1;
        }
        all
    };

    pub fn facts(self) -> &'static KindFacts {
        let i = usize::from(self.0);
        match FACTS.get(i) {
            Some(f) => f,
            None => match declared_rows().get(i - FACTS.len()) {
                Some(f) => f,
                // An `ObjectKind` past the built-in rows is made only by `declare`, after its
                // row was pushed, and rows are never removed.
                None => unreachable!("kind row {i} was never declared"),
            },
        }
    }

    pub fn as_str(self) -> &'static str {
        self.facts().name
    }

    /// Whether a spec declared this kind (it is not built in).
    pub fn is_declared(self) -> bool {
        usize::from(self.0) >= FACTS.len()
    }

    /// The kind named `name` exactly (`kind:` is case-sensitive): a built-in one, or the one
    /// declared last under that name.
    pub fn parse(name: &str) -> Option<ObjectKind> {
        if let Some(f) = FACTS.iter().find(|f| f.name == name) {
            return Some(f.kind);
        }
        declared_rows()
            .iter()
            .rev()
            .find(|f| f.name == name)
            .map(|f| f.kind)
    }

    /// The kind with this group and kind name (`apps`, `Deployment`; the core group is
    /// empty), whatever the version.
    pub fn parse_group_kind(group: &str, name: &str) -> Option<ObjectKind> {
        ObjectKind::parse(name).filter(|k| k.facts().group == group)
    }

    /// The workload kind, for the kinds a binding selects.
    pub fn workload(self) -> Option<WorkloadKind> {
        self.facts().workload.as_ref().map(|_| WorkloadKind(self))
    }

    /// The collection's URL path, in one namespace or (with `None`) across all of them:
    /// `/apis/batch/v1/namespaces/web/cronjobs`, `/api/v1/secrets`.
    pub fn collection_path(self, namespace: Option<&str>) -> String {
        let f = self.facts();
        let root = if f.group.is_empty() { "api" } else { "apis" };
        match namespace {
            Some(ns) => format!("/{root}/{}/namespaces/{ns}/{}", f.api_version, f.plural),
            None => format!("/{root}/{}/{}", f.api_version, f.plural),
        }
    }

    /// What the plan calls one of these in prose (`deployment web/api`).
    pub fn lowercase(self) -> String {
        self.as_str().to_ascii_lowercase()
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Written as the kind's name (`Deployment`, `Rollout`), as `kind:` is.
impl Serialize for ObjectKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Read from the kind's name: a built-in kind, or one the loaded spec declared.
impl<'de> Deserialize<'de> for ObjectKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ObjectKind::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown kind `{}`: not built in, and the spec declares no such workload kind",
                name.escape_debug()
            ))
        })
    }
}

impl JsonSchema for ObjectKind {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ObjectKind".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = ObjectKind::ALL.iter().map(|k| k.as_str()).collect();
        schemars::json_schema!({
            "description": "An object kind: one built into regops, or a workload kind the spec declares under `workloadKinds`.",
            "anyOf": [
                { "type": "string", "enum": names },
                { "type": "string", "pattern": "^[A-Z][A-Za-z0-9]*$" }
            ]
        })
    }
}

/// A kind a binding can select: an [`ObjectKind`] whose row has [`WorkloadFacts`]. Made only
/// by [`ObjectKind::workload`], [`WorkloadKind::ALL`] and [`declare`], which check that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadKind(ObjectKind);

impl WorkloadKind {
    /// Every built-in workload kind, in the table's order.
    pub const ALL: [WorkloadKind; WORKLOADS] = {
        let mut all = [WorkloadKind(ObjectKind::Secret); WORKLOADS];
        let (mut i, mut n) = (0, 0);
        while i < FACTS.len() {
            if FACTS[i].workload.is_some() {
                all[n] = WorkloadKind(FACTS[i].kind);
                n += 1;
            }
            i += 1;
        }
        all
    };

    /// The kinds a binding selects when its `kinds:` is omitted.
    pub fn defaults() -> impl Iterator<Item = WorkloadKind> {
        Self::ALL.into_iter().filter(|k| k.facts().by_default)
    }

    pub fn object(self) -> ObjectKind {
        self.0
    }

    pub fn facts(self) -> &'static WorkloadFacts {
        match &self.0.facts().workload {
            Some(w) => w,
            // A `WorkloadKind` is made only from a row with workload facts (see the type).
            None => unreachable!("{} has no workload facts", self.0),
        }
    }

    pub fn as_str(self) -> &'static str {
        self.0.as_str()
    }

    /// The workload kind named exactly `name` (`kind:` is case-sensitive).
    pub fn parse(name: &str) -> Option<WorkloadKind> {
        ObjectKind::parse(name).and_then(ObjectKind::workload)
    }
}

impl From<WorkloadKind> for ObjectKind {
    fn from(k: WorkloadKind) -> Self {
        k.0
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl JsonSchema for WorkloadKind {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "WorkloadKind".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = WorkloadKind::ALL.iter().map(|k| k.as_str()).collect();
        schemars::json_schema!({
            "description": "A built-in workload kind, or one the spec declares under `workloadKinds`.",
            "anyOf": [
                { "type": "string", "enum": names },
                { "type": "string", "pattern": "^[A-Z][A-Za-z0-9]*$" }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_variant_order_and_names_round_trip() {
        for k in ObjectKind::ALL {
            assert_eq!(k.facts().kind, k);
            assert!(!k.is_declared());
            assert_eq!(ObjectKind::parse(k.as_str()), Some(k));
            let f = k.facts();
            assert_eq!(
                f.api_version,
                if f.group.is_empty() {
                    "v1".to_string()
                } else {
                    format!("{}/v1", f.group)
                }
            );
            if let Some(w) = &f.workload {
                assert_eq!(
                    w.template.metadata(),
                    format!("{}.metadata", w.template.path().join("."))
                );
                // A template that cannot change does not roll pods.
                assert!(w.template_mutable || !w.rolls_pods, "{k}");
            }
        }
        assert_eq!(ObjectKind::parse("secret"), None);
        assert_eq!(
            WorkloadKind::ALL.len(),
            ObjectKind::ALL
                .iter()
                .filter(|k| k.facts().workload.is_some())
                .count()
        );
        for w in WorkloadKind::ALL {
            assert_eq!(ObjectKind::from(w).workload(), Some(w));
            assert_eq!(WorkloadKind::parse(w.as_str()), Some(w));
        }
        assert_eq!(WorkloadKind::parse("Secret"), None);
        assert_eq!(WorkloadKind::parse("ServiceAccount"), None);
    }

    #[test]
    fn replica_sets_are_selected_only_when_named() {
        let defaults: Vec<&str> = WorkloadKind::defaults().map(WorkloadKind::as_str).collect();
        assert_eq!(
            defaults,
            ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"]
        );
        assert_eq!(
            WorkloadKind::parse("ReplicaSet").map(|k| k.facts().rolls_pods),
            Some(false)
        );
    }

    #[test]
    fn collection_paths() {
        assert_eq!(
            ObjectKind::CronJob.collection_path(Some("web")),
            "/apis/batch/v1/namespaces/web/cronjobs"
        );
        assert_eq!(ObjectKind::Secret.collection_path(None), "/api/v1/secrets");
        assert_eq!(
            ObjectKind::ReplicaSet.collection_path(None),
            "/apis/apps/v1/replicasets"
        );
    }

    fn rollout(template: &str) -> Declaration {
        Declaration {
            name: "Rollout".into(),
            group: "argoproj.io".into(),
            version: "v1alpha1".into(),
            plural: "rollouts".into(),
            template: template.split('.').map(str::to_string).collect(),
        }
    }

    #[test]
    fn a_declared_kind_is_a_row_after_the_built_in_ones() {
        let k = declare(&rollout("spec.template")).unwrap();
        let o = ObjectKind::from(k);
        assert!(o.is_declared());
        assert_eq!(ObjectKind::parse("Rollout"), Some(o));
        assert_eq!(
            ObjectKind::parse_group_kind("argoproj.io", "Rollout"),
            Some(o)
        );
        assert_eq!(ObjectKind::parse_group_kind("apps", "Rollout"), None);
        assert_eq!(o.facts().api_version, "argoproj.io/v1alpha1");
        assert_eq!(
            o.collection_path(Some("web")),
            "/apis/argoproj.io/v1alpha1/namespaces/web/rollouts"
        );
        let w = k.facts();
        assert_eq!(w.template.path(), ["spec", "template"]);
        assert_eq!(w.template.metadata(), "spec.template.metadata");
        assert!(w.rolls_pods && w.template_mutable && !w.by_default);
        assert!(!WorkloadKind::defaults().any(|d| d == k));
        // The same declaration again is the same row; the name serializes and reads back.
        assert_eq!(declare(&rollout("spec.template")), Ok(k));
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(json, r#""Rollout""#);
        assert_eq!(serde_json::from_str::<ObjectKind>(&json).unwrap(), o);
        assert_eq!(format!("{o:?}"), "Rollout");
    }

    #[test]
    fn a_built_in_name_cannot_be_declared() {
        let mut d = rollout("spec.template");
        d.name = "Deployment".into();
        assert_eq!(declare(&d), Err(DeclareError::BuiltIn("Deployment".into())));
        assert_eq!(
            ObjectKind::parse("Deployment"),
            Some(ObjectKind::Deployment)
        );
    }

    #[test]
    fn an_unknown_kind_does_not_deserialize() {
        let e = serde_json::from_str::<ObjectKind>(r#""NoSuchKind""#).unwrap_err();
        assert!(e.to_string().contains("unknown kind `NoSuchKind`"), "{e}");
    }
}
