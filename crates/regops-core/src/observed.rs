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

pub type Labels = BTreeMap<String, String>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub labels: Labels,
    pub annotations: Labels,
    /// Being deleted (`metadata.deletionTimestamp` set): it accepts no new objects.
    pub terminating: bool,
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
        self.labels
            .get(ownership::MANAGED_BY_LABEL)
            .map(String::as_str)
            == Some(ownership::MANAGED_BY_VALUE)
            && self
                .annotations
                .get(ownership::SPEC_ANNOTATION)
                .map(String::as_str)
                == Some(spec)
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
}

#[derive(Clone, Debug, PartialEq, Eq)]
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
    pub annotations: Labels,
    pub containers: Vec<Container>,
    pub image_pull_secrets: Vec<String>,
    /// The pod template's annotations (where the KubeSphere console keeps its own).
    pub template_annotations: Labels,
    pub resource_version: Option<String>,
    pub uid: Option<String>,
}

/// Everything observed.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub namespaces: Vec<Namespace>,
    pub secrets: Vec<Secret>,
    pub service_accounts: Vec<ServiceAccount>,
    pub workloads: Vec<Workload>,
}

/// An object that could not be read, by position in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub index: usize,
    pub reason: String,
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
            skipped.push(Skipped { index, reason });
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

    fn add(&mut self, kind: &str, obj: wire::Object) -> Result<(), String> {
        let wire::Object {
            metadata,
            type_,
            immutable,
            data,
            string_data,
            image_pull_secrets,
            spec,
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
        } = metadata;
        let name = name.ok_or("an object without metadata.name")?;
        let namespace = namespace.unwrap_or_default();
        let labels = labels.unwrap_or_default();
        let annotations = annotations.unwrap_or_default();
        match kind {
            "Namespace" => self.namespaces.push(Namespace {
                name,
                labels,
                annotations,
                terminating: deletion_timestamp.is_some(),
            }),
            "Secret" => {
                let dockerconfigjson = match data.and_then(|d| d.dockerconfigjson) {
                    Some(wire::SecretBase64::Decoded(s)) => Some(s),
                    Some(wire::SecretBase64::Invalid) => {
                        return Err(format!(
                            "secret {namespace}/{name}: .dockerconfigjson is not base64"
                        ));
                    }
                    None => string_data.and_then(|d| d.dockerconfigjson),
                };
                let managers = managed_fields
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| Manager {
                        name: m.manager.unwrap_or_default(),
                        apply: m.operation.as_deref() == Some("Apply"),
                        owns_data: m.fields_v1.is_some_and(|f| f.data.is_some()),
                    })
                    .collect();
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
                namespace,
                name,
                image_pull_secrets: wire::names(image_pull_secrets),
                annotations,
                resource_version,
                uid,
            }),
            _ => {
                let Some(kind) = regops_spec::WorkloadKind::ALL
                    .into_iter()
                    .find(|k| k.as_str() == kind)
                else {
                    return Ok(());
                };
                let template = spec.and_then(|s| {
                    if kind == regops_spec::WorkloadKind::CronJob {
                        s.job_template.and_then(|j| j.spec).and_then(|j| j.template)
                    } else {
                        s.template
                    }
                });
                let (template_annotations, pod) = match template {
                    Some(t) => (
                        t.metadata.and_then(|m| m.annotations).unwrap_or_default(),
                        t.spec.unwrap_or_default(),
                    ),
                    None => (Labels::new(), wire::PodSpec::default()),
                };
                let mut containers = Vec::new();
                for (list, init) in [(pod.init_containers, true), (pod.containers, false)] {
                    for c in list.unwrap_or_default() {
                        containers.push(Container {
                            name: c.name.unwrap_or_default(),
                            image: c.image.unwrap_or_default(),
                            init,
                        });
                    }
                }
                self.workloads.push(Workload {
                    kind,
                    namespace,
                    name,
                    labels,
                    annotations,
                    containers,
                    image_pull_secrets: wire::names(pod.image_pull_secrets),
                    template_annotations,
                    resource_version,
                    uid,
                });
            }
        }
        Ok(())
    }
}
