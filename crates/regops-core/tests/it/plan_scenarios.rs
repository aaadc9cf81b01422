//! The pure plan, scenario by scenario: `tests/scenarios/<name>/spec.yaml` and `state.yaml` in,
//! the text view out (an insta snapshot). Logins are fixed: every credential's password is
//! `pw-<credential>`. In state files, `{{dockerconfig:<pull secret>}}` stands for the base64 of
//! exactly what regops would write, and `{{dockerconfig-drifted:<pull secret>}}` for the same
//! logins with every password changed by hand.
//!
//! A credential read from a secret manager is recorded as regops records it
//! ([`regops_core::ownership::value_record`] of its value, with the credential's name as the
//! reference); `{{value-record:<credential>}}` stands for the record of the value the drifted
//! Secrets hold (what was applied before the value was rotated at its source), and
//! `{{value-record-elsewhere:<credential>}}` for that value's record as another secret's.
//!
//! The first line of spec.yaml may set options: `# plan: only=a,b commit=abc123`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use regops_core::login::Login;
use regops_core::observed::Observed;
use regops_core::plan::Source;
use regops_core::{desired, dockerconfig, plan, view};
use regops_spec::{Sources, SpecFormat};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

fn logins(spec: &regops_spec::Spec, suffix: &str) -> BTreeMap<String, Login> {
    spec.credentials
        .values()
        .map(|c| {
            (
                c.name.value.clone(),
                Login {
                    username: c
                        .username
                        .as_ref()
                        .map(|u| u.value.clone())
                        .unwrap_or_default(),
                    password: SecretString::from(format!("pw-{}{suffix}", c.name.value)),
                    email: None,
                    source_digest: Some(if regops_spec::trust::secret_of(&c.password).is_some() {
                        regops_core::ownership::value_record(
                            &c.name.value,
                            format!("pw-{}{suffix}", c.name.value).as_bytes(),
                        )
                    } else {
                        format!("age:{:0>8}", c.name.value.len())
                    }),
                    expires_at: None,
                },
            )
        })
        .collect()
}

fn dockerconfig_b64(spec: &regops_spec::Spec, pull_secret: &str, suffix: &str) -> String {
    let logins = logins(spec, suffix);
    let ps = &spec.pull_secrets[pull_secret];
    let pairs: Vec<(&str, &Login)> = ps
        .registries
        .iter()
        .map(|r| &spec.registries[r.as_str()])
        .map(|r| (r.server.as_str(), &logins[r.credential.as_str()]))
        .collect();
    STANDARD.encode(dockerconfig::build(pairs).expose_secret())
}

/// A scenario's plan, and the logins it was planned with.
fn scenario_plan(dir: &std::path::Path) -> (plan::Plan, BTreeMap<String, Login>) {
    let spec_text = std::fs::read_to_string(dir.join("spec.yaml")).unwrap();
    let mut sources = Sources::default();
    sources.add("spec.yaml".into(), spec_text.clone(), SpecFormat::Yaml);
    let loaded = regops_spec::load(sources, "scenario")
        .unwrap_or_else(|e| panic!("{}: {:?}", dir.display(), e.diagnostics));
    let spec = &loaded.spec;
    let mut only: Option<BTreeSet<String>> = None;
    let mut commit: Option<String> = None;
    if let Some(opts) = spec_text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# plan: "))
    {
        for opt in opts.split_whitespace() {
            match opt.split_once('=') {
                Some(("only", v)) => only = Some(v.split(',').map(str::to_string).collect()),
                Some(("commit", v)) => commit = Some(v.to_string()),
                _ => panic!("unknown option {opt}"),
            }
        }
    }
    let mut state = std::fs::read_to_string(dir.join("state.yaml")).unwrap();
    for ps in spec.pull_secrets.keys() {
        state = state.replace(
            &format!("{{{{dockerconfig:{ps}}}}}"),
            &dockerconfig_b64(spec, ps, ""),
        );
        state = state.replace(
            &format!("{{{{dockerconfig-drifted:{ps}}}}}"),
            &dockerconfig_b64(spec, ps, "-changed-by-hand"),
        );
    }
    for name in spec.credentials.keys() {
        let old = format!("pw-{name}-changed-by-hand");
        state = state.replace(
            &format!("{{{{value-record:{name}}}}}"),
            &regops_core::ownership::value_record(name, old.as_bytes()),
        );
        state = state.replace(
            &format!("{{{{value-record-elsewhere:{name}}}}}"),
            &regops_core::ownership::value_record(&format!("{name}-elsewhere"), old.as_bytes()),
        );
    }
    let objects: Vec<Value> = serde_saphyr::from_multiple(&state).unwrap();
    let (observed, skipped) = Observed::from_objects(&objects);
    assert!(skipped.is_empty(), "{skipped:?}");
    let logins = logins(spec, "");
    let d = desired::compute(spec, &logins, &observed, only.as_ref());
    let p = plan::compute(
        &loaded.name,
        "state.yaml",
        Source {
            commit,
            dirty: false,
        },
        &d,
        &observed,
        only.as_ref(),
    );
    (p, logins)
}

fn run_scenario(dir: &std::path::Path) -> String {
    let (p, logins) = scenario_plan(dir);
    let text = view::text(&p, false, view::Detail::Summary);
    // No password ever appears in a view.
    for l in logins.values() {
        let pw = l.password.expose_secret();
        assert!(
            !text.contains(pw)
                && !view::json(&p).contains(pw)
                && !view::markdown(&p, view::MARKDOWN_BUDGET).contains(pw),
            "{pw} leaked"
        );
    }
    // The JSON view is what the committed schema says (fields left out when empty included).
    let schema: serde_json::Value = serde_json::from_str(&view::json_schema()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&view::json(&p)).unwrap();
    let invalid: Vec<String> = schema_check::validator_for(&schema)
        .unwrap()
        .iter_errors(&json)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(invalid.is_empty(), "{}: {invalid:?}", dir.display());
    let lines: Vec<String> = p
        .changes
        .iter()
        .map(|c| {
            let causes: Vec<String> = c
                .causes
                .iter()
                .map(|k| serde_json::to_string(k).unwrap())
                .collect();
            format!(
                "{:?} {} {}/{} +{:?} -{:?} causes: [{}]{}",
                c.action,
                c.kind,
                c.namespace,
                c.name,
                c.add,
                c.remove,
                causes.join(", "),
                c.cause
                    .map_or(String::new(), |o| format!(" cause: {}", o.name()))
            )
        })
        .collect();
    // Drift reads the causes: what `regops drift` would report against this state.
    let drifted: Vec<String> = regops_core::drift::drift(&p)
        .iter()
        .map(|d| {
            format!(
                "{} {} {}/{}: {}",
                serde_json::to_value(d.how).unwrap().as_str().unwrap(),
                d.kind,
                d.namespace,
                d.name,
                d.detail.terminal()
            )
        })
        .collect();
    format!(
        "{text}\n----- changes (apply order) -----\n{}\n----- drift -----\n{}\n",
        lines.join("\n"),
        if drifted.is_empty() {
            "(in sync)".to_string()
        } else {
            drifted.join("\n")
        }
    )
}

/// The scenarios' folder.
fn scenarios() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/scenarios")
}

#[test]
fn plan_scenarios() {
    crate::each_entry(&scenarios(), |dir| {
        insta::assert_snapshot!(run_scenario(dir));
    });
}

/// What apply sends for each change of each scenario's plan (the writes, as a saved plan
/// keeps them), in apply order: decided by planning, so apply recomputes nothing. No write
/// holds a Secret's data.
#[test]
fn plan_writes() {
    crate::each_entry(&scenarios(), |dir| {
        let (p, logins) = scenario_plan(dir);
        let lines: Vec<String> = p
            .changes
            .iter()
            .filter_map(|c| {
                let w = c.write.as_ref()?;
                Some(format!(
                    "{:?} {} {}/{}: {}",
                    c.action,
                    c.kind,
                    c.namespace,
                    c.name,
                    serde_json::to_string(w).unwrap()
                ))
            })
            .collect();
        // Every change that writes carries its write; a no-op carries none.
        for c in &p.changes {
            assert_eq!(
                c.write.is_some(),
                c.action != plan::Action::Noop,
                "{}: {c:?}",
                dir.display()
            );
        }
        let text = if lines.is_empty() {
            "(nothing to write)".to_string()
        } else {
            lines.join("\n")
        };
        for l in logins.values() {
            assert!(
                !text.contains(l.password.expose_secret()),
                "a password leaked"
            );
        }
        insta::assert_snapshot!("writes", text);
    });
}

#[test]
fn there_are_at_least_25_scenarios() {
    let n = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/scenarios"),
    )
    .unwrap()
    .count();
    assert!(n >= 25, "{n} scenarios");
}

#[test]
fn committed_plan_schema_is_generated_schema() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/plan.schema.json");
    let committed = std::fs::read_to_string(path).unwrap();
    assert!(
        committed == view::json_schema(),
        "schemas/plan.schema.json is stale: run `cargo run -q -- schema plan > schemas/plan.schema.json`"
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas/fleet-plan.schema.json");
    assert!(
        std::fs::read_to_string(path).unwrap() == regops_core::fleet::plan_json_schema(),
        "schemas/fleet-plan.schema.json is stale: run `cargo run -q -- schema fleet-plan > schemas/fleet-plan.schema.json`"
    );
}
