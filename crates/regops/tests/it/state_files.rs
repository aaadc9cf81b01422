//! `--live-state`: plans from a `kubectl get ... -o json|yaml` dump, streamed into the lean
//! model, with limits sized to the file and a clear error past them.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::path::Path;

use common::{regops, run};

/// The benchmark's cluster of `n` namespaces as kubectl dumps it, and its spec, in `dir`.
fn dump(dir: &Path, n: usize) -> serde_json::Value {
    std::fs::write(dir.join("spec.yaml"), regops_bench::cluster::spec()).unwrap();
    let server = regops_bench::cluster::seeded_server(n).unwrap();
    regops_bench::cluster::kubectl_list(&server)
}

/// Asserts the plan exited 2 with this summary line.
fn assert_summary(r: &common::Run, create: usize, patch: usize) {
    assert_eq!(r.code, 2, "{}", r.stderr);
    let line = format!(
        "Plan: {create} to create, 0 to update, 0 to replace, {patch} to patch, 0 to delete."
    );
    assert!(
        r.stdout.contains(&line),
        "{}",
        r.stdout
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn plan(dir: &Path, state: &Path) -> common::Run {
    run(regops()
        .current_dir(dir)
        .env("REGOPS_CRED_BENCH_PASSWORD", "state-file-password")
        .args(["plan", "-f", "spec.yaml", "--live-state"])
        .arg(state))
}

#[test]
fn a_kubectl_json_dump_of_1000_namespaces_plans() {
    // 1,004 namespaces, 1,004 ServiceAccounts, 5,000 Deployments: about 7,000 objects. Read
    // through a whole-document YAML parser this breached its node budget. It loads a core for
    // seconds: no timing test runs beside it.
    let _heavy = common::heavy();
    let dir = tempfile::tempdir().unwrap();
    let list = dump(dir.path(), 1000);
    let state = dir.path().join("state.json");
    std::fs::write(&state, serde_json::to_vec_pretty(&list).unwrap()).unwrap();
    assert_summary(&plan(dir.path(), &state), 1000, 4000);
}

#[test]
fn a_multi_document_yaml_dump_plans_within_budgets_sized_to_the_file() {
    // Every object its own document (flow style is YAML too): thousands of documents, each
    // counted against budgets that grow with the file, not fixed ones.
    let dir = tempfile::tempdir().unwrap();
    let list = dump(dir.path(), 300);
    let mut text = String::new();
    for item in list["items"].as_array().unwrap() {
        text.push_str("---\n");
        text.push_str(&serde_json::to_string(item).unwrap());
        text.push('\n');
    }
    let state = dir.path().join("state.yaml");
    std::fs::write(&state, text).unwrap();
    assert_summary(&plan(dir.path(), &state), 300, 1200);
}

#[test]
fn items_of_a_typed_list_take_the_lists_kind() {
    // The API (and `kubectl get --raw`) returns a DeploymentList whose items carry no kind.
    let dir = tempfile::tempdir().unwrap();
    let list = dump(dir.path(), 2);
    let pick = |kind: &str| -> Vec<serde_json::Value> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == kind)
            .map(|i| {
                let mut i = i.clone();
                i.as_object_mut().unwrap().remove("kind");
                i
            })
            .collect()
    };
    let mut text = String::new();
    for kind in ["Namespace", "ServiceAccount", "Deployment"] {
        let typed = serde_json::json!({"kind": format!("{kind}List"), "apiVersion": "v1", "items": pick(kind)});
        text.push_str(&serde_json::to_string(&typed).unwrap());
        text.push('\n');
    }
    let state = dir.path().join("state.json");
    std::fs::write(&state, text).unwrap();
    assert_summary(&plan(dir.path(), &state), 2, 8);
}

#[test]
fn an_alias_bomb_is_refused_quickly_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.yaml"), regops_bench::cluster::spec()).unwrap();
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let prev = format!("*a{}", i - 1);
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            [prev.as_str(); 9].join(", ")
        ));
    }
    bomb.push_str("kind: List\nitems: [*a8]\n");
    let state = dir.path().join("bomb.yaml");
    std::fs::write(&state, bomb).unwrap();
    let r = plan(dir.path(), &state);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.stderr.contains("is not valid YAML") && r.stderr.contains("bomb.yaml"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_state_file_over_the_limit_is_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.yaml"), regops_bench::cluster::spec()).unwrap();
    let state = dir.path().join("huge.json");
    // Sparse: one byte over the limit, no disk used.
    let f = std::fs::File::create(&state).unwrap();
    f.set_len((1 << 30) + 1).unwrap();
    let r = plan(dir.path(), &state);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr()
            .contains("is 1073741825 bytes, over the limit of 1073741824 bytes"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_large_plan_reads_in_a_few_lines_and_its_comment_fits_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let list = dump(dir.path(), 300);
    let state = dir.path().join("state.json");
    std::fs::write(&state, serde_json::to_vec(&list).unwrap()).unwrap();
    let with = |args: &[&str]| {
        run(regops()
            .current_dir(dir.path())
            .env("REGOPS_CRED_BENCH_PASSWORD", "state-file-password")
            .args(["plan", "-f", "spec.yaml", "--live-state"])
            .arg(&state)
            .args(args))
    };
    // Summary (the default): one line per group, not one per object.
    let summary = with(&[]);
    assert_summary(&summary, 300, 1200);
    assert!(
        summary.stdout.lines().count() < 30,
        "{} lines:\n{}",
        summary.stdout.lines().count(),
        summary.stdout
    );
    assert!(
        summary
            .stdout
            .contains("Secret harbor-pull in 300 namespaces")
    );
    // Full: every object.
    let full = with(&["--detail", "full"]);
    assert_summary(&full, 300, 1200);
    assert_eq!(full.stdout.matches("\nnamespace ").count(), 300);
    // Markdown within the budget asked for, the summary kept.
    for budget in ["60000", "2000"] {
        let md = with(&["--output", "markdown", "--max-bytes", budget]);
        assert_eq!(md.code, 2, "{}", md.stderr);
        assert!(md.stdout.len() <= budget.parse().unwrap(), "{budget}");
        assert!(
            md.stdout
                .contains("300 to create, 0 to update, 0 to replace, 1200 to patch")
        );
    }
    // The JSON plan keeps every object, and lists the groups.
    let json = with(&["--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["changes"].as_array().unwrap().len(), 1500);
    assert_eq!(v["groups"].as_array().unwrap().len(), 3);
}

/// The quickstart planned against its state file, with `args`.
fn quickstart(args: &[&str]) -> common::Run {
    let q = common::repo().join("examples/quickstart");
    run(regops()
        .arg("plan")
        .arg("-f")
        .arg(q.join("regops.yaml"))
        .arg("-i")
        .arg(q.join("example-key.txt"))
        .arg("--live-state")
        .arg(q.join("state.yaml"))
        .args(args))
}

/// The JSON plan's warnings: each text, and each group's kind.
fn json_warnings(r: &common::Run) -> (Vec<String>, Vec<String>) {
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let texts = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    let kinds = v["warningGroups"]
        .as_array()
        .map(|g| {
            g.iter()
                .map(|g| g["kind"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    (texts, kinds)
}

/// `-n` naming a namespace the state file does not hold (issue 37): the plan is empty, as
/// before, but no longer silently: a warning names the namespace and says it does not exist,
/// in text and JSON. The exit code stays the plan's (nothing pending: 0).
#[test]
fn a_namespace_given_with_n_that_does_not_exist_is_warned_of() {
    let text = quickstart(&["-n", "doesnotexist"]);
    assert_eq!(text.code, 0, "{}", text.transcript());
    assert!(
        text.stdout
            .lines()
            .any(|l| l.contains("doesnotexist") && l.contains("does not exist")),
        "{}",
        text.transcript()
    );
    let json = quickstart(&["-n", "doesnotexist", "--output", "json"]);
    assert_eq!(json.code, 0, "{}", json.transcript());
    let (texts, kinds) = json_warnings(&json);
    assert!(
        texts
            .iter()
            .any(|w| w.contains("doesnotexist") && w.contains("does not exist")),
        "{texts:?}"
    );
    assert_eq!(kinds, ["no-such-namespace"]);
}

/// `-n` naming a namespace that exists but that no scope selects (the quickstart's `web` scope
/// excludes `web-sandbox`): warned of as such, in text and JSON.
#[test]
fn a_namespace_given_with_n_that_no_scope_selects_is_warned_of() {
    let text = quickstart(&["-n", "web-sandbox"]);
    assert_eq!(text.code, 0, "{}", text.transcript());
    assert!(
        text.stdout
            .lines()
            .any(|l| l.contains("web-sandbox") && l.contains("selected by no scope")),
        "{}",
        text.transcript()
    );
    assert!(!text.stdout.contains("does not exist"), "{}", text.stdout);
    let json = quickstart(&["-n", "web-sandbox", "--output", "json"]);
    assert_eq!(json.code, 0, "{}", json.transcript());
    let (texts, kinds) = json_warnings(&json);
    assert!(
        texts
            .iter()
            .any(|w| w.contains("web-sandbox") && w.contains("selected by no scope")),
        "{texts:?}"
    );
    assert_eq!(kinds, ["unselected-namespace"]);
}

/// `-n` naming a namespace a scope selects plans it, with no such warning; with another that
/// does not exist, only that one is warned of.
#[test]
fn a_namespace_given_with_n_that_a_scope_selects_is_not_warned_of() {
    let json = quickstart(&["-n", "web", "--output", "json"]);
    let (texts, kinds) = json_warnings(&json);
    assert!(
        !kinds
            .iter()
            .any(|k| k == "no-such-namespace" || k == "unselected-namespace"),
        "{texts:?}"
    );
    assert!(
        !texts.iter().any(|w| w.contains("given with `-n`")),
        "{texts:?}"
    );
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["namespace"] == "web"),
        "{}",
        json.stdout
    );
    let text = quickstart(&["-n", "web,doesnotexist"]);
    let warned: Vec<&str> = text
        .stdout
        .lines()
        .filter(|l| l.contains("given with `-n`"))
        .collect();
    assert_eq!(warned.len(), 1, "{}", text.stdout);
    assert!(warned[0].contains("doesnotexist"), "{}", text.stdout);
}
