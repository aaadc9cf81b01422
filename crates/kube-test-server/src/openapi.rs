//! OpenAPI v3 discovery, as much of it as kubectl reads to decide that the server validates
//! fields itself (server-side field validation), so that `kubectl apply` with its default
//! `--validate=strict` sends `fieldValidation=Strict` instead of downloading OpenAPI v2 to
//! validate on the client (which this server does not serve: `/openapi/v2` is a 404).
//!
//! What kubectl reads:
//! - k8s.io/client-go/openapi/client.go, `(*client).Paths`: GET `/openapi/v3` (no Accept
//!   header of its own), decoded as `handler3.OpenAPIV3Discovery`:
//!   `{"paths": {"apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=…"}}}`;
//!   a URL rooted at `/openapi/v3` keeps the client's own path prefix.
//! - k8s.io/client-go/openapi3/root.go, `(*root).GVSpec` → `retrieveGVBytes`: GETs that
//!   `serverRelativeURL` with `Accept: application/json` and unmarshals a `spec3.OpenAPI`.
//! - k8s.io/cli-runtime/pkg/resource/query_param_verifier_v3.go,
//!   `(*queryParamVerifierV3).HasSupport` → `supportsQueryParamV3`: among the document's
//!   `paths`, the first `patch` operation whose `x-kubernetes-group-version-kind` extension is
//!   the object's group, version and kind must list a parameter named `fieldValidation` with
//!   `in: query`. kube-apiserver refers to a shared parameter under `components`; the
//!   verifier also accepts it inline (`param.ParameterProps.Name == … && param.In ==
//!   "query"`), which is what this server does.
//!
//! The documents carry no schemas. The patch operations name no `requestBody` either: kubectl's
//! apply patcher (k8s.io/kubectl/pkg/cmd/apply/patcher.go, `gvkSupportsPatchOpenAPIV3`) then
//! builds strategic merge patches from its compiled-in types, as it does for a server whose
//! OpenAPI lacks them, instead of from schemas this server does not have.

use serde_json::{Value, json};

use crate::resources::{RESOURCES, ResourceType};

/// The group/version paths (`api/v1`, `apis/apps/v1`) the server serves, sorted.
fn group_versions() -> Vec<String> {
    let mut gvs: Vec<String> = RESOURCES.iter().map(gv_path).collect();
    gvs.sort_unstable();
    gvs.dedup();
    gvs
}

fn gv_path(r: &ResourceType) -> String {
    if r.group.is_empty() {
        format!("api/{}", r.version)
    } else {
        format!("apis/{}/{}", r.group, r.version)
    }
}

/// The OpenAPI v3 document of one group/version: a path per resource with its patch
/// operation, which takes `fieldValidation` (as every create, update and patch here does).
fn gv_document(gv: &str) -> Value {
    let mut paths = serde_json::Map::new();
    for r in RESOURCES.iter().filter(|r| gv_path(r) == gv) {
        let base = format!("/{gv}");
        let path = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let mut path_params = vec![json!({
            "name": "name", "in": "path", "required": true,
            "description": format!("name of the {}", r.kind), "schema": {"type": "string", "uniqueItems": true}
        })];
        if r.namespaced {
            path_params.push(json!({
                "name": "namespace", "in": "path", "required": true,
                "description": "object name and auth scope, such as for teams and projects",
                "schema": {"type": "string", "uniqueItems": true}
            }));
        }
        let op_id = format!("patch{}", r.kind);
        paths.insert(
            path,
            json!({
                "parameters": path_params,
                "patch": {
                    "description": format!("partially update the specified {}", r.kind),
                    "operationId": op_id,
                    "parameters": [
                        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {
                            "name": "fieldValidation", "in": "query",
                            "description": "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn (the default) - Strict",
                            "schema": {"type": "string", "uniqueItems": true}
                        },
                        {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
                    ],
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind}
                }
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-kube-test-server"},
        "paths": paths,
        "components": {}
    })
}

/// A stable digest of a document, for the `hash` query parameter of its URL (client-go's
/// cached OpenAPI client keys its cache by the URL; a changed document gets a new one).
fn hash(doc: &Value) -> String {
    // FNV-1a over the serialised document: stable across runs and builds.
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016X}")
}

/// The OpenAPI v3 document at `path` (`/openapi/v3` or `/openapi/v3/{gv}`), if it is one.
pub fn document(path: &str) -> Option<Value> {
    let path = path.trim_end_matches('/');
    if path == "/openapi/v3" {
        let paths: serde_json::Map<String, Value> = group_versions()
            .into_iter()
            .map(|gv| {
                let url = format!("/openapi/v3/{gv}?hash={}", hash(&gv_document(&gv)));
                (gv, json!({ "serverRelativeURL": url }))
            })
            .collect();
        return Some(json!({ "paths": paths }));
    }
    let gv = path.strip_prefix("/openapi/v3/")?;
    group_versions()
        .iter()
        .any(|g| g == gv)
        .then(|| gv_document(gv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_kind_has_a_patch_operation_taking_field_validation() {
        let root = document("/openapi/v3").unwrap_or_default();
        for r in RESOURCES {
            let gv = gv_path(r);
            let url = root["paths"][&gv]["serverRelativeURL"]
                .as_str()
                .unwrap_or_default();
            assert!(url.starts_with(&format!("/openapi/v3/{gv}?hash=")), "{gv}");
            let doc = document(url.split('?').next().unwrap_or_default()).unwrap_or_default();
            let found = doc["paths"]
                .as_object()
                .into_iter()
                .flatten()
                .any(|(_, p)| {
                    p["patch"]["x-kubernetes-group-version-kind"]
                        == json!({"group": r.group, "version": r.version, "kind": r.kind})
                        && p["patch"]["parameters"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|q| q["name"] == "fieldValidation" && q["in"] == "query")
                });
            assert!(found, "{}", r.kind);
        }
        assert!(document("/openapi/v3/apis/apps/v2").is_none());
        assert!(document("/openapi/v2").is_none());
    }
}
