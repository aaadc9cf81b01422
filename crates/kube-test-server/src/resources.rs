//! The API resources this server serves, and what their paths look like.

/// One served resource type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Served for a CustomResourceDefinition a test registered ([`register_crd`]).
    pub custom: bool,
}

/// The kinds with a pod template (and a `metadata.generation` that moves with their spec).
const WORKLOAD_KINDS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
];

impl ResourceType {
    /// Whether this is a workload: a kind with a pod template.
    pub fn is_workload(&self) -> bool {
        WORKLOAD_KINDS.contains(&self.kind)
    }

    /// Whether `metadata.generation` moves with the spec: a workload's does, and so does a
    /// custom resource's (apiextensions-apiserver, `pkg/registry/customresource/strategy.go`,
    /// `PrepareForUpdate`, bumps it when anything but metadata and status changes).
    pub fn has_generation(&self) -> bool {
        self.is_workload() || self.custom
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

pub const RESOURCES: &[ResourceType] = &[
    ResourceType {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        custom: false,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        custom: false,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        custom: false,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        custom: false,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        namespaced: true,
        short_names: &["sts"],
        custom: false,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        singular: "daemonset",
        kind: "DaemonSet",
        namespaced: true,
        short_names: &["ds"],
        custom: false,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        custom: false,
    },
    ResourceType {
        group: "batch",
        version: "v1",
        plural: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        short_names: &[],
        custom: false,
    },
    ResourceType {
        group: "batch",
        version: "v1",
        plural: "cronjobs",
        singular: "cronjob",
        kind: "CronJob",
        namespaced: true,
        short_names: &["cj"],
        custom: false,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        custom: false,
    },
    ResourceType {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: &[],
        custom: false,
    },
    // What regops records of an apply (validated as events.k8s.io/v1 Events are).
    ResourceType {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        custom: false,
    },
    // Stored as they are, for what an install applies (deploy/): the ConfigMap the spec
    // comes from, the RBAC and the NetworkPolicy. Nothing regops itself reads.
    ResourceType {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        custom: false,
    },
    ResourceType {
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        kind: "PodDisruptionBudget",
        namespaced: true,
        short_names: &["pdb"],
        custom: false,
    },
    ResourceType {
        group: "networking.k8s.io",
        version: "v1",
        plural: "networkpolicies",
        singular: "networkpolicy",
        kind: "NetworkPolicy",
        namespaced: true,
        short_names: &["netpol"],
        custom: false,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterroles",
        singular: "clusterrole",
        kind: "ClusterRole",
        namespaced: false,
        short_names: &[],
        custom: false,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        kind: "ClusterRoleBinding",
        namespaced: false,
        short_names: &[],
        custom: false,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "roles",
        singular: "role",
        kind: "Role",
        namespaced: true,
        short_names: &[],
        custom: false,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        singular: "rolebinding",
        kind: "RoleBinding",
        namespaced: true,
        short_names: &[],
        custom: false,
    },
];

/// The resources served for registered CustomResourceDefinitions, after the built-in ones.
/// Process-wide and append-only (each row leaked, so that it is `&'static` like a built-in
/// one): a resource registered by one test is served by every server in the process, which
/// is harmless since tests pick their own group names. Discovery and the OpenAPI documents
/// list only the built-in resources.
static CUSTOM: std::sync::RwLock<Vec<&'static ResourceType>> = std::sync::RwLock::new(Vec::new());

fn custom() -> Vec<&'static ResourceType> {
    CUSTOM
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// What a CustomResourceDefinition says about its resource: `spec.group`, the served version,
/// `spec.names.kind` and `spec.names.plural`, and `spec.scope`.
#[derive(Clone, Debug)]
pub struct Crd {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

/// Serves the resource `crd` defines, as kube-apiserver does once a CustomResourceDefinition
/// is established: objects are stored as they are sent (no schema here: as with
/// `x-kubernetes-preserve-unknown-fields`), listed, watched, patched and applied like any
/// other. Registering the same definition again is no change.
pub fn register_crd(crd: &Crd) -> &'static ResourceType {
    let mut rows = CUSTOM
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(r) = rows
        .iter()
        .find(|r| r.group == crd.group && r.version == crd.version && r.plural == crd.plural)
        .copied()
    {
        return r;
    }
    let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    let row: &'static ResourceType = Box::leak(Box::new(ResourceType {
        group: leak(&crd.group),
        version: leak(&crd.version),
        plural: leak(&crd.plural),
        singular: leak(&crd.kind.to_ascii_lowercase()),
        kind: leak(&crd.kind),
        namespaced: crd.namespaced,
        short_names: &[],
        custom: true,
    }));
    rows.push(row);
    row
}

/// Every served resource: the built-in ones, then the registered custom ones.
pub fn all() -> impl Iterator<Item = &'static ResourceType> {
    RESOURCES.iter().chain(custom())
}

pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    all().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource stored under `plural` (the store's keys).
pub fn by_plural(plural: &str) -> Option<&'static ResourceType> {
    all().find(|r| r.plural == plural)
}

pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    all().find(|r| r.kind == kind && r.api_version() == api_version)
}

/// A parsed resource path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath {
    pub resource: &'static ResourceType,
    /// The namespace in the path (`/namespaces/{ns}/...`), if any.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...` resource paths.
pub fn parse_path(path: &str) -> Option<ResourcePath> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        // `/namespaces/{ns}/{plural}...` is a namespaced path; `/namespaces[/{name}]` is the
        // Namespace resource itself.
        ["namespaces", ns, plural, more @ ..]
            if find(group, version, plural).is_some_and(|r| r.namespaced) =>
        {
            (Some(ns.to_string()), [&[*plural][..], more].concat())
        }
        _ => (None, rest.to_vec()),
    };
    let resource = find(group, version, rest.first()?)?;
    if namespace.is_some() && !resource.namespaced {
        return None;
    }
    Some(ResourcePath {
        resource,
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = parse_path("/api/v1/namespaces").unwrap();
        assert_eq!(
            (p.resource.kind, p.namespace, p.name),
            ("Namespace", None, None)
        );
        let p = parse_path("/api/v1/namespaces/web").unwrap();
        assert_eq!(
            (p.resource.kind, p.name.as_deref()),
            ("Namespace", Some("web"))
        );
        let p = parse_path("/api/v1/namespaces/web/secrets/pull").unwrap();
        assert_eq!(
            (p.resource.kind, p.namespace.as_deref(), p.name.as_deref()),
            ("Secret", Some("web"), Some("pull"))
        );
        let p = parse_path("/api/v1/secrets").unwrap();
        assert_eq!((p.resource.kind, p.namespace), ("Secret", None));
        let p = parse_path("/apis/apps/v1/namespaces/web/deployments/api").unwrap();
        assert_eq!(p.resource.kind, "Deployment");
        // A namespace called "secrets" is still a namespace.
        let p = parse_path("/api/v1/namespaces/secrets").unwrap();
        assert_eq!(
            (p.resource.kind, p.name.as_deref()),
            ("Namespace", Some("secrets"))
        );
        assert!(parse_path("/api/v1/endpoints").is_none());
        assert!(parse_path("/apis/apps/v2/deployments").is_none());
    }
}
