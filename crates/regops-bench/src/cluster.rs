//! The benchmark's cluster: N namespaces in scope, each with its `default` ServiceAccount and
//! five Deployments of a realistic size, three of them pulling from the spec's registry.

use kube_test_server::{Config, TestServer};
use serde_json::{Value, json};

/// The label that puts a namespace in the benchmark spec's scope.
pub const SCOPE_LABEL: &str = "regops-bench";
/// The registry the spec's pull secret logs in to.
pub const REGISTRY: &str = "harbor.example.com";
/// The pull secret's name.
pub const PULL_SECRET: &str = "harbor-pull";
/// Deployments per namespace, and how many of them pull from `REGISTRY`.
pub const DEPLOYMENTS_PER_NAMESPACE: usize = 5;
pub const PULLING_PER_NAMESPACE: usize = 3;

pub fn namespace_name(i: usize) -> String {
    format!("bench-{i:05}")
}

/// A Deployment as a cluster holds it: labels, annotations, a probe, environment, resources.
pub fn deployment(ns: &str, i: usize) -> Value {
    let name = format!("app-{i}");
    let image = if i < PULLING_PER_NAMESPACE {
        format!("{REGISTRY}/team/{name}:1.4.{i}")
    } else {
        "nginx:1.27".to_string()
    };
    let env: Vec<Value> = (0..6)
        .map(|k| json!({"name": format!("SETTING_{k}"), "value": format!("value-{k}-of-{name}")}))
        .collect();
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": name, "namespace": ns,
            "labels": {"app": name, "tier": "backend", "team": "bench"},
            "annotations": {"deployment.kubernetes.io/revision": "1", "owner": "platform-team@example.com"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "backend"},
                             "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}},
                "spec": {
                    "containers": [{
                        "name": "app", "image": image,
                        "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090, "name": "metrics"}],
                        "env": env,
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 10},
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 20},
                    }],
                    "securityContext": {"runAsNonRoot": true},
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
    })
}

/// A test server holding `namespaces` namespaces in scope (and the four every cluster has).
pub fn seeded_server(namespaces: usize) -> Result<TestServer, String> {
    let server = TestServer::start(Config::default()).map_err(|e| e.to_string())?;
    for n in 0..namespaces {
        let ns = namespace_name(n);
        server
            .seed(json!({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": ns, "labels": {SCOPE_LABEL: "yes"}}}))
            .map_err(|e| format!("seeding {ns}: {}", e.message))?;
        for i in 0..DEPLOYMENTS_PER_NAMESPACE {
            server
                .seed(deployment(&ns, i))
                .map_err(|e| format!("seeding {ns}/app-{i}: {}", e.message))?;
        }
    }
    server.clear_log();
    Ok(server)
}

/// The spec the benchmark plans and applies: one pull secret in every namespace in scope,
/// bound to each `default` ServiceAccount and to every workload pulling from its registry.
/// The password comes from the environment, so no age decryption is timed.
pub fn spec() -> String {
    format!(
        "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata:
  name: bench
registries:
  harbor:
    server: {REGISTRY}
    credential: robot
credentials:
  robot:
    username: robot$bench
    password: {{ env: REGOPS_CRED_BENCH_PASSWORD }}
scopes:
  everyone:
    selector: {{ matchLabels: {{ {SCOPE_LABEL}: \"yes\" }} }}
pullSecrets:
  {PULL_SECRET}:
    registries: [harbor]
    scope: everyone
bindings:
  - pullSecret: {PULL_SECRET}
    serviceAccounts: [default]
  - pullSecret: {PULL_SECRET}
    workloads: {{}}
"
    )
}

/// The cluster as `kubectl get namespaces,serviceaccounts,deployments,secrets -A -o json`
/// writes it: one `List`, every item carrying its kind.
pub fn kubectl_list(server: &TestServer) -> Value {
    let mut items = Vec::new();
    for (plural, api_version, kind) in [
        ("namespaces", "v1", "Namespace"),
        ("serviceaccounts", "v1", "ServiceAccount"),
        ("deployments", "apps/v1", "Deployment"),
        ("secrets", "v1", "Secret"),
    ] {
        for mut o in server.objects(plural) {
            o["apiVersion"] = json!(api_version);
            o["kind"] = json!(kind);
            items.push(o);
        }
    }
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items})
}
