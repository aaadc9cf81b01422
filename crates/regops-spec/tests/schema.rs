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
            let is_spec = regops_spec::SpecFormat::from_path(&f).is_some()
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
    let validator = schema_check::validator_for(&schema()).unwrap();
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
    let validator = schema_check::validator_for(&schema()).unwrap();
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

/// A spec that uses every definition of the schema, each field of each in at least one
/// place: valid for the schema and for the decoder alike.
const EVERY_FIELD: &str = r#"{
  "apiVersion": "regops.dev/v1", "kind": "RegistryConfig",
  "metadata": {"name": "every-field"},
  "recipients": ["age1rqurtv6hcs5xk5hdnjnhyhd9zfmgy6hw0hlrqpqpg772dzarddfq9gqnwl"],
  "registries": {
    "harbor": {"server": "harbor.example.com", "credential": "robot", "insecure": false, "caFile": "ca.pem"},
    "local": {"server": "registry.local:5000", "credential": "files", "insecure": true},
    "aged": {"server": "aged.example.com", "credential": "aged"},
    "helped": {"server": "helped.example.com", "credential": "helped"},
    "ecr": {"server": "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "credential": "aws"},
    "gar": {"server": "europe-docker.pkg.dev", "credential": "google"},
    "acr": {"server": "a.azurecr.io", "credential": "azure"}
  },
  "credentials": {
    "robot": {"username": "robot$ci", "password": {"env": "REGOPS_CRED_ROBOT"},
              "email": "ci@example.com", "expires": "2030-01-01", "warnBefore": "14d"},
    "files": {"username": "u", "password": {"file": "password.txt"}},
    "aged": {"username": "u", "password": {"ageFile": "aged.age"}},
    "helped": {"password": {"helper": "pass"}},
    "sopsed": {"username": {"sops": {"file": "s.enc.yaml", "extract": "[\"u\"]"}},
               "password": {"sops": {"file": "s.enc", "extract": "[\"data\"]", "format": "binary",
                                     "decode": "base64", "jsonKey": "password"}}},
    "awssm": {"username": "u", "password": {"awsSecretsManager": {"secretId": "registry/harbor",
               "region": "eu-west-1", "versionStage": "AWSCURRENT", "jsonKey": "password"}},
              "refreshInterval": "15m"},
    "vaulted": {"username": "u", "password": {"vault": {"path": "registry/quay", "field": "token",
                "mount": "kv"}}},
    "gcpsm": {"username": "u", "password": {"gcpSecretManager": {
               "name": "projects/my-project/secrets/registry-harbor/versions/latest",
               "jsonKey": "password"}}},
    "akv": {"username": "u", "password": {"azureKeyVault": {"vault": "myvault",
             "secret": "registry-harbor", "version": "0123456789abcdef0123456789abcdef",
             "jsonKey": "password"}}},
    "aws": {"password": {"ecr": {"region": "eu-west-1", "registryId": "123456789012",
                                  "roleArn": "arn:aws:iam::123456789012:role/pull"}},
            "refreshBefore": "1h"},
    "google": {"password": {"gcp": {}}},
    "azure": {"password": {"acr": {"tenantId": "contoso.onmicrosoft.com", "clientId": "00000000-0000-0000-0000-000000000000"}}}
  },
  "clusters": {
    "prod": {"context": "prod-admin", "kubeconfig": "prod.kubeconfig", "labels": {"env": "prod"}, "rancherId": "c-m-x7k2"}
  },
  "scopes": {
    "web": {
      "namespaces": ["web"],
      "selector": {"matchLabels": {"team": "web"},
                   "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]},
      "rancherProject": "c-m-x7k2:p-9fz2q",
      "kubesphereWorkspace": "team-a",
      "exclude": ["web-sandbox"],
      "clusters": {"names": ["prod"], "matchLabels": {"env": "prod"},
                   "matchExpressions": [{"key": "env", "operator": "Exists"}]}
    }
  },
  "pullSecrets": {
    "pull": {"registries": ["harbor", "local", "aged", "helped"], "scope": "web", "adopt": true},
    "cloud": {"registries": ["ecr", "gar", "acr"], "scope": "web"}
  },
  "bindings": [
    {"pullSecret": "pull", "serviceAccounts": ["default"]},
    {"pullSecret": "cloud",
     "workloads": {"kinds": ["Deployment"], "selector": {"matchLabels": {"app": "web"}}, "images": ["harbor.example.com/*"]},
     "kubesphereAnnotation": true},
    {"pullSecret": "pull", "workloads": {"kinds": ["Rollout"]}}
  ],
  "workloadKinds": {
    "Rollout": {"apiVersion": "argoproj.io/v1alpha1", "resource": "rollouts", "podTemplate": "spec.template"}
  },
  "nodeTrust": {"namespace": "regops-node-trust", "configMap": "regops-node-trust",
                "allowList": "regops-node-trust-allow"}
}"#;

/// Where each definition sits in [`EVERY_FIELD`] (a JSON pointer to one object of it).
const PLACES: &[(&str, &str)] = &[
    ("Spec", ""),
    ("Metadata", "/metadata"),
    ("Registry", "/registries/harbor"),
    ("Credential", "/credentials/robot"),
    ("SecretSource", "/credentials/robot/password"),
    ("EcrSource", "/credentials/aws/password/ecr"),
    ("GcpSource", "/credentials/google/password/gcp"),
    ("AcrSource", "/credentials/azure/password/acr"),
    ("SopsSource", "/credentials/sopsed/password/sops"),
    (
        "AwsSecretsManagerSource",
        "/credentials/awssm/password/awsSecretsManager",
    ),
    ("VaultSource", "/credentials/vaulted/password/vault"),
    (
        "GcpSecretManagerSource",
        "/credentials/gcpsm/password/gcpSecretManager",
    ),
    (
        "AzureKeyVaultSource",
        "/credentials/akv/password/azureKeyVault",
    ),
    ("Scope", "/scopes/web"),
    ("LabelSelector", "/scopes/web/selector"),
    (
        "LabelRequirement",
        "/scopes/web/selector/matchExpressions/0",
    ),
    ("PullSecret", "/pullSecrets/pull"),
    ("Binding", "/bindings/0"),
    ("WorkloadSelector", "/bindings/1/workloads"),
    ("Cluster", "/clusters/prod"),
    ("ClusterSelector", "/scopes/web/clusters"),
    ("DeclaredKind", "/workloadKinds/Rollout"),
    ("NodeTrust", "/nodeTrust"),
];

/// Decodes a spec (as JSON, which is YAML) and returns the decoder's errors.
fn decoder_errors(spec: &serde_json::Value) -> Vec<String> {
    let mut sources = regops_spec::Sources::default();
    sources.add(
        PathBuf::from("spec.yaml"),
        serde_json::to_string_pretty(spec).unwrap(),
        regops_spec::SpecFormat::Yaml,
    );
    match regops_spec::load(sources, "spec") {
        Ok(_) => Vec::new(),
        Err(invalid) => invalid
            .diagnostics
            .iter()
            .filter(|d| d.severity == regops_spec::diagnostic::Severity::Error)
            .map(|d| d.message.clone())
            .collect(),
    }
}

fn schema_errors(spec: &serde_json::Value) -> Vec<String> {
    let validator = schema_check::validator_for(&schema()).unwrap();
    validator
        .iter_errors(spec)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// A sample that uses every definition and field is valid for both; each definition's
/// fields, as the decoder knows them, are all used in it.
#[test]
fn a_sample_with_every_field_is_valid_for_the_schema_and_decodes() {
    let spec: serde_json::Value = serde_json::from_str(EVERY_FIELD).unwrap();
    assert_eq!(schema_errors(&spec), Vec::<String>::new());
    assert_eq!(decoder_errors(&spec), Vec::<String>::new());
    // Every field of every definition appears somewhere in the sample.
    let text = EVERY_FIELD;
    for (def, fields) in FIELD_TABLE {
        for f in *fields {
            assert!(
                text.contains(&format!("\"{f}\"")),
                "{def}.{f} is not in the sample"
            );
        }
        assert!(
            PLACES.iter().any(|(d, _)| d == def),
            "{def} has no place in the sample"
        );
    }
}

/// An unknown field, and a known field misspelt, in each definition: the decoder refuses it
/// and so does the schema (so an editor using the schema warns where `regops check` fails).
#[test]
fn every_field_the_decoder_refuses_the_schema_refuses() {
    let base: serde_json::Value = serde_json::from_str(EVERY_FIELD).unwrap();
    for (def, place) in PLACES {
        let known = FIELD_TABLE
            .iter()
            .find(|(d, _)| d == def)
            .map_or(&[][..], |(_, f)| *f);
        for bad in ["notAField", "sever", "namespace", "usrname"] {
            // `namespace` is a field of NodeTrust: not a bad one there.
            if known.contains(&bad) {
                continue;
            }
            let mut spec = base.clone();
            let target = spec.pointer_mut(place).unwrap();
            target
                .as_object_mut()
                .unwrap_or_else(|| panic!("{def} at {place} is not an object"))
                .insert(bad.into(), serde_json::json!("x"));
            let decoded = decoder_errors(&spec);
            let schema = schema_errors(&spec);
            assert!(
                !decoded.is_empty(),
                "the decoder accepts `{bad}` in {def} ({place})"
            );
            assert!(
                !schema.is_empty(),
                "the schema accepts `{bad}` in {def} ({place}), the decoder refuses it: {decoded:?}"
            );
        }
    }
}

/// Durations (`warnBefore`, `refreshBefore`) in Go's syntax: what the decoder reads the schema
/// allows, and what the schema refuses the decoder refuses (the schema cannot say "whole
/// seconds" or "not zero", so `0s` and `1500ms` are the decoder's alone to refuse).
#[test]
fn durations_the_decoder_reads_the_schema_allows() {
    let base: serde_json::Value = serde_json::from_str(EVERY_FIELD).unwrap();
    let with = |field: &str, value: &str| {
        let mut spec = base.clone();
        let place = match field {
            "warnBefore" => "/credentials/robot",
            "refreshInterval" => "/credentials/awssm",
            _ => "/credentials/aws",
        };
        let target = spec
            .pointer_mut(place)
            .unwrap_or_else(|| panic!("no {place} in the sample"));
        target[field] = serde_json::json!(value);
        spec
    };
    // `refreshBefore` must also be shorter than an ECR token's 12 hours.
    for (field, goods) in [
        (
            "warnBefore",
            [
                "14d", "72h", "30m", "1h30m", "1.5h", "90s", "2h45m30s", "0.5d",
            ],
        ),
        (
            "refreshBefore",
            [
                "4h", "20m", "30m", "1h30m", "1.5h", "90s", "2h45m30s", "0.25d",
            ],
        ),
        (
            "refreshInterval",
            ["1h", "15m", "30s", "1h30m", "1.5h", "90s", "2h45m30s", "1d"],
        ),
    ] {
        for good in goods {
            let spec = with(field, good);
            assert_eq!(
                decoder_errors(&spec),
                Vec::<String>::new(),
                "{field}: {good}"
            );
            assert_eq!(
                schema_errors(&spec),
                Vec::<String>::new(),
                "{field}: {good}"
            );
        }
        for bad in ["14", "1x", "h", "-5m", "1h 30m", "", "5 m", "P1D"] {
            let spec = with(field, bad);
            assert!(
                !decoder_errors(&spec).is_empty(),
                "decoder, {field}: {bad:?}"
            );
            assert!(!schema_errors(&spec).is_empty(), "schema, {field}: {bad:?}");
        }
    }
}
