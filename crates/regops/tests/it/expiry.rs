//! Credentials with `expires`: plan and drift warn from `warnBefore` ahead (and once expired),
//! drift's metrics file carries each one's expiry, and nothing else changes.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use common::{Cluster, regops, run};

/// A spec whose `robot` credential expires `in_days` days from today (midnight UTC), and
/// whose `old` credential expired yesterday.
fn spec(expires: &str, expired: &str) -> String {
    format!(
        "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: {{ name: expiry }}
registries:
  harbor: {{ server: harbor.example.com, credential: robot }}
  quay: {{ server: quay.io, credential: old }}
credentials:
  robot: {{ username: robot, password: {{ env: REGOPS_CRED_PW }}, expires: \"{expires}\", warnBefore: 7d }}
  old: {{ username: old, password: {{ env: REGOPS_CRED_PW }}, expires: \"{expired}\" }}
scopes:
  apps: {{ namespaces: [web] }}
pullSecrets:
  pull: {{ registries: [harbor, quay], scope: apps }}
"
    )
}

fn day(offset: i64) -> (String, i64) {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let d = today.checked_add(jiff::Span::new().days(offset)).unwrap();
    let at = d
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_second();
    (d.to_string(), at)
}

#[test]
fn plan_and_drift_warn_and_the_metrics_file_has_each_expiry() {
    let (soon, soon_at) = day(5);
    let (gone, gone_at) = day(-1);
    let c = Cluster::new(&spec(&soon, &gone));
    c.server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}))
        .unwrap();
    let regops_on = |args: &[&str]| {
        let r = run(regops()
            .env("REGOPS_CRED_PW", "expiry-password-MARKER")
            .arg(args[0])
            .arg("-f")
            .arg(&c.spec)
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args(&args[1..]));
        assert!(!r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"));
        r
    };
    let plan = regops_on(&["plan"]);
    assert_eq!(plan.code, 2, "{}", plan.transcript());
    assert!(
        plan.stdout
            .contains(&format!("credential `robot` expires at {soon} (in ")),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains(&format!("credential `old` expired at {gone} (")),
        "{}",
        plan.stdout
    );
    let json = regops_on(&["plan", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let kinds: Vec<&str> = v["warningGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["credential-expired", "credential-expiring"], "{v}");

    let metrics = c.dir.path().join("regops.prom");
    let drift = regops_on(&["drift", "--metrics-file", metrics.to_str().unwrap()]);
    assert_eq!(
        drift.code,
        2,
        "the Secret is missing: {}",
        drift.transcript()
    );
    assert!(drift.stdout.contains("Warnings:\n"), "{}", drift.stdout);
    assert!(
        drift.stdout.contains(&format!("expires at {soon}")),
        "{}",
        drift.stdout
    );
    let m = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        m.contains(&format!(
            "regops_credential_expiry_timestamp_seconds{{spec=\"expiry\",credential=\"robot\"}} {soon_at}\n"
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "regops_credential_expiry_timestamp_seconds{{spec=\"expiry\",credential=\"old\"}} {gone_at}\n"
        )),
        "{m}"
    );
    // Outside its window, no warning: the same credential, expiring in 30 days.
    let (later, _) = day(30);
    let (much_later, _) = day(60);
    std::fs::write(&c.spec, spec(&later, &much_later)).unwrap();
    let plan = regops_on(&["plan"]);
    assert!(!plan.stdout.contains("expire"), "{}", plan.stdout);
}
