//! Server-side field validation: the `fieldValidation` query parameter of a create (POST),
//! update (PUT) or patch, and what kube-apiserver does with fields a kind does not have.
//!
//! - The directive: `Ignore`, `Warn` or `Strict`; absent (or empty) is `Warn`, as
//!   `fieldValidation(directive string)` in
//!   staging/src/k8s.io/apiserver/pkg/endpoints/handlers/rest.go resolves it since the
//!   ServerSideFieldValidation feature went GA (1.27). Any other value is refused before
//!   anything is done, by `ValidateFieldValidation`
//!   (staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go) within the
//!   Create/Update/PatchOptions validation of the handlers, answered with `errors.NewInvalid`:
//!   422, as for an invalid `dryRun`.
//! - A create or update body with unknown fields under `Strict` is refused by the strict
//!   decoder and `transformDecodeError` (handlers/rest.go): 400 BadRequest,
//!   `<Kind> in version "<v>" cannot be handled as a <Kind>: strict decoding error: unknown
//!   field "spec.foo", unknown field "spec.bar"` (`runtime.NewStrictDecodingError` joins the
//!   errors with ", "). A patch whose result has unknown fields is refused by
//!   `applyPatchToObject` / `jsonPatcher.applyPatchToCurrentObject` (handlers/patch.go) as
//!   `errors.NewInvalid(schema.GroupKind{}, "", field.Invalid(field.NewPath("patch"), …,
//!   strictDecodingError.Error()))`: 422.
//! - Under `Warn` the object is accepted without those fields (the typed decode drops them)
//!   and each one is a warning, `unknown field "spec.foo"` (`addStrictDecodingWarnings`),
//!   sent as a `Warning: 299 - "…"` header; under `Ignore` they are dropped silently.
//!
//! What a kind has is what its k8s-openapi type has: the object is decoded into the type and
//! encoded back, and every key of the body missing from the round trip is unknown. Only keys
//! are compared, recursing into objects and into arrays element by element, so free-form maps
//! (`data`, `labels`, `annotations`) keep theirs. A key whose value is null is taken as known
//! (the round trip drops it either way). A body the type cannot decode at all is left to the
//! other checks, as are kinds without a type. Unknown fields are listed in key order (serde's
//! maps are sorted), as one strict decode would meet them in a body with sorted keys.
//! Server-side apply (application/apply-patch+yaml) is not checked here.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::Request;
use crate::resources::ResourceType;
use crate::status::ApiError;

/// What to do with unknown fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Directive {
    Ignore,
    Warn,
    Strict,
}

/// The request's `fieldValidation` directive (`Warn` when absent); an unsupported value is a
/// 422 naming the verb's options kind, as kube-apiserver answers.
pub fn directive(req: &Request) -> Result<Directive, ApiError> {
    match req.param("fieldValidation").unwrap_or("") {
        "" | "Warn" => Ok(Directive::Warn),
        "Ignore" => Ok(Directive::Ignore),
        "Strict" => Ok(Directive::Strict),
        other => {
            let options_kind = match req.method.as_str() {
                "POST" => "CreateOptions",
                "PUT" => "UpdateOptions",
                _ => "PatchOptions",
            };
            Err(ApiError::invalid(
                options_kind,
                "meta.k8s.io",
                "",
                vec![(
                    "fieldValidation".into(),
                    format!(
                        "Unsupported value: {}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
                        go_quote(other)
                    ),
                )],
            ))
        }
    }
}

fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn round_trip<T: DeserializeOwned + Serialize>(v: Value) -> Option<Value> {
    let typed: T = serde_json::from_value(v).ok()?;
    serde_json::to_value(typed).ok()
}

/// The object decoded into its kind's type and encoded back; `None` for kinds without a type
/// and for bodies the type cannot decode.
fn typed_round_trip(rt: &ResourceType, obj: &Value) -> Option<Value> {
    use k8s_openapi::api::{apps, batch, coordination, core, events, networking, policy, rbac};
    if !obj.is_object() {
        return None;
    }
    let mut v = obj.clone();
    v["apiVersion"] = json!(rt.api_version());
    v["kind"] = json!(rt.kind);
    match (rt.group, rt.kind) {
        ("", "Namespace") => round_trip::<core::v1::Namespace>(v),
        ("", "Secret") => round_trip::<core::v1::Secret>(v),
        ("", "ServiceAccount") => round_trip::<core::v1::ServiceAccount>(v),
        ("", "Pod") => round_trip::<core::v1::Pod>(v),
        ("", "ConfigMap") => round_trip::<core::v1::ConfigMap>(v),
        ("apps", "Deployment") => round_trip::<apps::v1::Deployment>(v),
        ("apps", "StatefulSet") => round_trip::<apps::v1::StatefulSet>(v),
        ("apps", "DaemonSet") => round_trip::<apps::v1::DaemonSet>(v),
        ("apps", "ReplicaSet") => round_trip::<apps::v1::ReplicaSet>(v),
        ("batch", "Job") => round_trip::<batch::v1::Job>(v),
        ("batch", "CronJob") => round_trip::<batch::v1::CronJob>(v),
        ("coordination.k8s.io", "Lease") => round_trip::<coordination::v1::Lease>(v),
        ("events.k8s.io", "Event") => round_trip::<events::v1::Event>(v),
        ("policy", "PodDisruptionBudget") => round_trip::<policy::v1::PodDisruptionBudget>(v),
        ("networking.k8s.io", "NetworkPolicy") => round_trip::<networking::v1::NetworkPolicy>(v),
        ("rbac.authorization.k8s.io", "ClusterRole") => round_trip::<rbac::v1::ClusterRole>(v),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            round_trip::<rbac::v1::ClusterRoleBinding>(v)
        }
        ("rbac.authorization.k8s.io", "Role") => round_trip::<rbac::v1::Role>(v),
        ("rbac.authorization.k8s.io", "RoleBinding") => round_trip::<rbac::v1::RoleBinding>(v),
        _ => None,
    }
}

/// Adds to `out` the paths of the keys of `input` that `known` lacks, removing them from
/// `input` when `prune`.
fn walk(input: &mut Value, known: &Value, path: &str, out: &mut Vec<String>, prune: bool) {
    match (input, known) {
        (Value::Object(map), Value::Object(known)) => {
            let mut unknown = Vec::new();
            for (k, v) in map.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match known.get(k) {
                    Some(kv) => walk(v, kv, &p, out, prune),
                    None if v.is_null() => {}
                    None => {
                        out.push(p);
                        unknown.push(k.clone());
                    }
                }
            }
            if prune {
                for k in unknown {
                    map.remove(&k);
                }
            }
        }
        (Value::Array(items), Value::Array(known)) => {
            for (i, (v, kv)) in items.iter_mut().zip(known).enumerate() {
                walk(v, kv, &format!("{path}[{i}]"), out, prune);
            }
        }
        _ => {}
    }
}

/// The paths of the fields of `obj` its kind does not have (`spec.foo`,
/// `spec.template.spec.containers[0].foo`), removed from `obj` when `prune`.
pub fn unknown_fields(rt: &ResourceType, obj: &mut Value, prune: bool) -> Vec<String> {
    let Some(known) = typed_round_trip(rt, obj) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(obj, &known, "", &mut out, prune);
    out
}

/// `runtime.NewStrictDecodingError(errs).Error()`.
fn strict_decoding_error(unknown: &[String]) -> String {
    let errs: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {}", go_quote(f)))
        .collect();
    format!("strict decoding error: {}", errs.join(", "))
}

/// What the directive makes of `obj`'s unknown fields: the warnings to send (none under
/// `Ignore`; the fields are dropped from `obj` under both), or, under `Strict`, the unknown
/// fields that refuse it.
pub fn check(rt: &ResourceType, obj: &mut Value, d: Directive) -> Result<Vec<String>, Vec<String>> {
    let unknown = unknown_fields(rt, obj, d != Directive::Strict);
    match d {
        _ if unknown.is_empty() => Ok(Vec::new()),
        Directive::Ignore => Ok(Vec::new()),
        Directive::Warn => Ok(unknown
            .iter()
            .map(|f| format!("unknown field {}", go_quote(f)))
            .collect()),
        Directive::Strict => Err(unknown),
    }
}

/// A create's or update's body refused under `Strict` (`transformDecodeError`): 400.
pub fn decode_error(rt: &ResourceType, unknown: &[String]) -> ApiError {
    ApiError::bad_request(format!(
        "{kind} in version {version} cannot be handled as a {kind}: {}",
        strict_decoding_error(unknown),
        kind = rt.kind,
        version = go_quote(rt.version),
    ))
}

/// A patch whose result is refused under `Strict` (`applyPatchToObject`): 422 on `patch`,
/// whose value is the patch as Go prints a map (`map[spec:map[foo:1]]`) for a strategic
/// merge patch, and the patched object's JSON for a JSON or merge patch.
pub fn patch_error(shown: &str, unknown: &[String]) -> ApiError {
    ApiError::invalid(
        "",
        "",
        "",
        vec![(
            "patch".into(),
            format!(
                "Invalid value: {}: {}",
                go_quote(shown),
                strict_decoding_error(unknown)
            ),
        )],
    )
}

/// `fmt.Sprintf("%+v", v)` of a JSON value decoded into Go's `map[string]interface{}`.
pub fn go_format(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_format).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_format(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"any.key/x": "y"}, "creationTimestamp": null},
            "spec": {
                "replicas": 1, "foo": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "a", "image": "x", "resources": {}},
                        {"name": "b", "image": "y", "bar": {"baz": true}}
                    ]}
                }
            }
        })
    }

    #[test]
    fn unknown_fields_are_found_anywhere_and_free_maps_are_not_flagged() {
        let rt = by_kind("apps/v1", "Deployment").unwrap();
        let mut d = deployment();
        let unknown = unknown_fields(rt, &mut d, false);
        assert_eq!(
            unknown,
            ["spec.foo", "spec.template.spec.containers[1].bar"]
        );
        assert_eq!(d, deployment());
        let warnings = check(rt, &mut d, Directive::Warn).unwrap();
        assert_eq!(
            warnings,
            [
                "unknown field \"spec.foo\"",
                "unknown field \"spec.template.spec.containers[1].bar\""
            ]
        );
        assert!(d["spec"].get("foo").is_none());
        assert!(
            d["spec"]["template"]["spec"]["containers"][1]
                .get("bar")
                .is_none()
        );
        assert_eq!(d["metadata"]["labels"]["any.key/x"], "y");
        let e = decode_error(rt, &unknown);
        assert_eq!(
            e.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.foo\", unknown field \"spec.template.spec.containers[1].bar\""
        );
        assert_eq!(e.code, 400);
    }

    #[test]
    fn secrets_and_config_maps_keep_their_data_keys() {
        let rt = by_kind("v1", "Secret").unwrap();
        let mut s = json!({"metadata": {"name": "s"}, "data": {"k": "dg=="}, "stringData": {"a": "b"}, "type": "Opaque"});
        assert!(unknown_fields(rt, &mut s, true).is_empty());
        let rt = by_kind("v1", "ConfigMap").unwrap();
        let mut c = json!({"metadata": {"name": "c"}, "data": {"regops.yaml": "x"}, "dta": {}});
        assert_eq!(unknown_fields(rt, &mut c, true), ["dta"]);
    }

    #[test]
    fn go_format_prints_maps_as_go_does() {
        assert_eq!(
            go_format(&json!({"spec": {"foo": 1, "a": [true, null, "x"]}})),
            "map[spec:map[a:[true <nil> x] foo:1]]"
        );
    }
}
