//! Passwords from docker credential helpers (`password: { helper: NAME }`): the helper is run
//! as docker runs it, its login used, and every way it can fail named, with the credential and
//! the step, and never a secret.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use base64::Engine as _;
use common::{regops, run};

const SECRET: &str = "helper-secret-MARKER";

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

/// `render --show-secrets` with the fake helper: `envs` that start `FAKE_HELPER_` are its
/// settings, the others regops' environment.
fn render(spec: &std::path::Path, envs: &[(&str, &str)]) -> common::Run {
    render_with(spec, envs, &[])
}

/// As [`render`], with the fake helper also on PATH as each of `also` (`ecr-login`).
fn render_with(spec: &std::path::Path, envs: &[(&str, &str)], also: &[&str]) -> common::Run {
    let mut c = regops();
    let mut settings = vec![("FAKE_HELPER_SECRET", SECRET)];
    for (k, v) in envs {
        if k.starts_with("FAKE_HELPER_") {
            settings.push((k, v));
        } else {
            c.env(k, v);
        }
    }
    let _home = common::fake_helper(&mut c, &settings, also);
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
    let mut c = regops();
    let _home = common::fake_helper(&mut c, &[("FAKE_HELPER_SECRET", SECRET)], &[]);
    let hidden = run(c.args(["render", "-f"]).arg(&s));
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
    // Said by where and what kind (`render` asserts the secret is not in stderr).
    let r = render(&s, &[("FAKE_HELPER_GARBAGE", "1")]);
    assert_eq!(r.code, 1);
    assert!(
        r.flat_stderr().contains(
            "did not answer with the helper protocol's JSON ({\"Username\", \"Secret\"}): line 1, column 1: malformed JSON (expected value)"
        ),
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
        cmd.env("REGOPS_CRED_BOT_PW", "bot-password-MARKER");
        let mut settings = vec![("FAKE_HELPER_SECRET", SECRET)];
        if fail {
            settings.push(("FAKE_HELPER_FAIL", "1"));
        }
        let _home = common::fake_helper(&mut cmd, &settings, &[]);
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

/// What the CI job's environment holds that no helper needs: regops' and sops' keys, the CI's
/// own tokens, a Vault token, Azure's managed-identity header, a kubeconfig in a variable.
const JOB_SECRETS: &[(&str, &str)] = &[
    ("REGOPS_AGE_KEY", "AGE-SECRET-KEY-1INHERITED"),
    ("REGOPS_AGE_KEY_FILE", "/keys/age-INHERITED.txt"),
    ("SOPS_AGE_KEY", "AGE-SECRET-KEY-1SOPS-INHERITED"),
    ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "oidc-INHERITED"),
    ("GITHUB_TOKEN", "ghs_INHERITED"),
    ("ACTIONS_RUNTIME_TOKEN", "runtime-INHERITED"),
    ("CI_JOB_TOKEN", "glcbt-INHERITED"),
    ("VAULT_TOKEN", "hvs.INHERITED"),
    ("KUBECONFIG_DATA", "apiVersion-INHERITED"),
    ("IDENTITY_HEADER", "msi-header-INHERITED"),
    ("MSI_SECRET", "msi-secret-INHERITED"),
    ("GITLAB_FOO_TOKEN", "glpat-INHERITED"),
];

/// What every helper needs and gets: where programs are, its home, its user, the locale, the
/// time zone, the CA bundle and the proxies.
const BASE: &[(&str, &str)] = &[
    ("HOME", ""),
    ("USER", "ci"),
    ("LANG", "C.UTF-8"),
    ("LC_ALL", "C.UTF-8"),
    ("TZ", "UTC"),
    ("TMPDIR", "/tmp"),
    ("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
    ("SSL_CERT_DIR", "/etc/ssl/certs"),
    ("HTTPS_PROXY", "http://proxy.example:3128"),
    ("https_proxy", "http://proxy.example:3128"),
    ("HTTP_PROXY", "http://proxy.example:3128"),
    ("NO_PROXY", "localhost,127.0.0.1"),
    ("no_proxy", "localhost"),
];

/// Each cloud's credentials, in the job's environment beside the rest.
const CLOUD_VARS: &[(&str, &str)] = &[
    ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/pull-CLOUD"),
    ("AWS_SECRET_ACCESS_KEY", "aws-secret-CLOUD"),
    ("GOOGLE_APPLICATION_CREDENTIALS", "/keys/google-CLOUD.json"),
    ("CLOUDSDK_CONFIG", "/keys/gcloud-CLOUD"),
    ("AZURE_CLIENT_SECRET", "azure-secret-CLOUD"),
];

/// A helper is a program of someone else's: it gets an allowlist of regops' environment (what
/// a program needs to run, and its own cloud's variables), never the job's keys and tokens.
#[test]
fn a_helper_gets_the_allowlist_of_the_environment_and_its_own_cloud_only() {
    // (helper, the prefixes of the cloud variables it keeps)
    for (helper, keeps) in [
        ("fake", &[][..]),
        ("ecr-login", &["AWS_"][..]),
        ("gcr", &["GOOGLE_", "CLOUDSDK_"][..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("env");
        let s = spec(
            dir.path(),
            &format!("{{ password: {{ helper: {helper} }} }}"),
        );
        let envs: Vec<(&str, &str)> = JOB_SECRETS
            .iter()
            .chain(BASE.iter().filter(|(k, _)| *k != "HOME"))
            .chain(CLOUD_VARS)
            .copied()
            .chain([("FAKE_HELPER_ENV", dump.to_str().unwrap())])
            .collect();
        let r = render_with(&s, &envs, &[helper]);
        assert_eq!(r.code, 0, "{helper}: {}", r.transcript());
        let env = std::fs::read_to_string(&dump).unwrap();
        let has = |name: &str| env.lines().any(|l| l.starts_with(&format!("{name}=")));
        for (name, _) in JOB_SECRETS {
            assert!(!has(name), "{name} reached {helper}:\n{env}");
        }
        assert!(!env.contains("INHERITED"), "{helper}: {env}");
        for (name, value) in BASE {
            assert!(has(name), "{helper} did not get {name}:\n{env}");
            if !value.is_empty() {
                assert!(env.contains(&format!("{name}={value}\n")), "{name}: {env}");
            }
        }
        assert!(has("PATH"), "{env}");
        for (name, _) in CLOUD_VARS {
            let own = keeps.iter().any(|p| name.starts_with(p));
            assert_eq!(has(name), own, "{helper} and {name}:\n{env}");
        }
    }
}
