//! A fleet: one spec, three clusters (three test servers in this process), planned, applied
//! and checked for drift in one run with one report.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::{regops, run};
use kube_test_server::{Config, Fault, FaultAction, LogEntry, Policy, Rule, TestServer};
use serde_json::{Value, json};

const PASSWORD: &str = "fleet-password-MARKER";

const SPEC: &str = r#"
apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: fleet }
registries:
  harbor: { server: harbor.example.com, credential: robot }
credentials:
  robot: { username: "robot$ci", password: { env: REGOPS_CRED_HARBOR_PASSWORD } }
clusters:
  eu:
    kubeconfig: kubeconfig-eu
    labels: { env: prod, region: eu }
    rancherId: c-m-eu
  us:
    kubeconfig: kubeconfig-us
    labels: { env: prod, region: us }
    rancherId: c-m-us
  staging:
    kubeconfig: kubeconfig-staging
    labels: { env: staging }
scopes:
  everywhere: { namespaces: [web] }
  prod: { namespaces: [api], clusters: { matchLabels: { env: prod } } }
  batch: { namespaces: [batch], clusters: { names: [staging] } }
  eu-apps: { rancherProject: "c-m-eu:p-apps" }
pullSecrets:
  pull-all: { registries: [harbor], scope: everywhere }
  pull-prod: { registries: [harbor], scope: prod }
  pull-batch: { registries: [harbor], scope: batch }
  pull-apps: { registries: [harbor], scope: eu-apps }
bindings:
  - { pullSecret: pull-prod, serviceAccounts: [default] }
"#;

const NAMES: [&str; 3] = ["eu", "us", "staging"];

/// Three clusters, each with the same namespaces (`apps` is in Rancher project
/// `c-m-eu:p-apps` on all three, so only the pin keeps its Secret off `us` and `staging`), a
/// kubeconfig each beside the spec, and one kubeconfig holding all three contexts.
struct Fleet {
    servers: Vec<TestServer>,
    dir: tempfile::TempDir,
    spec: PathBuf,
}

impl Fleet {
    fn start(configs: [Config; 3]) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        // TLS: a spec's kubeconfig may not name a plain-HTTP server.
        let servers: Vec<TestServer> = configs
            .into_iter()
            .map(|c| TestServer::start(Config { tls: true, ..c }).unwrap())
            .collect();
        let mut merged = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
        for (name, s) in NAMES.iter().zip(&servers) {
            // Its context is named after the cluster, the default a cluster entry reaches.
            std::fs::write(
                dir.path().join(format!("kubeconfig-{name}")),
                s.kubeconfig().replace("kube-test-server", name),
            )
            .unwrap();
            let ca = s
                .kubeconfig()
                .lines()
                .find(|l| l.trim_start().starts_with("certificate-authority-data:"))
                .map(|l| format!("{}\n", l.trim_start()))
                .unwrap_or_default();
            merged.push_str(&format!(
                "- name: {name}\n  cluster:\n    server: {}\n    {ca}",
                s.url()
            ));
        }
        merged.push_str("contexts:\n");
        for name in NAMES {
            merged.push_str(&format!(
                "- name: {name}\n  context:\n    cluster: {name}\n    user: test-user\n"
            ));
        }
        merged.push_str("users:\n- name: test-user\n  user:\n    token: test-token\n");
        std::fs::write(dir.path().join("merged"), merged).unwrap();
        for s in &servers {
            for ns in ["web", "api", "batch"] {
                s.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                    .unwrap();
            }
            s.seed(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps",
                "annotations": {"field.cattle.io/projectId": "c-m-eu:p-apps"}}}),
            )
            .unwrap();
            s.clear_log();
        }
        let spec = dir.path().join("fleet.yaml");
        std::fs::write(&spec, SPEC).unwrap();
        Fleet { servers, dir, spec }
    }

    /// Three healthy clusters; `eu` is a Rancher downstream cluster, reached through Rancher's
    /// proxy path (`/k8s/clusters/c-m-eu` in its kubeconfig's server URL).
    fn healthy() -> Fleet {
        let rancher = Config {
            path_prefix: Some("/k8s/clusters/c-m-eu".into()),
            ..Config::default()
        };
        Fleet::start([rancher, Config::default(), Config::default()])
    }

    fn server(&self, name: &str) -> &TestServer {
        &self.servers[NAMES.iter().position(|n| *n == name).unwrap()]
    }

    /// Runs regops on the fleet's spec; the password never shows, whatever the output.
    fn regops(&self, args: &[&str]) -> common::Run {
        let r = run(regops()
            .env("REGOPS_CRED_HARBOR_PASSWORD", PASSWORD)
            .arg(args[0])
            .arg("-f")
            .arg(&self.spec)
            .args(&args[1..]));
        assert!(
            !r.stdout.contains(PASSWORD) && !r.stderr.contains(PASSWORD),
            "{}",
            r.transcript()
        );
        r
    }

    /// The Secrets regops owns on a cluster, as `namespace/name`.
    fn secrets(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .server(name)
            .objects("secrets")
            .iter()
            .filter(|s| s["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "regops")
            .map(|s| {
                format!(
                    "{}/{}",
                    s["metadata"]["namespace"].as_str().unwrap(),
                    s["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        out.sort();
        out
    }

    fn kubeconfig(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn writes(log: &[LogEntry]) -> Vec<String> {
    log.iter()
        .filter(|e| e.is_write() && e.resource != "leases")
        .map(|e| format!("{} {} {}", e.method, e.path, e.status))
        .collect()
}

#[test]
fn scopes_go_to_the_clusters_they_select_and_a_second_apply_writes_nothing() {
    let f = Fleet::healthy();
    let merged = f.kubeconfig("merged");
    let merged = merged.to_str().unwrap();
    let plan = f.regops(&["plan", "--kubeconfig", merged]);
    assert_eq!(plan.code, 2, "changes pending: {}", plan.transcript());
    for name in NAMES {
        assert!(
            plan.stdout.contains(&format!("=== cluster {name} ===")),
            "{}",
            plan.stdout
        );
    }
    assert!(
        plan.stdout.contains("/k8s/clusters/c-m-eu (context `eu`)"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Fleet plan: spec `fleet` on 3 clusters"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("Total: 7 to create, 0 to update, 0 to replace, 2 to patch, 0 to delete on 3 of 3 clusters."),
        "{}",
        plan.stdout
    );
    let apply = f.regops(&["apply", "--yes", "--kubeconfig", merged]);
    assert_eq!(apply.code, 0, "{}", apply.transcript());
    // By label (`prod`), by name (`batch`), everywhere (`web`), and the Rancher project only
    // on its own cluster though `apps` carries its annotation on all three.
    assert_eq!(
        f.secrets("eu"),
        ["api/pull-prod", "apps/pull-apps", "web/pull-all"]
    );
    assert_eq!(f.secrets("us"), ["api/pull-prod", "web/pull-all"]);
    assert_eq!(f.secrets("staging"), ["batch/pull-batch", "web/pull-all"]);
    for (name, bound) in [("eu", true), ("us", true), ("staging", false)] {
        let sa = f
            .server(name)
            .object("serviceaccounts", "api", "default")
            .unwrap();
        assert_eq!(
            sa["imagePullSecrets"]
                .as_array()
                .is_some_and(|l| l.iter().any(|e| e["name"] == "pull-prod")),
            bound,
            "{name}: {sa}"
        );
    }
    // Each cluster had its own Lease, taken and released there.
    for name in NAMES {
        let log = f.server(name).log();
        assert!(
            log.iter()
                .any(|e| e.resource == "leases" && e.verb == "create"),
            "{name}: no Lease taken"
        );
    }
    // Idempotence across the fleet: the second apply sends no write to any cluster, not
    // even a Lease (a cluster that matches the spec is read, found so, and left alone).
    for s in &f.servers {
        s.clear_log();
    }
    let again = f.regops(&["apply", "--yes", "--kubeconfig", merged]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    for name in NAMES {
        assert_eq!(
            writes(&f.server(name).log()),
            Vec::<String>::new(),
            "{name}"
        );
        assert!(
            f.server(name).log().iter().any(|e| e.verb == "list"),
            "{name} was read"
        );
    }
    let plan = f.regops(&["plan", "--kubeconfig", merged]);
    assert_eq!(plan.code, 0, "{}", plan.transcript());
    assert!(
        plan.stdout.contains("  staging  no changes ("),
        "{}",
        plan.stdout
    );
}

/// A cluster whose read under its Lease fails (after a first read found changes) releases the
/// Lease and writes nothing; the other clusters are applied.
#[test]
fn a_cluster_that_fails_under_its_lease_releases_it() {
    let f = Fleet::healthy();
    // The second LIST of namespaces on `staging` (the one under the Lease) is refused.
    f.server("staging").add_fault(
        Fault::status(403)
            .verb("list")
            .resource("namespaces")
            .nth(2),
    );
    let apply = f.regops(&["apply", "--yes"]);
    assert_eq!(apply.code, 1, "{}", apply.transcript());
    let log = f.server("staging").log();
    let done: Vec<String> = log
        .iter()
        .filter(|e| e.is_write() || e.resource == "leases")
        .map(|e| format!("{} {}", e.verb, e.resource))
        .collect();
    assert_eq!(
        done,
        ["get leases", "create leases", "get leases", "delete leases"]
    );
    assert!(f.secrets("staging").is_empty());
    assert_eq!(f.secrets("us"), ["api/pull-prod", "web/pull-all"]);
}

#[test]
fn cluster_narrows_the_run_and_json_is_the_versioned_fleet_plan() {
    let f = Fleet::healthy();
    let plan = f.regops(&["plan", "--cluster", "staging", "--output", "json"]);
    assert_eq!(plan.code, 2, "{}", plan.transcript());
    assert!(f.server("eu").log().is_empty() && f.server("us").log().is_empty());
    assert!(!f.server("staging").log().is_empty());
    let v: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(v["formatVersion"], "2");
    assert_eq!(v["clusters"].as_array().unwrap().len(), 1);
    assert_eq!(v["clusters"][0]["cluster"], "staging");
    assert_eq!(v["summary"]["create"], 2);
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("schemas/fleet-plan.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = schema_check::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&v));
    // Markdown, for the pull-request comment: the table of clusters.
    let md = f.regops(&[
        "plan",
        "--cluster",
        "eu",
        "--cluster",
        "us",
        "--output",
        "markdown",
    ]);
    assert_eq!(md.code, 2, "{}", md.transcript());
    assert!(
        md.stdout.contains("### regops plan: `fleet` on 2 clusters"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout
            .contains("| `eu` | 3 | 0 | 0 | 1 | 0 | 0 | changes |"),
        "{}",
        md.stdout
    );
    // render: one cluster's manifests, ready for kubectl.
    let r = f.regops(&["render", "--cluster", "us"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        r.stdout.starts_with("# cluster: us (context `us`)\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("name: \"pull-all\"") && !r.stdout.contains("pull-batch"),
        "{}",
        r.stdout
    );
    // Mistakes are refused before anything is read.
    let unknown = f.regops(&["plan", "--cluster", "asia"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown
            .flat_stderr()
            .contains("the spec's clusters: eu, staging, us"),
        "{}",
        unknown.stderr
    );
    let context = f.regops(&["plan", "--context", "eu"]);
    assert_eq!(context.code, 1);
    assert!(
        context
            .flat_stderr()
            .contains("--context eu: the spec lists its clusters"),
        "{}",
        context.stderr
    );
    let watch = f.regops(&["apply", "--watch"]);
    assert_eq!(watch.code, 1);
    assert!(
        watch.flat_stderr().contains("--watch works on one cluster"),
        "{}",
        watch.stderr
    );
    for s in &f.servers {
        assert!(writes(&s.log()).is_empty());
    }
}

#[test]
fn a_cluster_down_and_one_refusing_are_reported_while_the_third_is_applied() {
    // `us` may take its Lease but read nothing: a 403 on the first LIST.
    let lease_only = Policy {
        rules: vec![Rule {
            verbs: ["get", "create", "update", "patch", "delete"]
                .map(String::from)
                .to_vec(),
            resources: vec!["leases".into()],
        }],
    };
    let f = Fleet::start([
        Config::default(),
        Config {
            policy: Some(lease_only),
            ..Config::default()
        },
        Config::default(),
    ]);
    // `eu` is down: its server stops, its port is closed. It has never answered, so each run
    // gives up on it after `--connect-timeout` (1 s here; 5 s by default).
    let mut servers = f.servers;
    let eu = servers.remove(0);
    drop(eu);
    let f = Fleet {
        servers: {
            // Keep positions: a stand-in for `eu` that nothing reaches.
            let mut v = vec![TestServer::start(Config::default()).unwrap()];
            v.extend(servers);
            v
        },
        ..f
    };
    let apply = f.regops(&[
        "apply",
        "--yes",
        "--request-timeout",
        "2s",
        "--connect-timeout",
        "1s",
        "-v",
    ]);
    assert_eq!(apply.code, 1, "{}", apply.transcript());
    // `eu` is given up on after its --connect-timeout, though `staging` answered at once: each
    // cluster's "never reached" is its own. The waits before attempts 2 to 5 add up to more
    // than 1 s (100, 200, 400 and 800 ms at the least, `retry.rs`), so a fifth attempt means
    // the budget was not applied (all eight were made, over about 10 s, before).
    assert!(
        apply.stderr.contains("retrying in") && !apply.stderr.contains("(attempt 5/8)"),
        "{}",
        apply.stderr
    );
    assert!(f.server("eu").log().is_empty());
    assert_eq!(f.secrets("staging"), ["batch/pull-batch", "web/pull-all"]);
    assert!(f.secrets("us").is_empty());
    let out = apply.stdout.replace('\n', " ");
    assert!(
        out.contains("eu       FAILED: cannot reach the cluster"),
        "{}",
        apply.stdout
    );
    assert!(
        out.contains("us       FAILED: the cluster at"),
        "{}",
        apply.stdout
    );
    assert!(
        out.contains("denied `list` on namespaces"),
        "{}",
        apply.stdout
    );
    assert!(
        out.contains("staging  2 applied, 0 failed, 0 skipped"),
        "{}",
        apply.stdout
    );
    // The help that comes with a 403: the rule to add.
    assert!(
        out.contains("help: a Role or ClusterRole rule that allows it:"),
        "{}",
        apply.stdout
    );
    // `us` refused the first read: nothing was written there, not even a Lease.
    assert!(
        f.server("us").log().iter().all(|e| !e.is_write()),
        "{:?}",
        f.server("us")
            .log()
            .iter()
            .map(|e| format!("{} {}", e.verb, e.resource))
            .collect::<Vec<_>>()
    );
    // Drift and its metrics file: every series labelled with its cluster.
    let metrics = f.dir.path().join("regops.prom");
    let drift = f.regops(&[
        "drift",
        "--metrics-file",
        metrics.to_str().unwrap(),
        "--request-timeout",
        "2s",
        "--connect-timeout",
        "1s",
    ]);
    assert_eq!(drift.code, 1, "{}", drift.transcript());
    let m = std::fs::read_to_string(&metrics).unwrap();
    for line in m.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains(",cluster=\""), "{line}");
    }
    assert!(
        m.contains("regops_run_success{spec=\"fleet\",cluster=\"eu\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("regops_run_success{spec=\"fleet\",cluster=\"us\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("regops_run_success{spec=\"fleet\",cluster=\"staging\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("regops_drift_objects{spec=\"fleet\",cluster=\"staging\"} 0"),
        "{m}"
    );
    let plan = f.regops(&[
        "plan",
        "--output",
        "json",
        "--request-timeout",
        "2s",
        "--connect-timeout",
        "1s",
    ]);
    assert_eq!(plan.code, 1);
    let v: Value = serde_json::from_str(&plan.stdout).unwrap();
    let status: Vec<&str> = v["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        status,
        ["failed", "ok", "failed"],
        "eu, staging, us in name order: {v}"
    );
    // An expired kubeconfig token: 401, said as such, for that cluster.
    let kc = f.dir.path().join("kubeconfig-staging");
    let text = std::fs::read_to_string(&kc).unwrap();
    std::fs::write(&kc, text.replace("token: test-token", "token: expired")).unwrap();
    let plan = f.regops(&["plan", "--cluster", "staging"]);
    assert_eq!(plan.code, 1, "{}", plan.transcript());
    assert!(
        plan.stdout.contains("staging  FAILED: the cluster at")
            && plan
                .stdout
                .contains("refused the credentials (401 Unauthorized)"),
        "{}",
        plan.stdout
    );
}

/// Requests to two different servers that were in flight at the same time.
fn overlapping_pairs(f: &Fleet) -> usize {
    let logs: Vec<Vec<LogEntry>> = f.servers.iter().map(TestServer::log).collect();
    let mut n = 0;
    for (i, a) in logs.iter().enumerate() {
        for b in &logs[i + 1..] {
            n += a
                .iter()
                .map(|x| b.iter().filter(|y| x.overlaps(y)).count())
                .sum::<usize>();
        }
    }
    n
}

#[test]
fn clusters_are_worked_on_at_once_within_the_bound() {
    let f = Fleet::healthy();
    for s in &f.servers {
        s.add_fault(Fault::new(FaultAction::Latency(Duration::from_millis(150))).verb("list"));
    }
    // One at a time: no two servers ever have a request in flight together.
    let one = f.regops(&["plan", "--cluster-concurrency", "1"]);
    assert_eq!(one.code, 2, "{}", one.transcript());
    assert_eq!(overlapping_pairs(&f), 0);
    for s in &f.servers {
        assert!(!s.log().is_empty());
        s.clear_log();
    }
    // All at once: every pair of servers had requests in flight together.
    let all = f.regops(&["plan", "--cluster-concurrency", "3"]);
    assert_eq!(all.code, 2, "{}", all.transcript());
    assert_eq!(all.stdout, one.stdout, "the same report either way");
    let logs: Vec<Vec<LogEntry>> = f.servers.iter().map(TestServer::log).collect();
    for (i, j) in [(0, 1), (0, 2), (1, 2)] {
        assert!(
            logs[i]
                .iter()
                .any(|a| logs[j].iter().any(|b| a.overlaps(b))),
            "{} and {} never overlapped",
            NAMES[i],
            NAMES[j]
        );
    }
    assert!(overlapping_pairs(&f) > 0);
}

#[test]
fn a_controller_works_on_one_cluster_of_the_fleet() {
    let f = Fleet::healthy();
    let port = common::listen_port();
    let mut child = regops()
        .env("REGOPS_CRED_HARBOR_PASSWORD", PASSWORD)
        .args(["apply", "-f"])
        .arg(&f.spec)
        .args([
            "--watch",
            "--cluster",
            "staging",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut metrics = String::new();
    while std::time::Instant::now() < deadline {
        let (code, body) = regops_bench::http_get(port, "/metrics");
        if code == 200 && body.contains("regops_ready{spec=\"fleet\",cluster=\"staging\"} 1") {
            metrics = body;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    assert!(!metrics.is_empty(), "the controller never became ready");
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains("cluster=\"staging\""), "{line}");
    }
    assert_eq!(f.secrets("staging"), ["batch/pull-batch", "web/pull-all"]);
    assert!(f.server("eu").log().is_empty() && f.server("us").log().is_empty());
}
