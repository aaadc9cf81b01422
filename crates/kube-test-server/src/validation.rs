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

/// Validates an object about to be stored; `old` is the stored object for updates.
pub fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let mut causes = Vec::new();
    let name_ok = if rt.kind == "Namespace" {
        dns1123_label(name)
    } else {
        dns1123_subdomain(name)
    };
    if !name_ok {
        let rule = if rt.kind == "Namespace" {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        };
        causes.push((
            "metadata.name".to_string(),
            format!("Invalid value: \"{name}\": {rule}"),
        ));
    }
    if rt.kind == "Secret" {
        secret(obj, old, &mut causes);
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt.kind, rt.group, name, causes))
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

/// Moves `stringData` into `data` (base64), as the API server does on every write; `data`
/// values must be valid base64.
pub fn normalize_secret(obj: &mut Value) -> Result<(), ApiError> {
    if let Some(data) = obj["data"].as_object() {
        for (k, v) in data {
            let ok = v.as_str().is_some_and(|s| STANDARD.decode(s).is_ok());
            if !ok {
                return Err(ApiError::bad_request(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data[{k}]"
                )));
            }
        }
    }
    if let Some(string_data) = obj.as_object_mut().and_then(|o| o.remove("stringData")) {
        if let Some(sd) = string_data.as_object() {
            if !obj["data"].is_object() {
                obj["data"] = json!({});
            }
            for (k, v) in sd {
                obj["data"][k] = json!(STANDARD.encode(v.as_str().unwrap_or_default()));
            }
        }
    }
    if obj.get("type").is_none() {
        obj["type"] = json!("Opaque");
    }
    Ok(())
}
