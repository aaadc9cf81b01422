//! One test per semantic the server promises, through real HTTP requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube_test_server::{Config, Fault, FaultAction, Policy, Rule, TestServer};
use serde_json::{Value, json};

struct Reply {
    status: u16,
    headers: String,
    body: Value,
}

/// A minimal HTTP/1.1 client: one request per connection.
fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<&Value>,
) -> Result<Reply, std::io::Error> {
    let mut s = TcpStream::connect(server.addr())?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = server
        .token()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: api-test/1.0\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no response"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(Reply {
        status,
        headers: head.to_lowercase(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    })
}

/// Like `send`, with a raw (non-JSON) body.
fn send_raw(
    server: &TestServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> Reply {
    let mut s = TcpStream::connect(server.addr()).unwrap();
    let auth = server
        .token()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    Reply {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        headers: head.to_lowercase(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

fn req(server: &TestServer, method: &str, path: &str, body: Option<&Value>) -> Reply {
    send(server, method, path, "application/json", body).unwrap()
}

fn patch(server: &TestServer, path: &str, ct: &str, body: &Value) -> Reply {
    send(server, "PATCH", path, ct, Some(body)).unwrap()
}

/// Walks a paged LIST (`path` with its query) by its continue tokens: every item's name, and
/// how many pages; `check` sees each page's list metadata.
fn every_page(
    server: &TestServer,
    path: &str,
    mut check: impl FnMut(&Value),
) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = req(server, "GET", &format!("{path}&continue={token}"), None).body;
        pages += 1;
        check(&r["metadata"]);
        names.extend(
            r["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match r["metadata"]["continue"].as_str() {
            Some(t) => token = t.to_string(),
            None => return (names, pages),
        }
    }
}

fn start() -> TestServer {
    TestServer::start(Config::default()).unwrap()
}

fn ns(server: &TestServer, name: &str, labels: Value) {
    let r = req(
        server,
        "POST",
        "/api/v1/namespaces",
        Some(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

fn docker_secret(name: &str) -> Value {
    let cfg = STANDARD
        .encode(r#"{"auths":{"r.example.com":{"username":"u","password":"p","auth":"dTpw"}}}"#);
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "regops"}},
           "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": cfg}})
}

fn deployment(name: &str, pull: &[&str]) -> Value {
    let list: Vec<Value> = pull.iter().map(|n| json!({"name": n})).collect();
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
           "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}},
           "spec": {"containers": [{"name": "app", "image": "harbor.example.com/web/app:1"}], "imagePullSecrets": list}}}})
}

/// A valid workload of any kind: the fields the API server requires, and no more.
fn workload(api_version: &str, kind: &str, name: &str) -> Value {
    let pod = json!({"metadata": {"labels": {"app": name}},
                     "spec": {"restartPolicy": if api_version == "batch/v1" { "Never" } else { "Always" },
                              "containers": [{"name": "app", "image": "harbor.example.com/web/app:1"}]}});
    let spec = match kind {
        "CronJob" => json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": pod}}}),
        "Job" => json!({"template": pod}),
        _ => json!({"selector": {"matchLabels": {"app": name}}, "template": pod}),
    };
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, "spec": spec})
}

#[test]
fn discovery_documents() {
    let s = start();
    assert_eq!(req(&s, "GET", "/version", None).body["major"], "1");
    assert_eq!(req(&s, "GET", "/api", None).body["versions"], json!(["v1"]));
    let core = req(&s, "GET", "/api/v1", None).body;
    let names: Vec<&str> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "namespaces",
            "secrets",
            "serviceaccounts",
            "pods",
            "configmaps"
        ]
    );
    let groups = req(&s, "GET", "/apis", None).body;
    let g: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        g,
        [
            "apps",
            "batch",
            "coordination.k8s.io",
            "events.k8s.io",
            "networking.k8s.io",
            "policy",
            "rbac.authorization.k8s.io"
        ]
    );
    for (path, kinds) in [
        (
            "/apis/apps/v1",
            vec!["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"],
        ),
        ("/apis/batch/v1", vec!["Job", "CronJob"]),
        ("/apis/coordination.k8s.io/v1", vec!["Lease"]),
        // For what an install applies (deploy/controller's PodDisruptionBudget).
        ("/apis/policy/v1", vec!["PodDisruptionBudget"]),
    ] {
        let doc = req(&s, "GET", path, None).body;
        let k: Vec<&str> = doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert_eq!(k, kinds, "{path}");
    }
    assert_eq!(req(&s, "GET", "/apis/storage.k8s.io/v1", None).status, 404);
}

#[test]
fn crud_on_every_resource_namespaced_and_across_namespaces() {
    let s = start();
    ns(&s, "a", json!({}));
    ns(&s, "b", json!({}));
    let objects = [
        (
            "/api/v1",
            "secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "stringData": {"k": "v"}}),
        ),
        (
            "/api/v1",
            "serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}}),
        ),
        ("/apis/apps/v1", "deployments", deployment("x", &[])),
        (
            "/apis/apps/v1",
            "statefulsets",
            workload("apps/v1", "StatefulSet", "x"),
        ),
        (
            "/apis/apps/v1",
            "daemonsets",
            workload("apps/v1", "DaemonSet", "x"),
        ),
        (
            "/apis/apps/v1",
            "replicasets",
            workload("apps/v1", "ReplicaSet", "x"),
        ),
        ("/apis/batch/v1", "jobs", workload("batch/v1", "Job", "x")),
        (
            "/apis/batch/v1",
            "cronjobs",
            workload("batch/v1", "CronJob", "x"),
        ),
        (
            "/apis/coordination.k8s.io/v1",
            "leases",
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "x"}, "spec": {"holderIdentity": "me"}}),
        ),
    ];
    for (prefix, plural, obj) in objects {
        for n in ["a", "b"] {
            let r = req(
                &s,
                "POST",
                &format!("{prefix}/namespaces/{n}/{plural}"),
                Some(&obj),
            );
            assert_eq!(r.status, 201, "{plural}: {}", r.body);
        }
        let one = format!("{prefix}/namespaces/a/{plural}/x");
        let got = req(&s, "GET", &one, None);
        assert_eq!(got.status, 200);
        assert_eq!(got.body["metadata"]["namespace"], "a");
        let listed = req(&s, "GET", &format!("{prefix}/namespaces/a/{plural}"), None).body;
        let all = req(&s, "GET", &format!("{prefix}/{plural}"), None).body;
        let count = |v: &Value| {
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["metadata"]["name"] == "x")
                .count()
        };
        assert_eq!((count(&listed), count(&all)), (1, 2), "{plural}");
        let mut updated = got.body.clone();
        updated["metadata"]["labels"] = json!({"updated": "yes"});
        let put = req(&s, "PUT", &one, Some(&updated));
        assert_eq!(put.status, 200, "{plural}: {}", put.body);
        let merged = patch(
            &s,
            &one,
            "application/merge-patch+json",
            &json!({"metadata": {"annotations": {"a": "b"}}}),
        );
        assert_eq!(merged.status, 200);
        assert_eq!(merged.body["metadata"]["labels"]["updated"], "yes");
        assert_eq!(req(&s, "DELETE", &one, None).status, 200);
        assert_eq!(req(&s, "GET", &one, None).status, 404);
    }
    // Namespaces are cluster-scoped: get, list, delete (which removes their contents, once
    // the namespace controller has run).
    assert_eq!(
        req(&s, "GET", "/api/v1/namespaces/b", None).body["status"]["phase"],
        "Active"
    );
    assert_eq!(req(&s, "DELETE", "/api/v1/namespaces/b", None).status, 200);
    wait_until("namespace b's content to go", || {
        req(&s, "GET", "/api/v1/namespaces/b/secrets/x", None).status == 404
    });
}

/// Polls `done` for up to five seconds (the namespace controller's work is asynchronous, as
/// in a real cluster).
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < until {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

/// A namespace created through the API carries `spec.finalizers: [kubernetes]`; deleting it
/// leaves it `Terminating` (kube-apiserver's namespace storage, `Delete` in
/// pkg/registry/core/namespace/storage/storage.go, only marks it while that finalizer is
/// there) until the namespace controller (pkg/controller/namespace/deletion) has deleted its
/// content and removed the finalizer; then it goes (the watch events: tests/watch.rs).
#[test]
fn a_deleted_namespace_terminates_then_the_controller_finalizes_it() {
    let s = start();
    ns(&s, "going", json!({}));
    let created = req(&s, "GET", "/api/v1/namespaces/going", None).body;
    assert_eq!(created["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(
        req(
            &s,
            "POST",
            "/api/v1/namespaces/going/secrets",
            Some(&docker_secret("inside"))
        )
        .status,
        201
    );
    let r = req(&s, "DELETE", "/api/v1/namespaces/going", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"]["phase"], "Terminating");
    // Right after the DELETE: still there, terminating, content and all.
    let got = req(&s, "GET", "/api/v1/namespaces/going", None);
    assert_eq!(got.status, 200);
    assert!(got.body["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        req(&s, "GET", "/api/v1/namespaces/going/secrets/inside", None).status,
        200
    );
    wait_until("the namespace to go", || {
        req(&s, "GET", "/api/v1/namespaces/going", None).status == 404
    });
    assert_eq!(
        req(&s, "GET", "/api/v1/namespaces/going/secrets/inside", None).status,
        404
    );
}

#[test]
fn resource_versions_conflicts_and_status_errors() {
    let s = start();
    ns(&s, "a", json!({}));
    let created = req(
        &s,
        "POST",
        "/api/v1/namespaces/a/secrets",
        Some(&docker_secret("pull")),
    );
    let rv1: u64 = created.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut stale = created.body.clone();
    let mut fresh = created.body.clone();
    fresh["metadata"]["labels"]["x"] = json!("1");
    let r = req(&s, "PUT", "/api/v1/namespaces/a/secrets/pull", Some(&fresh));
    let rv2: u64 = r.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    stale["metadata"]["labels"]["y"] = json!("2");
    let r = req(&s, "PUT", "/api/v1/namespaces/a/secrets/pull", Some(&stale));
    assert_eq!(
        (
            r.status,
            r.body["kind"].as_str(),
            r.body["reason"].as_str(),
            r.body["code"].as_u64()
        ),
        (409, Some("Status"), Some("Conflict"), Some(409))
    );
    let r = patch(
        &s,
        "/api/v1/namespaces/a/secrets/pull",
        "application/merge-patch+json",
        &json!({"metadata": {"resourceVersion": rv1.to_string(), "labels": {"z": "3"}}}),
    );
    assert_eq!(r.status, 409);
    let r = req(
        &s,
        "POST",
        "/api/v1/namespaces/a/secrets",
        Some(&docker_secret("pull")),
    );
    assert_eq!(
        (r.status, r.body["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );
    let r = req(&s, "GET", "/api/v1/namespaces/a/secrets/missing", None);
    assert_eq!(
        (
            r.status,
            r.body["reason"].as_str(),
            r.body["details"]["name"].as_str()
        ),
        (404, Some("NotFound"), Some("missing"))
    );
    assert_eq!(r.body["message"], "secrets \"missing\" not found");
    // A write that changes nothing keeps the resourceVersion.
    let same = req(&s, "GET", "/api/v1/namespaces/a/secrets/pull", None).body;
    let again = req(&s, "PUT", "/api/v1/namespaces/a/secrets/pull", Some(&same));
    assert_eq!(
        again.body["metadata"]["resourceVersion"],
        same["metadata"]["resourceVersion"]
    );
}

#[test]
fn label_and_field_selectors_paging_and_list_versions() {
    let s = start();
    for (n, team) in [("n1", "a"), ("n2", "b"), ("n3", "c")] {
        ns(&s, n, json!({"team": team}));
    }
    ns(&s, "n4", json!({}));
    let names = |q: &str| -> Vec<String> {
        let r = req(&s, "GET", &format!("/api/v1/namespaces?{q}"), None);
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .filter(|n| n.starts_with('n'))
            .collect()
    };
    assert_eq!(names("labelSelector=team%3Da"), ["n1"]);
    assert_eq!(names("labelSelector=team%21%3Da"), ["n2", "n3", "n4"]);
    // kube-rs and kubectl encode spaces as `+`.
    assert_eq!(names("labelSelector=team+in+%28a%2Cb%29"), ["n1", "n2"]);
    assert_eq!(
        names("labelSelector=team+notin+%28a%29"),
        ["n2", "n3", "n4"]
    );
    assert_eq!(names("labelSelector=team"), ["n1", "n2", "n3"]);
    assert_eq!(names("labelSelector=%21team"), ["n4"]);
    assert_eq!(names("fieldSelector=metadata.name%3Dn3"), ["n3"]);
    assert_eq!(
        req(
            &s,
            "GET",
            "/api/v1/namespaces?labelSelector=team+in+a",
            None
        )
        .status,
        400
    );

    // Paging: every item exactly once across pages, with remainingItemCount.
    ns(&s, "p", json!({}));
    for i in 0..23 {
        req(
            &s,
            "POST",
            "/api/v1/namespaces/p/secrets",
            Some(
                &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("s{i:02}")}}),
            ),
        );
    }
    let (seen, pages) = every_page(&s, "/api/v1/namespaces/p/secrets?limit=5", |meta| {
        if meta["continue"].is_string() {
            assert!(meta["remainingItemCount"].as_u64().unwrap() > 0);
        }
    });
    assert_eq!(pages, 5);
    let expected: Vec<String> = (0..23).map(|i| format!("s{i:02}")).collect();
    assert_eq!(seen, expected);
    // The count is exact: 23 secrets, 5 on the first page, 18 after it.
    let first = req(&s, "GET", "/api/v1/namespaces/p/secrets?limit=5", None).body;
    assert_eq!(first["metadata"]["remainingItemCount"], 18);
    // ListMeta.remainingItemCount (k8s.io/apimachinery/pkg/apis/meta/v1/types.go): "If the
    // list request contained label or field selectors, then the number of remaining items is
    // unknown and the field will be left unset and omitted during serialization." Paging still
    // works, and only matching objects are returned.
    for i in 0..6 {
        req(
            &s,
            "POST",
            "/api/v1/namespaces/p/secrets",
            Some(
                &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("t{i}"), "labels": {"pick": "yes"}}}),
            ),
        );
    }
    let (picked, _) = every_page(
        &s,
        "/api/v1/secrets?labelSelector=pick%3Dyes&limit=4",
        |meta| {
            assert!(meta.get("remainingItemCount").is_none(), "{meta}");
        },
    );
    assert_eq!(picked, ["t0", "t1", "t2", "t3", "t4", "t5"]);
    // Metadata only, as kube-rs' list_metadata asks for it.
    let mut raw = TcpStream::connect(s.addr()).unwrap();
    write!(
        raw,
        "GET /api/v1/namespaces/p/secrets?limit=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-token\r\nAccept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    raw.read_to_string(&mut out).unwrap();
    let meta: Value = serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(meta["kind"], "PartialObjectMetadataList");
    assert_eq!(meta["items"][0]["kind"], "PartialObjectMetadata");
    assert!(
        meta["items"][0].get("data").is_none() && meta["items"][0]["metadata"]["name"] == "s00"
    );
    let r = req(&s, "GET", "/api/v1/secrets?resourceVersion=0", None).body;
    assert!(
        r["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert_eq!(r["kind"], "SecretList");
}

#[test]
fn merge_and_json_patch_with_failing_test_op() {
    let s = start();
    ns(&s, "a", json!({}));
    req(
        &s,
        "POST",
        "/apis/apps/v1/namespaces/a/deployments",
        Some(&deployment("web", &["x"])),
    );
    let path = "/apis/apps/v1/namespaces/a/deployments/web";
    let r = patch(
        &s,
        path,
        "application/merge-patch+json",
        &json!({"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "y"}]}}}}),
    );
    assert_eq!(
        r.body["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "y"}]),
        "merge patch replaces lists"
    );
    let ops = json!([{"op": "test", "path": "/spec/template/spec/imagePullSecrets/0/name", "value": "y"}, {"op": "add", "path": "/spec/template/spec/imagePullSecrets/-", "value": {"name": "z"}}]);
    let r = patch(&s, path, "application/json-patch+json", &ops);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "y"}, {"name": "z"}])
    );
    let failing = json!([{"op": "test", "path": "/spec/template/spec/imagePullSecrets/0/name", "value": "nope"}, {"op": "remove", "path": "/spec/template/spec/imagePullSecrets/0"}]);
    let r = patch(&s, path, "application/json-patch+json", &failing);
    assert_eq!(r.status, 422);
    assert_eq!(
        req(&s, "GET", path, None).body["spec"]["template"]["spec"]["imagePullSecrets"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "nothing applied"
    );
    assert_eq!(patch(&s, path, "text/plain", &json!({})).status, 415);
}

#[test]
fn strategic_merge_patch_list_semantics() {
    let s = start();
    ns(&s, "a", json!({}));
    req(
        &s,
        "POST",
        "/apis/apps/v1/namespaces/a/deployments",
        Some(&deployment("web", &["theirs"])),
    );
    let path = "/apis/apps/v1/namespaces/a/deployments/web";
    let smp = "application/strategic-merge-patch+json";
    let r = patch(
        &s,
        path,
        smp,
        &json!({"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "mine"}], "containers": [{"name": "app", "image": "harbor.example.com/web/app:2"}]}}}}),
    );
    assert_eq!(
        r.body["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "theirs"}, {"name": "mine"}])
    );
    assert_eq!(
        r.body["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "containers merged by name"
    );
    assert_eq!(
        r.body["metadata"]["generation"], 2,
        "a template change bumps the generation"
    );
    let r = patch(
        &s,
        path,
        smp,
        &json!({"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "mine", "$patch": "delete"}]}}}}),
    );
    assert_eq!(
        r.body["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "theirs"}])
    );
    // ServiceAccount.imagePullSecrets is atomic: replaced whole.
    let sa = "/api/v1/namespaces/a/serviceaccounts/default";
    patch(
        &s,
        sa,
        "application/merge-patch+json",
        &json!({"imagePullSecrets": [{"name": "theirs"}]}),
    );
    let r = patch(
        &s,
        sa,
        smp,
        &json!({"imagePullSecrets": [{"name": "mine"}]}),
    );
    assert_eq!(r.body["imagePullSecrets"], json!([{"name": "mine"}]));
}

#[test]
fn server_side_apply_managed_fields_and_conflicts() {
    let s = start();
    ns(&s, "a", json!({}));
    let path = "/apis/apps/v1/namespaces/a/deployments/web";
    let apply = "application/apply-patch+yaml";
    let r = patch(&s, path, apply, &deployment("web", &["theirs"]));
    assert_eq!(r.status, 400, "fieldManager is required");
    let r = patch(
        &s,
        &format!("{path}?fieldManager=other"),
        apply,
        &deployment("web", &["theirs"]),
    );
    assert_eq!(r.status, 201, "apply creates: {}", r.body);
    let mine = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                      "spec": {"template": {"spec": {"imagePullSecrets": [{"name": "mine"}]}}}});
    let r = patch(&s, &format!("{path}?fieldManager=regops"), apply, &mine);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "theirs"}, {"name": "mine"}])
    );
    let managers: Vec<&str> = r.body["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["other", "regops"]);
    let fields_v1 = &r.body["metadata"]["managedFields"][1]["fieldsV1"];
    assert!(
        fields_v1["f:spec"]["f:template"]["f:spec"]["f:imagePullSecrets"]["k:{\"name\":\"mine\"}"]
            .is_object(),
        "{fields_v1}"
    );
    // Taking another manager's field conflicts, with a FieldManagerConflict cause.
    let mut grab = mine.clone();
    grab["spec"]["template"]["spec"]["containers"] = json!([{"name": "app", "image": "evil:1"}]);
    let r = patch(&s, &format!("{path}?fieldManager=regops"), apply, &grab);
    assert_eq!(r.status, 409);
    assert_eq!(
        r.body["details"]["causes"][0]["reason"],
        "FieldManagerConflict"
    );
    assert!(
        r.body["details"]["causes"][0]["field"]
            .as_str()
            .unwrap()
            .ends_with(".image")
    );
    let r = patch(
        &s,
        &format!("{path}?fieldManager=regops&force=true"),
        apply,
        &grab,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["spec"]["template"]["spec"]["containers"][0]["image"],
        "evil:1"
    );
    // YAML bodies, as kubectl sends them.
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    from-yaml: \"yes\"\n";
    let r = send_raw(
        &s,
        "PATCH",
        &format!("{path}?fieldManager=yaml-client"),
        apply,
        yaml,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["metadata"]["labels"]["from-yaml"], "yes");
    // The other manager takes its image back (else regops' apply below would remove the
    // image it holds, leaving a container without one: a 422, as on a real server).
    let r = patch(
        &s,
        &format!("{path}?fieldManager=other&force=true"),
        apply,
        &deployment("web", &["theirs"]),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Applying without the entry removes only regops' entry.
    let none = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    let r = patch(&s, &format!("{path}?fieldManager=regops"), apply, &none);
    assert_eq!(
        r.body["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "theirs"}])
    );
}

#[test]
fn secret_validation_immutability_names_and_dry_run() {
    let s = start();
    ns(&s, "a", json!({}));
    let base = "/api/v1/namespaces/a/secrets";
    let mut bad = docker_secret("bad");
    bad["data"][".dockerconfigjson"] = json!(STANDARD.encode("not json"));
    assert_eq!(req(&s, "POST", base, Some(&bad)).status, 422);
    let mut missing = docker_secret("missing");
    missing["data"] = json!({"other": "eA=="});
    assert_eq!(req(&s, "POST", base, Some(&missing)).status, 422);
    let mut upper = docker_secret("Bad_Name");
    upper["metadata"]["name"] = json!("Bad_Name");
    let r = req(&s, "POST", base, Some(&upper));
    assert_eq!(
        (r.status, r.body["reason"].as_str()),
        (422, Some("Invalid"))
    );
    assert_eq!(r.body["details"]["causes"][0]["field"], "metadata.name");
    // type is immutable
    req(&s, "POST", base, Some(&docker_secret("pull")));
    let r = patch(
        &s,
        &format!("{base}/pull"),
        "application/merge-patch+json",
        &json!({"type": "Opaque"}),
    );
    assert_eq!(r.status, 422);
    // immutable: true
    let mut frozen = docker_secret("frozen");
    frozen["immutable"] = json!(true);
    req(&s, "POST", base, Some(&frozen));
    let r = patch(
        &s,
        &format!("{base}/frozen"),
        "application/merge-patch+json",
        &json!({"data": {"x": "eA=="}}),
    );
    assert_eq!(r.status, 422);
    let r = patch(
        &s,
        &format!("{base}/frozen"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"ok": "yes"}}}),
    );
    assert_eq!(r.status, 200, "metadata may still change");
    // dryRun=All validates and stores nothing.
    let r = req(
        &s,
        "POST",
        &format!("{base}?dryRun=All"),
        Some(&docker_secret("dry")),
    );
    assert_eq!(r.status, 201);
    assert_eq!(req(&s, "GET", &format!("{base}/dry"), None).status, 404);
    assert_eq!(
        req(&s, "POST", &format!("{base}?dryRun=All"), Some(&bad)).status,
        422
    );
    let r = patch(
        &s,
        &format!("{base}/pull?dryRun=All"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"dry": "1"}}}),
    );
    assert_eq!(r.body["metadata"]["labels"]["dry"], "1");
    assert!(
        req(&s, "GET", &format!("{base}/pull"), None).body["metadata"]["labels"]
            .get("dry")
            .is_none()
    );
    assert_eq!(
        req(&s, "DELETE", &format!("{base}/pull?dryRun=All"), None).status,
        200
    );
    assert_eq!(req(&s, "GET", &format!("{base}/pull"), None).status, 200);
}

#[test]
fn defaults_the_real_server_provides() {
    let s = start();
    ns(&s, "fresh", json!({}));
    assert_eq!(
        req(
            &s,
            "GET",
            "/api/v1/namespaces/fresh/serviceaccounts/default",
            None
        )
        .status,
        200
    );
    let r = req(
        &s,
        "POST",
        "/api/v1/namespaces/nowhere/secrets",
        Some(&docker_secret("x")),
    );
    assert_eq!(
        (r.status, r.body["message"].as_str()),
        (404, Some("namespaces \"nowhere\" not found"))
    );
    let r = req(
        &s,
        "POST",
        "/api/v1/namespaces/fresh/secrets",
        Some(
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"generateName": "tok-"}, "stringData": {"token": "abc"}}),
        ),
    );
    assert_eq!(r.status, 201);
    let name = r.body["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("tok-") && name.len() == 9, "{name}");
    assert_eq!(r.body["data"]["token"], STANDARD.encode("abc"));
    assert!(r.body.get("stringData").is_none());
    assert_eq!(r.body["type"], "Opaque");
    let list = req(&s, "GET", "/api/v1/namespaces", None).body;
    assert!(
        !list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn injected_faults_and_the_request_log() {
    let s = start();
    ns(&s, "a", json!({}));
    s.clear_log();
    s.add_fault(Fault::status(503).verb("create").resource("secrets").nth(2));
    let codes: Vec<u16> = (0..3)
        .map(|i| {
            req(
                &s,
                "POST",
                "/api/v1/namespaces/a/secrets",
                Some(&docker_secret(&format!("s{i}"))),
            )
            .status
        })
        .collect();
    assert_eq!(codes, [201, 503, 201]);
    assert_eq!(
        req(&s, "GET", "/api/v1/namespaces/a/secrets/s1", None).status,
        404,
        "the failed write did nothing"
    );
    s.clear_faults();
    s.add_fault(
        Fault::new(FaultAction::Status {
            code: 429,
            retry_after: Some(2),
        })
        .verb("list")
        .times(1),
    );
    let r = req(&s, "GET", "/api/v1/secrets", None);
    assert_eq!(r.status, 429);
    assert!(r.headers.contains("retry-after: 2"), "{}", r.headers);
    assert_eq!(
        req(&s, "GET", "/api/v1/secrets", None).status,
        200,
        "only once"
    );
    s.clear_faults();
    s.add_fault(Fault::status(500).verb("get").share(0.5));
    let failures = (0..200)
        .filter(|_| req(&s, "GET", "/api/v1/namespaces/a", None).status == 500)
        .count();
    assert!(
        (70..130).contains(&failures),
        "{failures} of 200 at a 50% share"
    );
    s.clear_faults();
    s.add_fault(
        Fault::new(FaultAction::Latency(std::time::Duration::from_millis(150))).verb("get"),
    );
    let t = std::time::Instant::now();
    assert_eq!(req(&s, "GET", "/api/v1/namespaces/a", None).status, 200);
    assert!(t.elapsed() >= std::time::Duration::from_millis(150));
    s.clear_faults();
    // A response time: the write is done at once (the log has it, the store holds it) and
    // answered only that long after the request arrived.
    s.add_fault(
        Fault::new(FaultAction::ResponseTime(std::time::Duration::from_millis(
            300,
        )))
        .verb("create"),
    );
    let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "timed"}});
    let t = std::time::Instant::now();
    let answered = std::thread::scope(|scope| {
        let writer = scope.spawn(|| req(&s, "POST", "/api/v1/namespaces/a/secrets", Some(&body)));
        let mut stored_early = false;
        while !writer.is_finished() {
            if s.object("secrets", "a", "timed").is_some() && t.elapsed().as_millis() < 250 {
                stored_early = true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        (writer.join().unwrap().status, stored_early)
    });
    assert_eq!(answered, (201, true));
    assert!(t.elapsed() >= std::time::Duration::from_millis(300));
    s.clear_faults();
    s.add_fault(
        Fault::new(FaultAction::CloseConnection)
            .verb("delete")
            .times(1),
    );
    assert!(
        send(
            &s,
            "DELETE",
            "/api/v1/namespaces/a/secrets/s0",
            "application/json",
            None
        )
        .is_err(),
        "no response on a dropped connection"
    );
    assert_eq!(
        req(&s, "GET", "/api/v1/namespaces/a/secrets/s0", None).status,
        200,
        "a dropped request did nothing"
    );
    let log = s.log();
    let writes = log.iter().filter(|e| e.is_write()).count();
    assert!(writes >= 4, "{log:?}");
    let dropped = log.iter().find(|e| e.verb == "delete").unwrap();
    assert_eq!(dropped.status, 0, "logged as dropped");
    assert!(log.iter().any(|e| e.verb == "list" && e.status == 429));
}

#[test]
fn authentication_and_policy() {
    let s = start();
    let mut raw = TcpStream::connect(s.addr()).unwrap();
    write!(
        raw,
        "GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    raw.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    s.set_policy(Some(Policy {
        rules: vec![Rule::new(&["get", "list"], &["namespaces"])],
    }));
    assert_eq!(req(&s, "GET", "/api/v1/namespaces", None).status, 200);
    let r = req(&s, "GET", "/api/v1/namespaces/default/secrets", None);
    assert_eq!(
        (r.status, r.body["reason"].as_str()),
        (403, Some("Forbidden"))
    );
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("cannot list resource \"secrets\"")
    );
}

#[test]
fn tls_with_generated_ca_in_the_kubeconfig() {
    let s = TestServer::start(Config {
        tls: true,
        ..Config::default()
    })
    .unwrap();
    assert!(s.url().starts_with("https://127.0.0.1:"));
    let kubeconfig = s.kubeconfig();
    let ca = s.ca_pem().unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(kubeconfig.contains(&format!(
        "certificate-authority-data: {}",
        STANDARD.encode(ca)
    )));
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = send(&s, "GET", "/version", "application/json", None);
    assert!(
        !matches!(plain, Ok(ref r) if r.status == 200),
        "plain HTTP was served over the TLS port"
    );
}

/// ValidateDeploymentSpec and ValidatePodTemplateSpec (pkg/apis/apps/validation,
/// pkg/apis/core/validation): a selector and at least one container with a name and an image
/// are required. A server-side apply of a few fields to a Deployment that no longer exists is
/// a create, and is refused, not stored half-empty.
#[test]
fn workloads_require_their_fields_so_an_apply_cannot_create_a_half_empty_one() {
    let s = start();
    ns(&s, "web", json!({}));
    let partial = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gone"},
        "spec": {"template": {"spec": {"imagePullSecrets": [{"name": "harbor-pull"}]}}}});
    let r = patch(
        &s,
        "/apis/apps/v1/namespaces/web/deployments/gone?fieldManager=regops.x",
        "application/apply-patch+yaml",
        &partial,
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let msg = r.body["message"].as_str().unwrap();
    assert!(msg.contains("spec.selector: Required value"), "{msg}");
    assert!(
        msg.contains("spec.template.spec.containers: Required value"),
        "{msg}"
    );
    assert_eq!(
        req(
            &s,
            "GET",
            "/apis/apps/v1/namespaces/web/deployments/gone",
            None
        )
        .status,
        404
    );
    // A ReplicaSet needs the same selector (ValidateReplicaSetSpec: "spec.selector: Required
    // value", pkg/apis/apps/validation/validation.go), so a ReplicaSet deleted under regops is
    // not re-created from its entries either.
    let r = patch(
        &s,
        "/apis/apps/v1/namespaces/web/replicasets/gone?fieldManager=regops.x",
        "application/apply-patch+yaml",
        &json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "gone"},
            "spec": {"template": {"spec": {"imagePullSecrets": [{"name": "harbor-pull"}]}}}}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let msg = r.body["message"].as_str().unwrap();
    assert!(msg.contains("spec.selector: Required value"), "{msg}");
    // Labels that the selector does not match, a container without an image, a Job that
    // would restart `Always`, a CronJob without a schedule.
    let mut d = workload("apps/v1", "Deployment", "d");
    d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
    let r = req(
        &s,
        "POST",
        "/apis/apps/v1/namespaces/web/deployments",
        Some(&d),
    );
    assert_eq!(r.status, 422);
    let msg = r.body["message"].as_str().unwrap();
    assert!(msg.contains("spec.template.metadata.labels"), "{msg}");
    assert!(
        msg.contains("spec.template.spec.containers[0].image: Required value"),
        "{msg}"
    );
    let mut j = workload("batch/v1", "Job", "j");
    j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    let r = req(&s, "POST", "/apis/batch/v1/namespaces/web/jobs", Some(&j));
    assert_eq!(r.status, 422);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("restartPolicy")
    );
    let mut c = workload("batch/v1", "CronJob", "c");
    c["spec"]["schedule"] = Value::Null;
    let r = req(
        &s,
        "POST",
        "/apis/batch/v1/namespaces/web/cronjobs",
        Some(&c),
    );
    assert_eq!(r.status, 422);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("spec.schedule: Required value")
    );
}

/// ValidateJobSpecUpdate (pkg/apis/batch/validation/validation.go): a Job's pod template is
/// immutable, by apply, patch or update alike; its metadata is not.
#[test]
fn a_jobs_pod_template_is_immutable() {
    let s = start();
    ns(&s, "web", json!({}));
    let r = req(
        &s,
        "POST",
        "/apis/batch/v1/namespaces/web/jobs",
        Some(&workload("batch/v1", "Job", "once")),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let applied = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
        "spec": {"template": {"spec": {"imagePullSecrets": [{"name": "harbor-pull"}]}}}});
    let r = patch(
        &s,
        "/apis/batch/v1/namespaces/web/jobs/once?fieldManager=regops.x",
        "application/apply-patch+yaml",
        &applied,
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("spec.template: Invalid value: \"object\": field is immutable"),
        "{}",
        r.body
    );
    let r = patch(
        &s,
        "/apis/batch/v1/namespaces/web/jobs/once",
        "application/merge-patch+json",
        &json!({"spec": {"template": {"metadata": {"annotations": {"a": "b"}}}}}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let r = patch(
        &s,
        "/apis/batch/v1/namespaces/web/jobs/once",
        "application/merge-patch+json",
        &json!({"metadata": {"annotations": {"a": "b"}}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Deleting a namespace marks it terminating; while a finalizer holds it, creating anything
/// in it is refused with 403 and the `NamespaceTerminating` cause
/// (plugin/pkg/admission/namespace/lifecycle/admission.go), updates still work; the namespace
/// controller empties it, and it goes when the last finalizer is removed.
#[test]
fn a_terminating_namespace_refuses_new_content_until_it_goes() {
    let s = start();
    let stuck = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "old", "finalizers": ["example.com/stuck"]}});
    assert_eq!(
        req(&s, "POST", "/api/v1/namespaces", Some(&stuck)).status,
        201
    );
    assert_eq!(
        req(
            &s,
            "POST",
            "/api/v1/namespaces/old/secrets",
            Some(&docker_secret("before"))
        )
        .status,
        201
    );
    let r = req(&s, "DELETE", "/api/v1/namespaces/old", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let got = req(&s, "GET", "/api/v1/namespaces/old", None).body;
    assert!(got["metadata"]["deletionTimestamp"].is_string(), "{got}");
    assert_eq!(got["status"]["phase"], "Terminating");
    let r = req(
        &s,
        "POST",
        "/api/v1/namespaces/old/secrets",
        Some(&docker_secret("new")),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["reason"], "Forbidden");
    assert_eq!(
        r.body["message"],
        "secrets \"new\" is forbidden: unable to create new content in namespace old because it is being terminated"
    );
    assert_eq!(
        r.body["details"]["causes"][0]["reason"],
        "NamespaceTerminating"
    );
    // A server-side apply that would create is refused the same way.
    let r = patch(
        &s,
        "/api/v1/namespaces/old/secrets/new?fieldManager=regops",
        "application/apply-patch+yaml",
        &docker_secret("new"),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // An existing object can still be changed.
    let r = patch(
        &s,
        "/api/v1/namespaces/old/secrets/before",
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"x": "y"}}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // The namespace controller empties it, but the finalizer holds the namespace.
    wait_until("its content to go", || {
        req(&s, "GET", "/api/v1/namespaces/old/secrets/before", None).status == 404
    });
    assert_eq!(req(&s, "GET", "/api/v1/namespaces/old", None).status, 200);
    // The finalizer is removed: the namespace goes.
    let r = patch(
        &s,
        "/api/v1/namespaces/old",
        "application/merge-patch+json",
        &json!({"metadata": {"finalizers": null}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(req(&s, "GET", "/api/v1/namespaces/old", None).status, 404);
}

/// kube-rs and client-go send a DELETE's dry run in the DeleteOptions body. It must delete
/// nothing; a dryRun value other than `All` is refused before anything happens (ValidateDryRun,
/// answered with errors.NewInvalid in the request handlers: 422).
#[test]
fn a_delete_dry_run_in_the_body_deletes_nothing_and_odd_values_are_refused() {
    let s = start();
    ns(&s, "web", json!({}));
    assert_eq!(
        req(
            &s,
            "POST",
            "/api/v1/namespaces/web/secrets",
            Some(&docker_secret("keep"))
        )
        .status,
        201
    );
    let r = req(
        &s,
        "DELETE",
        "/api/v1/namespaces/web/secrets/keep",
        Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        req(&s, "GET", "/api/v1/namespaces/web/secrets/keep", None).status,
        200,
        "a dry-run delete removed the Secret"
    );
    let r = req(
        &s,
        "DELETE",
        "/api/v1/namespaces/web/secrets/keep",
        Some(&json!({"dryRun": ["Yes"]})),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("dryRun: Unsupported value")
    );
    let r = req(
        &s,
        "POST",
        "/api/v1/namespaces/web/secrets?dryRun=true",
        Some(&docker_secret("other")),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        req(&s, "GET", "/api/v1/namespaces/web/secrets/keep", None).status,
        200
    );
    assert_eq!(
        req(&s, "GET", "/api/v1/namespaces/web/secrets/other", None).status,
        404
    );
}

/// ValidateLabels / ValidateAnnotations: keys are qualified names (a name part of at most 63
/// characters), label values at most 63 characters. A spec name too long for the label key
/// `pull-secrets.regops.dev/<spec>` fails here as on a real server.
#[test]
fn label_keys_values_and_annotation_keys_are_validated() {
    let s = start();
    ns(&s, "a", json!({}));
    let long = "x".repeat(64);
    for (labels, annotations) in [
        (
            json!({ format!("pull-secrets.regops.dev/{long}"): "true" }),
            json!({}),
        ),
        (json!({ "ok": long.clone() }), json!({})),
        (json!({ "bad key": "v" }), json!({})),
        (json!({ "Bad_Prefix.com/x": "v" }), json!({})),
        (
            json!({}),
            json!({ format!("pull-secrets.regops.dev/{long}"): "harbor-pull" }),
        ),
    ] {
        let mut obj = docker_secret("s");
        obj["metadata"]["labels"] = labels.clone();
        obj["metadata"]["annotations"] = annotations.clone();
        let r = req(&s, "POST", "/api/v1/namespaces/a/secrets", Some(&obj));
        assert_eq!(r.status, 422, "{labels} {annotations}: {}", r.body);
        assert_eq!(r.body["reason"], "Invalid");
    }
    let mut fine = docker_secret("fine");
    fine["metadata"]["labels"] = json!({"pull-secrets.regops.dev/team-a": "true", "empty": ""});
    fine["metadata"]["annotations"] = json!({"regops.dev/spec": "any value at all, spaces too"});
    let r = req(&s, "POST", "/api/v1/namespaces/a/secrets", Some(&fine));
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Pods, as regops' `--recycle-stuck-pods` meets them: `spec.containers` is required, each with
/// a name and an image (ValidatePodSpec), and after creation the spec may change only in
/// images and a few scheduling fields (ValidatePodUpdate: "pod updates may not change fields
/// other than `spec.containers[*].image`, ..."), both in
/// pkg/apis/core/validation/validation.go. A DELETE with a stale uid precondition is 409.
#[test]
fn pods_need_containers_and_keep_their_spec() {
    let s = start();
    ns(&s, "web", json!({}));
    let pods = "/api/v1/namespaces/web/pods";
    let bare = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}});
    let r = req(&s, "POST", pods, Some(&bare));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("spec.containers"),
        "{}",
        r.body
    );
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "app", "image": "nginx:1"}], "restartPolicy": "Always"}});
    let created = req(&s, "POST", pods, Some(&pod));
    assert_eq!(created.status, 201, "{}", created.body);
    // A new image: allowed.
    let r = patch(
        &s,
        &format!("{pods}/p"),
        "application/merge-patch+json",
        &json!({"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Anything else in the spec: forbidden.
    let r = patch(
        &s,
        &format!("{pods}/p"),
        "application/merge-patch+json",
        &json!({"spec": {"restartPolicy": "Never"}}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("pod updates may not change fields"),
        "{}",
        r.body
    );
    let stale = json!({"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": "not-its-uid"}});
    let r = req(&s, "DELETE", &format!("{pods}/p"), Some(&stale));
    assert_eq!(r.status, 409, "{}", r.body);
    let uid = created.body["metadata"]["uid"].clone();
    let r = req(
        &s,
        "DELETE",
        &format!("{pods}/p"),
        Some(&json!({"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Field selectors beyond `metadata.name`/`metadata.namespace` are registered per resource:
/// `status.phase` for pods (pkg/registry/core/pod/strategy.go, `PodToSelectableFields`) and
/// `type` for secrets (pkg/registry/core/secret/strategy.go, `SelectableFields`); any other
/// is a 400 "field label not supported".
#[test]
fn field_selectors_are_per_resource() {
    let s = start();
    ns(&s, "web", json!({}));
    s.seed(docker_secret("pull")).unwrap();
    s.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "plain", "namespace": "web"},
        "type": "Opaque", "data": {"k": "dg=="}}))
        .unwrap();
    let names = |r: &Reply| -> Vec<String> {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let r = req(
        &s,
        "GET",
        "/api/v1/secrets?fieldSelector=type%3Dkubernetes.io%2Fdockerconfigjson",
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(names(&r), ["pull"]);
    for (phase, pod) in [("Pending", "stuck"), ("Running", "fine")] {
        s.seed(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": "web"},
            "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}, "status": {"phase": phase}}))
            .unwrap();
    }
    let r = req(
        &s,
        "GET",
        "/api/v1/pods?fieldSelector=status.phase%3DPending",
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(names(&r), ["stuck"]);
    for path in [
        "/api/v1/secrets?fieldSelector=status.phase%3DPending",
        "/api/v1/pods?fieldSelector=type%3DOpaque",
    ] {
        let r = req(&s, "GET", path, None);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(
            r.body["message"]
                .as_str()
                .unwrap()
                .contains("field label not supported"),
            "{}",
            r.body
        );
    }
}

/// Several servers run in one process, each with its own store and log; each log entry's span
/// (`at` to `answered`) tells requests that were in flight at once from those that were not,
/// so a client's parallelism is counted from the logs instead of timed.
#[test]
fn several_servers_in_one_process_and_requests_in_flight_at_once() {
    let (a, b) = (start(), start());
    ns(&a, "only-in-a", json!({}));
    assert!(a.object("namespaces", "", "only-in-a").is_some());
    assert!(b.object("namespaces", "", "only-in-a").is_none());
    for s in [&a, &b] {
        s.add_fault(
            Fault::new(FaultAction::Latency(std::time::Duration::from_millis(100))).verb("list"),
        );
        s.clear_log();
    }
    // At once: one thread per server.
    std::thread::scope(|scope| {
        for s in [&a, &b] {
            scope.spawn(move || assert_eq!(req(s, "GET", "/api/v1/namespaces", None).status, 200));
        }
    });
    let (la, lb) = (a.log(), b.log());
    assert_eq!((la.len(), lb.len()), (1, 1));
    assert!(la[0].answered >= la[0].at + std::time::Duration::from_millis(100));
    assert!(la[0].overlaps(&lb[0]) && lb[0].overlaps(&la[0]));
    // One after the other.
    for s in [&a, &b] {
        s.clear_log();
        assert_eq!(req(s, "GET", "/api/v1/namespaces", None).status, 200);
    }
    let (la, lb) = (a.log(), b.log());
    assert!(!la[0].overlaps(&lb[0]) && !lb[0].overlaps(&la[0]));
}

/// Behind Rancher's proxy a downstream cluster's API is under `/k8s/clusters/<id>`: Rancher's
/// kubeconfig contexts have `server: https://rancher.example.com/k8s/clusters/c-m-abc`, and
/// clients put the API paths after it (client-go's rest.Config Host with a path; kube-rs's
/// base-URI layer joins the two the same way). Paths outside the prefix are not the cluster's.
#[test]
fn a_path_prefix_serves_the_api_under_it_as_rancher_proxy_does() {
    let s = TestServer::start(kube_test_server::Config {
        path_prefix: Some("/k8s/clusters/c-m-abc".into()),
        ..kube_test_server::Config::default()
    })
    .unwrap();
    assert!(s.url().ends_with("/k8s/clusters/c-m-abc"), "{}", s.url());
    assert!(s.kubeconfig().contains("/k8s/clusters/c-m-abc\n"));
    let under = req(&s, "GET", "/k8s/clusters/c-m-abc/api/v1/namespaces", None);
    assert_eq!(under.status, 200);
    assert_eq!(under.body["items"].as_array().unwrap().len(), 4);
    assert_eq!(
        req(&s, "GET", "/api/v1/namespaces", None).status,
        404,
        "not at the root"
    );
    assert_eq!(
        req(&s, "GET", "/k8s/clusters/c-m-abcd/api/v1/namespaces", None).status,
        404
    );
    // `request`, the harness's kubectl, puts the prefix in front.
    assert_eq!(
        s.request("GET", "/api/v1/namespaces", "application/json", None)
            .unwrap()
            .0,
        200
    );
}

/// What an install applies is stored as the real API stores it: ConfigMaps and NetworkPolicies
/// named as DNS-1123 subdomains, RBAC objects as path segments (`system:` names are valid,
/// pkg/apis/rbac/validation: ValidateRBACName = path.IsValidPathSegmentName), ClusterRoles
/// cluster-scoped, and each group in discovery.
#[test]
fn install_kinds_are_stored_with_the_real_naming_rules() {
    let server = start();
    let post = |path: &str, body: Value| {
        send(&server, "POST", path, "application/json", Some(&body)).unwrap()
    };
    let r = post(
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "system:regops:reader"}, "rules": []}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    for bad in ["a/b", "50%", ".."] {
        let r = post(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": bad}, "rules": []}),
        );
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
    }
    let r = post(
        "/api/v1/namespaces/default/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Spec:1"}, "data": {}}),
    );
    assert_eq!(
        r.status, 422,
        "a ConfigMap's name is a DNS-1123 subdomain: {}",
        r.body
    );
    let r = post(
        "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies",
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "regops-listen"}, "spec": {"podSelector": {}}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let groups = send(&server, "GET", "/apis", "application/json", None).unwrap();
    let names: Vec<&str> = groups.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in [
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "apps",
        "batch",
    ] {
        assert_eq!(names.iter().filter(|n| **n == g).count(), 1, "{names:?}");
    }
    let core = send(&server, "GET", "/api/v1", "application/json", None).unwrap();
    assert!(
        core.body["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "configmaps")
    );
}

/// A fault a test adds must fire: the server fails the test when it goes away otherwise (even
/// one cleared before the end), so a fault test cannot pass without meeting its fault.
#[test]
#[should_panic(expected = "never fired")]
fn a_fault_that_never_fires_fails_the_test() {
    let s = kube_test_server::TestServer::start(kube_test_server::Config::default()).unwrap();
    s.add_fault(kube_test_server::Fault::status(500).verb("delete"));
    s.clear_faults();
}

/// The hostile fixture (issue 37): names the API refuses are refused on `seed` as on a request,
/// stored as they are through `seed_unvalidated`, listed back byte for byte by label; and a
/// `status_message` fault answers with its message as it is.
#[test]
fn a_hostile_server_serves_names_the_api_refuses_and_says_what_it_likes() {
    use kube_test_server::hostile;
    let s = start();
    for name in hostile::NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        let e = s.seed(obj.clone()).unwrap_err();
        assert_eq!(e.code, 422, "{name:?}: {e}");
        let r = req(&s, "POST", "/api/v1/namespaces", Some(&obj));
        assert_eq!(r.status, 422, "{name:?}");
    }
    s.seed_hostile_namespaces().unwrap();
    let r = req(
        &s,
        "GET",
        &format!(
            "/api/v1/namespaces?labelSelector={}%3D{}",
            hostile::LABEL.0,
            hostile::LABEL.1
        ),
        None,
    );
    assert_eq!(r.status, 200);
    let mut names: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    let mut want = hostile::NAMESPACES;
    want.sort_unstable();
    assert_eq!(names, want);
    // Each has its `default` ServiceAccount, as every namespace has.
    let sas = s.objects("serviceaccounts");
    for name in hostile::NAMESPACES {
        assert!(
            sas.iter().any(|sa| sa["metadata"]["namespace"] == name),
            "{name:?}"
        );
    }

    s.add_fault(
        Fault::status_message(400, hostile::STATUS_MESSAGE)
            .verb("list")
            .resource("secrets")
            .times(1),
    );
    let r = req(&s, "GET", "/api/v1/secrets", None);
    assert_eq!(r.status, 400);
    assert_eq!(r.body["kind"], "Status");
    assert_eq!(r.body["reason"], "BadRequest");
    assert_eq!(r.body["message"], hostile::STATUS_MESSAGE);
}
