//! `apply --watch` reads values from secret managers again every `refreshInterval`, against
//! the fakes of tests/common/cloud.rs: a value rotated at the source (AWS Secrets Manager,
//! Google Secret Manager, Azure Key Vault, Vault KV v2) is written to the Secrets that hold it
//! (and to no other); a source that fails is counted on /metrics, retried with backoff, and the
//! Secrets keep the last good value, while the loop goes on providing new namespaces, even with
//! a read in flight. Every wait is on something observable (a Secret, a metric, the fake's
//! calls), never a fixed sleep.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::common;
use common::cloud::{self, Cloud};

const OLD: &str = "harbor-pw-old-MARKER";
const NEW: &str = "harbor-pw-new-MARKER";

/// The spec, with `password` the source of credential `harbor`'s password.
fn spec(password: &str) -> String {
    format!(
        "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: {{ name: refresh }}
registries:
  harbor: {{ server: harbor.example.com, credential: harbor }}
  plain: {{ server: plain.example.com, credential: plain }}
credentials:
  harbor:
    username: robot$ci
    password: {password}
    refreshInterval: 2s
  plain: {{ username: u, password: {{ env: REGOPS_CRED_PLAIN }} }}
scopes:
  web: {{ namespaces: [web, api] }}
pullSecrets:
  harbor-pull: {{ registries: [harbor], scope: web }}
  plain-pull: {{ registries: [plain], scope: web }}
"
    )
}

fn value(password: &str) -> String {
    serde_json::json!({"username": "robot$ci", "password": password}).to_string()
}

/// A secret manager as these tests drive it: the source the spec names, the operator's
/// environment and `--allow-secret` that point regops at its fake (as secret_managers.rs
/// configures them), the fake's call counter for its reads, and how a value is set there.
struct Source {
    /// The kind, as the log, `--allow-secret` and the metrics name it.
    kind: &'static str,
    /// The YAML of `harbor`'s password.
    password: &'static str,
    allow: &'static str,
    /// The fake's counter of reads of this kind's secrets.
    calls: &'static str,
    env: fn(&mut Command, &Cloud),
    /// Sets the password `harbor` reads, at the fake.
    set: fn(&Cloud, &str),
}

const AWS: Source = Source {
    kind: "aws",
    password: "{ awsSecretsManager: { secretId: registry/harbor, region: eu-west-1, jsonKey: password } }",
    allow: "aws:registry/*",
    calls: "secretsmanager",
    env: |cmd, cloud| {
        cmd.env("AWS_ENDPOINT_URL_SECRETS_MANAGER", cloud.url())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", cloud::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", cloud::SECRET_KEY);
    },
    set: |cloud, password| {
        cloud
            .state
            .lock()
            .unwrap()
            .aws_secrets
            .insert("registry/harbor".into(), value(password));
    },
};

const GCP_NAME: &str = "projects/my-project/secrets/registry-harbor/versions/latest";

/// Google's token from the GCE metadata server, as secret_managers.rs's `with_clouds`.
const GCP: Source = Source {
    kind: "gcp",
    password: "{ gcpSecretManager: { name: projects/my-project/secrets/registry-harbor/versions/latest, jsonKey: password } }",
    allow: "gcp:projects/my-project/secrets/registry-*",
    calls: "gcp:secretmanager",
    env: |cmd, cloud| {
        cmd.env("GCE_METADATA_HOST", cloud.addr.to_string()).env(
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER",
            format!("{}/", cloud.url()),
        );
    },
    set: |cloud, password| {
        cloud
            .state
            .lock()
            .unwrap()
            .gcp_secrets
            .insert(GCP_NAME.into(), value(password));
    },
};

/// Entra ID's token by client secret, as secret_managers.rs's `with_clouds`; the secret's
/// value is the password itself (no `jsonKey`).
const AZURE: Source = Source {
    kind: "azure",
    password: "{ azureKeyVault: { vault: myvault, secret: registry-harbor } }",
    allow: "azure:myvault/registry-*",
    calls: "keyvault",
    env: |cmd, cloud| {
        cmd.env("AZURE_AUTHORITY_HOST", cloud.url())
            .env("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47")
            .env("AZURE_CLIENT_ID", "8f4a1e02-5b1c-4a8e-9d3f-0c2b7e6a9d11")
            .env("AZURE_CLIENT_SECRET", cloud::AZURE_SECRET)
            .env(
                "REGOPS_AZURE_KEY_VAULT_URL",
                format!("{}/kv/{{vault}}", cloud.url()),
            );
    },
    set: |cloud, password| {
        cloud
            .state
            .lock()
            .unwrap()
            .key_vault_secrets
            .insert("myvault/registry-harbor".into(), password.into());
    },
};

/// KV v2 at the default mount `secret`, with the operator's `VAULT_TOKEN`.
const VAULT: Source = Source {
    kind: "vault",
    password: "{ vault: { path: registry/harbor, field: password } }",
    allow: "vault:secret/registry/harbor",
    calls: "vault:read",
    env: |cmd, cloud| {
        cmd.env("VAULT_ADDR", cloud.url())
            .env("VAULT_TOKEN", cloud::VAULT_TOKEN);
    },
    set: |cloud, password| {
        cloud.state.lock().unwrap().vault_secrets.insert(
            "secret/registry/harbor".into(),
            serde_json::json!({"username": "robot$ci", "password": password}),
        );
    },
};

struct Controller {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    port: u16,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Controller {
    fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn metric(&self, line_start: &str) -> Option<f64> {
        let (_, text) = regops_bench::http_get(self.port, "/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(line_start))
            .and_then(|v| v.trim().parse().ok())
    }
}

fn start(c: &common::Cluster, cloud: &Cloud, source: &Source) -> Controller {
    start_with(c, cloud, source, &["--secret-refresh-min", "1s"])
}

/// `regops <args> -f SPEC --kubeconfig ...` with `source`'s fake as the operator's: its
/// environment, and its secrets allowed.
fn regops(c: &common::Cluster, cloud: &Cloud, source: &Source, args: &[&str]) -> Command {
    let mut cmd = common::regops();
    (source.env)(&mut cmd, cloud);
    cmd.env("REGOPS_CRED_PLAIN", "plain-pw-MARKER")
        .args(args)
        .arg("-f")
        .arg(&c.spec)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(["--allow-secret", source.allow]);
    cmd
}

fn start_with(c: &common::Cluster, cloud: &Cloud, source: &Source, extra: &[&str]) -> Controller {
    let port = common::listen_port();
    let mut cmd = regops(c, cloud, source, &["apply", "--watch", "--resync", "1h"]);
    cmd.args(extra)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
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
    Controller { child, lines, port }
}

fn wait_for(ctl: &Controller, what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "timed out waiting for {what}; the controller said:\n{}",
        ctl.log()
    );
}

fn password(c: &common::Cluster, ns: &str, name: &str, server: &str) -> Option<String> {
    let s = c.server.object("secrets", ns, name)?;
    let doc = base64::engine::general_purpose::STANDARD
        .decode(s["data"][".dockerconfigjson"].as_str()?)
        .ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&doc).ok()?;
    Some(doc["auths"][server]["password"].as_str()?.to_string())
}

fn writes_to(c: &common::Cluster, name: &str) -> usize {
    c.server
        .log()
        .iter()
        .filter(|l| l.resource == "secrets" && l.is_write() && l.path.ends_with(name))
        .count()
}

fn setup() -> (Cloud, common::Cluster) {
    setup_for(&AWS)
}

/// The fake with `harbor`'s password `OLD` at `source`, and a cluster with namespace `web`.
fn setup_for(source: &Source) -> (Cloud, common::Cluster) {
    let cloud = Cloud::start();
    (source.set)(&cloud, OLD);
    let c = common::Cluster::new(&spec(source.password));
    c.server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}))
        .unwrap();
    (cloud, c)
}

/// Rotated at the fake, the value reaches the Secret that holds it within a few intervals;
/// the Secret of the other credential is not written again; the log says why.
#[test]
fn a_value_rotated_at_its_source_is_written_to_the_secrets_that_hold_it_only() {
    rotated_at_the_source(&AWS);
}

/// As [`a_value_rotated_at_its_source_is_written_to_the_secrets_that_hold_it_only`], for a
/// `gcpSecretManager:` version (`versions/latest`) with a `jsonKey`.
#[test]
fn a_google_secret_manager_value_rotated_at_its_source_is_written_to_the_secrets_that_hold_it_only()
{
    rotated_at_the_source(&GCP);
}

/// As [`a_value_rotated_at_its_source_is_written_to_the_secrets_that_hold_it_only`], for an
/// `azureKeyVault:` secret's current version.
#[test]
fn an_azure_key_vault_value_rotated_at_its_source_is_written_to_the_secrets_that_hold_it_only() {
    rotated_at_the_source(&AZURE);
}

/// As [`a_value_rotated_at_its_source_is_written_to_the_secrets_that_hold_it_only`], for a
/// `vault:` KV v2 field.
#[test]
fn a_vault_value_rotated_at_its_source_is_written_to_the_secrets_that_hold_it_only() {
    rotated_at_the_source(&VAULT);
}

fn rotated_at_the_source(source: &Source) {
    let _timing = common::timing();
    let (cloud, c) = setup_for(source);
    let ctl = start(&c, &cloud, source);
    wait_for(&ctl, "the first Secrets", Duration::from_secs(20), || {
        password(&c, "web", "harbor-pull", "harbor.example.com").as_deref() == Some(OLD)
            && c.server.object("secrets", "web", "plain-pull").is_some()
    });
    // Read again every 2 s while the value stays: nothing is written.
    let reads = cloud.calls(source.calls);
    wait_for(&ctl, "two more reads", Duration::from_secs(15), || {
        cloud.calls(source.calls) >= reads + 2
    });
    assert_eq!(
        writes_to(&c, "harbor-pull"),
        1,
        "an unchanged value is not written"
    );
    let plain_writes = writes_to(&c, "plain-pull");
    let record = || {
        c.server.object("secrets", "web", "harbor-pull").unwrap()["metadata"]["annotations"]
            ["regops.dev/applied-sources"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first_record = record();
    (source.set)(&cloud, NEW);
    let rotated = Instant::now();
    wait_for(&ctl, "the rotated value", Duration::from_secs(15), || {
        password(&c, "web", "harbor-pull", "harbor.example.com").as_deref() == Some(NEW)
    });
    // Within the next read (2 s) and the pass it calls for, with room for a loaded machine;
    // the resync is an hour away, so only the refresh can have written it.
    assert!(
        rotated.elapsed() < Duration::from_secs(10),
        "written {:?} after the rotation, with a 2 s refreshInterval",
        rotated.elapsed()
    );
    // The test server logs a request after its store has changed: the new value can be read
    // an instant before its write is in the log.
    wait_for(&ctl, "the write in the log", Duration::from_secs(5), || {
        writes_to(&c, "harbor-pull") >= 2
    });
    assert_eq!(writes_to(&c, "harbor-pull"), 2);
    // The new value is recorded with it, so a later plan sees nothing moved.
    let second_record = record();
    assert!(
        second_record.starts_with("harbor=sm:") && second_record != first_record,
        "{first_record} then {second_record}"
    );
    assert_eq!(first_record[..19], second_record[..19], "the same secret");
    assert_eq!(
        writes_to(&c, "plain-pull"),
        plain_writes,
        "the Secret that does not hold the value is not written"
    );
    let log = ctl.log();
    let said = format!(
        "the {} secret of credential harbor changed at its source: 1 namespace planned again",
        source.kind
    );
    assert!(log.contains(&said), "{said}: {log}");
    assert!(!log.contains("MARKER"), "{log}");
    // Counted as read, just now.
    let last = ctl
        .metric(&format!(
            "regops_secret_source_last_success_timestamp_seconds{{spec=\"refresh\",kind=\"{}\"}}",
            source.kind
        ))
        .expect("the last-success gauge");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - last).abs() < 10.0, "last success {last}, now {now}");
}

/// The source refuses (throttling): counted, retried with backoff, and the Secret keeps the
/// last good value. The source then hangs with a read in flight: a new namespace is provided
/// meanwhile (with the last good value), long before the read could end.
#[test]
fn a_failing_source_is_counted_keeps_the_last_value_and_does_not_hold_up_the_loop() {
    let _timing = common::timing();
    let (cloud, c) = setup();
    let ctl = start(&c, &cloud, &AWS);
    wait_for(&ctl, "the first Secret", Duration::from_secs(20), || {
        password(&c, "web", "harbor-pull", "harbor.example.com").as_deref() == Some(OLD)
    });
    let failures = || {
        ctl.metric("regops_secret_source_failures_total{spec=\"refresh\",kind=\"aws\"}")
            .unwrap_or(-1.0)
    };
    assert_eq!(failures(), 0.0, "the series is there from the start");
    {
        let mut s = cloud.state.lock().unwrap();
        s.throttle_secrets = true;
        // What a read would find, if it were let through.
        s.aws_secrets.insert("registry/harbor".into(), value(NEW));
    }
    wait_for(
        &ctl,
        "two failures counted",
        Duration::from_secs(20),
        || failures() >= 2.0,
    );
    assert_eq!(
        password(&c, "web", "harbor-pull", "harbor.example.com").as_deref(),
        Some(OLD),
        "the last good value is kept"
    );
    let log = ctl.log();
    assert!(
        log.contains("credential harbor: cannot read its aws secret again")
            && log.contains("ThrottlingException")
            && log.contains("its Secrets keep the value last read"),
        "{log}"
    );
    // Now the source hangs: wait until a read is in flight.
    let hang = Duration::from_secs(12);
    let calls = {
        let mut s = cloud.state.lock().unwrap();
        s.throttle_secrets = false;
        s.hang_secrets = Some(hang);
        s.calls.get("secretsmanager").copied().unwrap_or(0)
    };
    wait_for(&ctl, "a read in flight", Duration::from_secs(20), || {
        cloud.calls("secretsmanager") > calls
    });
    let in_flight = Instant::now();
    let (code, body) = c
        .server
        .request(
            "POST",
            "/api/v1/namespaces",
            "application/json",
            Some(&serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "api"}})),
        )
        .unwrap();
    assert_eq!(code, 201, "{body}");
    wait_for(
        &ctl,
        "the new namespace's Secret",
        Duration::from_secs(8),
        || c.server.object("secrets", "api", "harbor-pull").is_some(),
    );
    assert!(
        in_flight.elapsed() < hang,
        "the new namespace waited for the read in flight"
    );
    assert_eq!(
        password(&c, "api", "harbor-pull", "harbor.example.com").as_deref(),
        Some(OLD),
        "the last good value, while the source has not answered"
    );
    assert!(!ctl.log().contains("MARKER"), "{}", ctl.log());
}

/// One-shot commands: after `apply`, the Secret records the value it holds in a form that is
/// neither the value nor a plain hash of it; once the value is rotated at the fake, `plan` and
/// `drift` (which read the source, as the spec's other passwords are read) say the value
/// changed at its source, not in the cluster, and a second apply records the new value.
#[test]
fn plan_and_drift_say_a_value_changed_at_its_source() {
    let (cloud, c) = setup();
    let with = |args: &[&str]| {
        let mut cmd = regops(&c, &cloud, &AWS, args);
        let r = common::run(&mut cmd);
        assert!(
            !r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"),
            "{}",
            r.transcript()
        );
        r
    };
    let r = with(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let record = || {
        let s = c.server.object("secrets", "web", "harbor-pull").unwrap();
        s["metadata"]["annotations"]["regops.dev/applied-sources"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = record();
    let sha = |v: &str| {
        use sha2::Digest;
        sha2::Sha256::digest(v.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert!(first.starts_with("harbor=sm:"), "{first}");
    let fingerprint = first.rsplit('.').next().unwrap();
    assert!(
        !first.contains(OLD) && !sha(OLD).contains(fingerprint),
        "{first}"
    );
    (AWS.set)(&cloud, NEW);
    let plan = with(&["plan", "--output", "json"]);
    assert_eq!(plan.code, 2, "{}", plan.transcript());
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let change = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "harbor-pull" && c["namespace"] == "web")
        .unwrap();
    assert_eq!(change["cause"], "source-changed", "{change:#}");
    assert_eq!(change["causes"][0]["changed_at_source"][0], "harbor");
    let drift = with(&["drift"]);
    assert_eq!(drift.code, 2, "{}", drift.transcript());
    assert!(
        drift
            .stdout
            .contains("the value of credential `harbor` changed at its source"),
        "{}",
        drift.transcript()
    );
    let r = with(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_ne!(record(), first, "the new value is recorded");
    assert_eq!(
        password(&c, "web", "harbor-pull", "harbor.example.com").as_deref(),
        Some(NEW)
    );
    let again = with(&["plan"]);
    assert_eq!(again.code, 0, "in sync: {}", again.transcript());
}

/// The attacker is the spec's author: `refreshInterval: 1s` would have the controller call the
/// operator's secret manager every second, on the operator's identity and bill. Without
/// `--secret-refresh-min`, the floor is a minute: while the controller renews its Lease three
/// times (every 2 s: its own clock, not a fixed sleep), the value is not read again.
#[test]
fn a_spec_cannot_make_the_controller_read_more_often_than_the_operators_floor() {
    let _timing = common::timing();
    let (cloud, c) = setup();
    std::fs::write(
        &c.spec,
        spec(AWS.password).replace("refreshInterval: 2s", "refreshInterval: 1s"),
    )
    .unwrap();
    let ctl = start_with(&c, &cloud, &AWS, &[]);
    wait_for(&ctl, "the first Secret", Duration::from_secs(20), || {
        password(&c, "web", "harbor-pull", "harbor.example.com").as_deref() == Some(OLD)
    });
    let reads = cloud.calls("secretsmanager");
    let lease_writes = || {
        c.server
            .log()
            .iter()
            .filter(|l| l.resource == "leases" && l.is_write())
            .count()
    };
    let before = lease_writes();
    wait_for(
        &ctl,
        "three Lease renewals",
        Duration::from_secs(20),
        || lease_writes() >= before + 3,
    );
    assert_eq!(
        cloud.calls("secretsmanager"),
        reads,
        "read again before the operator's one-minute floor"
    );
}
