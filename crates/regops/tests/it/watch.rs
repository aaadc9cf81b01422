//! `regops apply --watch` end to end: the real binary as a long-running process against the
//! test server, reached through a kubeconfig, with its probes and metrics over HTTP.
//!
//! Each test waits for what it checks with a deadline of several seconds (the behaviour is a
//! reaction, not a timing: latency is measured in the `watch` benchmark, not here).

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube_test_server::{Fault, FaultAction, TestServer};
use serde_json::{Value, json};

const SPEC: &str = "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: e2e }
registries:
  harbor: { server: harbor.example.com, credential: robot }
credentials:
  robot: { username: robot$ci, password: { env: REGOPS_CRED_HARBOR_TOKEN } }
scopes:
  web: { selector: { matchLabels: { team: web } }, exclude: [web-sandbox] }
pullSecrets:
  harbor-pull: { registries: [harbor], scope: web }
bindings:
  - { pullSecret: harbor-pull, serviceAccounts: [default] }
  - { pullSecret: harbor-pull, workloads: { kinds: [Deployment] } }
";

struct Env {
    /// Held while the test runs: no build or pod of the heavy tests runs beside a test whose
    /// leases and timings are measured in seconds (`common::timing`).
    _timing: std::sync::RwLockReadGuard<'static, ()>,
    server: TestServer,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    spec: PathBuf,
}

impl Env {
    fn new() -> Env {
        Env::from(common::Cluster::new(SPEC))
    }

    /// Over TLS, for kubectl (`common::install`).
    fn new_tls() -> Env {
        Env::from(common::Cluster::new_tls(SPEC))
    }

    fn from(cluster: common::Cluster) -> Env {
        let common::Cluster {
            server,
            dir,
            kubeconfig,
            spec,
        } = cluster;
        for name in ["namespaces.yaml", "workloads.yaml"] {
            common::seed_fixture(&server, name);
        }
        Env {
            _timing: common::timing(),
            server,
            dir,
            kubeconfig,
            spec,
        }
    }

    /// Waits until the server has had no request (but the Lease's) for 300 ms: regops' own
    /// writes come back as events, and cost one more read of their namespace (no write).
    fn settle(&self) {
        let count = || {
            self.server
                .log()
                .iter()
                .filter(|l| l.resource != "leases")
                .count()
        };
        let mut last = (count(), Instant::now());
        wait_for("the server to settle", Duration::from_secs(15), || {
            let n = count();
            if n != last.0 {
                last = (n, Instant::now());
            }
            last.1.elapsed() >= Duration::from_millis(300)
        });
    }

    fn create_namespace(&self, name: &str, labels: Value) {
        let (code, body) = self
            .server
            .request(
                "POST",
                "/api/v1/namespaces",
                "application/json",
                Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})),
            )
            .unwrap();
        assert_eq!(code, 201, "{body}");
    }

    fn secret(&self, ns: &str) -> Option<Value> {
        self.server.object("secrets", ns, "harbor-pull")
    }

    fn sa_entries(&self, ns: &str) -> Vec<String> {
        self.server
            .object("serviceaccounts", ns, "default")
            .and_then(|o| o["imagePullSecrets"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect()
    }

    fn start(&self, extra: &[&str]) -> Controller {
        self.start_with(&self.spec, extra)
    }

    fn start_with(&self, spec: &std::path::Path, extra: &[&str]) -> Controller {
        let mut args: Vec<String> = vec!["apply".into(), "--watch".into(), "-f".into()];
        args.push(spec.display().to_string());
        args.extend(["--listen".into(), "127.0.0.1:{port}".into()]);
        args.extend(["--spec-poll".into(), "200ms".into()]);
        args.extend(extra.iter().map(|a| a.to_string()));
        self.run(&args)
    }

    /// Runs regops with `args` (where `{port}` is the listener's port) and the kubeconfig.
    fn run(&self, args: &[String]) -> Controller {
        let port = common::listen_port();
        let mut cmd = common::regops();
        cmd.args(args.iter().map(|a| a.replace("{port}", &port.to_string())))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env("REGOPS_CRED_HARBOR_TOKEN", "MARKER-watch-token")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Controller { child, lines, port }
    }
}

struct Controller {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    port: u16,
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

impl Controller {
    fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn wait_log(&self, needle: &str) {
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            if self.log().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no `{needle}` in the log:\n{}", self.log());
    }

    /// A GET on the listener: status and body.
    fn get(&self, path: &str) -> (u16, String) {
        regops_bench::http_get(self.port, path)
    }

    fn wait_ready(&self) {
        wait_for("/readyz", Duration::from_secs(15), || {
            self.get("/readyz").0 == 200
        });
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    fn wait_exit(&mut self) -> i32 {
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("did not exit:\n{}", self.log());
    }

    fn assert_no_leak(&self) {
        assert!(
            !self.log().contains("MARKER"),
            "a credential leaked:\n{}",
            self.log()
        );
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_new_namespace_is_covered_at_once_through_its_own_reads_and_an_idle_watch_costs_nothing() {
    let e = Env::new();
    let c = e.start(&[]);
    // A standby-free start: the Lease, the first full apply, then ready.
    c.wait_ready();
    assert!(e.secret("web").is_some() && e.secret("api").is_some());
    assert!(e.secret("web-sandbox").is_none(), "excluded");
    e.settle();
    e.server.clear_log();
    e.create_namespace("team-new", json!({"team": "web"}));
    wait_for(
        "the Secret, the binding and the Event",
        Duration::from_secs(10),
        || {
            e.secret("team-new").is_some()
                && e.sa_entries("team-new") == ["harbor-pull"]
                && e.server.log().iter().any(|l| {
                    l.verb == "create"
                        && l.resource == "events"
                        && l.namespace.as_deref() == Some("team-new")
                })
        },
    );
    // The fast path: every read after the create is inside the new namespace (or its
    // namespace by name); nothing was listed across the cluster.
    let log = e.server.log();
    for entry in log.iter().filter(|l| l.verb == "list") {
        let inside = entry.namespace.as_deref() == Some("team-new")
            || (entry.resource == "namespaces" && entry.query.contains("metadata.name%3Dteam-new"));
        assert!(inside, "a read outside the namespace: {entry:?}");
    }
    let writes: Vec<String> = log
        .iter()
        .filter(|l| l.is_write() && l.resource != "leases" && l.resource != "namespaces")
        .map(|l| {
            format!(
                "{} {} {}",
                l.verb,
                l.resource,
                l.namespace.clone().unwrap_or_default()
            )
        })
        .collect();
    // The Secret, the binding, and the Event recording the Secret's creation.
    assert_eq!(
        writes,
        [
            "patch secrets team-new",
            "patch serviceaccounts team-new",
            "create events team-new"
        ]
    );
    // Out of scope: looked at, and nothing written.
    e.create_namespace("elsewhere", json!({"team": "data"}));
    wait_for("a pass over `elsewhere`", Duration::from_secs(10), || {
        e.server.log().iter().any(|l| {
            l.verb == "list"
                && l.namespace.as_deref() == Some("elsewhere")
                && l.resource == "deployments"
        })
    });
    assert!(e.secret("elsewhere").is_none());
    // Idle: no request but the Lease's renewal (the watches stay open, bookmarks come on
    // them).
    e.settle();
    e.server.clear_log();
    // The window is the controller's own: until it has renewed the Lease (every --retry-period,
    // 2 s) twice, so its timers have fired and its loop has turned, not a fixed sleep.
    wait_for("two Lease renewals", Duration::from_secs(10), || {
        e.server
            .log()
            .iter()
            .filter(|l| l.resource == "leases" && l.is_write())
            .count()
            >= 2
    });
    let idle: Vec<_> = e
        .server
        .log()
        .into_iter()
        .filter(|l| l.resource != "leases")
        .collect();
    assert!(idle.is_empty(), "requests while idle: {idle:?}");
    let (code, metrics) = c.get("/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("regops_leader{spec=\"e2e\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("regops_reconciles_total{spec=\"e2e\",scope=\"full\",outcome=\"success\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("regops_seconds_since_last_full_sync{spec=\"e2e\"}"),
        "{metrics}"
    );
    assert_eq!(c.get("/healthz").0, 200);
    assert_eq!(c.get("/nope").0, 404);
    c.assert_no_leak();
}

/// An update planning does not read (a scale, a status) is no pass: the full apply's read
/// and the watch fingerprint objects alike, so not even the first such event after start, or
/// after regops' own write to the object, costs a request.
#[test]
fn updates_planning_does_not_read_cost_no_request() {
    let e = Env::new();
    let c = e.start(&[]);
    c.wait_ready();
    e.settle();
    e.server.clear_log();
    for replicas in [3, 4] {
        let (code, body) = e
            .server
            .request(
                "PATCH",
                "/apis/apps/v1/namespaces/web/deployments/frontend",
                "application/merge-patch+json",
                Some(&json!({"spec": {"replicas": replicas}})),
            )
            .unwrap();
        assert_eq!(code, 200, "{body}");
    }
    e.settle();
    let reads: Vec<_> = e
        .server
        .log()
        .into_iter()
        .filter(|l| l.resource != "leases" && l.verb != "patch")
        .collect();
    assert!(reads.is_empty(), "{reads:?}\n{}", c.log());
}

#[test]
fn sigterm_lets_the_write_in_flight_finish_and_releases_the_lease() {
    let e = Env::new();
    let mut c = e.start(&[]);
    c.wait_ready();
    assert!(e.server.object("leases", "default", "regops-e2e").is_some());
    // The next Secret write takes a second: SIGTERM arrives while it is in flight.
    e.server.add_fault(
        Fault::new(FaultAction::Latency(Duration::from_millis(1000)))
            .verb("patch")
            .resource("secrets")
            .times(1),
    );
    e.create_namespace("late", json!({"team": "web"}));
    // The latency fault counts as fired when the Secret's PATCH arrives, before its second of
    // latency: from then on the write is in flight.
    wait_for(
        "the Secret write to be in flight",
        Duration::from_secs(10),
        || e.server.faults_fired() == [1],
    );
    c.signal("TERM");
    assert_eq!(c.wait_exit(), 0, "{}", c.log());
    assert!(
        e.secret("late").is_some(),
        "the write in flight finished:\n{}",
        c.log()
    );
    assert!(
        e.server.object("leases", "default", "regops-e2e").is_none(),
        "the Lease was released"
    );
    assert!(c.log().contains("writes in flight finished"), "{}", c.log());
    c.assert_no_leak();
}

#[test]
fn relabelled_out_of_scope_the_secret_goes_with_prune_and_is_drift_without() {
    for prune in [true, false] {
        let e = Env::new();
        let args: &[&str] = if prune { &["--prune"] } else { &[] };
        let c = e.start(args);
        c.wait_ready();
        assert!(e.secret("api").is_some());
        let (code, body) = e
            .server
            .request(
                "PATCH",
                "/api/v1/namespaces/api",
                "application/merge-patch+json",
                Some(&json!({"metadata": {"labels": {"team": "data"}}})),
            )
            .unwrap();
        assert_eq!(code, 200, "{body}");
        if prune {
            wait_for("the Secret to go", Duration::from_secs(10), || {
                e.secret("api").is_none()
            });
            wait_for("the entry to go", Duration::from_secs(10), || {
                e.sa_entries("api").is_empty()
            });
        } else {
            c.wait_log(
                "drift: Secret api/harbor-pull is no longer wanted; not deleted without --prune",
            );
            assert!(e.secret("api").is_some());
        }
        c.assert_no_leak();
    }
}

/// A ConfigMap volume as the kubelet lays it out (pkg/volume/util/atomic_writer.go): the
/// files live in a timestamped directory, `..data` links to it, and each key is a link through
/// `..data`. An update writes a new directory and swaps `..data` by rename.
struct ConfigMapVolume {
    dir: PathBuf,
    generation: std::cell::Cell<u32>,
}

impl ConfigMapVolume {
    fn new(dir: PathBuf, text: &str) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let v = ConfigMapVolume {
            dir,
            generation: std::cell::Cell::new(0),
        };
        v.update(text);
        std::os::unix::fs::symlink("..data/regops.yaml", v.dir.join("regops.yaml")).unwrap();
        v
    }

    fn update(&self, text: &str) {
        let n = self.generation.get() + 1;
        self.generation.set(n);
        let version = format!("..2026_11_23_00_00_0{n}.000000000");
        std::fs::create_dir(self.dir.join(&version)).unwrap();
        std::fs::write(self.dir.join(&version).join("regops.yaml"), text).unwrap();
        std::os::unix::fs::symlink(&version, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
    }
}

/// A bad spec reverted to the one in force is said (issue 39: it logged nothing), and
/// `regops_spec_valid` says at each moment whether the files are the spec in force; with
/// `--output json`, the invalid spec's diagnostic is one JSON log line, not a drawn box.
#[test]
fn a_reverted_spec_is_said_and_the_gauge_follows_the_files() {
    let e = Env::new();
    let volume = ConfigMapVolume::new(e.dir.path().join("spec"), SPEC);
    let c = e.start_with(&volume.dir, &["--output", "json"]);
    c.wait_ready();
    let valid = |c: &Controller| {
        let (_, m) = c.get("/metrics");
        m.lines()
            .find(|l| l.starts_with("regops_spec_valid{"))
            .map(|l| l.ends_with(" 1"))
            .unwrap()
    };
    assert!(valid(&c));
    volume.update(&SPEC.replace(
        "harbor-pull: { registries: [harbor]",
        "harbor-pull: { registries: [nope]",
    ));
    c.wait_log("the last good spec stays in force");
    assert!(!valid(&c), "the gauge says the files are not in force");
    // Every line of the log is one JSON object, the diagnostic included.
    let log = c.log();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|_| panic!("not a JSON line: {line:?}\n{log}"));
        assert!(v["msg"].is_string(), "{line}");
    }
    assert!(
        log.contains("nope"),
        "the diagnostic names the unknown registry: {log}"
    );
    volume.update(SPEC);
    c.wait_log("back to the spec in force");
    assert!(valid(&c));
    let (_, metrics) = c.get("/metrics");
    assert!(
        metrics.contains("regops_spec_last_reload_timestamp_seconds{spec=\"e2e\"}"),
        "{metrics}"
    );
}

/// A controller that cannot start logs why as one JSON line under `--output json`.
#[test]
fn a_controller_that_cannot_start_says_why_in_one_json_line() {
    let e = Env::new();
    let bad = e.dir.path().join("bad.yaml");
    std::fs::write(&bad, SPEC.replace("scopes:", "scopez:")).unwrap();
    let out = common::regops()
        .args(["apply", "--watch", "--output", "json", "-f"])
        .arg(&bad)
        .arg("--kubeconfig")
        .arg(&e.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let v: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().unwrap().contains("scopez"), "{v}");
}

#[test]
fn a_changed_spec_takes_effect_an_invalid_one_is_reported_and_sighup_rereads() {
    let e = Env::new();
    let volume = ConfigMapVolume::new(e.dir.path().join("spec"), SPEC);
    let c = e.start_with(&volume.dir, &[]);
    c.wait_ready();
    assert!(e.secret("web-sandbox").is_none());
    let swap = |text: &str| volume.update(text);
    swap(&SPEC.replace(", exclude: [web-sandbox]", ""));
    wait_for("web-sandbox covered", Duration::from_secs(10), || {
        e.secret("web-sandbox").is_some()
    });
    c.wait_log("spec reloaded");
    // An invalid spec: reported, and the last good one stays in force.
    swap(&SPEC.replace(
        "harbor-pull: { registries: [harbor]",
        "harbor-pull: { registries: [nope]",
    ));
    c.wait_log("the last good spec stays in force");
    e.create_namespace("still-covered", json!({"team": "web"}));
    wait_for(
        "a new namespace still covered",
        Duration::from_secs(10),
        || e.secret("still-covered").is_some(),
    );
    let (_, metrics) = c.get("/metrics");
    assert!(
        metrics.contains("regops_spec_reloads_total{spec=\"e2e\",outcome=\"failure\"} 1"),
        "{metrics}"
    );
    // SIGHUP rereads even an unchanged file (a valid one now).
    swap(SPEC);
    c.wait_log("reloaded");
    let reloads = || c.log().matches("spec reloaded").count();
    let before = reloads();
    c.signal("HUP");
    wait_for("a reload on SIGHUP", Duration::from_secs(10), || {
        reloads() > before
    });
    c.assert_no_leak();
}

#[test]
fn a_standby_takes_over_when_the_leader_dies() {
    let e = Env::new();
    let lease = [
        "--lock-duration",
        "2s",
        "--renew-deadline",
        "1s",
        "--retry-period",
        "250ms",
    ];
    let mut leader = e.start(&lease);
    leader.wait_ready();
    let standby = e.start(&lease);
    standby.wait_log("standby: the Lease is held by");
    // The standby is ready (it can take over) but does not write: not after it has asked for
    // the Lease twice more (every --retry-period) and found it held, rather than a fixed sleep.
    standby.wait_ready();
    let standby_ua = format!("/{})", standby.child.id());
    let asked = || {
        e.server
            .log()
            .iter()
            .filter(|l| l.resource == "leases" && l.user_agent.ends_with(&standby_ua))
            .count()
    };
    let before = asked();
    wait_for(
        "the standby to ask for the Lease twice more",
        Duration::from_secs(10),
        || asked() >= before + 2,
    );
    assert!(
        !standby.log().contains("leader: holding"),
        "{}",
        standby.log()
    );
    let (_, m) = standby.get("/metrics");
    assert!(m.contains("regops_leader{spec=\"e2e\"} 0"), "{m}");
    leader.child.kill().unwrap();
    leader.child.wait().unwrap();
    e.create_namespace("after-failover", json!({"team": "web"}));
    standby.wait_log("leader: holding");
    wait_for(
        "the new leader covers the namespace",
        Duration::from_secs(10),
        || e.secret("after-failover").is_some(),
    );
    let lease = e.server.object("leases", "default", "regops-e2e").unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");
    standby.assert_no_leak();
}

#[test]
fn a_watch_that_cannot_resume_lists_again_and_misses_nothing() {
    let e = Env::new();
    let c = e.start(&[]);
    c.wait_ready();
    // The server keeps few changes, and the watches are cut; while they reconnect (each
    // reconnection is held back 600 ms), more changes happen than are kept.
    e.server.set_watch_history(2);
    e.server.add_fault(
        Fault::new(FaultAction::Latency(Duration::from_millis(600)))
            .verb("watch")
            .times(10),
    );
    e.server.end_watches();
    for i in 0..4 {
        e.create_namespace(&format!("gap-{i}"), json!({"team": "web"}));
    }
    c.wait_log("listing again, then a full apply");
    wait_for(
        "every namespace of the gap covered",
        Duration::from_secs(15),
        || (0..4).all(|i| e.secret(&format!("gap-{i}")).is_some()),
    );
    let (_, metrics) = c.get("/metrics");
    assert!(metrics.contains("reason=\"expired\""), "{metrics}");
    // After the new list, watching goes on: a later namespace is covered too.
    e.create_namespace("after-gap", json!({"team": "web"}));
    wait_for("after-gap covered", Duration::from_secs(10), || {
        e.secret("after-gap").is_some()
    });
    c.assert_no_leak();
}

fn stuck_pod(ns: &str, name: &str, image: &str, controlled: bool) -> Value {
    let owners = if controlled {
        json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "frontend-7d9", "uid": "rs-1", "controller": true}])
    } else {
        json!([])
    };
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": owners},
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "app", "image": image, "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}})
}

#[test]
fn pods_stuck_on_a_registry_just_provided_are_recycled_and_no_others() {
    let e = Env::new();
    let harbor = "harbor.example.com/web/frontend:1";
    for pod in [
        stuck_pod("web", "stuck", harbor, true),
        stuck_pod("web", "bare", harbor, false),
        stuck_pod("web", "other-registry", "quay.io/team/app:1", true),
        stuck_pod("web-sandbox", "out-of-scope", harbor, true),
    ] {
        e.server.seed(pod).unwrap();
    }
    let c = e.start(&["--recycle-stuck-pods"]);
    c.wait_ready();
    wait_for("the stuck pod recycled", Duration::from_secs(10), || {
        e.server.object("pods", "web", "stuck").is_none()
    });
    c.wait_log("recycled pod web/stuck (ImagePullBackOff for harbor.example.com/web/frontend:1): ReplicaSet/frontend-7d9 recreates it");
    for (ns, name) in [
        ("web", "bare"),
        ("web", "other-registry"),
        ("web-sandbox", "out-of-scope"),
    ] {
        assert!(
            e.server.object("pods", ns, name).is_some(),
            "{ns}/{name} was deleted"
        );
    }
    // Without the flag, nothing is deleted.
    let e2 = Env::new();
    e2.server
        .seed(stuck_pod("web", "stuck", harbor, true))
        .unwrap();
    let c2 = e2.start(&[]);
    c2.wait_ready();
    assert!(e2.server.log().iter().all(|l| l.resource != "pods"));
    assert!(e2.server.object("pods", "web", "stuck").is_some());
    let (_, metrics) = c.get("/metrics");
    assert!(
        metrics.contains("regops_pods_recycled_total{spec=\"e2e\"} 1"),
        "{metrics}"
    );
}

/// The controller install (deploy/controller), applied with kubectl from `kubectl kustomize`
/// of an overlay as a user's would be: its Deployment's arguments, its image as `images:` set
/// it, and its spec from the ConfigMap, run with only the install's RBAC rules allowed
/// (everything else denied), meet no 403 through a full apply, a new namespace, a namespace
/// leaving the scope (a prune), a stuck pod, Lease renewals and SIGTERM; every verb granted on
/// what the test spec binds (Deployments, ServiceAccounts) is used; no rule has a wildcard.
#[test]
#[ignore = "needs kubectl (Debian: kubernetes-client)"]
fn the_controller_install_runs_with_its_own_rbac_alone() {
    let e = Env::new_tls();
    let spec = std::fs::read_to_string(&e.spec).unwrap();
    // With the opt-in component that turns --recycle-stuck-pods on, with its RBAC.
    let installed = common::install_with(
        "controller",
        &["recycle-stuck-pods"],
        &e.server,
        &e.kubeconfig,
        &spec,
    );
    let rules = installed.rules();
    let deployment = installed.get("Deployment", "regops");
    assert_eq!(deployment["metadata"]["namespace"], "regops");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.test/regops:test");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "regops"
    );
    // The spec the pod would read: the ConfigMap's, as the server holds it.
    let config_map = installed.get("ConfigMap", "regops-spec");
    std::fs::write(&e.spec, config_map["data"]["regops.yaml"].as_str().unwrap()).unwrap();
    for kind in ["ServiceAccount", "NetworkPolicy"] {
        let name = if kind == "NetworkPolicy" {
            "regops-listen"
        } else {
            "regops"
        };
        assert_eq!(installed.get(kind, name)["metadata"]["namespace"], "regops");
    }
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| match a.as_str().unwrap() {
            "/spec" => e.spec.display().to_string(),
            "0.0.0.0:8080" => "127.0.0.1:{port}".to_string(),
            "/run/regops/progress" => e.dir.path().join("progress").display().to_string(),
            other => other.to_string(),
        })
        .collect();
    assert!(
        args.contains(&"--recycle-stuck-pods".to_string()),
        "{args:?}"
    );
    e.server
        .seed(stuck_pod(
            "web",
            "stuck",
            "harbor.example.com/web/frontend:1",
            true,
        ))
        .unwrap();
    e.server
        .set_policy(Some(kube_test_server::Policy { rules }));
    let mut c = e.run(&args);
    c.wait_ready();
    // The install's liveness probe, as the kubelet runs it: `regops alive` on the progress
    // file the controller writes.
    let progress = e.dir.path().join("progress");
    wait_for("the progress file", Duration::from_secs(10), || {
        progress.exists()
    });
    let probe = common::regops()
        .args(["alive", progress.to_str().unwrap(), "--stall", "5m"])
        .output()
        .unwrap();
    assert!(probe.status.success(), "{probe:?}");
    // The test's own changes bypass the policy (as an administrator's would).
    let (code, body) = e.server.admin(
        "POST",
        "/api/v1/namespaces",
        "application/json",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-new", "labels": {"team": "web"}}}),
    );
    assert_eq!(code, 201, "{body}");
    wait_for("team-new covered", Duration::from_secs(10), || {
        e.secret("team-new").is_some()
    });
    let (code, body) = e.server.admin(
        "PATCH",
        "/api/v1/namespaces/api",
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"team": "data"}}}),
    );
    assert_eq!(code, 200, "{body}");
    wait_for("the prune", Duration::from_secs(10), || {
        e.secret("api").is_none()
    });
    // The Lease is renewed every --retry-period (2 s).
    wait_for("a Lease renewal", Duration::from_secs(15), || {
        e.server
            .log()
            .iter()
            .any(|l| l.verb == "update" && l.resource == "leases")
    });
    c.signal("TERM");
    assert_eq!(c.wait_exit(), 0, "{}", c.log());
    let log = e.server.log();
    let denied: Vec<_> = log.iter().filter(|l| l.status == 403).collect();
    assert!(denied.is_empty(), "denied: {denied:?}");
    for (verb, resource) in [
        ("list", "namespaces"),
        ("watch", "namespaces"),
        ("list", "secrets"),
        ("watch", "secrets"),
        ("get", "secrets"),
        ("patch", "secrets"),
        ("delete", "secrets"),
        ("list", "serviceaccounts"),
        ("watch", "serviceaccounts"),
        ("patch", "serviceaccounts"),
        ("list", "deployments"),
        ("watch", "deployments"),
        ("list", "replicasets"),
        ("patch", "deployments"),
        ("list", "pods"),
        ("delete", "pods"),
        ("get", "leases"),
        ("create", "leases"),
        ("update", "leases"),
        ("delete", "leases"),
        // A repeat's series (`patch events`) is exercised by tests/events.rs.
        ("create", "events"),
    ] {
        let used = log.iter().any(|l| l.verb == verb && l.resource == resource);
        assert!(used, "{verb} {resource} was granted but not used");
    }
    c.assert_no_leak();
}

/// A watch that keeps failing (here, three 500s in a row when it resumes) is given up for a
/// new list and a full apply, as client-go's reflector does; nothing is missed meanwhile.
#[test]
fn a_watch_that_keeps_failing_lists_again() {
    let e = Env::new();
    let c = e.start(&[]);
    c.wait_ready();
    e.server.add_fault(
        Fault::status(500)
            .verb("watch")
            .resource("namespaces")
            .times(3),
    );
    e.server.end_watches();
    e.create_namespace("during-failures", json!({"team": "web"}));
    c.wait_log("watch of namespaces: listing again, then a full apply (3 failed watches in a row)");
    wait_for("the namespace covered", Duration::from_secs(15), || {
        e.secret("during-failures").is_some()
    });
    let (_, metrics) = c.get("/metrics");
    assert!(
        metrics.contains(
            "regops_watch_restarts_total{spec=\"e2e\",resource=\"namespaces\",reason=\"error\"} 3"
        ),
        "{metrics}"
    );
    c.assert_no_leak();
}

/// With `-n`, only those namespaces are planned: an event elsewhere costs no read.
#[test]
fn with_namespaces_given_events_elsewhere_are_ignored() {
    let e = Env::new();
    let c = e.start(&["-n", "web,team-a"]);
    c.wait_ready();
    assert!(e.secret("web").is_some());
    assert!(e.secret("api").is_none(), "api is not among -n");
    e.settle();
    e.server.clear_log();
    e.create_namespace("team-b", json!({"team": "web"}));
    e.create_namespace("team-a", json!({"team": "web"}));
    wait_for("team-a covered", Duration::from_secs(10), || {
        e.secret("team-a").is_some()
    });
    e.settle();
    assert!(e.secret("team-b").is_none());
    let outside: Vec<_> = e
        .server
        .log()
        .into_iter()
        .filter(|l| l.verb == "list" && l.namespace.as_deref() == Some("team-b"))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// 300 connections that send part of their headers and then nothing (a slowloris): each is cut
/// after the header timeout, connections past the cap are closed at once, the listener answers
/// probes again once the held ones are cut, and the process's memory does not grow with them.
#[test]
fn slow_headers_neither_hold_the_listener_nor_grow_its_memory() {
    use std::io::Write;
    let e = Env::new();
    let c = e.start(&[]);
    c.wait_ready();
    let pid = c.child.id();
    let before = rss_kib(pid);
    let mut held = Vec::new();
    for _ in 0..300 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", c.port)) {
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
            held.push(s);
        }
    }
    wait_for(
        "a /healthz answer while the slow connections are held",
        Duration::from_secs(10),
        || c.get("/healthz").0 == 200,
    );
    // Every slow connection was closed by the server (end of stream or reset), none left
    // waiting: a read that times out would mean one is still held open.
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 512];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                // A 408 or 400 the server chose to send before closing.
                Ok(_) => {}
                Err(err) => {
                    assert!(
                        !matches!(
                            err.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ),
                        "a slow connection is still open"
                    );
                    break;
                }
            }
        }
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 16 * 1024,
        "memory grew from {before} KiB to {after} KiB"
    );
    assert_eq!(c.get("/healthz").0, 200);
}

/// One peer that keeps 70 connections open, reopening each as soon as it is closed, cannot
/// starve the probes (issue 38): the kubelet's `/healthz`, from another address, is answered
/// 200 within a second, every time. Before, the 64 places were the first comers' and 39 of 39
/// probes failed.
#[test]
fn a_greedy_peer_does_not_starve_the_probes() {
    greedy_peer_against_probes([127, 0, 0, 2], false);
}

/// The same from the probes' own address: the kubelet's probes come from the node's address,
/// which every hostNetwork pod on the node shares, and no share of the port can tell them
/// apart (an attack review: 8 half-sent connections from the node's address refused 20 of 20
/// HTTP probes). So the install's liveness probe is an exec probe, `regops alive` on the
/// progress file, which no connection can keep out: under the same attack it passes every
/// time.
#[test]
fn a_greedy_peer_on_the_probes_own_address_does_not_starve_the_liveness_probe() {
    greedy_peer_against_probes([127, 0, 0, 1], true);
}

fn greedy_peer_against_probes(from: [u8; 4], exec_probe: bool) {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    let e = Env::new();
    let progress = e.dir.path().join("progress");
    let progress_arg = progress.display().to_string();
    let c = if exec_probe {
        e.start(&["--progress-file", &progress_arg])
    } else {
        e.start(&[])
    };
    c.wait_ready();
    if exec_probe {
        wait_for("the progress file", Duration::from_secs(10), || {
            progress.exists()
        });
    }
    let port = c.port;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let greedy: Vec<_> = (0..70)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut opened = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    // The client bound to `from`.
                    let Some(mut s) = socket2_from(from, port) else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    opened += 1;
                    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
                    s.set_read_timeout(Some(Duration::from_millis(200))).ok();
                    let mut buf = [0u8; 64];
                    // Hold it until the server closes it (or a while), then open another.
                    let deadline = Instant::now() + Duration::from_secs(4);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        match s.read(&mut buf) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => break,
                        }
                    }
                }
                opened
            })
        })
        .collect();
    // Each probe within the time the kubelet gives it: an HTTP probe the API's default
    // `timeoutSeconds` (1 s), the install's exec probe what deploy/controller/deployment.yaml
    // gives it (5 s: starting a process on a loaded node may take over a second). The kubelet
    // holds exec probes to `timeoutSeconds` since Kubernetes 1.20 (KEP-1972, kubernetes/
    // enhancements keps/sig-node/1972-kubelet-exec-probe-timeouts; the ExecProbeTimeout gate,
    // on by default).
    let bound = if exec_probe {
        install_exec_probe_timeout()
    } else {
        Duration::from_secs(1)
    };
    std::thread::sleep(Duration::from_millis(500));
    let mut slow = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let status = if exec_probe {
            // As the kubelet runs the install's livenessProbe.
            let ok = common::regops()
                .args(["alive", &progress_arg, "--stall", "5m"])
                .output()
                .unwrap()
                .status
                .success();
            if ok { 200 } else { 503 }
        } else {
            c.get("/healthz").0
        };
        let took = start.elapsed();
        if status != 200 || took > bound {
            slow.push((status, took));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::Relaxed);
    let opened: u32 = greedy.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(opened >= 70, "the greedy peer opened {opened} connections");
    assert!(slow.is_empty(), "probes failed or were slow: {slow:?}");
}

/// The `timeoutSeconds` of the install's liveness probe (`regops alive`).
fn install_exec_probe_timeout() -> Duration {
    let text =
        std::fs::read_to_string(common::repo().join("deploy/controller/deployment.yaml")).unwrap();
    let probe = &text[text.find("livenessProbe:").expect("a livenessProbe")..];
    let line = probe
        .lines()
        .take(6)
        .find_map(|l| l.trim().strip_prefix("timeoutSeconds:"))
        .expect("the liveness probe sets timeoutSeconds");
    Duration::from_secs(line.trim().parse().unwrap())
}

/// A connection to the listener on 127.0.0.1 from the address `from`.
fn socket2_from(from: [u8; 4], port: u16) -> Option<std::net::TcpStream> {
    // std cannot bind a client socket before connecting; tokio's TcpSocket can.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.bind(std::net::SocketAddr::from((from, 0))).ok()?;
        let stream = tokio::time::timeout(
            Duration::from_secs(1),
            socket.connect(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
        )
        .await
        .ok()?
        .ok()?;
        stream.into_std().ok()
    })
    .and_then(|s| s.set_nonblocking(false).ok().map(|()| s))
}

/// A work loop stuck on a request that does not come back fails `/healthz` once
/// `--healthz-stall` has passed, and passes again when it moves on. The Lease is renewed every
/// second meanwhile (`--retry-period 1s`): renewals, which go on while the loop is stuck, are
/// not progress.
#[test]
fn healthz_fails_while_the_work_loop_is_stuck() {
    let e = Env::new();
    let c = e.start(&[
        "--healthz-stall",
        "2s",
        "--lock-duration",
        "3",
        "--renew-deadline",
        "2s",
        "--retry-period",
        "1s",
    ]);
    c.wait_ready();
    e.settle();
    assert_eq!(c.get("/healthz").0, 200);
    let renewals = || {
        e.server
            .log()
            .iter()
            .filter(|l| l.resource == "leases" && l.verb == "update")
            .count()
    };
    let before = renewals();
    // The next pass reads its namespace: its first LIST answers only after 6 s.
    e.server.add_fault(
        Fault::new(FaultAction::Latency(Duration::from_secs(6)))
            .verb("list")
            .times(1),
    );
    e.create_namespace("stuck", json!({"team": "web"}));
    wait_for("/healthz to fail", Duration::from_secs(6), || {
        c.get("/healthz").0 == 503
    });
    let (_, body) = c.get("/healthz");
    assert!(body.contains("no progress"), "{body}");
    // The Lease was renewed while the loop was stuck, and /healthz failed all the same.
    assert!(renewals() > before, "no renewal happened during the stall");
    wait_for("/healthz to pass again", Duration::from_secs(20), || {
        c.get("/healthz").0 == 200
    });
    wait_for(
        "the namespace to be covered",
        Duration::from_secs(20),
        || e.secret("stuck").is_some(),
    );
}

/// `regops alive` fails once the progress written is older than --stall, and on a missing or
/// garbled file (the kubelet then restarts the controller).
#[test]
fn alive_fails_on_a_stale_missing_or_garbled_progress_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("progress");
    let alive = |stall: &str| {
        common::regops()
            .args(["alive", file.to_str().unwrap(), "--stall", stall])
            .output()
            .unwrap()
    };
    assert_eq!(alive("5m").status.code(), Some(1), "missing");
    std::fs::write(&file, "not a time\n").unwrap();
    assert_eq!(alive("5m").status.code(), Some(1), "garbled");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    std::fs::write(&file, format!("{:.3}\n", now - 600.0)).unwrap();
    let stale = alive("5m");
    assert_eq!(stale.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("no progress for"));
    assert_eq!(alive("15m").status.code(), Some(0));
}

/// The controller's base holds no right on pods and does not recycle them; the opt-in
/// component adds the flag and its one rule (issue 39: least privilege). The base also keeps
/// one of its two replicas through a drain (a PodDisruptionBudget selecting its pods) and
/// spreads them over nodes.
#[test]
#[ignore = "needs kubectl (Debian: kubernetes-client)"]
fn recycling_pods_is_an_opt_in_component_and_the_replicas_survive_a_drain() {
    common::require("kubectl", "version", "Debian: kubernetes-client");
    let render = |dir: &std::path::Path| -> Vec<Value> {
        let out = std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).unwrap()
    };
    let pods_rules = |docs: &[Value]| -> usize {
        docs.iter()
            .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
            .flat_map(|d| d["rules"].as_array().cloned().unwrap_or_default())
            .filter(|r| {
                r["resources"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().any(|x| x == "pods"))
            })
            .count()
    };
    let recycles = |docs: &[Value]| -> bool {
        docs.iter().filter(|d| d["kind"] == "Deployment").any(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["args"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "--recycle-stuck-pods"))
        })
    };
    let base = render(&common::repo().join("deploy/controller"));
    assert_eq!(pods_rules(&base), 0, "the base may not touch pods");
    assert!(!recycles(&base));
    let pdb = base
        .iter()
        .find(|d| d["kind"] == "PodDisruptionBudget")
        .expect("a PodDisruptionBudget");
    let deployment = base.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert!(deployment["spec"]["replicas"].as_u64() >= Some(2));
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &pod_labels[k], v,
            "the budget selects the controller's pods"
        );
    }
    let spread = &deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    // An overlay with the component: the flag and the rule, together.
    let overlay = tempfile::tempdir().unwrap();
    let rel = |p: &str| {
        let abs = common::repo().join(p).canonicalize().unwrap();
        let ups = overlay.path().canonicalize().unwrap().components().count() - 1;
        std::iter::repeat_n(std::path::Path::new(".."), ups)
            .collect::<std::path::PathBuf>()
            .join(abs.strip_prefix("/").unwrap())
            .display()
            .to_string()
    };
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n  - {}\n",
            rel("deploy/controller"),
            rel("deploy/components/recycle-stuck-pods")
        ),
    )
    .unwrap();
    let with = render(overlay.path());
    assert_eq!(pods_rules(&with), 1);
    assert!(recycles(&with));
}

/// The install's NetworkPolicy lets Prometheus reach the controller's listener: it selects the
/// Deployment's pods and the port its --listen names.
#[test]
fn the_network_policy_covers_the_listener() {
    let repo = common::repo().join("deploy/controller");
    let read = |f: &str| -> Value {
        serde_saphyr::from_str(&std::fs::read_to_string(repo.join(f)).unwrap()).unwrap()
    };
    let (deployment, policy) = (read("deployment.yaml"), read("networkpolicy.yaml"));
    assert_eq!(policy["kind"], "NetworkPolicy");
    assert_eq!(
        policy["metadata"]["namespace"],
        deployment["metadata"]["namespace"]
    );
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in policy["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &pod_labels[k], v,
            "the policy selects the controller's pods"
        );
    }
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap();
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .map(|i| args[i + 1].as_str().unwrap().to_string())
        .unwrap();
    let port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(
        policy["spec"]["ingress"][0]["ports"][0]["port"].as_u64(),
        Some(port)
    );
}

/// The lease times the leader-election tests use: a 3 s Lease, a 2 s renew deadline, renewals
/// every 500 ms (client-go's 15 s / 10 s / 2 s, scaled down).
const QUICK_LEASE: [&str; 6] = [
    "--lock-duration",
    "3s",
    "--renew-deadline",
    "2s",
    "--retry-period",
    "500ms",
];

/// The writes (not the Lease's) the process `pid` made, from the server's request log, told
/// apart by the User-Agent regops sends (`regops/<version> (<host>/<pid>)`).
fn writes_of(e: &Env, pid: u32) -> Vec<kube_test_server::LogEntry> {
    let me = format!("/{pid})");
    e.server
        .log()
        .into_iter()
        .filter(|l| l.is_write() && l.resource != "leases" && l.user_agent.ends_with(&me))
        .collect()
}

/// No two holders wrote in the same instant: every write of the first leader was answered
/// before the second took the Lease (its first Lease write that succeeded), and so before the
/// second's first write; and the second did write.
fn assert_one_writer_at_a_time(e: &Env, first: u32, second: u32) {
    let (a, b) = (writes_of(e, first), writes_of(e, second));
    assert!(!a.is_empty(), "the first leader wrote nothing");
    let first_of_b = b
        .iter()
        .map(|l| l.at)
        .min()
        .expect("the second leader wrote nothing");
    let second_ua = format!("/{second})");
    let takeover = e
        .server
        .log()
        .into_iter()
        .filter(|l| {
            l.resource == "leases"
                && l.is_write()
                && l.status < 300
                && l.user_agent.ends_with(&second_ua)
        })
        .map(|l| l.at)
        .min()
        .expect("the second leader never took the Lease");
    let late: Vec<_> = a
        .iter()
        .filter(|l| l.answered > takeover.min(first_of_b))
        .collect();
    assert!(
        late.is_empty(),
        "the old leader wrote after the new one took the Lease: {late:?}"
    );
}

/// Namespaces keep appearing, one every 200 ms, while `until` is false: each one is work for
/// whichever process leads.
fn keep_creating_namespaces(e: &Env, prefix: &str, mut until: impl FnMut() -> bool) -> usize {
    let mut n = 0;
    let started = Instant::now();
    while !until() && started.elapsed() < Duration::from_secs(30) {
        e.create_namespace(&format!("{prefix}-{n}"), json!({"team": "web"}));
        n += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    n
}

/// Renewals that fail (500), or that are slow (3 s, past the renew deadline): the leader
/// stops writing and exits 1 once its renew deadline has passed, before the standby may take
/// the Lease; the standby takes over and covers what the old leader left. Checked from the
/// server's request log, by the User-Agent of each write: no write of the old leader after
/// the new leader took the Lease.
#[test]
fn a_leader_whose_renewals_fail_stops_writing_before_a_standby_takes_over() {
    leader_stops_before_a_takeover(&QUICK_LEASE, &[renewals_fail().times(5)]);
    leader_stops_before_a_takeover(
        &QUICK_LEASE,
        &[Fault::new(FaultAction::Latency(Duration::from_secs(3)))
            .verb("update")
            .resource("leases")
            .times(2)],
    );
}

/// A renewal committed at once but answered 6 s late, then renewals that fail. The standby's
/// clock starts when it sees the renewal's new version, right after the commit; a leader that
/// counted its renew deadline from the answer would go on writing about 3 s into the new
/// leader's term (with 10 s / 8 s / 1 s). Counted from the sending (`Renewed::set`), it stops
/// before the standby may take over.
#[test]
fn a_renewal_answered_late_does_not_stretch_the_leaders_term() {
    leader_stops_before_a_takeover(
        &[
            "--lock-duration",
            "10s",
            "--renew-deadline",
            "8s",
            "--retry-period",
            "1s",
        ],
        &[
            Fault::new(FaultAction::ResponseTime(Duration::from_secs(6)))
                .verb("update")
                .resource("leases")
                .times(1),
            renewals_fail().times(10),
        ],
    );
}

fn renewals_fail() -> Fault {
    Fault::status(500).verb("update").resource("leases")
}

/// A leader and a standby under `lease`; `faults` added in turn once the leader has written; new
/// namespaces keep coming until the standby leads. The old leader exits 1 saying why, the new
/// one covers everything, and the two never wrote at once.
fn leader_stops_before_a_takeover(lease: &[&str], faults: &[Fault]) {
    let e = Env::new();
    let mut leader = e.start(lease);
    leader.wait_ready();
    let standby = e.start(lease);
    standby.wait_log("standby: the Lease is held by");
    e.create_namespace("before", json!({"team": "web"}));
    wait_for(
        "the leader covers `before`",
        Duration::from_secs(10),
        || e.secret("before").is_some(),
    );
    // One after another: each fault is added once the one before it has fired (all the
    // faults a request matches fire together).
    for (i, fault) in faults.iter().enumerate() {
        e.server.add_fault(fault.clone());
        if i + 1 < faults.len() {
            wait_for("the fault fires", Duration::from_secs(10), || {
                e.server.faults_fired()[i] >= 1
            });
        }
    }
    // Work keeps coming until the old leader has gone, so that a leader writing past its term
    // would have something to write.
    let created = keep_creating_namespaces(&e, "during", || {
        standby.log().contains("leader: holding") && leader.child.try_wait().unwrap().is_some()
    });
    assert_eq!(leader.wait_exit(), 1, "{}", leader.log());
    assert!(
        leader.log().contains("lost"),
        "the old leader says why it stopped: {}",
        leader.log()
    );
    wait_for(
        "the new leader covers them all",
        Duration::from_secs(15),
        || (0..created).all(|i| e.secret(&format!("during-{i}")).is_some()),
    );
    e.create_namespace("after", json!({"team": "web"}));
    wait_for(
        "the new leader covers `after`",
        Duration::from_secs(10),
        || e.secret("after").is_some(),
    );
    // The faults fired: renewals failed (or were held back) before the takeover.
    assert!(e.server.faults_fired()[0] >= 1, "the fault never fired");
    assert_one_writer_at_a_time(&e, leader.child.id(), standby.child.id());
    standby.assert_no_leak();
}

/// A leader paused (SIGSTOP) long enough for the standby to take over, then resumed: it finds
/// its renew deadline long past before its next write, writes nothing more, and exits 1.
#[test]
fn a_paused_leader_resumed_after_a_takeover_writes_nothing() {
    let e = Env::new();
    let mut leader = e.start(&QUICK_LEASE);
    leader.wait_ready();
    let standby = e.start(&QUICK_LEASE);
    standby.wait_log("standby: the Lease is held by");
    e.settle();
    leader.signal("STOP");
    let created =
        keep_creating_namespaces(&e, "paused", || standby.log().contains("leader: holding"));
    wait_for(
        "the new leader covers them",
        Duration::from_secs(15),
        || (0..created).all(|i| e.secret(&format!("paused-{i}")).is_some()),
    );
    // The old leader's watches deliver all of it when it resumes; more keeps coming.
    leader.signal("CONT");
    for i in 0..5 {
        e.create_namespace(&format!("resumed-{i}"), json!({"team": "web"}));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(leader.wait_exit(), 1, "{}", leader.log());
    let after: Vec<_> = writes_of(&e, leader.child.id())
        .into_iter()
        .filter(|l| l.path.contains("paused-") || l.path.contains("resumed-"))
        .collect();
    assert!(after.is_empty(), "the resumed leader wrote: {after:?}");
    assert_one_writer_at_a_time(&e, leader.child.id(), standby.child.id());
}

/// At 1,000 namespaces, one namespace whose Secret write is refused (403) forever is retried
/// alone, with its own backoff (2 s, then 4 s, ...): no full apply follows its failures (no
/// cluster-wide LIST after the first full apply), and the requests it costs stay within a
/// namespace pass per retry (at most 20 requests). Over ten minutes that is eight retries (the
/// backoff's unit test over simulated time,
/// `watch::tests::one_namespace_failing_forever_is_retried_eight_times_in_ten_minutes`), at
/// most 160 requests, where a full apply per failure cost a whole cluster's LISTs each time.
#[test]
fn one_namespace_refused_forever_is_retried_alone_with_backoff() {
    let e = Env::new();
    for i in 0..1000 {
        e.server
            .seed(json!({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": format!("team-{i}"), "labels": {"team": "web"}}}))
            .unwrap();
    }
    e.server
        .seed(json!({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": "refused", "labels": {"team": "web"}}}))
        .unwrap();
    e.server.add_fault(
        Fault::status(403)
            .verb("patch")
            .resource("secrets")
            .namespace("refused"),
    );
    let c = e.start(&[]);
    c.wait_ready();
    assert!(e.secret("team-999").is_some());
    // The first apply's own writes come back as events (a full pass of their own, as ever);
    // from when that is over, only the refused namespace's retries may cost anything.
    e.settle();
    let ready_at = e.server.log().len();
    let fired = e.server.faults_fired()[0];
    wait_for(
        "two more retries of the refused namespace",
        Duration::from_secs(30),
        || e.server.faults_fired()[0] >= fired + 2,
    );
    let after: Vec<_> = e.server.log()[ready_at..]
        .iter()
        .filter(|l| l.resource != "leases")
        .cloned()
        .collect();
    let cluster_wide: Vec<_> = after
        .iter()
        .filter(|l| {
            l.verb == "list" && !l.path.contains("/namespaces/") && l.resource != "namespaces"
        })
        .collect();
    assert!(
        cluster_wide.is_empty(),
        "a failure of one namespace caused a full apply: {cluster_wide:?}"
    );
    let elsewhere: Vec<_> = after
        .iter()
        .filter(|l| l.namespace.as_deref().is_some_and(|n| n != "refused"))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "other namespaces were read again: {elsewhere:?}"
    );
    assert!(
        after.len() <= 2 * 20,
        "two retries cost {} requests: {after:?}",
        after.len()
    );
    c.wait_log("namespace refused: a write failed; it is retried alone in 4 s");
    c.wait_log("namespace refused: a write failed; it is retried alone in 8 s");
    let (_, metrics) = c.get("/metrics");
    assert!(
        metrics.contains("regops_namespaces_awaiting_retry{spec=\"e2e\"} 1"),
        "{metrics}"
    );
}
