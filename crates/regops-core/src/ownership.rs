//! How regops marks what it owns, on the objects themselves.
//!
//! - Secrets it owns carry the label `app.kubernetes.io/managed-by: regops` and the annotation
//!   `regops.dev/spec: <spec name>`; it never changes or deletes a Secret without both.
//! - On ServiceAccounts and workloads, the annotation `regops.dev/pull-secrets` records, per
//!   spec, the `imagePullSecrets` entries regops added (`{"<spec>": ["a", "b"]}`), so that it
//!   removes only those, never an entry someone else added.

use std::collections::BTreeMap;

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "regops";
pub const SPEC_ANNOTATION: &str = "regops.dev/spec";
pub const SOURCE_COMMIT_ANNOTATION: &str = "regops.dev/source-commit";
pub const ADDED_ANNOTATION: &str = "regops.dev/pull-secrets";
pub const KUBESPHERE_ANNOTATION: &str = "kubesphere.io/imagepullsecrets";
pub const SECRET_TYPE: &str = "kubernetes.io/dockerconfigjson";
pub const SECRET_KEY: &str = ".dockerconfigjson";

/// The entries recorded as added by `spec`, from the annotation's JSON (tolerating garbage:
/// an unreadable annotation records nothing).
pub fn added_by(annotations: &BTreeMap<String, String>, spec: &str) -> Vec<String> {
    annotations
        .get(ADDED_ANNOTATION)
        .and_then(|v| serde_json::from_str::<BTreeMap<String, Vec<String>>>(v).ok())
        .and_then(|mut m| m.remove(spec))
        .unwrap_or_default()
}

/// The annotation's new value with `spec`'s entries set to `names` (others' kept).
pub fn with_added(
    annotations: &BTreeMap<String, String>,
    spec: &str,
    names: &[String],
) -> Option<String> {
    let mut m: BTreeMap<String, Vec<String>> = annotations
        .get(ADDED_ANNOTATION)
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    if names.is_empty() {
        m.remove(spec);
    } else {
        m.insert(spec.to_string(), names.to_vec());
    }
    if m.is_empty() {
        None
    } else {
        serde_json::to_string(&m).ok()
    }
}
