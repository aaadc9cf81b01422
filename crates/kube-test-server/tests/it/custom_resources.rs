//! A resource a CustomResourceDefinition declares, served generically as kube-apiserver's
//! apiextensions-apiserver serves an established one (`pkg/apiserver/customresource_handler.go`:
//! the same REST verbs, label selectors, paging and watch as a built-in resource, objects kept
//! as unstructured JSON; `pkg/registry/customresource/strategy.go`: `metadata.generation`
//! moves when anything but metadata and status changes).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use kube_test_server::resources::{Crd, register_crd};
use kube_test_server::{Config, TestServer};
use serde_json::{Value, json};

const ROLLOUTS: &str = "/apis/argoproj.io/v1alpha1/namespaces/web/rollouts";

fn server_with_rollouts() -> TestServer {
    let rt = register_crd(&Crd {
        group: "argoproj.io".into(),
        version: "v1alpha1".into(),
        kind: "Rollout".into(),
        plural: "rollouts".into(),
        namespaced: true,
    });
    assert_eq!(rt.api_version(), "argoproj.io/v1alpha1");
    let s = TestServer::start(Config::default()).unwrap();
    let (code, body) = s
        .request(
            "POST",
            "/api/v1/namespaces",
            "application/json",
            Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}})),
        )
        .unwrap();
    assert_eq!(code, 201, "{body}");
    s
}

fn rollout(name: &str, team: &str, pulls: &[&str]) -> Value {
    let pulls: Vec<Value> = pulls.iter().map(|n| json!({"name": n})).collect();
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": "web", "labels": {"team": team}},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "strategy": {"canary": {"steps": [{"setWeight": 20}]}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "harbor.example.com/web/app:1"}],
                    "imagePullSecrets": pulls}}}})
}

fn names(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect()
}

#[test]
fn a_custom_resource_is_created_listed_in_pages_and_selected_by_label() {
    let s = server_with_rollouts();
    for (name, team) in [("a", "web"), ("b", "api"), ("c", "web")] {
        let (code, body) = s
            .request(
                "POST",
                ROLLOUTS,
                "application/json",
                Some(&rollout(name, team, &[])),
            )
            .unwrap();
        assert_eq!(code, 201, "{body}");
        assert_eq!(body["metadata"]["generation"], 1);
        assert_eq!(body["kind"], "Rollout");
    }
    // Paged: two, then the rest by the continue token.
    let (code, first) = s
        .request("GET", &format!("{ROLLOUTS}?limit=2"), "", None)
        .unwrap();
    assert_eq!(code, 200, "{first}");
    assert_eq!(first["kind"], "RolloutList");
    assert_eq!(first["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(names(&first), ["a", "b"]);
    let token = first["metadata"]["continue"].as_str().unwrap();
    let (_, rest) = s
        .request(
            "GET",
            &format!("{ROLLOUTS}?limit=2&continue={token}"),
            "",
            None,
        )
        .unwrap();
    assert_eq!(names(&rest), ["c"]);
    // Across namespaces, by label.
    let (_, web) = s
        .request(
            "GET",
            "/apis/argoproj.io/v1alpha1/rollouts?labelSelector=team%3Dweb",
            "",
            None,
        )
        .unwrap();
    assert_eq!(names(&web), ["a", "c"]);
    let (code, one) = s
        .request("GET", &format!("{ROLLOUTS}/b"), "", None)
        .unwrap();
    assert_eq!(
        (code, one["metadata"]["labels"]["team"].as_str()),
        (200, Some("api"))
    );
    // Another version of the group is not served.
    let (code, _) = s
        .request(
            "GET",
            "/apis/argoproj.io/v1/namespaces/web/rollouts",
            "",
            None,
        )
        .unwrap();
    assert_eq!(code, 404);
}

#[test]
fn a_custom_resource_is_patched_and_server_side_applied_by_name_keyed_entries() {
    let s = server_with_rollouts();
    let (code, _) = s
        .request(
            "POST",
            &format!("{ROLLOUTS}?fieldManager=argocd"),
            "application/json",
            Some(&rollout("checkout", "web", &["theirs"])),
        )
        .unwrap();
    assert_eq!(code, 201);
    let path = format!("{ROLLOUTS}/checkout");
    // A merge patch of the metadata keeps the generation; a spec change moves it.
    let (code, merged) = s
        .request(
            "PATCH",
            &path,
            "application/merge-patch+json",
            Some(&json!({"metadata": {"annotations": {"note": "x"}}})),
        )
        .unwrap();
    assert_eq!(
        (code, merged["metadata"]["generation"].as_i64()),
        (200, Some(1))
    );
    let (code, patched) = s
        .request(
            "PATCH",
            &path,
            "application/json-patch+json",
            Some(&json!([{"op": "replace", "path": "/spec/strategy/canary/steps/0/setWeight", "value": 50}])),
        )
        .unwrap();
    assert_eq!(code, 200, "{patched}");
    assert_eq!(
        patched["spec"]["strategy"]["canary"]["steps"][0]["setWeight"],
        50
    );
    assert_eq!(patched["metadata"]["generation"], 2);
    // Server-side apply of one entry: the list is keyed by name, so the other manager's
    // entry stays, and each manager owns its own.
    let applied = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "checkout", "namespace": "web"},
        "spec": {"template": {"spec": {"imagePullSecrets": [{"name": "harbor-pull"}]}}}});
    let (code, after) = s
        .request(
            "PATCH",
            &format!("{path}?fieldManager=regops.team"),
            "application/apply-patch+yaml",
            Some(&applied),
        )
        .unwrap();
    assert_eq!(code, 200, "{after}");
    assert_eq!(
        after["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "theirs"}, {"name": "harbor-pull"}])
    );
    assert_eq!(after["metadata"]["generation"], 3);
    let managers: Vec<&str> = after["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(managers.contains(&"regops.team"), "{managers:?}");
    // The same apply again changes nothing: same resourceVersion, same generation.
    let (_, again) = s
        .request(
            "PATCH",
            &format!("{path}?fieldManager=regops.team"),
            "application/apply-patch+yaml",
            Some(&applied),
        )
        .unwrap();
    assert_eq!(
        again["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );
    // Applying without the entry removes only this manager's.
    let (_, removed) = s
        .request(
            "PATCH",
            &format!("{path}?fieldManager=regops.team"),
            "application/apply-patch+yaml",
            Some(
                &json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": {"name": "checkout", "namespace": "web"}}),
            ),
        )
        .unwrap();
    assert_eq!(
        removed["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "theirs"}])
    );
}

#[test]
fn a_custom_resource_is_watched() {
    let s = server_with_rollouts();
    let (_, list) = s.request("GET", ROLLOUTS, "", None).unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut conn = TcpStream::connect(s.addr()).unwrap();
    let auth = s
        .token()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        conn,
        "GET {ROLLOUTS}?watch=true&resourceVersion={rv}&timeoutSeconds=2 HTTP/1.1\r\nHost: x\r\n{auth}Accept: application/json\r\n\r\n"
    )
    .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (code, _) = s
        .request(
            "POST",
            ROLLOUTS,
            "application/json",
            Some(&rollout("new", "web", &[])),
        )
        .unwrap();
    assert_eq!(code, 201);
    let mut events = Vec::new();
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        if line == "0\r\n" {
            break;
        }
        if let Ok(v) = serde_json::from_str::<Value>(line.trim())
            && v.get("type").is_some()
        {
            events.push(v);
        }
        line.clear();
    }
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["kind"], "Rollout");
    assert_eq!(events[0]["object"]["metadata"]["name"], "new");
}
