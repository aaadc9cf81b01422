//! A replacement deletes a Secret before creating it again, so it gets prune's guards: the
//! Secret is read again just before, must still be this spec's (or the very Secret planned for
//! adoption, by uid), and the delete is bound to that read's uid and resourceVersion. Here the
//! plan is made, then the cluster changes, then the stale plan is applied: what changed owner
//! is left alone.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::collections::BTreeMap;

use serde_json::json;

const SPEC: &str = "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: team }
registries:
  harbor: { server: harbor.example.com, credential: robot }
credentials:
  robot: { username: robot, password: { env: REGOPS_CRED_ROBOT } }
scopes:
  owned: { namespaces: [owned] }
  adopted: { namespaces: [adopted] }
pullSecrets:
  pull: { registries: [harbor], scope: owned }
  legacy: { registries: [harbor], scope: adopted, adopt: true }
";

fn secret(ns: &str, type_: &str, owned: bool) -> serde_json::Value {
    let name = if ns == "owned" { "pull" } else { "legacy" };
    let mut v = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": type_,
        "data": {".dockercfg": "e30="},
    });
    if owned {
        v["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "regops"});
        v["metadata"]["annotations"] = json!({"regops.dev/spec": "team"});
    }
    v
}

/// What apply would do now: the cluster read, the desired state and the plan.
fn plan_now(
    rt: &tokio::runtime::Runtime,
    client: &regops::cluster::Connection,
    target: &regops::cluster::client::Target,
    spec: &regops_spec::Spec,
    logins: &BTreeMap<String, regops::inputs::credentials::Login>,
) -> (regops_core::desired::Desired, regops_core::plan::Plan) {
    let observed = rt
        .block_on(regops::cluster::read::from_cluster(
            client, target, spec, "team", None,
        ))
        .unwrap();
    let desired = regops_core::desired::compute(spec, logins, &observed, None);
    let plan = regops_core::plan::compute(
        "team",
        "test",
        regops_core::plan::Source::default(),
        &desired,
        &observed,
        None,
    );
    (desired, plan)
}

#[test]
fn a_replacement_whose_secret_changed_since_the_plan_deletes_nothing() {
    let server = kube_test_server::TestServer::start(kube_test_server::Config::default()).unwrap();
    for ns in ["owned", "adopted"] {
        server
            .seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .unwrap();
    }
    // Both are planned as replacements (a dockercfg cannot become a dockerconfigjson).
    server
        .seed(secret("owned", "kubernetes.io/dockercfg", true))
        .unwrap();
    server
        .seed(secret("adopted", "kubernetes.io/dockercfg", false))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();

    let mut sources = regops_spec::Sources::default();
    sources.add(
        "team.yaml".into(),
        SPEC.into(),
        regops_spec::SpecFormat::Yaml,
    );
    let loaded = regops_spec::load(sources, "team").unwrap();
    let mut logins = BTreeMap::new();
    logins.insert(
        "robot".to_string(),
        regops::inputs::credentials::Login::new("robot", secrecy::SecretString::from("pw")),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (client, target) = rt
        .block_on(regops::cluster::client::connect(Some(&kubeconfig), None))
        .unwrap();
    let client = regops::cluster::Connection::new(client, regops::context::RunContext::default());
    let (desired, plan) = plan_now(&rt, &client, &target, &loaded.spec, &logins);
    let replaced: Vec<&str> = plan
        .changes
        .iter()
        .filter(|c| c.action == regops_core::plan::Action::Replace)
        .map(|c| c.namespace.as_str())
        .collect();
    assert_eq!(replaced, ["adopted", "owned"], "{:?}", plan.changes);

    // Meanwhile: the owned one is handed to another team (regops' marks removed), and the one
    // to adopt is deleted and made again by someone else (a new uid).
    let (code, body) = server.admin(
        "PATCH",
        "/api/v1/namespaces/owned/secrets/pull",
        "application/merge-patch+json",
        &json!({"metadata": {
            "labels": {"app.kubernetes.io/managed-by": null, "team": "other"},
            "annotations": {"regops.dev/spec": null},
        }}),
    );
    assert_eq!(code, 200, "{body}");
    let (code, _) = server.admin(
        "DELETE",
        "/api/v1/namespaces/adopted/secrets/legacy",
        "application/json",
        &serde_json::Value::Null,
    );
    assert_eq!(code, 200);
    server
        .seed(secret("adopted", "kubernetes.io/dockercfg", false))
        .unwrap();
    let uid_before =
        server.object("secrets", "adopted", "legacy").unwrap()["metadata"]["uid"].clone();
    server.clear_log();

    let opts = regops::cluster::write::Options {
        spec: "team".into(),
        prune: false,
        dry_run: false,
        force_conflicts: false,
        concurrency: 2,
    };
    let report = rt.block_on(regops::cluster::write::run(
        &client,
        &plan,
        &regops::cluster::write::SecretData::of(&desired),
        &opts,
        &|_| {},
        &|| false,
    ));
    for ns in ["owned", "adopted"] {
        let r = report
            .results
            .iter()
            .find(|r| r.namespace == ns && r.kind == regops_spec::kind::ObjectKind::Secret)
            .unwrap();
        assert_eq!(r.outcome, regops_core::report::Outcome::Failed, "{r:?}");
        assert!(
            r.message.as_deref().unwrap().contains("left alone"),
            "{r:?}"
        );
        let now = server.object("secrets", ns, &r.name).unwrap();
        assert_eq!(
            now["type"], "kubernetes.io/dockercfg",
            "{ns}: replaced anyway"
        );
    }
    assert_eq!(
        server.object("secrets", "owned", "pull").unwrap()["metadata"]["labels"]["team"],
        "other"
    );
    assert_eq!(
        server.object("secrets", "adopted", "legacy").unwrap()["metadata"]["uid"],
        uid_before
    );
    assert!(
        !server.log().iter().any(|e| e.verb == "delete"),
        "nothing was deleted"
    );

    // Planned afresh, the Secret to adopt (the new one) is replaced, bound to its uid; the
    // one handed to another team is now a conflict.
    let (desired, plan) = plan_now(&rt, &client, &target, &loaded.spec, &logins);
    assert_eq!(plan.conflicts.len(), 1, "{:?}", plan.conflicts);
    let report = rt.block_on(regops::cluster::write::run(
        &client,
        &plan,
        &regops::cluster::write::SecretData::of(&desired),
        &opts,
        &|_| {},
        &|| false,
    ));
    assert_eq!(report.failed(), 0, "{:?}", report.results);
    let adopted = server.object("secrets", "adopted", "legacy").unwrap();
    assert_eq!(adopted["type"], "kubernetes.io/dockerconfigjson");
    let delete = server
        .log()
        .into_iter()
        .find(|e| e.verb == "delete")
        .unwrap();
    assert!(
        delete.path.ends_with("/namespaces/adopted/secrets/legacy"),
        "{delete:?}"
    );
}
