//! Reading the cluster: a small, fixed number of paged LIST calls per resource kind, never a
//! request per namespace or per object. Or a state file instead of a cluster.
//!
//! Each page is read as text, deserialised straight into the lean wire shapes (serde skips
//! every field planning does not read), moved into the observed model, and dropped before the
//! next page is asked for: memory follows what the plan needs, not the cluster's size.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use regops_core::observed::{Observed, Skipped, wire};
use regops_core::ownership::{self, MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use regops_spec::kind::ObjectKind;
use regops_spec::{Spec, WorkloadKind};

use crate::cluster::Connection;
use crate::cluster::client::{ClusterError, Target, api_error};
use crate::cluster::retry::retry;

/// Items per LIST page.
pub const PAGE: u32 = 500;

pub use crate::context::ListLimits;

/// Which limit a LIST (or a watch) went past, said with the flag that raises it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    Pages(u64),
    Items(u64),
    Time(Duration),
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exceeded::Pages(n) => write!(
                f,
                "went past {} pages; a real cluster of this size is unlikely: raise --max-list-pages if it is one",
                thousands(*n)
            ),
            Exceeded::Items(n) => write!(
                f,
                "went past {} objects; a real cluster of this size is unlikely: raise --max-list-items if it is one",
                thousands(*n)
            ),
            Exceeded::Time(d) => write!(
                f,
                "took longer than {}; a real cluster this slow is unlikely: raise --list-timeout if it is one",
                shown_duration(*d)
            ),
        }
    }
}

/// `1000000` as `1,000,000`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration as the flags take it: `10m`, `90s`, `1500ms`.
fn shown_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// One kind to list: where, and as what.
struct Listing<'a> {
    /// The cluster-wide collection path (`/apis/apps/v1/deployments`).
    path: String,
    /// The kind the items are (metadata-only items say `PartialObjectMetadata`).
    kind: &'a str,
    resource: &'a str,
    group: &'a str,
    /// Ask for metadata only (`PartialObjectMetadataList`): no data, no spec.
    metadata_only: bool,
    /// For a kind a spec declares, where its pod template is: its items are read as
    /// unstructured JSON ([`wire::Object::unstructured`]).
    declared_template: Option<&'static [&'static str]>,
}

impl<'a> Listing<'a> {
    fn of<K: kube::Resource<DynamicType = ()>>(
        kind: &'a str,
        resource: &'a str,
        group: &'a str,
    ) -> Self {
        Listing {
            path: K::url_path(&(), None),
            kind,
            resource,
            group,
            metadata_only: false,
            declared_template: None,
        }
    }

    /// A kind the plan changes, as its table row says: across the cluster, or in one
    /// namespace.
    fn kind(kind: ObjectKind, namespace: Option<&str>) -> Self {
        let f = kind.facts();
        Listing {
            path: kind.collection_path(namespace),
            kind: f.name,
            resource: f.plural,
            group: f.group,
            metadata_only: false,
            declared_template: kind
                .is_declared()
                .then(|| kind.workload().map(|w| w.facts().template.path()))
                .flatten(),
        }
    }

    fn metadata_only(mut self) -> Self {
        self.metadata_only = true;
        self
    }
}

/// Reads every page of one LIST into `observed`, within the run's [`ListLimits`].
async fn list_into(
    conn: &Connection,
    target: &Target,
    listing: &Listing<'_>,
    params: ListParams,
    observed: &mut Observed,
) -> Result<(), ClusterError> {
    let limits = conn.ctx.list_limits;
    let exceeded = |e: Exceeded| ClusterError::ListLimit {
        target: target.clone(),
        resource: listing.resource.to_string(),
        exceeded: e,
    };
    let pages = list_pages(conn, target, listing, params, observed, limits);
    match tokio::time::timeout(limits.time, pages).await {
        Ok(read) => read.map_err(|e| e.either(exceeded)),
        Err(_) => Err(exceeded(Exceeded::Time(limits.time))),
    }
}

/// Why [`list_pages`] stopped: the cluster's error, or a limit.
enum Stopped {
    Cluster(ClusterError),
    Limit(Exceeded),
}

impl Stopped {
    fn either(self, limit: impl FnOnce(Exceeded) -> ClusterError) -> ClusterError {
        match self {
            Stopped::Cluster(e) => e,
            Stopped::Limit(e) => limit(e),
        }
    }
}

/// The pages of [`list_into`], each counted against `limits` (pages and items).
async fn list_pages(
    conn: &Connection,
    target: &Target,
    listing: &Listing<'_>,
    params: ListParams,
    observed: &mut Observed,
    limits: ListLimits,
) -> Result<(), Stopped> {
    let (mut pages, mut items) = (0u64, 0u64);
    let request = kube::core::Request::new(listing.path.as_str());
    let fail = |e| {
        Stopped::Cluster(api_error(
            e,
            target,
            "list",
            listing.resource,
            listing.group,
            None,
        ))
    };
    let mut params = params.limit(PAGE);
    let mut skipped: Vec<Skipped> = Vec::new();
    // One buffer for every page of this LIST: a page is read into it, turned into the model,
    // and the buffer (not the page) is kept for the next, so pages cost no fresh memory.
    let spare: std::cell::Cell<Vec<u8>> = std::cell::Cell::new(Vec::new());
    let mut first = true;
    loop {
        let bytes = retry(conn, || {
            let built = if listing.metadata_only {
                request.list_metadata(&params)
            } else {
                request.list(&params)
            };
            let mut buf = spare.take();
            async move {
                buf.clear();
                let body = conn
                    .client
                    .request_stream(built.map_err(kube::Error::BuildRequest)?)
                    .await?;
                let mut body = std::pin::pin!(body);
                crate::bounded::read_to_end(&mut body, &mut buf, crate::bounded::PAGE_LIMIT)
                    .await
                    .map_err(|e| kube::Error::Service(Box::new(e)))?;
                Ok(buf)
            }
        })
        .await
        .map_err(fail)?;
        // A page read is the work loop's progress (/healthz).
        crate::cluster::progress::beat();
        let page: wire::Page = match listing.declared_template {
            None => serde_json::from_slice(&bytes).map_err(|e| fail(kube::Error::SerdeError(e)))?,
            Some(template) => {
                let raw: wire::RawPage =
                    serde_json::from_slice(&bytes).map_err(|e| fail(kube::Error::SerdeError(e)))?;
                wire::Page {
                    metadata: raw.metadata,
                    items: raw
                        .items
                        .into_iter()
                        .map(|v| wire::Object::unstructured(template, v))
                        .collect::<Result<_, _>>()
                        .map_err(|e| fail(kube::Error::SerdeError(e)))?,
                }
            }
        };
        spare.set(bytes);
        pages += 1;
        items = items.saturating_add(page.items.len() as u64);
        // The API says how many items follow (without selectors): more than the cap, and the
        // LIST would go past it; a server that says nothing is counted as it goes.
        let remaining = page.metadata.remaining_item_count.unwrap_or(0);
        if items.saturating_add(remaining) > limits.items {
            return Err(Stopped::Limit(Exceeded::Items(limits.items)));
        }
        if first {
            // Room for all at once, not a vector doubling (and copied) page after page.
            observed.reserve(
                listing.kind,
                usize::try_from(items + remaining).unwrap_or(usize::MAX),
            );
            first = false;
        }
        for mut item in page.items {
            // The request says what the items are; metadata-only items call themselves
            // `PartialObjectMetadata`.
            item.kind = None;
            observed.push(0, Some(listing.kind), item, &mut skipped);
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(_) if pages >= limits.pages => {
                return Err(Stopped::Limit(Exceeded::Pages(limits.pages)));
            }
            Some(token) => params = params.continue_token(&token),
            None => return Ok(()),
        }
    }
}

/// Where each LIST is made: across the cluster (`None`), or in each namespace of `only` when
/// there are at most [`NAMESPACED_READ_MAX`].
fn places(only: Option<&BTreeSet<String>>) -> Vec<Option<&str>> {
    match only {
        Some(set) if set.len() <= NAMESPACED_READ_MAX => {
            set.iter().map(|n| Some(n.as_str())).collect()
        }
        _ => vec![None],
    }
}

/// Lists the namespaces (metadata only): all, or the one `place` names (by
/// `metadata.name`), and of those the ones `selector` selects.
async fn list_namespaces(
    conn: &Connection,
    target: &Target,
    place: Option<&str>,
    selector: Option<&str>,
    observed: &mut Observed,
) -> Result<(), ClusterError> {
    let mut params = match place {
        Some(ns) => ListParams::default().fields(&format!("metadata.name={ns}")),
        None => ListParams::default(),
    };
    if let Some(sel) = selector {
        params = params.labels(sel);
    }
    list_into(
        conn,
        target,
        &Listing::of::<Namespace>("Namespace", "namespaces", "").metadata_only(),
        params,
        observed,
    )
    .await
}

/// How many namespaces the cluster has: one paged LIST of their metadata, within the limits
/// (`regops cluster-info`).
pub async fn count_namespaces(conn: &Connection, target: &Target) -> Result<usize, ClusterError> {
    let mut observed = Observed::default();
    list_namespaces(conn, target, None, None, &mut observed).await?;
    Ok(observed.namespaces.len())
}

/// Up to this many namespaces given with `-n`, each is read on its own (namespaced LISTs, a
/// few per namespace); past it, or without `-n`, the whole cluster is (a few per kind).
pub const NAMESPACED_READ_MAX: usize = 8;

/// Reads what the plan needs:
/// - namespaces (metadata only);
/// - Secrets labelled as regops' (all namespaces);
/// - for each pull secret name, the other Secrets of that name in any namespace, metadata only
///   (to find collisions), or whole where the spec would adopt them;
/// - ServiceAccounts, when a binding names some, and else those marked with this spec's label;
/// - each workload kind a binding selects, and of the other kinds those marked.
///
/// With `only` (`-n`) of at most [`NAMESPACED_READ_MAX`] namespaces, the same LISTs are made
/// in each of those namespaces instead of across the cluster, so a plan for one namespace costs
/// what that namespace holds, not what the cluster does. The plan is the same either way: it
/// looks at nothing outside `only`.
// Kept whole (over 80 lines): the LIST calls in order, one per kind, so the request count can
// be read off it.
pub async fn from_cluster(
    conn: &Connection,
    target: &Target,
    spec: &Spec,
    spec_name: &str,
    only: Option<&BTreeSet<String>>,
) -> Result<Observed, ClusterError> {
    let places = places(only);
    let mut observed = Observed::default();
    for place in &places {
        list_namespaces(conn, target, *place, None, &mut observed).await?;
    }
    let owned = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}");
    // Secrets bearing a pull secret's name that regops does not own are collisions: their
    // metadata is enough, and their data stays out of regops' memory. Only where the spec
    // would adopt them is the whole object read.
    let not_owned = format!("{MANAGED_BY_LABEL}!={MANAGED_BY_VALUE}");
    // What the bindings select is listed whole; of the rest, only objects marked as carrying
    // this spec's entries (so that entries are removed when a binding leaves the spec).
    let marked = ListParams::default().labels(&ownership::added_key(spec_name));
    let select = |wanted: bool| {
        if wanted {
            ListParams::default()
        } else {
            marked.clone()
        }
    };
    let sas_wanted = spec.bindings.iter().any(|b| !b.service_accounts.is_empty());
    let kinds: Vec<WorkloadKind> = spec
        .bindings
        .iter()
        .filter_map(|b| b.workloads.as_ref())
        .flat_map(|w| w.selected_kinds())
        .collect();
    for &place in &places {
        let secrets = Listing::kind(ObjectKind::Secret, place);
        list_into(
            conn,
            target,
            &secrets,
            ListParams::default().labels(&owned),
            &mut observed,
        )
        .await?;
        for (name, ps) in &spec.pull_secrets {
            let by_name = ListParams::default()
                .fields(&format!("metadata.name={name}"))
                .labels(&not_owned);
            let listing = Listing::kind(ObjectKind::Secret, place);
            let listing = if ps.adopt {
                listing
            } else {
                listing.metadata_only()
            };
            list_into(conn, target, &listing, by_name, &mut observed).await?;
        }
        list_into(
            conn,
            target,
            &Listing::kind(ObjectKind::ServiceAccount, place),
            select(sas_wanted),
            &mut observed,
        )
        .await?;
        for kind in spec.workload_kinds() {
            let named = kinds.contains(&kind);
            let listing = Listing::kind(ObjectKind::from(kind), place);
            let read = list_into(conn, target, &listing, select(named), &mut observed).await;
            match read {
                // A kind selected only when named (ReplicaSet) that no binding names now is
                // read for the objects this spec marked: a binding that once named it added
                // entries, which are removed now. RBAC that grants no LIST of it is no error:
                // a spec that never named it needs none, and regops then cannot see (nor
                // remove) entries added under RBAC that did.
                Err(ClusterError::Forbidden { .. }) if !named && !kind.facts().by_default => {}
                other => other?,
            }
        }
    }
    if let Some(t) = &spec.node_trust
        && only.is_none_or(|o| o.contains(t.namespace()))
    {
        for name in [t.config_map(), t.allow_list()] {
            if let Some(c) = get_config_map(conn, target, t.namespace(), name).await? {
                observed.config_maps.push(c);
            }
        }
    }
    observed.finish();
    Ok(observed)
}

/// One named ConfigMap (node trust: the one apply keeps, the operator's allowlist), with one
/// GET; `None` when there is none.
async fn get_config_map(
    conn: &Connection,
    target: &Target,
    namespace: &str,
    name: &str,
) -> Result<Option<regops_core::observed::ConfigMap>, ClusterError> {
    use regops_core::observed::Labels;
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = conn.namespaced(namespace);
    let got = retry(conn, || api.get_opt(name))
        .await
        .map_err(|e| api_error(e, target, "get", "configmaps", "", Some(namespace)))?;
    let labels = |m: Option<std::collections::BTreeMap<String, String>>| -> Labels {
        m.unwrap_or_default().into_iter().collect()
    };
    Ok(got.map(|c| regops_core::observed::ConfigMap {
        namespace: namespace.to_string(),
        name: name.to_string(),
        labels: labels(c.metadata.labels),
        annotations: labels(c.metadata.annotations),
        data: c.data.unwrap_or_default(),
        resource_version: c.metadata.resource_version,
    }))
}

/// Reads what `regops import` needs: the namespaces (metadata; with `selector`, those it
/// selects), every `kubernetes.io/dockerconfigjson` and `kubernetes.io/dockercfg` Secret whole
/// (their logins are what is imported; the LIST asks for those types only), and every
/// ServiceAccount and workload. With `only` of at most [`NAMESPACED_READ_MAX`] namespaces, the
/// LISTs are made inside them.
pub async fn for_import(
    conn: &Connection,
    target: &Target,
    only: Option<&BTreeSet<String>>,
    selector: Option<&str>,
) -> Result<Observed, ClusterError> {
    let mut observed = Observed::default();
    for place in &places(only) {
        list_namespaces(conn, target, *place, selector, &mut observed).await?;
        for ty in [
            regops_core::import::DOCKERCONFIGJSON,
            regops_core::import::DOCKERCFG,
        ] {
            list_into(
                conn,
                target,
                &Listing::kind(ObjectKind::Secret, *place),
                ListParams::default().fields(&format!("type={ty}")),
                &mut observed,
            )
            .await?;
        }
        list_into(
            conn,
            target,
            &Listing::kind(ObjectKind::ServiceAccount, *place),
            ListParams::default(),
            &mut observed,
        )
        .await?;
        for kind in WorkloadKind::defaults() {
            list_into(
                conn,
                target,
                &Listing::kind(ObjectKind::from(kind), *place),
                ListParams::default(),
                &mut observed,
            )
            .await?;
        }
    }
    observed.finish();
    Ok(observed)
}

/// The largest state file regops reads. JSON is streamed, so this bounds time, not memory.
pub const STATE_FILE_MAX_BYTES: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("cannot read the state file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the state file {path} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("the state file {path} is not valid JSON: {detail}")]
    Json { path: String, detail: String },
    #[error("the state file {path} is not valid YAML: {detail}")]
    Yaml { path: String, detail: String },
}

/// The YAML budget for a state file of `size` bytes: every count a file of that size could
/// honestly need (an event or node takes at least a byte or two of text), and few aliases
/// (kubectl writes none), so that expansion cannot make a small file cost more than a large one.
fn yaml_options(size: u64) -> serde_saphyr::Options {
    let n = usize::try_from(size)
        .unwrap_or(usize::MAX)
        .saturating_add(1024);
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(n);
    budget.max_events = budget.max_events.max(n);
    budget.max_nodes = budget.max_nodes.max(n);
    budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(n);
    budget.max_documents = budget.max_documents.max(n / 16);
    budget.max_aliases = 1000;
    budget.max_anchors = 1000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// Reads a state file: `kubectl get ... -o json` (streamed, object by object into the model)
/// or `-o yaml`, a List or multi-document YAML.
pub fn from_file(path: &Path) -> Result<(Observed, Vec<Skipped>), StateFileError> {
    let shown = path.display().to_string();
    let read_err = |source| StateFileError::Read {
        path: shown.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let size = file.metadata().map_err(read_err)?.len();
    if size > STATE_FILE_MAX_BYTES {
        return Err(StateFileError::TooLarge {
            path: shown,
            size,
            limit: STATE_FILE_MAX_BYTES,
        });
    }
    read_state(
        std::io::BufReader::new(file.take(STATE_FILE_MAX_BYTES)),
        size,
        &shown,
    )
}

/// Reads a state file's bytes (as [`from_file`] does, for input already in memory: tests and
/// fuzzing).
pub fn from_bytes(bytes: &[u8], shown: &str) -> Result<(Observed, Vec<Skipped>), StateFileError> {
    if bytes.len() as u64 > STATE_FILE_MAX_BYTES {
        return Err(StateFileError::TooLarge {
            path: shown.to_string(),
            size: bytes.len() as u64,
            limit: STATE_FILE_MAX_BYTES,
        });
    }
    read_state(bytes, bytes.len() as u64, shown)
}

fn read_state<R: std::io::BufRead>(
    mut reader: R,
    size: u64,
    shown: &str,
) -> Result<(Observed, Vec<Skipped>), StateFileError> {
    let shown = shown.to_string();
    let read_err = |source| StateFileError::Read {
        path: shown.clone(),
        source,
    };
    let first = {
        let buf = reader.fill_buf().map_err(read_err)?;
        buf.iter().copied().find(|b| !b.is_ascii_whitespace())
    };
    let mut observed = Observed::default();
    let mut skipped = Vec::new();
    if first == Some(b'{') {
        // JSON: one object or List, or several one after another, each item moved into the
        // model as it is read.
        let json_err = |e: serde_json::Error| StateFileError::Json {
            path: shown.clone(),
            detail: e.to_string(),
        };
        let mut de = serde_json::Deserializer::from_reader(reader);
        let mut index = 0;
        loop {
            use serde::de::DeserializeSeed;
            wire::DocumentSeed {
                observed: &mut observed,
                skipped: &mut skipped,
                index,
            }
            .deserialize(&mut de)
            .map_err(json_err)?;
            index += 1;
            // Another document, or the end (whitespace only).
            match de.end() {
                Ok(()) => break,
                Err(_) => continue,
            }
        }
    } else {
        let docs =
            serde_saphyr::read_with_options::<_, wire::Object>(&mut reader, yaml_options(size));
        for (index, obj) in docs.enumerate() {
            let obj = obj.map_err(|e| StateFileError::Yaml {
                path: shown.clone(),
                detail: e.to_string(),
            })?;
            observed.push(index, None, obj, &mut skipped);
        }
    }
    observed.finish();
    Ok((observed, skipped))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Exceeded, thousands};
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
    use k8s_openapi::{Metadata, Resource};
    use regops_spec::kind::ObjectKind;

    /// Each limit says itself and the flag that raises it.
    #[test]
    fn a_limit_names_its_flag() {
        assert_eq!(
            Exceeded::Pages(1000).to_string(),
            "went past 1,000 pages; a real cluster of this size is unlikely: raise --max-list-pages if it is one"
        );
        assert!(
            Exceeded::Items(500_000)
                .to_string()
                .starts_with("went past 500,000 objects;")
        );
        assert!(
            Exceeded::Time(Duration::from_secs(600))
                .to_string()
                .starts_with("took longer than 10m;")
        );
        assert!(
            Exceeded::Time(Duration::from_millis(1500))
                .to_string()
                .contains("1500ms; a real cluster this slow is unlikely: raise --list-timeout")
        );
        assert_eq!(
            [0, 7, 999, 1000, 123_456, 1_000_000].map(thousands),
            ["0", "7", "999", "1,000", "123,456", "1,000,000"]
        );
    }

    /// regops-spec's table of per-kind facts (it has no Kubernetes types) against
    /// k8s-openapi's, which are generated from the API's OpenAPI document.
    #[test]
    fn the_kind_table_agrees_with_the_api() {
        fn check<
            K: Resource + Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
        >(
            kind: ObjectKind,
        ) {
            let f = kind.facts();
            assert_eq!(f.name, K::KIND);
            assert_eq!(f.api_version, K::API_VERSION);
            assert_eq!(f.group, K::GROUP);
            assert_eq!(f.plural, K::URL_PATH_SEGMENT);
            assert_eq!(
                kind.collection_path(Some("web")),
                <K as kube::Resource>::url_path(&(), Some("web"))
            );
            assert_eq!(
                kind.collection_path(None),
                <K as kube::Resource>::url_path(&(), None)
            );
        }
        for kind in ObjectKind::ALL {
            match kind {
                ObjectKind::Secret => check::<Secret>(kind),
                ObjectKind::ServiceAccount => check::<ServiceAccount>(kind),
                ObjectKind::Deployment => check::<Deployment>(kind),
                ObjectKind::StatefulSet => check::<StatefulSet>(kind),
                ObjectKind::DaemonSet => check::<DaemonSet>(kind),
                ObjectKind::ReplicaSet => check::<ReplicaSet>(kind),
                ObjectKind::Job => check::<Job>(kind),
                ObjectKind::CronJob => check::<CronJob>(kind),
                ObjectKind::ConfigMap => check::<k8s_openapi::api::core::v1::ConfigMap>(kind),
                _ => unreachable!("{kind} is not built in"),
            }
        }
    }
}
