//! How regops marks what it owns, on the objects themselves.
//!
//! - Secrets it owns carry the label `app.kubernetes.io/managed-by: regops` and the annotation
//!   `regops.dev/spec: <spec name>`; it never changes or deletes a Secret without both.
//! - On ServiceAccounts and workloads, the annotation `pull-secrets.regops.dev/<spec>` records
//!   the `imagePullSecrets` entries that spec added (comma-separated), so that regops removes
//!   only those, never an entry someone else added. One key per spec: specs never write each
//!   other's record. A label of the same key (value `true`) marks the object, so that regops
//!   finds it again with a label selector once no binding selects its kind.

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "regops";
pub const SPEC_ANNOTATION: &str = "regops.dev/spec";
pub const SOURCE_COMMIT_ANNOTATION: &str = "regops.dev/source-commit";
pub const ADDED_ANNOTATION_PREFIX: &str = "pull-secrets.regops.dev/";
pub const KUBESPHERE_ANNOTATION: &str = "kubesphere.io/imagepullsecrets";
pub const SECRET_TYPE: &str = "kubernetes.io/dockerconfigjson";
pub const SECRET_KEY: &str = ".dockerconfigjson";

/// The annotation key recording what `spec` added.
pub fn added_key(spec: &str) -> String {
    format!("{ADDED_ANNOTATION_PREFIX}{spec}")
}

/// Whether regops reads this annotation on a ServiceAccount or workload (or its pod
/// template): its own records and KubeSphere's pull-secret annotation. Others are not kept in
/// the observed model, so memory follows what planning needs.
pub fn is_read_annotation(key: &str) -> bool {
    key.starts_with(ADDED_ANNOTATION_PREFIX)
        || key.starts_with("regops.dev/")
        || key == KUBESPHERE_ANNOTATION
}

/// The marker label's value.
pub const MARKER_VALUE: &str = "true";

/// The entries recorded as added by `spec`.
pub fn added_by(annotations: &crate::observed::Labels, spec: &str) -> Vec<String> {
    annotations
        .get(&added_key(spec))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The record's new value for `names` (`None`: remove the annotation).
pub fn record_value(names: &[String]) -> Option<String> {
    if names.is_empty() {
        None
    } else {
        Some(names.join(","))
    }
}
