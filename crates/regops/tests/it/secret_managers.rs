//! `awsSecretsManager:`, `gcpSecretManager:`, `azureKeyVault:` and `vault:` credential
//! sources through the binary, against the fake AWS, Google, Azure and Vault of
//! tests/common/cloud.rs (which check the requests as the services' API references define
//! them): read through `check`, `plan`, `apply`, `drift` and `validate`, once per run; refused,
//! before any call, for a secret the operator did not allow with `--allow-secret` or a name
//! crafted to reach another path or host; throttling, errors, a damaged checksum and a 12 MB
//! answer refused with a clear message; Vault's address only the operator's, and https unless
//! on loopback, its login by token, Kubernetes or JWT auth as the operator chooses; no value in
//! any output.

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

/// Whether stderr says `text`, however the renderer wrapped it (inside a long name too).
fn says_wrapped(r: &Run, text: &str) -> bool {
    let tight = |t: &str| {
        t.replace('│', "")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
    };
    tight(&r.stderr).contains(&tight(text))
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

// Google Secret Manager and Azure Key Vault.

const GCP_NAME: &str = "projects/my-project/secrets/registry-harbor/versions/latest";
const GCP_PASSWORD: &str = "gcp-pw-MARKER:$'\"é";
const AZURE_PASSWORD: &str = "azure-pw-MARKER";

fn cloud_spec(gcp_name: &str, vault: &str, secret: &str) -> String {
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
    password: {{ gcpSecretManager: {{ name: '{gcp_name}', jsonKey: password }} }}
  mirror:
    username: robot$mirror
    password: {{ gcpSecretManager: {{ name: '{gcp_name}', jsonKey: password }} }}
  quay:
    username: quay-bot
    password: {{ azureKeyVault: {{ vault: '{vault}', secret: '{secret}' }} }}
scopes:
  web: {{ namespaces: [web] }}
pullSecrets:
  pull: {{ registries: [harbor, mirror, quay], scope: web }}
"
    )
}

fn clouds() -> Cloud {
    let cloud = Cloud::start();
    {
        let mut s = cloud.state.lock().unwrap();
        s.gcp_secrets.insert(
            GCP_NAME.into(),
            serde_json::json!({"username": "robot$ci", "password": GCP_PASSWORD}).to_string(),
        );
        s.key_vault_secrets
            .insert("myvault/registry-quay".into(), AZURE_PASSWORD.into());
    }
    cloud
}

const ALLOWED_CLOUDS: &[&str] = &[
    "--allow-secret",
    "gcp:projects/my-project/secrets/registry-*",
    "--allow-secret",
    "azure:myvault/registry-*",
];

/// The binary with the fake Google and Azure as the operator's endpoints and identities:
/// the GCE metadata server for Google's token, a client secret for Entra ID's.
fn with_clouds(cloud: &Cloud) -> std::process::Command {
    let mut cmd = regops();
    cmd.env("GCE_METADATA_HOST", cloud.addr.to_string())
        .env(
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER",
            format!("{}/", cloud.url()),
        )
        .env("AZURE_AUTHORITY_HOST", cloud.url())
        .env("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47")
        .env("AZURE_CLIENT_ID", "8f4a1e02-5b1c-4a8e-9d3f-0c2b7e6a9d11")
        .env("AZURE_CLIENT_SECRET", cloud::AZURE_SECRET)
        .env(
            "REGOPS_AZURE_KEY_VAULT_URL",
            format!("{}/kv/{{vault}}", cloud.url()),
        );
    cmd
}

#[test]
fn check_plan_and_apply_read_google_and_azure_secrets_once_per_run() {
    let cloud = clouds();
    let c = Cluster::new(&cloud_spec(GCP_NAME, "myvault", "registry-quay"));
    c.server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}))
        .unwrap();
    let r = clean(
        with_clouds(&cloud)
            .arg("check")
            .arg("-f")
            .arg(&c.spec)
            .args(ALLOWED_CLOUDS),
    );
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        says_wrapped(&r, "3 of 3 credentials readable"),
        "{}",
        r.transcript()
    );
    // Two credentials name the same version: it is read once.
    assert_eq!(cloud.calls("gcp:secretmanager"), 1);
    assert_eq!(cloud.calls("keyvault"), 1);
    // The Entra ID token was asked for Key Vault's audience (the fake's Key Vault takes no
    // other), and Google's came from the metadata server.
    assert_eq!(
        cloud.state.lock().unwrap().entra_scopes,
        vec![cloud::KEY_VAULT_SCOPE.to_string()]
    );
    assert!(cloud.calls("gcp:metadata") >= 1);

    let kube = |cmd: &str| {
        let mut x = with_clouds(&cloud);
        x.arg(cmd)
            .arg("-f")
            .arg(&c.spec)
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args(ALLOWED_CLOUDS);
        x
    };
    let r = clean(&mut kube("plan"));
    assert_eq!(r.code, 2, "a Secret to create: {}", r.transcript());
    assert_eq!(cloud.calls("gcp:secretmanager"), 2);
    let r = clean(kube("apply").arg("--yes"));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(password(&c, "harbor.example.com"), GCP_PASSWORD);
    assert_eq!(password(&c, "mirror.example.com"), GCP_PASSWORD);
    assert_eq!(password(&c, "quay.example.com"), AZURE_PASSWORD);
    let r = clean(&mut kube("plan"));
    assert_eq!(r.code, 0, "in step: {}", r.transcript());

    // The secrets moved at the source: the next plan has a change, and drift sees it.
    cloud.state.lock().unwrap().key_vault_secrets.insert(
        "myvault/registry-quay".into(),
        "rotated-azure-MARKER".into(),
    );
    let r = clean(&mut kube("plan"));
    assert_eq!(r.code, 2, "the source changed: {}", r.transcript());
    let r = clean(&mut kube("drift"));
    assert_eq!(r.code, 2, "drift: {}", r.transcript());

    // A numbered Google version and a Key Vault version are asked for as they are named.
    let version = "4387e9f3d6e14c459867679a90fd0f79";
    let pinned = "projects/my-project/secrets/registry-harbor/versions/2";
    {
        let mut s = cloud.state.lock().unwrap();
        s.gcp_secrets.insert(
            pinned.into(),
            serde_json::json!({"password": "v2-MARKER"}).to_string(),
        );
        s.key_vault_secrets.insert(
            format!("myvault/registry-quay/{version}"),
            "pinned-MARKER".into(),
        );
    }
    let pinned_spec = cloud_spec(pinned, "myvault", "registry-quay").replace(
        "secret: 'registry-quay' }",
        &format!("secret: 'registry-quay', version: {version} }}"),
    );
    let c = Cluster::new(&pinned_spec);
    c.server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}))
        .unwrap();
    let r = clean(
        with_clouds(&cloud)
            .args(["apply", "--yes", "-f"])
            .arg(&c.spec)
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args(ALLOWED_CLOUDS),
    );
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(password(&c, "harbor.example.com"), "v2-MARKER");
    assert_eq!(password(&c, "quay.example.com"), "pinned-MARKER");
}

/// The token a secret manager is read with is asked for within the run's
/// `--request-timeout`, as every request to a cloud is (the read itself has its own cap): an
/// Entra ID that never answers fails the plan after the flag's second, naming where.
#[test]
fn a_hung_token_endpoint_gets_the_runs_request_timeout() {
    let cloud = clouds();
    cloud.state.lock().unwrap().hang_entra = Some(std::time::Duration::from_secs(40));
    let c = Cluster::new(&cloud_spec(GCP_NAME, "myvault", "registry-quay"));
    let r = clean(
        with_clouds(&cloud)
            .args(["plan", "--request-timeout", "1s", "-f"])
            .arg(&c.spec)
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args(ALLOWED_CLOUDS),
    );
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says_wrapped(&r, "/oauth2/v2.0/token in 1 s"),
        "{}",
        r.transcript()
    );
    assert_eq!(cloud.calls("keyvault"), 0, "nothing read without a token");
}

#[test]
fn a_google_or_azure_secret_the_operator_did_not_allow_or_a_crafted_name_is_refused_before_any_call()
 {
    let cloud = clouds();
    // The attacker's spec names secrets the job's identity can read, to send them to
    // registries of its own choosing.
    let c = Cluster::new(&cloud_spec(
        "projects/my-project/secrets/prod-database/versions/latest",
        "myvault",
        "prod-database",
    ));
    for (args, gcp_said, azure_said) in [
        (
            &[][..],
            "no gcp secret is allowed",
            "no azure secret is allowed",
        ),
        (
            ALLOWED_CLOUDS,
            "not among the gcp secrets the operator allows (projects/my-project/secrets/registry-*)",
            "not among the azure secrets the operator allows (myvault/registry-*)",
        ),
    ] {
        let r = clean(
            with_clouds(&cloud)
                .arg("check")
                .arg("-f")
                .arg(&c.spec)
                .args(args),
        );
        assert_eq!(r.code, 1, "{}", r.transcript());
        for said in [
            "credential `harbor` may not read the gcp secret `projects/my-project/secrets/prod-database/versions/latest`",
            gcp_said,
            "--allow-secret gcp:projects/my-project/secrets/prod-database/versions/latest",
            "credential `quay` may not read the azure secret `myvault/prod-database`",
            azure_said,
            "--allow-secret azure:myvault/prod-database",
        ] {
            assert!(says_wrapped(&r, said), "{said}: {}", r.transcript());
        }
        assert!(
            r.stderr.contains("regops.yaml:"),
            "located: {}",
            r.transcript()
        );
    }
    // Another vault with an allowed secret's name, another project with an allowed prefix.
    for (g, v) in [
        (GCP_NAME, "othervault"),
        (
            "projects/other-project/secrets/registry-harbor/versions/latest",
            "myvault",
        ),
    ] {
        let c = Cluster::new(&cloud_spec(g, v, "registry-quay"));
        let r = clean(
            with_clouds(&cloud)
                .arg("check")
                .arg("-f")
                .arg(&c.spec)
                .args(ALLOWED_CLOUDS),
        );
        assert_eq!(r.code, 1, "{g} {v}: {}", r.transcript());
        assert!(says_wrapped(&r, "may not read the"), "{}", r.transcript());
    }
    assert_eq!(cloud.total_calls(), 0, "nothing was asked of the clouds");

    // Names that try another path or another host are refused where the spec names them,
    // whatever the operator allowed.
    let everything = [
        "--allow-secret",
        "gcp:projects/*",
        "--allow-secret",
        "azure:m*",
        "--allow-secret",
        "azure:e*",
    ];
    let q = "registry-quay";
    for (g, v, s, said) in [
        (
            "projects/my-project/secrets/../versions/latest",
            "myvault",
            q,
            "SECRET is not 1 to 255 letters",
        ),
        (
            "projects/my-project/secrets/registry-x/versions/../../../../v1/projects/p/secrets/s/versions/1",
            "myvault",
            q,
            "is not `projects/PROJECT/secrets/SECRET/versions/VERSION`",
        ),
        (
            "projects/my-project/secrets/registry-%2F..%2Fx/versions/latest",
            "myvault",
            q,
            "SECRET is not",
        ),
        (
            "projects/my-project@evil.example.com/secrets/registry-x/versions/latest",
            "myvault",
            q,
            "PROJECT is neither",
        ),
        (
            "projects/my-project/secrets/registry-x/versions/latest?alt=json#",
            "myvault",
            q,
            "VERSION is neither",
        ),
        (
            "projects/./secrets/registry-x/versions/latest",
            "myvault",
            q,
            "PROJECT is neither",
        ),
        (GCP_NAME, "myvault.evil.example.com", q, "`vault` of"),
        (GCP_NAME, "evil.example.com/x", q, "`vault` of"),
        (GCP_NAME, "myvault@evil", q, "`vault` of"),
        (GCP_NAME, "my%2evault", q, "`vault` of"),
        (GCP_NAME, "myvault", "../../keys/k", "`secret` of"),
        (GCP_NAME, "myvault", "registry-x/..", "`secret` of"),
        (GCP_NAME, "myvault", "registry-%2F", "`secret` of"),
        (
            GCP_NAME,
            "myvault",
            "registry-x?api-version=1",
            "`secret` of",
        ),
        (GCP_NAME, "myvault", "registry-x.", "`secret` of"),
    ] {
        let c = Cluster::new(&cloud_spec(g, v, s));
        let r = clean(
            with_clouds(&cloud)
                .arg("check")
                .arg("-f")
                .arg(&c.spec)
                .args(everything),
        );
        assert_eq!(r.code, 1, "{g} {v} {s}: {}", r.transcript());
        assert!(says_wrapped(&r, said), "{said}: {}", r.transcript());
        assert!(
            r.stderr.contains("regops.yaml:"),
            "located: {}",
            r.transcript()
        );
    }
    // A version that climbs, and an endpoint the spec tries to name.
    for bad in [
        cloud_spec(GCP_NAME, "myvault", q).replace(
            "secret: 'registry-quay' }",
            "secret: 'registry-quay', version: '../../../keys/x' }",
        ),
        cloud_spec(GCP_NAME, "myvault", q).replace(
            "secret: 'registry-quay' }",
            "secret: 'registry-quay', vaultUrl: 'https://evil.example.com' }",
        ),
        cloud_spec(GCP_NAME, "myvault", q).replace(
            "jsonKey: password } }\n  mirror",
            "jsonKey: password, endpoint: 'https://evil.example.com' } }\n  mirror",
        ),
    ] {
        let c = Cluster::new(&bad);
        let r = clean(
            with_clouds(&cloud)
                .arg("check")
                .arg("-f")
                .arg(&c.spec)
                .args(everything),
        );
        assert_eq!(r.code, 1, "{}", r.transcript());
        assert!(
            r.stderr.contains("regops.yaml:"),
            "located: {}",
            r.transcript()
        );
    }
    assert_eq!(cloud.total_calls(), 0, "nothing was asked of the clouds");
}

#[test]
fn google_and_azure_throttling_errors_a_bad_checksum_and_a_12_mb_answer_are_refused_clearly() {
    let cloud = clouds();
    let c = Cluster::new(&cloud_spec(GCP_NAME, "myvault", "registry-quay"));
    let check = |cloud: &Cloud| {
        clean(
            with_clouds(cloud)
                .arg("check")
                .arg("-f")
                .arg(&c.spec)
                .args(ALLOWED_CLOUDS),
        )
    };
    cloud.state.lock().unwrap().throttle_gcp_azure = true;
    let r = check(&cloud);
    assert_eq!(r.code, 1, "{}", r.transcript());
    for said in [
        "cannot read the password of credential `harbor` from the gcp secret `projects/my-project/secrets/registry-harbor/versions/latest`",
        "HTTP 429: RESOURCE_EXHAUSTED: Quota exceeded",
        "(Google throttled the request; run again later)",
        "cannot read the password of credential `quay` from the azure secret `myvault/registry-quay`",
        "HTTP 429: Throttled: Request was not processed",
        "(Key Vault throttled the request; run again later)",
    ] {
        assert!(says_wrapped(&r, said), "{said}: {}", r.transcript());
    }

    {
        let mut s = cloud.state.lock().unwrap();
        s.throttle_gcp_azure = false;
        s.huge_secret = true;
    }
    let r = check(&cloud);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says_wrapped(&r, "the answer is larger than the 1024 KiB limit"),
        "{}",
        r.transcript()
    );
    assert_eq!(
        r.flat_stderr()
            .matches("the answer is larger than the 1024 KiB limit")
            .count(),
        3,
        "each credential says so: {}",
        r.transcript()
    );

    {
        let mut s = cloud.state.lock().unwrap();
        s.huge_secret = false;
        s.gcp_bad_crc = true;
    }
    let r = check(&cloud);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says_wrapped(&r, "the payload's CRC32C checksum does not match its data"),
        "{}",
        r.transcript()
    );

    {
        let mut s = cloud.state.lock().unwrap();
        s.gcp_bad_crc = false;
        s.gcp_secrets.clear();
        s.key_vault_secrets.clear();
    }
    let r = check(&cloud);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says_wrapped(&r, "HTTP 404: NOT_FOUND"),
        "{}",
        r.transcript()
    );
    assert!(
        says_wrapped(&r, "HTTP 404: SecretNotFound"),
        "{}",
        r.transcript()
    );

    // A key that is not there: named, never the values beside it.
    cloud.state.lock().unwrap().gcp_secrets.insert(
        GCP_NAME.into(),
        serde_json::json!({"token": GCP_PASSWORD}).to_string(),
    );
    let r = check(&cloud);
    assert!(
        says_wrapped(&r, "jsonKey `password`: the secret has no such key"),
        "{}",
        r.transcript()
    );

    // An Entra ID identity refused: the step is named.
    let r = clean(
        with_clouds(&cloud)
            .env("AZURE_CLIENT_SECRET", "wrong-MARKER")
            .arg("check")
            .arg("-f")
            .arg(&c.spec)
            .args(ALLOWED_CLOUDS),
    );
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says_wrapped(
            &r,
            "get an Entra ID token for 8f4a1e02-5b1c-4a8e-9d3f-0c2b7e6a9d11"
        ),
        "{}",
        r.transcript()
    );
    assert!(says_wrapped(&r, "invalid_client"), "{}", r.transcript());
}

#[test]
fn vault_jwt_auth_logs_in_with_the_operators_jwt_file_and_role() {
    let cloud = cloud();
    let c = Cluster::new(&spec("registry/harbor", "registry/quay"));
    let jwt = c.dir.path().join("ci-jwt");
    std::fs::write(&jwt, format!("{}\n", cloud::VAULT_OIDC_JWT)).unwrap();
    let base = || {
        let mut cmd = with(&cloud);
        cmd.env_remove("VAULT_TOKEN")
            .env("VAULT_JWT_FILE", &jwt)
            .env("VAULT_ROLE", cloud::VAULT_JWT_ROLE)
            .arg("check")
            .arg("-f")
            .arg(&c.spec)
            .args(ALLOWED);
        cmd
    };
    // By the flag, and by VAULT_AUTH.
    let r = clean(base().args(["--vault-auth", "jwt"]));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(cloud.calls("vault:jwt-login"), 1);
    assert_eq!(cloud.calls("vault:read"), 1);
    let r = clean(base().env("VAULT_AUTH", "jwt"));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(cloud.calls("vault:jwt-login"), 2);
    assert_eq!(cloud.calls("vault:login"), 0, "not Kubernetes auth");

    // The flag comes before VAULT_AUTH, and `token` takes VAULT_TOKEN even beside a JWT.
    let r = clean(
        base()
            .env("VAULT_AUTH", "kubernetes")
            .env("VAULT_TOKEN", cloud::VAULT_TOKEN)
            .args(["--vault-auth", "token"]),
    );
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(cloud.calls("vault:jwt-login"), 2);
    assert_eq!(cloud.calls("vault:login"), 0);

    // Another role: Vault refuses the login, and regops says which step failed.
    let r = clean(
        base()
            .env("VAULT_ROLE", "someone-else")
            .args(["--vault-auth", "jwt"]),
    );
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says_wrapped(&r, "log in to Vault with JWT auth failed: HTTP 400"),
        "{}",
        r.transcript()
    );
    // No role, a JWT file that is not there, a method that does not exist.
    let r = clean(
        base()
            .env_remove("VAULT_ROLE")
            .args(["--vault-auth", "jwt"]),
    );
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says_wrapped(&r, "no role for JWT auth (--vault-role, VAULT_ROLE) is set"),
        "{}",
        r.transcript()
    );
    let gone = c.dir.path().join("no-such-jwt");
    let r = clean(
        base()
            .env("VAULT_JWT_FILE", &gone)
            .args(["--vault-auth", "jwt"]),
    );
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says_wrapped(&r, &format!("the token to log in with, {}", gone.display())),
        "{}",
        r.transcript()
    );
    // The auth mount is the operator's, and still a plain path.
    let r = clean(
        base()
            .env("VAULT_JWT_AUTH_MOUNT", "../sys")
            .args(["--vault-auth", "jwt"]),
    );
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says_wrapped(&r, "VAULT_JWT_AUTH_MOUNT: it has a `.` or `..` segment"),
        "{}",
        r.transcript()
    );
    let r = clean(base().env("VAULT_AUTH", "oidc"));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says_wrapped(
            &r,
            "VAULT_AUTH is `oidc`, not one of token, kubernetes, jwt"
        ),
        "{}",
        r.transcript()
    );
    let r = clean(base().args(["--vault-auth", "oidc"]));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.stderr
            .contains("invalid value 'oidc' for '--vault-auth <METHOD>'"),
        "{}",
        r.transcript()
    );
    assert_eq!(cloud.calls("vault:jwt-login"), 3);
}

#[test]
#[ignore = "needs docker-registry and htpasswd (Debian: docker-registry, apache2-utils)"]
fn validate_logs_in_to_a_real_registry_with_a_password_from_each_secret_manager() {
    common::registry::require();
    let (dir, storage) = common::registry::workdir();
    let registry = common::registry::start(dir.path(), "plain", &storage, None);
    let cloud = Cloud::start();
    {
        let mut s = cloud.state.lock().unwrap();
        s.aws_secrets
            .insert("registry/alice".into(), "s3cret".into());
        s.gcp_secrets.insert(
            "projects/my-project/secrets/registry-alice/versions/latest".into(),
            "s3cret".into(),
        );
        s.key_vault_secrets
            .insert("myvault/registry-alice".into(), "s3cret".into());
        s.vault_secrets.insert(
            "secret/registry/alice".into(),
            serde_json::json!({"password": "s3cret"}),
        );
    }
    let jwt = dir.path().join("ci-jwt");
    std::fs::write(&jwt, cloud::VAULT_OIDC_JWT).unwrap();
    let spec = dir.path().join("regops.yaml");
    for (source, allow, calls) in [
        (
            "{awsSecretsManager: {secretId: registry/alice, region: eu-west-1}}",
            "aws:registry/alice",
            "secretsmanager",
        ),
        (
            "{gcpSecretManager: {name: projects/my-project/secrets/registry-alice/versions/latest}}",
            "gcp:projects/my-project/secrets/registry-alice/versions/latest",
            "gcp:secretmanager",
        ),
        (
            "{azureKeyVault: {vault: myvault, secret: registry-alice}}",
            "azure:myvault/registry-alice",
            "keyvault",
        ),
        (
            "{vault: {path: registry/alice, field: password}}",
            "vault:secret/registry/alice",
            "vault:jwt-login",
        ),
    ] {
        std::fs::write(
            &spec,
            format!(
                "apiVersion: regops.dev/v1
kind: RegistryConfig
registries:
  plain: {{ server: \"127.0.0.1:{}\", credential: alice, insecure: true }}
credentials:
  alice: {{ username: alice, password: {source} }}
",
                registry.port
            ),
        )
        .unwrap();
        let mut cmd = with_clouds(&cloud);
        for (k, v) in [
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", cloud.url()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_ACCESS_KEY_ID", cloud::ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", cloud::SECRET_KEY.into()),
            ("VAULT_ADDR", cloud.url()),
            ("VAULT_AUTH", "jwt".into()),
            ("VAULT_ROLE", cloud::VAULT_JWT_ROLE.into()),
            ("VAULT_JWT_FILE", jwt.display().to_string()),
        ] {
            cmd.env(k, v);
        }
        let r = clean(cmd.arg("validate").arg("-f").arg(&spec).args([
            "--output",
            "json",
            "--allow-secret",
            allow,
        ]));
        assert!(!r.stdout.contains("s3cret"), "{}", r.transcript());
        assert_eq!(r.code, 0, "{source}: {}", r.transcript());
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["registries"][0]["result"], "OK", "{source}: {}", r.stdout);
        assert_eq!(cloud.calls(calls), 1, "{source}");
    }
}
