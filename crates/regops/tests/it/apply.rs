//! `regops apply` end to end against the test server: idempotency, ordering, dry run, faults,
//! conflicts, pruning and concurrent runs.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Run, regops, run};
use kube_test_server::{Fault, FaultAction, TestServer};
use serde_json::{Value, json};

const SPEC: &str = "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: e2e }
registries:
  harbor: { server: harbor.example.com, credential: robot }
  quay: { server: quay.io, credential: quay }
credentials:
  robot: { username: robot$ci, password: { env: REGOPS_CRED_HARBOR_TOKEN } }
  quay: { username: bot, password: { env: REGOPS_CRED_QUAY_TOKEN } }
scopes:
  web: { selector: { matchLabels: { team: web } }, exclude: [web-sandbox] }
pullSecrets:
  harbor-pull: { registries: [harbor], scope: web }
  quay-pull: { registries: [quay], scope: web }
bindings:
  - { pullSecret: harbor-pull, serviceAccounts: [default] }
  - { pullSecret: harbor-pull, workloads: { kinds: [Deployment] } }
  - pullSecret: quay-pull
    workloads: { kinds: [Deployment, StatefulSet] }
    kubesphereAnnotation: true
";

struct Env {
    server: TestServer,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    spec: PathBuf,
}

impl Env {
    fn new(spec: &str) -> Env {
        Env::from(common::Cluster::new(spec))
    }

    fn from(cluster: common::Cluster) -> Env {
        let common::Cluster {
            server,
            dir,
            kubeconfig,
            spec,
        } = cluster;
        Env {
            server,
            _dir: dir,
            kubeconfig,
            spec,
        }
    }

    fn seed_fixture(&self, name: &str) {
        common::seed_fixture(&self.server, name);
    }

    fn regops(&self, sub: &str, extra: &[&str]) -> std::process::Command {
        let mut c = regops();
        c.arg(sub)
            .arg("-f")
            .arg(&self.spec)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(extra);
        c.env("REGOPS_CRED_HARBOR_TOKEN", "MARKER-harbor-apply")
            .env("REGOPS_CRED_QUAY_TOKEN", "MARKER-quay-apply");
        c
    }

    fn apply(&self, extra: &[&str]) -> Run {
        let mut args = vec!["--yes"];
        args.extend_from_slice(extra);
        let r = run(&mut self.regops("apply", &args));
        assert!(
            !r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"),
            "a credential leaked:\n{}",
            r.transcript()
        );
        r
    }

    fn plan(&self) -> Run {
        run(&mut self.regops("plan", &[]))
    }

    fn writes(&self) -> Vec<String> {
        self.server
            .log()
            .iter()
            .filter(|e| e.is_write() && e.resource != "leases")
            .map(|e| format!("{} {} {}", e.verb, e.resource, e.path))
            .collect()
    }

    fn pull_secrets_of(&self, plural: &str, ns: &str, name: &str) -> Vec<String> {
        let o = self.server.object(plural, ns, name).unwrap();
        let list = if plural == "serviceaccounts" {
            &o["imagePullSecrets"]
        } else {
            &o["spec"]["template"]["spec"]["imagePullSecrets"]
        };
        list.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn base_env() -> Env {
    with_fixtures(Env::new(SPEC))
}

/// Over TLS, for kubectl (`common::install`).
fn tls_env() -> Env {
    with_fixtures(Env::from(common::Cluster::new_tls(SPEC)))
}

fn with_fixtures(e: Env) -> Env {
    e.seed_fixture("namespaces.yaml");
    e.seed_fixture("workloads.yaml");
    e
}

#[test]
fn apply_converges_and_a_second_apply_writes_nothing() {
    let e = base_env();
    let r = e.apply(&[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        r.stdout
            .contains("Apply complete: 8 applied, 0 failed, 0 skipped."),
        "{}",
        r.stdout
    );
    // Secrets are what kubectl would write, owned and annotated.
    let s = e.server.object("secrets", "web", "harbor-pull").unwrap();
    assert_eq!(s["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(
        s["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "regops"
    );
    assert_eq!(s["metadata"]["annotations"]["regops.dev/spec"], "e2e");
    assert!(
        s["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["manager"] == "regops" && m["operation"] == "Apply")
    );
    // Entries someone else added are kept, in order.
    assert_eq!(
        e.pull_secrets_of("serviceaccounts", "web", "default"),
        ["legacy-pull", "harbor-pull"]
    );
    assert_eq!(
        e.pull_secrets_of("deployments", "web", "frontend"),
        ["legacy-pull", "harbor-pull"]
    );
    assert_eq!(
        e.pull_secrets_of("statefulsets", "api", "cache"),
        ["quay-pull"]
    );
    // The KubeSphere annotation is on the pod template, where KubeSphere's console reads it.
    let sts = e.server.object("statefulsets", "api", "cache").unwrap();
    assert_eq!(
        sts["spec"]["template"]["metadata"]["annotations"]["kubesphere.io/imagepullsecrets"],
        r#"{"redis":"quay-pull"}"#
    );
    assert!(
        sts["metadata"]["annotations"]["kubesphere.io/imagepullsecrets"].is_null(),
        "{sts}"
    );
    // Secrets were written before anything referencing them.
    let writes = e.writes();
    let first_ref = writes
        .iter()
        .position(|w| !w.contains(" secrets "))
        .unwrap();
    assert!(
        writes[..first_ref].iter().all(|w| w.contains(" secrets "))
            && writes[first_ref..].iter().all(|w| !w.contains(" secrets ")),
        "{writes:?}"
    );

    e.server.clear_log();
    let again = e.apply(&[]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
    assert_eq!(e.writes(), Vec::<String>::new(), "the second apply wrote");
    let plan = e.plan();
    assert_eq!(plan.code, 0, "{}", plan.transcript());
}

/// A rotated password is written in place: the Secret keeps its name and uid (so the kubelet
/// takes it as a rotation of a Secret it knows, KEP-2535), only the Secrets whose bytes
/// differ are written, the plan says so and suggests `validate`, and the next apply writes
/// nothing.
#[test]
fn a_rotation_updates_the_secret_in_place_and_keeps_its_uid() {
    let e = base_env();
    assert_eq!(e.apply(&[]).code, 0);
    let uid = |ns: &str, name: &str| {
        let s = e.server.object("secrets", ns, name).unwrap();
        (
            s["metadata"]["uid"].as_str().unwrap().to_string(),
            s["data"][".dockerconfigjson"].as_str().unwrap().to_string(),
        )
    };
    let (harbor_uid, harbor_data) = uid("web", "harbor-pull");
    let (quay_uid, quay_data) = uid("web", "quay-pull");
    e.server.clear_log();
    let rotated = |sub: &str, extra: &[&str]| {
        let mut c = e.regops(sub, extra);
        c.env("REGOPS_CRED_HARBOR_TOKEN", "MARKER-harbor-rotated");
        let r = run(&mut c);
        assert!(!r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"));
        r
    };
    let plan = rotated("plan", &["--detail", "full"]);
    assert_eq!(plan.code, 2, "{}", plan.transcript());
    assert!(
        plan.stdout
            .contains("Secret web/harbor-pull's credentials change in place (same uid"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("regops validate"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("quay-pull's credentials change"));
    let r = rotated("apply", &["--yes"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let (after_uid, after_data) = uid("web", "harbor-pull");
    assert_eq!(
        after_uid, harbor_uid,
        "the Secret was replaced, not updated"
    );
    assert_ne!(after_data, harbor_data);
    assert_eq!(uid("web", "quay-pull"), (quay_uid, quay_data));
    let writes = e.writes();
    assert!(
        writes
            .iter()
            .all(|w| !w.contains("quay-pull") && !w.starts_with("delete")),
        "{writes:?}"
    );
    assert!(
        writes.iter().any(|w| w.contains("harbor-pull")),
        "{writes:?}"
    );
    e.server.clear_log();
    let again = rotated("apply", &["--yes"]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert_eq!(e.writes(), Vec::<String>::new());
}

#[test]
fn dry_run_sends_every_write_with_dry_run_all_and_changes_nothing() {
    let e = base_env();
    let r = e.apply(&["--dry-run=server"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        r.stdout
            .contains("Dry run (server-side, nothing stored): 8 applied as a dry run"),
        "{}",
        r.stdout
    );
    let log = e.server.log();
    let writes: Vec<_> = log
        .iter()
        .filter(|l| matches!(l.verb.as_str(), "create" | "update" | "patch" | "delete"))
        .collect();
    assert!(
        !writes.is_empty() && writes.iter().all(|w| w.dry_run),
        "{log:?}"
    );
    assert!(e.server.object("secrets", "web", "harbor-pull").is_none());
    assert_eq!(
        e.pull_secrets_of("serviceaccounts", "web", "default"),
        ["legacy-pull"]
    );
    assert!(
        log.iter().all(|l| l.resource != "leases"),
        "a dry run takes no lock"
    );
}

#[test]
fn json_report_lists_every_action_and_outcome() {
    let e = base_env();
    let r = e.apply(&["--output", "json"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["summary"]["applied"], 8);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 8);
    assert!(results.iter().all(|x| x["outcome"] == "applied"));
    assert_eq!(results[0]["kind"], "Secret");
}

#[test]
fn a_conflict_on_a_service_account_is_reread_and_retried() {
    let e = base_env();
    e.server.add_fault(
        Fault::status(409)
            .verb("patch")
            .resource("serviceaccounts")
            .times(2),
    );
    let r = e.apply(&[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(
        e.pull_secrets_of("serviceaccounts", "web", "default"),
        ["legacy-pull", "harbor-pull"]
    );
    assert!(
        e.server
            .log()
            .iter()
            .any(|l| l.verb == "get" && l.resource == "serviceaccounts"),
        "re-read after 409"
    );
}

#[test]
fn a_change_made_meanwhile_to_a_service_account_is_kept() {
    let e = base_env();
    // Someone adds an entry after the plan read the ServiceAccount: regops' write carries the
    // resourceVersion it read, gets 409, reads again and keeps the new entry.
    e.server.add_fault(
        Fault::status(409)
            .verb("patch")
            .resource("serviceaccounts")
            .nth(1),
    );
    let sa = e
        .server
        .object("serviceaccounts", "web", "default")
        .unwrap();
    let mut changed = sa.clone();
    changed["imagePullSecrets"] = json!([{"name": "legacy-pull"}, {"name": "added-meanwhile"}]);
    changed["metadata"]["managedFields"] = Value::Null;
    e.server.seed(changed).unwrap();
    let r = e.apply(&["-n", "web"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(
        e.pull_secrets_of("serviceaccounts", "web", "default"),
        ["legacy-pull", "added-meanwhile", "harbor-pull"]
    );
}

#[test]
fn transient_failures_are_retried() {
    let e = base_env();
    e.server.add_fault(
        Fault::new(FaultAction::Status {
            code: 429,
            retry_after: Some(1),
        })
        .verb("patch")
        .resource("secrets")
        .nth(1),
    );
    e.server.add_fault(
        Fault::status(500)
            .verb("patch")
            .resource("deployments")
            .nth(1),
    );
    e.server.add_fault(
        Fault::new(FaultAction::CloseConnection)
            .verb("patch")
            .resource("statefulsets")
            .nth(1),
    );
    let r = e.apply(&[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(e.server.object("secrets", "api", "harbor-pull").is_some());
    assert_eq!(
        e.pull_secrets_of("statefulsets", "api", "cache"),
        ["quay-pull"]
    );
    assert_eq!(e.plan().code, 0);
}

#[test]
fn a_secret_that_fails_is_never_referenced_and_the_next_run_converges() {
    let e = base_env();
    // Every write of secrets in `web` fails for good; `api` is independent and goes on.
    e.server.add_fault(
        Fault::status(403)
            .verb("patch")
            .resource("secrets")
            .share(1.0)
            .times(2),
    );
    let r = e.apply(&["--concurrency", "1"]);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(r.stdout.contains("Not applied (failed):"), "{}", r.stdout);
    assert!(
        r.stdout.contains("run apply again to converge"),
        "{}",
        r.stdout
    );
    let failed: Vec<&str> = r.stdout.lines().filter(|l| l.contains("✗")).collect();
    assert_eq!(failed.len(), 2, "{}", r.stdout);
    // The ServiceAccount in the namespace whose harbor-pull failed was not pointed at it.
    let skipped_sa = r.stdout.contains("ServiceAccount")
        && r.stdout
            .contains("not written: Secret harbor-pull was not applied");
    assert!(skipped_sa, "{}", r.stdout);
    for (ns, sa) in [("api", "default"), ("web", "default")] {
        let has_ref = e
            .pull_secrets_of("serviceaccounts", ns, sa)
            .contains(&"harbor-pull".to_string());
        let has_secret = e.server.object("secrets", ns, "harbor-pull").is_some();
        assert!(
            !has_ref || has_secret,
            "{ns}/{sa} references a Secret that does not exist"
        );
    }
    e.server.clear_faults();
    let again = e.apply(&[]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert_eq!(e.plan().code, 0);
}

#[test]
fn a_secret_regops_owns_is_restored_after_a_hand_edit_without_a_flag() {
    let e = base_env();
    assert_eq!(e.apply(&[]).code, 0);
    // Someone edits the Secret's data by hand (their field manager now owns it).
    let mut s = e.server.object("secrets", "web", "harbor-pull").unwrap();
    let applied_data = s["data"][".dockerconfigjson"].clone();
    s["data"][".dockerconfigjson"] = json!(base64_of(r#"{"auths":{}}"#));
    s["metadata"]["managedFields"] = Value::Null;
    let body = serde_json::to_vec(&s).unwrap();
    let status = put(
        &e,
        "/api/v1/namespaces/web/secrets/harbor-pull?fieldManager=kubectl-edit",
        &body,
    );
    assert_eq!(status, 200);
    let plan = e.plan();
    assert_eq!(plan.code, 2);
    assert!(
        plan.stdout.contains("auths[harbor.example.com]")
            && plan
                .stdout
                .contains("changed in the cluster by `kubectl-edit`; apply restores it"),
        "{}",
        plan.stdout
    );
    // drift promises that apply converges: it does, with no flag.
    let r = e.apply(&[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        r.stdout
            .contains("restored: overwrote the change made by `kubectl-edit`"),
        "{}",
        r.stdout
    );
    let s = e.server.object("secrets", "web", "harbor-pull").unwrap();
    assert_eq!(s["data"][".dockerconfigjson"], applied_data);
    assert_eq!(e.plan().code, 0);
}

#[test]
fn a_secret_without_this_specs_marks_is_never_overwritten() {
    let e = base_env();
    assert_eq!(e.apply(&[]).code, 0);
    // A Secret that lost this spec's ownership marks is someone else's: a conflict in the plan,
    // never written.
    let r = e.server.request(
        "PATCH",
        "/api/v1/namespaces/web/secrets/harbor-pull?fieldManager=someone",
        "application/merge-patch+json",
        Some(&json!({"metadata": {"annotations": {"regops.dev/spec": "other"}}, "data": {".dockerconfigjson": base64_of(r#"{"auths":{}}"#)}})),
    );
    assert_eq!(r.unwrap().0, 200);
    let r = e.apply(&[]);
    assert_eq!(r.code, 1, "{}", r.transcript());
    let s = e.server.object("secrets", "web", "harbor-pull").unwrap();
    assert_eq!(
        s["data"][".dockerconfigjson"],
        json!(base64_of(r#"{"auths":{}}"#)),
        "a Secret owned by another spec was overwritten"
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn put(e: &Env, path: &str, body: &[u8]) -> u16 {
    let body: Value = serde_json::from_slice(body).unwrap();
    e.server
        .request("PUT", path, "application/json", Some(&body))
        .unwrap()
        .0
}

#[test]
fn leaving_the_spec_removes_only_regops_entries_and_prune_deletes() {
    let e = base_env();
    assert_eq!(e.apply(&[]).code, 0);
    // The quay pull secret and its binding leave the spec.
    let smaller = SPEC.replace("  quay-pull: { registries: [quay], scope: web }\n", "").replace(
        "  - pullSecret: quay-pull\n    workloads: { kinds: [Deployment, StatefulSet] }\n    kubesphereAnnotation: true\n",
        "",
    );
    std::fs::write(&e.spec, smaller).unwrap();
    let r = e.apply(&[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(
        e.pull_secrets_of("deployments", "web", "frontend"),
        ["legacy-pull", "harbor-pull"],
        "untouched"
    );
    assert_eq!(
        e.pull_secrets_of("statefulsets", "api", "cache"),
        Vec::<String>::new(),
        "regops' entry went"
    );
    let sts = e.server.object("statefulsets", "api", "cache").unwrap();
    assert!(
        sts["metadata"]["annotations"]
            .get("pull-secrets.regops.dev/e2e")
            .is_none(),
        "record removed: {sts}"
    );
    assert!(r.stdout.contains("pass --prune to delete"), "{}", r.stdout);
    assert!(
        e.server.object("secrets", "web", "quay-pull").is_some(),
        "not deleted without --prune"
    );
    let r = e.apply(&["--prune"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(e.server.object("secrets", "web", "quay-pull").is_none());
    assert!(e.server.object("secrets", "web", "harbor-pull").is_some());
    assert_eq!(e.plan().code, 0);
}

#[test]
fn apply_over_500_namespaces_with_a_fifth_of_writes_failing_converges_in_one_run() {
    let e = Env::new(SPEC);
    for i in 0..500 {
        e.server.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("team-{i:03}"), "labels": {"team": "web"}}})).unwrap();
    }
    // A fifth of the writes; and the Lease's create and first renewal, which are too few for
    // a share to be sure to meet (every fault must fire: the test server checks).
    e.server
        .add_fault(Fault::status(503).verb("patch").share(0.2));
    for verb in ["create", "update"] {
        e.server.add_fault(Fault::status(503).verb(verb).nth(1));
    }
    let r = e.apply(&["--concurrency", "16", "--retry-period", "250ms"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        r.stdout.contains("Apply complete: 1500 applied, 0 failed"),
        "{}",
        r.stdout.lines().last().unwrap_or("")
    );
    let failed_503 = e.server.log().iter().filter(|l| l.status == 503).count();
    assert!(failed_503 > 200, "faults were injected: {failed_503}");
    e.server.clear_faults();
    assert_eq!(e.plan().code, 0, "converged");
}

fn lease(e: &Env) -> Option<Value> {
    e.server.object("leases", "default", "regops-e2e")
}

/// The Lease holder (and the User-Agent) names the pod when `POD_NAME` is set, as
/// deploy/controller sets it from the downward API: replicas with `hostNetwork` share their
/// node's host name, and each has pid 1.
#[test]
fn the_lock_holder_is_the_pod_when_pod_name_is_set() {
    let e = Env::new(SPEC);
    e.seed_fixture("namespaces.yaml");
    let r = run(e
        .regops("apply", &["--yes"])
        .env("POD_NAME", "regops-7d4b9c-x2k8q"));
    assert_eq!(r.code, 0, "{}", r.transcript());
    let log = e.server.log();
    let lease_writes: Vec<_> = log
        .iter()
        .filter(|l| l.resource == "leases" && l.is_write())
        .collect();
    assert!(!lease_writes.is_empty());
    assert!(
        lease_writes
            .iter()
            .all(|l| l.user_agent.contains("(regops-7d4b9c-x2k8q/")),
        "{:?}",
        lease_writes
            .iter()
            .map(|l| &l.user_agent)
            .collect::<Vec<_>>()
    );
}

#[test]
fn the_lock_is_taken_released_and_a_held_one_refuses_cleanly() {
    let e = base_env();
    assert_eq!(e.apply(&[]).code, 0);
    assert!(lease(&e).is_none(), "released at the end");
    assert!(
        e.server
            .log()
            .iter()
            .any(|l| l.resource == "leases" && l.verb == "create")
    );
    // Someone else holds it, freshly renewed.
    let now = jiff_now();
    e.server
        .seed(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "regops-e2e", "namespace": "default"},
                     "spec": {"holderIdentity": "ci-job-41", "leaseDurationSeconds": 60, "acquireTime": now, "renewTime": now}}))
        .unwrap();
    // Nothing to write: the cluster is read, found in step, and the Lease is not touched.
    e.server.clear_log();
    let r = e.apply(&["--lock-wait", "1"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(e.server.log().iter().all(|l| l.resource != "leases"));
    assert_eq!(lease(&e).unwrap()["spec"]["holderIdentity"], "ci-job-41");
    // Something to write: the held lock refuses.
    let owned = e
        .server
        .objects("secrets")
        .into_iter()
        .find(|s| s["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "regops")
        .unwrap();
    let path = format!(
        "/api/v1/namespaces/{}/secrets/{}",
        owned["metadata"]["namespace"].as_str().unwrap(),
        owned["metadata"]["name"].as_str().unwrap()
    );
    assert_eq!(
        e.server
            .request("DELETE", &path, "application/json", None)
            .unwrap()
            .0,
        200
    );
    let r = e.apply(&["--lock-wait", "1"]);
    assert_eq!(r.code, 1);
    let err = r.flat_stderr().replace("- ", "-");
    assert!(
        err.contains("another apply holds the lock default/regops-e2e since")
            && err.contains("ci-job-41"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_stale_lock_is_taken_over_with_a_warning() {
    let e = base_env();
    e.server
        .seed(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "regops-e2e", "namespace": "default"},
                     "spec": {"holderIdentity": "crashed-job", "leaseDurationSeconds": 2, "acquireTime": "2020-01-01T00:00:00.000000Z", "renewTime": "2020-01-01T00:00:00.000000Z"}}))
        .unwrap();
    // Taken over once seen unchanged for its whole duration (2 s), by this process's clock.
    let started = std::time::Instant::now();
    let r = e.apply(&[]);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "taken over on sight"
    );
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.flat_stderr().contains("warning: took over the lock default/regops-e2e: its holder `crashed-job` stopped renewing it"), "{}", r.stderr);
}

#[test]
fn two_concurrent_applies_do_not_interleave() {
    let e = base_env();
    e.server
        .add_fault(Fault::new(FaultAction::Latency(Duration::from_millis(40))).verb("patch"));
    let spawn = |e: &Env| {
        let mut c = e.regops("apply", &["--yes", "--lock-wait", "30"]);
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    let a = spawn(&e);
    let b = spawn(&e);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let outs = [
        String::from_utf8_lossy(&a.stdout).into_owned(),
        String::from_utf8_lossy(&b.stdout).into_owned(),
    ];
    // One applied everything; the other waited for the lock, then found nothing to do.
    assert_eq!(
        outs.iter()
            .filter(|o| o.contains("Apply complete: 8 applied"))
            .count(),
        1,
        "{outs:?}"
    );
    assert_eq!(
        outs.iter().filter(|o| o.contains("No changes.")).count(),
        1,
        "{outs:?}"
    );
    // Their writes did not interleave: all of one run's writes come before the other's lease.
    let log = e.server.log();
    let creates: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, l)| l.resource == "leases" && l.verb == "create" && l.status == 201)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(creates.len(), 2, "each run held the lease in turn");
    let between = &log[creates[0]..creates[1]];
    assert!(
        between
            .iter()
            .any(|l| l.resource == "leases" && l.verb == "delete"),
        "the first released it before the second took it"
    );
    assert_eq!(
        e.pull_secrets_of("serviceaccounts", "web", "default"),
        ["legacy-pull", "harbor-pull"]
    );
}

fn jiff_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // RFC 3339 in UTC, microseconds, as MicroTime is written.
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{secs}"),
            "+%Y-%m-%dT%H:%M:%S.000000Z",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_request_that_times_out_is_retried() {
    let e = base_env();
    // The first Secret write hangs for a minute; with a half-second timeout it is abandoned
    // and sent again, so the whole apply takes seconds, not a minute.
    e.server.add_fault(
        Fault::new(FaultAction::Latency(Duration::from_secs(60)))
            .verb("patch")
            .resource("secrets")
            .nth(1),
    );
    let started = std::time::Instant::now();
    let r = e.apply(&["--request-timeout", "500ms"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the hung request was waited for: {:?}",
        started.elapsed()
    );
    assert_eq!(
        e.server
            .objects("secrets")
            .iter()
            .filter(|s| s["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "regops")
            .count(),
        4
    );
    assert_eq!(e.plan().code, 0);
}

#[test]
fn the_lock_is_renewed_during_a_long_apply() {
    let e = base_env();
    e.server
        .add_fault(Fault::new(FaultAction::Latency(Duration::from_millis(400))).verb("patch"));
    let r = e.apply(&[
        "--lock-duration",
        "3s",
        "--renew-deadline",
        "2s",
        "--retry-period",
        "1s",
        "--concurrency",
        "1",
    ]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let renewals = e
        .server
        .log()
        .iter()
        .filter(|l| l.resource == "leases" && l.verb == "update" && l.status == 200)
        .count();
    assert!(
        renewals >= 1,
        "renewed every second while the apply took ~3 s: {:?}",
        e.server
            .log()
            .iter()
            .filter(|l| l.resource == "leases")
            .collect::<Vec<_>>()
    );
}

#[test]
fn without_yes_and_without_a_terminal_nothing_is_written() {
    let e = base_env();
    let r = run(&mut e.regops("apply", &[]));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr()
            .contains("not applying without confirmation")
            && r.flat_stderr().contains("--yes"),
        "{}",
        r.stderr
    );
    assert!(e.writes().is_empty(), "{:?}", e.writes());
    assert!(lease(&e).is_none(), "the lock was released");
}

fn delete(e: &Env, path: &str) -> u16 {
    e.server
        .request("DELETE", path, "application/json", None)
        .unwrap()
        .0
}

#[test]
fn drift_reports_how_the_cluster_drifted_with_exit_codes_and_metrics() {
    let e = base_env();
    assert_eq!(e.apply(&[]).code, 0);
    let metrics = e._dir.path().join("regops.prom");
    let drift = |extra: &[&str]| {
        let mut args = vec!["--metrics-file", metrics.to_str().unwrap()];
        args.extend_from_slice(extra);
        run(&mut e.regops("drift", &args))
    };
    let r = drift(&[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stdout.contains("In sync"), "{}", r.stdout);
    let m = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        m.contains("regops_drift_objects{spec=\"e2e\"} 0")
            && m.contains("regops_run_success{spec=\"e2e\"} 1")
            && m.contains("regops_last_run_timestamp_seconds{spec=\"e2e\"}"),
        "{m}"
    );

    // Four kinds of drift: a Secret deleted, a Secret's data edited, an entry removed from a
    // ServiceAccount, a new namespace in scope.
    assert_eq!(delete(&e, "/api/v1/namespaces/web/secrets/quay-pull"), 200);
    let mut s = e.server.object("secrets", "api", "harbor-pull").unwrap();
    s["data"][".dockerconfigjson"] = json!(base64_of(
        r#"{"auths":{"harbor.example.com":{"username":"robot$ci","password":"changed-by-hand","auth":"eA=="}}}"#
    ));
    s["metadata"]["managedFields"] = Value::Null;
    assert_eq!(
        put(
            &e,
            "/api/v1/namespaces/api/secrets/harbor-pull?fieldManager=kubectl-edit",
            &serde_json::to_vec(&s).unwrap()
        ),
        200
    );
    let mut sa = e
        .server
        .object("serviceaccounts", "web", "default")
        .unwrap();
    sa["imagePullSecrets"] = json!([{"name": "legacy-pull"}]);
    sa["metadata"]["managedFields"] = Value::Null;
    assert_eq!(
        put(
            &e,
            "/api/v1/namespaces/web/serviceaccounts/default",
            &serde_json::to_vec(&sa).unwrap()
        ),
        200
    );
    e.server.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web-new", "labels": {"team": "web"}}})).unwrap();
    e.server.clear_log();

    let r = drift(&["--output", "json"]);
    assert_eq!(r.code, 2, "{}", r.transcript());
    assert!(e.server.log().iter().all(|l| !l.is_write()), "drift wrote");
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["inSync"], false);
    let hows: Vec<(String, String, String)> = v["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["how"].as_str().unwrap().to_string(),
                format!(
                    "{}/{}",
                    d["namespace"].as_str().unwrap(),
                    d["name"].as_str().unwrap()
                ),
                d["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for expected in [
        ("missing", "web/quay-pull", "Secret"),
        ("data-changed", "api/harbor-pull", "Secret"),
        ("entry-removed", "web/default", "ServiceAccount"),
        ("new-namespace", "web-new/harbor-pull", "Secret"),
    ] {
        assert!(
            hows.iter()
                .any(|(h, o, k)| (h.as_str(), o.as_str(), k.as_str()) == expected),
            "{expected:?} not in {hows:?}"
        );
    }
    assert!(
        !r.stdout.contains("changed-by-hand") && !r.stdout.contains("MARKER"),
        "a credential leaked: {}",
        r.stdout
    );
    let m = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        m.contains(&format!(
            "regops_drift_objects{{spec=\"e2e\"}} {}",
            v["driftedObjects"]
        )),
        "{m}"
    );

    // An error: exit 1, and the metrics say the run failed.
    e.server
        .add_fault(Fault::status(403).verb("list").resource("secrets"));
    let r = drift(&[]);
    assert_eq!(r.code, 1, "{}", r.transcript());
    let m = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        m.contains("regops_run_success{spec=\"e2e\"} 0") && !m.contains("regops_drift_objects"),
        "{m}"
    );
}

/// The CronJob install (deploy/cronjob), applied with kubectl from `kubectl kustomize` of an
/// overlay: its RBAC allows every request an apply with the CronJob's own arguments (with
/// --prune and a replacement) and a drift make, with the server denying everything else; it
/// has no wildcards.
#[test]
#[ignore = "needs kubectl (Debian: kubernetes-client)"]
fn the_cronjob_install_covers_apply_and_drift_with_its_own_rbac() {
    let e = tls_env();
    let spec = std::fs::read_to_string(&e.spec).unwrap();
    let installed = common::install("cronjob", &e.server, &e.kubeconfig, &spec);
    let rules = installed.rules();
    let cronjob = installed.get("CronJob", "regops");
    let container = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.test/regops:test");
    let job_args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(job_args[..3], ["apply", "-f", "/spec/regops.yaml"]);
    assert_eq!(
        installed.get("ConfigMap", "regops-spec")["data"]["regops.yaml"],
        spec.as_str()
    );
    let cron_args: Vec<&str> = job_args[3..]
        .iter()
        .copied()
        .filter(|a| !["--yes", "--prune", "--lock-namespace", "regops"].contains(a))
        .collect();
    // Something to replace (a Secret of this spec with the wrong type) and, later, to prune.
    e.server
        .seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "harbor-pull", "namespace": "api",
                       "labels": {"app.kubernetes.io/managed-by": "regops"}, "annotations": {"regops.dev/spec": "e2e"}}, "type": "Opaque"}))
        .unwrap();
    e.server
        .set_policy(Some(kube_test_server::Policy { rules }));
    e.server.add_fault(
        Fault::status(409)
            .verb("patch")
            .resource("serviceaccounts")
            .nth(1),
    );
    // The CronJob's own arguments (`--output json`; `--yes` the helper adds), with --prune and the
    // lock as it has them.
    let mut args = cron_args.clone();
    args.extend(["--prune", "--lock-namespace", "regops"]);
    let r = e.apply(&args);
    assert_eq!(r.code, 0, "{}", r.transcript());
    std::fs::write(&e.spec, SPEC.replace("  quay-pull: { registries: [quay], scope: web }\n", "").replace("  - pullSecret: quay-pull\n    workloads: { kinds: [Deployment, StatefulSet] }\n    kubesphereAnnotation: true\n", "")).unwrap();
    let r = e.apply(&args);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let r = run(&mut e.regops("drift", &[]));
    assert_eq!(r.code, 0, "{}", r.transcript());
    let log = e.server.log();
    let denied: Vec<_> = log.iter().filter(|l| l.status == 403).collect();
    assert!(denied.is_empty(), "denied: {denied:?}");
    // Every verb the example grants was needed.
    // (Lease renewal, the `update` on leases, is exercised by the_lock_is_renewed_during_a_long_apply.)
    for (verb, resource) in [
        ("delete", "secrets"),
        ("get", "secrets"),
        ("get", "serviceaccounts"),
        ("patch", "statefulsets"),
        ("list", "replicasets"),
        ("create", "leases"),
        ("delete", "leases"),
        ("create", "events"),
    ] {
        let used = log.iter().any(|l| l.verb == verb && l.resource == resource);
        assert!(used, "{verb} {resource} was granted but not used: {log:?}");
    }
}

fn request(e: &Env, method: &str, path: &str, ct: &str, body: &Value) -> (u16, Value) {
    e.server.request(method, path, ct, Some(body)).unwrap()
}

#[test]
fn a_terminating_namespace_is_skipped_by_plan_apply_and_drift() {
    let e = base_env();
    // A namespace in scope, being deleted and stuck on a finalizer.
    e.server
        .seed(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "web-old", "labels": {"team": "web"}, "finalizers": ["example.com/stuck"]}}))
        .unwrap();
    let (status, _) = request(
        &e,
        "DELETE",
        "/api/v1/namespaces/web-old",
        "application/json",
        &json!({}),
    );
    assert_eq!(status, 200);
    let plan = e.plan();
    assert!(
        plan.stdout
            .contains("namespace `web-old` is being deleted; nothing is planned for it"),
        "{}",
        plan.transcript()
    );
    assert!(!plan.stdout.contains("web-old/"), "{}", plan.stdout);
    let r = e.apply(&[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        e.server
            .object("secrets", "web-old", "harbor-pull")
            .is_none()
    );
    let drift = run(&mut e.regops("drift", &[]));
    assert_eq!(drift.code, 0, "{}", drift.transcript());
}

#[test]
fn an_existing_jobs_pod_template_is_never_patched_and_its_cronjob_is() {
    let e = Env::new(&SPEC.replace(
        "workloads: { kinds: [Deployment] }",
        "workloads: { kinds: [Deployment, Job, CronJob] }",
    ));
    e.seed_fixture("namespaces.yaml");
    e.seed_fixture("workloads.yaml");
    let pod = json!({"metadata": {"labels": {"app": "report"}}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "report", "image": "harbor.example.com/web/report:1"}]}});
    let cron = e
        .server
        .seed(json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report", "namespace": "web"},
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": pod}}}}))
        .unwrap();
    e.server
        .seed(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "report-29000000", "namespace": "web",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "report",
                                 "uid": cron["metadata"]["uid"], "controller": true}]},
            "spec": {"template": pod}}))
        .unwrap();
    let plan = e.plan();
    assert!(
        plan.stdout.contains("job web/report-29000000 is not patched: a Job's pod template cannot change once it exists; bind its CronJob `report`"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("its next Jobs get this; running Jobs are unchanged"),
        "{}",
        plan.stdout
    );
    assert!(
        !plan.stdout.contains("restart pods of cronjob"),
        "{}",
        plan.stdout
    );
    let r = e.apply(&[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let cron = e.server.object("cronjobs", "web", "report").unwrap();
    assert_eq!(
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "harbor-pull"}])
    );
    let job = e.server.object("jobs", "web", "report-29000000").unwrap();
    assert!(
        job["spec"]["template"]["spec"]["imagePullSecrets"].is_null(),
        "{job}"
    );
    assert_eq!(e.plan().code, 0);
}

/// A ReplicaSet of its own and one a Deployment controls (the Deployment controller's
/// `pod-template-hash` label, as kube-controller-manager writes it).
fn seed_replica_sets(e: &Env) {
    let frontend = e.server.object("deployments", "web", "frontend").unwrap();
    let pod = |app: &str| {
        json!({"metadata": {"labels": {"app": app, "pod-template-hash": "7d4b9c"}},
               "spec": {"containers": [{"name": app, "image": "harbor.example.com/web/app:1"}]}})
    };
    e.server
        .seed(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "legacy", "namespace": "web"},
            "spec": {"selector": {"matchLabels": {"app": "legacy"}}, "template": pod("legacy")}}))
        .unwrap();
    e.server
        .seed(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "frontend-7d4b9c", "namespace": "web",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "frontend",
                                     "uid": frontend["metadata"]["uid"], "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c"}},
                     "template": pod("web")}}))
        .unwrap();
}

/// ReplicaSet is one row of the kind table (regops-spec `kind.rs`): a spec that names it
/// patches a ReplicaSet of its own, never one a Deployment controls, and a second apply writes
/// nothing.
#[test]
fn a_replica_set_named_by_a_binding_is_patched_unless_a_deployment_controls_it() {
    let e = Env::new(&SPEC.replace(
        "workloads: { kinds: [Deployment] }",
        "workloads: { kinds: [Deployment, ReplicaSet] }",
    ));
    e.seed_fixture("namespaces.yaml");
    e.seed_fixture("workloads.yaml");
    seed_replica_sets(&e);
    let plan = e.plan();
    assert_eq!(plan.code, 2, "{}", plan.transcript());
    assert!(
        plan.stdout.contains(
            "replicaset web/frontend-7d4b9c is not patched: its Deployment `frontend` writes its pod template; bind the Deployment instead"
        ),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("the pods it makes next get this; running pods are unchanged"),
        "{}",
        plan.stdout
    );
    let r = e.apply(&[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(
        e.pull_secrets_of("replicasets", "web", "legacy"),
        ["harbor-pull"]
    );
    assert!(
        e.pull_secrets_of("replicasets", "web", "frontend-7d4b9c")
            .is_empty()
    );
    e.server.clear_log();
    let again = e.apply(&[]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert!(e.writes().is_empty(), "{:?}", e.writes());
}

/// A binding that names no kinds selects the five of `WorkloadKind::defaults`: ReplicaSets are
/// not patched, and only those this spec marked are read (a label-selected LIST); RBAC that
/// grants no ReplicaSets is no error then.
#[test]
fn replica_sets_are_read_only_where_marked_unless_a_binding_names_them() {
    let e = Env::new(&SPEC.replace("workloads: { kinds: [Deployment] }", "workloads: {}"));
    e.seed_fixture("namespaces.yaml");
    e.seed_fixture("workloads.yaml");
    seed_replica_sets(&e);
    let r = e.apply(&[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let log = e.server.log();
    assert!(
        log.iter().any(|l| l.resource == "cronjobs"),
        "the default kinds are read"
    );
    let rs: Vec<_> = log.iter().filter(|l| l.resource == "replicasets").collect();
    assert!(!rs.is_empty());
    assert!(
        rs.iter()
            .all(|l| l.verb == "list" && l.query.contains("labelSelector=pull-secrets.regops.dev")),
        "{:?}",
        rs.iter().map(|l| (&l.verb, &l.query)).collect::<Vec<_>>()
    );
    assert!(e.pull_secrets_of("replicasets", "web", "legacy").is_empty());
    assert!(
        e.pull_secrets_of("deployments", "web", "frontend")
            .contains(&"harbor-pull".to_string())
    );
    // Without any RBAC on ReplicaSets (as before they were a kind), the same spec plans.
    e.server.set_policy(Some(kube_test_server::Policy {
        rules: vec![kube_test_server::Rule::new(
            &["list"],
            &[
                "namespaces",
                "secrets",
                "serviceaccounts",
                "deployments",
                "statefulsets",
                "daemonsets",
                "jobs",
                "cronjobs",
            ],
        )],
    }));
    let plan = e.plan();
    assert_eq!(plan.code, 0, "{}", plan.transcript());
    assert!(
        e.server
            .log()
            .iter()
            .any(|l| l.resource == "replicasets" && l.status == 403),
        "the LIST was refused, and that was no error"
    );
}

/// A binding that named ReplicaSets and no longer does: the entries it added are removed (the
/// ReplicaSets regops marked are still read), and nothing else of the ReplicaSet changes.
#[test]
fn entries_on_replica_sets_are_removed_when_the_binding_stops_naming_them() {
    let named = SPEC.replace(
        "workloads: { kinds: [Deployment] }",
        "workloads: { kinds: [Deployment, ReplicaSet] }",
    );
    let e = Env::new(&named);
    e.seed_fixture("namespaces.yaml");
    e.seed_fixture("workloads.yaml");
    seed_replica_sets(&e);
    assert_eq!(e.apply(&[]).code, 0);
    assert_eq!(
        e.pull_secrets_of("replicasets", "web", "legacy"),
        ["harbor-pull"]
    );
    std::fs::write(&e.spec, SPEC).unwrap();
    let r = e.apply(&[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        e.pull_secrets_of("replicasets", "web", "legacy").is_empty(),
        "{}",
        r.transcript()
    );
    let legacy = e.server.object("replicasets", "web", "legacy").unwrap();
    assert!(
        legacy["metadata"]["labels"]
            .as_object()
            .is_none_or(|l| !l.keys().any(|k| k.starts_with("pull-secrets.regops.dev"))),
        "{legacy}"
    );
    assert_eq!(e.plan().code, 0, "converged");
}

#[test]
fn the_kubesphere_annotation_is_merged_on_the_pod_template_keeping_the_consoles_containers() {
    let e = base_env();
    // KubeSphere's console chose a pull secret for another container, on the pod template;
    // its field manager owns the annotation.
    let (status, body) = request(
        &e,
        "PATCH",
        "/apis/apps/v1/namespaces/api/statefulsets/cache?fieldManager=ks-console",
        "application/merge-patch+json",
        &json!({"spec": {"template": {"metadata": {"annotations": {"kubesphere.io/imagepullsecrets": r#"{"exporter":"console-pull"}"#}}}}}),
    );
    assert_eq!(status, 200, "{body}");
    let r = e.apply(&[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let sts = e.server.object("statefulsets", "api", "cache").unwrap();
    assert_eq!(
        sts["spec"]["template"]["metadata"]["annotations"]["kubesphere.io/imagepullsecrets"],
        r#"{"exporter":"console-pull","redis":"quay-pull"}"#
    );
    // The console writes again, adding a container: regops' container is still there, so
    // nothing is to do, and the console's choice is kept.
    let (status, _) = request(
        &e,
        "PATCH",
        "/apis/apps/v1/namespaces/api/statefulsets/cache?fieldManager=ks-console",
        "application/merge-patch+json",
        &json!({"spec": {"template": {"metadata": {"annotations": {"kubesphere.io/imagepullsecrets": r#"{"exporter":"console-pull","init":"console-pull","redis":"quay-pull"}"#}}}}}),
    );
    assert_eq!(status, 200);
    let plan = e.plan();
    assert_eq!(plan.code, 0, "{}", plan.transcript());
}

#[test]
fn the_annotation_earlier_versions_put_on_workload_metadata_moves_to_the_pod_template() {
    let e = base_env();
    // An earlier regops applied the annotation to the StatefulSet's own metadata.
    let (status, body) = request(
        &e,
        "PATCH",
        "/apis/apps/v1/namespaces/api/statefulsets/cache?fieldManager=regops.e2e",
        "application/apply-patch+yaml",
        &json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "cache",
            "annotations": {"kubesphere.io/imagepullsecrets": r#"{"redis":"quay-pull"}"#}}}),
    );
    assert_eq!(status, 200, "{body}");
    let plan = e.plan();
    assert!(
        plan.stdout
            .contains("the KubeSphere annotation moves to the pod template"),
        "{}",
        plan.stdout
    );
    let r = e.apply(&[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let sts = e.server.object("statefulsets", "api", "cache").unwrap();
    assert!(
        sts["metadata"]["annotations"]["kubesphere.io/imagepullsecrets"].is_null(),
        "{sts}"
    );
    assert_eq!(
        sts["spec"]["template"]["metadata"]["annotations"]["kubesphere.io/imagepullsecrets"],
        r#"{"redis":"quay-pull"}"#
    );
    assert_eq!(e.plan().code, 0);
}

/// Seeds two Secrets of this spec in `ns`: `harbor-pull` of the wrong type (the plan replaces
/// it) and `retired-pull`, which the spec no longer wants (deleted with --prune).
fn seed_replacement_and_orphan(e: &Env, ns: &str) {
    for (name, ty) in [
        ("harbor-pull", "Opaque"),
        ("retired-pull", "kubernetes.io/dockerconfigjson"),
    ] {
        e.server
            .seed(json!({"apiVersion": "v1", "kind": "Secret", "type": ty,
                "metadata": {"name": name, "namespace": ns,
                    "labels": {"app.kubernetes.io/managed-by": "regops"},
                    "annotations": {"regops.dev/spec": "e2e"}},
                "data": {".dockerconfigjson": base64_of(r#"{"auths":{}}"#)}}))
            .unwrap();
    }
}

#[test]
fn a_server_dry_run_with_a_replacement_and_prune_changes_nothing() {
    let e = base_env();
    // A Secret of this spec whose type must change (a replacement), and one the spec no longer
    // wants (a deletion with --prune).
    seed_replacement_and_orphan(&e, "web");
    let before = e.server.objects("secrets");
    let r = e.apply(&["--dry-run=server", "--prune"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stdout.contains("would replace"), "{}", r.stdout);
    assert_eq!(
        e.server.objects("secrets"),
        before,
        "a server-side dry run changed the store"
    );
    let log = e.server.log();
    assert!(
        log.iter()
            .filter(|l| l.verb == "delete")
            .all(|l| l.dry_run && l.status == 200),
        "{log:?}"
    );
}

#[test]
fn verbose_logs_each_request_and_never_a_credential_or_token() {
    let e = base_env();
    let token = e.server.token().map(str::to_string);
    let check = |what: &str, r: &Run| {
        assert!(
            !r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"),
            "{what} leaked a credential:\n{}",
            r.transcript()
        );
        if let Some(t) = &token {
            assert!(
                !r.stderr.contains(t.as_str()) && !r.stdout.contains(t.as_str()),
                "{what} logged the bearer token"
            );
        }
        assert!(
            !r.stderr.to_lowercase().contains("authorization"),
            "{what} logged a header:\n{}",
            r.stderr
        );
    };
    // -v: one line per request with verb, path, status and duration.
    let plan = run(&mut e.regops("plan", &["-v"]));
    check("plan -v", &plan);
    assert!(
        plan.stderr
            .lines()
            .any(|l| l.starts_with("regops: GET /api/v1/namespaces?")
                && l.contains(" 200 OK in ")
                && l.ends_with(" ms")),
        "{}",
        plan.stderr
    );
    // -vv during an apply with a fault: the writes (whose bodies hold the Secrets) and the
    // retry are logged, never a body.
    e.server
        .add_fault(Fault::status(503).verb("patch").resource("secrets").nth(1));
    let r = e.apply(&["-vv"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    check("apply -vv", &r);
    assert!(
        r.stderr.contains("PATCH /api/v1/namespaces/")
            && r.stderr.contains("/secrets/harbor-pull?")
            && r.stderr.contains("503 Service Unavailable")
            && r.stderr.contains("retrying in "),
        "{}",
        r.stderr
    );
    // RUST_LOG does what -v does.
    let mut cmd = e.regops("drift", &[]);
    cmd.env("RUST_LOG", "regops=debug");
    let drift = run(&mut cmd);
    check("drift with RUST_LOG", &drift);
    assert!(
        drift.stderr.contains("regops: GET /api/v1/"),
        "{}",
        drift.stderr
    );
    // Quiet by default.
    let quiet = e.plan();
    assert!(!quiet.stderr.contains("regops: GET "), "{}", quiet.stderr);
}

/// `regops apply | tee log` on a terminal: stderr is the terminal, stdout a pipe. The plan and
/// report go to stdout, so they are coloured by stdout's setting: no escape codes in the log.
/// (util-linux `script` gives the command a terminal; the test is skipped where it is missing,
/// except in CI.)
#[test]
#[ignore = "needs script, for a terminal (Debian: bsdutils)"]
fn apply_colours_its_stdout_by_stdout_not_by_stderr() {
    common::require("script", "--version", "Debian: bsdutils");
    let e = base_env();
    let log = e._dir.path().join("log.txt");
    let cmd = e.regops("apply", &["--yes"]);
    let shell = format!(
        "script -qec \"{} | cat > '{}'\" /dev/null",
        shell_line(&cmd),
        log.display()
    );
    let out = in_shell(&cmd, &shell).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("Apply complete"), "{logged}");
    assert!(
        !logged.contains('\u{1b}'),
        "escape codes in the piped stdout:\n{logged:?}"
    );
}

/// Reads are retried like writes: a LIST page answered 503, and one that stalls past
/// `--request-timeout` (kubectl's duration syntax), do not abort a plan or a drift run.
#[test]
fn a_failed_or_stalled_list_is_retried_by_plan_and_drift() {
    let e = base_env();
    e.server.add_fault(
        Fault::status(503)
            .verb("list")
            .resource("namespaces")
            .nth(1),
    );
    e.server.add_fault(
        Fault::new(FaultAction::Latency(Duration::from_secs(60)))
            .verb("list")
            .resource("serviceaccounts")
            .nth(1),
    );
    let plan = run(&mut e.regops("plan", &["--request-timeout", "500ms", "-vv"]));
    assert_eq!(plan.code, 2, "{}", plan.transcript());
    assert!(plan.stderr.contains("retrying in "), "{}", plan.stderr);
    let lists = |resource: &str| {
        e.server
            .log()
            .iter()
            .filter(|l| l.verb == "list" && l.resource == resource)
            .count()
    };
    assert_eq!(lists("namespaces"), 2, "the 503 was retried");
    e.server
        .add_fault(Fault::status(503).verb("list").resource("secrets").nth(1));
    let drift = run(&mut e.regops("drift", &["--request-timeout", "1s"]));
    assert_eq!(
        drift.code,
        2,
        "drift completed and found the pending changes: {}",
        drift.transcript()
    );
    let bad = run(&mut e.regops("plan", &["--request-timeout", "0"]));
    assert_eq!(
        bad.code,
        1,
        "clap refuses a zero timeout, a usage error: {}",
        bad.transcript()
    );
    assert!(
        bad.stderr.contains("must be longer than zero"),
        "{}",
        bad.stderr
    );
}

/// "Applied, but the response was lost": a share of every write (Secrets, ServiceAccounts,
/// workloads, deletions, the Lease) is carried out by the server and then answered with 503 or
/// not answered at all. Retries must find the work done: a retried delete that meets 404 has
/// succeeded, a retried Lease create that meets 409 and finds its own holder has the lock, a
/// retried apply is idempotent. Everything converges in one run and nothing that succeeded is
/// reported failed.
#[test]
fn writes_whose_answers_are_lost_converge_and_none_is_reported_failed() {
    let e = base_env();
    // A replacement and a deletion (with --prune) in the plan, besides creates and patches.
    seed_replacement_and_orphan(&e, "api");
    // Each fault fires once: a few lost answers in a row at most for any one write, fewer
    // than the retry policy's eight attempts, so convergence in one run is certain.
    // Patches (every Secret and reference): the second and the fourth each fault sees (a
    // share of them left it to chance whether a fault met any, and the test server fails a
    // test whose fault never fired). Creates (the Lease), deletes (the replacement, the prune,
    // the Lease's release) and updates (the Lease's renewals, every --retry-period) are few:
    // the first one's answer is an error after it was stored, the next one's is lost (a fault
    // checked first and fired is not seen by the next, so both are `nth(1)` of what each
    // sees).
    for (action, nth_patch) in [
        (FaultAction::CommitThenStatus(503), 2),
        (FaultAction::CommitThenDrop, 4),
    ] {
        e.server
            .add_fault(Fault::new(action.clone()).verb("patch").nth(nth_patch));
        for verb in ["create", "delete", "update"] {
            e.server
                .add_fault(Fault::new(action.clone()).verb(verb).nth(1));
        }
    }
    let r = e.apply(&[
        "--prune",
        "--concurrency",
        "2",
        "--retry-period",
        "50ms",
        "--renew-deadline",
        "1s",
        "--lock-duration",
        "2s",
    ]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stdout.contains(", 0 failed, 0 skipped"), "{}", r.stdout);
    let lost = e
        .server
        .log()
        .iter()
        .filter(|l| l.is_write() && (l.status == 0 || l.status == 503))
        .count();
    assert!(lost >= 3, "answers were lost: {lost}");
    assert!(lease(&e).is_none(), "the lock was released");
    e.server.clear_faults();
    assert_eq!(e.plan().code, 0, "converged");
    assert!(e.server.object("secrets", "api", "retired-pull").is_none());
}

/// A Lease create whose answer is lost: the retry meets 409, reads the Lease, finds its own
/// holder identity and holds the lock (it used to wait out --lock-wait and fail).
#[test]
fn a_lease_create_whose_answer_was_lost_holds_the_lock() {
    let e = base_env();
    e.server.add_fault(
        Fault::new(FaultAction::CommitThenDrop)
            .verb("create")
            .resource("leases")
            .nth(1),
    );
    let started = std::time::Instant::now();
    let r = e.apply(&["--lock-wait", "5"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it waited for itself"
    );
    assert!(lease(&e).is_none(), "released");
}

/// The Lease is taken over while apply runs (as after a long stall): renewal sees another
/// holder, apply starts no further write and exits 1 saying so, and its release leaves the new
/// holder's Lease alone.
#[test]
fn a_lease_stolen_mid_apply_stops_the_writes_and_is_not_released() {
    let e = base_env();
    // Slow writes, one at a time, so the apply is still writing when the Lease changes hands.
    e.server
        .add_fault(Fault::new(FaultAction::Latency(Duration::from_millis(700))).verb("patch"));
    let child = e
        .regops(
            "apply",
            &[
                "--yes",
                "--concurrency",
                "1",
                "--lock-duration",
                "3s",
                "--renew-deadline",
                "2s",
                "--retry-period",
                "1s",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the Lease, then hand it to someone else.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut held = lease(&e);
    while held.is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        held = lease(&e);
    }
    let mut stolen = held.expect("the apply took the lock");
    stolen["spec"]["holderIdentity"] = json!("thief/1");
    stolen["metadata"]["managedFields"] = Value::Null;
    let (status, body) = request(
        &e,
        "PUT",
        "/apis/coordination.k8s.io/v1/namespaces/default/leases/regops-e2e",
        "application/json",
        &stolen,
    );
    assert_eq!(status, 200, "{body}");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("the lock was lost during the apply"),
        "{stderr}"
    );
    assert!(
        stdout.contains("not written: the lock was lost"),
        "writes after the loss were not started: {stdout}"
    );
    assert_eq!(
        lease(&e).unwrap()["spec"]["holderIdentity"],
        "thief/1",
        "the new holder's Lease was deleted"
    );
}

/// Another holder whose clock is two hours behind: its renewTime looks ancient, but it keeps
/// renewing, so it is alive. Judged by observed time, its Lease is never taken over.
#[test]
fn a_live_holder_with_a_skewed_clock_is_not_taken_over() {
    let e = base_env();
    let old = "2020-01-01T00:00:00.000000Z";
    e.server
        .seed(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "regops-e2e", "namespace": "default"},
                     "spec": {"holderIdentity": "skewed/7", "leaseDurationSeconds": 2, "acquireTime": old, "renewTime": old}}))
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let r = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                // Renewed with its own (skewed) clock: a few seconds past 2020.
                let t = format!("2020-01-01T00:00:{:02}.000000Z", n % 60);
                let _ = e.server.request(
                    "PATCH",
                    "/apis/coordination.k8s.io/v1/namespaces/default/leases/regops-e2e",
                    "application/merge-patch+json",
                    Some(&json!({"spec": {"renewTime": t}})),
                );
                std::thread::sleep(Duration::from_millis(400));
            }
        });
        let r = e.apply(&["--lock-wait", "5"]);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        r
    });
    assert_eq!(
        r.code,
        1,
        "a live holder was taken over: {}",
        r.transcript()
    );
    assert!(
        r.flat_stderr().contains("another apply holds the lock"),
        "{}",
        r.stderr
    );
    assert_eq!(lease(&e).unwrap()["spec"]["holderIdentity"], "skewed/7");
}

/// Waiting for a typed `yes` longer than the lease lasts: renewal goes on meanwhile, so a
/// second apply still finds the lock held. (A terminal comes from util-linux `script`.)
#[test]
#[ignore = "needs script, for a terminal (Debian: bsdutils)"]
fn a_slow_confirmation_keeps_the_lock() {
    common::require("script", "--version", "Debian: bsdutils");
    let e = base_env();
    let cmd = e.regops(
        "apply",
        &[
            "--lock-duration",
            "2s",
            "--renew-deadline",
            "1s",
            "--retry-period",
            "250ms",
        ],
    );
    // `yes` is typed 5 s later: two and a half lease durations.
    let shell = format!(
        "(sleep 5; echo yes) | script -qec \"{}\" /dev/null",
        shell_line(&cmd)
    );
    let first = in_shell(&cmd, &shell)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The second apply starts once the first has held the lock, renewing it, for longer than
    // the lease lasts (2 s) while it waits for `yes`: read from the Lease's own times, not
    // from a fixed sleep.
    let micro = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let held_for = lease(&e).map(|l| {
            micro(&l["spec"]["renewTime"]).duration_since(micro(&l["spec"]["acquireTime"]))
        });
        if held_for.is_some_and(|d| d >= jiff::SignedDuration::from_millis(2500)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first apply did not hold the lock past its duration: {:?}",
            lease(&e)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = e.apply(&["--lock-wait", "0"]);
    let out = first.wait_with_output().unwrap();
    let first_out = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        second.code,
        1,
        "the second apply got the lock while the first waited for `yes`: {}",
        second.transcript()
    );
    assert!(
        second
            .flat_stderr()
            .contains("another apply holds the lock"),
        "{}",
        second.stderr
    );
    assert!(out.status.success(), "{first_out}");
    assert!(first_out.contains("Apply complete"), "{first_out}");
}

/// `cmd` as one line for `sh -c` (program and quoted arguments).
fn shell_line(cmd: &std::process::Command) -> String {
    let mut line: Vec<String> = vec![cmd.get_program().to_string_lossy().into_owned()];
    line.extend(cmd.get_args().map(|a| format!("'{}'", a.to_string_lossy())));
    line.join(" ")
}

/// `sh -c shell` with `cmd`'s environment, and without NO_COLOR.
fn in_shell(cmd: &std::process::Command, shell: &str) -> std::process::Command {
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", shell]);
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    sh.env_remove("NO_COLOR");
    sh
}

/// A Secret made with `kubectl apply` carries `kubectl.kubernetes.io/last-applied-configuration`,
/// a copy of its data. Adopted, its password rotated by regops, the old password would stay
/// readable there: the plan says the copy goes, apply removes it, and the next plan is clean
/// (issue 39).
#[test]
fn adoption_removes_kubectls_copy_of_the_old_data() {
    let e = Env::new(&SPEC.replace(
        "harbor-pull: { registries: [harbor], scope: web }",
        "harbor-pull: { registries: [harbor], scope: web, adopt: true }",
    ));
    e.seed_fixture("namespaces.yaml");
    let old = r#"{"auths":{"harbor.example.com":{"username":"robot$ci","password":"OLD-PASSWORD-MARKER"}}}"#;
    let last_applied =
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "harbor-pull", "namespace": "web"},
        "data": {".dockerconfigjson": base64_of(old)}})
        .to_string();
    e.server
        .seed(
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "harbor-pull", "namespace": "web",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied}},
            "data": {".dockerconfigjson": base64_of(old)}}),
        )
        .unwrap();
    let plan = e.plan();
    assert!(
        plan.stdout
            .contains("metadata.annotations[kubectl.kubernetes.io/last-applied-configuration]: (sensitive value) → (none)"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("OLD-PASSWORD"), "{}", plan.stdout);
    let r = e.apply(&[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let s = e.server.object("secrets", "web", "harbor-pull").unwrap();
    assert!(
        s["metadata"]["annotations"]
            .get("kubectl.kubernetes.io/last-applied-configuration")
            .is_none(),
        "{s}"
    );
    assert!(
        !s.to_string().contains(&base64_of(old)),
        "the old data is gone everywhere"
    );
    let again = e.plan();
    assert!(
        !again.stdout.contains("last-applied-configuration"),
        "{}",
        again.stdout
    );
}
