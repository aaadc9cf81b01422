//! The desired state: from the spec, the logins and the observed namespaces and workloads,
//! every object regops should own and every reference it should add. Pure.

use std::collections::{BTreeMap, BTreeSet};

use regops_spec::untrusted::Message;
use regops_spec::{LabelSelector, Scope, Spec, WorkloadKind};
use secrecy::SecretString;

use crate::dockerconfig;
use crate::image::{self, ImageRef};
use crate::login::Login;
use crate::observed::{Labels, Namespace, Observed, Secret, Workload};
use crate::warning::{Warning, WarningKind};

/// One pull secret in one namespace.
#[derive(Debug)]
pub struct DesiredSecret {
    pub namespace: String,
    pub name: String,
    /// `(server, username)` of each login, for review (usernames are not secret).
    pub logins: Vec<(String, String)>,
    pub dockerconfigjson: SecretString,
    /// Per server, the digest of the ciphertext its password comes from (see `Login`).
    pub digests: BTreeMap<String, String>,
    /// Per credential, the same digest: what the Secret's record of its sources says
    /// (`ownership::APPLIED_SOURCES_ANNOTATION`).
    pub sources: BTreeMap<String, String>,
    pub adopt: bool,
    /// When the first minted token in it expires (the `regops.dev/expires-at` annotation);
    /// `None` when it holds none.
    pub expires_at: Option<i64>,
    /// Minted credentials whose token it needs renewed (none yet, expiring within
    /// `refreshBefore`, unreadable) and that the run has not minted. Until then, what the
    /// Secret holds is kept.
    pub due: Vec<String>,
    /// Minted credentials whose token it renews from a fresh one.
    pub renewed: Vec<String>,
    /// Why it cannot be written: a credential it needs failed (minting, a helper). It is left
    /// as it is, and references to it are held back.
    pub held: Option<String>,
}

/// A small sorted set of names. A ServiceAccount or workload wants one or two pull secrets;
/// a `BTreeSet` would spend a whole node on each, tens of thousands of times.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names(Vec<String>);

impl Names {
    pub fn insert(&mut self, name: String) -> bool {
        match self.0.binary_search(&name) {
            Ok(_) => false,
            Err(i) => {
                self.0.insert(i, name);
                true
            }
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.binary_search_by(|n| n.as_str().cmp(name)).is_ok()
    }

    /// In order.
    pub fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }

    pub fn retain(&mut self, keep: impl FnMut(&String) -> bool) {
        self.0.retain(keep);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl<'a> IntoIterator for &'a Names {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// What a ServiceAccount or workload should reference.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    pub secrets: Names,
    /// For `kubesphereAnnotation`: container name -> secret name.
    pub kubesphere: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub struct Desired {
    pub secrets: Vec<DesiredSecret>,
    /// The node-trust ConfigMap, when the spec asks (`nodeTrust:`); the shell sets it, as the CA
    /// files are read there.
    pub node_trust: Option<NodeTrustMap>,
    /// (namespace, name) -> wanted entries.
    pub service_accounts: BTreeMap<(String, String), Wanted>,
    /// (namespace, kind, name) -> wanted entries.
    pub workloads: BTreeMap<(String, WorkloadKind, String), Wanted>,
    /// The namespaces each scope resolved to.
    pub scopes: BTreeMap<String, BTreeSet<String>>,
    pub warnings: Vec<Warning>,
    /// The minted credentials some Secret needs a fresh token from (see `DesiredSecret::due`).
    pub due: BTreeSet<String>,
    /// When the first minted token held or written comes within its `refreshBefore` (Unix
    /// seconds): when a long-running apply renews.
    pub renew_at: Option<i64>,
    /// The workload kinds the spec declares (`workloadKinds:`): with the built-in ones, the
    /// kinds a controller may be of that the plan says to bind instead.
    pub declared_kinds: BTreeSet<WorkloadKind>,
}

/// The ConfigMap `apply` keeps of the rendered node trust, and where the operator's allowlist
/// is (same namespace). Its data is public: CA certificates and runtime configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTrustMap {
    pub namespace: String,
    pub name: String,
    pub data: BTreeMap<String, String>,
    /// The hosts it asks nodes to trust.
    pub hosts: Vec<crate::node_trust::NodeHost>,
    /// Each spec registry it covers, and its host.
    pub registries: Vec<(String, crate::node_trust::NodeHost)>,
    /// The allowlist ConfigMap's name (never written by regops).
    pub allow_list: String,
}

impl NodeTrustMap {
    /// From the spec's `nodeTrust:` and the hosts its registries ask for, checked.
    pub fn new(
        target: &regops_spec::NodeTrust,
        hosts: &[crate::node_trust::TrustedHost],
    ) -> NodeTrustMap {
        NodeTrustMap {
            namespace: target.namespace().to_string(),
            name: target.config_map().to_string(),
            data: crate::node_trust::config_map_data(hosts),
            hosts: hosts.iter().map(|t| t.host.clone()).collect(),
            registries: hosts
                .iter()
                .flat_map(|t| t.registries.iter().map(|r| (r.clone(), t.host.clone())))
                .collect(),
            allow_list: target.allow_list().to_string(),
        }
    }
}

/// The minted tokens (`ecr`, `gcp`, `acr`) of a run, and the time they are measured against.
/// A credential not in `fresh` was not minted: Secrets keep the token they hold while it has
/// more than `refreshBefore` left, so a run asks the cloud only when one is due.
#[derive(Debug, Default)]
pub struct Tokens {
    /// Unix seconds.
    pub now: i64,
    /// Per credential: a fresh token, or why there is none (for people; never a token).
    pub fresh: BTreeMap<String, Result<Login, NoToken>>,
}

/// Why a credential has no fresh token this run: said for people, never holding a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoToken {
    /// Minting from the cloud (`ecr`, `gcp`, `acr`) failed: the step and why.
    #[error("cannot mint a token from `{kind}`: {why}")]
    Mint { kind: &'static str, why: String },
    /// The helper that gives the credential failed, as it was reported.
    #[error("{0}")]
    Helper(String),
}

/// A minted token a Secret holds, if it may be kept: it is the login for `server` with
/// `username`, and the Secret's `regops.dev/expires-at` is more than `margin` seconds after
/// `now`. With `due_ok`, a token that is due is returned too (what a Secret keeps until it is
/// renewed). The token and when the Secret says it expires.
fn held_token(
    have: &Secret,
    server: &str,
    username: &str,
    margin: u64,
    now: i64,
    due_ok: bool,
) -> Option<(Login, Option<i64>)> {
    let expires = have
        .annotations
        .get(crate::ownership::EXPIRES_AT_ANNOTATION)
        .and_then(|a| regops_spec::rules::expiry(a).ok());
    let fresh_enough = expires
        .is_some_and(|at| at.saturating_sub(now) > i64::try_from(margin).unwrap_or(i64::MAX));
    if !fresh_enough && !due_ok {
        return None;
    }
    let doc = have.dockerconfigjson.as_ref()?;
    let (_, mut login) = dockerconfig::parse(doc, false)
        .ok()?
        .into_iter()
        .find(|(s, l)| s == server && l.username == username)?;
    login.expires_at = expires;
    Some((login, expires))
}

/// The largest `refreshBefore` of a pull secret's minted credentials, in seconds.
fn refresh_margin(spec: &Spec, ps: &regops_spec::PullSecret) -> i64 {
    ps.registries
        .iter()
        .filter_map(|r| spec.registries.get(r.as_str()))
        .filter_map(|reg| spec.credentials.get(reg.credential.as_str()))
        .map(|c| i64::try_from(c.refresh_before_secs).unwrap_or(i64::MAX))
        .max()
        .unwrap_or(0)
}

/// One pull secret with minted tokens in one namespace: each minted login kept from the Secret
/// while it has time left, else a fresh one, else due (or held, when minting failed).
// Kept whole (over 80 lines): per registry of the pull secret, the one decision of where its
// login comes from (static, kept, fresh, due or held), then the document.
fn minted_secret(
    spec: &Spec,
    ps: &regops_spec::PullSecret,
    logins: &BTreeMap<String, Login>,
    tokens: &Tokens,
    namespace: &str,
    have: Option<&Secret>,
) -> DesiredSecret {
    let mut pairs: Vec<(String, Login)> = Vec::new();
    let mut out = DesiredSecret {
        namespace: namespace.to_string(),
        name: ps.name.value.clone(),
        logins: Vec::new(),
        digests: BTreeMap::new(),
        sources: BTreeMap::new(),
        dockerconfigjson: SecretString::from(String::new()),
        adopt: ps.adopt,
        expires_at: None,
        due: Vec::new(),
        renewed: Vec::new(),
        held: None,
    };
    let earliest = |at: Option<i64>, out: &mut DesiredSecret| {
        let at = at.unwrap_or(0);
        out.expires_at = Some(out.expires_at.map_or(at, |e| e.min(at)));
    };
    for r in &ps.registries {
        let Some(reg) = spec.registries.get(r.as_str()) else {
            continue;
        };
        let server = reg.server.value.as_str();
        let Some(cred) = spec.credentials.get(reg.credential.as_str()) else {
            continue;
        };
        let name = &cred.name.value;
        let Some(minted) = cred.minted() else {
            match (logins.get(name.as_str()), tokens.fresh.get(name.as_str())) {
                (Some(l), _) => {
                    if let Some(d) = &l.source_digest {
                        out.sources.insert(name.clone(), d.clone());
                    }
                    pairs.push((server.to_string(), l.clone()));
                }
                (None, Some(Err(why))) => {
                    out.held
                        .get_or_insert_with(|| format!("credential `{name}`: {why}"));
                }
                (None, _) => {
                    out.held
                        .get_or_insert_with(|| format!("credential `{name}` is not available"));
                }
            }
            continue;
        };
        let user = minted.username();
        let now = tokens.now;
        let margin = cred.refresh_before_secs;
        if let Some((login, at)) =
            have.and_then(|h| held_token(h, server, user, margin, now, false))
        {
            earliest(at, &mut out);
            pairs.push((server.to_string(), login));
            continue;
        }
        match tokens.fresh.get(name.as_str()) {
            Some(Ok(login)) => {
                earliest(login.expires_at, &mut out);
                if have.is_some() {
                    out.renewed.push(name.clone());
                }
                pairs.push((server.to_string(), login.clone()));
            }
            Some(Err(why)) => {
                out.held
                    .get_or_insert_with(|| format!("credential `{name}`: {why}"));
            }
            None => {
                out.due.push(name.clone());
                if let Some((login, at)) =
                    have.and_then(|h| held_token(h, server, user, margin, now, true))
                {
                    earliest(at, &mut out);
                    pairs.push((server.to_string(), login));
                }
            }
        }
    }
    out.due.dedup();
    out.renewed.dedup();
    let mut review: Vec<(String, String)> = pairs
        .iter()
        .map(|(s, l)| (s.clone(), l.username.clone()))
        .collect();
    review.sort();
    out.logins = review;
    out.digests = pairs
        .iter()
        .filter_map(|(s, l)| Some((s.clone(), l.source_digest.clone()?)))
        .filter(|(_, d)| !d.starts_with(crate::ownership::VALUE_RECORD_PREFIX))
        .collect();
    out.dockerconfigjson = dockerconfig::build(pairs.iter().map(|(s, l)| (s.as_str(), l)));
    out
}

/// A pull secret's `.dockerconfigjson` and, for review, its logins and their sources.
pub struct PullSecretDocument {
    /// `(server, username)`, sorted.
    pub logins: Vec<(String, String)>,
    /// Per server, the digest of the ciphertext its password comes from.
    pub digests: BTreeMap<String, String>,
    /// Per credential, the same digest.
    pub sources: BTreeMap<String, String>,
    pub doc: SecretString,
    /// When the first minted token in it expires.
    pub expires_at: Option<i64>,
}

impl DesiredSecret {
    /// The pull secret `name` in `namespace`, holding `doc`.
    pub fn new(namespace: String, name: &str, doc: &PullSecretDocument, adopt: bool) -> Self {
        DesiredSecret {
            namespace,
            name: name.to_string(),
            logins: doc.logins.clone(),
            digests: doc.digests.clone(),
            sources: doc.sources.clone(),
            dockerconfigjson: doc.doc.clone(),
            adopt,
            expires_at: doc.expires_at,
            due: Vec::new(),
            renewed: Vec::new(),
            held: None,
        }
    }
}

/// Builds a pull secret's document from the logins of its registries.
pub fn pull_secret_document(
    spec: &Spec,
    ps: &regops_spec::PullSecret,
    logins: &BTreeMap<String, Login>,
) -> PullSecretDocument {
    let mut pairs: Vec<(&str, &Login)> = Vec::new();
    let mut review = Vec::new();
    let mut digests = BTreeMap::new();
    let mut sources = BTreeMap::new();
    let mut expires_at: Option<i64> = None;
    for r in &ps.registries {
        let Some(reg) = spec.registries.get(r.as_str()) else {
            continue;
        };
        let Some(login) = logins.get(reg.credential.as_str()) else {
            continue;
        };
        pairs.push((reg.server.as_str(), login));
        review.push((reg.server.value.clone(), login.username.clone()));
        if let Some(d) = &login.source_digest {
            // A ciphertext's digest names what the plan writes; a value's record is for
            // telling who moved, not for review.
            if !d.starts_with(crate::ownership::VALUE_RECORD_PREFIX) {
                digests.insert(reg.server.value.clone(), d.clone());
            }
            sources.insert(reg.credential.value.clone(), d.clone());
        }
        if let Some(at) = login.expires_at {
            expires_at = Some(expires_at.map_or(at, |e| e.min(at)));
        }
    }
    review.sort();
    PullSecretDocument {
        logins: review,
        digests,
        sources,
        doc: dockerconfig::build(pairs.iter().copied()),
        expires_at,
    }
}

/// Namespaces excluded from every selection unless a scope names them.
pub fn is_system_namespace(ns: &str) -> bool {
    matches!(ns, "kube-system" | "kube-public" | "kube-node-lease")
        || ns.starts_with("cattle-")
        || ns.starts_with("kubesphere-")
}

pub fn selector_matches(sel: &LabelSelector, labels: &Labels) -> bool {
    sel.matches(|k| labels.get(k).map(String::as_str))
}

/// Which namespaces one scope takes: the one rule the plan (with a cluster's namespaces) and
/// `render` (with the namespaces the user gives) both follow.
pub struct Membership<'a> {
    scope: &'a Scope,
    named: BTreeSet<&'a str>,
    excluded: BTreeSet<&'a str>,
}

impl<'a> Membership<'a> {
    pub fn new(scope: &'a Scope) -> Self {
        Membership {
            scope,
            named: scope.namespaces.iter().map(|n| n.as_str()).collect(),
            excluded: scope.exclude.iter().map(|e| e.as_str()).collect(),
        }
    }

    /// Whether the scope selects namespaces by what only a cluster knows (labels, Rancher
    /// project, KubeSphere workspace), beyond the names it lists.
    pub fn is_dynamic(&self) -> bool {
        self.scope.selector.is_some()
            || self.scope.rancher_project.is_some()
            || self.scope.kubesphere_workspace.is_some()
    }

    /// Whether a namespace as the cluster has it is selected by label, project or workspace.
    pub fn selects(&self, ns: &Namespace) -> bool {
        let scope = self.scope;
        scope
            .selector
            .as_ref()
            .is_some_and(|s| selector_matches(s, &ns.labels))
            || scope
                .rancher_project
                .as_ref()
                .is_some_and(|p| ns.annotations.get("field.cattle.io/projectId") == Some(&p.value))
            || scope
                .kubesphere_workspace
                .as_ref()
                .is_some_and(|w| ns.labels.get("kubesphere.io/workspace") == Some(&w.value))
    }

    /// Whether the scope takes the namespace `name`, `selected` saying whether its labels,
    /// project or workspace match: named ones always, selected ones unless they are system
    /// namespaces, excluded ones never.
    pub fn admits(&self, name: &str, selected: bool) -> bool {
        (self.named.contains(name) || (selected && !is_system_namespace(name)))
            && !self.excluded.contains(name)
    }

    /// The names the scope lists.
    pub fn named(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.named.iter().copied()
    }
}

/// A scope's namespaces: the union of those it names, selects by label, by Rancher project and
/// by KubeSphere workspace, less its exclusions; system namespaces only when named.
pub fn scope_namespaces(scope: &Scope, namespaces: &[Namespace]) -> BTreeSet<String> {
    let m = Membership::new(scope);
    namespaces
        .iter()
        .filter(|ns| m.admits(&ns.name, m.selects(ns)))
        .map(|ns| ns.name.clone())
        .collect()
}

/// Computes the desired state. `only` limits it to these namespaces (`-n`).
pub fn compute(
    spec: &Spec,
    logins: &BTreeMap<String, Login>,
    observed: &Observed,
    only: Option<&BTreeSet<String>>,
) -> Desired {
    compute_with(spec, logins, &Tokens::default(), observed, only)
}

/// As [`compute`], with the run's minted tokens.
// Kept whole (over 80 lines): scopes, then Secrets (minted ones Secret by Secret), then
// ServiceAccounts and workloads, in the order each needs the one before.
pub fn compute_with(
    spec: &Spec,
    logins: &BTreeMap<String, Login>,
    tokens: &Tokens,
    observed: &Observed,
    only: Option<&BTreeSet<String>>,
) -> Desired {
    let mut d = Desired {
        declared_kinds: spec.workload_kinds.values().map(|k| k.kind).collect(),
        ..Desired::default()
    };
    resolve_scopes(&mut d, spec, observed, only);
    // The Secrets regops wrote, for the tokens they hold; only when some pull secret mints.
    // (Whose they are is the plan's concern: another's is a conflict, whatever it holds.)
    // Pull secrets built Secret by Secret: those with a minted token, and those missing a
    // login (its helper failed), which are held back.
    let mints = |ps: &regops_spec::PullSecret| {
        ps.registries.iter().any(|r| {
            spec.registries
                .get(r.as_str())
                .and_then(|reg| spec.credentials.get(reg.credential.as_str()))
                .is_some_and(|c| c.minted().is_some() || !logins.contains_key(c.name.as_str()))
        })
    };
    let existing: BTreeMap<(&str, &str), &Secret> = if spec.pull_secrets.values().any(mints) {
        observed
            .secrets
            .iter()
            .filter(|s| {
                s.labels
                    .get(crate::ownership::MANAGED_BY_LABEL)
                    .map(String::as_str)
                    == Some(crate::ownership::MANAGED_BY_VALUE)
            })
            .map(|s| ((s.namespace.as_str(), s.name.as_str()), s))
            .collect()
    } else {
        BTreeMap::new()
    };
    for ps in spec.pull_secrets.values() {
        if mints(ps) {
            for ns in d.scopes.get(ps.scope.as_str()).into_iter().flatten() {
                let have = existing.get(&(ns.as_str(), ps.name.as_str())).copied();
                let s = minted_secret(spec, ps, logins, tokens, ns, have);
                d.due.extend(s.due.iter().cloned());
                if let Some(at) = s.expires_at {
                    let renew = at.saturating_sub(refresh_margin(spec, ps));
                    d.renew_at = Some(d.renew_at.map_or(renew, |r| r.min(renew)));
                }
                d.secrets.push(s);
            }
            continue;
        }
        let doc = pull_secret_document(spec, ps, logins);
        for ns in d.scopes.get(ps.scope.as_str()).into_iter().flatten() {
            d.secrets.push(DesiredSecret::new(
                ns.clone(),
                &ps.name.value,
                &doc,
                ps.adopt,
            ));
        }
    }
    d.secrets
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let existing_sas: BTreeSet<(&str, &str)> = observed
        .service_accounts
        .iter()
        .map(|o| (o.namespace.as_str(), o.name.as_str()))
        .collect();
    for b in &spec.bindings {
        let Some(ps) = spec.pull_secrets.get(b.pull_secret.as_str()) else {
            continue;
        };
        let namespaces = d.scopes.get(ps.scope.as_str()).cloned().unwrap_or_default();
        for ns in &namespaces {
            for sa in &b.service_accounts {
                if existing_sas.contains(&(ns.as_str(), sa.value.as_str())) {
                    d.service_accounts
                        .entry((ns.clone(), sa.value.clone()))
                        .or_default()
                        .secrets
                        .insert(ps.name.value.clone());
                } else {
                    d.warnings.push(Warning::new(
                        WarningKind::MissingServiceAccount,
                        format!("serviceaccount {ns}/{}", sa.value),
                        Message::own("service account ")
                            .code(&sa.value)
                            .and(" does not exist in namespace ")
                            .code(ns)
                            .and("; skipped"),
                    ));
                }
            }
        }
        if let Some(sel) = &b.workloads {
            bind_workloads(&mut d, spec, observed, (b, ps, sel), &namespaces);
        }
    }
    node_trust_warnings(&mut d, spec, observed, only);
    d
}

/// Workloads pulling from a registry the spec marks plain HTTP or gives a CA: a pull secret
/// does not make the nodes that run them trust it, and regops does not keep node trust in the
/// cluster (`render --node-config`, node-sync: docs/node-trust.md). One warning per registry.
fn node_trust_warnings(
    d: &mut Desired,
    spec: &Spec,
    observed: &Observed,
    only: Option<&BTreeSet<String>>,
) {
    for reg in crate::node_trust::requested(spec) {
        let pulling: Vec<String> = observed
            .workloads
            .iter()
            .filter(|w| only.is_none_or(|o| o.contains(&w.namespace)))
            .filter(|w| {
                w.containers
                    .iter()
                    .any(|c| crate::image::ImageRef::parse(&c.image).pulls_from(&reg.server.value))
            })
            .map(|w| format!("{} {}/{}", w.kind.object().lowercase(), w.namespace, w.name))
            .collect();
        let Some(first) = pulling.first() else {
            continue;
        };
        let n = pulling.len();
        let what = if reg.insecure {
            "plain HTTP"
        } else {
            "a private CA"
        };
        d.warnings.push(Warning::new(
            WarningKind::NodeTrust,
            format!("registry {}", reg.name.value),
            Message::own(if n == 1 {
                "workload ".to_string()
            } else {
                format!("{n} workloads (")
            })
            .quote(first)
            .and(if n == 1 { " pulls" } else { ", ...) pull" })
            .and(" from registry ")
            .code(&reg.name.value)
            .and(format!(
                " ({what}): the nodes that run {} must trust that registry, which a pull secret does not do; render their configuration with `regops render --node-config` (docs/node-trust.md)",
                if n == 1 { "it" } else { "them" }
            )),
        ));
    }
}

/// Each scope's namespaces (within `only`), less those being deleted; a warning for each
/// named namespace that does not exist and each one being deleted.
fn resolve_scopes(
    d: &mut Desired,
    spec: &Spec,
    observed: &Observed,
    only: Option<&BTreeSet<String>>,
) {
    let in_only = |ns: &str| only.is_none_or(|o| o.contains(ns));
    let existing_namespaces: BTreeSet<&str> = observed
        .namespaces
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    // A namespace being deleted refuses new objects (403 "unable to create new content in
    // namespace … because it is being terminated"), often for days while a finalizer is stuck:
    // nothing is planned there, and it is said once.
    let terminating = observed.terminating_namespaces();
    let mut skipped_terminating: BTreeSet<String> = BTreeSet::new();
    for scope in spec.scopes.values() {
        let mut resolved: BTreeSet<String> = scope_namespaces(scope, &observed.namespaces)
            .into_iter()
            .filter(|n| in_only(n))
            .collect();
        resolved.retain(|n| {
            let going = terminating.contains(n.as_str());
            if going {
                skipped_terminating.insert(n.clone());
            }
            !going
        });
        for named in &scope.namespaces {
            if in_only(named) && !existing_namespaces.contains(named.value.as_str()) {
                d.warnings.push(Warning::new(
                    WarningKind::MissingNamespace,
                    format!("namespace {}", named.value),
                    Message::own("namespace ")
                        .code(&named.value)
                        .and(" (scope ")
                        .code(&scope.name.value)
                        .and(") does not exist; nothing is planned for it"),
                ));
            }
        }
        d.scopes.insert(scope.name.value.clone(), resolved);
    }
    for ns in &skipped_terminating {
        d.warnings.push(Warning::new(
            WarningKind::NamespaceTerminating,
            format!("namespace {ns}"),
            Message::own("namespace ")
                .code(ns)
                .and(" is being deleted; nothing is planned for it"),
        ));
    }
}

/// The workloads a binding selects in `namespaces`: of its kinds, matching its selector, with
/// a container pulling from one of the pull secret's registries (or matching its `images`).
fn bind_workloads(
    d: &mut Desired,
    spec: &Spec,
    observed: &Observed,
    (b, ps, sel): (
        &regops_spec::Binding,
        &regops_spec::PullSecret,
        &regops_spec::WorkloadSelector,
    ),
    namespaces: &BTreeSet<String>,
) {
    let servers: Vec<&str> = ps
        .registries
        .iter()
        .filter_map(|r| spec.registries.get(r.as_str()))
        .map(|r| r.server.as_str())
        .collect();
    let kinds: Vec<WorkloadKind> = sel.selected_kinds();
    let pulls = |image: &str| {
        if sel.images.is_empty() {
            let r = ImageRef::parse(image);
            servers.iter().any(|s| r.pulls_from(s))
        } else {
            sel.images.iter().any(|p| image::pattern_matches(p, image))
        }
    };
    for w in observed
        .workloads
        .iter()
        .filter(|w| namespaces.contains(&w.namespace) && kinds.contains(&w.kind))
    {
        if sel
            .selector
            .as_ref()
            .is_some_and(|s| !selector_matches(s, &w.labels))
        {
            continue;
        }
        let matching: Vec<&str> = w
            .containers
            .iter()
            .filter(|c| pulls(&c.image))
            .map(|c| c.name.as_str())
            .collect();
        // A workload that runs another's pod template (an Argo Rollout's `workloadRef`) has
        // no containers of its own: selected by kind and labels, it is wanted, and the plan
        // says which workload to bind instead.
        if matching.is_empty() && w.template_ref.is_none() {
            continue;
        }
        let want = d
            .workloads
            .entry((w.namespace.clone(), w.kind, w.name.clone()))
            .or_default();
        want.secrets.insert(ps.name.value.clone());
        if b.kubesphere_annotation {
            for c in matching {
                want.kubesphere
                    .entry(c.to_string())
                    .or_insert_with(|| ps.name.value.clone());
            }
        }
    }
}

/// Workloads in a namespace, for messages.
pub fn describe_workload(w: &Workload) -> String {
    format!(
        "{} {}/{}",
        regops_spec::kind::ObjectKind::from(w.kind).lowercase(),
        w.namespace,
        w.name
    )
}
