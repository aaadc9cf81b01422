//! Tokens minted from cloud identities (`ecr`, `gcp`, `acr`), against local fakes of the
//! clouds (tests/common/cloud.rs) reached through the standard endpoint overrides, and the
//! test API server: minted once and fanned out; a Secret whose token has more than
//! `refreshBefore` left is not touched and the cloud not asked; renewal inside the margin;
//! drift's `expiring`; each failure named with its credential and step, holding back only
//! its Secrets; no token in any output.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use base64::Engine;
use common::cloud::{self, Cloud};
use common::{Cluster, regops, run};

const ECR_SERVER: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

fn ecr_spec(extra_ecr: &str, namespaces: &str) -> String {
    ecr_spec_with(extra_ecr, "", namespaces)
}

fn ecr_spec_with(extra_ecr: &str, extra_credential: &str, namespaces: &str) -> String {
    format!(
        "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: {{ name: minted }}
registries:
  ecr: {{ server: {ECR_SERVER}, credential: aws }}
  harbor: {{ server: harbor.example.com, credential: robot }}
credentials:
  aws:
    password: {{ ecr: {{ region: eu-west-1{extra_ecr} }} }}{extra_credential}
  robot: {{ username: robot, password: {{ env: REGOPS_CRED_ROBOT_PW }} }}
scopes:
  apps: {{ namespaces: [{namespaces}] }}
pullSecrets:
  ecr-pull: {{ registries: [ecr], scope: apps }}
  harbor-pull: {{ registries: [harbor], scope: apps }}
"
    )
}

fn namespace(c: &Cluster, name: &str) {
    c.server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        .unwrap();
}

/// Runs regops against the cluster with the fake cloud's endpoints and `env`; asserts no
/// token, key or password is in what it printed.
fn on(c: &Cluster, cloud: &Cloud, args: &[&str], env: &[(&str, &str)]) -> common::Run {
    let mut cmd = regops();
    cmd.env("REGOPS_CRED_ROBOT_PW", "robot-password-MARKER")
        .env("AWS_ENDPOINT_URL_ECR", cloud.url())
        .env("AWS_ENDPOINT_URL_STS", cloud.url())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("GCE_METADATA_HOST", cloud.addr.to_string())
        .env("AZURE_AUTHORITY_HOST", cloud.url());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.arg(args[0]).arg("-f").arg(&c.spec);
    if args[0] != "validate" {
        cmd.arg("--kubeconfig").arg(&c.kubeconfig);
    }
    cmd.args(&args[1..]);
    let r = run(&mut cmd);
    assert!(
        !r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"),
        "a secret leaked:\n{}",
        r.transcript()
    );
    r
}

const KEYS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", cloud::ACCESS_KEY),
    ("AWS_SECRET_ACCESS_KEY", cloud::SECRET_KEY),
];

/// The Secret's login for `server`, and its `regops.dev/expires-at`.
fn login(c: &Cluster, ns: &str, name: &str, server: &str) -> (String, String, Option<String>) {
    let s = c.server.object("secrets", ns, name).expect("the Secret");
    let doc = base64::engine::general_purpose::STANDARD
        .decode(s["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    let entry = &doc["auths"][server];
    (
        entry["username"].as_str().unwrap().to_string(),
        entry["password"].as_str().unwrap().to_string(),
        s["metadata"]["annotations"]["regops.dev/expires-at"]
            .as_str()
            .map(str::to_string),
    )
}

fn secret_writes(c: &Cluster) -> usize {
    c.server
        .log()
        .iter()
        .filter(|e| e.resource == "secrets" && e.method != "GET")
        .count()
}

#[test]
fn an_ecr_token_is_minted_once_fanned_out_and_left_alone_while_it_has_time() {
    let cloud = Cloud::start();
    let c = Cluster::new(&ecr_spec("", "web, api, jobs"));
    for ns in ["web", "api", "jobs"] {
        namespace(&c, ns);
    }
    let first = on(&c, &cloud, &["apply", "--yes"], KEYS);
    assert_eq!(first.code, 0, "{}", first.transcript());
    assert_eq!(cloud.calls("ecr"), 1, "one token for all three namespaces");
    let (user, token, expires) = login(&c, "web", "ecr-pull", ECR_SERVER);
    assert_eq!(user, "AWS");
    assert_eq!(token, "ecr-token-1-MARKER");
    let expires = expires.expect("regops.dev/expires-at");
    let at = regops_spec::rules::expiry(&expires).unwrap();
    let now = jiff::Timestamp::now().as_second();
    assert!((at - (now + 12 * 3_600)).abs() < 120, "{expires}");
    for ns in ["api", "jobs"] {
        assert_eq!(login(&c, ns, "ecr-pull", ECR_SERVER).1, token);
    }
    // Signed with the environment's key, and the fake checked the signature.
    assert_eq!(
        cloud.state.lock().unwrap().ecr_signed_by,
        vec![cloud::ACCESS_KEY]
    );

    // Nothing due: no cloud call, no write, for plan, apply and drift alike.
    c.server.clear_log();
    let plan = on(&c, &cloud, &["plan"], KEYS);
    assert_eq!(plan.code, 0, "{}", plan.transcript());
    let again = on(&c, &cloud, &["apply", "--yes"], KEYS);
    assert_eq!(again.code, 0, "{}", again.transcript());
    let drift = on(&c, &cloud, &["drift"], &[]);
    assert_eq!(drift.code, 0, "{}", drift.transcript());
    assert_eq!(cloud.total_calls(), 1);
    assert_eq!(secret_writes(&c), 0);

    // A new namespace: one new token for its Secret; the others keep theirs.
    namespace(&c, "batch");
    std::fs::write(&c.spec, ecr_spec("", "web, api, jobs, batch")).unwrap();
    let grown = on(&c, &cloud, &["apply", "--yes"], KEYS);
    assert_eq!(grown.code, 0, "{}", grown.transcript());
    assert_eq!(cloud.calls("ecr"), 2);
    assert_eq!(
        login(&c, "batch", "ecr-pull", ECR_SERVER).1,
        "ecr-token-2-MARKER"
    );
    assert_eq!(
        login(&c, "web", "ecr-pull", ECR_SERVER).1,
        "ecr-token-1-MARKER"
    );
}

#[test]
fn a_token_within_refresh_before_is_renewed_and_only_then() {
    let cloud = Cloud::start();
    let c = Cluster::new(&ecr_spec("", "web"));
    namespace(&c, "web");
    // Tokens that live 3 hours: inside the default margin (4 hours) as soon as written.
    cloud.state.lock().unwrap().ecr_lifetime = Some(3 * 3_600);
    assert_eq!(on(&c, &cloud, &["apply", "--yes"], KEYS).code, 0);
    // (apply plans twice, before and under the Lease; a token already due when minted is
    // minted again for the second plan)
    let first = login(&c, "web", "ecr-pull", ECR_SERVER).1;
    assert!(first.starts_with("ecr-token-"), "{first}");
    cloud.state.lock().unwrap().ecr_lifetime = None;
    let plan = on(&c, &cloud, &["plan"], KEYS);
    assert_eq!(plan.code, 2, "{}", plan.transcript());
    assert!(
        plan.stdout.contains("renews the token of `aws`"),
        "{}",
        plan.stdout
    );
    let json = on(&c, &cloud, &["plan", "-o", "json"], KEYS);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let change = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ch| ch["name"] == "ecr-pull")
        .unwrap();
    assert_eq!(change["causes"][0]["cause"], "token-renewal");
    assert_eq!(change["causes"][0]["credentials"][0], "aws");
    // Each plan that finds it due asks (the first token is cached only within a run).
    let before = cloud.calls("ecr");
    c.server.clear_log();
    let renew = on(&c, &cloud, &["apply", "--yes"], KEYS);
    assert_eq!(renew.code, 0, "{}", renew.transcript());
    assert_eq!(cloud.calls("ecr"), before + 1);
    assert_eq!(secret_writes(&c), 1, "only the ECR Secret is written");
    let (_, token, _) = login(&c, "web", "ecr-pull", ECR_SERVER);
    assert_ne!(token, first);
    // Now 12 hours: outside the margin, so the next runs neither ask nor write.
    let calls = cloud.total_calls();
    c.server.clear_log();
    assert_eq!(on(&c, &cloud, &["apply", "--yes"], KEYS).code, 0);
    assert_eq!(cloud.total_calls(), calls);
    assert_eq!(secret_writes(&c), 0);
}

#[test]
fn drift_reports_a_token_expiring_before_the_next_run_and_never_mints() {
    let cloud = Cloud::start();
    let c = Cluster::new(&ecr_spec_with("", "\n    refreshBefore: 1h", "web"));
    namespace(&c, "web");
    let first = on(&c, &cloud, &["apply", "--yes"], KEYS);
    assert_eq!(first.code, 0, "{}", first.transcript());
    let calls = cloud.total_calls();
    let soon = on(&c, &cloud, &["drift", "--next-run", "1h"], &[]);
    assert_eq!(soon.code, 0, "{}", soon.transcript());
    let later = on(
        &c,
        &cloud,
        &["drift", "--next-run", "13h", "-o", "json"],
        &[],
    );
    assert_eq!(later.code, 2, "{}", later.transcript());
    let v: serde_json::Value = serde_json::from_str(&later.stdout).unwrap();
    let found = v.to_string();
    assert!(found.contains("\"how\":\"expiring\""), "{found}");
    assert!(found.contains("before the next run"), "{found}");
    let text = on(&c, &cloud, &["drift", "--next-run", "13h"], &[]);
    assert!(text.stdout.contains("expiring"), "{}", text.stdout);
    // Drift reads; it asks no cloud, even with nothing to mint with.
    assert_eq!(cloud.total_calls(), calls);
    // A deleted Secret is drift too, and still no mint.
    c.server
        .request(
            "DELETE",
            "/api/v1/namespaces/web/secrets/ecr-pull",
            "application/json",
            None,
        )
        .unwrap();
    let missing = on(&c, &cloud, &["drift"], &[]);
    assert_eq!(missing.code, 2, "{}", missing.transcript());
    assert_eq!(cloud.total_calls(), calls);
}

#[test]
fn aws_identities_irsa_pod_identity_instance_metadata_profiles_and_role_arn() {
    let cloud = Cloud::start();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("web-identity");
    std::fs::write(&token_file, cloud::WEB_IDENTITY_TOKEN).unwrap();
    let pod_token = dir.path().join("pod-identity");
    std::fs::write(&pod_token, cloud::POD_IDENTITY_TOKEN).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(
        home.join(".aws/credentials"),
        format!(
            "[ci]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            cloud::ACCESS_KEY,
            cloud::SECRET_KEY
        ),
    )
    .unwrap();
    let pod_uri = format!("{}/v1/credentials", cloud.url());
    // (which identity, its environment, the fake endpoint it must reach)
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "IRSA",
            vec![
                (
                    "AWS_WEB_IDENTITY_TOKEN_FILE",
                    token_file.display().to_string(),
                ),
                ("AWS_ROLE_ARN", cloud::ROLE.to_string()),
            ],
            "sts:AssumeRoleWithWebIdentity",
        ),
        (
            "EKS Pod Identity",
            vec![
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", pod_uri),
                (
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                    pod_token.display().to_string(),
                ),
            ],
            "pod-identity",
        ),
        (
            "IMDSv2",
            vec![
                ("AWS_EC2_METADATA_DISABLED", "false".to_string()),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", cloud.url()),
            ],
            "imds:credentials",
        ),
        (
            "profile",
            vec![
                ("HOME", home.display().to_string()),
                ("AWS_PROFILE", "ci".to_string()),
            ],
            "ecr",
        ),
    ];
    for (name, env, endpoint) in cases {
        let c = Cluster::new(&ecr_spec("", "web"));
        namespace(&c, "web");
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let before = cloud.calls(endpoint);
        let r = on(&c, &cloud, &["apply", "--yes"], &env);
        assert_eq!(r.code, 0, "{name}: {}", r.transcript());
        assert!(
            cloud.calls(endpoint) > before,
            "{name}: {endpoint} was not asked"
        );
        assert_eq!(login(&c, "web", "ecr-pull", ECR_SERVER).0, "AWS", "{name}");
    }
    // roleArn: the environment's key assumes the role, and ECR is asked as the role.
    let c = Cluster::new(&ecr_spec(&format!(", roleArn: \"{}\"", cloud::ROLE), "web"));
    namespace(&c, "web");
    let r = on(&c, &cloud, &["apply", "--yes"], KEYS);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(cloud.calls("sts:AssumeRole"), 1);
    assert_eq!(
        cloud
            .state
            .lock()
            .unwrap()
            .ecr_signed_by
            .last()
            .map(String::as_str),
        Some("ASIATEMPREGOPS")
    );
}

#[test]
fn each_failure_names_the_credential_and_step_and_holds_back_only_its_secrets() {
    let cloud = Cloud::start();
    let c = Cluster::new(&ecr_spec("", "web"));
    namespace(&c, "web");
    // No AWS credentials at all.
    let none = on(&c, &cloud, &["apply", "--yes"], &[]);
    assert_eq!(none.code, 1, "{}", none.transcript());
    let text = none.stdout.clone() + &none.stderr;
    assert!(
        text.contains("credential `aws`")
            && text.contains("cannot mint a token from `ecr`")
            && text.contains("find AWS credentials failed: none found"),
        "{text}"
    );
    // The static pull secret went ahead; the ECR one was held back.
    assert!(c.server.object("secrets", "web", "harbor-pull").is_some());
    assert!(c.server.object("secrets", "web", "ecr-pull").is_none());

    // Denied.
    cloud.state.lock().unwrap().deny_ecr = true;
    let denied = on(&c, &cloud, &["plan"], KEYS);
    assert_eq!(denied.code, 1, "{}", denied.transcript());
    assert!(
        denied
            .stdout
            .contains("ECR GetAuthorizationToken in eu-west-1")
            && denied.stdout.contains("AccessDeniedException"),
        "{}",
        denied.stdout
    );
    cloud.state.lock().unwrap().deny_ecr = false;

    // A clock an hour off: the signature is refused as expired, and regops says why.
    cloud.state.lock().unwrap().clock_ahead = 3_600;
    let skewed = on(&c, &cloud, &["plan"], KEYS);
    assert_eq!(skewed.code, 1, "{}", skewed.transcript());
    assert!(
        skewed.stdout.contains("InvalidSignatureException")
            && skewed.stdout.contains("clock is 60 minutes behind"),
        "{}",
        skewed.stdout
    );
    cloud.state.lock().unwrap().clock_ahead = 0;

    // A wrong key: the fake checks the signature and refuses.
    let wrong = on(
        &c,
        &cloud,
        &["plan"],
        &[
            ("AWS_ACCESS_KEY_ID", cloud::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", "not-the-key"),
        ],
    );
    assert_eq!(wrong.code, 1, "{}", wrong.transcript());
    assert!(
        wrong.stdout.contains("does not match the signature"),
        "{}",
        wrong.stdout
    );

    // A web identity token file that is not there.
    let gone = on(
        &c,
        &cloud,
        &["plan"],
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"),
            ("AWS_ROLE_ARN", cloud::ROLE),
        ],
    );
    assert!(
        gone.stdout.contains("read the web identity token failed"),
        "{}",
        gone.stdout
    );

    // With keys, the held-back Secret is written on the next run: it converges.
    let ok = on(&c, &cloud, &["apply", "--yes"], KEYS);
    assert_eq!(ok.code, 0, "{}", ok.transcript());
    assert!(c.server.object("secrets", "web", "ecr-pull").is_some());
}

fn gcp_spec() -> String {
    "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: minted }
registries:
  gar: { server: europe-docker.pkg.dev, credential: google }
credentials:
  google:
    password: { gcp: {} }
scopes:
  apps: { namespaces: [web] }
pullSecrets:
  gar-pull: { registries: [gar], scope: apps }
"
    .into()
}

/// Applies the Google spec to a new cluster with `GOOGLE_APPLICATION_CREDENTIALS` as given;
/// asserts it succeeds and returns the token written.
fn gcp_apply(cloud: &Cloud, credentials: Option<&std::path::Path>) -> String {
    let c = Cluster::new(&gcp_spec());
    namespace(&c, "web");
    let creds = credentials.map(|p| p.display().to_string());
    let env: Vec<(&str, &str)> = creds
        .iter()
        .map(|p| ("GOOGLE_APPLICATION_CREDENTIALS", p.as_str()))
        .collect();
    let r = on(&c, cloud, &["apply", "--yes"], &env);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let (user, token, expires) = login(&c, "web", "gar-pull", "europe-docker.pkg.dev");
    assert_eq!(user, "oauth2accesstoken");
    assert!(expires.is_some());
    token
}

/// A service-account key: the fake checks the JWT's RS256 signature with its public key.
#[test]
#[ignore = "needs openssl, for an RSA key (Debian: openssl)"]
fn gcp_tokens_from_a_service_account_key() {
    common::require("openssl", "version", "Debian: openssl");
    let cloud = Cloud::start();
    let dir = tempfile::tempdir().unwrap();
    let key_pem = dir.path().join("key.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key_pem)
        .output()
        .unwrap();
    assert!(out.status.success());
    let pem = std::fs::read_to_string(&key_pem).unwrap();
    let der = {
        use rustls_pki_types::PrivatePkcs8KeyDer;
        use rustls_pki_types::pem::PemObject;
        PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap()
    };
    let pair = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    use ring::signature::KeyPair;
    cloud.state.lock().unwrap().google_public_key = Some(pair.public_key().as_ref().to_vec());
    let key_file = dir.path().join("sa.json");
    std::fs::write(
        &key_file,
        serde_json::json!({
            "type": "service_account", "client_email": "puller@p.iam.gserviceaccount.com",
            "private_key": pem, "token_uri": format!("{}/google/token", cloud.url()),
        })
        .to_string(),
    )
    .unwrap();
    let token = gcp_apply(&cloud, Some(&key_file));
    assert_eq!(cloud.calls("gcp:token"), 1);
    assert!(token.starts_with("gcp-token-"), "{token}");
}

#[test]
fn gcp_tokens_from_the_metadata_server_and_workload_identity_federation() {
    let cloud = Cloud::start();
    let dir = tempfile::tempdir().unwrap();
    // The metadata server (GKE Workload Identity).
    let token = gcp_apply(&cloud, None);
    assert!(token.starts_with("gcp-token-"), "{token}");
    assert_eq!(cloud.calls("gcp:metadata"), 1);

    // Workload identity federation: a subject token from a file, exchanged at the STS URL.
    let subject = dir.path().join("oidc-token");
    std::fs::write(&subject, cloud::GOOGLE_SUBJECT_TOKEN).unwrap();
    let config = dir.path().join("external.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k8s",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": format!("{}/google/sts", cloud.url()),
            "credential_source": { "file": subject },
        })
        .to_string(),
    )
    .unwrap();
    let token = gcp_apply(&cloud, Some(&config));
    assert!(token.starts_with("gcp-federated-"), "{token}");
    let c = Cluster::new(&gcp_spec());
    let creds = config.display().to_string();
    // A key file that is not JSON: named with its path and step.
    std::fs::write(&config, "not json").unwrap();
    let bad = on(
        &c,
        &cloud,
        &["validate"],
        &[("GOOGLE_APPLICATION_CREDENTIALS", &creds)],
    );
    assert_eq!(bad.code, 1, "{}", bad.transcript());
    assert!(
        bad.flat_stderr()
            .contains("cannot mint a token for credential `google` from `gcp`")
            && bad.flat_stderr().contains("read the credentials file"),
        "{}",
        bad.stderr
    );
}

#[test]
fn acr_exchanges_an_entra_token_at_the_registry_for_a_refresh_token() {
    let cloud = Cloud::start();
    let dir = tempfile::tempdir().unwrap();
    let federated = dir.path().join("azure-token");
    std::fs::write(&federated, cloud::AZURE_FEDERATED).unwrap();
    let spec = format!(
        "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: {{ name: minted }}
registries:
  acr: {{ server: \"{}\", credential: azure, insecure: true }}
credentials:
  azure:
    password: {{ acr: {{ tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47 }} }}
scopes:
  apps: {{ namespaces: [web] }}
pullSecrets:
  acr-pull: {{ registries: [acr], scope: apps }}
",
        cloud.addr
    );
    let c = Cluster::new(&spec);
    namespace(&c, "web");
    let client = ("AZURE_CLIENT_ID", "8f4a1e02-5b1c-4a8e-9d3f-0c2b7e6a9d11");
    let token_file = federated.display().to_string();
    // The fake registry is on loopback, which the operator allows by name.
    let allowed = cloud.addr.to_string();
    let r = on(
        &c,
        &cloud,
        &["apply", "--yes", "--allow-minted-host", &allowed],
        &[client, ("AZURE_FEDERATED_TOKEN_FILE", &token_file)],
    );
    assert_eq!(r.code, 0, "{}", r.transcript());
    let (user, token, expires) = login(&c, "web", "acr-pull", &cloud.addr.to_string());
    assert_eq!(user, "00000000-0000-0000-0000-000000000000");
    assert!(token.ends_with(".sig-MARKER"));
    // Its expiry is the refresh token's `exp` (three hours).
    let at = regops_spec::rules::expiry(&expires.unwrap()).unwrap();
    assert!((at - (jiff::Timestamp::now().as_second() + 3 * 3_600)).abs() < 120);
    assert_eq!(
        cloud.state.lock().unwrap().acr_service.as_deref(),
        Some(cloud.addr.to_string().as_str())
    );
    // A wrong client secret: Entra's refusal, named.
    let c2 = Cluster::new(&spec);
    namespace(&c2, "web");
    let denied = on(
        &c2,
        &cloud,
        &["plan", "--allow-minted-host", &allowed],
        &[client, ("AZURE_CLIENT_SECRET", "wrong")],
    );
    assert_eq!(denied.code, 1, "{}", denied.transcript());
    assert!(
        denied.stdout.contains("get an Entra ID token") && denied.stdout.contains("invalid_client"),
        "{}",
        denied.stdout
    );
    // With the right client secret, it goes through.
    let ok = on(
        &c2,
        &cloud,
        &["apply", "--yes", "--allow-minted-host", &allowed],
        &[client, ("AZURE_CLIENT_SECRET", cloud::AZURE_SECRET)],
    );
    assert_eq!(ok.code, 0, "{}", ok.transcript());
    assert!(c2.server.object("secrets", "web", "acr-pull").is_some());
}

/// `apply --watch` renews on a timer: with no event at all, a Secret whose token comes within
/// `refreshBefore` is renewed when it does, and the log says so.
#[test]
fn apply_watch_renews_a_token_when_it_comes_due() {
    let cloud = Cloud::start();
    let c = Cluster::new(&ecr_spec_with("", "\n    refreshBefore: 1h", "web"));
    namespace(&c, "web");
    // The first token comes within its hour-long margin three seconds after it is minted.
    cloud.state.lock().unwrap().ecr_lifetime = Some(3_600 + 3);
    let mut cmd = regops();
    cmd.env("REGOPS_CRED_ROBOT_PW", "robot-password-MARKER")
        .env("AWS_ENDPOINT_URL_ECR", cloud.url())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in KEYS {
        cmd.env(k, v);
    }
    let child = cmd
        .args(["apply", "--watch", "-f"])
        .arg(&c.spec)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(["--resync", "1h"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);
    let wait = |what: &str, ok: &dyn Fn() -> bool| {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < until {
            if ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}");
    };
    let token = || {
        c.server
            .object("secrets", "web", "ecr-pull")
            .map(|_| login(&c, "web", "ecr-pull", ECR_SERVER).1)
    };
    wait("the first token", &|| token().is_some());
    assert_eq!(token().as_deref(), Some("ecr-token-1-MARKER"));
    // The next token lives 12 hours: renewed once, then left alone.
    cloud.state.lock().unwrap().ecr_lifetime = None;
    let renewed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait("the renewal", &|| {
            token().is_some_and(|t| t != "ecr-token-1-MARKER")
        })
    }));
    if renewed.is_err() {
        let _ = child.0.kill();
        panic!("no renewal:\n{}", child.0.wait_with_output_owned());
    }
    // Not again: not while the controller renews its Lease twice more (every --retry-period,
    // 2 s), its own clock, rather than a fixed sleep.
    let lease_writes = || {
        c.server
            .log()
            .iter()
            .filter(|l| l.resource == "leases" && l.is_write())
            .count()
    };
    let before = lease_writes();
    wait("two more Lease renewals", &|| lease_writes() >= before + 2);
    assert_eq!(cloud.calls("ecr"), 2, "renewed once, not again");
    let _ = child.0.kill();
    let out = child.0.wait_with_output_owned();
    assert!(
        out.contains("renewal: a minted token is within refreshBefore"),
        "{out}"
    );
    assert!(!out.contains("MARKER"), "{out}");
}

trait Output {
    fn wait_with_output_owned(&mut self) -> String;
}

impl Output for std::process::Child {
    fn wait_with_output_owned(&mut self) -> String {
        use std::io::Read;
        let _ = self.wait();
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        if let Some(mut o) = self.stdout.take() {
            let _ = o.read_to_string(&mut s);
        }
        s
    }
}

/// Over a fleet, a token is minted once for every cluster that needs it.
#[test]
fn a_fleet_mints_once_for_all_its_clusters() {
    let cloud = Cloud::start();
    let dir = tempfile::tempdir().unwrap();
    let servers: Vec<kube_test_server::TestServer> = (0..2)
        .map(|_| {
            // TLS: a spec's kubeconfig may not name a plain-HTTP server.
            kube_test_server::TestServer::start(kube_test_server::Config {
                tls: true,
                ..kube_test_server::Config::default()
            })
            .unwrap()
        })
        .collect();
    for (name, s) in ["eu", "us"].iter().zip(&servers) {
        std::fs::write(
            dir.path().join(format!("kubeconfig-{name}")),
            s.kubeconfig().replace("kube-test-server", name),
        )
        .unwrap();
        s.seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}))
            .unwrap();
    }
    let spec = dir.path().join("regops.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: {{ name: fleet }}
registries:
  ecr: {{ server: {ECR_SERVER}, credential: aws }}
credentials:
  aws: {{ password: {{ ecr: {{ region: eu-west-1 }} }} }}
clusters:
  eu: {{ kubeconfig: kubeconfig-eu }}
  us: {{ kubeconfig: kubeconfig-us }}
scopes:
  apps: {{ namespaces: [web] }}
pullSecrets:
  ecr-pull: {{ registries: [ecr], scope: apps }}
"
        ),
    )
    .unwrap();
    let mut cmd = regops();
    cmd.env("AWS_ENDPOINT_URL_ECR", cloud.url())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in KEYS {
        cmd.env(k, v);
    }
    let r = run(cmd.args(["apply", "--yes", "-f"]).arg(&spec));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(!r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"));
    assert_eq!(cloud.calls("ecr"), 1, "one token for both clusters");
    for s in &servers {
        assert!(s.object("secrets", "web", "ecr-pull").is_some());
    }
}

/// A token endpoint that hangs (8 s here) holds up only what needs its token: in a fleet, the
/// other cluster's reads go on meanwhile (minting no longer blocks the thread every cluster is
/// planned on), and its Secret is written; the token comes when the endpoint answers.
#[test]
fn a_hung_token_endpoint_does_not_hold_up_another_clusters_plan() {
    let cloud = Cloud::start();
    cloud.state.lock().unwrap().hang_ecr = Some(std::time::Duration::from_secs(8));
    let dir = tempfile::tempdir().unwrap();
    let servers: Vec<kube_test_server::TestServer> = (0..2)
        .map(|_| {
            // TLS: a spec's kubeconfig may not name a plain-HTTP server.
            kube_test_server::TestServer::start(kube_test_server::Config {
                tls: true,
                ..kube_test_server::Config::default()
            })
            .unwrap()
        })
        .collect();
    for (name, s) in ["eu", "us"].iter().zip(&servers) {
        std::fs::write(
            dir.path().join(format!("kubeconfig-{name}")),
            s.kubeconfig().replace("kube-test-server", name),
        )
        .unwrap();
        s.seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}))
            .unwrap();
    }
    // The us cluster reads slowly (300 ms a request), so its reads are under way while the eu
    // cluster, read at once, waits for its token.
    servers[1].add_fault(
        kube_test_server::Fault::new(kube_test_server::FaultAction::Latency(
            std::time::Duration::from_millis(300),
        ))
        .verb("list"),
    );
    let spec = dir.path().join("regops.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: {{ name: fleet }}
registries:
  ecr: {{ server: {ECR_SERVER}, credential: aws }}
  harbor: {{ server: harbor.example.com, credential: robot }}
credentials:
  aws: {{ password: {{ ecr: {{ region: eu-west-1 }} }} }}
  robot: {{ username: robot, password: {{ env: REGOPS_CRED_ROBOT_PW }} }}
clusters:
  eu: {{ kubeconfig: kubeconfig-eu }}
  us: {{ kubeconfig: kubeconfig-us }}
scopes:
  eu-apps: {{ namespaces: [web], clusters: {{ names: [eu] }} }}
  us-apps: {{ namespaces: [web], clusters: {{ names: [us] }} }}
pullSecrets:
  ecr-pull: {{ registries: [ecr], scope: eu-apps }}
  harbor-pull: {{ registries: [harbor], scope: us-apps }}
"
        ),
    )
    .unwrap();
    let mut cmd = regops();
    cmd.env("AWS_ENDPOINT_URL_ECR", cloud.url())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("REGOPS_CRED_ROBOT_PW", "robot-password-MARKER");
    for (k, v) in KEYS {
        cmd.env(k, v);
    }
    let r = run(cmd.args(["plan", "-f"]).arg(&spec));
    assert_eq!(r.code, 2, "{}", r.transcript());
    assert!(!r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"));
    assert_eq!(cloud.calls("ecr"), 1);
    // The us cluster's reads went on while the token endpoint hung: its requests span the
    // time its reads take (about ten at 300 ms), not the 8 s of the hang.
    let us = servers[1].log();
    let (first, last) = (
        us.iter().map(|l| l.at).min().unwrap(),
        us.iter().map(|l| l.answered).max().unwrap(),
    );
    assert!(
        last.duration_since(first) < std::time::Duration::from_secs(6),
        "the us cluster's reads waited for the eu cluster's token: {:?} over {} requests",
        last.duration_since(first),
        us.len()
    );
    assert!(
        r.stdout.contains("harbor-pull") && r.stdout.contains("ecr-pull"),
        "{}",
        r.stdout
    );
}

/// The controller's listener answers while a token endpoint hangs: minting waits on the
/// network without holding the thread the probes are served on.
#[test]
fn a_hung_token_endpoint_does_not_hold_up_healthz() {
    let cloud = Cloud::start();
    cloud.state.lock().unwrap().hang_ecr = Some(std::time::Duration::from_secs(8));
    let c = Cluster::new(&ecr_spec("", "web"));
    namespace(&c, "web");
    let port = common::listen_port();
    let mut cmd = regops();
    cmd.env("REGOPS_CRED_ROBOT_PW", "robot-password-MARKER")
        .env("AWS_ENDPOINT_URL_ECR", cloud.url())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in KEYS {
        cmd.env(k, v);
    }
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(
        cmd.args(["apply", "--watch", "-f"])
            .arg(&c.spec)
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait until the token is being asked for (the endpoint now hangs for 8 s).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while cloud.calls("ecr") == 0 {
        assert!(std::time::Instant::now() < until, "no token was asked for");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let asked = std::time::Instant::now();
    let (status, _) = regops_bench::http_get(port, "/healthz");
    assert_eq!(status, 200);
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(2),
        "/healthz waited {:?} for the token",
        asked.elapsed()
    );
    // The first full apply has not ended: not ready yet, and told so at once.
    assert_eq!(regops_bench::http_get(port, "/readyz").0, 503);
    assert!(asked.elapsed() < std::time::Duration::from_secs(4));
}

/// A token refused in the controller is asked for again with backoff (2 s, then 4 s, ...), not
/// at the next resync an hour later, and counted on /metrics; once the cloud lets it through,
/// the Secret is written.
#[test]
fn apply_watch_asks_again_for_a_token_that_failed_with_backoff() {
    let cloud = Cloud::start();
    cloud.state.lock().unwrap().deny_ecr = true;
    let c = Cluster::new(&ecr_spec("", "web"));
    namespace(&c, "web");
    let port = common::listen_port();
    let mut cmd = regops();
    cmd.env("REGOPS_CRED_ROBOT_PW", "robot-password-MARKER")
        .env("AWS_ENDPOINT_URL_ECR", cloud.url())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in KEYS {
        cmd.env(k, v);
    }
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(
        cmd.args(["apply", "--watch", "--resync", "1h", "-f"])
            .arg(&c.spec)
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let wait = |what: &str, secs: u64, ok: &dyn Fn() -> bool| {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < until {
            if ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}");
    };
    wait("the first refusal", 15, &|| cloud.calls("ecr") >= 1);
    let first = std::time::Instant::now();
    wait("the token asked for again", 10, &|| cloud.calls("ecr") >= 2);
    let gap = first.elapsed();
    assert!(
        gap >= std::time::Duration::from_millis(1500),
        "asked again after {gap:?}, before its backoff"
    );
    let (_, metrics) = regops_bench::http_get(port, "/metrics");
    assert!(
        metrics.contains("regops_mint_failures_total{spec=\"minted\"} 2")
            || metrics.contains("regops_mint_failures_total{spec=\"minted\"} 1"),
        "{metrics}"
    );
    assert!(c.server.object("secrets", "web", "ecr-pull").is_none());
    // The cloud lets it through: the next try (4 s later) writes the Secret.
    cloud.state.lock().unwrap().deny_ecr = false;
    wait("the Secret with the token", 15, &|| {
        c.server.object("secrets", "web", "ecr-pull").is_some()
    });
    assert_eq!(cloud.calls("ecr"), 3, "asked once more, then held");
    // Each time the token was asked for again, the namespace waiting for it was planned, not
    // the whole cluster: the cluster-wide LISTs are those of the first full apply alone.
    let full_lists: Vec<String> = c
        .server
        .log()
        .iter()
        .filter(|l| l.verb == "list" && l.namespace.is_none() && !l.query.contains("watch"))
        .map(|l| format!("{}?{}", l.path, l.query))
        .collect();
    let whole_reads = full_lists
        .iter()
        .filter(|l| l.as_str() == "/api/v1/namespaces?&limit=500")
        .count();
    assert_eq!(whole_reads, 1, "{full_lists:#?}");
    let of_web = full_lists
        .iter()
        .filter(|l| l.contains("fieldSelector=metadata.name%3Dweb"))
        .count();
    assert!(of_web >= 2, "{full_lists:#?}");
}
