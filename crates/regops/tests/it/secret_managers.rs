//! `awsSecretsManager:` and `vault:` credential sources through the binary, against the fake
//! AWS and Vault of tests/common/cloud.rs (which check the requests as the services' API
//! references define them): read through `check`, `plan` and `apply`, once per run; refused,
//! before any call, for a secret the operator did not allow with `--allow-secret`; throttling,
//! errors and a 12 MB answer refused with a clear message; Vault's address only the
//! operator's, and https unless on loopback; no value in any output.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use base64::Engine;
use common::cloud::{self, Cloud};
use common::{Cluster, Run, regops, run};

const HARBOR_PASSWORD: &str = "harbor-pw-MARKER";
const QUAY_TOKEN: &str = "quay-token-MARKER";

fn spec(aws_id: &str, vault_path: &str) -> String {
    format!(
        "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: {{ name: managers }}
registries:
  harbor: {{ server: harbor.example.com, credential: harbor }}
  mirror: {{ server: mirror.example.com, credential: mirror }}
  quay: {{ server: quay.example.com, credential: quay }}
credentials:
  harbor:
    username: robot$ci
    password: {{ awsSecretsManager: {{ secretId: {aws_id}, region: eu-west-1, jsonKey: password }} }}
  mirror:
    username: robot$mirror
    password: {{ awsSecretsManager: {{ secretId: {aws_id}, region: eu-west-1, jsonKey: password }} }}
  quay:
    username: quay-bot
    password: {{ vault: {{ path: {vault_path}, field: token }} }}
scopes:
  web: {{ namespaces: [web] }}
pullSecrets:
  pull: {{ registries: [harbor, mirror, quay], scope: web }}
"
    )
}

fn cloud() -> Cloud {
    let cloud = Cloud::start();
    {
        let mut s = cloud.state.lock().unwrap();
        s.aws_secrets.insert(
            "registry/harbor".into(),
            serde_json::json!({"username": "robot$ci", "password": HARBOR_PASSWORD}).to_string(),
        );
        s.vault_secrets.insert(
            "secret/registry/quay".into(),
            serde_json::json!({"token": QUAY_TOKEN}),
        );
    }
    cloud
}

const ALLOWED: &[&str] = &[
    "--allow-secret",
    "aws:registry/*",
    "--allow-secret",
    "vault:secret/registry/quay",
];

/// The binary with the fake services as the operator's endpoints and identities.
fn with(cloud: &Cloud) -> std::process::Command {
    let mut cmd = regops();
    cmd.env("AWS_ENDPOINT_URL_SECRETS_MANAGER", cloud.url())
        .env("AWS_ENDPOINT_URL_STS", cloud.url())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", cloud::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", cloud::SECRET_KEY)
        .env("VAULT_ADDR", cloud.url())
        .env("VAULT_TOKEN", cloud::VAULT_TOKEN)
        .env_remove("VAULT_NAMESPACE")
        .env_remove("VAULT_ROLE");
    cmd
}

/// Runs it; asserts no value, key or token is in what it printed.
fn clean(cmd: &mut std::process::Command) -> Run {
    let r = run(cmd);
    assert!(
        !r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"),
        "a secret leaked:\n{}",
        r.transcript()
    );
    r
}

fn says(r: &Run, text: &str) -> bool {
    r.flat_stderr()
        .contains(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn password(c: &Cluster, server: &str) -> String {
    let s = c
        .server
        .object("secrets", "web", "pull")
        .expect("the Secret");
    let doc = base64::engine::general_purpose::STANDARD
        .decode(s["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    doc["auths"][server]["password"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn check_plan_and_apply_read_aws_and_vault_secrets_once_per_run() {
    let cloud = cloud();
    let c = Cluster::new(&spec("registry/harbor", "registry/quay"));
    c.server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}))
        .unwrap();
    let r = clean(
        with(&cloud)
            .arg("check")
            .arg("-f")
            .arg(&c.spec)
            .args(ALLOWED),
    );
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        says(&r, "3 of 3 credentials readable"),
        "{}",
        r.transcript()
    );
    // Two credentials name the same secret: it is read once.
    assert_eq!(cloud.calls("secretsmanager"), 1);
    assert_eq!(cloud.calls("vault:read"), 1);
    // The request as GetSecretValue defines it (the fake checked the signature, the target
    // and the content type): the secret's id, no stage when none is given.
    assert_eq!(
        cloud.state.lock().unwrap().secret_requests,
        vec![serde_json::json!({"SecretId": "registry/harbor"})]
    );

    let kube = |cmd: &str| {
        let mut x = with(&cloud);
        x.arg(cmd)
            .arg("-f")
            .arg(&c.spec)
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args(ALLOWED);
        x
    };
    let r = clean(&mut kube("plan"));
    assert_eq!(r.code, 2, "a Secret to create: {}", r.transcript());
    assert_eq!(cloud.calls("secretsmanager"), 2);
    let r = clean(kube("apply").arg("--yes"));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(password(&c, "harbor.example.com"), HARBOR_PASSWORD);
    assert_eq!(password(&c, "mirror.example.com"), HARBOR_PASSWORD);
    assert_eq!(password(&c, "quay.example.com"), QUAY_TOKEN);
    let r = clean(&mut kube("plan"));
    assert_eq!(r.code, 0, "in step: {}", r.transcript());

    // The secret moved at the source: the next plan has a change.
    cloud.state.lock().unwrap().vault_secrets.insert(
        "secret/registry/quay".into(),
        serde_json::json!({"token": "rotated-MARKER"}),
    );
    let r = clean(&mut kube("plan"));
    assert_eq!(r.code, 2, "the source changed: {}", r.transcript());
    // drift reads the sources too: the Secret no longer holds what the source does.
    let r = clean(&mut kube("drift"));
    assert_eq!(r.code, 2, "drift: {}", r.transcript());
}

#[test]
fn a_secret_the_operator_did_not_allow_is_refused_before_any_call() {
    let cloud = cloud();
    // The attacker's spec names a secret the job's identity can read, to send it to a
    // registry of its own choosing.
    let c = Cluster::new(&spec("prod/database-password", "registry/quay"));
    for (args, named) in [
        (&[][..], "no aws secret is allowed"),
        (
            ALLOWED,
            "not among the aws secrets the operator allows (registry/*)",
        ),
    ] {
        let r = clean(with(&cloud).arg("check").arg("-f").arg(&c.spec).args(args));
        assert_eq!(r.code, 1, "{}", r.transcript());
        assert!(
            says(
                &r,
                "credential `harbor` may not read the aws secret `prod/database-password`"
            ),
            "{}",
            r.transcript()
        );
        assert!(says(&r, named), "{}", r.transcript());
        assert!(
            says(&r, "--allow-secret aws:prod/database-password"),
            "the flag is named: {}",
            r.transcript()
        );
        assert!(
            r.stderr.contains("regops.yaml:"),
            "located: {}",
            r.transcript()
        );
    }
    // Vault by mount and path: another mount, or a path beside the allowed one, is refused.
    for path in ["registry/quay2", "registry", "other/quay"] {
        let c = Cluster::new(&spec("registry/harbor", path));
        let r = clean(
            with(&cloud)
                .arg("check")
                .arg("-f")
                .arg(&c.spec)
                .args(ALLOWED),
        );
        assert_eq!(r.code, 1, "{path}: {}", r.transcript());
        assert!(
            says(
                &r,
                &format!("may not read the vault secret `secret/{path}`")
            ),
            "{}",
            r.transcript()
        );
    }
    let other_mount = spec("registry/harbor", "registry/quay")
        .replace("field: token }", "field: token, mount: kv }");
    let c = Cluster::new(&other_mount);
    let r = clean(
        with(&cloud)
            .arg("check")
            .arg("-f")
            .arg(&c.spec)
            .args(ALLOWED),
    );
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(says(&r, "`kv/registry/quay`"), "{}", r.transcript());
    // Nothing was asked of either service.
    assert_eq!(cloud.total_calls(), 0);
    // A spec cannot name the endpoint, nor a path that climbs out of the engine.
    for bad in [
        spec("registry/harbor", "registry/quay").replace(
            "field: token }",
            "field: token, address: 'https://evil.example.com' }",
        ),
        spec("registry/harbor", "registry/quay").replace(
            "region: eu-west-1,",
            "region: eu-west-1, endpoint: 'https://evil.example.com',",
        ),
        spec("registry/harbor", "'../../sys/raw/x'"),
        spec("registry/harbor", "registry/quay")
            .replace("region: eu-west-1,", "region: 'evil.example.com/x',"),
    ] {
        let c = Cluster::new(&bad);
        let r = clean(
            with(&cloud)
                .arg("check")
                .arg("-f")
                .arg(&c.spec)
                .args(ALLOWED),
        );
        assert_eq!(r.code, 1, "{}", r.transcript());
        assert!(
            r.stderr.contains("regops.yaml:"),
            "located: {}",
            r.transcript()
        );
    }
    assert_eq!(cloud.total_calls(), 0);
}

#[test]
fn throttling_errors_and_a_12_mb_answer_are_refused_with_a_clear_message() {
    let cloud = cloud();
    let c = Cluster::new(&spec("registry/harbor", "registry/quay"));
    let check = |cloud: &Cloud| {
        clean(
            with(cloud)
                .arg("check")
                .arg("-f")
                .arg(&c.spec)
                .args(ALLOWED),
        )
    };

    cloud.state.lock().unwrap().throttle_secrets = true;
    let r = check(&cloud);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(
            &r,
            "cannot read the password of credential `harbor` from the aws secret `registry/harbor`"
        ),
        "{}",
        r.transcript()
    );
    assert!(
        says(
            &r,
            "HTTP 400: ThrottlingException: Rate exceeded (AWS throttled the request; run again later)"
        ),
        "{}",
        r.transcript()
    );

    cloud.state.lock().unwrap().throttle_secrets = false;
    cloud.state.lock().unwrap().huge_secret = true;
    let r = check(&cloud);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(&r, "the answer is larger than the 1024 KiB limit"),
        "{}",
        r.transcript()
    );

    cloud.state.lock().unwrap().huge_secret = false;
    cloud.state.lock().unwrap().aws_secrets.clear();
    cloud.state.lock().unwrap().vault_secrets.clear();
    let r = check(&cloud);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(says(&r, "ResourceNotFoundException"), "{}", r.transcript());
    assert!(
        says(&r, "from the vault secret `secret/registry/quay`"),
        "{}",
        r.transcript()
    );
    assert!(says(&r, "HTTP 404"), "{}", r.transcript());

    // A key that is not there, a field that is not there: named, never the values beside.
    {
        let mut s = cloud.state.lock().unwrap();
        s.aws_secrets.insert(
            "registry/harbor".into(),
            serde_json::json!({"token": HARBOR_PASSWORD}).to_string(),
        );
        s.vault_secrets.insert(
            "secret/registry/quay".into(),
            serde_json::json!({"password": QUAY_TOKEN}),
        );
    }
    let r = check(&cloud);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(&r, "jsonKey `password`: the secret has no such key"),
        "{}",
        r.transcript()
    );
    assert!(
        says(&r, "the secret has no field `token`"),
        "{}",
        r.transcript()
    );

    // A wrong key is refused by the signature check, and said so.
    let r = clean(
        with(&cloud)
            .env("AWS_SECRET_ACCESS_KEY", "wrong-secret-MARKER")
            .arg("check")
            .arg("-f")
            .arg(&c.spec)
            .args(ALLOWED),
    );
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(says(&r, "InvalidSignatureException"), "{}", r.transcript());
}

#[test]
fn vault_kubernetes_auth_a_namespace_and_only_the_operators_https_address() {
    let cloud = cloud();
    cloud.state.lock().unwrap().vault_namespace = Some("team-a".into());
    let c = Cluster::new(&spec("registry/harbor", "registry/quay"));
    let jwt = c.dir.path().join("sa-token");
    std::fs::write(&jwt, format!("{}\n", cloud::VAULT_SA_JWT)).unwrap();
    let k8s = |cmd: &mut std::process::Command| {
        cmd.env_remove("VAULT_TOKEN")
            .env("VAULT_ROLE", cloud::VAULT_ROLE)
            .env("VAULT_NAMESPACE", "team-a")
            .env("VAULT_K8S_TOKEN_FILE", &jwt)
            .arg("check")
            .arg("-f")
            .arg(&c.spec)
            .args(ALLOWED);
    };
    let mut cmd = with(&cloud);
    k8s(&mut cmd);
    let r = clean(&mut cmd);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(cloud.calls("vault:login"), 1);
    assert_eq!(cloud.calls("vault:read"), 1);

    // --vault-role comes before VAULT_ROLE.
    let mut cmd = with(&cloud);
    k8s(&mut cmd);
    let r = clean(
        cmd.env("VAULT_ROLE", "someone-else")
            .args(["--vault-role", cloud::VAULT_ROLE]),
    );
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(cloud.calls("vault:login"), 2);

    // Another role: Vault refuses the login, and regops says which step failed.
    let mut cmd = with(&cloud);
    k8s(&mut cmd);
    let r = clean(cmd.env("VAULT_ROLE", "someone-else"));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(
            &r,
            "log in to Vault with Kubernetes auth failed: HTTP 400: invalid role name or service account token"
        ),
        "{}",
        r.transcript()
    );

    // Without the namespace, Vault denies it.
    let r = clean(
        with(&cloud)
            .arg("check")
            .arg("-f")
            .arg(&c.spec)
            .args(ALLOWED),
    );
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(&r, "HTTP 403: permission denied"),
        "{}",
        r.transcript()
    );

    // No address, or a plain-HTTP one off loopback: refused before anything is sent.
    let (reads, logins) = (cloud.calls("vault:read"), cloud.calls("vault:login"));
    for (addr, said) in [
        (None, "VAULT_ADDR is not set"),
        (
            Some("http://vault.example.com:8200"),
            "refused to send a token request to http://vault.example.com:8200 over plain HTTP",
        ),
    ] {
        let mut cmd = with(&cloud);
        match addr {
            Some(a) => cmd.env("VAULT_ADDR", a),
            None => cmd.env_remove("VAULT_ADDR"),
        };
        let r = clean(cmd.arg("check").arg("-f").arg(&c.spec).args(ALLOWED));
        assert_eq!(r.code, 1, "{}", r.transcript());
        assert!(says(&r, said), "{}", r.transcript());
    }
    assert_eq!(
        (cloud.calls("vault:read"), cloud.calls("vault:login")),
        (reads, logins),
        "nothing was sent to Vault"
    );
}
