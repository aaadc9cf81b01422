//! Text from outside is data in every view (`regops_spec::untrusted`): hostile strings put in
//! every field that comes from a cluster, a spec, a registry or a saved plan, and each view
//! checked against the same view of a benign run.
//!
//! - Text: no control byte and no bidirectional or invisible format character comes from the
//!   data, and the view has as many lines as the benign one (data cannot add a line).
//! - Markdown, read back with a CommonMark parser with GitHub's tables (pulldown-cmark): the
//!   same structure as the benign view (headings, tables, rows, cells, lists, `<details>`), no
//!   link or image at all, no HTML but regops' own, and every piece of data inside a code span.
//! - JSON: the hostile strings come back byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use regops_core::drift;
use regops_core::fleet::{self, ClusterFailure, PerCluster};
use regops_core::format::{Format, Style, View};
use regops_core::login::Login;
use regops_core::observed::Observed;
use regops_core::plan::{Plan, Source};
use regops_core::report::{self, Checked, ItemResult, Outcome, Report, Verdict};
use regops_core::saved::{self, ClusterRecord, SavedPlan, SpecRecord};
use regops_core::{desired, import, plan, render, view};
use regops_spec::untrusted::is_hidden;
use regops_spec::{Sources, SpecFormat};
use secrecy::SecretString;
use serde_json::{Value, json};

/// Every hostile string carries this, so that data can be told from regops' own words.
const MARK: &str = "QZX";

/// What an attacker writes into a name, a message or an annotation.
const FRAGMENTS: &[&str] = &[
    "\x1b[2J",                                              // clear the screen
    "\x1b[31mred\x1b[0m",                                   // colour
    "\x1b]8;;https://attacker.example\x07link\x1b]8;;\x07", // OSC 8 hyperlink
    "\x07",                                                 // BEL
    "\u{9b}31m",                                            // C1 CSI
    "\u{202e}txt.exe",                                      // right-to-left override
    "\u{2066}\u{2069}\u{200f}\u{061c}\u{200b}",             // isolates, RLM, ALM, zero width
    "<!--",
    "-->",
    "</details>",
    "<details open>",
    "**No changes.**",
    "<img src=https://attacker.example/t.png>",
    "@octocat",
    "[click](https://attacker.example)",
    "![i](https://attacker.example/i.png)",
    "https://attacker.example",
    "www.attacker.example",
    "`",
    "``",
    "```",
    "|",
    "\\|",
    "\\",
    "\n",
    "\r\n",
    "\n# Heading\n",
    "\n---\n",
    "\n| a | b |\n|---|---|\n",
    "#",
    "$x$",
    "_em_",
    "~~s~~",
    " ",
    "&lt;",
    "<script>alert(1)</script>",
];

/// A hostile string: the mark, a number keeping it unique, and some fragments.
fn hostile(n: usize, picks: &[usize]) -> String {
    let mut s = format!("{MARK}{n}");
    for &p in picks {
        s.push_str(FRAGMENTS[p % FRAGMENTS.len()]);
    }
    s
}

/// The strings of one run: what the cluster, the spec's name and the target say.
#[derive(Clone, Debug)]
struct Names {
    namespaces: Vec<String>,
    workload: String,
    username: String,
    manager: String,
    commit: String,
    other_spec: String,
    secret_type: String,
    cronjob: String,
    spec: String,
    target: String,
    message: String,
}

impl Names {
    fn benign() -> Self {
        Names {
            namespaces: (0..4).map(|i| format!("ns{i}")).collect(),
            workload: "app".into(),
            username: "someone".into(),
            manager: "kubectl-edit".into(),
            commit: "0123456789abcdef".into(),
            other_spec: "other".into(),
            secret_type: "Opaque".into(),
            cronjob: "nightly".into(),
            spec: "team".into(),
            target: "state".into(),
            message: "connection refused".into(),
        }
    }
}

fn names_strategy() -> impl Strategy<Value = Names> {
    proptest::collection::vec(proptest::collection::vec(0..FRAGMENTS.len(), 1..5), 14).prop_map(
        |p| Names {
            namespaces: (0..4).map(|i| hostile(i, &p[i])).collect(),
            workload: hostile(4, &p[4]),
            username: hostile(5, &p[5]),
            manager: hostile(6, &p[6]),
            commit: hostile(7, &p[7]),
            other_spec: hostile(8, &p[8]),
            secret_type: hostile(9, &p[9]),
            cronjob: hostile(10, &p[10]),
            spec: hostile(11, &p[11]),
            target: hostile(12, &p[12]),
            message: hostile(13, &p[13]),
        },
    )
}

const SPEC: &str = r#"
apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: team }
registries:
  harbor: { server: harbor.example.com, credential: robot }
credentials:
  robot: { username: robot, password: { env: X } }
scopes:
  apps: { selector: { matchLabels: { tier: apps } } }
pullSecrets:
  pull: { registries: [harbor], scope: apps, adopt: false }
bindings:
  - pullSecret: pull
    serviceAccounts: [default]
    workloads: { kinds: [Deployment, Job] }
"#;

fn dockerconfig(user: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let doc = json!({"auths": {"harbor.example.com": {
        "username": user, "password": "x", "auth": b64.encode(format!("{user}:x"))}}});
    b64.encode(doc.to_string())
}

/// A cluster in which every string regops shows comes from `n`: a namespace per kind of
/// change (an update by someone else, a conflict with another spec's Secret, a Secret of
/// another type, a new namespace with a Deployment and a CronJob's Job), and a namespace out of
/// scope holding an owned Secret (a deletion).
fn plan_with(n: &Names) -> Plan {
    let (observed, d) = cluster_with(n);
    let source = Source {
        commit: Some("fedcba9876543210".into()),
        dirty: false,
    };
    plan::compute(&n.spec, &n.target, source, &d, &observed, None)
}

/// What `regops import` says after reading the same cluster (names, reasons and notes from
/// it), with the file it wrote named by data too.
fn import_summary(n: &Names) -> String {
    let (observed, _) = cluster_with(n);
    let mut im = import::infer(&observed, None, &n.spec, &[], true);
    im.notes.push(n.message.clone());
    import::summary(&im, 1, Some(std::path::Path::new(&n.target)))
}

fn cluster_with(n: &Names) -> (Observed, desired::Desired) {
    let ns = &n.namespaces;
    let mut objects = Vec::new();
    for name in &ns[..3] {
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"tier": "apps"}}}));
        objects.push(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": name}}));
    }
    objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns[3]}}));
    // Changed in the cluster by someone else, from another commit.
    objects.push(json!({"apiVersion": "v1", "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "pull", "namespace": ns[0],
            "labels": {"app.kubernetes.io/managed-by": "regops"},
            "annotations": {"regops.dev/spec": n.spec, "regops.dev/source-commit": n.commit},
            "managedFields": [{"manager": n.manager, "operation": "Update",
                "fieldsV1": {"f:data": {}}}]},
        "data": {".dockerconfigjson": dockerconfig(&n.username)}}));
    // Another spec's Secret of the name: a conflict naming that spec.
    objects.push(json!({"apiVersion": "v1", "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "pull", "namespace": ns[1],
            "labels": {"app.kubernetes.io/managed-by": "regops"},
            "annotations": {"regops.dev/spec": n.other_spec}},
        "data": {".dockerconfigjson": dockerconfig("x")}}));
    // An owned Secret of another type: replaced, the reason naming the type.
    objects.push(
        json!({"apiVersion": "v1", "kind": "Secret", "type": n.secret_type,
        "metadata": {"name": "pull", "namespace": ns[2],
            "labels": {"app.kubernetes.io/managed-by": "regops"},
            "annotations": {"regops.dev/spec": n.spec}}}),
    );
    // A Deployment that rolls and a CronJob's Job that cannot be patched.
    objects.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": n.workload, "namespace": ns[2]},
        "spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "harbor.example.com/a/b:1"}]}}}}));
    objects.push(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": n.workload, "namespace": ns[2],
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                "name": n.cronjob, "uid": "u", "controller": true}]},
        "spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "harbor.example.com/a/b:1"}]}}}}));
    // Out of scope, owned: a deletion.
    objects.push(json!({"apiVersion": "v1", "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "pull", "namespace": ns[3],
            "labels": {"app.kubernetes.io/managed-by": "regops"},
            "annotations": {"regops.dev/spec": n.spec}},
        "data": {".dockerconfigjson": dockerconfig("x")}}));
    let mut sources = Sources::default();
    sources.add("spec.yaml".into(), SPEC.into(), SpecFormat::Yaml);
    let loaded = regops_spec::load(sources, "team").unwrap();
    let logins = BTreeMap::from([(
        "robot".to_string(),
        Login {
            username: "robot".into(),
            password: SecretString::from("pw".to_string()),
            email: None,
            source_digest: None,
            expires_at: None,
        },
    )]);
    let (observed, skipped) = Observed::from_objects(&objects);
    assert!(skipped.is_empty(), "{skipped:?}");
    let d = desired::compute(&loaded.spec, &logins, &observed, None);
    (observed, d)
}

fn applied(p: &Plan, n: &Names) -> Report {
    Report {
        results: p
            .changes
            .iter()
            .map(|c| ItemResult {
                action: c.action,
                kind: c.kind,
                namespace: c.namespace.clone(),
                name: c.name.clone(),
                outcome: Outcome::Failed,
                message: Some(format!("500 InternalError: {}", n.message)),
                uid: None,
            })
            .collect(),
    }
}

fn checked(n: &Names) -> Vec<Checked> {
    vec![Checked {
        registry: n.namespaces[0].clone(),
        server: n.namespaces[1].clone(),
        verdict: Verdict::BadCredentials(n.message.clone()),
        expires: Some((n.commit.clone(), 0)),
        notes: vec![n.manager.clone()],
    }]
}

fn saved_plan(p: &Plan, n: &Names) -> SavedPlan {
    let saved = SavedPlan {
        workload_kinds: Vec::new(),
        kind: saved::KIND.into(),
        format_version: saved::FORMAT_VERSION.into(),
        regops_version: n.manager.clone(),
        created: n.message.clone(),
        spec: SpecRecord {
            name: n.spec.clone(),
            files: vec!["regops.yaml".into()],
            from_repository: false,
            digest: n.username.clone(),
            ciphertexts: BTreeMap::new(),
            commit: Some(n.commit.clone()),
            dirty: false,
        },
        cluster: ClusterRecord {
            target: n.target.clone(),
            server: n.other_spec.clone(),
            kube_system_uid: n.secret_type.clone(),
        },
        namespaces: n.namespaces.clone(),
        objects: Vec::new(),
        plan: p.clone(),
        warnings: p.warnings.clone(),
        writes: Vec::new(),
    };
    // As `regops show FILE` reads it: from the file's bytes.
    saved::parse(&saved::to_bytes(&saved).unwrap()).unwrap()
}

fn fleet_members(p: &Plan, n: &Names) -> Vec<PerCluster<Plan>> {
    vec![
        PerCluster {
            cluster: n.namespaces[0].clone(),
            result: Ok(p.clone()),
        },
        PerCluster {
            cluster: n.namespaces[1].clone(),
            result: Err(ClusterFailure {
                message: n.message.clone(),
                // A help's line breaks are regops' own; what it quotes is escaped where it is
                // made (`ClusterFailure::help`).
                help: Some(format!(
                    "available contexts: {}\nsecond line of help",
                    regops_spec::untrusted::terminal(&n.manager)
                )),
            }),
        },
    ]
}

/// Every text view of a run.
fn texts(n: &Names) -> Vec<(&'static str, String)> {
    let p = plan_with(n);
    let drifted = drift::drift(&p);
    let style = Style::default();
    let saved = saved_plan(&p, n);
    let members = fleet_members(&p, n);
    let drift_members = vec![PerCluster {
        cluster: n.namespaces[2].clone(),
        result: Ok(fleet::Drifted {
            plan: p.clone(),
            drift: drifted.clone(),
        }),
    }];
    vec![
        ("plan", view::text(&p, false, view::Detail::Summary)),
        ("plan in colour", view::text(&p, true, view::Detail::Full)),
        ("drift", report::drift_text(&p, &drifted)),
        ("apply", report::apply_text(&applied(&p, n), false, 1)),
        ("validate", report::validate_text(&checked(n))),
        (
            "show",
            saved::SavedPlanView(&saved)
                .render(Format::Text, &style)
                .unwrap(),
        ),
        (
            "fleet plan",
            fleet::plan_text(&n.spec, &members, false, view::Detail::Summary),
        ),
        ("fleet drift", fleet::drift_text(&n.spec, &drift_members)),
        ("import", import_summary(n)),
    ]
}

/// Every Markdown view of a run.
fn markdowns(n: &Names) -> Vec<(&'static str, String)> {
    let p = plan_with(n);
    let style = Style::default();
    let saved = saved_plan(&p, n);
    vec![
        ("plan", view::markdown(&p, usize::MAX)),
        (
            "show",
            saved::SavedPlanView(&saved)
                .render(Format::Markdown, &style)
                .unwrap(),
        ),
        (
            "fleet plan",
            fleet::plan_markdown(&n.spec, &fleet_members(&p, n), usize::MAX),
        ),
    ]
}

/// A character that must never come from data into a text view.
fn forbidden(c: char) -> bool {
    c != '\n' && is_hidden(c)
}

/// The shape of a Markdown document, as GitHub would render it: how many of each block and
/// inline construct, and the HTML in it (which must be regops' own, the same as the benign
/// run's); with, separately, the text that stands outside code spans.
#[derive(Debug, Default, PartialEq, Eq)]
struct Shape {
    tags: BTreeMap<String, usize>,
    html: Vec<String>,
}

fn read_markdown(md: &str) -> (Shape, Vec<String>, Vec<String>) {
    let mut shape = Shape::default();
    let mut outside = Vec::new();
    let mut code = Vec::new();
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_GFM;
    for event in Parser::new_ext(md, options) {
        match event {
            Event::Start(tag) => {
                let name = match &tag {
                    Tag::Heading { level, .. } => format!("heading {level}"),
                    Tag::Link { .. } => "link".into(),
                    Tag::Image { .. } => "image".into(),
                    other => format!("{other:?}")
                        .split(['(', ' ', '{'])
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                };
                *shape.tags.entry(name).or_default() += 1;
            }
            Event::End(TagEnd::Link | TagEnd::Image) => {}
            Event::Html(h) | Event::InlineHtml(h) => {
                outside.push(h.to_string());
                shape.html.push(h.to_string());
            }
            Event::Text(t) => outside.push(t.to_string()),
            Event::Code(c) => code.push(c.to_string()),
            _ => {}
        }
    }
    shape.html.sort();
    (shape, outside, code)
}

fn check(n: &Names) -> Result<(), TestCaseError> {
    let benign = Names::benign();
    for ((view, text), (_, plain)) in texts(n).into_iter().zip(texts(&benign)) {
        // Colour is regops' own: take out its SGR sequences before looking.
        let shown = text.replace("\x1b[0m", "").replace("\x1b[", "SGR[");
        let bad: Vec<char> = shown.chars().filter(|c| forbidden(*c)).collect();
        prop_assert!(bad.is_empty(), "{view}: {bad:?} in\n{text}");
        prop_assert!(
            !text.contains("\x1b[2J") && !text.contains("\x1b]8"),
            "{view}: raw escape sequence"
        );
        prop_assert_eq!(
            text.lines().count(),
            plain.lines().count(),
            "{}: data added lines:\n{}",
            view,
            text
        );
        prop_assert!(text.contains(MARK), "{view}: the data is not shown at all");
    }
    for ((view, md), (_, plain)) in markdowns(n).into_iter().zip(markdowns(&benign)) {
        let (shape, outside, code) = read_markdown(&md);
        let (benign_shape, _, _) = read_markdown(&plain);
        prop_assert_eq!(
            &shape,
            &benign_shape,
            "{}: the data changed the comment's structure:\n{}",
            view,
            md
        );
        prop_assert!(!shape.tags.contains_key("link") && !shape.tags.contains_key("image"));
        for t in &outside {
            prop_assert!(
                !t.contains(MARK),
                "{view}: data outside a code span: {t:?}\n{md}"
            );
            prop_assert!(!t.contains("@octocat") && !t.contains("attacker.example"));
        }
        prop_assert!(
            code.iter().any(|c| c.contains(MARK)),
            "{view}: the data is not shown at all"
        );
        for c in &code {
            prop_assert!(!c.chars().any(forbidden), "{view}: control in code {c:?}");
        }
    }
    Ok(())
}

/// The YAML regops writes from data (`render`'s manifests, `import`'s spec): every string
/// quoted, hidden characters escaped, and read back the same.
fn check_yaml(n: &Names) -> Result<(), TestCaseError> {
    let mut sources = Sources::default();
    sources.add("spec.yaml".into(), SPEC.into(), SpecFormat::Yaml);
    let loaded = regops_spec::load(sources, "team").unwrap();
    let logins = BTreeMap::from([(
        "robot".to_string(),
        Login {
            username: n.username.clone(),
            password: SecretString::from("pw".to_string()),
            email: Some(n.manager.clone()),
            source_digest: None,
            expires_at: None,
        },
    )]);
    let objects = render::pull_secrets(&loaded.spec, &logins, Some(&n.namespaces));
    prop_assert_eq!(objects.len(), n.namespaces.len());
    let manifests = render::to_yaml(&objects, &n.spec, false).to_string();
    let (observed, _) = cluster_with(n);
    let im = import::infer(&observed, None, &n.spec, &[], true);
    let header = format!("Imported by `regops import` from {} on today.", n.target);
    let spec = import::render(&im, &header, &|_| import::Password::Redacted);
    for (what, yaml) in [("render", &manifests), ("import", &spec)] {
        let bad: Vec<char> = yaml.chars().filter(|c| forbidden(*c)).collect();
        prop_assert!(bad.is_empty(), "{what}: {bad:?} in\n{yaml}");
        let docs: Result<Vec<Value>, _> = serde_saphyr::from_multiple(yaml);
        prop_assert!(docs.is_ok(), "{what}: not YAML: {docs:?}\n{yaml}");
    }
    // The manifests name each hostile namespace, read back byte for byte.
    let docs: Vec<Value> = serde_saphyr::from_multiple(&manifests).unwrap();
    let mut back: Vec<&str> = docs
        .iter()
        .filter_map(|d| d["metadata"]["namespace"].as_str())
        .collect();
    back.sort_unstable();
    let mut want: Vec<&str> = n.namespaces.iter().map(String::as_str).collect();
    want.sort_unstable();
    prop_assert_eq!(back, want);
    // The spec import wrote is one document whose keys are the spec's and nothing else.
    let doc: Value = serde_saphyr::from_str(&spec).unwrap();
    let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    for k in keys {
        prop_assert!(
            [
                "apiVersion",
                "kind",
                "metadata",
                "recipients",
                "registries",
                "credentials",
                "scopes",
                "pullSecrets",
                "bindings"
            ]
            .contains(&k.as_str()),
            "import wrote a key of the data's: {k:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn hostile_strings_are_data_in_every_view(n in names_strategy()) {
        check(&n)?;
    }

    #[test]
    fn hostile_strings_are_quoted_in_the_yaml_regops_writes(n in names_strategy()) {
        check_yaml(&n)?;
    }
}

/// The benign run is what the hostile ones are held against: check it is itself sound.
#[test]
fn the_benign_run_has_every_kind_of_change() {
    let p = plan_with(&Names::benign());
    let verbs: Vec<String> = p
        .changes
        .iter()
        .map(|c| format!("{:?} {}", c.action, c.kind))
        .collect();
    for want in [
        "Update Secret",
        "Replace Secret",
        "Delete Secret",
        "Patch Deployment",
    ] {
        assert!(verbs.iter().any(|v| v == want), "{want} in {verbs:?}");
    }
    assert!(!p.conflicts.is_empty());
    assert!(p.warnings.len() >= 3, "{:?}", p.warnings);
}

/// JSON gives every hostile string back byte for byte.
#[test]
fn json_gives_hostile_strings_back_byte_for_byte() {
    let picks: Vec<Vec<usize>> = (0..14)
        .map(|i| (0..FRAGMENTS.len()).skip(i).step_by(7).collect())
        .collect();
    let n = Names {
        namespaces: (0..4).map(|i| hostile(i, &picks[i])).collect(),
        workload: hostile(4, &picks[4]),
        username: hostile(5, &picks[5]),
        manager: hostile(6, &picks[6]),
        commit: hostile(7, &picks[7]),
        other_spec: hostile(8, &picks[8]),
        secret_type: hostile(9, &picks[9]),
        cronjob: hostile(10, &picks[10]),
        spec: hostile(11, &picks[11]),
        target: hostile(12, &picks[12]),
        message: hostile(13, &picks[13]),
    };
    let p = plan_with(&n);
    let v: Value = serde_json::from_str(&view::json(&p)).unwrap();
    assert_eq!(v["spec"], n.spec.as_str());
    assert_eq!(v["target"], n.target.as_str());
    let namespaces: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["namespace"].as_str().unwrap())
        .collect();
    for ns in [&n.namespaces[0], &n.namespaces[2], &n.namespaces[3]] {
        assert!(
            namespaces.contains(&ns.as_str()),
            "{ns:?} in {namespaces:?}"
        );
    }
    let by: Vec<&Value> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["causes"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c.get("by").cloned())
        .flat_map(|b| b.as_array().cloned().unwrap_or_default())
        .collect::<Vec<_>>()
        .leak()
        .iter()
        .collect();
    assert!(by.iter().any(|b| b.as_str() == Some(n.manager.as_str())));
    let drift: Value = serde_json::from_str(&report::drift_json(&p, &drift::drift(&p))).unwrap();
    assert!(
        drift["drift"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["namespace"] == n.namespaces[0].as_str())
    );
}
