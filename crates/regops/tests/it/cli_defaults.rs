//! The command line as kubectl and terraform users expect it (issue 39): `-f` found in the
//! current directory as kustomize finds its file, `--dry-run=client` as a plan, a saved plan
//! applied without asking, `--out` for files and `-n` for namespaces everywhere, the old
//! spellings still working with a warning.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::path::{Path, PathBuf};

use common::{regops, run};

fn quickstart(file: &str) -> PathBuf {
    common::repo().join("examples/quickstart").join(file)
}

fn key() -> String {
    quickstart("example-key.txt").display().to_string()
}

/// A directory holding the quickstart's spec as `name`.
fn dir_with(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(quickstart("regops.yaml")).unwrap();
    for name in names {
        if let Some(d) = name.strip_suffix('/') {
            std::fs::create_dir(dir.path().join(d)).unwrap();
            std::fs::write(dir.path().join(d).join("regops.yaml"), &spec).unwrap();
        } else {
            std::fs::write(dir.path().join(name), &spec).unwrap();
        }
    }
    dir
}

fn check_in(dir: &Path) -> common::Run {
    run(regops().current_dir(dir).args(["check", "-i", &key()]))
}

#[test]
fn the_spec_is_found_in_the_current_directory() {
    for name in ["regops.yaml", "regops.yml", "regops/"] {
        let dir = dir_with(&[name]);
        let r = check_in(dir.path());
        assert_eq!(r.code, 0, "{name}: {}", r.transcript());
        assert!(
            r.stderr.contains("spec `quickstart` is valid"),
            "{}",
            r.stderr
        );
    }
    // Two candidates: an error naming both.
    let dir = dir_with(&["regops.yaml", "regops/"]);
    let r = check_in(dir.path());
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("regops.yaml") && r.stderr.contains("regops,")
            || r.stderr.contains("regops.yaml, regops"),
        "{}",
        r.stderr
    );
    // None: an error saying what was looked for.
    let dir = dir_with(&[]);
    let r = check_in(dir.path());
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no spec: -f was not given"),
        "{}",
        r.stderr
    );
}

/// A test API server holding the quickstart's namespaces (from its state file).
fn quickstart_cluster() -> common::Cluster {
    let cluster =
        common::Cluster::new(&std::fs::read_to_string(quickstart("regops.yaml")).unwrap());
    let state: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(quickstart("state.yaml")).unwrap())
            .unwrap();
    for item in state["items"].as_array().unwrap() {
        if item["kind"] == "Namespace" {
            let _ = cluster.server.seed(item.clone());
        }
    }
    cluster
}

/// `apply --dry-run=client` sends nothing and shows the plan, exiting as plan does.
#[test]
fn dry_run_client_is_a_plan() {
    let dir = dir_with(&["regops.yaml"]);
    let cluster =
        common::Cluster::new(&std::fs::read_to_string(quickstart("regops.yaml")).unwrap());
    // The quickstart's namespaces, from its state file.
    let state: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(quickstart("state.yaml")).unwrap())
            .unwrap();
    for item in state["items"].as_array().unwrap() {
        if item["kind"] == "Namespace" {
            let _ = cluster.server.seed(item.clone());
        }
    }
    cluster.server.clear_log();
    let r = run(regops().current_dir(dir.path()).args([
        "apply",
        "--dry-run=client",
        "-i",
        &key(),
        "--kubeconfig",
        &cluster.kubeconfig.display().to_string(),
    ]));
    assert_eq!(r.code, 2, "{}", r.transcript());
    assert!(
        r.stdout.contains("regops plan:") && r.stdout.contains("to create"),
        "{}",
        r.stdout
    );
    let writes: Vec<_> = cluster
        .server
        .log()
        .into_iter()
        .filter(|e| e.is_write())
        .collect();
    assert!(writes.is_empty(), "a client dry run wrote: {writes:?}");
}

/// keygen's `-o FILE` still writes the file, with a warning that it is now `--out`.
#[test]
fn old_spellings_work_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(regops()
        .current_dir(dir.path())
        .args(["keygen", "-o", "k.txt"]));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(dir.path().join("k.txt").exists());
    assert!(
        r.stderr.contains("warning: -o is now --out"),
        "{}",
        r.stderr
    );
    let r = run(regops()
        .current_dir(dir.path())
        .args(["keygen", "--out", "k2.txt"]));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    let spec = dir_with(&["regops.yaml"]);
    let r = run(regops().current_dir(spec.path()).args([
        "render",
        "-i",
        &key(),
        "--namespaces",
        "web",
    ]));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        r.stderr.contains("--namespaces is now --namespace"),
        "{}",
        r.stderr
    );
    let r = run(regops()
        .current_dir(spec.path())
        .args(["render", "-i", &key(), "-n", "web"]));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

/// A saved plan is applied without asking, as terraform applies one: it was reviewed when it
/// was made, and is refused if anything it was made from moved (before, `--yes` was needed
/// off a terminal).
#[test]
fn a_saved_plan_is_applied_without_asking() {
    let dir = dir_with(&["regops.yaml"]);
    let cluster = quickstart_cluster();
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let plan = run(regops().current_dir(dir.path()).args([
        "plan",
        "-i",
        &key(),
        "--kubeconfig",
        &kubeconfig,
        "--out",
        "p.json",
    ]));
    assert_eq!(plan.code, 2, "{}", plan.transcript());
    let apply = run(regops().current_dir(dir.path()).args([
        "apply",
        "p.json",
        "-i",
        &key(),
        "--kubeconfig",
        &kubeconfig,
    ]));
    assert_eq!(apply.code, 0, "{}", apply.transcript());
    assert!(
        cluster
            .server
            .object("secrets", "web", "registries")
            .is_some()
            || cluster
                .server
                .log()
                .iter()
                .any(|e| e.is_write() && e.resource == "secrets"),
        "the plan was carried out"
    );
}
