//! Errors as the API server returns them: a `Status` object with reason, code and details.

use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: Value::Null,
            retry_after: None,
        }
    }

    fn with_details(mut self, kind: &str, name: &str, group: &str) -> Self {
        let mut d = json!({ "name": name, "kind": kind });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        self.details = d;
        self
    }

    pub fn not_found(plural: &str, group: &str, name: &str) -> Self {
        let res = if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        };
        ApiError::new(404, "NotFound", format!("{res} \"{name}\" not found"))
            .with_details(plural, name, group)
    }

    pub fn already_exists(plural: &str, group: &str, name: &str) -> Self {
        let res = if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        };
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{res} \"{name}\" already exists"),
        )
        .with_details(plural, name, group)
    }

    pub fn conflict(plural: &str, group: &str, name: &str) -> Self {
        let res = if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        };
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {res} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
        )
        .with_details(plural, name, group)
    }

    /// 422 with field causes.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<(String, String)>) -> Self {
        let text: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {}", text.join(", ")),
        )
        .with_details(kind, name, group);
        e.details["causes"] = causes.into_iter().map(|(field, message)| json!({"reason": "FieldValueInvalid", "message": message, "field": field})).collect();
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !self.details.is_null() {
            s["details"] = self.details.clone();
        }
        if let Some(secs) = self.retry_after {
            let d = s["details"].as_object_mut().map(|_| ()).is_some();
            if !d {
                s["details"] = json!({});
            }
            s["details"]["retryAfterSeconds"] = json!(secs);
        }
        s
    }
}
