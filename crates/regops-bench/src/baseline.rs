//! The baseline: what a per-object client sends for the same job. It does what a copy script
//! built on `kubectl` does: list the namespaces, then per namespace GET the Secret and create
//! it when missing, GET the `default` ServiceAccount and PATCH it when the entry is missing,
//! list the Deployments, and GET then PATCH each one that pulls from the registry. Requests
//! are counted from the server's log, like regops' own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use kube_test_server::TestServer;
use serde_json::{Value, json};

use crate::cluster::{PULL_SECRET, REGISTRY, SCOPE_LABEL};

/// A keep-alive HTTP/1.1 connection to the test server, as kubectl's client keeps one.
struct Conn {
    reader: BufReader<TcpStream>,
    token: Option<String>,
}

impl Conn {
    fn open(server: &TestServer) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(server.addr())?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream),
            token: server.token().map(str::to_string),
        })
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> std::io::Result<(u16, Value)> {
        let payload = body.map(Value::to_string).unwrap_or_default();
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: kube-test-server\r\nUser-Agent: kubectl/baseline\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        );
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(payload.as_bytes())?;
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line)?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0; length];
        self.reader.read_exact(&mut buf)?;
        Ok((status, serde_json::from_slice(&buf).unwrap_or(Value::Null)))
    }
}

fn io(e: std::io::Error) -> String {
    format!("baseline client: {e}")
}

/// Every item of a paged LIST (500 a page, as kubectl asks).
fn list(conn: &mut Conn, path: &str, selector: Option<&str>) -> Result<Vec<Value>, String> {
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let mut q = format!("{path}?limit=500");
        if let Some(s) = selector {
            q.push_str(&format!("&labelSelector={s}"));
        }
        if !token.is_empty() {
            q.push_str(&format!("&continue={token}"));
        }
        let (status, page) = conn.send("GET", &q, "application/json", None).map_err(io)?;
        if status != 200 {
            return Err(format!("baseline client: list {path}: {status}"));
        }
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        token = page["metadata"]["continue"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if token.is_empty() {
            return Ok(items);
        }
    }
}

fn has_entry(list: &Value) -> bool {
    list.as_array()
        .is_some_and(|l| l.iter().any(|e| e["name"] == PULL_SECRET))
}

/// One run of the per-object client over the whole scope.
pub fn run(server: &TestServer) -> Result<(), String> {
    let mut conn = Conn::open(server).map_err(io)?;
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": PULL_SECRET},
        "type": "kubernetes.io/dockerconfigjson",
        // A placeholder login: the baseline counts requests, it proves nothing about data.
        "data": {".dockerconfigjson": "eyJhdXRocyI6e319"},
    });
    let namespaces = list(
        &mut conn,
        "/api/v1/namespaces",
        Some(&format!("{SCOPE_LABEL}%3Dyes")),
    )?;
    for ns in namespaces {
        let ns = ns["metadata"]["name"].as_str().unwrap_or("").to_string();
        let secret_path = format!("/api/v1/namespaces/{ns}/secrets/{PULL_SECRET}");
        let (status, _) = conn
            .send("GET", &secret_path, "application/json", None)
            .map_err(io)?;
        if status == 404 {
            conn.send(
                "POST",
                &format!("/api/v1/namespaces/{ns}/secrets"),
                "application/json",
                Some(&secret),
            )
            .map_err(io)?;
        }
        let sa_path = format!("/api/v1/namespaces/{ns}/serviceaccounts/default");
        let (_, sa) = conn
            .send("GET", &sa_path, "application/json", None)
            .map_err(io)?;
        if !has_entry(&sa["imagePullSecrets"]) {
            let mut entries = sa["imagePullSecrets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            entries.push(json!({"name": PULL_SECRET}));
            conn.send(
                "PATCH",
                &sa_path,
                "application/merge-patch+json",
                Some(&json!({"imagePullSecrets": entries})),
            )
            .map_err(io)?;
        }
        let deployments = list(
            &mut conn,
            &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            None,
        )?;
        for d in deployments {
            let pulls = d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["image"].as_str().is_some_and(|i| i.starts_with(REGISTRY)))
                });
            if !pulls {
                continue;
            }
            let name = d["metadata"]["name"].as_str().unwrap_or("");
            let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}");
            let (_, fresh) = conn
                .send("GET", &path, "application/json", None)
                .map_err(io)?;
            if !has_entry(&fresh["spec"]["template"]["spec"]["imagePullSecrets"]) {
                conn.send(
                    "PATCH",
                    &path,
                    "application/strategic-merge-patch+json",
                    Some(&json!({"spec": {"template": {"spec": {"imagePullSecrets": [{"name": PULL_SECRET}]}}}})),
                )
                .map_err(io)?;
            }
        }
    }
    Ok(())
}
