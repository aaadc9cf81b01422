//! The fleet report: each cluster's plan, apply or drift under its name, a line per cluster,
//! the fleet total, and the failed clusters with their errors; the JSON reports are format 2
//! and the metrics carry a `cluster` label on every series.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use regops_core::fleet::{self, Applied, ClusterFailure, Drifted, PerCluster};
use regops_core::login::Login;
use regops_core::observed::Observed;
use regops_core::plan::{Plan, Source};
use regops_core::report::{ItemResult, Outcome, Report};
use regops_core::{desired, plan, view};
use regops_spec::{Sources, SpecFormat};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

const SPEC: &str = r#"
apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: team }
registries:
  harbor: { server: harbor.example.com, credential: robot }
credentials:
  robot: { username: robot$ci, password: { env: X } }
scopes:
  apps: { namespaces: [web, api] }
pullSecrets:
  pull: { registries: [harbor], scope: apps }
"#;

/// The plan of a cluster holding `namespaces`, with the Secret already in `synced` of them.
fn plan_of(cluster: &str, namespaces: &[&str], synced: &[&str]) -> Plan {
    let mut sources = Sources::default();
    sources.add("spec.yaml".into(), SPEC.into(), SpecFormat::Yaml);
    let loaded = regops_spec::load(sources, "team").unwrap();
    let logins = BTreeMap::from([(
        "robot".to_string(),
        Login {
            username: "robot$ci".into(),
            password: SecretString::from("pw-marker".to_string()),
            email: None,
            source_digest: None,
            expires_at: None,
        },
    )]);
    let mut objects: Vec<Value> = namespaces
        .iter()
        .map(|ns| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        .collect();
    let observed0 = Observed::from_objects(&objects).0;
    let d0 = desired::compute(&loaded.spec, &logins, &observed0, None);
    for s in d0
        .secrets
        .iter()
        .filter(|s| synced.contains(&s.namespace.as_str()))
    {
        objects.push(json!({"apiVersion": "v1", "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": s.name, "namespace": s.namespace,
                "labels": {"app.kubernetes.io/managed-by": "regops"},
                "annotations": {"regops.dev/spec": "team"}},
            "data": {".dockerconfigjson": STANDARD.encode(s.dockerconfigjson.expose_secret())}}));
    }
    let (observed, _) = Observed::from_objects(&objects);
    let d = desired::compute(&loaded.spec, &logins, &observed, None);
    plan::compute(
        "team",
        &format!("http://{cluster}.example:6443 (context `{cluster}`)"),
        Source::default(),
        &d,
        &observed,
        None,
    )
}

fn down() -> ClusterFailure {
    ClusterFailure {
        message:
            "cannot reach the cluster at https://10.0.0.9:6443 (context `us`): connection refused"
                .into(),
        help: Some("check the server address and that the cluster is up".into()),
    }
}

fn plans() -> Vec<PerCluster<Plan>> {
    vec![
        PerCluster {
            cluster: "eu".into(),
            result: Ok(plan_of("eu", &["web", "api"], &[])),
        },
        PerCluster {
            cluster: "staging".into(),
            result: Ok(plan_of("staging", &["web", "api"], &["web", "api"])),
        },
        PerCluster {
            cluster: "us".into(),
            result: Err(down()),
        },
    ]
}

#[test]
fn plan_text_groups_by_cluster_with_a_line_each_and_the_total() {
    let text = fleet::plan_text("team", &plans(), false, view::Detail::Summary);
    assert!(
        text.contains("=== cluster eu ===\nregops plan: spec `team` against http://eu.example")
    );
    assert!(
        text.contains(
            "  eu       2 to create, 0 to update, 0 to replace, 0 to patch, 0 to delete."
        )
    );
    assert!(text.contains("  staging  no changes (2 objects checked)"));
    assert!(text.contains("  us       FAILED: cannot reach the cluster"));
    assert!(text.contains(
        "Total: 2 to create, 0 to update, 0 to replace, 0 to patch, 0 to delete on 1 of 3 clusters; 1 failed."
    ));
    assert!(!text.contains("pw-marker"));
    insta::assert_snapshot!(text);
}

#[test]
fn plan_json_is_format_2_with_each_cluster_plan_and_the_total() {
    let members = plans();
    let mut out = Vec::new();
    fleet::write_plan_json("team", &Source::default(), &members, &mut out).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["formatVersion"], "2");
    assert_eq!(v["clusters"][0]["cluster"], "eu");
    assert_eq!(v["clusters"][0]["status"], "ok");
    assert_eq!(v["clusters"][0]["plan"]["formatVersion"], "1");
    assert_eq!(v["clusters"][2]["status"], "failed");
    assert!(v["clusters"][2]["plan"].is_null());
    assert!(
        v["clusters"][2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("connection refused")
    );
    assert_eq!(
        v["summary"],
        json!({"clusters": 3, "failed": 1, "withChanges": 1, "create": 2, "update": 0,
            "replace": 0, "patch": 0, "delete": 0, "noop": 2, "conflicts": 0})
    );
    // The committed schema describes it.
    let schema: Value = serde_json::from_str(&fleet::plan_json_schema()).unwrap();
    let validator = schema_check::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn plan_markdown_has_a_table_of_clusters_and_each_plan() {
    let md = fleet::plan_markdown("team", &plans(), view::MARKDOWN_BUDGET);
    assert!(md.contains("| `us` | | | | | | | **failed**: ``cannot reach"));
    assert!(md.contains("<details open><summary>cluster 1 of 3: 2 to create"));
    assert!(md.contains("Cluster `eu`:"));
    assert!(md.contains("<details><summary>cluster 2 of 3: no changes"));
    assert!(md.contains("Cluster `staging`:"));
    insta::assert_snapshot!(md);
}

fn applied() -> Vec<PerCluster<Applied>> {
    let eu = plan_of("eu", &["web", "api"], &[]);
    let results = eu
        .changes
        .iter()
        .enumerate()
        .map(|(i, c)| ItemResult {
            action: c.action,
            kind: c.kind,
            namespace: c.namespace.clone(),
            name: c.name.clone(),
            outcome: if i == 0 {
                Outcome::Failed
            } else {
                Outcome::Applied
            },
            message: (i == 0).then(|| "403 Forbidden: secrets is forbidden".to_string()),
            uid: None,
        })
        .collect();
    vec![
        PerCluster {
            cluster: "eu".into(),
            result: Ok(Applied {
                plan: eu,
                report: Report { results },
                lock_lost: false,
            }),
        },
        PerCluster {
            cluster: "staging".into(),
            result: Ok(Applied {
                plan: plan_of("staging", &["web", "api"], &["web", "api"]),
                report: Report::default(),
                lock_lost: false,
            }),
        },
        PerCluster {
            cluster: "us".into(),
            result: Err(down()),
        },
    ]
}

#[test]
fn apply_reports_each_cluster_and_what_was_not_done() {
    let members = applied();
    assert!(members[0].result.as_ref().unwrap().failed());
    assert!(!members[1].result.as_ref().unwrap().failed());
    let text = fleet::apply_text(&members, false);
    assert!(text.contains("  eu       1 applied, 1 failed, 0 skipped"));
    assert!(text.contains("  staging  0 applied, 0 failed, 0 skipped"));
    assert!(
        text.contains("Total: 1 applied, 1 failed, 0 skipped; 1 cluster could not be worked on.")
    );
    assert!(text.contains("run apply again to converge"));
    insta::assert_snapshot!("apply_text", text);
    let v: Value = serde_json::from_str(&fleet::apply_json("team", &members, false)).unwrap();
    assert_eq!(v["formatVersion"], "2");
    assert_eq!(v["clusters"][0]["report"]["summary"]["failed"], 1);
    assert_eq!(v["clusters"][2]["status"], "failed");
    assert_eq!(
        v["summary"],
        json!({"clusters": 3, "failed": 1, "applied": 1, "failedChanges": 1, "skipped": 0, "conflicts": 0})
    );
}

#[test]
fn drift_reports_each_cluster_and_metrics_label_every_series_with_it() {
    let drifted = |cluster: &str, synced: &[&str]| {
        let plan = plan_of(cluster, &["web", "api"], synced);
        let drift = regops_core::drift::drift(&plan);
        Drifted { plan, drift }
    };
    let members = vec![
        PerCluster {
            cluster: "eu".into(),
            result: Ok(drifted("eu", &["web"])),
        },
        PerCluster {
            cluster: "staging".into(),
            result: Ok(drifted("staging", &["web", "api"])),
        },
        PerCluster {
            cluster: "us".into(),
            result: Err(down()),
        },
    ];
    let text = fleet::drift_text("team", &members);
    assert!(text.contains("  eu       1 object differs from the spec"));
    assert!(text.contains("  staging  in sync"));
    assert!(text.contains("Total: 1 of 3 clusters in drift; 1 could not be read."));
    insta::assert_snapshot!("drift_text", text);
    let v: Value = serde_json::from_str(&fleet::drift_json("team", &members)).unwrap();
    assert_eq!(
        v["summary"],
        json!({"clusters": 3, "failed": 1, "inDrift": 1, "driftedObjects": 1})
    );
    let m = fleet::metrics(
        "team",
        &[
            ("eu".into(), Some(1)),
            ("staging".into(), Some(0)),
            ("us".into(), None),
        ],
        1_700_000_000,
        &[regops_core::expiry::Expiry {
            credential: "robot".into(),
            written: "2027-03-01".into(),
            at: 1_803_859_200,
            warn_before: 0,
        }],
    );
    for line in m.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains(",cluster=\""), "{line}");
    }
    assert!(m.contains("regops_drift_objects{spec=\"team\",cluster=\"eu\"} 1\n"));
    assert!(!m.contains("regops_drift_objects{spec=\"team\",cluster=\"us\"}"));
    assert!(m.contains("regops_run_success{spec=\"team\",cluster=\"us\"} 0\n"));
    assert!(m.contains("regops_run_success{spec=\"team\",cluster=\"staging\"} 1\n"));
    assert_eq!(
        m.matches("# TYPE regops_credential_expiry_timestamp_seconds")
            .count(),
        1
    );
    assert!(m.contains(
        "regops_credential_expiry_timestamp_seconds{spec=\"team\",cluster=\"us\",credential=\"robot\"} 1803859200\n"
    ));
}
