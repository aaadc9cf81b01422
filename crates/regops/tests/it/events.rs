//! Kubernetes Events of what an apply did, end to end against the test server (which stores
//! and validates events.k8s.io/v1 Events as kube-apiserver does): one per outcome, on the
//! object, with the reason in one CamelCase word; capped per pass at 1,000 namespaces; and
//! repeats folded into a series.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use base64::Engine;
use common::{regops, run};
use serde_json::{Value, json};

const SPEC: &str = "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: ev }
registries:
  harbor: { server: harbor.example.com, credential: robot }
  quay: { server: quay.io, credential: quay }
credentials:
  robot: { username: robot$ci, password: { env: REGOPS_CRED_HARBOR } }
  quay: { username: bot, password: { env: REGOPS_CRED_QUAY } }
scopes:
  web: { namespaces: [web, api, legacy] }
pullSecrets:
  harbor-pull: { registries: [harbor], scope: web }
  quay-pull: { registries: [quay], scope: web }
bindings:
  - { pullSecret: harbor-pull, serviceAccounts: [default] }
";

struct Env {
    c: common::Cluster,
}

impl Env {
    fn apply(&self, harbor: Option<&str>, quay: Option<&str>, extra: &[&str]) -> common::Run {
        let mut cmd = regops();
        cmd.arg("apply")
            .arg("-f")
            .arg(&self.c.spec)
            .arg("--kubeconfig")
            .arg(&self.c.kubeconfig)
            .arg("--yes")
            .args(extra);
        if let Some(h) = harbor {
            cmd.env("REGOPS_CRED_HARBOR", h);
        }
        if let Some(q) = quay {
            cmd.env("REGOPS_CRED_QUAY", q);
        }
        let r = run(&mut cmd);
        assert!(
            !r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"),
            "{}",
            r.transcript()
        );
        r
    }

    /// The Events stored since the last call, as (reason, type, namespace/name of the object).
    fn new_events(&self, seen: &mut usize) -> Vec<(String, String, String)> {
        let mut all = self.c.server.objects("events");
        all.sort_by_key(|e| {
            e["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        });
        for e in &all {
            let text = e.to_string();
            assert!(!text.contains("MARKER"), "a credential in an Event: {text}");
            assert_eq!(e["reportingController"], "regops.dev/ev");
            assert!(!e["reportingInstance"].as_str().unwrap().is_empty());
        }
        let out = all[*seen..]
            .iter()
            .map(|e| {
                (
                    e["reason"].as_str().unwrap().to_string(),
                    e["type"].as_str().unwrap().to_string(),
                    format!(
                        "{}/{}",
                        e["regarding"]["namespace"].as_str().unwrap_or(""),
                        e["regarding"]["name"].as_str().unwrap()
                    ),
                )
            })
            .collect();
        *seen = all.len();
        out
    }

    fn secret(&self, ns: &str, name: &str) -> Value {
        self.c.server.object("secrets", ns, name).unwrap()
    }
}

fn has(events: &[(String, String, String)], reason: &str, type_: &str, object: &str) -> bool {
    events
        .iter()
        .any(|(r, t, o)| r == reason && t == type_ && o == object)
}

/// Each outcome of an apply is an Event on its object: created, replaced, in conflict,
/// rotated, restored, pruned, held back; and an apply that changes nothing records nothing.
#[test]
fn each_outcome_is_an_event_on_its_object() {
    let e = Env {
        c: common::Cluster::new(SPEC),
    };
    let server = &e.c.server;
    for ns in ["web", "api", "legacy"] {
        server
            .seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .unwrap();
    }
    // Someone else's Secret under a pull secret's name (a conflict), and one of this spec's
    // of the wrong type (replaced).
    server
        .seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "quay-pull", "namespace": "legacy"}, "type": "Opaque"}))
        .unwrap();
    server
        .seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "harbor-pull", "namespace": "api",
            "labels": {"app.kubernetes.io/managed-by": "regops"}, "annotations": {"regops.dev/spec": "ev"}}, "type": "Opaque"}))
        .unwrap();
    let mut seen = 0;
    let r = e.apply(Some("MARKER-h1"), Some("MARKER-q1"), &[]);
    assert_eq!(r.code, 1, "the conflict fails the run: {}", r.transcript());
    let first = e.new_events(&mut seen);
    assert!(
        has(&first, "Created", "Normal", "web/harbor-pull"),
        "{first:?}"
    );
    assert!(
        has(&first, "Created", "Normal", "api/quay-pull"),
        "{first:?}"
    );
    assert!(
        has(&first, "Replaced", "Normal", "api/harbor-pull"),
        "{first:?}"
    );
    assert!(
        has(&first, "Conflict", "Warning", "legacy/quay-pull"),
        "{first:?}"
    );
    // `kubectl describe secret` finds an object's Events by its uid: a Secret just created
    // carries the uid its write answered with.
    let created = server
        .objects("events")
        .into_iter()
        .find(|ev| {
            ev["reason"] == "Created"
                && ev["regarding"]["name"] == "harbor-pull"
                && ev["regarding"]["namespace"] == "web"
        })
        .unwrap();
    assert_eq!(
        created["regarding"]["uid"],
        e.secret("web", "harbor-pull")["metadata"]["uid"]
    );
    assert_eq!(created["metadata"]["namespace"], "web");
    assert_eq!(created["action"], "Apply");
    assert!(
        created["note"]
            .as_str()
            .unwrap()
            .contains("Created by regops from spec `ev`"),
        "{created}"
    );
    let replaced = server
        .objects("events")
        .into_iter()
        .find(|ev| ev["reason"] == "Replaced")
        .unwrap();
    assert_eq!(
        replaced["regarding"]["uid"],
        e.secret("api", "harbor-pull")["metadata"]["uid"]
    );

    // Nothing to do: nothing recorded (a second apply writes nothing, Events included).
    server.clear_log();
    assert_eq!(e.apply(Some("MARKER-h1"), Some("MARKER-q1"), &[]).code, 1);
    assert_eq!(e.new_events(&mut seen), []);
    assert!(
        server.log().iter().all(|l| !l.is_write()),
        "{:?}",
        server.log()
    );

    // A rotated password: Rotated, on each Secret that changed in place.
    assert_eq!(e.apply(Some("MARKER-h2"), Some("MARKER-q1"), &[]).code, 1);
    let rotated = e.new_events(&mut seen);
    for ns in ["web", "api", "legacy"] {
        assert!(
            has(&rotated, "Rotated", "Normal", &format!("{ns}/harbor-pull")),
            "{rotated:?}"
        );
    }
    assert!(
        !rotated
            .iter()
            .any(|(_, _, o)| o.ends_with("quay-pull") && !o.starts_with("legacy")),
        "{rotated:?}"
    );

    // A hand edit of a Secret regops owns: Restored, a Warning (someone's change was undone).
    let mut s = e.secret("web", "quay-pull");
    s["data"][".dockerconfigjson"] =
        json!(base64::engine::general_purpose::STANDARD.encode(r#"{"auths":{}}"#));
    s["metadata"]["managedFields"] = Value::Null;
    let (status, _) = server
        .request(
            "PUT",
            "/api/v1/namespaces/web/secrets/quay-pull?fieldManager=kubectl-edit",
            "application/json",
            Some(&s),
        )
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(e.apply(Some("MARKER-h2"), Some("MARKER-q1"), &[]).code, 1);
    let restored = e.new_events(&mut seen);
    assert!(
        has(&restored, "Restored", "Warning", "web/quay-pull"),
        "{restored:?}"
    );

    // A namespace whose Secrets the server refuses: each write that failed is a Warning on
    // its Secret, and the ServiceAccount whose reference waits for it is held back.
    server
        .seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "extra"}}))
        .unwrap();
    std::fs::write(
        &e.c.spec,
        SPEC.replace("[web, api, legacy]", "[web, api, legacy, extra]"),
    )
    .unwrap();
    server.add_fault(
        kube_test_server::Fault::status(403)
            .verb("patch")
            .resource("secrets")
            .namespace("extra"),
    );
    let r = e.apply(Some("MARKER-h2"), Some("MARKER-q1"), &[]);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(!server.faults_fired().is_empty());
    server.clear_faults();
    let held = e.new_events(&mut seen);
    assert!(
        has(&held, "Failed", "Warning", "extra/harbor-pull"),
        "{held:?}"
    );
    assert!(
        has(&held, "HeldBack", "Warning", "extra/default"),
        "{held:?}"
    );

    // A pull secret leaves the spec: with --prune, Pruned on each Secret deleted.
    std::fs::write(
        &e.c.spec,
        SPEC.replace("  quay-pull: { registries: [quay], scope: web }\n", "")
            .replace("[web, api, legacy]", "[web, api, legacy, extra]"),
    )
    .unwrap();
    let r = e.apply(Some("MARKER-h2"), Some("MARKER-q1"), &["--prune"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let pruned = e.new_events(&mut seen);
    assert!(
        has(&pruned, "Pruned", "Normal", "web/quay-pull"),
        "{pruned:?}"
    );
    assert!(
        has(&pruned, "Pruned", "Normal", "api/quay-pull"),
        "{pruned:?}"
    );
    assert!(
        !has(&pruned, "Pruned", "Normal", "legacy/quay-pull"),
        "{pruned:?}"
    );
}

/// 1,000 namespaces make 1,000 Secrets, not 1,000 Events: the first of each reason are
/// recorded one by one, the rest counted in one Event on the Lease (counted from the
/// server's log of requests).
#[test]
fn a_thousand_namespaces_make_a_few_dozen_events() {
    let spec = "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: ev }
registries:
  harbor: { server: harbor.example.com, credential: robot }
credentials:
  robot: { username: robot$ci, password: { env: REGOPS_CRED_HARBOR } }
scopes:
  all: { selector: { matchLabels: { team: web } } }
pullSecrets:
  harbor-pull: { registries: [harbor], scope: all }
";
    let e = Env {
        c: common::Cluster::new(spec),
    };
    for i in 0..1000 {
        e.c.server
            .seed(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": format!("team-{i:04}"), "labels": {"team": "web"}}}))
            .unwrap();
    }
    e.c.server.clear_log();
    let r = e.apply(Some("MARKER-h"), None, &[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(e.c.server.objects("secrets").len(), 1000);
    let event_writes =
        e.c.server
            .log()
            .iter()
            .filter(|l| l.resource == "events" && l.is_write())
            .count();
    let per_reason = regops_core::events::PER_REASON;
    assert_eq!(event_writes, per_reason + 1, "one by one, then one summary");
    let summary =
        e.c.server
            .objects("events")
            .into_iter()
            .find(|ev| ev["regarding"]["kind"] == "Lease")
            .unwrap();
    assert_eq!(summary["reason"], "Created");
    assert_eq!(summary["regarding"]["name"], "regops-ev");
    assert_eq!(summary["metadata"]["namespace"], "default");
    let note = summary["note"].as_str().unwrap();
    assert!(
        note.contains(&format!(
            "{} more `Created` in {} namespaces",
            1000 - per_reason,
            1000 - per_reason
        )),
        "{note}"
    );
}

/// A repeat of an Event in one process (the controller's passes) is folded into the first
/// one's series, as client-go's recorder does: the first repeat patches `series.count` to 2,
/// later ones are counted without a request.
#[test]
fn repeats_are_one_event_with_a_series() {
    use regops_core::events::{Event, PassEvents, Regarding, Type};
    let c = common::Cluster::new(SPEC);
    c.server
        .seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}))
        .unwrap();
    c.server.clear_log();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (client, _) = rt
        .block_on(regops::cluster::client::connect(Some(&c.kubeconfig), None))
        .unwrap();
    let conn = regops::cluster::Connection::new(client, regops::context::RunContext::default());
    let recorder = regops::cluster::events::Recorder::new("ev", "host/1");
    let pass = || PassEvents {
        events: vec![Event {
            regarding: Regarding {
                api_version: "v1".into(),
                kind: "Secret".into(),
                namespace: "web".into(),
                name: "quay-pull".into(),
                uid: None,
            },
            type_: Type::Warning,
            reason: "Conflict",
            action: "Plan",
            note: "left alone".into(),
        }],
        beyond: Vec::new(),
    };
    let first = rt.block_on(recorder.record(&conn, pass(), None));
    assert_eq!(
        (first.created, first.patched, first.failed),
        (1, 0, 0),
        "{first:?}"
    );
    let second = rt.block_on(recorder.record(&conn, pass(), None));
    assert_eq!((second.created, second.patched), (0, 1), "{second:?}");
    let third = rt.block_on(recorder.record(&conn, pass(), None));
    assert_eq!(
        (third.created, third.patched, third.folded),
        (0, 0, 1),
        "{third:?}"
    );
    let events = c.server.objects("events");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["series"]["count"], 2);
    let writes: Vec<String> = c
        .server
        .log()
        .iter()
        .filter(|l| l.is_write())
        .map(|l| format!("{} {}", l.verb, l.resource))
        .collect();
    assert_eq!(writes, ["create events", "patch events"]);
}

/// The test server refuses an Event as kube-apiserver's ValidateEventCreate does
/// (pkg/apis/core/validation/events.go): a reason past 128 characters, an Event outside its
/// object's namespace, a series of one.
#[test]
fn the_test_server_validates_events_as_the_api_server_does() {
    let c = common::Cluster::new(SPEC);
    let base = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "x.1", "namespace": "default"},
        "eventTime": "2026-12-05T08:00:00.000000Z",
        "reportingController": "regops.dev/ev", "reportingInstance": "h/1",
        "action": "Apply", "reason": "Created", "type": "Normal", "note": "n",
        "regarding": {"apiVersion": "v1", "kind": "Secret", "namespace": "default", "name": "s"}
    });
    let post = |body: &Value| {
        c.server
            .request(
                "POST",
                "/apis/events.k8s.io/v1/namespaces/default/events",
                "application/json",
                Some(body),
            )
            .unwrap()
            .0
    };
    assert_eq!(post(&base), 201);
    let mut long = base.clone();
    long["metadata"]["name"] = json!("x.2");
    long["reason"] = json!("R".repeat(129));
    assert_eq!(post(&long), 422);
    let mut elsewhere = base.clone();
    elsewhere["metadata"]["name"] = json!("x.3");
    elsewhere["regarding"]["namespace"] = json!("web");
    assert_eq!(post(&elsewhere), 422);
    let mut one = base.clone();
    one["metadata"]["name"] = json!("x.4");
    one["series"] = json!({"count": 1, "lastObservedTime": "2026-12-05T08:00:00.000000Z"});
    assert_eq!(post(&one), 422);
    let mut bad_type = base.clone();
    bad_type["metadata"]["name"] = json!("x.5");
    bad_type["type"] = json!("Info");
    assert_eq!(post(&bad_type), 422);
}
