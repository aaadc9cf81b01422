//! What apply sends for each change of a plan: the body or patch, its field manager and its
//! preconditions, decided by planning. Apply renders it ([`crate::request`]) and sends it; it
//! recomputes nothing, but re-reads and merges again the one object a 409 conflict names.
//! The one thing a write leaves out is a Secret's data, which plans never hold: apply derives
//! it by the same credential step planning used.
//!
//! Writes are compact: a plan holds tens of thousands of them. Names shared by many writes
//! (the pull secrets' names, field managers, the record of a Secret's sources) are one
//! allocation each, [`Shared`]; the JSON plan (`--output json`) does not show writes, and a
//! saved plan keeps them beside its plan (`crate::saved`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A string many writes hold: one allocation, counted references.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shared(Arc<str>);

impl Shared {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Shared {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Shared {
    fn from(s: &str) -> Self {
        Shared(Arc::from(s))
    }
}

impl Serialize for Shared {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Shared {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Shared(Arc::from(s)))
    }
}

/// Hands out one [`Shared`] per distinct string (planning's, for the length of one plan).
#[derive(Debug, Default)]
pub struct Interner(HashSet<Arc<str>>);

impl Interner {
    pub fn get(&mut self, s: &str) -> Shared {
        if let Some(k) = self.0.get(s) {
            return Shared(k.clone());
        }
        let k: Arc<str> = Arc::from(s);
        self.0.insert(k.clone());
        Shared(k)
    }
}

/// One change's write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "write", rename_all = "camelCase")]
pub enum Write {
    /// Server-side apply of a Secret (a replacement deletes it first).
    Secret(Box<SecretWrite>),
    /// Server-side apply of the node-trust ConfigMap.
    ConfigMap(Box<ConfigMapWrite>),
    /// A JSON merge patch of a ServiceAccount's whole `imagePullSecrets` list (it is atomic).
    ServiceAccount(Box<ServiceAccountWrite>),
    /// Server-side apply of this spec's entries on a workload's pod template.
    Workload(Box<WorkloadWrite>),
    /// The delete of a Secret this spec owns (`--prune`): apply reads it again, checks that it
    /// still carries this spec's marks, and deletes it bound to the uid and resourceVersion it
    /// read.
    Delete,
}

/// A Secret's applied configuration, but its data: `type: kubernetes.io/dockerconfigjson`,
/// regops' label, and these annotations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretWrite {
    pub field_manager: Shared,
    /// The spec (`regops.dev/spec`).
    pub spec: Shared,
    /// The commit it is applied from (`regops.dev/source-commit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<Shared>,
    /// The record of its credentials' sources (`regops.dev/applied-sources`; empty: none).
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub sources: Shared,
    /// When its minted tokens expire (`regops.dev/expires-at`, Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Take over fields other managers hold: adoption (`adopt: true`), but not after a
    /// replacement's delete (a Secret someone created meanwhile is theirs).
    #[serde(default)]
    pub force: bool,
    /// A Secret of this spec as planned: an apply conflict (someone changed a field regops
    /// holds) is undone, once ownership is checked again on a fresh read.
    #[serde(default)]
    pub restore: bool,
    /// A replacement of an adopted Secret: the uid planned, the only one deleted if it no
    /// longer carries this spec's marks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt_uid: Option<String>,
    /// Then remove `kubectl apply`'s copy of its data (a merge patch).
    #[serde(default)]
    pub drop_last_applied: bool,
}

/// The node-trust ConfigMap's applied configuration: regops' label, the spec annotation, the
/// digest of its data, its data (public).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapWrite {
    pub field_manager: Shared,
    pub spec: Shared,
    pub data: BTreeMap<String, String>,
    /// An update is bound to the version planned (which carried this spec's marks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// A ServiceAccount's merge patch: the whole list, bound to the version it was computed from;
/// and the record of the entries this spec added, when the change's `record` changes it. On a
/// 409 apply reads the list again and applies the change's `add` and `remove` to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountWrite {
    /// The whole `imagePullSecrets` list.
    pub entries: Box<[Shared]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<Box<str>>,
}

/// A workload's applied configuration (field manager `regops.<spec>`): the entries this spec
/// wants on its pod template, its record of those it added, and the KubeSphere annotation when
/// the template carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadWrite {
    pub field_manager: Shared,
    /// The spec, whose record (`pull-secrets.regops.dev/<spec>`) this is.
    pub spec: Shared,
    /// Each entry this spec wants, sorted, and whether the record lists it.
    pub entries: Box<[Entry]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubesphere: Option<Box<KubeSphereWrite>>,
}

/// One entry of a workload's pod template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub name: Shared,
    #[serde(default)]
    pub recorded: bool,
}

/// The KubeSphere annotation on a workload's pod template: a value shared with KubeSphere's
/// console, so it is bound to the version it was merged from (and forced, as nothing newer can
/// be taken); on a 409 apply reads the workload again and merges `wanted` into its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeSphereWrite {
    /// The value written (as merged, or as it is).
    pub value: String,
    /// This spec's containers and their secrets, for merging again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub wanted: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<Box<str>>,
}

impl WorkloadWrite {
    /// The record's entries.
    pub fn record(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.recorded)
            .map(|e| e.name.to_string())
            .collect()
    }
}

impl Write {
    /// Whether two writes are the same but for the resourceVersion a workload's KubeSphere
    /// value is bound to. A workload's status moves its resourceVersion without anyone
    /// editing it; a stale version is a 409, after which apply reads and merges again.
    pub fn same_but_workload_version(&self, other: &Write) -> bool {
        match (self, other) {
            (Write::Workload(a), Write::Workload(b)) => {
                let unbound = |w: &WorkloadWrite| -> WorkloadWrite {
                    let mut w = w.clone();
                    if let Some(k) = &mut w.kubesphere {
                        k.resource_version = None;
                    }
                    w
                };
                unbound(a) == unbound(b)
            }
            _ => self == other,
        }
    }
}
