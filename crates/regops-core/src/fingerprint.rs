//! Fingerprints of what planning reads of each namespace, ServiceAccount and workload: two
//! integers per object, so that `apply --watch` can tell an event that matters (labels, an
//! entry, an image changed) from one that does not (a status update, a scale), whether it
//! knows the object from a full read or from an earlier event. Both are read into the
//! [`Observed`] model first, so they are fingerprinted alike.

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::observed::{Namespace, Observed, ServiceAccount, Workload};

/// Which object: its kind, namespace and name.
pub fn key(kind: &str, namespace: &str, name: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (kind, namespace, name).hash(&mut h);
    h.finish()
}

pub fn namespace(n: &Namespace) -> (u64, u64) {
    let mut h = DefaultHasher::new();
    (&n.labels, &n.annotations, n.terminating).hash(&mut h);
    (key("Namespace", "", &n.name), h.finish())
}

pub fn service_account(s: &ServiceAccount) -> (u64, u64) {
    let mut h = DefaultHasher::new();
    (&s.image_pull_secrets, &s.annotations, s.managed_by).hash(&mut h);
    (key("ServiceAccount", &s.namespace, &s.name), h.finish())
}

pub fn workload(w: &Workload) -> (u64, u64) {
    let mut h = DefaultHasher::new();
    (
        &w.labels,
        &w.annotations,
        &w.containers,
        &w.image_pull_secrets,
        &w.template_annotations,
        &w.legacy_kubesphere_owners,
        &w.controller,
    )
        .hash(&mut h);
    (key(w.kind.as_str(), &w.namespace, &w.name), h.finish())
}

/// Every namespace, ServiceAccount and workload of `o`, as `(key, fingerprint)`.
pub fn all(o: &Observed) -> impl Iterator<Item = (u64, u64)> + '_ {
    o.namespaces
        .iter()
        .map(namespace)
        .chain(o.service_accounts.iter().map(service_account))
        .chain(o.workloads.iter().map(workload))
}

/// As [`all`], each with its kind (`Namespace`, `ServiceAccount`, a workload's), so that what
/// is known of each kind can be counted on its own.
pub fn all_by_kind(o: &Observed) -> impl Iterator<Item = (&'static str, (u64, u64))> + '_ {
    o.namespaces
        .iter()
        .map(|n| ("Namespace", namespace(n)))
        .chain(
            o.service_accounts
                .iter()
                .map(|s| ("ServiceAccount", service_account(s))),
        )
        .chain(o.workloads.iter().map(|w| (w.kind.as_str(), workload(w))))
}

/// The one object `o` holds (read from one watch event), if it is one of those kinds.
pub fn only(o: &Observed) -> Option<(u64, u64)> {
    let mut it = all(o);
    let first = it.next()?;
    it.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn print(v: serde_json::Value) -> (u64, u64) {
        let (o, skipped) = Observed::from_objects(&[v]);
        assert!(skipped.is_empty(), "{skipped:?}");
        only(&o).unwrap()
    }

    fn deploy(replicas: u32, image: &str, status: u32) -> serde_json::Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "a", "resourceVersion": status.to_string()},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
            "status": {"readyReplicas": status}})
    }

    #[test]
    fn what_planning_reads_changes_the_fingerprint_and_nothing_else_does() {
        let base = print(deploy(1, "nginx", 0));
        assert_eq!(print(deploy(3, "nginx", 2)), base, "scale and status");
        let moved = print(deploy(1, "harbor.example.com/web", 0));
        assert_eq!(moved.0, base.0, "the same object");
        assert_ne!(moved.1, base.1, "a new image");
        let sa = |entries: serde_json::Value| {
            print(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": "a"}, "imagePullSecrets": entries}))
        };
        assert_ne!(sa(json!([])).1, sa(json!([{"name": "x"}])).1);
        assert_ne!(sa(json!([])).0, base.0);
        let ns = |labels: serde_json::Value| {
            print(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "labels": labels}}),
            )
        };
        assert_ne!(ns(json!({"team": "web"})).1, ns(json!({"team": "api"})).1);
        assert_ne!(ns(json!({})).0, key("Namespace", "", "b"));
    }
}
