//! Fault injection and the request log.

use std::time::Duration;

use crate::api::Action;

/// What a fault does to a matching request.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultAction {
    /// Answer with this status (a Kubernetes `Status` body), without touching the store.
    Status { code: u16, retry_after: Option<u64> },
    /// Answer with a `Status` of this code whose `message` is this text, as it is, without
    /// touching the store: what a server says is data to its client, and a hostile server
    /// (see [`crate::hostile`]) says what it likes there.
    StatusMessage { code: u16, message: String },
    /// Wait before handling the request normally (the store is untouched until then: a
    /// client that gives up meanwhile has changed nothing).
    Latency(Duration),
    /// Handle the request at once, but answer only this long after it arrived: a server whose
    /// response time is this, doing its work within it, as an API server with parallel
    /// handlers does. The store's own (serialised) time is then hidden inside the response
    /// time instead of adding to it, so a client's pipelining is what shows.
    ResponseTime(Duration),
    /// Drop the connection without answering.
    CloseConnection,
    /// Carry the request out (the store changes), then drop the connection without answering:
    /// "applied, but the response was lost".
    CommitThenDrop,
    /// Carry the request out, then answer with this status instead of the result (a proxy's
    /// 502/503/504 after the API server had done the work).
    CommitThenStatus(u16),
    /// Answer a LIST with a page of objects never listed before (as many as its `limit` asks,
    /// 500 without one) and a fresh `continue` token, every time, without touching the store:
    /// a hostile server's LIST that never ends (see [`crate::hostile`]).
    EndlessList,
    /// Answer a watch with `ADDED` events of objects never seen before, one after another as
    /// fast as the client reads them, until it hangs up, without touching the store: a
    /// hostile server's watch that only ever adds (see [`crate::hostile`]).
    EndlessWatch,
}

/// Which requests a fault applies to, and how often.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// `get`, `list`, `create`, `update`, `patch`, `delete`, ...; `None` for any.
    pub verb: Option<String>,
    /// `secrets`, `serviceaccounts`, ...; `None` for any.
    pub resource: Option<String>,
    /// Only requests in this namespace (its path's `/namespaces/{ns}/`).
    pub namespace: Option<String>,
    pub action: FaultAction,
    /// Only the Nth matching request (1-based).
    pub nth: Option<u64>,
    /// A share (0.0-1.0) of matching requests, chosen by a seeded generator (repeatable).
    pub share: Option<f64>,
    /// At most this many times in all.
    pub times: Option<u64>,
    pub(crate) matched: u64,
    pub(crate) fired: u64,
}

impl Fault {
    pub fn new(action: FaultAction) -> Self {
        Fault {
            verb: None,
            resource: None,
            namespace: None,
            action,
            nth: None,
            share: None,
            times: None,
            matched: 0,
            fired: 0,
        }
    }
    /// A fault answering with `code` (no Retry-After).
    pub fn status(code: u16) -> Self {
        Fault::new(FaultAction::Status {
            code,
            retry_after: None,
        })
    }
    /// A fault answering with `code` and a `Status` whose `message` is `message`.
    pub fn status_message(code: u16, message: impl Into<String>) -> Self {
        Fault::new(FaultAction::StatusMessage {
            code,
            message: message.into(),
        })
    }
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.into());
        self
    }
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.into());
        self
    }
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.into());
        self
    }
    pub fn nth(mut self, n: u64) -> Self {
        self.nth = Some(n);
        self
    }
    pub fn share(mut self, share: f64) -> Self {
        self.share = Some(share);
        self
    }
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Whether the fault fires for this request; `roll` is a uniform sample in [0, 1).
    pub(crate) fn fires(&mut self, action: Option<&Action>, roll: f64) -> bool {
        let verb_ok = self
            .verb
            .as_deref()
            .is_none_or(|v| action.is_some_and(|a| a.verb == v));
        let res_ok = self
            .resource
            .as_deref()
            .is_none_or(|r| action.is_some_and(|a| a.resource == r));
        let ns_ok = self
            .namespace
            .as_deref()
            .is_none_or(|n| action.is_some_and(|a| a.namespace.as_deref() == Some(n)));
        if !(verb_ok && res_ok && ns_ok) {
            return false;
        }
        self.matched += 1;
        if self.times.is_some_and(|t| self.fired >= t) {
            return false;
        }
        let hit = match (self.nth, self.share) {
            (Some(n), _) => self.matched == n,
            (None, Some(s)) => roll < s,
            (None, None) => true,
        };
        if hit {
            self.fired += 1;
        }
        hit
    }
}

/// One served request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub method: String,
    /// The client's User-Agent (regops names its process there, as kubectl names itself), so
    /// that the writes of two clients can be told apart.
    pub user_agent: String,
    /// The RBAC verb (`list`, `patch`, ...), or empty for discovery and unknown paths.
    pub verb: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub path: String,
    pub query: String,
    pub status: u16,
    pub dry_run: bool,
    /// The server's own time for this request: handling and serialising the answer, not
    /// injected latency (so a benchmark can tell the server's cost from the client's).
    pub server_time: Duration,
    /// When the request arrived (before any injected latency): latencies between requests,
    /// such as a namespace's create and the Secret written for it, are read off these.
    pub at: std::time::Instant,
    /// When the answer was handed back (after any injected latency or response time): with
    /// `at`, the span the request was in flight, so that requests in flight at once (to one
    /// server or to several) can be counted from the logs instead of timed.
    pub answered: std::time::Instant,
    /// The body sent, for a create, update or patch, when the server keeps them
    /// ([`crate::TestServer::record_bodies`]).
    pub body: Option<Vec<u8>>,
}

impl LogEntry {
    /// Whether this request and `other` were in flight at the same time.
    pub fn overlaps(&self, other: &LogEntry) -> bool {
        self.at < other.answered && other.at < self.answered
    }
}

impl LogEntry {
    /// Whether the request could change the store (a write that was not a dry run).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        ) && !self.dry_run
    }
}

/// A small deterministic generator (SplitMix64), so shares of faults repeat run to run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}
