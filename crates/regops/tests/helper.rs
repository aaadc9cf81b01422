//! Passwords from docker credential helpers (`password: { helper: NAME }`): the helper is run
//! as docker runs it, its login used, and every way it can fail named, with the credential and
//! the step, and never a secret.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use base64::Engine as _;
use common::{fixtures, regops, run};

const SECRET: &str = "helper-secret-MARKER";

fn path() -> String {
    format!("{}:/usr/bin:/bin", fixtures().join("helpers").display())
}

fn spec(dir: &std::path::Path, credential: &str) -> std::path::PathBuf {
    let p = dir.join("regops.yaml");
    std::fs::write(
        &p,
        format!(
            "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: {{ name: helper }}
registries:
  harbor: {{ server: harbor.example.com, credential: robot }}
credentials:
  robot: {credential}
scopes:
  apps: {{ namespaces: [web] }}
pullSecrets:
  pull: {{ registries: [harbor], scope: apps }}
"
        ),
    )
    .unwrap();
    p
}

fn render(spec: &std::path::Path, envs: &[(&str, &str)]) -> common::Run {
    let mut c = regops();
    c.env("PATH", path()).env("FAKE_HELPER_SECRET", SECRET);
    for (k, v) in envs {
        c.env(k, v);
    }
    let r = run(c.args(["render", "--show-secrets", "-f"]).arg(spec));
    assert!(!r.stderr.contains(SECRET), "{}", r.stderr);
    r
}

#[test]
fn the_helper_is_asked_for_the_registry_server_and_its_login_used() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("asked");
    let s = spec(dir.path(), "{ password: { helper: fake } }");
    let r = render(&s, &[("FAKE_HELPER_LOG", log.to_str().unwrap())]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "harbor.example.com\n"
    );
    let b64 = r
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(".dockerconfigjson: "))
        .unwrap()
        .trim_matches('"');
    let doc = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    let auth = &v["auths"]["harbor.example.com"];
    assert_eq!(auth["username"], "alice");
    assert_eq!(auth["password"], SECRET);
    // Without --show-secrets, nothing of it shows.
    let hidden = run(regops()
        .env("PATH", path())
        .env("FAKE_HELPER_SECRET", SECRET)
        .args(["render", "-f"])
        .arg(&s));
    assert_eq!(hidden.code, 0);
    assert!(
        !hidden.stdout.contains(SECRET) && hidden.stdout.contains("harbor.example.com as alice")
    );
    // A user name in the spec must be the helper's.
    let s = spec(dir.path(), "{ username: bob, password: { helper: fake } }");
    let r = render(&s, &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.flat_stderr().contains("credential helper `fake` logs in to harbor.example.com as `alice`, but credential `robot` says `bob`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_missing_failing_or_garbled_helper_is_named_with_its_credential() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), "{ password: { helper: absent } }");
    let r = render(&s, &[]);
    assert_eq!(r.code, 1, "{}", r.transcript());
    // miette may wrap at a hyphen.
    let err = r.flat_stderr().replace("- ", "-");
    assert!(
        err.contains("cannot get credential `robot` for harbor.example.com from its helper: `docker-credential-absent` is not on PATH"),
        "{err}"
    );
    assert!(r.stdout.is_empty(), "nothing rendered");
    let s = spec(dir.path(), "{ password: { helper: fake } }");
    let r = render(&s, &[("FAKE_HELPER_FAIL", "1")]);
    assert_eq!(r.code, 1);
    assert!(
        r.flat_stderr().replace("- ", "-").contains("`docker-credential-fake get` failed (exit status: 1): credentials not found in native keychain"),
        "{}",
        r.stderr
    );
    // A helper that printed its whole answer and then failed: only its stderr is quoted, never
    // the line with the secret.
    let r = render(&s, &[("FAKE_HELPER_ANSWER_THEN_FAIL", "1")]);
    assert_eq!(r.code, 1);
    assert!(
        r.flat_stderr()
            .replace("- ", "-")
            .contains("`docker-credential-fake get` failed (exit status: 1): keychain locked"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains(SECRET) && !r.stderr.contains("Secret"));
    // Output that is not the protocol's JSON is refused without being shown (it may hold the
    // secret).
    let r = render(&s, &[("FAKE_HELPER_GARBAGE", "1")]);
    assert_eq!(r.code, 1);
    assert!(
        r.flat_stderr()
            .contains("did not answer with the helper protocol's JSON"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains(SECRET));
}

/// A helper that fails when `apply` runs holds back only the Secrets that need it: the others
/// are written, the failure is said with its credential and helper, the held-back Secret is a
/// conflict in the report, exit 1; the next run with a working helper converges.
#[test]
fn a_failing_helper_holds_back_only_its_secrets() {
    let c = common::Cluster::new(
        "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: helper }
registries:
  harbor: { server: harbor.example.com, credential: robot }
  quay: { server: quay.io, credential: bot }
credentials:
  robot: { password: { helper: fake } }
  bot: { username: bot, password: { env: REGOPS_CRED_BOT_PW } }
scopes:
  apps: { namespaces: [web] }
pullSecrets:
  harbor-pull: { registries: [harbor], scope: apps }
  quay-pull: { registries: [quay], scope: apps }
",
    );
    c.server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}))
        .unwrap();
    let apply = |fail: bool| {
        let mut cmd = regops();
        cmd.env("PATH", path())
            .env("FAKE_HELPER_SECRET", SECRET)
            .env("REGOPS_CRED_BOT_PW", "bot-password-MARKER");
        if fail {
            cmd.env("FAKE_HELPER_FAIL", "1");
        }
        let r = run(cmd
            .args(["apply", "--yes", "-f"])
            .arg(&c.spec)
            .arg("--kubeconfig")
            .arg(&c.kubeconfig));
        assert!(!r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"));
        r
    };
    let r = apply(true);
    assert_eq!(r.code, 1, "{}", r.transcript());
    let text = r.flat_stderr().replace("- ", "-") + &r.stdout;
    assert!(
        text.contains("cannot get credential `robot` for harbor.example.com from its helper"),
        "{text}"
    );
    assert!(
        r.stdout.contains("held back: credential `robot`"),
        "{}",
        r.stdout
    );
    assert!(c.server.object("secrets", "web", "quay-pull").is_some());
    assert!(c.server.object("secrets", "web", "harbor-pull").is_none());
    let r = apply(false);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(c.server.object("secrets", "web", "harbor-pull").is_some());
}

/// A helper is a program of someone else's: it runs without regops' age identity, sops' keys
/// or another cloud's credentials in its environment (what it needs, PATH and HOME, it keeps).
#[test]
fn the_helper_gets_no_keys_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("env");
    let s = spec(dir.path(), "{ password: { helper: fake } }");
    let r = render(
        &s,
        &[
            ("FAKE_HELPER_ENV", dump.to_str().unwrap()),
            ("REGOPS_AGE_KEY", "AGE-SECRET-KEY-1INHERITED"),
            ("REGOPS_AGE_KEY_FILE", "/keys/age.txt"),
            ("SOPS_AGE_KEY", "AGE-SECRET-KEY-1SOPS"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret-INHERITED"),
            ("AZURE_CLIENT_SECRET", "azure-secret-INHERITED"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/keys/google.json"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "oidc-INHERITED"),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.transcript());
    let env = std::fs::read_to_string(&dump).unwrap();
    for name in [
        "REGOPS_AGE_KEY",
        "SOPS_AGE_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "AZURE_CLIENT_SECRET",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    ] {
        assert!(!env.contains(name), "{name} reached the helper:\n{env}");
    }
    assert!(!env.contains("INHERITED"), "{env}");
    assert!(env.contains("PATH=") && env.contains("HOME="), "{env}");
}
