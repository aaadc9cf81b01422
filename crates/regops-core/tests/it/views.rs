//! The plan's views at scale: alike changes grouped, and the Markdown comment within its budget
//! whatever the plan's size, with the summary, every conflict and every deletion always there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use regops_core::login::Login;
use regops_core::observed::Observed;
use regops_core::plan::{Action, Plan, Source};
use regops_core::{desired, plan, view};
use regops_spec::{Sources, SpecFormat};
use secrecy::SecretString;
use serde_json::{Value, json};

const SPEC: &str = r#"
apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: team }
registries:
  harbor: { server: harbor.example.com, credential: robot }
credentials:
  robot: { username: robot$ci, password: { env: X } }
scopes:
  apps: { selector: { matchLabels: { tier: apps } } }
pullSecrets:
  pull: { registries: [harbor], scope: apps }
bindings:
  - pullSecret: pull
    serviceAccounts: [default]
    workloads: { kinds: [Deployment] }
"#;

fn owned_secret(ns: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "pull", "namespace": ns,
            "labels": {"app.kubernetes.io/managed-by": "regops"},
            "annotations": {"regops.dev/spec": "team"}},
        "data": {".dockerconfigjson": "e30="}})
}

/// `n` namespaces in scope, each with its `default` ServiceAccount and three Deployments
/// pulling from the registry; one in 100 holds a Secret `pull` made by hand (a conflict), one
/// in 50 an owned Secret with other data (an update); and `n / 200 + 1` namespaces out of
/// scope hold an owned Secret (a deletion).
fn plan_of(n: usize) -> Plan {
    let mut objects = Vec::new();
    for i in 0..n {
        let ns = format!("team-{i:05}");
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"tier": "apps"}}}));
        objects.push(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": ns}}));
        for app in ["api", "web", "worker"] {
            objects.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": app, "namespace": ns},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "app", "image": format!("harbor.example.com/{ns}/{app}:1")}]}}}}));
        }
        if i % 100 == 7 {
            objects.push(
                json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "pull", "namespace": ns}}),
            );
        } else if i % 50 == 3 {
            objects.push(owned_secret(&ns));
        }
    }
    for i in 0..n / 200 + 1 {
        let ns = format!("retired-{i:03}");
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        objects.push(owned_secret(&ns));
    }
    let mut sources = Sources::default();
    sources.add("spec.yaml".into(), SPEC.into(), SpecFormat::Yaml);
    let loaded = regops_spec::load(sources, "team").unwrap();
    let logins = BTreeMap::from([(
        "robot".to_string(),
        Login {
            username: "robot$ci".into(),
            password: SecretString::from("pw-marker".to_string()),
            email: None,
            source_digest: None,
            expires_at: None,
        },
    )]);
    let (observed, skipped) = Observed::from_objects(&objects);
    assert!(skipped.is_empty());
    let d = desired::compute(&loaded.spec, &logins, &observed, None);
    plan::compute("team", "state", Source::default(), &d, &observed, None)
}

fn check_budget(p: &Plan, budget: usize) -> String {
    let md = view::markdown(p, budget);
    assert!(md.len() <= budget, "{} bytes > {budget}", md.len());
    let s = &p.summary;
    assert!(md.contains(&format!(
        "{} to create, {} to update, {} to replace, {} to patch, {} to delete.",
        s.create, s.update, s.replace, s.patch, s.delete
    )));
    assert!(!p.conflicts.is_empty());
    for c in &p.conflicts {
        assert!(
            md.contains(&format!("Secret `{}/{}`", c.namespace, c.name)),
            "conflict {} missing",
            c.namespace
        );
    }
    let deletions: Vec<_> = p
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .collect();
    assert!(!deletions.is_empty());
    for c in deletions {
        assert!(
            md.contains(&format!(
                "| delete | Secret | `{}` | `{}` |",
                c.namespace, c.name
            )),
            "deletion {} missing",
            c.namespace
        );
    }
    md
}

#[test]
fn markdown_fits_the_budget_at_every_size() {
    for n in [10, 1_000, 10_000] {
        let p = plan_of(n);
        let md = check_budget(&p, view::MARKDOWN_BUDGET);
        if n == 10_000 {
            // Cut to fit: it says so and points to the JSON plan.
            assert!(md.contains("the JSON plan"), "{n}: no pointer");
        }
        // The groups make a large plan a handful of lines: every ServiceAccount patch is in
        // one (those in the namespaces in conflict hold nothing back and are not patched).
        let sa_groups: Vec<_> = p
            .groups
            .iter()
            .filter(|g| g.kind.as_str() == "ServiceAccount")
            .collect();
        let sa_patches = p
            .changes
            .iter()
            .filter(|c| c.kind.as_str() == "ServiceAccount" && c.action == Action::Patch)
            .count();
        assert_eq!(sa_groups.len(), 1, "{n}");
        assert_eq!(sa_groups[0].count, sa_patches, "{n}");
        assert!(sa_patches >= n * 9 / 10, "{n}");
    }
}

#[test]
fn a_small_budget_cuts_detail_first_and_keeps_what_must_stay() {
    let p = plan_of(200);
    let whole = view::markdown(&p, usize::MAX);
    assert!(!whole.contains("the JSON plan"));
    let small = check_budget(&p, 1_600);
    // The members in full went first, then most rows; what was cut is counted.
    assert!(whole.contains("<details>") && !small.contains("<details>"));
    assert!(small.contains("2 more changes |"), "{small}");
    insta::assert_snapshot!("markdown_200_namespaces_in_1600_bytes", small);
}

#[test]
fn grouped_views_of_ten_namespaces() {
    let p = plan_of(10);
    insta::assert_snapshot!(
        "text_10_namespaces",
        view::text(&p, false, view::Detail::Summary)
    );
    insta::assert_snapshot!(
        "markdown_10_namespaces",
        view::markdown(&p, view::MARKDOWN_BUDGET)
    );
    // Full detail lists each change and each warning.
    let full = view::text(&p, false, view::Detail::Full);
    for c in p.changes.iter().filter(|c| c.action != Action::Noop) {
        assert!(
            full.contains(&format!("namespace {}", c.namespace)),
            "{}",
            c.namespace
        );
    }
    for w in &p.warnings {
        assert!(full.contains(&w.message.terminal()));
    }
    // The JSON plan keeps every change and lists the groups by index.
    let json: Value = serde_json::from_str(&view::json(&p)).unwrap();
    assert_eq!(json["changes"].as_array().unwrap().len(), p.changes.len());
    let groups = json["groups"].as_array().unwrap();
    assert!(!groups.is_empty());
    for g in groups {
        for m in g["members"].as_array().unwrap() {
            let c = &json["changes"][m.as_u64().unwrap() as usize];
            assert_eq!(c["kind"], g["kind"]);
            assert_eq!(c["action"], g["action"]);
        }
    }
}

/// Every view writes each format it offers (what `--output` accepts for its command) and
/// refuses the others, naming those it has; the fleet views offer what their single-cluster
/// views do.
#[test]
fn every_view_writes_the_formats_it_offers_and_refuses_the_others() {
    use regops_core::fleet::{
        Applied, Drifted, FleetApplyView, FleetDriftView, FleetPlanView, PerCluster,
    };
    use regops_core::format::{Format, Style, View};
    use regops_core::report::{ApplyView, DriftView, Report, ValidateView};

    fn check<V: View>(name: &str, v: &V) {
        let offered: Vec<Format> = V::FORMATS.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            offered.first(),
            Some(&Format::Text),
            "{name}: text comes first"
        );
        for f in Format::ALL {
            let out = v.render(f, &Style::default());
            if offered.contains(&f) {
                let text = out.unwrap_or_else(|e| panic!("{name} {}: {e}", f.name()));
                assert!(!text.is_empty(), "{name} {}", f.name());
                if f == Format::Json {
                    serde_json::from_str::<Value>(&text)
                        .unwrap_or_else(|e| panic!("{name}: JSON that does not parse: {e}"));
                }
            } else {
                let e = out.unwrap_err();
                assert!(e.to_string().contains("text, json"), "{name}: {e}");
            }
        }
    }
    let plan = plan_of(20);
    let report = Report::default();
    check("plan", &view::PlanView(&plan));
    check(
        "apply",
        &ApplyView {
            plan: &plan,
            report: &report,
            dry_run: false,
        },
    );
    check(
        "drift",
        &DriftView {
            plan: &plan,
            drift: &[],
        },
    );
    check("validate", &ValidateView(&[]));
    let member = |p: Plan| PerCluster {
        cluster: "prod".into(),
        result: Ok(p),
    };
    let plans = [member(plan_of(5))];
    check(
        "fleet plan",
        &FleetPlanView {
            spec: "team",
            source: &Source::default(),
            members: &plans,
        },
    );
    let applied = [PerCluster {
        cluster: "prod".into(),
        result: Ok(Applied {
            plan: plan_of(5),
            report: Report::default(),
            lock_lost: false,
        }),
    }];
    check(
        "fleet apply",
        &FleetApplyView {
            spec: "team",
            members: &applied,
            dry_run: true,
        },
    );
    let drifted = [PerCluster {
        cluster: "prod".into(),
        result: Ok(Drifted {
            plan: plan_of(5),
            drift: Vec::new(),
        }),
    }];
    check(
        "fleet drift",
        &FleetDriftView {
            spec: "team",
            members: &drifted,
        },
    );
    assert_eq!(
        <FleetPlanView<'_> as View>::FORMATS.len(),
        <view::PlanView<'_> as View>::FORMATS.len()
    );
}

/// A value rotated at its secret manager, in every view: the text and Markdown views say "the
/// value of credential `harbor` changed at its source", the JSON plan has the class
/// `source-changed` and names the credential in `changed_at_source`; no view shows the record.
#[test]
fn a_value_changed_at_its_source_in_every_view() {
    const SPEC: &str = r#"
apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: team }
registries:
  harbor: { server: harbor.example.com, credential: harbor }
credentials:
  harbor:
    username: robot$ci
    password: { awsSecretsManager: { secretId: registry/harbor, region: eu-west-1 } }
scopes:
  web: { namespaces: [web] }
pullSecrets:
  pull: { registries: [harbor], scope: web }
"#;
    let reference = "aws\0eu-west-1\0registry/harbor\0\0";
    let login = |pw: &str| Login {
        username: "robot$ci".into(),
        password: SecretString::from(pw.to_string()),
        email: None,
        source_digest: Some(regops_core::ownership::value_record(
            reference,
            pw.as_bytes(),
        )),
        expires_at: None,
    };
    let (old, new) = (login("pw-old-marker"), login("pw-new-marker"));
    let applied = regops_core::dockerconfig::build([("harbor.example.com", &old)]);
    use base64::Engine;
    use secrecy::ExposeSecret;
    let record = old.source_digest.clone().unwrap();
    let objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "pull", "namespace": "web",
                "labels": {"app.kubernetes.io/managed-by": "regops"},
                "annotations": {"regops.dev/spec": "team",
                    "regops.dev/applied-sources": format!("harbor={record}")},
                "managedFields": [{"manager": "regops", "operation": "Apply",
                    "fieldsV1": {"f:data": {"f:.dockerconfigjson": {}}}}]},
            "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD
                .encode(applied.expose_secret())}}),
    ];
    let mut sources = Sources::default();
    sources.add("spec.yaml".into(), SPEC.into(), SpecFormat::Yaml);
    let loaded = regops_spec::load(sources, "team").unwrap();
    let logins = BTreeMap::from([("harbor".to_string(), new)]);
    let (observed, skipped) = Observed::from_objects(&objects);
    assert!(skipped.is_empty());
    let d = desired::compute(&loaded.spec, &logins, &observed, None);
    let p = plan::compute("team", "state", Source::default(), &d, &observed, None);
    let text = view::text(&p, false, view::Detail::Full);
    let markdown = view::markdown(&p, view::MARKDOWN_BUDGET);
    let json: Value = serde_json::from_str(&view::json(&p)).unwrap();
    let new_record = logins["harbor"].source_digest.clone().unwrap();
    for shown in [&text, &markdown, &json.to_string()] {
        assert!(!shown.contains("marker"), "{shown}");
        assert!(!shown.contains(&record[3..]) && !shown.contains(&new_record[3..]));
    }
    insta::assert_snapshot!("text_value_changed_at_its_source", text);
    insta::assert_snapshot!("markdown_value_changed_at_its_source", markdown);
    insta::assert_snapshot!(
        "json_value_changed_at_its_source",
        serde_json::to_string_pretty(&json["changes"][0]).unwrap()
    );
}
