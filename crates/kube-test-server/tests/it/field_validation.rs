//! Server-side field validation as kubectl meets it: OpenAPI v3 discovery that tells kubectl
//! the server validates fields itself (so `kubectl apply` needs no `--validate=false` and no
//! OpenAPI v2), and the `fieldValidation` directives on create, update and patch. The kubectl
//! tests are `#[ignore = "needs kubectl …"]`: `.ci/run` installs it and runs them with
//! `--include-ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube_test_server::{Config, TestServer};
use serde_json::{Value, json};

struct Reply {
    status: u16,
    /// The response head, lower-cased (so the warnings are too).
    headers: String,
    body: Value,
}

/// One HTTP/1.1 request on a connection of its own.
fn send(server: &TestServer, method: &str, path: &str, ct: &str, body: Option<&Value>) -> Reply {
    let mut s = TcpStream::connect(server.addr()).unwrap();
    let payload = body.map(Value::to_string).unwrap_or_default();
    let auth = server
        .token()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Accept: application/json\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    Reply {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        headers: head.to_lowercase(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

fn get(server: &TestServer, path: &str) -> Reply {
    send(server, "GET", path, "application/json", None)
}

fn deployment(name: &str, extra_spec: Value) -> Value {
    let mut spec = json!({
        "replicas": 1,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}
    });
    for (k, v) in extra_spec.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": "default", "labels": {"free.example.com/key": "v"}},
           "spec": spec})
}

/// `/openapi/v3` lists every served group/version with a URL; each document has, for every
/// kind of that group/version, a path whose patch operation carries the kind's
/// `x-kubernetes-group-version-kind` and takes `fieldValidation` in the query: what
/// cli-runtime's `queryParamVerifierV3.HasSupport` looks for. `/openapi/v2` stays a 404.
#[test]
fn openapi_v3_discovery_says_every_kind_takes_field_validation() {
    let server = TestServer::start(Config::default()).unwrap();
    let root = get(&server, "/openapi/v3");
    assert_eq!(root.status, 200, "{}", root.body);
    assert!(root.headers.contains("content-type: application/json"));
    let paths = root.body["paths"].as_object().unwrap();
    let mut gvs: Vec<&str> = paths.keys().map(String::as_str).collect();
    gvs.sort_unstable();
    assert_eq!(
        gvs,
        [
            "api/v1",
            "apis/apps/v1",
            "apis/batch/v1",
            "apis/coordination.k8s.io/v1",
            "apis/events.k8s.io/v1",
            "apis/networking.k8s.io/v1",
            "apis/policy/v1",
            "apis/rbac.authorization.k8s.io/v1",
        ]
    );
    let wanted = [
        (
            "api/v1",
            "",
            "Secret",
            "/api/v1/namespaces/{namespace}/secrets/{name}",
        ),
        ("api/v1", "", "Namespace", "/api/v1/namespaces/{name}"),
        (
            "api/v1",
            "",
            "ConfigMap",
            "/api/v1/namespaces/{namespace}/configmaps/{name}",
        ),
        (
            "apis/apps/v1",
            "apps",
            "Deployment",
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
        ),
        (
            "apis/rbac.authorization.k8s.io/v1",
            "rbac.authorization.k8s.io",
            "ClusterRole",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}",
        ),
    ];
    for (gv, group, kind, path) in wanted {
        let url = paths[gv]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with(&format!("/openapi/v3/{gv}?hash=")), "{url}");
        let doc = get(&server, url);
        assert_eq!(doc.status, 200, "{url}: {}", doc.body);
        assert!(doc.headers.contains("content-type: application/json"));
        let patch = &doc.body["paths"][path]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": group, "version": "v1", "kind": kind}),
            "{path} in {}",
            doc.body
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"),
            "{patch}"
        );
    }
    assert_eq!(get(&server, "/openapi/v3/apis/apps/v2").status, 404);
    assert_eq!(get(&server, "/openapi/v2").status, 404);
}

/// `fieldValidation` on create, update and patch: Strict refuses unknown fields (400 on a
/// body, 422 on a patch, worded as kube-apiserver words them), Warn (also the default) keeps
/// the object without them and says so in `Warning` headers, Ignore drops them silently, and
/// any other value is refused. Free-form maps (labels) are never unknown.
#[test]
fn field_validation_directives_on_create_update_and_patch() {
    let server = TestServer::start(Config::default()).unwrap();
    let base = "/apis/apps/v1/namespaces/default/deployments";
    let bad = deployment("web", json!({"foo": 1, "bar": {"x": 1}}));

    let r = send(
        &server,
        "POST",
        &format!("{base}?fieldValidation=Strict"),
        "application/json",
        Some(&bad),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["reason"], "BadRequest");
    assert_eq!(
        r.body["message"],
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.bar\", unknown field \"spec.foo\""
    );
    assert!(server.object("deployments", "default", "web").is_none());

    let r = send(
        &server,
        "POST",
        &format!("{base}?fieldValidation=Bogus"),
        "application/json",
        Some(&bad),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains(
            "fieldValidation: Unsupported value: \"Bogus\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
        ),
        "{}",
        r.body
    );

    // No directive: Warn.
    let r = send(&server, "POST", base, "application/json", Some(&bad));
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        r.headers
            .contains("warning: 299 - \"unknown field \\\"spec.bar\\\"\""),
        "{}",
        r.headers
    );
    assert!(
        r.headers
            .contains("warning: 299 - \"unknown field \\\"spec.foo\\\"\""),
        "{}",
        r.headers
    );
    let stored = server.object("deployments", "default", "web").unwrap();
    assert!(
        stored["spec"].get("foo").is_none() && stored["spec"].get("bar").is_none(),
        "{stored}"
    );
    assert_eq!(stored["metadata"]["labels"]["free.example.com/key"], "v");

    let good = deployment("clean", json!({}));
    let r = send(
        &server,
        "POST",
        &format!("{base}?fieldValidation=Strict"),
        "application/json",
        Some(&good),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(!r.headers.contains("warning:"), "{}", r.headers);

    let r = send(
        &server,
        "POST",
        &format!("{base}?fieldValidation=Ignore"),
        "application/json",
        Some(&deployment("quiet", json!({"foo": 1}))),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(!r.headers.contains("warning:"), "{}", r.headers);
    assert!(
        server.object("deployments", "default", "quiet").unwrap()["spec"]
            .get("foo")
            .is_none()
    );

    // Update (PUT).
    let mut update = server.object("deployments", "default", "clean").unwrap();
    update["spec"]["template"]["spec"]["containers"][0]["imagePolicy"] = json!("x");
    let r = send(
        &server,
        "PUT",
        &format!("{base}/clean?fieldValidation=Strict"),
        "application/json",
        Some(&update),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().ends_with(
            "strict decoding error: unknown field \"spec.template.spec.containers[0].imagePolicy\""
        ),
        "{}",
        r.body
    );
    let r = send(
        &server,
        "PUT",
        &format!("{base}/clean?fieldValidation=Warn"),
        "application/json",
        Some(&update),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.headers
            .contains("unknown field \\\"spec.template.spec.containers[0].imagepolicy\\\""),
        "{}",
        r.headers
    );

    // Patches: the patched object is checked.
    let smp = json!({"spec": {"foo": 2}});
    let r = send(
        &server,
        "PATCH",
        &format!("{base}/clean?fieldValidation=Strict"),
        "application/strategic-merge-patch+json",
        Some(&smp),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        r.body["message"],
        " \"\" is invalid: patch: Invalid value: \"map[spec:map[foo:2]]\": strict decoding error: unknown field \"spec.foo\""
    );
    let r = send(
        &server,
        "PATCH",
        &format!("{base}/clean?fieldValidation=Warn"),
        "application/merge-patch+json",
        Some(&smp),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.headers
            .contains("warning: 299 - \"unknown field \\\"spec.foo\\\"\""),
        "{}",
        r.headers
    );
    let r = send(
        &server,
        "PATCH",
        &format!("{base}/clean?fieldValidation=Ignore"),
        "application/merge-patch+json",
        Some(&json!({"spec": {"replicas": 3, "foo": 3}})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.headers.contains("warning:"), "{}", r.headers);
    let stored = server.object("deployments", "default", "clean").unwrap();
    assert_eq!(stored["spec"]["replicas"], 3);
    assert!(stored["spec"].get("foo").is_none(), "{stored}");
    let r = send(
        &server,
        "PATCH",
        &format!("{base}/clean?fieldValidation=strict"),
        "application/merge-patch+json",
        Some(&smp),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("PatchOptions"),
        "{}",
        r.body
    );
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server binary over TLS with a bearer token, its kubeconfig in a new directory (which
/// also holds kubectl's cache, so no run sees another's).
fn start_server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_kube-test-server"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while !std::fs::read_to_string(&kubeconfig)
        .is_ok_and(|t| t.contains("users:") && t.ends_with('\n'))
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the server did not write its kubeconfig"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, dir)
}

/// kubectl with `args` and `stdin`: whether it succeeded, its stdout, its stderr.
fn kubectl(dir: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const INSTALL: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: runner
  namespace: demo
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: demo
type: Opaque
stringData:
  token: abc
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: spec
  namespace: demo
data:
  regops.yaml: "registries: []"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels:
    app: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      serviceAccountName: runner
      containers:
      - name: web
        image: nginx:1.27
        env:
        - name: TOKEN
          valueFrom:
            secretKeyRef:
              name: creds
              key: token
"#;

/// A Deployment with a field Deployments do not have (`spec.foo`).
fn unknown_field_deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  foo: 1\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.27\n"
    )
}

/// `kubectl apply -f` with kubectl's default validation (strict) installs a Namespace,
/// ServiceAccount, Secret, ConfigMap and Deployment, and applies them again unchanged: no
/// `--validate=false`, no OpenAPI v2 (before OpenAPI v3 discovery it failed with "failed to
/// download openapi").
#[test]
#[ignore = "needs kubectl (Debian: kubernetes-client)"]
fn kubectl_apply_validates_on_the_server_without_validate_false() {
    common::require_kubectl();
    let (_server, dir) = start_server();
    for round in 0..2 {
        let (ok, out, err) = kubectl(dir.path(), &["apply", "-f", "-"], INSTALL);
        assert!(ok, "round {round}: {out}{err}");
        assert!(!err.contains("openapi"), "round {round}: {err}");
        for what in [
            "namespace/demo",
            "serviceaccount/runner",
            "secret/creds",
            "configmap/spec",
            "deployment.apps/web",
        ] {
            assert!(out.contains(what), "round {round}: {out}");
        }
    }
    let (ok, out, err) = kubectl(
        dir.path(),
        &[
            "get",
            "deployment",
            "web",
            "-n",
            "demo",
            "-o",
            "jsonpath={.spec.template.spec.serviceAccountName}",
        ],
        "",
    );
    assert!(ok && out == "runner", "{out}{err}");
}

/// `kubectl apply` (strict by default, and with `--validate=strict`) of a Deployment with
/// `spec.foo` fails with the server's strict decoding error naming the field, and creates
/// nothing.
#[test]
#[ignore = "needs kubectl (Debian: kubernetes-client)"]
fn kubectl_apply_refuses_an_unknown_field_under_strict_validation() {
    common::require_kubectl();
    let (_server, dir) = start_server();
    for args in [
        &["apply", "-f", "-"][..],
        &["apply", "--validate=strict", "-f", "-"][..],
    ] {
        let (ok, out, err) = kubectl(dir.path(), args, &unknown_field_deployment("strict"));
        assert!(!ok, "{args:?}: {out}{err}");
        assert!(
            err.contains("Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.foo\""),
            "{args:?}: {err}"
        );
        assert!(!err.contains("failed to download openapi"), "{err}");
    }
    let (ok, _, err) = kubectl(dir.path(), &["get", "deployment", "strict"], "");
    assert!(!ok && err.contains("NotFound"), "{err}");
}

/// `--validate=warn`: the Deployment is created without `spec.foo` and kubectl prints the
/// server's warning; `--validate=false` (the Ignore directive): created, and nothing said.
#[test]
#[ignore = "needs kubectl (Debian: kubernetes-client)"]
fn kubectl_apply_warns_of_or_ignores_an_unknown_field_as_asked() {
    common::require_kubectl();
    let (_server, dir) = start_server();
    let (ok, out, err) = kubectl(
        dir.path(),
        &["apply", "--validate=warn", "-f", "-"],
        &unknown_field_deployment("warned"),
    );
    assert!(
        ok && out.contains("deployment.apps/warned created"),
        "{out}{err}"
    );
    assert!(err.contains("Warning: unknown field \"spec.foo\""), "{err}");

    let (ok, out, err) = kubectl(
        dir.path(),
        &["apply", "--validate=false", "-f", "-"],
        &unknown_field_deployment("ignored"),
    );
    assert!(
        ok && out.contains("deployment.apps/ignored created"),
        "{out}{err}"
    );
    assert!(
        !err.contains("unknown field") && !err.to_lowercase().contains("warning"),
        "{err}"
    );

    for name in ["warned", "ignored"] {
        let (ok, out, err) = kubectl(dir.path(), &["get", "deployment", name, "-o", "json"], "");
        assert!(ok, "{err}");
        let d: Value = serde_json::from_str(&out).unwrap();
        assert!(d["spec"].get("foo").is_none(), "{out}");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.27"
        );
    }
}
