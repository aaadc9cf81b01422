//! Workload kinds a spec declares (`workloadKinds:`), end to end against the test server
//! serving their CustomResourceDefinitions: Argo Rollouts and OpenKruise CloneSets are planned,
//! applied (server-side apply of only regops' entries, a second apply writing nothing),
//! checked for drift, and kept in step by `apply --watch`.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Run, regops, run};
use kube_test_server::resources::{Crd, register_crd};
use serde_json::{Value, json};

const SPEC: &str = "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: kinds }
registries:
  harbor: { server: harbor.example.com, credential: robot }
credentials:
  robot: { username: robot$ci, password: { env: REGOPS_CRED_HARBOR_TOKEN } }
scopes:
  web: { namespaces: [web] }
pullSecrets:
  harbor-pull: { registries: [harbor], scope: web }
workloadKinds:
  Rollout: { apiVersion: argoproj.io/v1alpha1, resource: rollouts, podTemplate: spec.template }
  CloneSet: { apiVersion: apps.kruise.io/v1alpha1, resource: clonesets, podTemplate: spec.template }
bindings:
  - { pullSecret: harbor-pull, workloads: { kinds: [Rollout, CloneSet, ReplicaSet] } }
";

const ROLLOUTS: &str = "/apis/argoproj.io/v1alpha1/namespaces/web/rollouts";
const CLONESETS: &str = "/apis/apps.kruise.io/v1alpha1/namespaces/web/clonesets";

/// The CustomResourceDefinitions of Argo Rollouts and OpenKruise, as the test server serves
/// them.
fn register_crds() {
    for (group, kind, plural) in [
        ("argoproj.io", "Rollout", "rollouts"),
        ("apps.kruise.io", "CloneSet", "clonesets"),
    ] {
        register_crd(&Crd {
            group: group.into(),
            version: "v1alpha1".into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced: true,
        });
    }
}

fn pod(app: &str, pulls: &[&str]) -> Value {
    let pulls: Vec<Value> = pulls.iter().map(|n| json!({"name": n})).collect();
    json!({"metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": app, "image": format!("harbor.example.com/web/{app}:1")}],
                 "imagePullSecrets": pulls}})
}

/// A Rollout with its own template (and an entry someone else added), the two ReplicaSets it
/// made, a Rollout that runs a Deployment's template through `workloadRef`, and a CloneSet.
fn cluster() -> common::Cluster {
    register_crds();
    let c = common::Cluster::new(SPEC);
    common::seed_fixture(&c.server, "namespaces.yaml");
    let seed = |v: Value| {
        c.server.seed(v).unwrap();
    };
    let checkout = c
        .server
        .seed(
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "checkout", "namespace": "web"},
            "spec": {"selector": {"matchLabels": {"app": "checkout"}},
                     "strategy": {"canary": {"steps": [{"setWeight": 20}]}},
                     "template": pod("checkout", &["theirs"])}}),
        )
        .unwrap();
    for hash in ["5f8d6", "6c9e1"] {
        seed(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("checkout-{hash}"), "namespace": "web",
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                    "name": "checkout", "uid": checkout["metadata"]["uid"], "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "checkout"}},
                     "template": pod("checkout", &[])}}));
    }
    seed(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "cart", "namespace": "web"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "cart"}}, "template": pod("cart", &[])}}));
    seed(
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "cart", "namespace": "web"},
        "spec": {"selector": {"matchLabels": {"app": "cart"}},
                 "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cart"}}}),
    );
    seed(
        json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
        "metadata": {"name": "search", "namespace": "web"},
        "spec": {"replicas": 3, "template": pod("search", &[])}}),
    );
    c
}

fn command(c: &common::Cluster, sub: &str, extra: &[&str]) -> std::process::Command {
    let mut cmd = regops();
    cmd.arg(sub)
        .arg("-f")
        .arg(&c.spec)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(extra)
        .env("REGOPS_CRED_HARBOR_TOKEN", "MARKER-kinds");
    cmd
}

fn regops_run(c: &common::Cluster, sub: &str, extra: &[&str]) -> Run {
    let r = run(&mut command(c, sub, extra));
    assert!(
        !r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"),
        "a credential leaked:\n{}",
        r.transcript()
    );
    r
}

fn entries(c: &common::Cluster, plural: &str, name: &str) -> Vec<String> {
    let o = c.server.object(plural, "web", name).unwrap();
    o["spec"]["template"]["spec"]["imagePullSecrets"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn writes(c: &common::Cluster) -> Vec<String> {
    c.server
        .log()
        .iter()
        .filter(|e| e.is_write() && e.resource != "leases" && e.resource != "events")
        .map(|e| format!("{} {} {}", e.verb, e.resource, e.path))
        .collect()
}

#[test]
fn rollouts_and_clone_sets_are_planned_applied_once_and_checked_for_drift() {
    let c = cluster();
    let plan = regops_run(&c, "plan", &[]);
    assert_eq!(plan.code, 2, "{}", plan.transcript());
    for needle in [
        "~ Rollout checkout  (will roll its pods)",
        "~ CloneSet search  (will roll its pods)",
        "replicaset web/checkout-5f8d6 is not patched: its Rollout `checkout` writes its pod template; bind the Rollout instead",
        "replicaset web/checkout-6c9e1 is not patched: its Rollout `checkout` writes its pod template; bind the Rollout instead",
        "rollout web/cart is not patched: it runs the pod template of its `workloadRef`, Deployment `cart`; bind that Deployment instead",
    ] {
        assert!(
            plan.stdout.contains(needle),
            "no {needle:?} in\n{}",
            plan.stdout
        );
    }
    // The JSON plan names the declared kinds as it names the built-in ones.
    let json_plan = regops_run(&c, "plan", &["-o", "json"]);
    let v: Value = serde_json::from_str(&json_plan.stdout).unwrap();
    let kinds: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ch| ch["action"] != "noop")
        .map(|ch| ch["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"Rollout") && kinds.contains(&"CloneSet"),
        "{kinds:?}"
    );

    c.server.clear_log();
    let r = regops_run(&c, "apply", &["--yes"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    // Only regops' entry is applied: the entry someone else added stays theirs.
    assert_eq!(
        entries(&c, "rollouts", "checkout"),
        ["theirs", "harbor-pull"]
    );
    assert_eq!(entries(&c, "clonesets", "search"), ["harbor-pull"]);
    for rs in ["checkout-5f8d6", "checkout-6c9e1"] {
        assert!(entries(&c, "replicasets", rs).is_empty(), "{rs}");
    }
    assert!(c.server.object("rollouts", "web", "cart").unwrap()["spec"]["template"].is_null());
    assert!(entries(&c, "deployments", "cart").is_empty());
    // By server-side apply, with the field manager of every workload regops writes.
    let patches: Vec<_> = c
        .server
        .log()
        .into_iter()
        .filter(|e| e.is_write() && matches!(e.resource.as_str(), "rollouts" | "clonesets"))
        .collect();
    assert_eq!(patches.len(), 2, "{patches:?}");
    for p in &patches {
        assert_eq!(p.verb, "patch", "{p:?}");
    }
    let rollout = c.server.object("rollouts", "web", "checkout").unwrap();
    let managers: Vec<(&str, &str)> = rollout["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap(),
                m["operation"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("regops.kinds", "Apply")),
        "{managers:?}"
    );

    c.server.clear_log();
    let again = regops_run(&c, "apply", &["--yes"]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert!(writes(&c).is_empty(), "{:?}", writes(&c));

    let drift = regops_run(&c, "drift", &[]);
    assert_eq!(drift.code, 0, "{}", drift.transcript());
    // An entry removed by hand is drift, named by kind.
    let (code, body) = c.server.admin(
        "PATCH",
        &format!("{CLONESETS}/search"),
        "application/json-patch+json",
        &json!([{"op": "remove", "path": "/spec/template/spec/imagePullSecrets"}]),
    );
    assert_eq!(code, 200, "{body}");
    let drift = regops_run(&c, "drift", &[]);
    assert_eq!(drift.code, 2, "{}", drift.transcript());
    assert!(
        drift.stdout.contains("CloneSet") && drift.stdout.contains("search"),
        "{}",
        drift.stdout
    );
}

/// A controller kept under test: its output, and killed when dropped.
struct Controller {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Controller {
    fn start(c: &common::Cluster) -> Controller {
        let mut cmd = command(c, "apply", &["--watch", "--listen", "127.0.0.1:0"]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
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
        Controller { child, lines }
    }

    fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

#[test]
fn apply_watch_lists_and_watches_the_declared_kinds() {
    let _timing = common::timing();
    let c = cluster();
    let controller = Controller::start(&c);
    let converged = common::wait_until("the first apply", Duration::from_secs(20), || {
        entries(&c, "rollouts", "checkout") == ["theirs", "harbor-pull"]
            && entries(&c, "clonesets", "search") == ["harbor-pull"]
    });
    assert!(converged, "{}", controller.log());
    // The declared resources are listed and watched.
    let watched: Vec<String> = c
        .server
        .log()
        .iter()
        .filter(|e| e.verb == "watch")
        .map(|e| e.resource.clone())
        .collect();
    for resource in ["rollouts", "clonesets"] {
        assert!(
            watched.iter().any(|r| r == resource),
            "{resource} not watched: {watched:?}\n{}",
            controller.log()
        );
    }
    // A CloneSet created now is patched through the watch.
    let (code, body) = c.server.admin(
        "POST",
        CLONESETS,
        "application/json",
        &json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
            "metadata": {"name": "index", "namespace": "web"},
            "spec": {"replicas": 1, "template": pod("index", &[])}}),
    );
    assert_eq!(code, 201, "{body}");
    let patched = common::wait_until("the new CloneSet", Duration::from_secs(20), || {
        entries(&c, "clonesets", "index") == ["harbor-pull"]
    });
    assert!(patched, "{}", controller.log());
    // And an entry removed from a Rollout by hand is put back.
    let (code, body) = c.server.admin(
        "PATCH",
        &format!("{ROLLOUTS}/checkout"),
        "application/merge-patch+json",
        &json!({"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "theirs"}]}}}}),
    );
    assert_eq!(code, 200, "{body}");
    let restored = common::wait_until("the Rollout's entry", Duration::from_secs(20), || {
        entries(&c, "rollouts", "checkout") == ["theirs", "harbor-pull"]
    });
    assert!(restored, "{}", controller.log());
    assert!(!controller.log().contains("MARKER"), "{}", controller.log());
}

/// A saved plan records the kinds its spec declared, so that it reads back (before the spec
/// is loaded) and applies exactly: each change carries its kind's apiVersion.
#[test]
fn a_saved_plan_of_declared_kinds_applies_as_planned() {
    let c = cluster();
    let file = c.dir.path().join("plan.json");
    let mut plan = regops();
    plan.args([
        "plan",
        "-f",
        "regops.yaml",
        "--out",
        "plan.json",
        "--kubeconfig",
    ])
    .arg(&c.kubeconfig)
    .current_dir(c.dir.path())
    .env("REGOPS_CRED_HARBOR_TOKEN", "MARKER-kinds");
    let saved = run(&mut plan);
    assert_eq!(saved.code, 2, "{}", saved.transcript());
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(doc["formatVersion"], "3");
    assert_eq!(
        doc["workloadKinds"],
        json!([
            {"kind": "CloneSet", "apiVersion": "apps.kruise.io/v1alpha1", "resource": "clonesets", "podTemplate": "spec.template"},
            {"kind": "Rollout", "apiVersion": "argoproj.io/v1alpha1", "resource": "rollouts", "podTemplate": "spec.template"}
        ])
    );
    let rollout = doc["plan"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ch| ch["kind"] == "Rollout")
        .unwrap();
    assert_eq!(rollout["apiVersion"], "argoproj.io/v1alpha1");
    let mut apply = regops();
    apply
        .arg("apply")
        .arg(&file)
        .arg("--yes")
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .current_dir(c.dir.path())
        .env("REGOPS_CRED_HARBOR_TOKEN", "MARKER-kinds");
    let r = run(&mut apply);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(
        entries(&c, "rollouts", "checkout"),
        ["theirs", "harbor-pull"]
    );
    assert_eq!(entries(&c, "clonesets", "search"), ["harbor-pull"]);
}
