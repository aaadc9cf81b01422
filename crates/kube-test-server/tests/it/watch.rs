//! `watch=true` as kube-apiserver serves it: a 200 response streaming one JSON `WatchEvent` per
//! line (k8s.io/apimachinery/pkg/apis/meta/v1/watch.go), `resourceVersion` semantics as the
//! API concepts page describes them ("Efficient detection of changes", "Semantics for watch"),
//! 410 `Expired` as an ERROR event on a 200 (kubernetes/kubernetes#25151), bookmarks
//! (`allowWatchBookmarks`, KEP-956) and `timeoutSeconds`; and kubectl's `get --watch`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kube_test_server::{Config, TestServer};
use serde_json::{Value, json};

/// A watch over a raw connection: its events arrive on a channel as the server sends them.
struct Watch {
    events: mpsc::Receiver<Value>,
    status: u16,
}

impl Watch {
    fn open(server: &TestServer, path_and_query: &str) -> Watch {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        let auth = server
            .token()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET {path_and_query} HTTP/1.1\r\nHost: kube-test-server\r\nUser-Agent: watch-test\r\n{auth}Accept: application/json\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            // Headers, then chunks: a size line, the data (one event and its newline), CRLF;
            // a chunk of size 0 ends the response (the connection may stay open).
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line == "0\r\n" {
                    return;
                }
                if line.starts_with('{')
                    && let Ok(v) = serde_json::from_str::<Value>(line.trim())
                    && tx.send(v).is_err()
                {
                    return;
                }
                line.clear();
            }
        });
        Watch { events: rx, status }
    }

    fn next(&self) -> Value {
        self.events
            .recv_timeout(Duration::from_secs(5))
            .expect("an event within 5 s")
    }

    /// Events until none comes for `quiet`.
    fn drain(&self, quiet: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(v) = self.events.recv_timeout(quiet) {
            out.push(v);
        }
        out
    }
}

fn server() -> TestServer {
    TestServer::start(Config::default()).unwrap()
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn secret(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
        "type": "Opaque", "data": {"k": "dg=="}})
}

fn names(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("").to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

fn list_rv(server: &TestServer, path: &str) -> String {
    let (code, list) = server.request("GET", path, "", None).unwrap();
    assert_eq!(code, 200);
    list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn without_a_version_a_watch_sends_what_exists_then_every_change() {
    let s = server();
    s.seed(namespace("web", json!({}))).unwrap();
    let w = Watch::open(&s, "/api/v1/namespaces?watch=true");
    assert_eq!(w.status, 200);
    let first = w.drain(Duration::from_millis(300));
    let added: Vec<String> = names(&first)
        .into_iter()
        .filter(|(t, _)| t == "ADDED")
        .map(|(_, n)| n)
        .collect();
    for ns in ["default", "kube-system", "web"] {
        assert!(added.contains(&ns.to_string()), "{added:?}");
    }
    s.request(
        "POST",
        "/api/v1/namespaces",
        "application/json",
        Some(&namespace("new", json!({}))),
    )
    .unwrap();
    let e = w.next();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("new"))
    );
    // Deleted: marked terminating, finalized by the namespace controller, then gone, at a
    // newer version each time.
    let (code, _) = s
        .request("DELETE", "/api/v1/namespaces/new", "", None)
        .unwrap();
    assert_eq!(code, 200);
    let after = names(&w.drain(Duration::from_millis(600)));
    assert_eq!(
        after,
        [
            ("MODIFIED".to_string(), "new".to_string()),
            ("MODIFIED".to_string(), "new".to_string()),
            ("DELETED".to_string(), "new".to_string())
        ]
    );
}

#[test]
fn from_a_version_only_later_changes_in_the_watched_namespace_and_selection() {
    let s = server();
    for ns in ["a", "b"] {
        s.seed(namespace(ns, json!({}))).unwrap();
    }
    s.seed(secret("a", "before")).unwrap();
    let rv = list_rv(&s, "/api/v1/namespaces/a/secrets");
    let w = Watch::open(
        &s,
        &format!("/api/v1/namespaces/a/secrets?watch=1&resourceVersion={rv}"),
    );
    let labelled = Watch::open(
        &s,
        &format!("/api/v1/secrets?watch=true&resourceVersion={rv}&labelSelector=team%3Dweb"),
    );
    s.seed(secret("b", "elsewhere")).unwrap();
    s.seed(secret("a", "after")).unwrap();
    let mut tagged = secret("b", "tagged");
    tagged["metadata"]["labels"] = json!({"team": "web"});
    s.seed(tagged).unwrap();
    let events = w.drain(Duration::from_millis(300));
    assert_eq!(names(&events), [("ADDED".to_string(), "after".to_string())]);
    let seen = names(&labelled.drain(Duration::from_millis(300)));
    assert_eq!(seen, [("ADDED".to_string(), "tagged".to_string())]);
    // The event carries the object as a GET returns it, at its new version.
    let (_, got) = s
        .request("GET", "/api/v1/namespaces/a/secrets/after", "", None)
        .unwrap();
    assert_eq!(
        events[0]["object"]["metadata"]["resourceVersion"],
        got["metadata"]["resourceVersion"]
    );
    assert_eq!(events[0]["object"]["kind"], "Secret");
}

#[test]
fn a_version_older_than_the_changes_kept_is_410_expired() {
    let s = server();
    s.seed(namespace("web", json!({}))).unwrap();
    let rv = list_rv(&s, "/api/v1/namespaces/web/secrets");
    s.set_watch_history(2);
    for i in 0..5 {
        s.seed(secret("web", &format!("s{i}"))).unwrap();
    }
    let w = Watch::open(
        &s,
        &format!("/api/v1/namespaces/web/secrets?watch=true&resourceVersion={rv}"),
    );
    // A 200 whose one event is the error, as the API server answers it.
    assert_eq!(w.status, 200);
    let e = w.next();
    assert_eq!(e["type"], "ERROR", "{e}");
    assert_eq!(e["object"]["kind"], "Status");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    assert!(
        e["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version"),
        "{e}"
    );
    // From a version still kept, the watch works.
    let recent = list_rv(&s, "/api/v1/namespaces/web/secrets");
    let w = Watch::open(
        &s,
        &format!("/api/v1/namespaces/web/secrets?watch=true&resourceVersion={recent}"),
    );
    s.seed(secret("web", "next")).unwrap();
    assert_eq!(w.next()["object"]["metadata"]["name"], "next");
}

#[test]
fn a_quiet_watch_gets_bookmarks_at_the_version_it_has_reached() {
    let s = server();
    s.seed(namespace("web", json!({}))).unwrap();
    s.set_bookmark_interval(Duration::from_millis(100));
    let rv = list_rv(&s, "/api/v1/namespaces/web/secrets");
    let w = Watch::open(
        &s,
        &format!(
            "/api/v1/namespaces/web/secrets?watch=true&resourceVersion={rv}&allowWatchBookmarks=true"
        ),
    );
    // Changes elsewhere move the version on; the bookmark says the watch has seen up to there.
    s.seed(secret("default", "elsewhere")).unwrap();
    let now = s.resource_version();
    let mark = w.next();
    assert_eq!(mark["type"], "BOOKMARK", "{mark}");
    assert_eq!(mark["object"]["kind"], "Secret");
    let at: u64 = mark["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(at >= now, "bookmark at {at}, store at {now}");
    // Without allowWatchBookmarks, none.
    let plain = Watch::open(
        &s,
        &format!("/api/v1/namespaces/web/secrets?watch=true&resourceVersion={rv}"),
    );
    assert!(plain.drain(Duration::from_millis(400)).is_empty());
}

#[test]
fn timeout_seconds_ends_the_stream() {
    let s = server();
    let started = Instant::now();
    let w = Watch::open(
        &s,
        "/api/v1/secrets?watch=true&timeoutSeconds=1&resourceVersion=1",
    );
    // The reader thread ends when the server closes the stream; the channel then disconnects.
    loop {
        match w.events.recv_timeout(Duration::from_secs(5)) {
            Ok(_) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the stream did not end"),
        }
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

/// A live watch is never too old, however many changes to other resources pass it by: only
/// a watch started (or resumed) from a version older than the kept changes gets 410.
#[test]
fn a_quiet_live_watch_is_not_aged_out_by_other_changes() {
    let s = server();
    s.set_watch_history(3);
    let rv = list_rv(&s, "/api/v1/secrets");
    let w = Watch::open(
        &s,
        &format!("/api/v1/secrets?watch=true&resourceVersion={rv}"),
    );
    assert_eq!(w.status, 200);
    // Live: it has delivered a change.
    s.seed(secret("default", "first")).unwrap();
    assert_eq!(w.next()["object"]["metadata"]["name"], "first");
    // Ten namespaces (each with its `default` ServiceAccount: twenty changes) are far more
    // than the three changes kept, made as fast as the store takes them: the watch keeps up
    // whether or not its stream has looked at each (the API server's cacher hands every
    // change to its live watchers: staging/src/k8s.io/apiserver/pkg/storage/cacher).
    for i in 0..10 {
        s.seed(namespace(&format!("busy-{i}"), json!({}))).unwrap();
    }
    s.seed(secret("busy-9", "late")).unwrap();
    let e = w.next();
    assert_eq!(e["type"], "ADDED", "{e}");
    assert_eq!(e["object"]["metadata"]["name"], "late");
}

/// `end_watches` closes every open stream cleanly (the terminating zero-length chunk), as an
/// API server restart does; a client resuming from its last version sees the changes since.
#[test]
fn end_watches_closes_open_streams_and_a_resume_misses_nothing() {
    let s = server();
    let rv = list_rv(&s, "/api/v1/namespaces");
    let w = Watch::open(
        &s,
        &format!("/api/v1/namespaces?watch=true&resourceVersion={rv}"),
    );
    s.seed(namespace("before-end", json!({}))).unwrap();
    let seen = w.next();
    let last = seen["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    s.end_watches();
    match w.events.recv_timeout(Duration::from_secs(5)) {
        Ok(v) => panic!("no event after the end: {v}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the stream did not end"),
    }
    s.seed(namespace("while-away", json!({}))).unwrap();
    let resumed = Watch::open(
        &s,
        &format!("/api/v1/namespaces?watch=true&resourceVersion={last}"),
    );
    assert_eq!(resumed.status, 200);
    assert_eq!(
        names(&[resumed.next()]),
        [("ADDED".to_string(), "while-away".to_string())]
    );
}

#[test]
#[ignore = "needs kubectl (Debian: kubernetes-client)"]
fn kubectl_get_watch_sees_a_new_namespace() {
    common::require_kubectl();
    // kubectl sends its bearer token only over TLS.
    let s = TestServer::start(Config {
        tls: true,
        ..Config::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    s.write_kubeconfig(&kubeconfig).unwrap();
    let mut child = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "namespaces", "--watch", "--output", "name"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The initial list, then the namespace created while it watches.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l == "namespace/default") && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    s.seed(namespace("watched", json!({}))).unwrap();
    while !seen.iter().any(|l| l == "namespace/watched") && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        seen.iter().any(|l| l == "namespace/watched"),
        "kubectl saw {seen:?}; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A deleted namespace, as a watch sees it: `MODIFIED` (terminating, still holding the
/// `kubernetes` finalizer), its content `DELETED`, `MODIFIED` (the finalizer removed by the
/// namespace controller), `DELETED`: the order kube-apiserver and its namespace controller
/// produce (pkg/controller/namespace/deletion/namespaced_resources_deleter.go deletes the
/// content, then finalizes).
#[test]
fn a_deleted_namespace_is_watched_terminating_emptied_finalized_and_gone() {
    let s = server();
    s.seed(namespace("going", json!({}))).unwrap();
    s.seed(secret("going", "inside")).unwrap();
    let from = s.resource_version();
    let nss = Watch::open(
        &s,
        &format!("/api/v1/namespaces?watch=true&resourceVersion={from}"),
    );
    let secrets = Watch::open(
        &s,
        &format!("/api/v1/namespaces/going/secrets?watch=true&resourceVersion={from}"),
    );
    assert_eq!((nss.status, secrets.status), (200, 200));
    let (code, _) = s
        .request(
            "DELETE",
            "/api/v1/namespaces/going",
            "application/json",
            None,
        )
        .unwrap();
    assert_eq!(code, 200);
    let next = |w: &Watch| {
        w.events
            .recv_timeout(Duration::from_secs(5))
            .expect("an event")
    };
    let seen: Vec<(String, Value)> = (0..3)
        .map(|_| {
            let e = next(&nss);
            (
                e["type"].as_str().unwrap().to_string(),
                e["object"]["spec"]["finalizers"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("MODIFIED".to_string(), json!(["kubernetes"])),
            ("MODIFIED".to_string(), json!([])),
            ("DELETED".to_string(), json!([])),
        ]
    );
    let e = next(&secrets);
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("DELETED"), Some("inside"))
    );
}
