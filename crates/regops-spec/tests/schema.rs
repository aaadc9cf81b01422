//! The committed JSON Schema is the generated one, the decoder accepts exactly the fields the
//! schema describes, and every shipped example is valid by both.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use regops_spec::decode::FIELD_TABLE;
use regops_spec::source::read_paths;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema() -> serde_json::Value {
    serde_json::from_str(&regops_spec::schema::json_schema()).unwrap()
}

#[test]
fn committed_schema_is_generated_schema() {
    let committed = std::fs::read_to_string(repo().join("schemas/regops.schema.json")).unwrap();
    assert!(
        committed == regops_spec::schema::json_schema(),
        "schemas/regops.schema.json is stale: run `cargo run -q -- schema > schemas/regops.schema.json`"
    );
}

#[test]
fn decoder_fields_match_schema_properties() {
    let schema = schema();
    for (def, fields) in FIELD_TABLE {
        let node = if *def == "Spec" {
            &schema
        } else {
            &schema["$defs"][def]
        };
        let props: BTreeSet<String> = match node.get("properties") {
            Some(p) => p.as_object().unwrap().keys().cloned().collect(),
            // An object with no fields (`gcp: {}`).
            None if node["type"] == "object" => BTreeSet::new(),
            // An untagged enum: the union of its variants' properties.
            None => node["anyOf"]
                .as_array()
                .unwrap_or_else(|| panic!("{def} has neither properties nor anyOf"))
                .iter()
                .filter_map(|v| v.get("properties"))
                .flat_map(|p| p.as_object().unwrap().keys().cloned())
                .collect(),
        };
        let decoded: BTreeSet<String> = fields.iter().map(|f| f.to_string()).collect();
        assert_eq!(decoded, props, "fields of {def}: decoder vs schema");
        if node.get("properties").is_some() || node["type"] == "object" {
            assert_eq!(
                node["additionalProperties"],
                serde_json::Value::Bool(false),
                "{def} must refuse unknown fields"
            );
        }
    }
}

fn example_specs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(repo().join("examples")).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            let is_spec = regops_spec::Format::from_path(&f).is_some()
                && std::fs::read_to_string(&f).is_ok_and(|t| t.contains("regops.dev/v1"));
            if is_spec {
                out.push(f);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_example_validates_against_the_schema_and_loads() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let examples = example_specs();
    assert!(
        examples.len() >= 3,
        "expected the shipped examples, found {examples:?}"
    );
    for path in examples {
        let sources = read_paths(
            std::slice::from_ref(&path),
            regops_spec::trust::LoadRestrictor::RootOnly,
        )
        .unwrap();
        let mut diags = regops_spec::Diagnostics::default();
        let root = sources
            .parse(0, &mut diags)
            .unwrap_or_else(|| panic!("{} does not parse", path.display()));
        let errors: Vec<String> = validator
            .iter_errors(&root.to_json())
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        let loaded = regops_spec::load(sources, "example");
        assert!(
            loaded.is_ok(),
            "{} does not load: {:?}",
            path.display(),
            loaded.err().map(|e| e.diagnostics)
        );
    }
}

#[test]
fn schema_rejects_what_the_decoder_rejects() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let bad = serde_json::json!({
        "apiVersion": "regops.dev/v1", "kind": "RegistryConfig",
        "registries": { "r": { "sever": "x", "credential": "c" } },
        "credentials": { "c": { "username": "u", "password": "plaintext" } }
    });
    let errors: Vec<String> = validator
        .iter_errors(&bad)
        .map(|e| e.instance_path().to_string())
        .collect();
    assert!(
        errors.iter().any(|p| p.contains("/registries/r")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|p| p.contains("/credentials/c/password")),
        "{errors:?}"
    );
}
