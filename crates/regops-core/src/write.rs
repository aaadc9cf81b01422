//! What apply sends for each change of a plan: the body or patch, its field manager and its
//! preconditions, decided by planning. Apply renders it ([`crate::request`]) and sends it; it
//! recomputes nothing, but re-reads and merges again the one object a 409 conflict names.
//! The one thing a write leaves out is a Secret's data, which plans never hold: apply derives
//! it by the same credential step planning used.
//!
//! Writes are compact: a plan holds tens of thousands of them. What many writes hold alike
//! is held once, [`Shared`]: names (pull secrets, field managers, the record of a Secret's
//! sources), lists of entries, and whole writes (every namespace's copy of one pull secret
//! is written alike; so is every workload given the same entries and no KubeSphere value).
//! The JSON plan (`--output json`) does not show writes; a saved plan keeps them beside its
//! plan (`crate::saved`).

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A value many writes hold: one allocation, counted references. Serialized as the value.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shared<T: ?Sized = str>(Arc<T>);

impl<T: ?Sized> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl Default for Shared<str> {
    fn default() -> Self {
        Shared(Arc::from(""))
    }
}

impl Shared<str> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<T: ?Sized> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl From<&str> for Shared<str> {
    fn from(s: &str) -> Self {
        Shared(Arc::from(s))
    }
}

impl<T: Clone> From<&[T]> for Shared<[T]> {
    fn from(s: &[T]) -> Self {
        Shared(Arc::from(s))
    }
}

impl<T: Clone> From<Vec<T>> for Shared<[T]> {
    fn from(s: Vec<T>) -> Self {
        Shared(Arc::from(s))
    }
}

impl<T> From<T> for Shared<T> {
    fn from(v: T) -> Self {
        Shared(Arc::new(v))
    }
}

impl<T: ?Sized + Serialize> Serialize for Shared<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.as_ref().serialize(s)
    }
}

impl<'de, T: ?Sized> Deserialize<'de> for Shared<T>
where
    Box<T>: Deserialize<'de>,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<T>::deserialize(d).map(|b| Shared(Arc::from(b)))
    }
}

/// Hands out one [`Shared`] per distinct value (planning's, for the length of one plan).
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Arc<str>>,
    names: HashSet<Arc<[Shared]>>,
    entries: HashSet<Arc<[Entry]>>,
    secrets: HashSet<Arc<SecretWrite>>,
    workloads: HashSet<Arc<WorkloadWrite>>,
}

/// The one copy of `v` in `set`, made by `make` the first time.
fn intern<T: ?Sized + Hash + Eq>(
    set: &mut HashSet<Arc<T>>,
    v: &T,
    make: impl FnOnce(&T) -> Arc<T>,
) -> Shared<T> {
    if let Some(k) = set.get(v) {
        return Shared(k.clone());
    }
    let k = make(v);
    set.insert(k.clone());
    Shared(k)
}

impl Interner {
    pub fn get(&mut self, s: &str) -> Shared {
        intern(&mut self.strings, s, |s| Arc::from(s))
    }

    pub fn names(&mut self, names: &[String]) -> Shared<[Shared]> {
        let names: Vec<Shared> = names.iter().map(|n| self.get(n)).collect();
        intern(&mut self.names, &names, |n| Arc::from(n))
    }

    pub fn entries(&mut self, entries: &[Entry]) -> Shared<[Entry]> {
        intern(&mut self.entries, entries, |e| Arc::from(e))
    }

    pub fn secret(&mut self, w: SecretWrite) -> Shared<SecretWrite> {
        intern(&mut self.secrets, &w, |w| Arc::new(w.clone()))
    }

    pub fn workload(&mut self, w: WorkloadWrite) -> Shared<WorkloadWrite> {
        intern(&mut self.workloads, &w, |w| Arc::new(w.clone()))
    }
}

/// One change's write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "write", rename_all = "camelCase")]
pub enum Write {
    /// Server-side apply of a Secret (a replacement deletes it first).
    Secret(Shared<SecretWrite>),
    /// Server-side apply of the node-trust ConfigMap.
    ConfigMap(Box<ConfigMapWrite>),
    /// A JSON merge patch of a ServiceAccount's whole `imagePullSecrets` list (it is atomic).
    ServiceAccount(Box<ServiceAccountWrite>),
    /// Server-side apply of this spec's entries on a workload's pod template.
    Workload(Shared<WorkloadWrite>),
    /// The delete of a Secret this spec owns (`--prune`): apply reads it again, checks that it
    /// still carries this spec's marks, and deletes it bound to the uid and resourceVersion it
    /// read.
    Delete,
}

/// A Secret's applied configuration, but its data: `type: kubernetes.io/dockerconfigjson`,
/// regops' label, and these annotations.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountWrite {
    /// The whole `imagePullSecrets` list.
    pub entries: Shared<[Shared]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<Box<str>>,
}

/// A workload's applied configuration (field manager `regops.<spec>`): the entries this spec
/// wants on its pod template, its record of those it added, and the KubeSphere annotation when
/// the template carries it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadWrite {
    pub field_manager: Shared,
    /// The spec, whose record (`pull-secrets.regops.dev/<spec>`) this is.
    pub spec: Shared,
    /// Each entry this spec wants, sorted, and whether the record lists it.
    pub entries: Shared<[Entry]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubesphere: Option<Box<KubeSphereWrite>>,
}

/// One entry of a workload's pod template.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub name: Shared,
    #[serde(default)]
    pub recorded: bool,
}

/// The KubeSphere annotation on a workload's pod template: a value shared with KubeSphere's
/// console, so it is bound to the version it was merged from (and forced, as nothing newer can
/// be taken); on a 409 apply reads the workload again and merges `wanted` into its value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
                    let mut w: WorkloadWrite = w.clone();
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn workload(rv: Option<&str>, i: &mut Interner) -> WorkloadWrite {
        let entry = Entry {
            name: i.get("pull"),
            recorded: true,
        };
        WorkloadWrite {
            field_manager: i.get("regops.team"),
            spec: i.get("team"),
            entries: i.entries(&[entry]),
            kubesphere: rv.map(|rv| {
                Box::new(KubeSphereWrite {
                    value: r#"{"app":"pull"}"#.into(),
                    wanted: BTreeMap::from([("app".to_string(), "pull".to_string())]),
                    resource_version: Some(rv.into()),
                })
            }),
        }
    }

    /// What many writes hold alike is held once: the same names, lists and writes are one
    /// allocation; they serialize as their values and read back equal.
    #[test]
    fn alike_writes_are_held_once() {
        let mut i = Interner::default();
        let (a, b) = (workload(None, &mut i), workload(None, &mut i));
        assert!(Arc::ptr_eq(&a.entries.0, &b.entries.0));
        assert!(Arc::ptr_eq(&a.spec.0, &b.spec.0));
        let (a, b) = (i.workload(a), i.workload(b));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        let names = i.names(&["theirs".to_string(), "pull".to_string()]);
        assert!(Arc::ptr_eq(&names[1].0, &a.entries[0].name.0));
        let w = Write::Workload(a);
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(
            json,
            r#"{"write":"workload","fieldManager":"regops.team","spec":"team","entries":[{"name":"pull","recorded":true}]}"#
        );
        assert_eq!(serde_json::from_str::<Write>(&json).unwrap(), w);
    }

    /// Only a workload's version may differ for two writes to count as the same.
    #[test]
    fn only_a_workloads_version_may_differ() {
        let mut i = Interner::default();
        let seven = Write::Workload(workload(Some("7"), &mut i).into());
        let nine = Write::Workload(workload(Some("9"), &mut i).into());
        assert!(seven.same_but_workload_version(&nine));
        assert_ne!(seven, nine);
        let none = Write::Workload(workload(None, &mut i).into());
        assert!(!seven.same_but_workload_version(&none));
        let sa = |rv: &str, i: &mut Interner| {
            Write::ServiceAccount(Box::new(ServiceAccountWrite {
                entries: i.names(&["pull".to_string()]),
                resource_version: Some(rv.into()),
            }))
        };
        assert!(!sa("7", &mut i).same_but_workload_version(&sa("9", &mut i)));
    }
}
