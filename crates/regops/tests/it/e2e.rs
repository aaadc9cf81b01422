//! End to end: the real regops binary against the workspace's Kubernetes API test server,
//! through a kubeconfig, as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::path::{Path, PathBuf};

use common::{regops, run};
use kube_test_server::{Config, Policy, Rule, TestServer};
use serde_json::Value;

/// A test cluster: the server, its kubeconfig, and fixtures seeded from YAML.
struct Cluster {
    server: TestServer,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Cluster {
    fn start(config: Config) -> Cluster {
        let server = TestServer::start(config).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        Cluster {
            server,
            _dir: dir,
            kubeconfig,
        }
    }

    /// Seeds every document of a multi-document YAML fixture.
    fn seed(&self, fixture: &str) {
        common::seed_fixture(&self.server, fixture);
    }

    fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }
}

#[test]
fn fixtures_seed_a_realistic_cluster() {
    let c = Cluster::start(Config::default());
    c.seed("namespaces.yaml");
    c.seed("workloads.yaml");
    let ns = c.server.object("namespaces", "", "payments-api").unwrap();
    assert_eq!(
        ns["metadata"]["annotations"]["field.cattle.io/projectId"],
        "c-m-x7k2:p-9fz2q"
    );
    let sa = c
        .server
        .object("serviceaccounts", "web", "default")
        .unwrap();
    assert_eq!(
        sa["imagePullSecrets"][0]["name"], "legacy-pull",
        "the seeded default SA replaces the automatic one"
    );
    assert!(
        c.server
            .object("serviceaccounts", "analytics-prod", "default")
            .is_some(),
        "automatic default SA"
    );
    let d = c.server.object("deployments", "web", "frontend").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["initContainers"][0]["image"],
        "harbor.example.com/web/migrate:1.4"
    );
}

#[test]
fn cluster_info_connects_through_the_kubeconfig_over_tls() {
    let c = Cluster::start(Config {
        tls: true,
        ..Config::default()
    });
    c.seed("namespaces.yaml");
    c.server.clear_log();
    let r = run(regops()
        .arg("cluster-info")
        .arg("--kubeconfig")
        .arg(c.kubeconfig()));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        r.stdout
            .contains(&format!("server:     {}", c.server.url())),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("context:    kube-test-server"));
    assert!(
        r.stdout.contains("namespaces: 11"),
        "4 built in + 7 seeded: {}",
        r.stdout
    );
    let log = c.server.log();
    assert!(
        log.iter().any(|e| e.path == "/version" && e.status == 200),
        "{log:?}"
    );
    let lists: Vec<_> = log.iter().filter(|e| e.verb == "list").collect();
    assert_eq!(lists.len(), 1, "one paged LIST: {log:?}");
    assert!(lists[0].query.contains("limit=500"));
}

#[test]
fn cluster_info_pages_through_many_namespaces() {
    let c = Cluster::start(Config::default());
    for i in 0..1100 {
        c.server.seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{i:04}")}})).unwrap();
    }
    c.server.clear_log();
    let r = run(regops()
        .arg("cluster-info")
        .arg("--kubeconfig")
        .arg(c.kubeconfig()));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stdout.contains("namespaces: 1104"), "{}", r.stdout);
    let lists = c.server.log().iter().filter(|e| e.verb == "list").count();
    assert_eq!(lists, 3, "500 per page");
}

#[test]
fn cluster_errors_name_the_context_and_what_to_do() {
    let c = Cluster::start(Config::default());
    let r = run(regops()
        .arg("cluster-info")
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(["--context", "prod"]));
    assert_eq!(r.code, 1);
    assert!(
        r.flat_stderr().contains("context `prod` is not in")
            && r.flat_stderr()
                .contains("available contexts: kube-test-server"),
        "{}",
        r.stderr
    );

    let wrong = c.kubeconfig().with_file_name("wrong-token");
    std::fs::write(
        &wrong,
        c.server
            .kubeconfig()
            .replace("token: test-token", "token: nope"),
    )
    .unwrap();
    let r = run(regops().arg("cluster-info").arg("--kubeconfig").arg(&wrong));
    assert_eq!(r.code, 1);
    assert!(
        r.flat_stderr()
            .contains("refused the credentials (401 Unauthorized)")
            && r.flat_stderr().contains("context `kube-test-server`"),
        "{}",
        r.stderr
    );

    c.server.set_policy(Some(Policy {
        rules: vec![Rule::new(&["get"], &["namespaces"])],
    }));
    let r = run(regops()
        .arg("cluster-info")
        .arg("--kubeconfig")
        .arg(c.kubeconfig()));
    assert_eq!(r.code, 1);
    assert!(
        r.flat_stderr()
            .contains("denied `list` on namespaces at the cluster scope"),
        "{}",
        r.stderr
    );
    assert!(
        r.flat_stderr().contains("resources: [\"namespaces\"]")
            && r.flat_stderr().contains("verbs: [\"list\"]"),
        "the rule that would allow it: {}",
        r.stderr
    );

    // A kubeconfig whose server is gone.
    let url = c.server.url();
    let elsewhere = tempfile::tempdir().unwrap();
    let stale = elsewhere.path().join("kubeconfig");
    std::fs::copy(c.kubeconfig(), &stale).unwrap();
    drop(c);
    let r = run(regops().arg("cluster-info").arg("--kubeconfig").arg(&stale));
    assert_eq!(r.code, 1);
    assert!(
        r.flat_stderr()
            .contains(&format!("cannot reach the cluster at {url}")),
        "{}",
        r.stderr
    );
}

#[test]
fn a_missing_kubeconfig_is_named() {
    let r = run(regops()
        .arg("cluster-info")
        .arg("--kubeconfig")
        .arg("/nonexistent/kubeconfig"));
    assert_eq!(r.code, 1);
    assert!(
        r.flat_stderr()
            .contains("cannot read kubeconfig /nonexistent/kubeconfig: No such file or directory"),
        "{}",
        r.stderr
    );
}

const PLAN_SPEC: &str = "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: e2e }
registries:
  harbor: { server: harbor.example.com, credential: robot }
  quay: { server: quay.io, credential: quay }
credentials:
  robot: { username: robot$ci, password: { env: REGOPS_CRED_HARBOR_TOKEN } }
  quay: { username: bot, password: { env: REGOPS_CRED_QUAY_TOKEN } }
scopes:
  web:
    selector: { matchLabels: { team: web } }
    exclude: [web-sandbox]
  payments: { rancherProject: \"c-m-x7k2:p-9fz2q\" }
pullSecrets:
  harbor-pull: { registries: [harbor], scope: web }
  quay-pull: { registries: [quay], scope: web }
  payments-pull: { registries: [harbor], scope: payments }
bindings:
  - { pullSecret: harbor-pull, serviceAccounts: [default] }
  - { pullSecret: quay-pull, workloads: { kinds: [StatefulSet] } }
";

const REGOPS_CRED_HARBOR_TOKEN: &str = "MARKER-harbor-e2e-5d1f";

fn write_spec(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("regops.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn plan(c: &Cluster, spec: &Path, extra: &[&str]) -> common::Run {
    run(regops()
        .arg("plan")
        .arg("-f")
        .arg(spec)
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(extra)
        .env("REGOPS_CRED_HARBOR_TOKEN", REGOPS_CRED_HARBOR_TOKEN)
        .env("REGOPS_CRED_QUAY_TOKEN", "MARKER-quay-e2e-77aa"))
}

#[test]
fn plan_against_the_cluster_in_text_json_and_markdown() {
    let c = Cluster::start(Config::default());
    c.seed("namespaces.yaml");
    c.seed("workloads.yaml");
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), PLAN_SPEC);

    let text = plan(&c, &spec, &[]);
    assert_eq!(text.code, 2, "changes pending: {}", text.transcript());
    for expected in [
        "namespace api",
        "+ Secret harbor-pull  (harbor.example.com as robot$ci)",
        "+ Secret payments-pull",
        "~ ServiceAccount default",
        "        imagePullSecrets:\n            legacy-pull\n          + harbor-pull\n",
        "~ StatefulSet cache  (will roll its pods)",
        "Plan: 6 to create, 0 to update, 0 to replace, 3 to patch, 0 to delete.",
    ] {
        assert!(
            text.stdout.contains(expected),
            "missing `{expected}` in:\n{}",
            text.stdout
        );
    }
    assert!(
        !text.stdout.contains("web-sandbox") && !text.stdout.contains("cattle-system"),
        "{}",
        text.stdout
    );

    let json = plan(&c, &spec, &["--output", "json"]);
    assert_eq!(json.code, 2);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["formatVersion"], "1");
    assert_eq!(v["summary"]["create"], 6);
    assert!(
        v["target"]
            .as_str()
            .unwrap()
            .contains("context `kube-test-server`")
    );
    let first = &v["changes"][0];
    assert_eq!(
        (first["action"].as_str(), first["kind"].as_str()),
        (Some("create"), Some("Secret"))
    );

    let md = plan(&c, &spec, &["--output", "markdown"]);
    assert_eq!(md.code, 2);
    assert!(
        md.stdout.starts_with("### regops plan: `e2e`")
            && md
                .stdout
                .contains("| action | kind | namespace | name | details |"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout.contains("as robot$ci`"),
        "a user name with a dollar sign (math on GitHub) inside a code span: {}",
        md.stdout
    );

    for r in [&text, &json, &md] {
        assert!(
            !r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"),
            "a credential leaked:\n{}",
            r.transcript()
        );
    }
    // Reading is all plan does.
    assert!(
        c.server.log().iter().all(|e| !e.is_write()),
        "plan wrote: {:?}",
        c.server.log()
    );
}

#[test]
fn plan_is_clean_once_the_cluster_holds_what_render_shows() {
    let c = Cluster::start(Config::default());
    c.seed("namespaces.yaml");
    let dir = tempfile::tempdir().unwrap();
    let no_bindings = PLAN_SPEC.split("bindings:").next().unwrap();
    let spec = write_spec(dir.path(), no_bindings);
    let rendered = run(regops()
        .arg("render")
        .arg("-f")
        .arg(&spec)
        .args(["--show-secrets", "-n", "web,api,payments-api,payments-web"])
        .env("REGOPS_CRED_HARBOR_TOKEN", REGOPS_CRED_HARBOR_TOKEN)
        .env("REGOPS_CRED_QUAY_TOKEN", "MARKER-quay-e2e-77aa"));
    assert_eq!(rendered.code, 0, "{}", rendered.stderr);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&rendered.stdout).unwrap();
    for d in docs.into_iter().filter(|d| !d.is_null()) {
        // render takes --namespaces at its word; the cluster's scopes decide what plan wants.
        let ns = d["metadata"]["namespace"].as_str().unwrap().to_string();
        let name = d["metadata"]["name"].as_str().unwrap().to_string();
        let wanted = (name.starts_with("payments") && ns.starts_with("payments"))
            || (!name.starts_with("payments") && !ns.starts_with("payments"));
        if wanted {
            c.server.seed(d).unwrap();
        }
    }
    let r = plan(&c, &spec, &[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        r.stdout
            .contains("No changes. The cluster matches the spec (6 objects checked)."),
        "{}",
        r.stdout
    );
}

#[test]
fn plan_reports_conflicts_and_exits_1() {
    let c = Cluster::start(Config::default());
    c.seed("namespaces.yaml");
    c.server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "harbor-pull", "namespace": "web"},
                                  "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "e30="}}))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), PLAN_SPEC);
    let r = plan(&c, &spec, &["-n", "web"]);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(r.stdout.contains("! Secret web/harbor-pull: would overwrite a Secret owned by someone else; rename, or set `adopt: true`"), "{}", r.stdout);
}

/// The API requests plan makes do not grow with the number of namespaces: the same
/// cluster-wide LISTs for 10 namespaces as for 500, one request per page of 500 items, and
/// never a request per namespace or per object.
#[test]
fn plan_requests_do_not_grow_with_namespaces() {
    let requests = |namespaces: usize| -> Vec<(String, String, Option<String>)> {
        let c = Cluster::start(Config::default());
        for i in 0..namespaces {
            c.server.seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("team-{i:03}"), "labels": {"team": "web"}}})).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let spec = write_spec(dir.path(), PLAN_SPEC);
        c.server.clear_log();
        let r = plan(&c, &spec, &[]);
        assert_eq!(r.code, 2, "{}", r.transcript());
        assert!(
            r.stdout
                .contains(&format!("Plan: {} to create", namespaces * 2)),
            "{}",
            r.stdout
        );
        c.server
            .log()
            .iter()
            .filter(|e| !e.verb.is_empty())
            .map(|e| (e.verb.clone(), e.resource.clone(), e.namespace.clone()))
            .collect()
    };
    let per_kind =
        |log: &[(String, String, Option<String>)]| -> std::collections::BTreeMap<String, usize> {
            let mut m = std::collections::BTreeMap::new();
            for (verb, resource, namespace) in log {
                assert_eq!(verb, "list", "plan only lists: {log:?}");
                assert!(namespace.is_none(), "a request per namespace: {log:?}");
                *m.entry(resource.clone()).or_insert(0) += 1;
            }
            m
        };
    let small = per_kind(&requests(10));
    let large = per_kind(&requests(500));
    assert_eq!(
        small.keys().collect::<Vec<_>>(),
        large.keys().collect::<Vec<_>>(),
        "the same kinds of request"
    );
    // 4 built-in namespaces + N: namespaces and ServiceAccounts take one page under 500 items
    // and two over it; Secrets and StatefulSets (none here) one LIST each per query.
    // The other workload kinds (ReplicaSets too, which no binding names here): only objects
    // carrying this spec's marker label, one LIST each.
    let expected_small = [
        ("cronjobs", 1),
        ("daemonsets", 1),
        ("deployments", 1),
        ("jobs", 1),
        ("namespaces", 1),
        ("replicasets", 1),
        ("secrets", 4),
        ("serviceaccounts", 1),
        ("statefulsets", 1),
    ];
    let expected_large = [
        ("cronjobs", 1),
        ("daemonsets", 1),
        ("deployments", 1),
        ("jobs", 1),
        ("namespaces", 2),
        ("replicasets", 1),
        ("secrets", 4),
        ("serviceaccounts", 2),
        ("statefulsets", 1),
    ];
    assert_eq!(
        small,
        expected_small
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    );
    assert_eq!(
        large,
        expected_large
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    );
}

#[test]
fn plan_against_a_state_file_needs_no_cluster() {
    let root = common::repo();
    let r = run(regops().current_dir(&root).args([
        "plan",
        "-f",
        "examples/quickstart/regops.yaml",
        "-i",
        "examples/quickstart/example-key.txt",
        "--live-state",
        "examples/quickstart/state.yaml",
    ]));
    assert_eq!(r.code, 2, "{}", r.transcript());
    assert!(
        r.stdout
            .contains("Plan: 2 to create, 0 to update, 0 to replace, 2 to patch, 0 to delete."),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("EXAMPLE-"),
        "a credential leaked: {}",
        r.stdout
    );
}

#[test]
fn plan_names_the_denied_request_and_the_rule_that_would_allow_it() {
    let c = Cluster::start(Config::default());
    c.seed("namespaces.yaml");
    c.server.set_policy(Some(Policy {
        rules: vec![Rule::new(&["list"], &["namespaces"])],
    }));
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), PLAN_SPEC);
    let r = plan(&c, &spec, &[]);
    assert_eq!(r.code, 1);
    let err = r.flat_stderr();
    assert!(
        err.contains("denied `list` on secrets at the cluster scope"),
        "{err}"
    );
    assert!(
        err.contains("apiGroups: [\"\"] resources: [\"secrets\"] verbs: [\"list\"]"),
        "{err}"
    );
    assert!(r.stdout.is_empty(), "no partial plan on stdout");
}

/// In a pod, with no kubeconfig, regops uses the service account: the API server from
/// KUBERNETES_SERVICE_HOST/PORT, the token and CA from the mounted files. Those files have a
/// fixed path, so this test writes them there (as root, only where no real ones exist) and
/// removes them afterwards.
#[test]
fn in_cluster_configuration_is_used_without_a_kubeconfig() {
    let dir = Path::new("/var/run/secrets/kubernetes.io/serviceaccount");
    let r = run(regops().arg("cluster-info"));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr()
            .contains("no kubeconfig found and not running in a cluster"),
        "{}",
        r.stderr
    );
    let secrets = Path::new("/var/run/secrets");
    let created = if secrets.exists() {
        Path::new("/var/run/secrets/kubernetes.io")
    } else {
        secrets
    };
    if created.exists() || std::fs::create_dir_all(dir).is_err() {
        return; // a real pod, or not root: the files cannot be ours
    }
    let c = Cluster::start(Config {
        tls: true,
        ..Config::default()
    });
    std::fs::write(dir.join("token"), c.server.token().unwrap()).unwrap();
    std::fs::write(dir.join("ca.crt"), c.server.ca_pem().unwrap()).unwrap();
    std::fs::write(dir.join("namespace"), "regops").unwrap();
    let r = run(regops()
        .arg("cluster-info")
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env(
            "KUBERNETES_SERVICE_PORT",
            c.server.addr().port().to_string(),
        ));
    let _ = std::fs::remove_dir_all(created);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        r.stdout.contains("context:    (in-cluster)") && r.stdout.contains("namespaces: 4"),
        "{}",
        r.stdout
    );
}

/// `-n` with a few namespaces reads only those namespaces (namespaced LISTs, a few per
/// namespace), and plans exactly what a read of the whole cluster, filtered to them, plans.
#[test]
fn plan_for_a_few_namespaces_reads_only_those() {
    let c = Cluster::start(Config::default());
    c.seed("namespaces.yaml");
    c.seed("workloads.yaml");
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), PLAN_SPEC);
    c.server.clear_log();
    let scoped = plan(&c, &spec, &["-n", "web", "-n", "api"]);
    assert_eq!(scoped.code, 2, "{}", scoped.transcript());
    let log = c.server.log();
    assert!(!log.is_empty());
    for e in &log {
        assert_eq!(e.verb, "list", "{e:?}");
        // Namespaces by name; everything else inside `web` or `api`.
        if e.resource == "namespaces" {
            assert!(
                e.query.contains("metadata.name%3Dweb") || e.query.contains("metadata.name%3Dapi"),
                "{e:?}"
            );
        } else {
            assert!(
                matches!(e.namespace.as_deref(), Some("web" | "api")),
                "a LIST outside the namespaces asked for: {e:?}"
            );
        }
    }
    // The same plan as from the whole cluster: a state file of everything, filtered by `-n`.
    let mut everything = Vec::new();
    for plural in [
        "namespaces",
        "secrets",
        "serviceaccounts",
        "deployments",
        "statefulsets",
        "daemonsets",
        "jobs",
        "cronjobs",
    ] {
        everything.extend(c.server.objects(plural));
    }
    let state = dir.path().join("state.json");
    std::fs::write(
        &state,
        serde_json::to_vec(
            &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": everything}),
        )
        .unwrap(),
    )
    .unwrap();
    let whole = run(regops()
        .env("REGOPS_CRED_HARBOR_TOKEN", REGOPS_CRED_HARBOR_TOKEN)
        .env("REGOPS_CRED_QUAY_TOKEN", "MARKER-quay-e2e-77aa")
        .args(["plan", "-f"])
        .arg(&spec)
        .args(["-n", "web", "-n", "api", "--live-state"])
        .arg(&state));
    assert_eq!(whole.code, 2, "{}", whole.transcript());
    let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&scoped.stdout), body(&whole.stdout));
}

/// `-n` naming a namespace the cluster does not have, or one no scope selects (issue 37), is
/// warned of by plan and by drift, in text and in JSON (drift's `warnings`); one a scope
/// selects is not. Nothing pending: both still exit 0.
#[test]
fn namespaces_given_with_n_that_nothing_is_planned_for_are_warned_of() {
    let c = Cluster::start(Config::default());
    c.seed("namespaces.yaml");
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), PLAN_SPEC);
    let drift = |extra: &[&str]| {
        run(regops()
            .arg("drift")
            .arg("-f")
            .arg(&spec)
            .arg("--kubeconfig")
            .arg(c.kubeconfig())
            .args(extra)
            .env("REGOPS_CRED_HARBOR_TOKEN", REGOPS_CRED_HARBOR_TOKEN)
            .env("REGOPS_CRED_QUAY_TOKEN", "MARKER-quay-e2e-77aa"))
    };
    for (ns, says) in [
        ("ghost", "does not exist"),
        ("web-sandbox", "selected by no scope"),
    ] {
        let warned = |text: &str| text.contains(ns) && text.contains(says);
        for r in [plan(&c, &spec, &["-n", ns]), drift(&["-n", ns])] {
            assert_eq!(r.code, 0, "{}", r.transcript());
            assert!(r.stdout.lines().any(warned), "{}", r.transcript());
        }
        let json = plan(&c, &spec, &["-n", ns, "--output", "json"]);
        assert_eq!(json.code, 0, "{}", json.transcript());
        let v: Value = serde_json::from_str(&json.stdout).unwrap();
        assert!(
            v["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| warned(w.as_str().unwrap())),
            "{}",
            json.stdout
        );
        let json = drift(&["-n", ns, "--output", "json"]);
        assert_eq!(json.code, 0, "{}", json.transcript());
        let v: Value = serde_json::from_str(&json.stdout).unwrap();
        assert_eq!(v["inSync"], true);
        assert!(
            v["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| warned(w.as_str().unwrap())),
            "{}",
            json.stdout
        );
    }
    let selected = drift(&["-n", "web", "--output", "json"]);
    let v: Value = serde_json::from_str(&selected.stdout).unwrap();
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| !w.as_str().unwrap().contains("given with `-n`")),
        "{}",
        selected.stdout
    );
    assert!(v["checked"].as_u64().unwrap() > 0, "{}", selected.stdout);
}
