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

/// An object kind regops writes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum ObjectKind {
    Secret,
    ServiceAccount,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
    /// Node trust (`nodeTrust:`): the rendered files node-sync reads; never selected by a
    /// binding.
    ConfigMap,
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
}

impl TemplateAt {
    /// The path from the object to its pod template.
    pub const fn path(self) -> &'static [&'static str] {
        match self {
            TemplateAt::Spec => &["spec", "template"],
            TemplateAt::JobTemplate => &["spec", "jobTemplate", "spec", "template"],
        }
    }

    /// The path of the pod template's metadata, as the plan names fields.
    pub const fn metadata(self) -> &'static str {
        match self {
            TemplateAt::Spec => "spec.template.metadata",
            TemplateAt::JobTemplate => "spec.jobTemplate.spec.template.metadata",
        }
    }
}

const ROLLS: (&str, &str) = ("will roll its pods", "their pods will roll");

/// In the order of [`ObjectKind`]'s variants: `FACTS[kind as usize]` is `kind`'s row (a test
/// checks it).
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

/// How many rows of the table are workloads.
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

impl ObjectKind {
    /// Every kind, in the table's order.
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
        &FACTS[self as usize]
    }

    pub fn as_str(self) -> &'static str {
        self.facts().name
    }

    /// The kind named `name` exactly (`kind:` is case-sensitive).
    pub fn parse(name: &str) -> Option<ObjectKind> {
        FACTS.iter().find(|f| f.name == name).map(|f| f.kind)
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

/// A kind a binding can select: an [`ObjectKind`] whose row has [`WorkloadFacts`]. Made only
/// by [`ObjectKind::workload`] and [`WorkloadKind::ALL`], which check that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadKind(ObjectKind);

impl WorkloadKind {
    /// Every workload kind, in the table's order.
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
        schemars::json_schema!({ "type": "string", "enum": names })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_variant_order_and_names_round_trip() {
        for k in ObjectKind::ALL {
            assert_eq!(k.facts().kind, k);
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
}
