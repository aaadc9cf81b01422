//! The node-trust ConfigMap (`nodeTrust:`) in the plan: created, then unchanged once applied;
//! an edit told from a spec change; one regops does not own is a conflict, never written; and
//! each host the operator's allowlist does not name is warned of, in every view.

use std::collections::BTreeMap;

use regops_core::desired::NodeTrustMap;
use regops_core::node_trust::{self, Request};
use regops_core::observed::{ConfigMap, Labels, Observed};
use regops_core::plan::{Action, Origin, Plan, Source};
use regops_core::warning::WarningKind;
use regops_core::{desired, plan, request, view};
use regops_spec::{Sources, SpecFormat};
use serde_json::Value;

/// The self-signed CA of the node-trust unit tests.
const CA: &str = include_str!("../../src/node_trust/test-ca.pem");

const SPEC: &str = r#"
apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: team }
registries:
  harbor-http: { server: 192.168.0.99, credential: robot, insecure: true }
  harbor: { server: "harbor.example.com:8443", credential: robot, caFile: ca.pem }
credentials:
  robot: { username: robot, password: { env: X } }
nodeTrust: {}
"#;

/// The seeds' two cases: Harbor over plain HTTP on an address, and HTTPS with a private CA.
fn node_trust_map() -> NodeTrustMap {
    let mut sources = Sources::default();
    sources.add("spec.yaml".into(), SPEC.into(), SpecFormat::Yaml);
    let loaded = regops_spec::load(sources, "team").unwrap();
    let target = loaded.spec.node_trust.as_ref().unwrap();
    let hosts = node_trust::hosts(&[
        Request {
            registry: "harbor-http".into(),
            server: "192.168.0.99".into(),
            plain_http: true,
            ca: None,
        },
        Request {
            registry: "harbor".into(),
            server: "harbor.example.com:8443".into(),
            plain_http: false,
            ca: Some(CA.as_bytes().to_vec()),
        },
    ])
    .unwrap();
    NodeTrustMap::new(target, &hosts)
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What the cluster holds after regops applied `d`: the applied body read back.
fn as_applied(d: &NodeTrustMap, spec: &str) -> ConfigMap {
    let body = request::config_map_apply(spec, d, None);
    let map = |v: &Value| -> Labels {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect()
    };
    ConfigMap {
        namespace: body["metadata"]["namespace"].as_str().unwrap().into(),
        name: body["metadata"]["name"].as_str().unwrap().into(),
        labels: map(&body["metadata"]["labels"]),
        annotations: map(&body["metadata"]["annotations"]),
        data: serde_json::from_value(body["data"].clone()).unwrap(),
        resource_version: Some("1".into()),
    }
}

fn allow_list(value: &str) -> ConfigMap {
    ConfigMap {
        namespace: "regops-node-trust".into(),
        name: "regops-node-trust-allow".into(),
        data: BTreeMap::from([("allow-hosts".to_string(), value.to_string())]),
        ..ConfigMap::default()
    }
}

fn plan_with(config_maps: Vec<ConfigMap>) -> Plan {
    let observed = Observed {
        config_maps,
        ..Observed::default()
    };
    let mut d = desired::compute(
        &regops_spec::Spec::default(),
        &BTreeMap::new(),
        &observed,
        None,
    );
    d.node_trust = Some(node_trust_map());
    plan::compute("team", "state", Source::default(), &d, &observed, None)
}

fn refused(p: &Plan) -> Vec<String> {
    p.warnings
        .iter()
        .filter(|w| w.kind == WarningKind::NodeTrustRefused)
        .map(|w| w.subject.clone())
        .collect()
}

#[test]
fn the_spec_names_the_config_map_and_defaults_to_the_components() {
    let d = node_trust_map();
    assert_eq!(
        (d.namespace.as_str(), d.name.as_str(), d.allow_list.as_str()),
        (
            "regops-node-trust",
            "regops-node-trust",
            "regops-node-trust-allow"
        )
    );
    assert_eq!(
        d.data.keys().collect::<Vec<_>>(),
        [
            "containerd.yaml",
            "crio.yaml",
            "docker.yaml",
            "k3s.yaml",
            "rke2.yaml"
        ]
    );
    // What node-sync reads is exactly what `render --node-config containerd` prints, and
    // node-sync takes it back whole.
    let stream = &d.data[node_trust::STREAM_KEY];
    let docs: Vec<node_trust::StreamDoc> = serde_saphyr::from_multiple(stream).unwrap();
    let back = node_trust::from_stream(&docs).unwrap();
    assert_eq!(
        back.iter().map(|t| t.host.as_str()).collect::<Vec<_>>(),
        ["192.168.0.99", "harbor.example.com:8443"]
    );
    // CA certificates only: no private key, nothing but PEM certificates and configuration.
    for v in d.data.values() {
        assert!(!v.contains("PRIVATE KEY"), "{v}");
    }
}

#[test]
fn the_config_map_is_created_then_unchanged_once_applied() {
    let p = plan_with(vec![allow_list("192.168.0.99,harbor.example.com:8443")]);
    let c = p
        .changes
        .iter()
        .find(|c| c.kind == regops_spec::ObjectKind::ConfigMap)
        .unwrap();
    assert_eq!(c.action, Action::Create);
    assert_eq!(
        (c.namespace.as_str(), c.name.as_str()),
        ("regops-node-trust", "regops-node-trust")
    );
    assert_eq!(p.summary.create, 1);
    assert!(refused(&p).is_empty(), "{:?}", p.warnings);

    let applied = as_applied(&node_trust_map(), "team");
    let again = plan_with(vec![
        applied,
        allow_list("192.168.0.99,harbor.example.com:8443"),
    ]);
    assert!(!again.has_changes(), "{}", view::json(&again));
    assert_eq!(again.summary.noop, 1);
}

#[test]
fn an_edit_in_the_cluster_is_told_from_a_spec_change() {
    let d = node_trust_map();
    // Someone edited the stream in the cluster: the recorded digest is still the spec's.
    let mut edited = as_applied(&d, "team");
    edited
        .data
        .insert("containerd.yaml".into(), "---\npath: x\n".into());
    let p = plan_with(vec![edited]);
    let c = &p.changes[0];
    assert_eq!(c.action, Action::Update);
    assert_eq!(c.cause, Some(Origin::ChangedInCluster));
    assert_eq!(
        c.fields
            .iter()
            .map(|f| f.field.as_str())
            .collect::<Vec<_>>(),
        ["data[containerd.yaml]"]
    );
    // The spec moved on (an older apply's data and record): the spec changes it.
    let mut older = d.clone();
    older.data.insert("containerd.yaml".into(), String::new());
    let p = plan_with(vec![as_applied(&older, "team")]);
    assert_eq!(p.changes[0].action, Action::Update);
    assert_eq!(p.changes[0].cause, Some(Origin::SpecChanged));
    assert_eq!(p.changes[0].fields[0].before.as_deref(), Some("(empty)"));
}

#[test]
fn a_config_map_regops_does_not_own_is_a_conflict_never_written() {
    // The attacker's spec names an existing ConfigMap of someone else's.
    let theirs = ConfigMap {
        namespace: "regops-node-trust".into(),
        name: "regops-node-trust".into(),
        data: BTreeMap::from([("containerd.yaml".to_string(), "theirs".to_string())]),
        ..ConfigMap::default()
    };
    let p = plan_with(vec![theirs.clone()]);
    assert!(
        !p.changes
            .iter()
            .any(|c| c.kind == regops_spec::ObjectKind::ConfigMap),
        "{}",
        view::json(&p)
    );
    assert_eq!(p.conflicts.len(), 1);
    assert!(p.conflicts[0].message.raw().contains("is not regops'"));
    // Another spec's: also left alone, and said whose.
    let other = ConfigMap {
        labels: labels(&[("app.kubernetes.io/managed-by", "regops")]),
        annotations: labels(&[("regops.dev/spec", "platform")]),
        ..theirs
    };
    let p = plan_with(vec![other]);
    assert_eq!(p.conflicts.len(), 1);
    assert!(p.conflicts[0].message.raw().contains("`platform`"));
    assert_eq!(p.summary.conflicts, 1);
}

#[test]
fn plan_warns_of_each_host_node_sync_will_refuse() {
    // docker.io is not asked for here; one of the two hosts is allowed.
    let p = plan_with(vec![allow_list("192.168.0.99")]);
    assert_eq!(refused(&p), ["host harbor.example.com:8443"]);
    // No allowlist: node-sync writes nothing, so both are refused.
    let p = plan_with(Vec::new());
    assert_eq!(
        refused(&p),
        ["host 192.168.0.99", "host harbor.example.com:8443"]
    );
    assert!(p.warnings[0].message.raw().contains("does not exist"));
    // An allowlist node-sync cannot read (a space after the comma) refuses them all too.
    let p = plan_with(vec![allow_list("192.168.0.99, harbor.example.com:8443")]);
    assert_eq!(refused(&p).len(), 2);
    assert!(p.warnings[0].message.raw().contains("cannot be read"));
}

#[test]
fn node_trust_in_every_view() {
    let mut older = node_trust_map();
    older.data.insert("containerd.yaml".into(), String::new());
    let update = plan_with(vec![as_applied(&older, "team"), allow_list("192.168.0.99")]);
    let create = plan_with(vec![allow_list("192.168.0.99")]);
    insta::assert_snapshot!(
        "node_trust_text",
        format!(
            "{}\n=====\n{}",
            view::text(&create, false, view::Detail::Full),
            view::text(&update, false, view::Detail::Full)
        )
    );
    insta::assert_snapshot!("node_trust_markdown", view::markdown(&update, 60_000));
    let json: Value = serde_json::from_str(&view::json(&update)).unwrap();
    insta::assert_snapshot!(
        "node_trust_json",
        serde_json::to_string_pretty(&json).unwrap()
    );
}

#[test]
fn workloads_are_warned_of_only_for_hosts_regops_does_not_keep() {
    let mut sources = Sources::default();
    sources.add("spec.yaml".into(), SPEC.into(), SpecFormat::Yaml);
    let loaded = regops_spec::load(sources, "team").unwrap();
    let deployment = |name: &str, image: &str| {
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
    };
    let (mut observed, skipped) = Observed::from_objects(&[
        deployment("plain", "192.168.0.99/app:1"),
        deployment("ca", "harbor.example.com:8443/app:1"),
    ]);
    assert!(skipped.is_empty());
    observed.config_maps.push(allow_list("192.168.0.99"));
    let node_warned = |keep: bool| {
        let mut d = desired::compute(&loaded.spec, &BTreeMap::new(), &observed, None);
        if keep {
            d.node_trust = Some(node_trust_map());
        }
        let p = plan::compute("team", "state", Source::default(), &d, &observed, None);
        p.warnings
            .iter()
            .filter(|w| w.kind == WarningKind::NodeTrust)
            .map(|w| w.subject.clone())
            .collect::<Vec<_>>()
    };
    // Without nodeTrust, both registries are warned of.
    assert_eq!(
        node_warned(false),
        ["registry harbor", "registry harbor-http"]
    );
    // With it, the allowed host is kept on the nodes; the refused one still is warned of.
    assert_eq!(node_warned(true), ["registry harbor"]);
}
