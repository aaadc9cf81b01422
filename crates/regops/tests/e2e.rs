//! End to end: the real regops binary against the workspace's Kubernetes API test server,
//! through a kubeconfig, as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

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
        let text =
            std::fs::read_to_string(common::fixtures().join("cluster").join(fixture)).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for doc in docs {
            self.server
                .seed(doc.clone())
                .unwrap_or_else(|e| panic!("seeding {doc}: {e}"));
        }
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
