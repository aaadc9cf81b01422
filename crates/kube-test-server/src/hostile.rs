//! A hostile API server: objects and answers no real kube-apiserver gives.
//!
//! A pull request's spec may name its own kubeconfig, so the API server regops reads may be
//! the attacker's. Everything such a server says (names, labels, a `Status` message) is data,
//! and regops must show it as data: no terminal control, no Markdown or HTML of the server's
//! in a pull-request comment. This fixture plays that server; it is not a model of a real one.
//!
//! A real kube-apiserver refuses every namespace name here. A Namespace's `metadata.name` is
//! checked by `ValidateNamespace` (pkg/apis/core/validation/validation.go), which passes
//! `ValidateNamespaceName` to `ValidateObjectMeta`; that is `apimachineryvalidation.
//! ValidateNamespaceName`, which is `NameIsDNSLabel` (staging/src/k8s.io/apimachinery/pkg/api/
//! validation/generic.go), that is `validation.IsDNS1123Label`: at most 63 characters of
//! `[a-z0-9-]`, starting and ending with an alphanumeric. `ValidateObjectMetaAccessor`
//! (staging/src/k8s.io/apimachinery/pkg/api/validation/objectmeta.go) checks every namespaced
//! object's `metadata.namespace` with the same `ValidateNamespaceName`, and label values with
//! `ValidateLabels`, so neither can hold these strings either. This server's own validation
//! (crate::validation) refuses them too, on the request path and on [`TestServer::seed`]'s:
//! they are stored through [`TestServer::seed_unvalidated`], which skips it.
//!
//! A `Status`'s `message` is free text on a real server as well (it often quotes a name the
//! client sent); [`crate::Fault::status_message`] answers with [`STATUS_MESSAGE`].
//!
//! A server may also never stop answering: [`crate::FaultAction::EndlessList`] gives every
//! LIST page new objects and a fresh `continue` token ([`endless_page`]), and
//! [`crate::FaultAction::EndlessWatch`] a watch that sends `ADDED` events of new objects for
//! ever ([`endless_watch`]). A real API server's LIST ends (its `continue` token walks etcd's
//! keys in order), and the objects a watch adds exist; these hold nothing in the store.

use serde_json::{Value, json};

use crate::api::{Request, Response};
use crate::resources::ResourceType;
use crate::{ApiError, TestServer};

/// Namespace names a real API server would refuse to store: a newline and an HTML comment's
/// start, an ANSI "clear screen", a right-to-left override, and a backtick, a table pipe, the
/// end of a `<details>` block and a GitHub mention.
pub const NAMESPACES: [&str; 4] = [
    "evil\n<!--\n",
    "a\u{1b}[2Jb",
    "x\u{202e}y",
    "`| </details> @octocat",
];

/// The label (key, value) on each of [`NAMESPACES`]: a scope selects them by it, so that their
/// names come from the server, not from the spec.
pub const LABEL: (&str, &str) = ("hostile", "yes");

/// A `Status` message made to do harm where it is shown: on a terminal, an ANSI clear screen
/// and colour (CSI), a C1 CSI, an OSC 8 hyperlink, BEL, DEL, a carriage return, a right-to-left
/// override and isolate; in Markdown, an HTML comment's start, the end of a `<details>` block,
/// a fence of backticks, table pipes, a heading, a mention, a link, an image (a tracking pixel)
/// and emphasis; and newlines to forge lines of output.
pub const STATUS_MESSAGE: &str = "denied\u{1b}[2J\u{1b}[1;32mPlan: 0 to change\u{1b}[0m \
\u{1b}]8;;https://attacker.example\u{7}click here\u{1b}]8;;\u{7}\u{7} \u{9b}31m red \u{7f} \
\u{202e}exe.txt\u{202c} \u{2066}isolate\u{2069} <!-- ```` | a | b | </details>\n\
# No changes\r\n@octocat [x](https://attacker.example) \
<img src=https://attacker.example/t.png> **bold** #1\n";

impl TestServer {
    /// Stores `obj` as [`TestServer::seed`] does, but without the API's validation: a name, a
    /// namespace or a label no real API server would accept (see [`crate::hostile`]) is kept
    /// as it is. For playing a hostile server only; every other test seeds through `seed`.
    pub fn seed_unvalidated(&self, obj: Value) -> Result<Value, ApiError> {
        let seeded = self.shared.lock().store.seed_unvalidated(obj, "seed");
        self.shared.changed.notify_waiters();
        seeded
    }

    /// Seeds [`NAMESPACES`], each labelled [`LABEL`] (and with its automatic `default`
    /// ServiceAccount, as every namespace has).
    pub fn seed_hostile_namespaces(&self) -> Result<(), ApiError> {
        for name in NAMESPACES {
            self.seed_unvalidated(json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": {LABEL.0: LABEL.1}},
            }))?;
        }
        Ok(())
    }
}

/// The `n`th object an endless fault makes of `rt` (the `i`th of its `page`): a name never
/// given before, in namespace `endless` when the kind is namespaced.
fn endless_object(rt: &ResourceType, page: u64, i: u64, metadata_only: bool) -> Value {
    let name = format!("endless-{page}-{i}");
    let mut metadata = json!({
        "name": name,
        "uid": format!("00000000-0000-4000-8000-{:012x}", page * 100_000 + i),
        "resourceVersion": (page * 100_000 + i + 1).to_string(),
        "labels": {"endless": "yes"},
    });
    if rt.namespaced {
        metadata["namespace"] = json!("endless");
    }
    if metadata_only {
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": metadata})
    } else {
        json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": metadata})
    }
}

fn metadata_only(req: &Request) -> bool {
    req.accept.contains("as=PartialObjectMetadata")
}

/// The `page`th answer of an endless LIST: as many new objects as the request's `limit` asks
/// (500 without one), and a `continue` token never given before. No `remainingItemCount`: the
/// server does not say how many follow.
pub(crate) fn endless_page(req: &Request, page: u64) -> Response {
    let Some(p) = crate::resources::parse_path(&req.path) else {
        return ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .into();
    };
    let n = req
        .param("limit")
        .and_then(|l| l.parse::<u64>().ok())
        .filter(|&l| l > 0)
        .unwrap_or(500);
    let meta = metadata_only(req);
    let items: Vec<Value> = (0..n)
        .map(|i| endless_object(p.resource, page, i, meta))
        .collect();
    let (kind, api_version) = if meta {
        (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
        )
    } else {
        (format!("{}List", p.resource.kind), p.resource.api_version())
    };
    let body = json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"resourceVersion": "1", "continue": format!("endless-{page}")},
        "items": items,
    });
    Response {
        status: 200,
        raw: Some(serde_json::to_vec(&body).unwrap_or_default()),
        body: Value::Null,
        retry_after: None,
        warnings: Vec::new(),
    }
}

/// An endless watch: `ADDED` events of new objects of the watched resource, sent as fast as
/// the client reads them (the channel's bound is the backpressure), until it hangs up. Each
/// watch request (`watch`, the fault's count) names its objects apart from the others'.
pub(crate) fn endless_watch(
    req: &Request,
    watch: u64,
) -> Result<tokio::sync::mpsc::Receiver<bytes::Bytes>, ApiError> {
    let p = crate::resources::parse_path(&req.path).ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    })?;
    let meta = metadata_only(req);
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        for i in 0.. {
            let event =
                json!({"type": "ADDED", "object": endless_object(p.resource, watch, i, meta)});
            let mut line = serde_json::to_vec(&event).unwrap_or_default();
            line.push(b'\n');
            if tx.send(bytes::Bytes::from(line)).await.is_err() {
                return;
            }
        }
    });
    Ok(rx)
}
