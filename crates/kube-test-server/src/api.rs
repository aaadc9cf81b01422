//! The API's behaviour over a generic store of JSON objects: one code path serves every
//! resource. No I/O here: a [`Request`] in, a [`Response`] out.

use std::cell::OnceCell;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::field_validation;
use crate::fields::{self, Managed};
use crate::resources::{self, ResourcePath, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::validation;

#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub content_type: String,
    pub user_agent: String,
    /// The Accept header: `as=PartialObjectMetadataList` asks for metadata only.
    pub accept: String,
    pub body: Vec<u8>,
}

impl Request {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// The body as JSON; `Null` when `raw` holds it already serialised (lists).
    pub body: Value,
    /// A body serialised ahead: lists are written from each object's cached bytes, so a page
    /// costs a copy, not a render.
    pub raw: Option<Vec<u8>>,
    pub retry_after: Option<u64>,
    /// Warnings for the client, sent as `Warning: 299 - "…"` headers (see
    /// crate::field_validation).
    pub warnings: Vec<String>,
}

impl Response {
    fn ok(status: u16, body: Value) -> Self {
        Response {
            status,
            body,
            raw: None,
            retry_after: None,
            warnings: Vec::new(),
        }
    }

    /// The body as JSON, parsing `raw` when the body was serialised ahead.
    pub fn json(&self) -> Value {
        match &self.raw {
            Some(raw) => serde_json::from_slice(raw).unwrap_or(Value::Null),
            None => self.body.clone(),
        }
    }
}

impl From<ApiError> for Response {
    fn from(e: ApiError) -> Self {
        Response {
            status: e.code,
            body: e.to_status(),
            raw: None,
            retry_after: e.retry_after,
            warnings: Vec::new(),
        }
    }
}

/// What a request does, in RBAC terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub verb: &'static str,
    pub resource: &'static str,
    pub group: &'static str,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

pub fn classify(req: &Request) -> Option<Action> {
    let p = resources::parse_path(&req.path)?;
    let verb = match (req.method.as_str(), p.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if req.param("watch").is_some_and(|w| w == "true" || w == "1") => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    let namespace = if p.resource.kind == "Namespace" {
        p.name.clone()
    } else {
        p.namespace.clone()
    };
    Some(Action {
        verb,
        resource: p.resource.plural,
        group: p.resource.group,
        namespace,
        name: p.name,
    })
}

struct Stored {
    obj: Value,
    managed: Managed,
    /// The object as a list item (rendered, without `apiVersion` and `kind`), serialised on
    /// the first LIST that returns it. Every write stores a new `Stored`, so it is never stale.
    listed: OnceCell<Vec<u8>>,
    /// The same for metadata-only lists (a `PartialObjectMetadata` item).
    listed_meta: OnceCell<Vec<u8>>,
}

impl Stored {
    fn new(obj: Value, managed: Managed) -> Self {
        Stored {
            obj,
            managed,
            listed: OnceCell::new(),
            listed_meta: OnceCell::new(),
        }
    }
}

/// A stored object as a LIST returns it, serialised from borrowed parts (no copy of the
/// object): without `apiVersion` and `kind` (the list says them), with `managedFields`; or, for
/// metadata-only lists, as a `PartialObjectMetadata`.
struct ListItem<'a> {
    obj: &'a Value,
    managed: Option<fields::ManagedFieldsJson<'a>>,
    metadata_only: bool,
    /// Keep `apiVersion` and `kind` (a single object, not a list item).
    whole: bool,
}

struct MetadataWithManaged<'a> {
    metadata: &'a Value,
    managed: Option<&'a fields::ManagedFieldsJson<'a>>,
}

impl serde::Serialize for MetadataWithManaged<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.metadata.as_object().into_iter().flatten() {
            if k != "managedFields" {
                m.serialize_entry(k, v)?;
            }
        }
        if let Some(managed) = self.managed {
            m.serialize_entry("managedFields", managed)?;
        }
        m.end()
    }
}

impl serde::Serialize for ListItem<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let metadata = MetadataWithManaged {
            metadata: &self.obj["metadata"],
            managed: self.managed.as_ref(),
        };
        let mut m = s.serialize_map(None)?;
        if self.metadata_only {
            m.serialize_entry("apiVersion", "meta.k8s.io/v1")?;
            m.serialize_entry("kind", "PartialObjectMetadata")?;
            m.serialize_entry("metadata", &metadata)?;
            return m.end();
        }
        for (k, v) in self.obj.as_object().into_iter().flatten() {
            match k.as_str() {
                "apiVersion" | "kind" if !self.whole => {}
                "metadata" => m.serialize_entry(k, &metadata)?,
                _ => m.serialize_entry(k, v)?,
            }
        }
        m.end()
    }
}

type Key = (&'static str, String, String);

/// What a LIST selects: the page's objects, whether more follow, and how many remain.
struct Selection<'a> {
    items: Vec<(&'a Key, &'a Stored)>,
    more: bool,
    remaining: Option<usize>,
}

/// The store: every object of every kind, the global resourceVersion, and the recent changes
/// for watches.
#[derive(Default)]
pub struct Store {
    objects: BTreeMap<Key, Stored>,
    rv: u64,
    uids: u64,
    /// This server's part of every uid (random, set at the first): two servers are two
    /// clusters, and their `kube-system` namespaces have different uids, as real ones do.
    uid_prefix: u64,
    names: u64,
    /// The latest changes, oldest first: a watch replays those after its resourceVersion.
    events: VecDeque<Event>,
    /// How many changes are kept (0: [`DEFAULT_WATCH_HISTORY`]).
    history: usize,
    /// The resourceVersion of the newest change no longer kept: a watch from before it is
    /// answered 410 Gone, as the API server's once etcd has compacted that far.
    compacted: u64,
    /// The open watches past their start, each with the version it has been given changes
    /// up to. The API server hands every change to its live watchers as it happens (the
    /// watch cache's dispatch, staging/src/k8s.io/apiserver/pkg/storage/cacher/cacher.go), so
    /// a live watch never misses a change however many others pass it by: changes after the
    /// oldest of these stay in `events` past `compacted` until the watch has taken them.
    live: BTreeMap<u64, u64>,
    live_ids: u64,
    /// Terminating namespaces the namespace controller is to finalize, and when.
    finalizing: Vec<(String, std::time::Instant)>,
}

/// How long after a namespace's deletion the namespace controller has emptied it and removed
/// its `kubernetes` finalizer (the real controller takes from milliseconds to minutes,
/// depending on what the namespace holds).
pub const NAMESPACE_FINALIZE_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// Changes kept for watches by default (kube-apiserver's watch cache keeps a bounded window
/// per resource, `--default-watch-cache-size`; a watch older than it relists).
pub const DEFAULT_WATCH_HISTORY: usize = 1_000;

/// One change of one object, as a watch sends it.
#[derive(Clone, Debug)]
pub struct Event {
    pub rv: u64,
    pub plural: &'static str,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub type_: &'static str,
    /// The object as a GET returns it (for `DELETED`, as it was, at the deletion's version).
    pub object: Value,
}

/// What a watch asks for: a resource, perhaps one namespace, and selectors.
pub struct WatchFilter {
    pub plural: &'static str,
    pub namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl WatchFilter {
    pub fn matches(&self, e: &Event) -> bool {
        e.plural == self.plural
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| e.object["metadata"]["namespace"].as_str() == Some(ns))
            && self
                .labels
                .matches(e.object["metadata"]["labels"].as_object())
            && self.fields.matches(&e.object)
    }
}

/// Where a watch starts, from its `resourceVersion` parameter.
pub enum WatchStart {
    /// Unset or "0": the current objects as `ADDED` events, then changes after the current
    /// version ("Get State and Start at Most Recent").
    Now,
    /// Changes after this version.
    After(u64),
}

/// The time as the API server writes it (RFC 3339, seconds, UTC).
fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn manager_of(req: &Request) -> String {
    req.param("fieldManager")
        .map(str::to_string)
        .unwrap_or_else(|| {
            let ua = req.user_agent.split('/').next().unwrap_or("").trim();
            if ua.is_empty() {
                "unknown".into()
            } else {
                ua.to_string()
            }
        })
}

/// Whether a namespace's `spec.finalizers` still holds `kubernetes` (the namespace
/// controller's own finalizer).
fn spec_finalized(ns: &Value) -> bool {
    ns["spec"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|v| v == "kubernetes"))
}

fn parse_body(req: &Request) -> Result<Value, ApiError> {
    // kube-apiserver decodes protobuf for built-in kinds; this server reads the kinds `kubectl
    // create` makes in the docs (see crate::protobuf) and otherwise says, as a
    // server without a decoder for the body's type does, 415 (client-go then sends JSON on its
    // next requests: `Request.request` in client-go's rest/request.go).
    if req
        .content_type
        .starts_with("application/vnd.kubernetes.protobuf")
    {
        if let Ok(object) = crate::protobuf::decode(&req.body) {
            return Ok(object);
        }
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml; not {}",
                req.content_type
            ),
        ));
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

impl Store {
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Keeps only the latest `n` changes for watches (tests of 410 Gone set it low).
    pub fn set_watch_history(&mut self, n: usize) {
        self.history = n.max(1);
        self.trim_events();
    }

    fn trim_events(&mut self) {
        let cap = if self.history == 0 {
            DEFAULT_WATCH_HISTORY
        } else {
            self.history
        };
        if self.events.len() > cap {
            self.compacted = self
                .compacted
                .max(self.events[self.events.len() - cap - 1].rv);
        }
        let taken = self.live.values().min().copied().unwrap_or(u64::MAX);
        while self
            .events
            .front()
            .is_some_and(|e| e.rv <= self.compacted && e.rv <= taken)
        {
            self.events.pop_front();
        }
    }

    fn emit(&mut self, type_: &'static str, rt: &ResourceType, stored: &Stored) {
        let rv = stored.obj["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.rv);
        let object = self.render(rt, stored);
        self.events.push_back(Event {
            rv,
            plural: rt.plural,
            type_,
            object,
        });
        self.trim_events();
    }

    /// Stores an object, and records the change for watches (`ADDED` or `MODIFIED`; a write
    /// that kept the resourceVersion changed nothing and is not an event).
    fn put(&mut self, key: Key, stored: Stored) {
        let rt = resources::by_plural(key.0);
        let old_rv = self
            .objects
            .get(&key)
            .map(|o| o.obj["metadata"]["resourceVersion"].clone());
        let new_rv = &stored.obj["metadata"]["resourceVersion"];
        if let Some(rt) = rt
            && old_rv.as_ref() != Some(new_rv)
        {
            let type_ = if old_rv.is_some() {
                "MODIFIED"
            } else {
                "ADDED"
            };
            self.emit(type_, rt, &stored);
        }
        self.objects.insert(key, stored);
    }

    /// Removes an object at a new resourceVersion, and records `DELETED` for watches.
    fn take(&mut self, key: &Key) {
        let Some(mut stored) = self.objects.remove(key) else {
            return;
        };
        let rv = self.bump();
        stored.obj["metadata"]["resourceVersion"] = json!(rv);
        stored.listed = OnceCell::new();
        if let Some(rt) = resources::by_plural(key.0) {
            self.emit("DELETED", rt, &stored);
        }
    }

    /// Removes everything in a namespace (the namespace controller's work once it is deleted).
    fn take_namespace_content(&mut self, ns: &str) {
        let keys: Vec<Key> = self
            .objects
            .keys()
            .filter(|(_, ons, _)| ons == ns)
            .cloned()
            .collect();
        for k in keys {
            self.take(&k);
        }
    }

    /// Parses a watch request: what it selects and where it starts. A start older than the
    /// changes kept is an error the caller sends as a 410 `Expired` event.
    pub fn watch_request(
        &self,
        p: &ResourcePath,
        req: &Request,
    ) -> Result<(WatchFilter, WatchStart), ApiError> {
        let labels = LabelSelector::parse(req.param("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields =
            FieldSelector::parse_for(p.resource.kind, req.param("fieldSelector").unwrap_or(""))
                .map_err(ApiError::bad_request)?;
        let start = match req.param("resourceVersion").filter(|v| !v.is_empty()) {
            None | Some("0") => WatchStart::Now,
            Some(v) => WatchStart::After(
                v.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}")))?,
            ),
        };
        let filter = WatchFilter {
            plural: p.resource.plural,
            namespace: p.namespace.clone().filter(|_| p.resource.namespaced),
            labels,
            fields,
        };
        Ok((filter, start))
    }

    /// The current objects a watch selects, as `ADDED` events, and the version they are at.
    pub fn watch_snapshot(&self, filter: &WatchFilter) -> (Vec<Event>, u64) {
        let Some(rt) = resources::by_plural(filter.plural) else {
            return (Vec::new(), self.rv);
        };
        let events = self
            .objects
            .range((filter.plural, String::new(), String::new())..)
            .take_while(|((plural, _, _), _)| *plural == filter.plural)
            .map(|(_, stored)| Event {
                rv: stored.obj["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                plural: filter.plural,
                type_: "ADDED",
                object: self.render(rt, stored),
            })
            .filter(|e| filter.matches(e))
            .collect();
        (events, self.rv)
    }

    /// The changes a watch selects after `after`, or `Err(compacted)` when some of them are
    /// no longer kept ("too old resource version").
    pub fn watch_events(&self, filter: &WatchFilter, after: u64) -> Result<Vec<Event>, u64> {
        if after < self.compacted {
            return Err(self.compacted);
        }
        Ok(self.changes_after(filter, after))
    }

    fn changes_after(&self, filter: &WatchFilter, after: u64) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| e.rv > after && filter.matches(e))
            .cloned()
            .collect()
    }

    /// Makes a watch that has been given every change up to `taken` live: from now on it
    /// gets every change after that, however far the history moves on. Returns its id for
    /// [`Store::live_changes`] and [`Store::end_live`].
    pub fn start_live(&mut self, taken: u64) -> u64 {
        self.live_ids += 1;
        self.live.insert(self.live_ids, taken);
        self.live_ids
    }

    /// A live watch's changes after `after`, all of them (they were kept for it); it has then
    /// been given every change up to the store's version.
    pub fn live_changes(&mut self, id: u64, filter: &WatchFilter, after: u64) -> Vec<Event> {
        let events = self.changes_after(filter, after);
        self.live.insert(id, self.rv);
        self.trim_events();
        events
    }

    /// A live watch has ended: the changes kept only for it may go.
    pub fn end_live(&mut self, id: u64) {
        self.live.remove(&id);
        self.trim_events();
    }

    fn key(rt: &ResourceType, ns: &str, name: &str) -> Key {
        (
            rt.plural,
            if rt.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.to_string(),
        )
    }

    /// A create in a namespace that must not get new content: missing (404), or being
    /// deleted (403, as the NamespaceLifecycle admission plugin answers:
    /// plugin/pkg/admission/namespace/lifecycle/admission.go, with the `NamespaceTerminating`
    /// cause of staging/src/k8s.io/api/core/v1/types.go). Updates of existing objects in a
    /// terminating namespace are allowed, as there.
    fn check_create_in(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        let Some(stored) = self
            .objects
            .get(&("namespaces", String::new(), ns.to_string()))
        else {
            return Err(ApiError::not_found("namespaces", "", ns));
        };
        if stored.obj["metadata"]["deletionTimestamp"].is_string() {
            let res = if rt.group.is_empty() {
                rt.plural.to_string()
            } else {
                format!("{}.{}", rt.plural, rt.group)
            };
            let why = format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            );
            let mut e = ApiError::new(
                403,
                "Forbidden",
                format!("{res} \"{name}\" is forbidden: {why}"),
            );
            e.details = json!({"name": name, "kind": rt.plural, "group": rt.group,
                "causes": [{"reason": "NamespaceTerminating", "message": why, "field": "metadata.namespace"}]});
            return Err(e);
        }
        Ok(())
    }

    /// Deleting a namespace marks it terminating (deletionTimestamp, phase `Terminating`), as
    /// kube-apiserver's namespace storage does while `spec.finalizers` holds `kubernetes`
    /// (pkg/registry/core/namespace/storage/storage.go, `Delete`): the object stays, and the
    /// namespace controller (pkg/controller/namespace/deletion/namespaced_resources_deleter.go)
    /// deletes its content, then removes that finalizer through `/finalize`, after which the
    /// namespace goes ([`Store::run_namespace_controller`], [`NAMESPACE_FINALIZE_DELAY`]
    /// later). A finalizer in `metadata.finalizers` holds it longer, as a namespace stuck on a
    /// finalizer does for days, until an update removes it. A namespace with neither goes at
    /// once.
    fn terminate_namespace(&mut self, name: &str) -> Response {
        let key = ("namespaces", String::new(), name.to_string());
        let Some(stored) = self.objects.get(&key) else {
            return Response::from(ApiError::not_found("namespaces", "", name));
        };
        let mut obj = stored.obj.clone();
        let managed = stored.managed.clone();
        if !obj["metadata"]["deletionTimestamp"].is_string() {
            obj["metadata"]["deletionTimestamp"] = json!(now());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        obj["status"]["phase"] = json!("Terminating");
        let stuck = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        let held = spec_finalized(&obj);
        obj["metadata"]["resourceVersion"] = json!(self.bump());
        let rt = resources::by_kind("v1", "Namespace");
        let stored = Stored::new(obj, managed);
        let out = match rt {
            Some(rt) => Self::answer(rt, 200, &stored),
            None => Response::ok(200, stored.obj.clone()),
        };
        if held {
            self.put(key, stored);
            if !self.finalizing.iter().any(|(n, _)| n == name) {
                self.finalizing.push((
                    name.to_string(),
                    std::time::Instant::now() + NAMESPACE_FINALIZE_DELAY,
                ));
            }
        } else if stuck {
            self.put(key, stored);
        } else {
            self.put(key.clone(), stored);
            self.take_namespace_content(name);
            self.take(&key);
        }
        out
    }

    /// The namespace controller's work on the namespaces due by `now`: their content deleted
    /// (each a `DELETED` event), the `kubernetes` finalizer removed from `spec.finalizers` (a
    /// `MODIFIED` event), and the namespace itself deleted when no `metadata.finalizers`
    /// remain. True when anything changed.
    pub fn run_namespace_controller(&mut self, now: std::time::Instant) -> bool {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.finalizing)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        self.finalizing = later;
        let mut changed = false;
        for (name, _) in due {
            let key = ("namespaces", String::new(), name.clone());
            let Some(stored) = self.objects.get(&key) else {
                continue;
            };
            let mut obj = stored.obj.clone();
            let managed = stored.managed.clone();
            self.take_namespace_content(&name);
            if let Some(f) = obj["spec"]["finalizers"].as_array_mut() {
                f.retain(|v| v != "kubernetes");
            }
            obj["metadata"]["resourceVersion"] = json!(self.bump());
            let stuck = obj["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            self.put(key.clone(), Stored::new(obj, managed));
            if !stuck {
                self.take(&key);
            }
            changed = true;
        }
        changed
    }

    /// The object's `metadata.managedFields`, ready to serialise.
    fn managed_fields<'s>(
        api_version: &'s str,
        stored: &'s Stored,
    ) -> Option<fields::ManagedFieldsJson<'s>> {
        (!stored.managed.is_empty()).then(|| fields::ManagedFieldsJson {
            managed: &stored.managed,
            api_version,
            time: stored.obj["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or(""),
        })
    }

    fn render(&self, rt: &ResourceType, stored: &Stored) -> Value {
        let mut obj = stored.obj.clone();
        let api_version = rt.api_version();
        if let Some(m) = Self::managed_fields(&api_version, stored) {
            obj["metadata"]["managedFields"] = serde_json::to_value(m).unwrap_or(Value::Null);
        }
        obj
    }

    /// Handles one API request.
    pub fn handle(&mut self, req: &Request) -> Response {
        match self.route(req) {
            Ok(r) => r,
            Err(e) => e.into(),
        }
    }

    fn route(&mut self, req: &Request) -> Result<Response, ApiError> {
        if let Some(doc) = crate::discovery::document(&req.path) {
            return if req.method == "GET" {
                Ok(Response::ok(200, doc))
            } else {
                Err(ApiError::new(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                ))
            };
        }
        let Some(p) = resources::parse_path(&req.path) else {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        };
        if p.subresource.is_some() {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
        let dry_run = dry_run(req)?;
        match (req.method.as_str(), &p.name) {
            ("GET", Some(name)) => self.get(&p, name),
            ("GET", None) => {
                // A watch is served by the HTTP layer, which streams (see `server::watch`).
                self.list(&p, req)
            }
            ("POST", None) => self.create(&p, req, dry_run),
            ("PUT", Some(name)) => self.update(&p, name, req, dry_run),
            ("PATCH", Some(name)) => self.patch(&p, name, req, dry_run),
            ("DELETE", Some(name)) => self.delete(&p, name, req, dry_run),
            ("DELETE", None) => self.delete_collection(&p, req, dry_run),
            _ => Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )),
        }
    }

    fn get(&self, p: &ResourcePath, name: &str) -> Result<Response, ApiError> {
        let ns = p.namespace.as_deref().unwrap_or("");
        let stored = self
            .objects
            .get(&Self::key(p.resource, ns, name))
            .ok_or_else(|| ApiError::not_found(p.resource.plural, p.resource.group, name))?;
        Ok(Response::ok(200, self.render(p.resource, stored)))
    }

    /// The objects a LIST selects, in key order, from after the continue token on: at most
    /// `limit` of them (0: all), whether more match after those, and, as the API server
    /// reports it, how many objects remain (only for lists without selectors).
    fn select(&self, p: &ResourcePath, req: &Request) -> Result<Selection<'_>, ApiError> {
        let rt = p.resource;
        let labels = LabelSelector::parse(req.param("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse_for(rt.kind, req.param("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let limit: usize = match req.param("limit") {
            Some(l) => l
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit `{l}`")))?,
            None => 0,
        };
        // The continue token names the key after which the next page starts.
        let after: Option<(String, String)> = match req.param("continue").filter(|c| !c.is_empty())
        {
            Some(token) => {
                let raw = URL_SAFE_NO_PAD
                    .decode(token)
                    .map_err(|_| ApiError::bad_request("invalid continue token"))?;
                let v: Value = serde_json::from_slice(&raw)
                    .map_err(|_| ApiError::bad_request("invalid continue token"))?;
                Some((
                    v["ns"].as_str().unwrap_or("").to_string(),
                    v["name"].as_str().unwrap_or("").to_string(),
                ))
            }
            None => None,
        };
        let ns_filter = if rt.namespaced {
            p.namespace.as_deref()
        } else {
            None
        };
        // Keys are (plural, namespace, name): a page is a walk from the token's key on, not a
        // scan of the whole store.
        let from = match after {
            Some((ns, name)) => Bound::Excluded((rt.plural, ns, name)),
            None => Bound::Included((
                rt.plural,
                ns_filter.unwrap_or("").to_string(),
                String::new(),
            )),
        };
        let mut in_scope =
            self.objects
                .range((from, Bound::Unbounded))
                .take_while(|((plural, ns, _), _)| {
                    *plural == rt.plural && ns_filter.is_none_or(|f| f == ns)
                });
        let selects = |s: &Stored| {
            labels.matches(s.obj["metadata"]["labels"].as_object()) && fields.matches(&s.obj)
        };
        let mut items = Vec::new();
        let mut more = false;
        for (key, stored) in in_scope.by_ref() {
            if !selects(stored) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                more = true;
                break;
            }
            items.push((key, stored));
        }
        // ListMeta.remainingItemCount: "If the list request contained label or field
        // selectors, then the number of remaining items is unknown and the field will be left
        // unset" (k8s.io/apimachinery/pkg/apis/meta/v1/types.go).
        let remaining =
            (more && labels.0.is_empty() && fields.0.is_empty()).then(|| 1 + in_scope.count());
        Ok(Selection {
            items,
            more,
            remaining,
        })
    }

    fn list(&self, p: &ResourcePath, req: &Request) -> Result<Response, ApiError> {
        let rt = p.resource;
        let selection = self.select(p, req)?;
        let mut metadata = json!({ "resourceVersion": self.rv.to_string() });
        if selection.more
            && let Some(((_, ns, name), _)) = selection.items.last()
        {
            let token =
                URL_SAFE_NO_PAD.encode(json!({"ns": ns, "name": name, "rv": self.rv}).to_string());
            metadata["continue"] = json!(token);
            if let Some(n) = selection.remaining {
                metadata["remainingItemCount"] = json!(n);
            }
        }
        let metadata_only = req.accept.contains("as=PartialObjectMetadataList");
        let (kind, api_version) = if metadata_only {
            (
                "PartialObjectMetadataList".to_string(),
                "meta.k8s.io/v1".to_string(),
            )
        } else {
            (format!("{}List", rt.kind), rt.api_version())
        };
        let mut body = serde_json::to_vec(
            &json!({ "kind": kind, "apiVersion": api_version, "metadata": metadata }),
        )
        .unwrap_or_default();
        // Reopen the object to append the items, each from its cached serialisation.
        body.pop();
        body.extend_from_slice(b",\"items\":[");
        let item_api_version = rt.api_version();
        for (i, (_, stored)) in selection.items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            let cell = if metadata_only {
                &stored.listed_meta
            } else {
                &stored.listed
            };
            let bytes = cell.get_or_init(|| {
                let item = ListItem {
                    obj: &stored.obj,
                    managed: Self::managed_fields(&item_api_version, stored),
                    metadata_only,
                    whole: false,
                };
                serde_json::to_vec(&item).unwrap_or_default()
            });
            body.extend_from_slice(bytes);
        }
        body.extend_from_slice(b"]}");
        Ok(Response {
            status: 200,
            body: Value::Null,
            raw: Some(body),
            retry_after: None,
            warnings: Vec::new(),
        })
    }

    fn check_identity(rt: &ResourceType, p: &ResourcePath, obj: &Value) -> Result<(), ApiError> {
        if let Some(kind) = obj["kind"].as_str()
            && kind != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind of the provided object ({kind}) does not match the resource ({})",
                rt.kind
            )));
        }
        if let Some(av) = obj["apiVersion"].as_str()
            && av != rt.api_version()
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                rt.api_version()
            )));
        }
        if let (Some(path_ns), Some(obj_ns)) = (
            p.namespace.as_deref(),
            obj["metadata"]["namespace"].as_str(),
        ) && path_ns != obj_ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        Ok(())
    }

    /// Fills server-owned metadata and defaults before storing.
    fn prepare_new(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
            match obj["metadata"]["generateName"].as_str() {
                Some(prefix) => {
                    self.names += 1;
                    obj["metadata"]["name"] = json!(format!("{prefix}{}", suffix(self.names)));
                }
                None => {
                    return Err(ApiError::invalid(
                        rt.kind,
                        rt.group,
                        "",
                        vec![(
                            "metadata.name".into(),
                            "Required value: name or generateName is required".into(),
                        )],
                    ));
                }
            }
        }
        if rt.namespaced {
            obj["metadata"]["namespace"] = json!(ns);
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        self.uids += 1;
        if self.uid_prefix == 0 {
            use std::hash::BuildHasher;
            // RandomState's keys are random per process and differ for each instance.
            self.uid_prefix = std::collections::hash_map::RandomState::new().hash_one(0u8) | 1;
        }
        obj["metadata"]["uid"] = json!(format!(
            "{:08x}-{:04x}-4000-8000-{:012x}",
            self.uid_prefix >> 32,
            (self.uid_prefix >> 16) & 0xffff,
            self.uids
        ));
        obj["metadata"]["creationTimestamp"] = json!(now());
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        if rt.kind == "Secret" {
            validation::normalize_secret(obj)?;
        }
        if rt.has_generation() {
            obj["metadata"]["generation"] = json!(1);
        }
        if rt.kind == "Namespace" {
            let name = obj["metadata"]["name"].clone();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        Ok(())
    }

    fn bump(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    fn create(
        &mut self,
        p: &ResourcePath,
        req: &Request,
        dry_run: bool,
    ) -> Result<Response, ApiError> {
        let rt = p.resource;
        let directive = field_validation::directive(req)?;
        let mut obj = parse_body(req)?;
        Self::check_identity(rt, p, &obj)?;
        let warnings = field_validation::check(rt, &mut obj, directive)
            .map_err(|unknown| field_validation::decode_error(rt, &unknown))?;
        let ns = p
            .namespace
            .clone()
            .or_else(|| obj["metadata"]["namespace"].as_str().map(str::to_string))
            .unwrap_or_default();
        let wanted_name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        self.check_create_in(rt, &ns, &wanted_name)?;
        self.prepare_new(rt, &ns, &mut obj)?;
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        validation::validate(rt, &obj, None)?;
        let key = Self::key(rt, &ns, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(rt.plural, rt.group, &name));
        }
        let mut managed = Managed::new();
        fields::record_update(None, &obj, &manager_of(req), &mut managed);
        if dry_run {
            obj["metadata"]["resourceVersion"] = json!("");
            return Ok(warned(Response::ok(201, obj), warnings));
        }
        Ok(warned(self.store_new(rt, key, obj, managed), warnings))
    }

    /// Stores a new object (a create, or an apply that creates) and answers 201. A new
    /// Namespace gets its `default` ServiceAccount.
    fn store_new(
        &mut self,
        rt: &ResourceType,
        key: Key,
        mut obj: Value,
        managed: Managed,
    ) -> Response {
        obj["metadata"]["resourceVersion"] = json!(self.bump());
        let name = key.2.clone();
        let stored = Stored::new(obj, managed);
        let out = Self::answer(rt, 201, &stored);
        self.put(key, stored);
        if rt.kind == "Namespace" {
            self.create_default_service_account(&name);
        }
        out
    }

    /// A write's answer: the stored object, serialised from borrowed parts (no deep copy).
    /// The object's list form is serialised now too, while it is in the cache: a later LIST
    /// then copies bytes instead of walking objects scattered through memory.
    fn answer(rt: &ResourceType, status: u16, stored: &Stored) -> Response {
        let api_version = rt.api_version();
        stored.listed.get_or_init(|| {
            let item = ListItem {
                obj: &stored.obj,
                managed: Self::managed_fields(&api_version, stored),
                metadata_only: false,
                whole: false,
            };
            serde_json::to_vec(&item).unwrap_or_default()
        });
        let item = ListItem {
            obj: &stored.obj,
            managed: Self::managed_fields(&api_version, stored),
            metadata_only: false,
            whole: true,
        };
        Response {
            status,
            body: Value::Null,
            raw: Some(serde_json::to_vec(&item).unwrap_or_default()),
            retry_after: None,
            warnings: Vec::new(),
        }
    }

    fn create_default_service_account(&mut self, ns: &str) {
        let Some(rt) = resources::by_kind("v1", "ServiceAccount") else {
            return;
        };
        let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
        if self.prepare_new(rt, ns, &mut sa).is_err() {
            return;
        }
        sa["metadata"]["resourceVersion"] = json!(self.bump());
        self.put(
            Self::key(rt, ns, "default"),
            Stored::new(sa, Managed::new()),
        );
    }

    /// Stores `new` in place of the existing object, after the checks every update gets.
    // Kept whole (over 80 lines): a PUT's steps in the API server's order (decode,
    // preconditions, validation, immutability, store), each one reading the last.
    fn replace(
        &mut self,
        rt: &ResourceType,
        key: Key,
        mut new: Value,
        manager: Option<&str>,
        apply_managed: Option<Managed>,
        dry_run: bool,
    ) -> Result<Response, ApiError> {
        let old = self
            .objects
            .get(&key)
            .ok_or_else(|| ApiError::not_found(rt.plural, rt.group, &key.2))?;
        let current_rv = old.obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if let Some(rv) = new["metadata"]["resourceVersion"].as_str()
            && !rv.is_empty()
            && rv != current_rv
        {
            return Err(ApiError::conflict(rt.plural, rt.group, &key.2));
        }
        // Identity and server-owned metadata come from the stored object.
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match old.obj["metadata"].get(field) {
                Some(v) => new["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        if let Some(m) = new["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        if rt.kind == "Secret" {
            validation::normalize_secret(&mut new)?;
        }
        validation::validate(rt, &new, Some(&old.obj))?;
        new["metadata"]["resourceVersion"] = json!(current_rv.clone());
        let unchanged = new == old.obj;
        let mut managed = match apply_managed {
            Some(m) => m,
            None => old.managed.clone(),
        };
        if let Some(manager) = manager {
            fields::record_update(Some(&old.obj), &new, manager, &mut managed);
        }
        if rt.has_generation() && new["spec"] != old.obj["spec"] {
            let g = old.obj["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if dry_run {
            return Ok(Response::ok(
                200,
                self.render(rt, &Stored::new(new, managed)),
            ));
        }
        // A write that changes nothing keeps the resourceVersion, as the real server does.
        if !unchanged || managed != old.managed {
            new["metadata"]["resourceVersion"] = json!(self.bump());
        }
        // The namespace controller removes the content, and the namespace once `kubernetes` is
        // out of `spec.finalizers`; before that, it finishes the work itself.
        let finalized = rt.kind == "Namespace"
            && new["metadata"]["deletionTimestamp"].is_string()
            && new["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty)
            && !spec_finalized(&new);
        let stored = Stored::new(new, managed);
        let out = Self::answer(rt, 200, &stored);
        self.put(key.clone(), stored);
        if finalized {
            // The last finalizer of a terminating namespace is gone: it and its content go.
            self.take_namespace_content(&key.2);
            self.take(&key);
        }
        Ok(out)
    }

    fn update(
        &mut self,
        p: &ResourcePath,
        name: &str,
        req: &Request,
        dry_run: bool,
    ) -> Result<Response, ApiError> {
        let rt = p.resource;
        let directive = field_validation::directive(req)?;
        let mut obj = parse_body(req)?;
        Self::check_identity(rt, p, &obj)?;
        let warnings = field_validation::check(rt, &mut obj, directive)
            .map_err(|unknown| field_validation::decode_error(rt, &unknown))?;
        if obj["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        let ns = p.namespace.as_deref().unwrap_or("");
        if obj["metadata"]["resourceVersion"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            return Err(ApiError::invalid(
                rt.kind,
                rt.group,
                name,
                vec![(
                    "metadata.resourceVersion".into(),
                    "Invalid value: 0x0: must be specified for an update".into(),
                )],
            ));
        }
        self.replace(
            rt,
            Self::key(rt, ns, name),
            obj,
            Some(&manager_of(req)),
            None,
            dry_run,
        )
        .map(|r| warned(r, warnings))
    }

    fn patch(
        &mut self,
        p: &ResourcePath,
        name: &str,
        req: &Request,
        dry_run: bool,
    ) -> Result<Response, ApiError> {
        let rt = p.resource;
        let ns = p.namespace.clone().unwrap_or_default();
        let key = Self::key(rt, &ns, name);
        let ct = req
            .content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let directive = field_validation::directive(req)?;
        if ct == "application/apply-patch+yaml" {
            return self.server_side_apply(p, name, req, dry_run);
        }
        let patch = parse_body(req)?;
        let current = self
            .objects
            .get(&key)
            .map(|s| s.obj.clone())
            .ok_or_else(|| ApiError::not_found(rt.plural, rt.group, name))?;
        let mut new = current.clone();
        match ct.as_str() {
            "application/merge-patch+json" => {
                json_patch::merge(&mut new, &patch);
            }
            "application/strategic-merge-patch+json" => {
                fields::strategic_merge(&mut new, &patch, &mut Vec::new());
            }
            "application/json-patch+json" => {
                let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                json_patch::patch(&mut new, &ops).map_err(|e| match e.kind {
                    json_patch::PatchErrorKind::TestFailed => ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    ),
                    _ => ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    ),
                })?;
            }
            other => {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got `{other}`)"
                    ),
                ));
            }
        }
        // The patched object is decoded as the kind, strictly or not (handlers/patch.go).
        let warnings = field_validation::check(rt, &mut new, directive).map_err(|unknown| {
            let shown = if ct == "application/strategic-merge-patch+json" {
                field_validation::go_format(&patch)
            } else {
                new.to_string()
            };
            field_validation::patch_error(&shown, &unknown)
        })?;
        // A resourceVersion in a merge or strategic patch is a precondition.
        if let Some(rv) = patch["metadata"]["resourceVersion"].as_str()
            && rv
                != current["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
        {
            return Err(ApiError::conflict(rt.plural, rt.group, name));
        }
        self.replace(rt, key, new, Some(&manager_of(req)), None, dry_run)
            .map(|r| warned(r, warnings))
    }

    fn server_side_apply(
        &mut self,
        p: &ResourcePath,
        name: &str,
        req: &Request,
        dry_run: bool,
    ) -> Result<Response, ApiError> {
        let rt = p.resource;
        let manager = req.param("fieldManager").ok_or_else(|| ApiError::bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"))?.to_string();
        let force = req.param("force") == Some("true");
        // Apply bodies are YAML (JSON being YAML too): kubectl sends YAML, kube-rs JSON.
        let mut applied: Value = match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(_) => serde_saphyr::from_slice(&req.body).map_err(|e| {
                ApiError::bad_request(format!("the apply patch is not valid YAML: {e}"))
            })?,
        };
        Self::check_identity(rt, p, &applied)?;
        if applied["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n != name)
        {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        let ns = p.namespace.clone().unwrap_or_default();
        let key = Self::key(rt, &ns, name);
        let (existing, mut managed) = match self.objects.get(&key) {
            Some(s) => (Some(&s.obj), s.managed.clone()),
            None => (None, Managed::default()),
        };
        applied["metadata"]["name"] = json!(name);
        let merged = fields::apply(existing, &applied, &manager, force, &mut managed).map_err(|conflicts| {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\"", c.manager), "field": fields::path_string(&c.path)}))
                .collect();
            let mut e = ApiError::new(409, "Conflict", conflict_message(&conflicts));
            e.details = json!({"name": name, "kind": rt.plural, "causes": causes});
            e
        })?;
        match existing.is_some() {
            true => self.replace(rt, key, merged, None, Some(managed), dry_run),
            false => {
                self.check_create_in(rt, &ns, name)?;
                let mut obj = merged;
                self.prepare_new(rt, &ns, &mut obj)?;
                validation::validate(rt, &obj, None)?;
                if dry_run {
                    return Ok(Response::ok(
                        201,
                        self.render(rt, &Stored::new(obj, managed)),
                    ));
                }
                Ok(self.store_new(rt, key, obj, managed))
            }
        }
    }

    fn delete(
        &mut self,
        p: &ResourcePath,
        name: &str,
        req: &Request,
        dry_run: bool,
    ) -> Result<Response, ApiError> {
        let rt = p.resource;
        let ns = p.namespace.clone().unwrap_or_default();
        let key = Self::key(rt, &ns, name);
        let stored = self
            .objects
            .get(&key)
            .ok_or_else(|| ApiError::not_found(rt.plural, rt.group, name))?;
        if !req.body.is_empty()
            && let Ok(opts) = serde_json::from_slice::<Value>(&req.body)
        {
            let pre = &opts["preconditions"];
            let rv_ok = pre["resourceVersion"]
                .as_str()
                .is_none_or(|rv| Some(rv) == stored.obj["metadata"]["resourceVersion"].as_str());
            let uid_ok = pre["uid"]
                .as_str()
                .is_none_or(|uid| Some(uid) == stored.obj["metadata"]["uid"].as_str());
            if !rv_ok || !uid_ok {
                return Err(ApiError::conflict(rt.plural, rt.group, name));
            }
        }
        let out = self.render(rt, stored);
        if dry_run {
            return Ok(Response::ok(200, out));
        }
        if rt.kind == "Namespace" {
            return Ok(self.terminate_namespace(name));
        }
        self.take(&key);
        Ok(Response::ok(200, out))
    }

    fn delete_collection(
        &mut self,
        p: &ResourcePath,
        req: &Request,
        dry_run: bool,
    ) -> Result<Response, ApiError> {
        let all = Request {
            query: req
                .query
                .iter()
                .filter(|(k, _)| k != "limit" && k != "continue")
                .cloned()
                .collect(),
            ..req.clone()
        };
        let listed = self.list(p, &all)?;
        if !dry_run {
            let keys: Vec<Key> = self
                .select(p, &all)?
                .items
                .into_iter()
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                if p.resource.kind == "Namespace" {
                    self.take_namespace_content(&key.2);
                }
                self.take(&key);
            }
        }
        Ok(listed)
    }

    /// A seeded object's resource type, by its apiVersion and kind, and its namespace
    /// (`default` when it names none).
    fn seeded_where(obj: &Value) -> Result<(&'static ResourceType, String), ApiError> {
        let av = obj["apiVersion"].as_str().unwrap_or("");
        let kind = obj["kind"].as_str().unwrap_or("");
        let rt = resources::by_kind(av, kind)
            .ok_or_else(|| ApiError::bad_request(format!("unknown kind {av}/{kind}")))?;
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        Ok((rt, ns))
    }

    /// Stores an object directly (for seeding fixtures): as a create by `manager`.
    pub fn seed(&mut self, obj: Value, manager: &str) -> Result<Value, ApiError> {
        let (rt, ns) = Self::seeded_where(&obj)?;
        let path = if rt.namespaced {
            format!(
                "/{}/namespaces/{ns}/{}",
                if rt.group.is_empty() {
                    "api/v1".to_string()
                } else {
                    format!("apis/{}", rt.api_version())
                },
                rt.plural
            )
        } else {
            format!("/api/v1/{}", rt.plural)
        };
        let req = Request {
            method: "POST".into(),
            path,
            body: obj.to_string().into_bytes(),
            user_agent: manager.into(),
            ..Request::default()
        };
        let r = self.handle(&req);
        if r.status == 201 {
            // Seeding a namespace's `default` ServiceAccount replaces the automatic one.
            Ok(r.json())
        } else if r.status == 409 && rt.kind == "ServiceAccount" {
            let name = obj["metadata"]["name"].as_str().unwrap_or("");
            let key = Self::key(rt, &ns, name);
            let mut new = obj.clone();
            new["metadata"]["resourceVersion"] = self
                .objects
                .get(&key)
                .map(|s| s.obj["metadata"]["resourceVersion"].clone())
                .unwrap_or(Value::Null);
            self.replace(rt, key, new, Some(manager), None, false)
                .map(|r| r.json())
        } else {
            Err(ApiError {
                code: r.status,
                reason: "Seed",
                message: r.body["message"].as_str().unwrap_or("").to_string(),
                details: Value::Null,
                retry_after: None,
            })
        }
    }

    /// Stores an object as [`Store::seed`] does, but without the API's validation: its name,
    /// namespace, labels and fields are kept whatever they hold (a hostile server's store, see
    /// [`crate::hostile`]). The server still fills its own metadata (uid, resourceVersion,
    /// managedFields, a namespace's `default` ServiceAccount), and a namespaced object still
    /// needs its namespace to exist.
    pub fn seed_unvalidated(&mut self, obj: Value, manager: &str) -> Result<Value, ApiError> {
        let (rt, ns) = Self::seeded_where(&obj)?;
        let mut obj = obj;
        let wanted_name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        self.check_create_in(rt, &ns, &wanted_name)?;
        self.prepare_new(rt, &ns, &mut obj)?;
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let key = Self::key(rt, &ns, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(rt.plural, rt.group, &name));
        }
        let mut managed = Managed::new();
        fields::record_update(None, &obj, manager, &mut managed);
        Ok(self.store_new(rt, key, obj, managed).json())
    }

    /// Every stored object of a kind (all namespaces), for assertions.
    pub fn objects(&self, plural: &str) -> Vec<Value> {
        resources::by_plural(plural)
            .map(|rt| {
                self.objects
                    .iter()
                    .filter(|((p, _, _), _)| *p == rt.plural)
                    .map(|(_, s)| self.render(rt, s))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The message of a server-side apply conflict, in the words of `getConflictMessage`
/// (staging/src/k8s.io/apimachinery/pkg/util/managedfields/internal/conflict.go): one conflict
/// on one line, several grouped by manager, one path per line.
fn conflict_message(conflicts: &[fields::Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {:?}: {}",
            only.manager,
            fields::path_string(&only.path)
        );
    }
    let mut by_manager: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for c in conflicts {
        by_manager
            .entry(c.manager.as_str())
            .or_default()
            .push(fields::path_string(&c.path));
    }
    let mut lines = Vec::new();
    for (manager, paths) in by_manager {
        lines.push(format!("conflicts with {manager:?}:"));
        lines.extend(paths.into_iter().map(|p| format!("- {p}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Whether a write is a dry run: `dryRun` from the query (create, update, patch) and, for a
/// DELETE, also from the DeleteOptions body, which is where client-go and kube-rs send it
/// (`{"dryRun": ["All"]}`). The only value is `All`; any other is rejected before anything
/// is done, as `ValidateDryRun` (staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation)
/// does for the Create/Update/Patch/DeleteOptions validations in the request handlers
/// (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/{create,update,patch,delete}.go),
/// which answer with `errors.NewInvalid`: 422.
fn dry_run(req: &Request) -> Result<bool, ApiError> {
    dry_run_values(req).map(|v| !v.is_empty())
}

/// Whether the request asks for a dry run (for the request log; invalid values count too).
pub fn is_dry_run(req: &Request) -> bool {
    dry_run_values(req).map_or(true, |v| !v.is_empty())
}

fn dry_run_values(req: &Request) -> Result<Vec<String>, ApiError> {
    let mut values: Vec<String> = req
        .query
        .iter()
        .filter(|(k, _)| k == "dryRun")
        .map(|(_, v)| v.clone())
        .collect();
    let mut options_kind = match req.method.as_str() {
        "POST" => "CreateOptions",
        "PUT" => "UpdateOptions",
        "PATCH" => "PatchOptions",
        _ => "DeleteOptions",
    };
    if req.method == "DELETE"
        && !req.body.is_empty()
        && let Ok(opts) = serde_json::from_slice::<Value>(&req.body)
        && let Some(list) = opts.get("dryRun")
    {
        options_kind = "DeleteOptions";
        match list.as_array() {
            Some(items) => values.extend(
                items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)),
            ),
            None if list.is_null() => {}
            None => {
                return Err(ApiError::bad_request(format!(
                    "DeleteOptions: dryRun must be a list of strings, got {list}"
                )));
            }
        }
    }
    if values.iter().any(|v| v != "All") {
        let shown: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
        return Err(ApiError::invalid(
            options_kind,
            "meta.k8s.io",
            "",
            vec![(
                "dryRun".into(),
                format!(
                    "Unsupported value: []string{{{}}}: supported values: \"All\"",
                    shown.join(", ")
                ),
            )],
        ));
    }
    Ok(values)
}

/// `r` with `warnings` for the client.
fn warned(mut r: Response, warnings: Vec<String>) -> Response {
    r.warnings.extend(warnings);
    r
}

fn suffix(n: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut x = n.wrapping_mul(2_654_435_761) ^ 0x5bd1e995;
    (0..5)
        .map(|_| {
            let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
            x /= ALPHABET.len() as u64;
            c
        })
        .collect()
}
