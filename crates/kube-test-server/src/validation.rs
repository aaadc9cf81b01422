//! The checks the real API server makes on what regops writes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::status::ApiError;

fn dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(dns1123_label)
}

/// `path.IsValidPathSegmentName`: anything but `.` and `..`, with no `/` or `%`.
fn path_segment_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '%'])
}

/// Validates an object about to be stored; `old` is the stored object for updates.
pub fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let mut causes = Vec::new();
    // RBAC objects are named as path segments, so `system:controller:foo` is valid
    // (pkg/apis/rbac/validation/validation.go: ValidateRBACName = path.IsValidPathSegmentName,
    // staging/src/k8s.io/apimachinery/pkg/api/validation/path/name.go); every other kind
    // here is a DNS-1123 subdomain but Namespace, a label.
    let rbac = rt.group == "rbac.authorization.k8s.io";
    let name_ok = if rt.kind == "Namespace" {
        dns1123_label(name)
    } else if rbac {
        path_segment_name(name)
    } else {
        dns1123_subdomain(name)
    };
    if !name_ok {
        let rule = if rt.kind == "Namespace" {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        } else if rbac {
            "may not be '.' or '..', and may not contain '/' or '%'"
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        };
        causes.push((
            "metadata.name".to_string(),
            format!("Invalid value: \"{name}\": {rule}"),
        ));
    }
    metadata_maps(&obj["metadata"], &mut causes);
    if rt.kind == "Secret" {
        secret(obj, old, &mut causes);
    }
    if rt.kind == "Lease" {
        lease(obj, &mut causes);
    }
    if rt.kind == "Event" {
        event(obj, old, &mut causes);
    }
    if rt.kind == "Pod" {
        pod(obj, old, &mut causes);
    }
    if rt.is_workload() {
        workload(rt.kind, obj, old, &mut causes);
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt.kind, rt.group, name, causes))
    }
}

/// A pod needs containers, each named and with an image (ValidatePodSpec); after creation
/// its spec may change only in container images and a few scheduling fields
/// (ValidatePodUpdate: "pod updates may not change fields other than
/// `spec.containers[*].image`, ..."), both in pkg/apis/core/validation/validation.go.
fn pod(obj: &Value, old: Option<&Value>, causes: &mut Vec<(String, String)>) {
    let containers = obj["spec"]["containers"].as_array();
    if containers.is_none_or(|c| c.is_empty()) {
        causes.push(("spec.containers".into(), "Required value".into()));
    }
    for (i, c) in containers.into_iter().flatten().enumerate() {
        for field in ["name", "image"] {
            if c[field].as_str().is_none_or(str::is_empty) {
                causes.push((
                    format!("spec.containers[{i}].{field}"),
                    "Required value".into(),
                ));
            }
        }
    }
    if let Some(old) = old {
        let without_images = |spec: &Value| {
            let mut spec = spec.clone();
            for list in ["containers", "initContainers"] {
                if let Some(cs) = spec[list].as_array_mut() {
                    for c in cs {
                        c["image"] = Value::Null;
                    }
                }
            }
            for field in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
            ] {
                spec[field] = Value::Null;
            }
            spec
        };
        if without_images(&obj["spec"]) != without_images(&old["spec"]) {
            causes.push((
                "spec".into(),
                "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations) or `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)".into(),
            ));
        }
    }
}

fn secret(obj: &Value, old: Option<&Value>, causes: &mut Vec<(String, String)>) {
    let ty = obj["type"].as_str().unwrap_or("Opaque");
    if let Some(old) = old {
        let old_ty = old["type"].as_str().unwrap_or("Opaque");
        if old_ty != ty {
            causes.push((
                "type".into(),
                format!("Invalid value: \"{ty}\": field is immutable"),
            ));
        }
        if old["immutable"] == json!(true) {
            if obj["data"] != old["data"] {
                causes.push((
                    "data".into(),
                    "Forbidden: field is immutable when `immutable` is set".into(),
                ));
            }
            if obj["immutable"] != json!(true) {
                causes.push((
                    "immutable".into(),
                    "Forbidden: field is immutable when `immutable` is set".into(),
                ));
            }
        }
    }
    if ty == "kubernetes.io/dockerconfigjson" {
        match obj["data"][".dockerconfigjson"].as_str() {
            None => causes.push(("data[.dockerconfigjson]".into(), "Required value".into())),
            Some(b64) => {
                let valid = STANDARD
                    .decode(b64)
                    .ok()
                    .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
                    .is_some();
                if !valid {
                    causes.push((
                        "data[.dockerconfigjson]".into(),
                        "Invalid value: \"<secret contents redacted>\": invalid character".into(),
                    ));
                }
            }
        }
    }
    if let Some(data) = obj["data"].as_object() {
        for (k, _) in data {
            let ok = !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                causes.push((format!("data[{k}]"), format!("Invalid value: \"{k}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'")));
            }
        }
    }
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters: a label value (when not
/// empty) and the name part of a qualified name.
fn qualified_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Why a label or annotation key is not a qualified name (`IsQualifiedName` in
/// staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go): an optional DNS-1123
/// subdomain prefix and `/`, then a name part.
fn qualified_name_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Some("prefix part must be non-empty".into());
        }
        if !dns1123_subdomain(p) {
            return Some(format!(
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*') (got {p:?})"
            ));
        }
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    if !qualified_part(name) {
        return Some("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into());
    }
    None
}

/// Label keys and values and annotation keys, as `ValidateLabels` and `ValidateAnnotations`
/// (staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go,
/// staging/src/k8s.io/apimachinery/pkg/api/validation/objectmeta.go) check them on every
/// write; annotations may total at most 256 KiB (`TotalAnnotationSizeLimitB`).
fn metadata_maps(meta: &Value, causes: &mut Vec<(String, String)>) {
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            if let Some(why) = qualified_name_error(k) {
                causes.push((
                    "metadata.labels".into(),
                    format!("Invalid value: {k:?}: {why}"),
                ));
            }
            let v = v.as_str().unwrap_or("");
            if !v.is_empty() && !qualified_part(v) {
                causes.push((
                    "metadata.labels".into(),
                    format!("Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, and must be no more than 63 characters"),
                ));
            }
        }
    }
    if let Some(annotations) = meta["annotations"].as_object() {
        let mut total = 0;
        for (k, v) in annotations {
            if let Some(why) = qualified_name_error(k) {
                causes.push((
                    "metadata.annotations".into(),
                    format!("Invalid value: {k:?}: {why}"),
                ));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            causes.push((
                "metadata.annotations".into(),
                format!("Too long: may not be more than 262144 bytes (is {total})"),
            ));
        }
    }
}

/// `ValidateLeaseSpec` (pkg/apis/coordination/validation/validation.go): a positive lease
/// duration, a non-negative transition count.
fn lease(obj: &Value, causes: &mut Vec<(String, String)>) {
    if let Some(d) = obj["spec"]["leaseDurationSeconds"].as_i64()
        && d <= 0
    {
        causes.push((
            "spec.leaseDurationSeconds".into(),
            format!("Invalid value: {d}: must be greater than 0"),
        ));
    }
    if let Some(t) = obj["spec"]["leaseTransitions"].as_i64()
        && t < 0
    {
        causes.push((
            "spec.leaseTransitions".into(),
            format!("Invalid value: {t}: must be greater than or equal to 0"),
        ));
    }
}

/// An events.k8s.io/v1 Event as `ValidateEventCreate` and `ValidateEventUpdate` check it
/// (pkg/apis/core/validation/events.go): `eventTime` set, `type` Normal or Warning,
/// `reportingController` a qualified name, `reportingInstance`, `action` and `reason` set and
/// at most 128 characters, `note` at most 1024; the Event in its object's namespace (a
/// cluster-scoped object's in `default` or `kube-system`); a `series` of at least 2 with a
/// `lastObservedTime`; the deprecated core fields unset; and on update, everything but the
/// series immutable.
// Kept whole (over 80 lines): the rules of events.go one after another.
fn event(obj: &Value, old: Option<&Value>, causes: &mut Vec<(String, String)>) {
    let text = |f: &str| obj[f].as_str().unwrap_or("");
    if text("eventTime").is_empty() {
        causes.push(("eventTime".into(), "Required value".into()));
    }
    let type_ = text("type");
    if type_ != "Normal" && type_ != "Warning" {
        causes.push((
            "type".into(),
            format!("Invalid value: \"\": has invalid value: {type_}"),
        ));
    }
    let controller = text("reportingController");
    if controller.is_empty() {
        causes.push(("reportingController".into(), "Required value".into()));
    } else if !qualified_name(controller) {
        causes.push((
            "reportingController".into(),
            format!("Invalid value: \"{controller}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
        ));
    }
    for (field, limit) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
        let v = text(field);
        if v.is_empty() {
            causes.push((field.into(), "Required value".into()));
        } else if v.chars().count() > limit {
            causes.push((
                field.into(),
                format!("Invalid value: \"\": can have at most {limit} characters"),
            ));
        }
    }
    if text("note").chars().count() > 1024 {
        causes.push((
            "note".into(),
            "Invalid value: \"\": can have at most 1024 characters".into(),
        ));
    }
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
    let regarding_ns = obj["regarding"]["namespace"].as_str().unwrap_or("");
    let agrees = if regarding_ns.is_empty() {
        ns == "default" || ns == "kube-system"
    } else {
        ns == regarding_ns
    };
    if !agrees {
        causes.push((
            "regarding.namespace".into(),
            format!("Invalid value: \"{regarding_ns}\": does not match event.namespace"),
        ));
    }
    let series = &obj["series"];
    let series_changed = old.is_none_or(|o| o["series"] != *series);
    if !series.is_null() && series_changed {
        if series["count"].as_i64().is_none_or(|c| c < 2) {
            causes.push((
                "series.count".into(),
                "Invalid value: \"\": should be at least 2".into(),
            ));
        }
        if series["lastObservedTime"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            causes.push(("series.lastObservedTime".into(), "Required value".into()));
        }
    }
    for field in [
        "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp",
        "deprecatedCount",
        "deprecatedSource",
    ] {
        if !obj[field].is_null() && old.is_none() {
            causes.push((
                field.into(),
                "Invalid value: \"\": needs to be unset".into(),
            ));
        }
    }
    if let Some(old) = old {
        for field in [
            "regarding",
            "reason",
            "note",
            "type",
            "eventTime",
            "action",
            "related",
            "reportingController",
            "reportingInstance",
        ] {
            if obj[field] != old[field] {
                causes.push((field.into(), "Invalid value: field is immutable".into()));
            }
        }
    }
}

/// `validation.IsQualifiedName`: an optional DNS-subdomain prefix and `/`, then a name of at
/// most 63 alphanumerics, `-`, `_` or `.`, starting and ending alphanumeric.
fn qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(dns1123_subdomain)
}

/// The required fields of workloads, as `ValidateDeploymentSpec`, `ValidateStatefulSetSpec`,
/// `ValidateDaemonSetSpec`, `ValidateReplicaSetSpec` (pkg/apis/apps/validation/validation.go), `ValidateJobSpec`,
/// `ValidateCronJobSpec` and `ValidateJobSpecUpdate` (pkg/apis/batch/validation/validation.go)
/// and `ValidatePodTemplateSpec` (pkg/apis/core/validation/validation.go) check them: a
/// selector that the template's labels match, at least one container with a name and an image,
/// a Job's `restartPolicy` of `OnFailure` or `Never`, a CronJob's schedule; and a Job's pod
/// template is immutable once created. A server-side apply that would create a workload from
/// only a few fields (regops' entries, after the workload was deleted) is therefore a 422 here,
/// as on a real server, not a half-empty new object.
// Kept whole (over 80 lines): the fields a workload must have, one check after another,
// each answering as kube-apiserver's validation does.
fn workload(kind: &str, obj: &Value, old: Option<&Value>, causes: &mut Vec<(String, String)>) {
    let spec = &obj["spec"];
    let (template, prefix) = if kind == "CronJob" {
        if spec["schedule"].as_str().is_none_or(str::is_empty) {
            causes.push(("spec.schedule".into(), "Required value".into()));
        }
        (
            &spec["jobTemplate"]["spec"]["template"],
            "spec.jobTemplate.spec.template",
        )
    } else {
        (&spec["template"], "spec.template")
    };
    if matches!(
        kind,
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
    ) {
        match spec["selector"].as_object() {
            None => causes.push(("spec.selector".into(), "Required value".into())),
            Some(sel) => {
                let labels = &template["metadata"]["labels"];
                let empty = serde_json::Map::new();
                let want = sel
                    .get("matchLabels")
                    .and_then(Value::as_object)
                    .unwrap_or(&empty);
                let exprs = sel.get("matchExpressions").and_then(Value::as_array);
                if want.is_empty() && exprs.is_none_or(Vec::is_empty) {
                    causes.push((
                        "spec.selector".into(),
                        "Invalid value: {}: empty selector is invalid for deployment".into(),
                    ));
                } else if want.iter().any(|(k, v)| labels.get(k) != Some(v)) {
                    causes.push((
                        "spec.template.metadata.labels".into(),
                        format!(
                            "Invalid value: {}: `selector` does not match template `labels`",
                            if labels.is_null() {
                                json!({})
                            } else {
                                labels.clone()
                            }
                        ),
                    ));
                }
            }
        }
    }
    match template["spec"]["containers"].as_array() {
        Some(list) if !list.is_empty() => {
            for (i, c) in list.iter().enumerate() {
                if c["name"].as_str().is_none_or(str::is_empty) {
                    causes.push((
                        format!("{prefix}.spec.containers[{i}].name"),
                        "Required value".into(),
                    ));
                }
                if c["image"].as_str().is_none_or(str::is_empty) {
                    causes.push((
                        format!("{prefix}.spec.containers[{i}].image"),
                        "Required value".into(),
                    ));
                }
            }
        }
        _ => causes.push((format!("{prefix}.spec.containers"), "Required value".into())),
    }
    if matches!(kind, "Job" | "CronJob") {
        let policy = template["spec"]["restartPolicy"].as_str().unwrap_or("");
        if !matches!(policy, "OnFailure" | "Never") {
            causes.push((
                format!("{prefix}.spec.restartPolicy"),
                format!(
                    "{}: supported values: \"OnFailure\", \"Never\"",
                    if policy.is_empty() {
                        "Required value".to_string()
                    } else {
                        format!("Unsupported value: \"{policy}\"")
                    }
                ),
            ));
        }
    }
    if kind == "Job"
        && let Some(old) = old
        && old["spec"]["template"] != spec["template"]
    {
        causes.push((
            "spec.template".into(),
            "Invalid value: \"object\": field is immutable".into(),
        ));
    }
}

/// Moves `stringData` into `data` (base64), as the API server does on every write; `data`
/// values must be valid base64. They are `[]byte` in Go, decoded by encoding/json with
/// encoding/base64's `StdEncoding`, which ignores `\r` and `\n` ("New line characters (\r and
/// \n) are ignored", `Encoding.Decode`): a value kustomize's secretGenerator folds over lines
/// is accepted, and stored and served again unfolded, as the bytes re-encoded.
pub fn normalize_secret(obj: &mut Value) -> Result<(), ApiError> {
    if let Some(data) = obj.get_mut("data").and_then(Value::as_object_mut) {
        for (k, v) in data.iter_mut() {
            let decoded = v.as_str().and_then(|s| {
                let unfolded: String = s.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
                STANDARD.decode(unfolded).ok()
            });
            let Some(bytes) = decoded else {
                return Err(ApiError::bad_request(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data[{k}]"
                )));
            };
            *v = json!(STANDARD.encode(bytes));
        }
    }
    if let Some(string_data) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
        && let Some(sd) = string_data.as_object()
    {
        if !obj["data"].is_object() {
            obj["data"] = json!({});
        }
        for (k, v) in sd {
            obj["data"][k] = json!(STANDARD.encode(v.as_str().unwrap_or_default()));
        }
    }
    if obj.get("type").is_none() {
        obj["type"] = json!("Opaque");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As Go's encoding/base64: line breaks in a `data` value are ignored (kustomize folds
    /// long values), and the value is stored unfolded; anything else that is not base64 is
    /// refused with kube-apiserver's message.
    #[test]
    fn secret_data_folded_over_lines_is_accepted_and_stored_unfolded() {
        let text = "a value long enough for kustomize to fold it over more than one line";
        let encoded = STANDARD.encode(text);
        let folded = format!("{}\n{}\r\n", &encoded[..20], &encoded[20..]);
        let mut obj = json!({"kind": "Secret", "data": {"key.txt": folded}});
        normalize_secret(&mut obj).unwrap();
        assert_eq!(obj["data"]["key.txt"], encoded.as_str());
        let mut bad = json!({"kind": "Secret", "data": {"key.txt": "not base64!"}});
        let err = normalize_secret(&mut bad).unwrap_err();
        assert!(
            format!("{err:?}").contains("illegal base64 data in data[key.txt]"),
            "{err:?}"
        );
    }
}
