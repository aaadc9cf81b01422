//! The core invariants, over generated specs and cluster states (a few hundred of each, from a
//! seeded generator, so every run checks the same cases and a failure names its seed):
//!
//! 1. no `imagePullSecrets` entry someone else added is ever removed;
//! 2. no Secret regops does not own is changed or deleted (unless the spec adopts it);
//! 3. after the plan is applied, planning again gives no changes;
//! 4. the plan never references a Secret that is not there or created before it;
//! 5. no view of the plan (text, JSON, Markdown) contains a credential.
//!
//! "Applied" is a model of what apply writes (`apply_model` below), as the write strategies
//! in crates/regops/src/apply.rs and the README describe them; the end-to-end tests check the
//! real writes against the test server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use regops_core::desired::{self, Desired};
use regops_core::login::Login;
use regops_core::observed::Observed;
use regops_core::ownership::{self, KUBESPHERE_ANNOTATION};
use regops_core::plan::{self, Action, Plan, Source};
use regops_core::view;
use regops_spec::kind::ObjectKind;
use regops_spec::{Sources, SpecFormat};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

const SPEC: &str = "team";

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const NAMESPACES: [&str; 5] = ["web", "api", "jobs", "old", "kube-system"];
const REGISTRIES: [(&str, &str); 3] = [
    ("harbor", "harbor.example.com"),
    ("quay", "quay.io"),
    ("hub", "docker.io"),
];
const IMAGES: [&str; 6] = [
    "harbor.example.com/web/app:1",
    "quay.io/org/img:v1",
    "nginx:1.27",
    "docker.io/library/redis",
    "ghcr.io/other/x",
    "harbor.example.com/api/svc@sha256:00",
];
const PULL_SECRETS: [&str; 3] = ["harbor-pull", "quay-pull", "all-pull"];

/// A spec: each pull secret over a random set of registries and a scope; bindings to
/// ServiceAccounts and workloads, sometimes with the KubeSphere annotation.
fn gen_spec(rng: &mut Rng) -> String {
    let mut s = format!(
        "apiVersion: regops.dev/v1\nkind: RegistryConfig\nmetadata: {{ name: {SPEC} }}\nregistries:\n"
    );
    for (name, server) in REGISTRIES {
        s.push_str(&format!(
            "  {name}: {{ server: {server}, credential: c-{name} }}\n"
        ));
    }
    s.push_str("credentials:\n");
    for (name, _) in REGISTRIES {
        s.push_str(&format!(
            "  c-{name}: {{ username: u-{name}, password: {{ env: X }} }}\n"
        ));
    }
    s.push_str("scopes:\n  named: { namespaces: [web, api, old] }\n  labelled: { selector: { matchLabels: { team: a } } }\npullSecrets:\n");
    let n = 1 + rng.below(PULL_SECRETS.len());
    for ps in &PULL_SECRETS[..n] {
        let regs: Vec<&str> = REGISTRIES
            .iter()
            .map(|(r, _)| *r)
            .filter(|_| rng.chance(60))
            .collect();
        let regs = if regs.is_empty() {
            vec!["harbor"]
        } else {
            regs
        };
        let scope = if rng.chance(50) { "named" } else { "labelled" };
        let adopt = if rng.chance(15) { ", adopt: true" } else { "" };
        s.push_str(&format!(
            "  {ps}: {{ registries: [{}], scope: {scope}{adopt} }}\n",
            regs.join(", ")
        ));
    }
    s.push_str("bindings:\n");
    for ps in &PULL_SECRETS[..n] {
        if rng.chance(60) {
            s.push_str(&format!(
                "  - {{ pullSecret: {ps}, serviceAccounts: [default, builder] }}\n"
            ));
        }
        if rng.chance(70) {
            let ks = if rng.chance(50) {
                ", kubesphereAnnotation: true"
            } else {
                ""
            };
            s.push_str(&format!(
                "  - {{ pullSecret: {ps}, workloads: {{}}{ks} }}\n"
            ));
        }
    }
    if !s.ends_with("bindings:\n") {
        return s;
    }
    s.push_str(&format!(
        "  - {{ pullSecret: {}, serviceAccounts: [default] }}\n",
        PULL_SECRETS[0]
    ));
    s
}

fn names(rng: &mut Rng, pool: &[&str], percent: usize) -> Vec<String> {
    pool.iter()
        .filter(|_| rng.chance(percent))
        .map(|s| s.to_string())
        .collect()
}

/// A cluster: namespaces (some labelled, one terminating), Secrets of every ownership,
/// ServiceAccounts and workloads with entries others added and records this spec left.
fn gen_state(rng: &mut Rng, logins: &BTreeMap<String, Login>) -> Vec<Value> {
    let mut out = Vec::new();
    let foreign = ["legacy-pull", "team-pull", "harbor-pull", "quay-pull"];
    for ns in NAMESPACES {
        let mut meta = json!({"name": ns});
        if rng.chance(50) {
            meta["labels"] = json!({"team": "a"});
        }
        if ns == "old" && rng.chance(50) {
            meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        out.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta}));
        for ps in PULL_SECRETS {
            if !rng.chance(40) {
                continue;
            }
            let (labels, annotations) = match rng.below(4) {
                0 => (json!({}), json!({})),
                1 => (
                    json!({"app.kubernetes.io/managed-by": "regops"}),
                    json!({"regops.dev/spec": "other-spec"}),
                ),
                _ => (
                    json!({"app.kubernetes.io/managed-by": "regops"}),
                    json!({"regops.dev/spec": SPEC}),
                ),
            };
            let doc = if rng.chance(50) {
                // What regops would write for a login set, or a stale one.
                let servers: Vec<(&str, &Login)> = REGISTRIES
                    .iter()
                    .filter(|_| rng.chance(50))
                    .map(|(r, s)| (*s, &logins[&format!("c-{r}")]))
                    .collect();
                regops_core::dockerconfig::build(servers)
                    .expose_secret()
                    .to_string()
            } else {
                r#"{"auths":{}}"#.to_string()
            };
            let ty = if rng.chance(85) {
                "kubernetes.io/dockerconfigjson"
            } else {
                "Opaque"
            };
            out.push(json!({"apiVersion": "v1", "kind": "Secret", "type": ty,
                "immutable": rng.chance(10),
                "metadata": {"name": ps, "namespace": ns, "labels": labels, "annotations": annotations},
                "data": {".dockerconfigjson": STANDARD.encode(doc)}}));
        }
        for sa in ["default", "builder"] {
            if sa == "builder" && rng.chance(50) {
                continue;
            }
            let mut entries = names(rng, &foreign, 30);
            let recorded = names(rng, &PULL_SECRETS, 25);
            for r in &recorded {
                if rng.chance(70) && !entries.contains(r) {
                    entries.push(r.clone());
                }
            }
            let mut meta = json!({"name": sa, "namespace": ns});
            if let Some(v) = ownership::record_value(&recorded) {
                meta["annotations"] = json!({ ownership::added_key(SPEC): v });
            }
            let list: Vec<Value> = entries.iter().map(|e| json!({"name": e})).collect();
            out.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "imagePullSecrets": list}));
        }
        for (i, kind) in ["Deployment", "StatefulSet", "CronJob", "Job"]
            .iter()
            .enumerate()
        {
            if !rng.chance(60) {
                continue;
            }
            let containers: Vec<Value> = (0..1 + rng.below(3))
                .map(|c| json!({"name": format!("c{c}"), "image": rng.pick(&IMAGES)}))
                .collect();
            let mut entries = names(rng, &foreign, 30);
            let recorded = names(rng, &PULL_SECRETS, 20);
            for r in &recorded {
                if rng.chance(70) && !entries.contains(r) {
                    entries.push(r.clone());
                }
            }
            let mut meta = json!({"name": format!("w{i}"), "namespace": ns});
            if let Some(v) = ownership::record_value(&recorded) {
                meta["annotations"] = json!({ ownership::added_key(SPEC): v });
                meta["labels"] = json!({ ownership::added_key(SPEC): "true" });
            }
            let mut template = json!({"spec": {"containers": containers,
                "imagePullSecrets": entries.iter().map(|e| json!({"name": e})).collect::<Vec<_>>()}});
            if rng.chance(30) {
                template["metadata"] = json!({"annotations": {KUBESPHERE_ANNOTATION: r#"{"sidecar":"console-pull"}"#}});
            }
            let spec = if *kind == "CronJob" {
                json!({"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}})
            } else {
                json!({"template": template})
            };
            let api = if matches!(*kind, "CronJob" | "Job") {
                "batch/v1"
            } else {
                "apps/v1"
            };
            out.push(json!({"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}));
        }
    }
    out
}

fn logins() -> BTreeMap<String, Login> {
    REGISTRIES
        .iter()
        .map(|(r, _)| {
            (
                format!("c-{r}"),
                Login {
                    username: format!("u-{r}"),
                    password: SecretString::from(format!("SECRET-MARKER-{r}-9f8e")),
                    email: None,
                    source_digest: None,
                    expires_at: None,
                },
            )
        })
        .collect()
}

fn compute(spec: &regops_spec::Spec, observed: &Observed) -> (Desired, Plan) {
    let d = desired::compute(spec, &logins(), observed, None);
    let p = plan::compute(SPEC, "generated", Source::default(), &d, observed, None);
    (d, p)
}

fn key(o: &Value) -> (String, String, String) {
    (
        o["kind"].as_str().unwrap_or("").to_string(),
        o["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        o["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

fn template_mut(o: &mut Value) -> &mut Value {
    if o["kind"] == "CronJob" {
        &mut o["spec"]["jobTemplate"]["spec"]["template"]
    } else {
        &mut o["spec"]["template"]
    }
}

/// What apply writes, on the objects as JSON: Secrets as desired (replacements too; deletions
/// as with --prune), entries added and removed, the record annotation and marker label, and
/// the KubeSphere annotation on the pod template.
fn apply_model(objects: &mut Vec<Value>, plan: &Plan, desired: &Desired) {
    for c in &plan.changes {
        let at = objects
            .iter()
            .position(|o| key(o) == (c.kind.to_string(), c.namespace.clone(), c.name.clone()));
        match (c.action, c.kind.as_str()) {
            (Action::Noop, _) => {}
            (Action::Create | Action::Update | Action::Replace, "Secret") => {
                let d = desired
                    .secrets
                    .iter()
                    .find(|d| d.namespace == c.namespace && d.name == c.name)
                    .unwrap();
                let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": ownership::SECRET_TYPE,
                    "metadata": {"name": c.name, "namespace": c.namespace,
                        "labels": {ownership::MANAGED_BY_LABEL: ownership::MANAGED_BY_VALUE},
                        "annotations": {ownership::SPEC_ANNOTATION: SPEC}},
                    "data": {".dockerconfigjson": STANDARD.encode(d.dockerconfigjson.expose_secret())}});
                match at {
                    Some(i) => objects[i] = secret,
                    None => objects.push(secret),
                }
            }
            (Action::Delete, _) => {
                if let Some(i) = at {
                    objects.remove(i);
                }
            }
            (Action::Patch, kind) => {
                let o = &mut objects[at.unwrap()];
                let list: &mut Value = if kind == "ServiceAccount" {
                    &mut o["imagePullSecrets"]
                } else {
                    &mut template_mut(o)["spec"]["imagePullSecrets"]
                };
                let mut entries: Vec<String> = list
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|e| e["name"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                entries.retain(|e| !c.remove.contains(e));
                for a in &c.add {
                    if !entries.contains(a) {
                        entries.push(a.clone());
                    }
                }
                *list = entries.iter().map(|e| json!({"name": e})).collect();
                if let Some(record) = &c.record {
                    let k = ownership::added_key(SPEC);
                    match record {
                        Some(v) => {
                            o["metadata"]["annotations"][&k] = json!(v);
                            o["metadata"]["labels"][&k] = json!("true");
                        }
                        None => {
                            if let Some(m) = o["metadata"]["annotations"].as_object_mut() {
                                m.remove(&k);
                            }
                            if let Some(m) = o["metadata"]["labels"].as_object_mut() {
                                m.remove(&k);
                            }
                        }
                    }
                }
                if let Some(v) = &c.kubesphere_annotation {
                    let t = template_mut(o);
                    match v {
                        Some(v) => t["metadata"]["annotations"][KUBESPHERE_ANNOTATION] = json!(v),
                        None => {
                            if let Some(m) = t["metadata"]["annotations"].as_object_mut() {
                                m.remove(KUBESPHERE_ANNOTATION);
                            }
                        }
                    }
                }
            }
            (a, k) => panic!("unexpected {a:?} {k}"),
        }
    }
}

fn entries_of(o: &Value) -> Vec<String> {
    let list = if o["kind"] == "ServiceAccount" {
        &o["imagePullSecrets"]
    } else if o["kind"] == "CronJob" {
        &o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["imagePullSecrets"]
    } else {
        &o["spec"]["template"]["spec"]["imagePullSecrets"]
    };
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn check(seed: u64) {
    let mut rng = Rng(seed);
    let spec_text = gen_spec(&mut rng);
    let mut sources = Sources::default();
    sources.add("spec.yaml".into(), spec_text.clone(), SpecFormat::Yaml);
    let loaded = regops_spec::load(sources, SPEC)
        .unwrap_or_else(|e| panic!("seed {seed}: {:?}\n{spec_text}", e.diagnostics));
    let spec = &loaded.spec;
    let mut objects = gen_state(&mut rng, &logins());
    let (observed, skipped) = Observed::from_objects(&objects);
    assert!(skipped.is_empty(), "seed {seed}: {skipped:?}");
    let (desired, plan) = compute(spec, &observed);
    let ctx = || {
        format!(
            "seed {seed}\n{spec_text}\n{}",
            view::text(&plan, false, view::Detail::Full)
        )
    };
    let adopted: BTreeSet<&str> = spec
        .pull_secrets
        .values()
        .filter(|p| p.adopt)
        .map(|p| p.name.value.as_str())
        .collect();

    // 1. Only entries this spec recorded as added are removed.
    for c in plan.changes.iter().filter(|c| c.action == Action::Patch) {
        let o = objects
            .iter()
            .find(|o| key(o) == (c.kind.to_string(), c.namespace.clone(), c.name.clone()))
            .unwrap();
        let recorded = o["metadata"]["annotations"][ownership::added_key(SPEC)]
            .as_str()
            .unwrap_or("");
        for r in &c.remove {
            assert!(
                recorded.split(',').any(|x| x == r),
                "removed {r} from {}/{} that this spec never added: {}",
                c.namespace,
                c.name,
                ctx()
            );
        }
        assert_ne!(c.kind, ObjectKind::Job, "a Job was patched: {}", ctx());
    }
    // 1b. Every change says why, and only changes do: drift reads these causes.
    for c in &plan.changes {
        assert_eq!(
            c.causes.is_empty(),
            c.action == Action::Noop,
            "{:?} {} {}/{} with causes {:?}: {}",
            c.action,
            c.kind,
            c.namespace,
            c.name,
            c.causes,
            ctx()
        );
    }
    // 2. Secrets regops does not own are changed only when adopted, never deleted.
    for c in plan.changes.iter().filter(|c| c.kind == ObjectKind::Secret) {
        let Some(s) = observed
            .secrets
            .iter()
            .find(|s| s.namespace == c.namespace && s.name == c.name)
        else {
            assert_eq!(c.action, Action::Create, "{}", ctx());
            continue;
        };
        if matches!(c.action, Action::Update | Action::Replace | Action::Delete) {
            assert!(
                s.owned_by(SPEC)
                    || (adopted.contains(c.name.as_str()) && c.action != Action::Delete),
                "{:?} of {}/{} which regops does not own: {}",
                c.action,
                c.namespace,
                c.name,
                ctx()
            );
        }
    }
    // 4. Every reference added is to a Secret that exists or is written before it.
    for (i, c) in plan.changes.iter().enumerate() {
        for a in &c.add {
            let exists = observed
                .secrets
                .iter()
                .any(|s| s.namespace == c.namespace && &s.name == a);
            let written_before = plan.changes[..i].iter().any(|w| {
                w.kind == ObjectKind::Secret
                    && w.namespace == c.namespace
                    && &w.name == a
                    && matches!(
                        w.action,
                        Action::Create | Action::Update | Action::Replace | Action::Noop
                    )
            });
            assert!(
                exists || written_before,
                "{} {}/{} references {a}, neither there nor created first: {}",
                c.kind,
                c.namespace,
                c.name,
                ctx()
            );
            assert!(
                !plan
                    .conflicts
                    .iter()
                    .any(|x| x.namespace == c.namespace && &x.name == a),
                "a reference to a Secret in conflict: {}",
                ctx()
            );
        }
    }
    // 5. No credential in any view.
    for l in logins().values() {
        let pw = l.password.expose_secret();
        let b64 = STANDARD.encode(pw);
        for shown in [
            view::text(&plan, false, view::Detail::Full),
            view::json(&plan),
            view::markdown(&plan, view::MARKDOWN_BUDGET),
        ] {
            assert!(
                !shown.contains(pw) && !shown.contains(&b64),
                "{pw} leaked: {}",
                ctx()
            );
        }
    }
    // 3. Applied, the plan has nothing left to do; and entries others added are all still there.
    let before: BTreeMap<(String, String, String), Vec<String>> =
        objects.iter().map(|o| (key(o), entries_of(o))).collect();
    apply_model(&mut objects, &plan, &desired);
    for o in &objects {
        let Some(old) = before.get(&key(o)) else {
            continue;
        };
        let now = entries_of(o);
        let removed_by_plan = |e: &String| {
            plan.changes.iter().any(|c| {
                c.remove.contains(e)
                    && (c.kind.to_string(), c.namespace.clone(), c.name.clone()) == key(o)
            })
        };
        for e in old {
            assert!(
                now.contains(e) || removed_by_plan(e),
                "entry {e} of {:?} disappeared: {}",
                key(o),
                ctx()
            );
        }
    }
    let (observed2, _) = Observed::from_objects(&objects);
    let (_, again) = compute(spec, &observed2);
    let left: Vec<String> = again
        .changes
        .iter()
        .filter(|c| c.action != Action::Noop && c.action != Action::Delete)
        .map(|c| format!("{:?} {} {}/{}", c.action, c.kind, c.namespace, c.name))
        .collect();
    assert!(
        left.is_empty(),
        "after applying, the plan still has {left:?}: {}\nsecond plan:\n{}",
        ctx(),
        view::text(&again, false, view::Detail::Full)
    );
    assert_eq!(
        again.conflicts.len(),
        plan.conflicts.len(),
        "conflicts changed: {}",
        ctx()
    );
}

#[test]
fn invariants_hold_over_generated_specs_and_clusters() {
    for seed in 0..400 {
        check(seed);
    }
}
