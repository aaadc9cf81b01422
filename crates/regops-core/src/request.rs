//! The bodies regops sends to the API server, rendered from the plan's writes
//! ([`crate::write`]): the applied configuration of a Secret, the merge patch of a
//! ServiceAccount, the applied configuration of a workload or of the node-trust ConfigMap.
//! Pure: the shell decides when to send them and what to do with the answer.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::ownership::{
    self, KUBESPHERE_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, SECRET_KEY, SECRET_TYPE,
    SOURCE_COMMIT_ANNOTATION, SPEC_ANNOTATION,
};
use crate::write::{ConfigMapWrite, SecretWrite, WorkloadWrite};
use regops_spec::kind::ObjectKind;
use secrecy::SecretString;

/// The applied configuration of one Secret (server-side apply, field manager `regops`). It
/// serialises the data without keeping a copy, and its `Debug` shows none.
pub struct SecretApply<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// Everything but the data, as planned.
    pub write: &'a SecretWrite,
    /// The `.dockerconfigjson` document, derived at apply.
    pub data: &'a SecretString,
    /// A precondition: apply only to this version (after re-checking ownership).
    pub resource_version: Option<&'a str>,
}

impl std::fmt::Debug for SecretApply<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Secret {}/{} (data: sensitive value)",
            self.namespace, self.name
        )
    }
}

impl SecretApply<'_> {
    /// The metadata regops sets: its label, the spec (and commit) annotations.
    fn metadata(&self) -> Value {
        let w = self.write;
        let mut annotations = BTreeMap::from([(SPEC_ANNOTATION, w.spec.as_str())]);
        if let Some(c) = &w.commit {
            annotations.insert(SOURCE_COMMIT_ANNOTATION, c);
        }
        if !w.sources.is_empty() {
            annotations.insert(ownership::APPLIED_SOURCES_ANNOTATION, &w.sources);
        }
        let expires = w.expires_at.map(regops_spec::rules::format_timestamp);
        if let Some(at) = &expires {
            annotations.insert(ownership::EXPIRES_AT_ANNOTATION, at);
        }
        let mut metadata = json!({
            "name": self.name,
            "namespace": self.namespace,
            "labels": { MANAGED_BY_LABEL: MANAGED_BY_VALUE },
            "annotations": annotations,
        });
        if let Some(rv) = self.resource_version {
            metadata["resourceVersion"] = json!(rv);
        }
        metadata
    }
}

impl Serialize for SecretApply<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let encoded = Zeroizing::new(STANDARD.encode(self.data.expose_secret().as_bytes()));
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("apiVersion", ObjectKind::Secret.facts().api_version)?;
        m.serialize_entry("kind", ObjectKind::Secret.as_str())?;
        m.serialize_entry("metadata", &self.metadata())?;
        m.serialize_entry("type", SECRET_TYPE)?;
        m.serialize_entry("data", &BTreeMap::from([(SECRET_KEY, encoded.as_str())]))?;
        m.end()
    }
}

/// The applied configuration of the node-trust ConfigMap (server-side apply, field manager
/// `regops`, as Secrets): regops' label, the spec annotation, the digest of the data it applies
/// (so that plan tells who changed it), and the data, which is public.
pub fn config_map_apply(
    spec: &str,
    d: &crate::desired::NodeTrustMap,
    resource_version: Option<&str>,
) -> Value {
    let write = ConfigMapWrite {
        field_manager: ownership::SECRET_FIELD_MANAGER.into(),
        spec: spec.into(),
        data: d.data.clone(),
        resource_version: resource_version.map(str::to_string),
    };
    config_map_body(&d.namespace, &d.name, &write)
}

/// The node-trust ConfigMap's applied configuration, as its write says.
pub fn config_map_body(namespace: &str, name: &str, w: &ConfigMapWrite) -> Value {
    let mut metadata = json!({
        "name": name,
        "namespace": namespace,
        "labels": { MANAGED_BY_LABEL: MANAGED_BY_VALUE },
        "annotations": {
            SPEC_ANNOTATION: w.spec.as_str(),
            ownership::APPLIED_DIGEST_ANNOTATION: ownership::data_digest(&w.data),
        },
    });
    if let Some(rv) = &w.resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    json!({
        "apiVersion": ObjectKind::ConfigMap.facts().api_version,
        "kind": ObjectKind::ConfigMap.as_str(),
        "metadata": metadata,
        "data": w.data,
    })
}

/// The merge patch that removes `kubectl apply`'s record (a copy of the data) from a Secret
/// regops writes: server-side apply cannot remove what another field manager set.
pub fn without_last_applied() -> Value {
    json!({ "metadata": { "annotations": { ownership::KUBECTL_LAST_APPLIED: null } } })
}

fn pull_list(names: &[String]) -> Value {
    Value::Array(names.iter().map(|n| json!({ "name": n })).collect())
}

/// A ServiceAccount's `imagePullSecrets` after a change: `present` less what it removes, then
/// what it adds that is not there yet. The list is atomic, so it is written whole.
pub fn entries_after(present: &[String], add: &[String], remove: &[String]) -> Vec<String> {
    let mut list: Vec<String> = present
        .iter()
        .filter(|p| !remove.contains(p))
        .cloned()
        .collect();
    for a in add {
        if !list.contains(a) {
            list.push(a.clone());
        }
    }
    list
}

/// The merge patch of one ServiceAccount: the whole `imagePullSecrets` list (it is atomic),
/// bound to the version it was computed from, and, when it changes, this spec's record of
/// what it added (annotation) and its marker (label); `record: Some(None)` removes both.
pub fn service_account_patch(
    spec: &str,
    entries: &[String],
    resource_version: Option<&str>,
    record: Option<Option<&str>>,
) -> Value {
    let key = ownership::added_key(spec);
    let mut patch = json!({ "imagePullSecrets": pull_list(entries) });
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({ "resourceVersion": rv });
    }
    if let Some(record) = record {
        patch["metadata"]["annotations"] = json!({ key.as_str(): record });
        let marker = record.map(|_| ownership::MARKER_VALUE);
        patch["metadata"]["labels"] = json!({ key.as_str(): marker });
    }
    patch
}

/// A workload's applied configuration as its write says, less the entries `held` (Secrets
/// that were not applied), with the KubeSphere value `kubesphere` and its precondition `rv`
/// (as planned, or as merged again after a conflict).
pub fn workload_body(
    kind: ObjectKind,
    namespace: &str,
    name: &str,
    w: &WorkloadWrite,
    held: &dyn Fn(&str) -> bool,
    (kubesphere, rv): (Option<&str>, Option<&str>),
) -> Value {
    let entries: Vec<String> = w
        .entries
        .iter()
        .filter(|e| !held(&e.name))
        .map(|e| e.name.to_string())
        .collect();
    let record = w.record();
    workload_apply(
        kind,
        namespace,
        name,
        &w.spec,
        &WorkloadFields {
            entries: &entries,
            record: &record,
            kubesphere,
            resource_version: rv,
        },
    )
}

/// What one spec holds on one workload, for its applied configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadFields<'a> {
    /// The entries this spec wants in the pod template's `imagePullSecrets`.
    pub entries: &'a [String],
    /// This spec's record of the entries it added.
    pub record: &'a [String],
    /// The pod template's KubeSphere annotation, as merged; `None`: the template carries none.
    pub kubesphere: Option<&'a str>,
    /// A precondition: the version the KubeSphere value was merged from.
    pub resource_version: Option<&'a str>,
}

/// The applied configuration of one workload (server-side apply, field manager
/// `regops.<spec>`): only this spec's fields. Entries are a list keyed by name, so other
/// managers' entries stay. Whenever the template carries the KubeSphere annotation the body
/// carries it too (unchanged, or merged): leaving it out would let server-side apply remove a
/// value this manager holds, the console's containers and all; and it is then bound to the
/// version it was merged from.
pub fn workload_apply(
    kind: ObjectKind,
    namespace: &str,
    name: &str,
    spec: &str,
    f: &WorkloadFields<'_>,
) -> Value {
    let facts = kind.facts();
    let mut body = json!({
        "apiVersion": facts.api_version,
        "kind": facts.name,
        "metadata": { "name": name, "namespace": namespace },
    });
    if let Some(v) = ownership::record_value(f.record) {
        let key = ownership::added_key(spec);
        body["metadata"]["annotations"] = json!({ key.as_str(): v });
        body["metadata"]["labels"] = json!({ key.as_str(): ownership::MARKER_VALUE });
    }
    let mut template = serde_json::Map::new();
    if !f.entries.is_empty() {
        template.insert(
            "spec".into(),
            json!({ "imagePullSecrets": pull_list(f.entries) }),
        );
    }
    if let Some(v) = f.kubesphere {
        template.insert(
            "metadata".into(),
            json!({ "annotations": { KUBESPHERE_ANNOTATION: v } }),
        );
        if let Some(rv) = f.resource_version {
            body["metadata"]["resourceVersion"] = json!(rv);
        }
    }
    if !template.is_empty() {
        // Nest the template where the kind keeps it (`spec.template`, or a CronJob's
        // `spec.jobTemplate.spec.template`).
        let path = kind
            .workload()
            .map_or(&["spec", "template"][..], |w| w.facts().template.path());
        let mut nested = Value::Object(template);
        for key in path.iter().rev() {
            nested = json!({ *key: nested });
        }
        if let Some(spec_value) = nested.get_mut("spec").map(Value::take) {
            body["spec"] = spec_value;
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn data() -> SecretString {
        SecretString::from(
            r#"{"auths":{"harbor.example.com":{"username":"robot","password":"s3cr3t-marker"}}}"#
                .to_string(),
        )
    }

    fn secret_write(commit: Option<&str>) -> SecretWrite {
        SecretWrite {
            field_manager: "regops".into(),
            spec: "team".into(),
            commit: commit.map(Into::into),
            sources: "".into(),
            expires_at: None,
            force: false,
            restore: false,
            adopt_uid: None,
            drop_last_applied: false,
        }
    }

    fn pretty(v: Value) -> String {
        serde_json::to_string_pretty(&v).unwrap()
    }

    /// The Secret body with its data replaced by a placeholder (snapshots hold no credential),
    /// and the data checked to be exactly the document, base64-encoded.
    fn redacted(body: &SecretApply<'_>) -> Value {
        let mut v = serde_json::to_value(body).unwrap();
        let data = v["data"][SECRET_KEY].take();
        let decoded = STANDARD.decode(data.as_str().unwrap()).unwrap();
        assert_eq!(decoded, body.data.expose_secret().as_bytes());
        v["data"][SECRET_KEY] = json!("[base64 of the document]");
        v
    }

    #[test]
    fn secret_apply_body() {
        let (data, w) = (data(), secret_write(Some("4f2a9c1")));
        let body = SecretApply {
            namespace: "web",
            name: "pull",
            write: &w,
            data: &data,
            resource_version: None,
        };
        insta::assert_snapshot!(pretty(redacted(&body)));
        let unbound = secret_write(None);
        let bound = SecretApply {
            resource_version: Some("42"),
            write: &unbound,
            ..body
        };
        insta::assert_snapshot!(pretty(redacted(&bound)));
        assert_eq!(
            format!("{bound:?}"),
            "Secret web/pull (data: sensitive value)"
        );
    }

    #[test]
    fn service_account_patches() {
        let present = vec!["theirs".to_string(), "old".into()];
        let list = entries_after(&present, &["pull".into(), "theirs".into()], &["old".into()]);
        assert_eq!(list, ["theirs", "pull"]);
        insta::assert_snapshot!(pretty(service_account_patch(
            "team",
            &list,
            Some("7"),
            Some(Some("pull"))
        )));
        // The record removed: annotation and label set to null (merge-patch deletes them).
        insta::assert_snapshot!(pretty(service_account_patch(
            "team",
            &["theirs".into()],
            None,
            Some(None)
        )));
        // The record unchanged: neither is in the patch.
        insta::assert_snapshot!(pretty(service_account_patch(
            "team",
            &["theirs".into()],
            None,
            None
        )));
    }

    #[test]
    fn workload_apply_bodies() {
        let entries = vec!["pull".to_string()];
        let f = WorkloadFields {
            entries: &entries,
            record: &entries,
            kubesphere: None,
            resource_version: Some("9"),
        };
        // No KubeSphere value: no version precondition (nothing shared to protect).
        insta::assert_snapshot!(pretty(workload_apply(
            ObjectKind::Deployment,
            "web",
            "api",
            "team",
            &f
        )));
        let with_annotation = WorkloadFields {
            kubesphere: Some(r#"{"app":"pull","sidecar":"theirs"}"#),
            ..f.clone()
        };
        insta::assert_snapshot!(pretty(workload_apply(
            ObjectKind::CronJob,
            "web",
            "nightly",
            "team",
            &with_annotation
        )));
        // Everything released: only name and namespace, so server-side apply drops what this
        // manager held.
        insta::assert_snapshot!(pretty(workload_apply(
            ObjectKind::StatefulSet,
            "web",
            "db",
            "team",
            &WorkloadFields::default()
        )));
    }
}
