//! Minted tokens in the pure core: a Secret keeps its token while it has more than
//! `refreshBefore` left; a due one is renewed only from a fresh token (and kept as it is until
//! then); a failed credential holds back only its Secrets; drift's `expiring`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use regops_core::desired::{self, Tokens};
use regops_core::login::Login;
use regops_core::observed::Observed;
use regops_core::plan::{self, Action, Cause, Source};
use regops_core::{dockerconfig, drift, view};
use regops_spec::{Sources, SpecFormat};
use secrecy::{ExposeSecret, SecretString};

const NOW: i64 = 1_800_000_000;
const ECR: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

fn spec() -> regops_spec::Spec {
    let text = format!(
        "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: {{ name: minted }}
registries:
  ecr: {{ server: {ECR}, credential: aws }}
  harbor: {{ server: harbor.example.com, credential: robot }}
credentials:
  aws:
    password: {{ ecr: {{ region: eu-west-1 }} }}
  robot: {{ username: robot, password: {{ env: PW }} }}
scopes:
  apps: {{ namespaces: [a, b, c] }}
pullSecrets:
  ecr-pull: {{ registries: [ecr], scope: apps }}
  harbor-pull: {{ registries: [harbor], scope: apps }}
"
    );
    let mut sources = Sources::default();
    sources.add("spec.yaml".into(), text, SpecFormat::Yaml);
    regops_spec::load(sources, "minted").unwrap().spec
}

fn static_logins() -> BTreeMap<String, Login> {
    BTreeMap::from([(
        "robot".to_string(),
        Login::new("robot", SecretString::from("pw-robot".to_string())),
    )])
}

fn doc(server: &str, user: &str, password: &str) -> String {
    let login = Login::new(user, SecretString::from(password.to_string()));
    STANDARD.encode(dockerconfig::build([(server, &login)]).expose_secret())
}

fn secret(ns: &str, name: &str, data: String, expires: Option<i64>) -> serde_json::Value {
    let mut annotations = serde_json::json!({ "regops.dev/spec": "minted" });
    if let Some(at) = expires {
        annotations["regops.dev/expires-at"] =
            serde_json::json!(regops_spec::rules::format_timestamp(at));
    }
    serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {
            "name": name, "namespace": ns,
            "labels": { "app.kubernetes.io/managed-by": "regops" },
            "annotations": annotations,
        },
        "data": { ".dockerconfigjson": data },
    })
}

/// Namespaces a, b, c. In a, a token with 10 hours left; in b, one with 1 hour left (inside
/// the default 4-hour margin); in c, none yet. Every harbor Secret is as the spec wants.
fn observed() -> Observed {
    let mut objects = Vec::new();
    for ns in ["a", "b", "c"] {
        objects.push(
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
        objects.push(secret(
            ns,
            "harbor-pull",
            doc("harbor.example.com", "robot", "pw-robot"),
            None,
        ));
    }
    objects.push(secret(
        "a",
        "ecr-pull",
        doc(ECR, "AWS", "token-a"),
        Some(NOW + 10 * 3_600),
    ));
    objects.push(secret(
        "b",
        "ecr-pull",
        doc(ECR, "AWS", "token-b"),
        Some(NOW + 3_600),
    ));
    let (o, skipped) = Observed::from_objects(&objects);
    assert!(skipped.is_empty(), "{skipped:?}");
    o
}

fn plan_with(tokens: &Tokens) -> (desired::Desired, plan::Plan) {
    let spec = spec();
    let observed = observed();
    let d = desired::compute_with(&spec, &static_logins(), tokens, &observed, None);
    let p = plan::compute("minted", "test", Source::default(), &d, &observed, None);
    (d, p)
}

fn change<'p>(p: &'p plan::Plan, ns: &str, name: &str) -> &'p plan::Change {
    p.changes
        .iter()
        .find(|c| c.namespace == ns && c.name == name)
        .unwrap()
}

#[test]
fn without_fresh_tokens_secrets_keep_theirs_and_the_due_ones_are_named() {
    let (d, p) = plan_with(&Tokens {
        now: NOW,
        fresh: BTreeMap::new(),
    });
    assert_eq!(d.due.iter().collect::<Vec<_>>(), ["aws"]);
    // a: good for 10 hours; b: due, kept as it is until renewed; c: none yet.
    assert_eq!(change(&p, "a", "ecr-pull").action, Action::Noop);
    assert_eq!(change(&p, "b", "ecr-pull").action, Action::Noop);
    assert_eq!(change(&p, "c", "ecr-pull").action, Action::Create);
    let a = d
        .secrets
        .iter()
        .find(|s| s.namespace == "a" && s.name == "ecr-pull")
        .unwrap();
    assert!(a.due.is_empty() && a.expires_at == Some(NOW + 10 * 3_600));
    assert!(a.dockerconfigjson.expose_secret().contains("token-a"));
    // The first renewal: b's token enters... it is already inside; a's at 10h - 4h.
    assert_eq!(d.renew_at, Some(NOW + 3_600 - 4 * 3_600));
}

#[test]
fn a_fresh_token_renews_only_the_due_secrets_and_creates_the_missing() {
    let mut fresh = Login::new("AWS", SecretString::from("token-new".to_string()));
    fresh.expires_at = Some(NOW + 12 * 3_600);
    let (d, p) = plan_with(&Tokens {
        now: NOW,
        fresh: BTreeMap::from([("aws".to_string(), Ok(fresh))]),
    });
    assert!(d.due.is_empty());
    // A valid token that differs from the fresh one is not a change.
    assert_eq!(change(&p, "a", "ecr-pull").action, Action::Noop);
    let b = change(&p, "b", "ecr-pull");
    assert_eq!(b.action, Action::Update);
    assert_eq!(
        b.causes[0],
        Cause::TokenRenewal {
            credentials: vec!["aws".into()]
        }
    );
    assert_eq!(
        b.reason.as_ref().map(|r| r.raw()).as_deref(),
        Some("renews the token of `aws`, which expires within `refreshBefore`")
    );
    assert_eq!(change(&p, "c", "ecr-pull").action, Action::Create);
    for ns in ["b", "c"] {
        let s = d
            .secrets
            .iter()
            .find(|s| s.namespace == ns && s.name == "ecr-pull")
            .unwrap();
        assert!(s.dockerconfigjson.expose_secret().contains("token-new"));
        assert_eq!(s.expires_at, Some(NOW + 12 * 3_600));
    }
    // A renewal is not drift.
    assert!(
        drift::drift(&p)
            .iter()
            .all(|x| x.name != "ecr-pull" || x.namespace == "c")
    );
    let text = view::text(&p, false, view::Detail::Full);
    insta::assert_snapshot!(text);
    assert!(!text.contains("token-"), "{text}");
}

#[test]
fn a_failed_credential_holds_back_only_its_secrets() {
    let (d, p) = plan_with(&Tokens {
        now: NOW,
        fresh: BTreeMap::from([(
            "aws".to_string(),
            Err(regops_core::desired::NoToken::Mint {
                kind: "ecr",
                why: "find AWS credentials failed: none found".into(),
            }),
        )]),
    });
    let held: Vec<(&str, String)> = p
        .conflicts
        .iter()
        .map(|c| (c.namespace.as_str(), c.message.raw()))
        .collect();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(held.iter().all(|(_, m)| m.starts_with(
        "held back: credential `aws`: cannot mint a token from `ecr`: find AWS credentials failed"
    )));
    assert_eq!(held.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["b", "c"]);
    // a's token is still good: it needs nothing minted, so it is not held.
    assert_eq!(change(&p, "a", "ecr-pull").action, Action::Noop);
    // The static pull secret is planned as ever; nothing is pruned.
    assert!(p.changes.iter().all(|c| c.action != Action::Delete));
    assert!(
        d.secrets
            .iter()
            .any(|s| s.name == "harbor-pull" && s.held.is_none())
    );
}

#[test]
fn drift_reports_tokens_expiring_before_the_next_run() {
    let (d, _) = plan_with(&Tokens {
        now: NOW,
        fresh: BTreeMap::new(),
    });
    let names = |next: u64| -> Vec<String> {
        drift::expiring(&d, NOW, next)
            .iter()
            .map(|x| format!("{}/{}", x.namespace, x.name))
            .collect()
    };
    assert!(names(1_800).is_empty());
    assert_eq!(names(2 * 3_600), ["b/ecr-pull"]);
    assert_eq!(names(11 * 3_600), ["a/ecr-pull", "b/ecr-pull"]);
    let detail = &drift::expiring(&d, NOW, 2 * 3_600)[0].detail;
    assert_eq!(
        detail.raw(),
        "its token expires at 2027-01-15T09:00:00Z, before the next run"
    );
}
