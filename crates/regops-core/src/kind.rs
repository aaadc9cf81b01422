//! The kinds of object a plan changes, and one table of what the Kubernetes API says about
//! each: its group and version, its resource name, and where a workload keeps its pod template.
//! Every other module asks this table; none spells these facts itself.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use regops_spec::WorkloadKind;

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
    Job,
    CronJob,
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
    /// For workloads: the path from the object to its pod template.
    pub template: Option<&'static [&'static str]>,
    /// For workloads: the path of the pod template's metadata, as the plan names fields.
    pub template_metadata: Option<&'static str>,
    /// Whether a change to the pod template rolls the pods that run now. A CronJob's template
    /// is used by its next Jobs; a Job's cannot change once it exists.
    pub rolls_pods: bool,
    /// What a change to the pod template does, said of one object and of several (`None`:
    /// no pod template).
    pub template_note: Option<(&'static str, &'static str)>,
    /// Whether the pod template may change after the object is created (a Job's may not:
    /// kube-apiserver's `ValidateJobSpecUpdate` answers 422 "field is immutable").
    pub template_mutable: bool,
}

const POD_TEMPLATE: &[&str] = &["spec", "template"];
const JOB_TEMPLATE: &[&str] = &["spec", "jobTemplate", "spec", "template"];

/// In the order of [`ObjectKind`]'s variants: `FACTS[kind as usize]` is `kind`'s row (a test
/// checks it).
const FACTS: [KindFacts; 7] = [
    KindFacts {
        kind: ObjectKind::Secret,
        name: "Secret",
        api_version: "v1",
        group: "",
        plural: "secrets",
        template: None,
        template_metadata: None,
        rolls_pods: false,
        template_note: None,
        template_mutable: false,
    },
    KindFacts {
        kind: ObjectKind::ServiceAccount,
        name: "ServiceAccount",
        api_version: "v1",
        group: "",
        plural: "serviceaccounts",
        template: None,
        template_metadata: None,
        rolls_pods: false,
        template_note: None,
        template_mutable: false,
    },
    KindFacts {
        kind: ObjectKind::Deployment,
        name: "Deployment",
        api_version: "apps/v1",
        group: "apps",
        plural: "deployments",
        template: Some(POD_TEMPLATE),
        template_metadata: Some("spec.template.metadata"),
        rolls_pods: true,
        template_note: Some(("will roll its pods", "their pods will roll")),
        template_mutable: true,
    },
    KindFacts {
        kind: ObjectKind::StatefulSet,
        name: "StatefulSet",
        api_version: "apps/v1",
        group: "apps",
        plural: "statefulsets",
        template: Some(POD_TEMPLATE),
        template_metadata: Some("spec.template.metadata"),
        rolls_pods: true,
        template_note: Some(("will roll its pods", "their pods will roll")),
        template_mutable: true,
    },
    KindFacts {
        kind: ObjectKind::DaemonSet,
        name: "DaemonSet",
        api_version: "apps/v1",
        group: "apps",
        plural: "daemonsets",
        template: Some(POD_TEMPLATE),
        template_metadata: Some("spec.template.metadata"),
        rolls_pods: true,
        template_note: Some(("will roll its pods", "their pods will roll")),
        template_mutable: true,
    },
    KindFacts {
        kind: ObjectKind::Job,
        name: "Job",
        api_version: "batch/v1",
        group: "batch",
        plural: "jobs",
        template: Some(POD_TEMPLATE),
        template_metadata: Some("spec.template.metadata"),
        rolls_pods: false,
        template_note: Some((
            "cannot change: a Job's pod template is fixed once it exists",
            "cannot change: a Job's pod template is fixed once it exists",
        )),
        template_mutable: false,
    },
    KindFacts {
        kind: ObjectKind::CronJob,
        name: "CronJob",
        api_version: "batch/v1",
        group: "batch",
        plural: "cronjobs",
        template: Some(JOB_TEMPLATE),
        template_metadata: Some("spec.jobTemplate.spec.template.metadata"),
        rolls_pods: false,
        template_note: Some((
            "its next Jobs get this; running Jobs are unchanged",
            "their next Jobs get this; running Jobs are unchanged",
        )),
        template_mutable: true,
    },
];

impl ObjectKind {
    pub const ALL: [ObjectKind; 7] = [
        ObjectKind::Secret,
        ObjectKind::ServiceAccount,
        ObjectKind::Deployment,
        ObjectKind::StatefulSet,
        ObjectKind::DaemonSet,
        ObjectKind::Job,
        ObjectKind::CronJob,
    ];

    pub fn facts(self) -> &'static KindFacts {
        &FACTS[self as usize]
    }

    pub fn as_str(self) -> &'static str {
        self.facts().name
    }

    /// The kind named `name` exactly (`kind:` is case-sensitive).
    pub fn parse(name: &str) -> Option<ObjectKind> {
        Some(match name {
            "Secret" => ObjectKind::Secret,
            "ServiceAccount" => ObjectKind::ServiceAccount,
            "Deployment" => ObjectKind::Deployment,
            "StatefulSet" => ObjectKind::StatefulSet,
            "DaemonSet" => ObjectKind::DaemonSet,
            "Job" => ObjectKind::Job,
            "CronJob" => ObjectKind::CronJob,
            _ => return None,
        })
    }

    /// The workload kind, for the kinds a binding selects.
    pub fn workload(self) -> Option<WorkloadKind> {
        Some(match self {
            ObjectKind::Secret | ObjectKind::ServiceAccount => return None,
            ObjectKind::Deployment => WorkloadKind::Deployment,
            ObjectKind::StatefulSet => WorkloadKind::StatefulSet,
            ObjectKind::DaemonSet => WorkloadKind::DaemonSet,
            ObjectKind::Job => WorkloadKind::Job,
            ObjectKind::CronJob => WorkloadKind::CronJob,
        })
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

impl From<WorkloadKind> for ObjectKind {
    fn from(k: WorkloadKind) -> Self {
        match k {
            WorkloadKind::Deployment => ObjectKind::Deployment,
            WorkloadKind::StatefulSet => ObjectKind::StatefulSet,
            WorkloadKind::DaemonSet => ObjectKind::DaemonSet,
            WorkloadKind::Job => ObjectKind::Job,
            WorkloadKind::CronJob => ObjectKind::CronJob,
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
            assert_eq!(f.template.is_some(), k.workload().is_some(), "{k}");
            assert_eq!(f.template_metadata.is_some(), k.workload().is_some(), "{k}");
            assert_eq!(f.template_note.is_some(), k.workload().is_some(), "{k}");
            if let Some(t) = f.template {
                assert_eq!(
                    f.template_metadata,
                    Some(&*format!("{}.metadata", t.join(".")))
                );
            }
            assert_eq!(
                f.api_version,
                if f.group.is_empty() {
                    "v1".to_string()
                } else {
                    format!("{}/v1", f.group)
                }
            );
        }
        assert_eq!(ObjectKind::parse("secret"), None);
        for w in WorkloadKind::ALL {
            assert_eq!(ObjectKind::from(w).workload(), Some(w));
            assert_eq!(ObjectKind::from(w).as_str(), w.as_str());
            assert_eq!(WorkloadKind::parse(w.as_str()), Some(w));
        }
    }

    #[test]
    fn collection_paths() {
        assert_eq!(
            ObjectKind::CronJob.collection_path(Some("web")),
            "/apis/batch/v1/namespaces/web/cronjobs"
        );
        assert_eq!(ObjectKind::Secret.collection_path(None), "/api/v1/secrets");
    }
}
