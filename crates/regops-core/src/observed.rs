//! The cluster as observed: only what planning needs.
//!
//! Objects arrive in the [`wire`] shapes, deserialised straight from a LIST page or a state
//! file: serde keeps the fields planning reads and skips everything else (managedFields' field
//! sets, pod specs beyond containers and pull secrets, other Secrets' data) without storing
//! it. [`Observed::push`] then moves each object's fields into the lean model, so a page costs
//! its own size once and is dropped before the next is read.

use std::collections::BTreeMap;

use secrecy::SecretString;

use crate::ownership;

pub mod wire;

/// Labels or annotations: a sorted vector of pairs. Objects carry a few each, and a
/// `BTreeMap` spends a whole node (about 550 bytes) on even one entry; at 50,000 workloads that
/// difference is most of the model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    pub fn new() -> Self {
        Labels(Vec::new())
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key`, returning its previous value.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps the entries whose key passes `keep`.
    pub fn retain_keys(&mut self, keep: impl Fn(&str) -> bool) {
        self.0.retain(|(k, _)| keep(k));
        self.0.shrink_to_fit();
    }
}

impl FromIterator<(String, String)> for Labels {
    /// Sorted by key; of a key given twice, the last value.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut v: Vec<(String, String)> = iter.into_iter().collect();
        v.reverse();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|later, first| later.0 == first.0);
        v.shrink_to_fit();
        Labels(v)
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(m: BTreeMap<String, String>) -> Self {
        let mut v: Vec<(String, String)> = m.into_iter().collect();
        v.shrink_to_fit();
        Labels(v)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub labels: Labels,
    pub annotations: Labels,
    /// Being deleted (`metadata.deletionTimestamp` set): it accepts no new objects.
    pub terminating: bool,
    pub resource_version: Option<String>,
}

/// A field manager of an object, as far as regops needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manager {
    pub name: String,
    /// Its fields were set by server-side apply (not by an update or patch).
    pub apply: bool,
    /// It owns (some of) a Secret's `data`.
    pub owns_data: bool,
}

#[derive(Clone, Debug)]
pub struct Secret {
    pub namespace: String,
    pub name: String,
    pub type_: String,
    pub immutable: bool,
    pub labels: Labels,
    pub annotations: Labels,
    /// The decoded `.dockerconfigjson`, when there is one.
    pub dockerconfigjson: Option<SecretString>,
    pub resource_version: Option<String>,
    pub uid: Option<String>,
    pub managers: Vec<Manager>,
}

impl Secret {
    /// Owned by regops for the spec `spec`: the managed-by label and the spec annotation.
    pub fn owned_by(&self, spec: &str) -> bool {
        ownership::marks_owned(
            self.labels
                .get(ownership::MANAGED_BY_LABEL)
                .map(String::as_str),
            self.annotations
                .get(ownership::SPEC_ANNOTATION)
                .map(String::as_str),
            spec,
        )
    }

    /// Owned by regops for some other spec.
    pub fn owning_spec(&self) -> Option<&str> {
        (self
            .labels
            .get(ownership::MANAGED_BY_LABEL)
            .map(String::as_str)
            == Some(ownership::MANAGED_BY_VALUE))
        .then(|| {
            self.annotations
                .get(ownership::SPEC_ANNOTATION)
                .map(String::as_str)
        })
        .flatten()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
    pub image_pull_secrets: Vec<String>,
    pub annotations: Labels,
    /// For writes that must not lose a concurrent change (the list is atomic).
    pub resource_version: Option<String>,
    pub uid: Option<String>,
    /// A GitOps or packaging tool that also manages it ([`ownership::gitops_owner`]).
    pub managed_by: Option<&'static str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub init: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub kind: regops_spec::WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    /// Only the annotations regops reads ([`ownership::is_read_annotation`]).
    pub annotations: Labels,
    pub containers: Vec<Container>,
    pub image_pull_secrets: Vec<String>,
    /// The pod template's annotations regops reads (where the KubeSphere console keeps its
    /// own).
    pub template_annotations: Labels,
    pub resource_version: Option<String>,
    pub uid: Option<String>,
    /// The field managers holding the KubeSphere annotation on the workload's own metadata
    /// (set only when it is there).
    pub legacy_kubesphere_owners: Vec<String>,
    /// The controlling owner, `(kind, name)`: a Job's CronJob. Boxed, as is `template_ref`:
    /// most workloads have neither, and a workload is kept for each of a cluster's (16 bytes
    /// a workload rather than 96: 4 MB at 50,000 workloads).
    pub controller: Option<Box<(String, String)>>,
    /// The workload whose pod template this one runs instead of its own, `(kind, name)`: an
    /// Argo Rollout's `spec.workloadRef`.
    pub template_ref: Option<Box<(String, String)>>,
}

/// Everything observed.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub namespaces: Vec<Namespace>,
    pub secrets: Vec<Secret>,
    pub service_accounts: Vec<ServiceAccount>,
    pub workloads: Vec<Workload>,
    /// The node-trust ConfigMap and the operator's allowlist, when the spec has `nodeTrust:`
    /// (each read with one GET by the shell).
    pub config_maps: Vec<ConfigMap>,
}

/// A ConfigMap regops reads (node trust): its data whole, which is public.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigMap {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub annotations: Labels,
    pub data: std::collections::BTreeMap<String, String>,
    pub resource_version: Option<String>,
}

impl ConfigMap {
    /// Owned by regops for the spec `spec`: the managed-by label and the spec annotation.
    pub fn owned_by(&self, spec: &str) -> bool {
        ownership::marks_owned(
            self.labels
                .get(ownership::MANAGED_BY_LABEL)
                .map(String::as_str),
            self.annotations
                .get(ownership::SPEC_ANNOTATION)
                .map(String::as_str),
            spec,
        )
    }
}

/// Why an object cannot be moved into the model (its `Skipped` reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Unreadable {
    #[error("an object without metadata.name")]
    NoName,
    #[error("secret {namespace}/{name}: {key} is not base64")]
    NotBase64 {
        namespace: String,
        name: String,
        key: &'static str,
    },
}

/// An object that could not be read, by position in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub index: usize,
    pub reason: String,
}

/// The annotations regops reads (see [`ownership::is_read_annotation`]).
fn only_read(mut annotations: Labels) -> Labels {
    annotations.retain_keys(ownership::is_read_annotation);
    annotations
}

impl Observed {
    /// Reads objects given as JSON values (tests, small inputs); `List` objects are flattened.
    /// See [`Observed::push`].
    pub fn from_objects(objects: &[serde_json::Value]) -> (Observed, Vec<Skipped>) {
        let mut o = Observed::default();
        let mut skipped = Vec::new();
        for (index, v) in objects.iter().enumerate() {
            match wire::Object::from_value(v) {
                Ok(obj) => o.push(index, None, obj, &mut skipped),
                Err(e) => skipped.push(Skipped {
                    index,
                    reason: e.to_string(),
                }),
            }
        }
        o.finish();
        (o, skipped)
    }

    /// Adds one object, moving its fields into the model. A `List` is flattened; its items may
    /// lack `kind` (as the API returns them), which `default_kind`, or else the list's kind
    /// less `List`, fills in. Unknown kinds are ignored; objects that cannot be read are
    /// reported in `skipped` under `index`, their position in the input. Call
    /// [`Observed::finish`] when done.
    pub fn push(
        &mut self,
        index: usize,
        default_kind: Option<&str>,
        mut obj: wire::Object,
        skipped: &mut Vec<Skipped>,
    ) {
        let kind = obj.kind.take().or_else(|| default_kind.map(str::to_string));
        if let Some(items) = obj.items.take() {
            let item_kind = kind
                .as_deref()
                .and_then(|k| k.strip_suffix("List"))
                .filter(|k| !k.is_empty());
            for item in items {
                self.push(index, item_kind, item, skipped);
            }
            return;
        }
        if let Err(reason) = self.add(kind.as_deref().unwrap_or(""), obj) {
            skipped.push(Skipped {
                index,
                reason: reason.to_string(),
            });
        }
    }

    /// Makes room for `n` more objects of `kind` (from a LIST's remainingItemCount).
    /// The namespaces being deleted (a `deletionTimestamp`): nothing is planned there.
    pub fn terminating_namespaces(&self) -> std::collections::BTreeSet<&str> {
        self.namespaces
            .iter()
            .filter(|n| n.terminating)
            .map(|n| n.name.as_str())
            .collect()
    }

    pub fn reserve(&mut self, kind: &str, n: usize) {
        // A hint from the server: bounded, so a wrong one cannot make regops allocate much.
        let n = n.min(1 << 20);
        match kind {
            "Namespace" => self.namespaces.reserve(n),
            "Secret" => self.secrets.reserve(n),
            "ServiceAccount" => self.service_accounts.reserve(n),
            _ => self.workloads.reserve(n),
        }
    }

    /// Puts everything in a stable order, and keeps the first of two Secrets of one name in one
    /// namespace (a Secret listed whole, then again by name as metadata).
    pub fn finish(&mut self) {
        self.namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        self.secrets
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        self.secrets.dedup_by(|later, first| {
            later.namespace == first.namespace && later.name == first.name
        });
        self.service_accounts
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        self.workloads
            .sort_by(|a, b| (&a.namespace, a.kind, &a.name).cmp(&(&b.namespace, b.kind, &b.name)));
    }

    // Kept whole (over 80 lines): one arm per kind, each moving the wire fields into the model
    // once (splitting it would mean passing every field).
    fn add(&mut self, kind: &str, obj: wire::Object) -> Result<(), Unreadable> {
        let wire::Object {
            metadata,
            type_,
            immutable,
            data,
            string_data,
            image_pull_secrets,
            mut spec,
            ..
        } = obj;
        let wire::Meta {
            name,
            namespace,
            labels,
            annotations,
            resource_version,
            uid,
            deletion_timestamp,
            managed_fields,
            owner_references,
        } = metadata;
        let name = name.ok_or(Unreadable::NoName)?;
        let namespace = namespace.unwrap_or_default();
        let labels = labels.unwrap_or_default();
        let annotations = annotations.unwrap_or_default();
        match kind {
            "Namespace" => self.namespaces.push(Namespace {
                name,
                labels,
                annotations,
                terminating: deletion_timestamp.is_some(),
                resource_version,
            }),
            "Secret" => {
                let (json, cfg) = data.map_or((None, None), |d| (d.dockerconfigjson, d.dockercfg));
                let legacy = type_.as_deref() == Some("kubernetes.io/dockercfg");
                // A legacy Secret's document is its `.dockercfg` (the `auths` map alone).
                let (doc, key) = if legacy && json.is_none() {
                    (cfg, ".dockercfg")
                } else {
                    (json, ".dockerconfigjson")
                };
                let dockerconfigjson = match doc {
                    Some(wire::SecretBase64::Decoded(s)) => Some(s),
                    Some(wire::SecretBase64::Invalid) => {
                        return Err(Unreadable::NotBase64 {
                            namespace,
                            name,
                            key,
                        });
                    }
                    None => string_data.and_then(|d| d.dockerconfigjson),
                };
                let managers = managers(managed_fields);
                self.secrets.push(Secret {
                    namespace,
                    name,
                    type_: type_.unwrap_or_else(|| "Opaque".into()),
                    immutable: immutable.unwrap_or(false),
                    labels,
                    annotations,
                    dockerconfigjson,
                    resource_version,
                    uid,
                    managers,
                });
            }
            "ServiceAccount" => self.service_accounts.push(ServiceAccount {
                managed_by: ownership::gitops_owner(&labels, &annotations),
                namespace,
                name,
                image_pull_secrets: wire::names(image_pull_secrets),
                annotations: only_read(annotations),
                resource_version,
                uid,
            }),
            _ => {
                let Some(kind) = regops_spec::WorkloadKind::parse(kind) else {
                    return Ok(());
                };
                let template_ref = spec
                    .as_mut()
                    .and_then(|s| s.workload_ref.take())
                    .and_then(|r| Some(Box::new((r.kind?, r.name?))));
                let (template_annotations, pod) = pod_template(kind, spec);
                let wire::PodSpec {
                    containers: main,
                    init_containers: init,
                    image_pull_secrets: pulls,
                } = pod;
                let containers = containers(init, main);
                // Who holds the KubeSphere annotation on the workload's own metadata (only
                // where it is there: earlier regops versions wrote it there).
                let legacy_kubesphere_owners =
                    if annotations.contains_key(ownership::KUBESPHERE_ANNOTATION) {
                        kubesphere_owners(managed_fields)
                    } else {
                        Vec::new()
                    };
                let controller = owner_references
                    .unwrap_or_default()
                    .into_iter()
                    .find(|o| o.controller == Some(true))
                    .and_then(|o| Some(Box::new((o.kind?, o.name?))));
                self.workloads.push(Workload {
                    legacy_kubesphere_owners,
                    controller,
                    template_ref,
                    kind,
                    namespace,
                    name,
                    labels,
                    annotations: only_read(annotations),
                    containers,
                    image_pull_secrets: wire::names(pulls),
                    template_annotations,
                    resource_version,
                    uid,
                });
            }
        }
        Ok(())
    }
}

/// The field managers of a Secret, and whether each holds its data.
fn managers(fields: Option<Vec<wire::ManagedFieldsEntry>>) -> Vec<Manager> {
    fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| Manager {
            name: m.manager.unwrap_or_default(),
            apply: m.operation.as_deref() == Some("Apply"),
            owns_data: m.fields_v1.is_some_and(|f| f.data.is_some()),
        })
        .collect()
}

/// The field managers holding the KubeSphere annotation on an object's own metadata.
fn kubesphere_owners(fields: Option<Vec<wire::ManagedFieldsEntry>>) -> Vec<String> {
    fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .and_then(|f| f.metadata.as_ref())
                .and_then(|m| m.annotations.as_ref())
                .is_some_and(|a| a.kubesphere.is_some())
        })
        .filter_map(|m| m.manager)
        .collect()
}

/// A workload's pod template: the annotations regops reads, and the pod spec. Where the kind
/// keeps it (`KindFacts::template`): a CronJob's is in its Job template.
fn pod_template(
    kind: regops_spec::WorkloadKind,
    spec: Option<wire::WorkloadSpec>,
) -> (Labels, wire::PodSpec) {
    use regops_spec::kind::TemplateAt;
    let template = spec.and_then(|s| match kind.facts().template {
        TemplateAt::JobTemplate => s.job_template.and_then(|j| j.spec).and_then(|j| j.template),
        // A declared kind's template was moved to `spec.template` as it was read
        // (`wire::Object::unstructured`).
        TemplateAt::Spec | TemplateAt::Declared { .. } => s.template,
    });
    match template {
        Some(t) => (
            only_read(t.metadata.and_then(|m| m.annotations).unwrap_or_default()),
            t.spec.unwrap_or_default(),
        ),
        None => (Labels::new(), wire::PodSpec::default()),
    }
}

/// The pod's containers, init containers first, moved out of the wire shapes.
fn containers(
    init: Option<Vec<wire::ContainerRef>>,
    main: Option<Vec<wire::ContainerRef>>,
) -> Vec<Container> {
    let (init, main) = (init.unwrap_or_default(), main.unwrap_or_default());
    let mut out = Vec::with_capacity(init.len() + main.len());
    for (list, init) in [(init, true), (main, false)] {
        for c in list {
            out.push(Container {
                name: c.name.unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                init,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde::de::DeserializeSeed;
    use serde_json::json;

    use super::*;

    #[test]
    fn labels_are_sorted_and_the_last_value_wins() {
        let l: Labels = [("b", "1"), ("a", "2"), ("b", "3")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(l.get("b").map(String::as_str), Some("3"));
        assert_eq!(l.get("a").map(String::as_str), Some("2"));
        assert_eq!(l.get("c"), None);
        assert_eq!(
            l.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let mut l = l;
        assert_eq!(l.insert("0".into(), "x".into()), None);
        assert_eq!(l.insert("a".into(), "y".into()), Some("2".into()));
        assert_eq!(
            l.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["0", "a", "b"]
        );
    }

    fn list() -> serde_json::Value {
        json!({
            "kind": "List",
            "items": [
                {"kind": "Namespace", "metadata": {"name": "web", "labels": {"team": "a", "n": 1}, "deletionTimestamp": "2026-01-01T00:00:00Z"}},
                {"kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "web", "annotations": {"pull-secrets.regops.dev/s": "p", "other": "dropped"}}, "imagePullSecrets": [{"name": "p"}]},
                {"kind": "Deployment", "metadata": {"name": "d", "namespace": "web", "resourceVersion": "7", "uid": "u1",
                  "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}}]},
                  "spec": {"replicas": 3, "template": {"metadata": {"annotations": {"kubesphere.io/imagepullsecrets": "{}", "x": "y"}},
                    "spec": {"initContainers": [{"name": "i", "image": "busybox"}], "containers": [{"name": "c", "image": "nginx", "env": [{"name": "A"}]}], "imagePullSecrets": [{"name": "p"}]}}}},
                {"kind": "CronJob", "metadata": {"name": "cj", "namespace": "web"},
                  "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "harbor.example.com/x"}]}}}}}},
                {"kind": "Secret", "metadata": {"name": "p", "namespace": "web",
                  "managedFields": [{"manager": "regops", "operation": "Apply", "fieldsV1": {"f:data": {"f:.dockerconfigjson": {}}}}]},
                  "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "e30=", "other": "aWdub3JlZA=="}},
                {"kind": "ConfigMap", "metadata": {"name": "ignored", "namespace": "web"}},
            ]
        })
    }

    #[test]
    fn objects_become_the_lean_model() {
        let (o, skipped) = Observed::from_objects(&[list()]);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(o.namespaces.len(), 1);
        assert!(o.namespaces[0].terminating);
        // A non-string label value cannot come from the API; it is dropped, not fatal.
        assert_eq!(o.namespaces[0].labels.len(), 1);
        let sa = &o.service_accounts[0];
        assert_eq!(sa.image_pull_secrets, ["p"]);
        assert_eq!(sa.annotations.len(), 1, "only the annotations regops reads");
        let d = o.workloads.iter().find(|w| w.name == "d").unwrap();
        assert_eq!(d.resource_version.as_deref(), Some("7"));
        assert_eq!(d.uid.as_deref(), Some("u1"));
        assert_eq!(d.containers.len(), 2);
        assert!(d.containers[0].init);
        assert_eq!(d.image_pull_secrets, ["p"]);
        assert_eq!(d.template_annotations.len(), 1);
        let cj = o.workloads.iter().find(|w| w.name == "cj").unwrap();
        assert_eq!(cj.containers[0].image, "harbor.example.com/x");
        let s = &o.secrets[0];
        assert_eq!(
            s.dockerconfigjson
                .as_ref()
                .map(|d| secrecy::ExposeSecret::expose_secret(d).to_string()),
            Some("{}".to_string())
        );
        assert_eq!(
            s.managers,
            [Manager {
                name: "regops".into(),
                apply: true,
                owns_data: true
            }]
        );
    }

    #[test]
    fn a_streamed_document_reads_as_the_same_model() {
        let text = serde_json::to_string(&list()).unwrap();
        let mut streamed = Observed::default();
        let mut skipped = Vec::new();
        let mut de = serde_json::Deserializer::from_str(&text);
        wire::DocumentSeed {
            observed: &mut streamed,
            skipped: &mut skipped,
            index: 0,
        }
        .deserialize(&mut de)
        .unwrap();
        streamed.finish();
        let (whole, _) = Observed::from_objects(&[list()]);
        assert_eq!(format!("{streamed:?}"), format!("{whole:?}"));
    }

    #[test]
    fn a_secret_that_is_not_base64_is_skipped_without_echoing_it() {
        let bad = json!({"kind": "Secret", "metadata": {"name": "s", "namespace": "n"}, "data": {".dockerconfigjson": "!!not base64 s3cr3t"}});
        let (o, skipped) = Observed::from_objects(&[bad]);
        assert!(o.secrets.is_empty());
        assert_eq!(skipped.len(), 1);
        assert!(
            !skipped[0].reason.contains("s3cr3t"),
            "{}",
            skipped[0].reason
        );
    }
}
