//! A Kubernetes API server for tests.
//!
//! It serves namespaces, secrets, serviceaccounts, deployments, statefulsets, daemonsets,
//! replicasets, jobs, cronjobs and leases over HTTP, with the API's real semantics for what regops relies on:
//! discovery, resourceVersion and conflicts, Status errors, label and field selectors, paging,
//! merge / JSON / strategic merge patch and server-side apply with managedFields, Secret
//! validation, `dryRun=All`, a `default` ServiceAccount per namespace, bearer-token
//! authentication and RBAC-like denial. Tests inject faults (statuses, latency, dropped
//! connections) and read a log of every request. It can also play a hostile server
//! ([`hostile`]): names no real API server stores, and `Status` messages made to do harm.
//!
//! ```no_run
//! let server = kube_test_server::TestServer::start(kube_test_server::Config::default()).unwrap();
//! let kubeconfig = std::env::temp_dir().join("kubeconfig");
//! server.write_kubeconfig(&kubeconfig).unwrap();
//! // run the binary under test with --kubeconfig, then:
//! let writes = server.log().iter().filter(|e| e.is_write()).count();
//! # let _ = writes;
//! ```

pub mod api;
pub mod discovery;
pub mod faults;
pub mod field_validation;
pub mod fields;
pub mod hostile;
pub mod openapi;
pub mod protobuf;
pub mod resources;
pub mod selector;
pub mod server;
pub mod status;
mod tls;
pub mod validation;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;

pub use faults::{Fault, FaultAction, LogEntry};
pub use server::{Policy, Rule};
pub use status::ApiError;

/// How to start a server.
#[derive(Clone, Debug)]
pub struct Config {
    /// The bearer token every request must carry; `None` accepts anonymous requests.
    pub token: Option<String>,
    /// Allow only what these rules allow (403 for the rest); `None` allows everything.
    pub policy: Option<Policy>,
    /// Seed for the generator behind `Fault::share`.
    pub seed: u64,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Serve HTTPS with a generated CA (written into the kubeconfig) instead of plain HTTP.
    /// kubectl sends bearer tokens only over TLS.
    pub tls: bool,
    /// Serve the API under this path (`/k8s/clusters/c-m-abc`), as Rancher's proxy serves
    /// each downstream cluster; the kubeconfig's server URL then ends with it, and requests
    /// outside it are 404.
    pub path_prefix: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            token: Some("test-token".into()),
            policy: None,
            seed: 42,
            port: 0,
            tls: false,
            path_prefix: None,
        }
    }
}

/// A running server; stopped when dropped.
pub struct TestServer {
    addr: SocketAddr,
    token: Option<String>,
    shared: Arc<server::Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    ca_pem: Option<String>,
}

impl TestServer {
    /// Starts the server on 127.0.0.1 in a thread of its own (usable from sync and async tests).
    pub fn start(config: Config) -> std::io::Result<TestServer> {
        let shared = Arc::new(server::Shared {
            inner: Mutex::new(server::Inner {
                store: api::Store::default(),
                faults: Vec::new(),
                unfired: Vec::new(),
                rng: faults::Rng::new(config.seed),
                log: Vec::new(),
                policy: config.policy.clone(),
            }),
            token: config.token.clone(),
            changed: tokio::sync::Notify::new(),
            bookmark_ms: std::sync::atomic::AtomicU64::new(60_000),
            watch_epoch: std::sync::atomic::AtomicU64::new(0),
            path_prefix: config.path_prefix.clone(),
            record_bodies: std::sync::atomic::AtomicBool::new(false),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener =
            runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", config.port)))?;
        let addr = server::bound_addr(&listener)?;
        let tls = if config.tls {
            Some(tls::generate()?)
        } else {
            None
        };
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        let acceptor = tls.map(|t| t.acceptor);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("kube-test-server".into())
            .spawn(move || {
                runtime.block_on(server::run(listener, thread_shared, acceptor, rx));
            })?;
        let server = TestServer {
            addr,
            token: config.token,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
            ca_pem,
        };
        // Every cluster has these.
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            server.seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})).map_err(std::io::Error::other)?;
        }
        server.clear_log();
        Ok(server)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's URL, with the path prefix when it has one (as a kubeconfig's `server`).
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            if self.ca_pem.is_some() {
                "https"
            } else {
                "http"
            },
            self.addr,
            self.shared.path_prefix.as_deref().unwrap_or("")
        )
    }

    /// The CA certificate (PEM) when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A kubeconfig for this server: one cluster, one user (bearer token), one context,
    /// current, with `namespace` as its default namespace.
    pub fn kubeconfig(&self) -> String {
        let user = match &self.token {
            Some(t) => format!("    token: {t}\n"),
            None => "    {}\n".to_string(),
        };
        use base64::Engine;
        let ca = self
            .ca_pem
            .as_ref()
            .map(|pem| {
                format!(
                    "    certificate-authority-data: {}\n",
                    base64::engine::general_purpose::STANDARD.encode(pem)
                )
            })
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-test-server\n  cluster:\n    server: {}\n{ca}contexts:\n- name: kube-test-server\n  context:\n    cluster: kube-test-server\n    user: test-user\n    namespace: default\ncurrent-context: kube-test-server\nusers:\n- name: test-user\n  user:\n{user}",
            self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Creates an object as a client would (validation, defaults, managedFields by `seed`).
    /// A namespace's `default` ServiceAccount may be seeded to replace the automatic one.
    pub fn seed(&self, obj: Value) -> Result<Value, ApiError> {
        let seeded = self.shared.lock().store.seed(obj, "seed");
        self.shared.changed.notify_waiters();
        seeded
    }

    /// A write as the cluster's administrator: carried out in the store as a request would be
    /// (validation, field managers, watch events), but outside the request log, the faults
    /// and the RBAC policy, so a test can change the cluster while regops runs under a policy.
    pub fn admin(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &Value,
    ) -> (u16, Value) {
        let req = crate::api::Request {
            method: method.into(),
            path: path.into(),
            content_type: content_type.into(),
            user_agent: "kubectl/admin".into(),
            body: body.to_string().into_bytes(),
            ..crate::api::Request::default()
        };
        let r = self.shared.lock().store.handle(&req);
        self.shared.changed.notify_waiters();
        let body = match r.raw {
            Some(raw) => serde_json::from_slice(&raw).unwrap_or(Value::Null),
            None => r.body,
        };
        (r.status, body)
    }

    /// The store's current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().store.resource_version()
    }

    /// Keeps only the latest `n` changes for watches: a watch from an older version gets 410.
    pub fn set_watch_history(&self, n: usize) {
        self.shared.lock().store.set_watch_history(n);
    }

    /// How often a quiet watch that allows bookmarks gets one (the API server: about a minute).
    pub fn set_bookmark_interval(&self, every: std::time::Duration) {
        let ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        self.shared
            .bookmark_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Ends every open watch cleanly, as an API server restart or a proxy dropping idle
    /// connections does: clients resume from the last version they saw (or get 410 Gone if
    /// it is no longer kept).
    pub fn end_watches(&self) {
        self.shared
            .watch_epoch
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.shared.changed.notify_waiters();
    }

    pub fn add_fault(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        let mut inner = self.shared.lock();
        let cleared = std::mem::take(&mut inner.faults);
        inner
            .unfired
            .extend(cleared.into_iter().filter(|f| f.fired == 0));
        drop(inner);
    }

    /// Every failure fault added that never fired, cleared or not (the server checks this is
    /// empty when it goes away), so that a fault test cannot pass without meeting its fault.
    /// Latency and answer-time faults shape timing rather than fail a request (a benchmark
    /// slows every write verb, some of which a run may not use), and are not counted.
    pub fn faults_never_fired(&self) -> Vec<Fault> {
        let inner = self.shared.lock();
        inner
            .unfired
            .iter()
            .chain(inner.faults.iter().filter(|f| f.fired == 0))
            .filter(|f| {
                !matches!(
                    f.action,
                    FaultAction::Latency(_) | FaultAction::ResponseTime(_)
                )
            })
            .cloned()
            .collect()
    }

    /// How many times each fault added has fired, in the order they were added: a test
    /// asserts its fault was met, including one whose request the client gave up on (a latency
    /// past the client's timeout leaves no answered request in the log).
    pub fn faults_fired(&self) -> Vec<u64> {
        self.shared.lock().faults.iter().map(|f| f.fired).collect()
    }

    pub fn set_policy(&self, policy: Option<Policy>) {
        self.shared.lock().policy = policy;
    }

    /// From now on, keep the body of each request that sends one (create, update, patch) in
    /// its log entry (off by default: a benchmark's thousands of writes need not be kept).
    pub fn record_bodies(&self, on: bool) {
        self.shared
            .record_bodies
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Every request served since the start (or the last `clear_log`).
    pub fn log(&self) -> Vec<LogEntry> {
        self.shared.lock().log.clone()
    }

    pub fn clear_log(&self) {
        self.shared.lock().log.clear();
    }

    /// Every stored object of a resource (`secrets`, `serviceaccounts`, ...), all namespaces.
    pub fn objects(&self, plural: &str) -> Vec<Value> {
        self.shared.lock().store.objects(plural)
    }

    /// Sends one request as a client would (with the bearer token), over plain HTTP, and
    /// returns the status code and the JSON body (null when there is none). For tests that
    /// change the cluster behind regops' back, as a person with kubectl would.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> std::io::Result<(u16, Value)> {
        use std::io::{Read, Write};
        let path = format!("{}{path}", self.shared.path_prefix.as_deref().unwrap_or(""));
        let mut s = std::net::TcpStream::connect(self.addr)?;
        let payload = body.map(Value::to_string).unwrap_or_default();
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: kube-test-server\r\nUser-Agent: kubectl/test\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
            payload.len()
        )?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("no HTTP response"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other("no status"))?;
        Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
    }

    /// One stored object.
    pub fn object(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.objects(plural).into_iter().find(|o| {
            o["metadata"]["name"] == name
                && (namespace.is_empty() || o["metadata"]["namespace"] == namespace)
        })
    }
}

impl Drop for TestServer {
    /// Stops the server; then, unless the test is already failing, fails it if a fault it
    /// added never fired: a fault test that never met its fault tests nothing.
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if !std::thread::panicking() {
            let never = self.faults_never_fired();
            assert!(
                never.is_empty(),
                "faults the test added never fired, so it did not test them: {never:?}"
            );
        }
    }
}
