//! The desired state: from the spec, the logins and the observed namespaces and workloads,
//! every object regops should own and every reference it should add. Pure.

use std::collections::{BTreeMap, BTreeSet};

use regops_spec::{LabelSelector, Scope, Spec, WorkloadKind};
use secrecy::SecretString;

use crate::dockerconfig;
use crate::image::{self, ImageRef};
use crate::login::Login;
use crate::observed::{Labels, Namespace, Observed, Workload};
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
    pub adopt: bool,
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
    /// (namespace, name) -> wanted entries.
    pub service_accounts: BTreeMap<(String, String), Wanted>,
    /// (namespace, kind, name) -> wanted entries.
    pub workloads: BTreeMap<(String, WorkloadKind, String), Wanted>,
    /// The namespaces each scope resolved to.
    pub scopes: BTreeMap<String, BTreeSet<String>>,
    pub warnings: Vec<Warning>,
}

/// A pull secret's `.dockerconfigjson` and, for review, its logins and their sources.
pub struct PullSecretDocument {
    /// `(server, username)`, sorted.
    pub logins: Vec<(String, String)>,
    /// Per server, the digest of the ciphertext its password comes from.
    pub digests: BTreeMap<String, String>,
    pub doc: SecretString,
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
            digests.insert(reg.server.value.clone(), d.clone());
        }
    }
    review.sort();
    PullSecretDocument {
        logins: review,
        digests,
        doc: dockerconfig::build(pairs.iter().copied()),
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
    let mut d = Desired::default();
    resolve_scopes(&mut d, spec, observed, only);
    for ps in spec.pull_secrets.values() {
        let PullSecretDocument {
            logins: review,
            digests,
            doc,
        } = pull_secret_document(spec, ps, logins);
        for ns in d.scopes.get(ps.scope.as_str()).into_iter().flatten() {
            d.secrets.push(DesiredSecret {
                namespace: ns.clone(),
                name: ps.name.value.clone(),
                logins: review.clone(),
                digests: digests.clone(),
                dockerconfigjson: doc.clone(),
                adopt: ps.adopt,
            });
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
                        format!(
                            "service account `{}` does not exist in namespace `{ns}`; skipped",
                            sa.value
                        ),
                    ));
                }
            }
        }
        if let Some(sel) = &b.workloads {
            bind_workloads(&mut d, spec, observed, (b, ps, sel), &namespaces);
        }
    }
    d
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
                    format!(
                        "namespace `{}` (scope `{}`) does not exist; nothing is planned for it",
                        named.value, scope.name.value
                    ),
                ));
            }
        }
        d.scopes.insert(scope.name.value.clone(), resolved);
    }
    for ns in &skipped_terminating {
        d.warnings.push(Warning::new(
            WarningKind::NamespaceTerminating,
            format!("namespace {ns}"),
            format!("namespace `{ns}` is being deleted; nothing is planned for it"),
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
    let kinds: Vec<WorkloadKind> = if sel.kinds.is_empty() {
        WorkloadKind::ALL.to_vec()
    } else {
        sel.kinds.iter().map(|k| k.value).collect()
    };
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
        if matching.is_empty() {
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
        crate::kind::ObjectKind::from(w.kind).lowercase(),
        w.namespace,
        w.name
    )
}
