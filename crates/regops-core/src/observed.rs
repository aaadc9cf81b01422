//! The cluster as observed: only what planning needs, read from Kubernetes objects as JSON
//! (from the API or from a `kubectl get -o yaml` state file).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde_json::Value;

use crate::ownership;

pub type Labels = BTreeMap<String, String>;

fn string_map(v: &Value) -> Labels {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub labels: Labels,
    pub annotations: Labels,
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
    /// Reads objects; `List` objects are flattened; unknown kinds are ignored. Items of a List
    /// may lack `kind` (as the API returns them): `default_kind` fills it in.
    pub fn from_objects(objects: &[Value]) -> (Observed, Vec<Skipped>) {
        let mut o = Observed::default();
        let mut skipped = Vec::new();
        let mut queue: Vec<(usize, Value, Option<String>)> = objects
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, v)| (i, v, None))
            .collect();
        while let Some((index, obj, default_kind)) = queue.pop() {
            let kind = obj["kind"].as_str().map(str::to_string).or(default_kind);
            if let Some(items) = obj["items"].as_array() {
                let item_kind = kind
                    .as_deref()
                    .and_then(|k| k.strip_suffix("List"))
                    .filter(|k| !k.is_empty())
                    .map(str::to_string);
                queue.extend(
                    items
                        .iter()
                        .cloned()
                        .map(|it| (index, it, item_kind.clone())),
                );
                continue;
            }
            if let Err(reason) = o.add(kind.as_deref().unwrap_or(""), &obj) {
                skipped.push(Skipped { index, reason });
            }
        }
        o.sort();
        (o, skipped)
    }

    fn sort(&mut self) {
        self.namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        self.secrets
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        self.service_accounts
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        self.workloads
            .sort_by(|a, b| (&a.namespace, a.kind, &a.name).cmp(&(&b.namespace, b.kind, &b.name)));
    }

    fn add(&mut self, kind: &str, obj: &Value) -> Result<(), String> {
        let meta = &obj["metadata"];
        let name = meta["name"]
            .as_str()
            .ok_or("an object without metadata.name")?
            .to_string();
        let namespace = meta["namespace"].as_str().unwrap_or("").to_string();
        let labels = string_map(&meta["labels"]);
        let annotations = string_map(&meta["annotations"]);
        match kind {
            "Namespace" => self.namespaces.push(Namespace {
                name,
                labels,
                annotations,
            }),
            "Secret" => {
                let dockerconfigjson = match obj["data"][".dockerconfigjson"].as_str() {
                    Some(b64) => {
                        let raw = zeroize::Zeroizing::new(STANDARD.decode(b64).map_err(|_| {
                            format!("secret {namespace}/{name}: .dockerconfigjson is not base64")
                        })?);
                        Some(SecretString::from(
                            String::from_utf8_lossy(&raw).into_owned(),
                        ))
                    }
                    None => obj["stringData"][".dockerconfigjson"]
                        .as_str()
                        .map(|s| SecretString::from(s.to_string())),
                };
                self.secrets.push(Secret {
                    namespace,
                    name,
                    type_: obj["type"].as_str().unwrap_or("Opaque").to_string(),
                    immutable: obj["immutable"].as_bool().unwrap_or(false),
                    labels,
                    annotations,
                    dockerconfigjson,
                });
            }
            "ServiceAccount" => self.service_accounts.push(ServiceAccount {
                namespace,
                name,
                image_pull_secrets: names(&obj["imagePullSecrets"]),
                annotations,
                resource_version: meta["resourceVersion"].as_str().map(str::to_string),
            }),
            "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "CronJob" => {
                let kind = regops_spec::WorkloadKind::ALL
                    .into_iter()
                    .find(|k| k.as_str() == kind)
                    .ok_or("unknown workload kind")?;
                let pod = if kind == regops_spec::WorkloadKind::CronJob {
                    &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
                } else {
                    &obj["spec"]["template"]["spec"]
                };
                let mut containers = Vec::new();
                for (field, init) in [("initContainers", true), ("containers", false)] {
                    for c in pod[field].as_array().into_iter().flatten() {
                        containers.push(Container {
                            name: c["name"].as_str().unwrap_or("").to_string(),
                            image: c["image"].as_str().unwrap_or("").to_string(),
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
                    image_pull_secrets: names(&pod["imagePullSecrets"]),
                });
            }
            _ => {}
        }
        Ok(())
    }
}
