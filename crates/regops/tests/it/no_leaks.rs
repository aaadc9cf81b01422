//! No plaintext credential in any output: every subcommand, success and failure paths, is run
//! on a spec whose passwords are known marker strings, and no output may contain a marker, in
//! plain text or inside base64, unless `--show-secrets` asked for it.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Run, keygen, regops, run, run_with_stdin};

const AGE_MARKER: &str = "MARKER-age-7f3a9c1e";
const ENV_MARKER: &str = "MARKER-env-b2d4e6f8";
const FILE_MARKER: &str = "MARKER-file-0a1b2c3d";
const MARKERS: [&str; 3] = [AGE_MARKER, ENV_MARKER, FILE_MARKER];

/// Every marker found in `text`, directly or in any base64 token in it.
fn leaked(text: &str) -> Vec<String> {
    leaked_of(text, &MARKERS)
}

/// Every one of `markers` found in `text`, directly or in any base64 token in it.
fn leaked_of(text: &str, markers: &[&str]) -> Vec<String> {
    let mut found: Vec<String> = markers
        .iter()
        .filter(|m| text.contains(*m))
        .map(|m| m.to_string())
        .collect();
    for token in
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='))
    {
        if token.len() < 12 {
            continue;
        }
        for candidate in [token.to_string(), token.trim_end_matches('=').to_string()] {
            let padded = format!("{candidate}{}", "=".repeat((4 - candidate.len() % 4) % 4));
            if let Ok(bytes) = STANDARD.decode(&padded) {
                let decoded = String::from_utf8_lossy(&bytes).into_owned();
                found.extend(
                    leaked_of(&decoded, markers)
                        .into_iter()
                        .map(|m| format!("{m} (base64)")),
                );
            }
        }
    }
    found
}

fn assert_clean(what: &str, r: &Run) {
    let l = leaked(&r.stdout)
        .into_iter()
        .chain(leaked(&r.stderr))
        .collect::<Vec<_>>();
    assert!(l.is_empty(), "`{what}` leaked {l:?}:\n{}", r.transcript());
}

fn setup(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (key, public) = keygen(dir, "key.txt");
    std::fs::write(dir.join("token.txt"), format!("{FILE_MARKER}\n")).unwrap();
    let spec = dir.join("regops.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: regops.dev/v1\nkind: RegistryConfig\nrecipients: [{public}]\nregistries:\n  harbor: {{ server: harbor.example.com, credential: robot }}\n  hub: {{ server: docker.io, credential: hub }}\n  quay: {{ server: quay.io, credential: quay }}\ncredentials:\n  robot:\n    username: robot$ci\n  hub:\n    username: myorg\n    password: {{ env: REGOPS_CRED_HUB_TOKEN }}\n  quay:\n    username: bot\n    password: {{ file: token.txt }}\nscopes:\n  web:\n    namespaces: [web]\n    selector: {{ matchLabels: {{ team: web }} }}\npullSecrets:\n  pull: {{ registries: [harbor, hub, quay], scope: web }}\nbindings:\n  - pullSecret: pull\n    serviceAccounts: [default]\n"
        ),
    )
    .unwrap();
    let r = run_with_stdin(
        regops()
            .arg("encrypt")
            .arg("-f")
            .arg(&spec)
            .args(["-c", "robot"]),
        Some(AGE_MARKER),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_clean("encrypt", &r);
    (spec, key)
}

#[test]
fn no_subcommand_prints_a_credential() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, key) = setup(dir.path());
    let (other_key, _) = keygen(dir.path(), "other.txt");
    let with = |args: &[&str]| {
        let mut c = regops();
        c.args(args)
            .env("REGOPS_CRED_HUB_TOKEN", ENV_MARKER)
            .current_dir(dir.path());
        c
    };
    let spec_s = spec.to_str().unwrap();
    let key_s = key.to_str().unwrap();
    let other_s = other_key.to_str().unwrap();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("check", vec!["check", "-f", spec_s, "-i", key_s]),
        (
            "check --no-decrypt",
            vec!["check", "-f", spec_s, "--no-decrypt"],
        ),
        (
            "check, wrong key",
            vec!["check", "-f", spec_s, "-i", other_s],
        ),
        ("render", vec!["render", "-f", spec_s, "-i", key_s]),
        (
            "render -n",
            vec!["render", "-f", spec_s, "-i", key_s, "-n", "web,api"],
        ),
        (
            "render, bad namespace",
            vec!["render", "-f", spec_s, "-i", key_s, "-n", "Bad"],
        ),
        ("rekey", vec!["rekey", "-f", spec_s, "-i", key_s]),
        (
            "rekey, wrong key",
            vec!["rekey", "-f", spec_s, "-i", other_s],
        ),
        ("keygen --public", vec!["keygen", "--public", key_s]),
        ("schema", vec!["schema"]),
        ("help", vec!["--help"]),
    ];
    for (what, args) in cases {
        let r = run(&mut with(&args));
        assert_clean(what, &r);
    }
    // The spec on disk holds only ciphertext, after encrypt and after rekey.
    let text = std::fs::read_to_string(&spec).unwrap();
    assert!(leaked(&text).is_empty(), "spec file: {:?}", leaked(&text));

    // The one way to see them: --show-secrets. This also proves the detector works.
    let r = run(&mut with(&[
        "render",
        "-f",
        spec_s,
        "-i",
        key_s,
        "--show-secrets",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let found = leaked(&r.stdout);
    for m in MARKERS {
        assert!(
            found.iter().any(|f| f.starts_with(m)),
            "--show-secrets should carry {m}: {found:?}"
        );
    }
    assert!(leaked(&r.stderr).is_empty());
}

#[test]
fn errors_about_plaintext_in_the_spec_do_not_repeat_it() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("regops.yaml");
    std::fs::write(
        &spec,
        format!("apiVersion: regops.dev/v1\nkind: RegistryConfig\ncredentials:\n  c:\n    username: u\n    password: {AGE_MARKER}\n    emial: x\n  d:\n    username: u\n    password: \"{ENV_MARKER}\"\n"),
    )
    .unwrap();
    for args in [
        vec!["check", "-f"],
        vec!["render", "-f"],
        vec!["rekey", "-f"],
    ] {
        let r = run(regops().args(&args).arg(&spec));
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("is in plaintext"), "{}", r.stderr);
        assert_clean(&args.join(" "), &r);
    }
}

#[test]
fn the_detector_sees_base64() {
    let doc = STANDARD.encode(format!("{{\"password\":\"{AGE_MARKER}\"}}"));
    assert!(!leaked(&format!("data: {doc}\n")).is_empty());
    assert!(leaked("nothing here").is_empty());
}

/// The cluster commands at every verbosity (`-v`, `-vv`, `RUST_LOG=trace`), against the test
/// server: plan, apply (with a retried write, so the retry log runs), a second apply, drift and
/// a failing apply (a 403 on a write). No marker in any output, nor the bearer token.
#[test]
fn cluster_commands_at_every_verbosity_print_no_credential() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, key) = setup(dir.path());
    let server = kube_test_server::TestServer::start(kube_test_server::Config::default()).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web", "labels": {"team": "web"}}}))
        .unwrap();
    let token = server.token().unwrap_or("no-token").to_string();
    let cmd = |sub: &str, extra: &[&str], env: Option<(&str, &str)>| {
        let mut c = regops();
        c.arg(sub)
            .arg("-f")
            .arg(&spec)
            .arg("-i")
            .arg(&key)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(extra)
            .env("REGOPS_CRED_HUB_TOKEN", ENV_MARKER)
            .env_remove("RUST_LOG")
            .current_dir(dir.path());
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        c
    };
    server.add_fault(kube_test_server::Fault::status(503).verb("patch").nth(1));
    let cases: Vec<(&str, std::process::Command)> = vec![
        ("plan -v", cmd("plan", &["-v"], None)),
        (
            "plan -vv -o json",
            cmd("plan", &["-vv", "-o", "json"], None),
        ),
        ("apply -vv", cmd("apply", &["--yes", "-vv"], None)),
        (
            "apply again, RUST_LOG=trace",
            cmd("apply", &["--yes"], Some(("RUST_LOG", "trace"))),
        ),
        ("drift -vv", cmd("drift", &["-vv", "-o", "json"], None)),
    ];
    for (what, mut c) in cases {
        let r = run(&mut c);
        assert_clean(what, &r);
        assert!(
            !r.stdout.contains(&token) && !r.stderr.contains(&token),
            "`{what}` printed the bearer token"
        );
        assert!(
            r.stderr.contains("regops: GET /api/v1/"),
            "`{what}` logged no request:\n{}",
            r.stderr
        );
    }
    // A failing write, logged at -vv: its error is reported without a body.
    server.add_fault(kube_test_server::Fault::status(403).verb("patch"));
    std::fs::write(
        &spec,
        std::fs::read_to_string(&spec)
            .unwrap()
            .replace("username: myorg", "username: myorg2"),
    )
    .unwrap();
    let r = run(&mut cmd("apply", &["--yes", "-vv"], None));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert_clean("failing apply -vv", &r);
    // `regops import` reads a hand-made Secret back, plaintext and all: its output, its log at
    // every verbosity and the file it writes hold none of it.
    server.clear_faults();
    let doc = format!(
        r#"{{"auths":{{"harbor.example.com":{{"username":"robot","password":"{AGE_MARKER}","auth":"{}"}}}}}}"#,
        STANDARD.encode(format!("robot:{AGE_MARKER}"))
    );
    server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "hand-made", "namespace": "web"},
            "data": {".dockerconfigjson": STANDARD.encode(doc)}}))
        .unwrap();
    let public = std::fs::read_to_string(&key)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    let imported = dir.path().join("imported.yaml");
    for (what, extra, env) in [
        ("import --dry-run -vv", vec!["--dry-run", "-vv"], None),
        (
            "import -v, RUST_LOG=trace",
            vec!["-v", "-o", "imported.yaml"],
            Some(("RUST_LOG", "trace")),
        ),
    ] {
        let mut c = regops();
        c.args(["import", "--recipient", &public, "--kubeconfig"])
            .arg(&kubeconfig)
            .args(&extra)
            .env_remove("RUST_LOG")
            .current_dir(dir.path());
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        let r = run(&mut c);
        assert_eq!(r.code, 0, "{}", r.transcript());
        assert_clean(what, &r);
        assert!(
            r.stdout.contains("adopt: true") || imported.exists(),
            "{}",
            r.transcript()
        );
    }
    let text = std::fs::read_to_string(&imported).unwrap();
    assert!(
        leaked(&text).is_empty(),
        "the imported spec leaked:\n{text}"
    );
    assert!(text.contains("BEGIN AGE ENCRYPTED FILE"), "{text}");
}

/// Tokens minted from the fake clouds (each holds `MARKER`), the AWS secret key, the web
/// identity, federated and client-secret inputs: none is printed, on success or failure, at
/// any verbosity, in plain text or base64; `render --show-secrets` alone shows the tokens.
#[test]
fn minted_tokens_and_cloud_identities_never_print() {
    use common::cloud::{self, Cloud};
    let cloud = Cloud::start();
    let c = common::Cluster::new(&format!(
            "apiVersion: regops.dev/v1
kind: RegistryConfig
registries:
  ecr: {{ server: 123456789012.dkr.ecr.eu-west-1.amazonaws.com, credential: aws }}
  gar: {{ server: europe-docker.pkg.dev, credential: google }}
  acr: {{ server: \"{}\", credential: azure, insecure: true }}
credentials:
  aws: {{ password: {{ ecr: {{ region: eu-west-1, roleArn: \"{}\" }} }} }}
  google: {{ password: {{ gcp: {{}} }} }}
  azure: {{ password: {{ acr: {{ tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47, clientId: 8f4a1e02-5b1c-4a8e-9d3f-0c2b7e6a9d11 }} }} }}
scopes:
  web: {{ namespaces: [web] }}
pullSecrets:
  pull: {{ registries: [ecr, gar, acr], scope: web }}
",
            cloud.addr,
            cloud::ROLE
    ));
    c.server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}))
        .unwrap();
    let (server, kubeconfig, spec) = (&c.server, &c.kubeconfig, &c.spec);
    let federated = c.dir.path().join("azure-token");
    std::fs::write(&federated, cloud::AZURE_FEDERATED).unwrap();
    let cmd = |sub: &str, extra: &[&str], secret: &str| {
        let mut c = regops();
        c.arg(sub).arg("-f").arg(spec);
        if sub != "render" {
            c.arg("--kubeconfig").arg(kubeconfig);
        }
        // The fake ACR registry is on loopback: allowed by the operator.
        c.args(extra)
            .args(["--allow-minted-host", &cloud.addr.to_string()])
            .env("AWS_ACCESS_KEY_ID", cloud::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_ENDPOINT_URL_ECR", cloud.url())
            .env("AWS_ENDPOINT_URL_STS", cloud.url())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("GCE_METADATA_HOST", cloud.addr.to_string())
            .env("AZURE_AUTHORITY_HOST", cloud.url())
            .env("AZURE_FEDERATED_TOKEN_FILE", &federated)
            .env_remove("RUST_LOG");
        c
    };
    let markers = ["MARKER"];
    let good = cloud::SECRET_KEY;
    let cases: Vec<(&str, std::process::Command)> = vec![
        ("plan -vv", cmd("plan", &["-vv"], good)),
        ("plan -o json", cmd("plan", &["-o", "json"], good)),
        ("apply -vv", cmd("apply", &["--yes", "-vv"], good)),
        (
            "drift -vv",
            cmd("drift", &["-vv", "-o", "json", "--next-run", "24h"], good),
        ),
        ("render", cmd("render", &["-n", "web"], good)),
        (
            "plan, refused key",
            cmd("plan", &["-vv"], "wrong-secret-MARKER"),
        ),
        (
            "render, refused key",
            cmd("render", &["-n", "web"], "wrong-secret-MARKER"),
        ),
    ];
    for (what, mut c) in cases {
        let r = run(&mut c);
        let l: Vec<String> = leaked_of(&r.stdout, &markers)
            .into_iter()
            .chain(leaked_of(&r.stderr, &markers))
            .collect();
        assert!(l.is_empty(), "`{what}` leaked {l:?}:\n{}", r.transcript());
    }
    // What was written holds the tokens; only --show-secrets prints them.
    let s = server.object("secrets", "web", "pull").unwrap();
    let doc = STANDARD
        .decode(s["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&doc).matches("MARKER").count(), 3);
    let shown = run(&mut cmd("render", &["-n", "web", "--show-secrets"], good));
    assert_eq!(shown.code, 0, "{}", shown.transcript());
    assert!(!leaked_of(&shown.stdout, &markers).is_empty());
}

/// A password read from a sops file (`{sops: {file, extract}}`): no command prints it, at any
/// verbosity, on success or failure (a tampered file, another key, a missing path), in plain
/// text or base64; `render --show-secrets` alone shows it.
#[test]
fn sops_sources_print_no_credential_at_every_verbosity() {
    const SOPS_MARKER: &str = "MARKER-sops-5e7c1d2a";
    let fixtures = common::repo().join("crates/regops-core/tests/fixtures/sops");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    let file = dir.path().join("secrets/markers.enc.yaml");
    std::fs::copy(fixtures.join("markers.enc.yaml"), &file).unwrap();
    let spec = dir.path().join("regops.yaml");
    let write_spec = |extract: &str| {
        std::fs::write(
            &spec,
            format!("apiVersion: regops.dev/v1\nkind: RegistryConfig\nregistries:\n  harbor: {{ server: harbor.example.com, credential: robot }}\ncredentials:\n  robot:\n    username: {{sops: {{file: secrets/markers.enc.yaml, extract: '[\"harbor\"][\"username\"]'}}}}\n    password: {{sops: {{file: secrets/markers.enc.yaml, extract: '{extract}'}}}}\nscopes:\n  web: {{ namespaces: [web] }}\npullSecrets:\n  pull: {{ registries: [harbor], scope: web }}\n"),
        )
        .unwrap();
    };
    write_spec(r#"["harbor"]["password"]"#);
    let server = kube_test_server::TestServer::start(kube_test_server::Config::default()).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}))
        .unwrap();
    let cmd = |args: &[&str], key: &str| {
        let mut c = regops();
        c.args(args)
            .arg("-f")
            .arg(&spec)
            .env("SOPS_AGE_KEY_FILE", fixtures.join(key))
            .env_remove("RUST_LOG")
            .current_dir(dir.path());
        if matches!(args[0], "plan" | "apply" | "drift") {
            c.arg("--kubeconfig").arg(&kubeconfig);
        }
        c
    };
    let clean = |what: &str, r: &Run| {
        let l: Vec<String> = leaked_of(&r.stdout, &[SOPS_MARKER])
            .into_iter()
            .chain(leaked_of(&r.stderr, &[SOPS_MARKER]))
            .collect();
        assert!(l.is_empty(), "`{what}` leaked {l:?}:\n{}", r.transcript());
    };
    for (what, args) in [
        ("check", vec!["check"]),
        ("check -vv", vec!["check", "-vv"]),
        ("render", vec!["render"]),
        ("rekey", vec!["rekey"]),
        ("plan -v", vec!["plan", "-v"]),
        ("plan -vv -o json", vec!["plan", "-vv", "-o", "json"]),
        ("apply -vv", vec!["apply", "--yes", "-vv"]),
        ("drift -vv", vec!["drift", "-vv", "-o", "json"]),
    ] {
        let r = run(&mut cmd(&args, "age-key.txt"));
        // rekey refuses a spec without recipients; its output is checked all the same.
        assert!(
            matches!(r.code, 0 | 2) || what == "rekey",
            "{what}: {}",
            r.transcript()
        );
        clean(what, &r);
    }
    // Failures: another key, a missing path, a tampered file.
    let r = run(&mut cmd(&["plan", "-vv"], "other-age-key.txt"));
    assert_eq!(r.code, 1, "{}", r.transcript());
    clean("plan -vv, another key", &r);
    write_spec(r#"["harbor"]["pasword"]"#);
    let r = run(&mut cmd(&["apply", "--yes", "-vv"], "age-key.txt"));
    assert_eq!(r.code, 1, "{}", r.transcript());
    clean("apply -vv, a missing path", &r);
    write_spec(r#"["harbor"]["password"]"#);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replacen(
            "username: ENC[AES256_GCM,data:",
            "username: ENC[AES256_GCM,data:AA",
            1,
        ),
    )
    .unwrap();
    let r = run(&mut cmd(&["render", "-vv"], "age-key.txt"));
    assert_eq!(r.code, 1, "{}", r.transcript());
    clean("render -vv, a tampered file", &r);
    // The one way to see it, which also proves the detector sees it.
    std::fs::write(&file, text).unwrap();
    let r = run(&mut cmd(&["render", "--show-secrets"], "age-key.txt"));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        !leaked_of(&r.stdout, &[SOPS_MARKER]).is_empty(),
        "{}",
        r.stdout
    );
}

/// A password read from AWS Secrets Manager or Vault (the fakes of tests/common/cloud.rs),
/// and the AWS key, the Vault token and the service-account token used to read them, never
/// print at any verbosity, on success or failure (throttled, a missing key, Vault refusing);
/// `render --show-secrets` alone shows the passwords.
#[test]
fn secret_manager_sources_print_no_credential_at_every_verbosity() {
    use common::cloud::{self, Cloud};
    const AWS_MARKER: &str = "MARKER-awssm-3c9e1f70";
    const VAULT_MARKER: &str = "MARKER-vault-81d2b4a6";
    const GCP_MARKER: &str = "MARKER-gcpsm-5a7e02c4";
    const AZURE_MARKER: &str = "MARKER-akv-e19b3d58";
    let fake = Cloud::start();
    let seed = |aws_key: &str| {
        let mut s = fake.state.lock().unwrap();
        s.aws_secrets.insert(
            "registry/harbor".into(),
            serde_json::json!({ aws_key: AWS_MARKER, "other": "x" }).to_string(),
        );
        s.vault_secrets.insert(
            "secret/registry/quay".into(),
            serde_json::json!({"token": VAULT_MARKER}),
        );
        s.gcp_secrets.insert(
            "projects/my-project/secrets/registry-gcr/versions/latest".into(),
            serde_json::json!({ aws_key: GCP_MARKER }).to_string(),
        );
        s.key_vault_secrets
            .insert("myvault/registry-acr".into(), AZURE_MARKER.into());
    };
    seed("password");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("regops.yaml");
    std::fs::write(
        &spec,
        "apiVersion: regops.dev/v1\nkind: RegistryConfig\nregistries:\n  harbor: { server: harbor.example.com, credential: harbor }\n  quay: { server: quay.example.com, credential: quay }\n  gcr: { server: gcr.example.com, credential: gcr }\n  acr: { server: acr.example.com, credential: acr }\ncredentials:\n  harbor:\n    username: robot\n    password: {awsSecretsManager: {secretId: registry/harbor, region: eu-west-1, jsonKey: password}}\n  quay:\n    username: bot\n    password: {vault: {path: registry/quay, field: token}}\n  gcr:\n    username: bot\n    password: {gcpSecretManager: {name: projects/my-project/secrets/registry-gcr/versions/latest, jsonKey: password}}\n  acr:\n    username: bot\n    password: {azureKeyVault: {vault: myvault, secret: registry-acr}}\nscopes:\n  web: { namespaces: [web] }\npullSecrets:\n  pull: { registries: [harbor, quay, gcr, acr], scope: web }\n",
    )
    .unwrap();
    let server = kube_test_server::TestServer::start(kube_test_server::Config::default()).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}))
        .unwrap();
    let cmd = |args: &[&str]| {
        let mut c = regops();
        c.args(args)
            .arg("-f")
            .arg(&spec)
            .args([
                "--allow-secret",
                "aws:registry/*",
                "--allow-secret",
                "vault:secret/registry/*",
                "--allow-secret",
                "gcp:projects/my-project/secrets/registry-*",
                "--allow-secret",
                "azure:myvault/registry-*",
            ])
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", fake.url())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", cloud::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", cloud::SECRET_KEY)
            .env("VAULT_ADDR", fake.url())
            .env("VAULT_TOKEN", cloud::VAULT_TOKEN)
            .env_remove("VAULT_NAMESPACE")
            .env("GCE_METADATA_HOST", fake.addr.to_string())
            .env("CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER", fake.url())
            .env("AZURE_AUTHORITY_HOST", fake.url())
            .env("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47")
            .env("AZURE_CLIENT_ID", "8f4a1e02-5b1c-4a8e-9d3f-0c2b7e6a9d11")
            .env("AZURE_CLIENT_SECRET", cloud::AZURE_SECRET)
            .env(
                "REGOPS_AZURE_KEY_VAULT_URL",
                format!("{}/kv/{{vault}}", fake.url()),
            )
            .env_remove("RUST_LOG")
            .current_dir(dir.path());
        if matches!(args[0], "plan" | "apply" | "drift") {
            c.arg("--kubeconfig").arg(&kubeconfig);
        }
        c
    };
    // Every value, key and token of the fakes holds `MARKER`.
    let markers = ["MARKER", AWS_MARKER, VAULT_MARKER, GCP_MARKER, AZURE_MARKER];
    let clean = |what: &str, r: &Run| {
        let l: Vec<String> = leaked_of(&r.stdout, &markers)
            .into_iter()
            .chain(leaked_of(&r.stderr, &markers))
            .collect();
        assert!(l.is_empty(), "`{what}` leaked {l:?}:\n{}", r.transcript());
    };
    let all = [
        ("check", vec!["check"]),
        ("check -vv", vec!["check", "-vv"]),
        ("render", vec!["render"]),
        ("plan -v", vec!["plan", "-v"]),
        ("plan -vv -o json", vec!["plan", "-vv", "-o", "json"]),
        ("apply -vv", vec!["apply", "--yes", "-vv"]),
        ("drift -vv", vec!["drift", "-vv", "-o", "json"]),
    ];
    for (what, args) in &all {
        let r = run(&mut cmd(args));
        assert!(matches!(r.code, 0 | 2), "{what}: {}", r.transcript());
        clean(what, &r);
    }
    // Failures: throttled; a key the secret does not hold; Vault refusing the token.
    fake.state.lock().unwrap().throttle_secrets = true;
    let r = run(&mut cmd(&["plan", "-vv"]));
    assert_eq!(r.code, 1, "{}", r.transcript());
    clean("plan -vv, throttled", &r);
    fake.state.lock().unwrap().throttle_secrets = false;
    seed("pasword");
    let r = run(&mut cmd(&["apply", "--yes", "-vv"]));
    assert_eq!(r.code, 1, "{}", r.transcript());
    clean("apply -vv, a missing key", &r);
    seed("password");
    let r = run(cmd(&["render", "-vv"]).env("VAULT_TOKEN", "hvs.wrong-MARKER"));
    assert_eq!(r.code, 1, "{}", r.transcript());
    clean("render -vv, Vault refusing", &r);
    // Google and Key Vault throttling, a damaged checksum, a 12 MB answer; Vault's JWT login
    // refused, and accepted.
    fake.state.lock().unwrap().throttle_gcp_azure = true;
    let r = run(&mut cmd(&["check", "-vv"]));
    assert_eq!(r.code, 1, "{}", r.transcript());
    clean("check -vv, Google and Key Vault throttling", &r);
    fake.state.lock().unwrap().throttle_gcp_azure = false;
    fake.state.lock().unwrap().gcp_bad_crc = true;
    let r = run(&mut cmd(&["plan", "-vv", "-o", "json"]));
    assert_eq!(r.code, 1, "{}", r.transcript());
    clean("plan -vv -o json, a damaged checksum", &r);
    fake.state.lock().unwrap().gcp_bad_crc = false;
    fake.state.lock().unwrap().huge_secret = true;
    let r = run(&mut cmd(&["apply", "--yes", "-vv"]));
    assert_eq!(r.code, 1, "{}", r.transcript());
    clean("apply -vv, a 12 MB answer", &r);
    fake.state.lock().unwrap().huge_secret = false;
    let jwt = dir.path().join("ci-jwt");
    std::fs::write(&jwt, cloud::VAULT_OIDC_JWT).unwrap();
    for (role, code) in [("someone-else", 1), (cloud::VAULT_JWT_ROLE, 0)] {
        let r = run(cmd(&["check", "-vv"])
            .env_remove("VAULT_TOKEN")
            .env("VAULT_AUTH", "jwt")
            .env("VAULT_JWT_FILE", &jwt)
            .env("VAULT_ROLE", role));
        assert_eq!(r.code, code, "{}", r.transcript());
        clean("check -vv, Vault JWT auth", &r);
    }
    // The one way to see them, which also proves the detector sees them.
    let r = run(&mut cmd(&["render", "--show-secrets"]));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        !leaked_of(&r.stdout, &[AWS_MARKER]).is_empty(),
        "{}",
        r.stdout
    );
    assert!(
        !leaked_of(&r.stdout, &[VAULT_MARKER]).is_empty(),
        "{}",
        r.stdout
    );
    for m in [GCP_MARKER, AZURE_MARKER] {
        assert!(!leaked_of(&r.stdout, &[m]).is_empty(), "{m}: {}", r.stdout);
    }
}
