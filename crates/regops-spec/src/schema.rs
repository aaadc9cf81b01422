//! The JSON Schema of a spec file, generated from the model types.

/// The schema as pretty JSON with a trailing newline: the content of
/// `schemas/regops.schema.json`.
pub fn json_schema() -> String {
    let mut schema = schemars::schema_for!(crate::model::Spec);
    schema.insert(
        "$id".into(),
        "https://regops.dev/schemas/regops.schema.json".into(),
    );
    let mut out = serde_json::to_string_pretty(&schema).unwrap_or_default();
    out.push('\n');
    out
}
