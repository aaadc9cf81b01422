//! No error quotes a file that may hold a secret (issue 38): a kubeconfig (the operator's, and
//! one a spec names), an age identity file, a helper's answer and a saved plan that fail to
//! parse are named with the line, the column and the kind of error, and nothing of what they
//! hold reaches stderr, which CI logs keep. Each file carries a marker where a secret would be.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use common::{regops, run, run_with_stdin};

const MARKER: &str = "SECRET-MARKER";

fn assert_masked(what: &str, r: &common::Run) {
    assert_ne!(r.code, 0, "{what}: {}", r.transcript());
    assert!(
        !r.stderr.contains(MARKER) && !r.stdout.contains(MARKER),
        "{what} quoted the file:\n{}",
        r.transcript()
    );
    // No excerpt of the file either (parsers quote the lines around the error).
    for line in ["token:", "client-key-data"] {
        assert!(!r.stderr.contains(line), "{what}: {}", r.stderr);
    }
}

fn flat(r: &common::Run) -> String {
    r.flat_stderr()
}

/// Malformed kubeconfigs, each with a token (the marker) on a line near the error: a syntax
/// error, a value of the wrong type, a list where a map goes.
const BAD_KUBECONFIGS: &[(&str, &str, &str)] = &[
    (
        "syntax",
        "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: SECRET-MARKER\n    client-key-data: \"SECRET-MARKER\n",
        ": malformed YAML",
    ),
    (
        "wrong type",
        "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: [SECRET-MARKER]\n",
        "line 6, column 12: a value of the wrong type",
    ),
    (
        "string for a list",
        "apiVersion: v1\nkind: Config\ncontexts: SECRET-MARKER\n",
        "line 3, column 11: a value of the wrong type",
    ),
];

#[test]
fn a_malformed_kubeconfig_is_located_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    for (what, text, said) in BAD_KUBECONFIGS {
        std::fs::write(&kubeconfig, text).unwrap();
        let r = run(regops()
            .args(["cluster-info", "--kubeconfig"])
            .arg(&kubeconfig));
        assert_masked(what, &r);
        let err = flat(&r);
        assert!(
            err.contains(&format!(
                "cannot read kubeconfig {}: it is not a valid kubeconfig:",
                kubeconfig.display()
            )) && err.contains(said),
            "{what}: {err}"
        );
    }
}

/// The same through a cluster's `kubeconfig:` in the spec (read to check it before use).
#[test]
fn a_malformed_kubeconfig_the_spec_names_is_located_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("regops.yaml");
    std::fs::write(
        &spec,
        "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: p }
registries:
  r: { server: r.example.com, credential: c }
credentials:
  c: { username: u, password: { env: REGOPS_CRED_C } }
scopes:
  s: { namespaces: [web] }
pullSecrets:
  pull: { registries: [r], scope: s }
clusters:
  east: { kubeconfig: east.kubeconfig, context: east }
",
    )
    .unwrap();
    for (what, text, said) in BAD_KUBECONFIGS {
        std::fs::write(dir.path().join("east.kubeconfig"), text).unwrap();
        let r = run(regops()
            .args(["plan", "-f"])
            .arg(&spec)
            .env("REGOPS_CRED_C", "pw"));
        assert_masked(what, &r);
        let err = flat(&r);
        assert!(
            err.contains("it is not a valid kubeconfig") && err.contains(said),
            "{what}: {err}"
        );
    }
}

/// An identity file that is not one (a line of something else, with the marker on it).
#[test]
fn a_malformed_identity_file_is_located_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = common::keygen(dir.path(), "key.txt");
    let spec = dir.path().join("regops.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: regops.dev/v1\nkind: RegistryConfig\nrecipients: [{public}]\nregistries:\n  r: {{ server: r.example.com, credential: c }}\ncredentials:\n  c:\n    username: u\nscopes:\n  s: {{ namespaces: [web] }}\npullSecrets:\n  pull: {{ registries: [r], scope: s }}\n"
        ),
    )
    .unwrap();
    let r = run_with_stdin(
        regops()
            .arg("encrypt")
            .arg("-f")
            .arg(&spec)
            .args(["-c", "c"]),
        Some("pw"),
    );
    assert_eq!(r.code, 0, "{}", r.transcript());
    let real = std::fs::read_to_string(&key).unwrap();
    let secret_line = real
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap();
    let bad = dir.path().join("bad.txt");
    for (what, text, line) in [
        (
            "a key with the marker pasted into it",
            format!("# created: today\n{secret_line}{MARKER}\n"),
            2,
        ),
        (
            "a token beside a key",
            format!("{secret_line}\ntoken: {MARKER}\n"),
            2,
        ),
    ] {
        std::fs::write(&bad, text).unwrap();
        let r = run(regops()
            .args(["render", "--show-secrets", "-i"])
            .arg(&bad)
            .arg("-f")
            .arg(&spec));
        assert_masked(what, &r);
        assert!(!r.stderr.contains(&secret_line[20..]), "{}", r.stderr);
        let err = flat(&r);
        assert!(
            err.contains(&format!(
                "{} holds no usable age identity, line {line} is not an identity",
                bad.display()
            )),
            "{what}: {err}"
        );
    }
}

/// A saved plan handed to `show` or `apply` is anyone's file: a value of the wrong type and a
/// format that is not one are said without the text.
#[test]
fn a_malformed_saved_plan_is_located_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    for (what, text, said) in [
        (
            "a string for the plan",
            format!(
                "{{\n  \"kind\": \"SavedPlan\",\n  \"formatVersion\": \"3\",\n  \"plan\": \"{MARKER}\"\n}}\n"
            ),
            "not a saved regops plan: line 4, column",
        ),
        (
            "a kind that is a secret",
            format!("{{\"kind\": [\"{MARKER}\"]}}"),
            "not a saved regops plan: line 1, column",
        ),
        (
            "not JSON",
            format!("token: {MARKER}\n"),
            "not a saved regops plan: line 1, column 2: malformed JSON",
        ),
        (
            "a format that is a secret",
            format!("{{\"kind\": \"SavedPlan\", \"formatVersion\": \"{MARKER}\"}}"),
            "a saved plan of format another; this regops reads format 3",
        ),
    ] {
        std::fs::write(&plan, text).unwrap();
        for command in ["show", "apply"] {
            let r = run(regops().arg(command).arg(&plan));
            assert_masked(what, &r);
            assert!(flat(&r).contains(said), "{command}, {what}: {}", r.stderr);
        }
    }
}
