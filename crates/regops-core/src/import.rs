//! `regops import`: the spec that a cluster's existing pull secrets amount to, proven by
//! planning it against the same cluster (pure: the shell reads the cluster and encrypts).
//!
//! From the `kubernetes.io/dockerconfigjson` Secrets found (a legacy `kubernetes.io/dockercfg`
//! one is left out with a note: taking it over means replacing it, which is more than
//! adoption):
//! - **registries**: one per server (the document's key, kept as written so that adoption
//!   changes no byte; Docker Hub's spellings are named `dockerhub`) and login;
//! - **credentials**: one per distinct login (username, password, email);
//! - **pull secrets**: one per Secret name, with `adopt: true`. Same-named Secrets with other
//!   logins are not merged: the variant found in the most namespaces is imported, the others
//!   are left out, with a note naming where they are;
//! - **scopes**: the smallest expression that selects exactly the namespaces where the Secret
//!   was found: its Rancher project, its KubeSphere workspace, or the names (one label only
//!   when asked to infer selectors: a label that happens to select them today, such as
//!   `pod-security.kubernetes.io/enforce`, would hand the credentials to any namespace given it
//!   later);
//! - **bindings**: the ServiceAccounts that reference it in every namespace of the scope where
//!   they exist, the workload kinds whose workloads pulling from its registries all reference
//!   it, and KubeSphere's annotation where the workloads carry it.
//!
//! Then the candidate is planned against what was read. Anything but adoption (the label and
//! annotations regops needs on each Secret) is taken back out of the spec: a binding that
//! would add an entry, a scope that would reach another namespace (the names are used instead),
//! the KubeSphere annotation where it would change. So `regops plan` right after an import
//! shows only adoption, and nothing after one apply.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use secrecy::{ExposeSecret, SecretString};

use crate::dockerconfig;
use crate::image::ImageRef;
use crate::login::Login;
use crate::observed::{Namespace, Observed, Secret};
use crate::ownership;
use crate::plan::{Action, Cause, Plan};

pub const DOCKERCONFIGJSON: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKERCFG: &str = "kubernetes.io/dockercfg";

/// The annotation Rancher gives the namespaces of a project (`cluster:project`).
const RANCHER_PROJECT: &str = "field.cattle.io/projectId";
/// The label KubeSphere gives the namespaces of a workspace.
const KUBESPHERE_WORKSPACE: &str = "kubesphere.io/workspace";
const KUBESPHERE_ANNOTATION: &str = "kubesphere.io/imagepullsecrets";

/// Something found and not imported, why, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeftOut {
    pub what: String,
    pub why: String,
    pub todo: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeExpr {
    RancherProject(String),
    KubesphereWorkspace(String),
    Label(String, String),
    Names(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeOut {
    pub name: String,
    pub expr: ScopeExpr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryOut {
    pub name: String,
    pub server: String,
    pub credential: String,
}

pub struct CredentialOut {
    pub name: String,
    pub login: Login,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullSecretOut {
    pub name: String,
    pub registries: Vec<String>,
    pub scope: String,
    /// Where it was found.
    pub found_in: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindingOut {
    pub pull_secret: String,
    pub service_accounts: Vec<String>,
    pub kinds: Vec<regops_spec::WorkloadKind>,
    pub kubesphere: bool,
}

/// What an import found, as a spec to write, and what it left out.
#[derive(Default)]
pub struct Import {
    pub name: String,
    pub recipients: Vec<String>,
    pub registries: Vec<RegistryOut>,
    pub credentials: Vec<CredentialOut>,
    pub scopes: Vec<ScopeOut>,
    pub pull_secrets: Vec<PullSecretOut>,
    pub bindings: Vec<BindingOut>,
    pub left_out: Vec<LeftOut>,
    /// Namespaces looked at.
    pub namespaces: usize,
    /// Secrets imported (one per namespace and pull secret).
    pub secrets: usize,
    /// What the check by planning took out of the spec, and why.
    pub notes: Vec<String>,
}

/// How a credential's password is written.
pub enum Password {
    /// age armour.
    Ciphertext(String),
    /// `{ env: NAME }` (the import's own check).
    Env(String),
    /// For `--dry-run`.
    Redacted,
}

/// A name as the spec wants it: lowercase letters, digits and `-`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    let mut out: String = out.chars().take(40).collect();
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() { "x".into() } else { out }
}

/// `base`, or `base-2`, `base-3`… : the first not in `taken`.
fn unique(base: String, taken: &BTreeSet<String>) -> String {
    if !taken.contains(&base) {
        return base;
    }
    (2..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| !taken.contains(n))
        .unwrap_or(base)
}

/// A registry's name from its server: `dockerhub` for Docker Hub's spellings, else the
/// host's telling label (`harbor.example.com`: harbor; `registry.gitlab.com`: gitlab).
fn registry_base(server: &str) -> String {
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or(server);
    let host = host.split(':').next().unwrap_or(host);
    if matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    ) {
        return "dockerhub".into();
    }
    if host.contains(".dkr.ecr.") {
        return "ecr".into();
    }
    let labels: Vec<&str> = host.split('.').collect();
    let first = labels.first().copied().unwrap_or(host);
    let telling =
        if matches!(first, "registry" | "www" | "docker" | "hub" | "cr") && labels.len() > 2 {
            labels[1]
        } else {
            first
        };
    slug(telling)
}

/// One Secret found, read.
struct Found<'a> {
    secret: &'a Secret,
    logins: Vec<(String, Login)>,
}

fn same(a: &[(String, Login)], b: &[(String, Login)]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((s1, l1), (s2, l2))| {
            s1 == s2
                && l1.username == l2.username
                && l1.email == l2.email
                && l1.password.expose_secret() == l2.password.expose_secret()
        })
}

/// Why a Secret is not regops' to take, if it is another tool's.
fn owned_elsewhere(s: &Secret) -> Option<LeftOut> {
    let what = format!("Secret {}/{}", s.namespace, s.name);
    if s.labels
        .get(ownership::MANAGED_BY_LABEL)
        .map(String::as_str)
        == Some(ownership::MANAGED_BY_VALUE)
    {
        let spec = s.owning_spec().unwrap_or("?");
        return Some(LeftOut {
            what,
            why: format!("regops owns it already (spec `{spec}`)"),
            todo: "nothing: it is in a spec".into(),
        });
    }
    if s.annotations.get(RANCHER_PROJECT).is_some()
        || s.labels.get("cattle.io/creator").map(String::as_str) == Some("norman")
    {
        return Some(LeftOut {
            what,
            why: "a copy Rancher keeps of a project's registry credential".into(),
            todo: "leave it to Rancher, or delete the credential from the project in Rancher and import again".into(),
        });
    }
    if let Some(tool) = ownership::gitops_owner(&s.labels, &s.annotations) {
        return Some(LeftOut {
            what,
            why: format!("{tool} manages it"),
            todo: format!("keep it in {tool}, or remove it there first and import again"),
        });
    }
    None
}

/// The smallest expression that selects exactly `wanted` among `all`; a plain label only with
/// `labels`.
fn scope_for(wanted: &BTreeSet<&str>, all: &[&Namespace], labels: bool) -> ScopeExpr {
    let first = all.iter().find(|n| wanted.contains(n.name.as_str()));
    let exactly = |pick: &dyn Fn(&Namespace) -> bool| -> bool {
        all.iter()
            .filter(|n| pick(n))
            .map(|n| n.name.as_str())
            .collect::<BTreeSet<_>>()
            == *wanted
    };
    if let Some(first) = first {
        if let Some(p) = first.annotations.get(RANCHER_PROJECT)
            && exactly(&|n| n.annotations.get(RANCHER_PROJECT) == Some(p))
        {
            return ScopeExpr::RancherProject(p.clone());
        }
        if let Some(w) = first.labels.get(KUBESPHERE_WORKSPACE)
            && exactly(&|n| n.labels.get(KUBESPHERE_WORKSPACE) == Some(w))
        {
            return ScopeExpr::KubesphereWorkspace(w.clone());
        }
        if labels && wanted.len() > 1 {
            for (k, v) in first.labels.iter() {
                if k == "kubernetes.io/metadata.name"
                    || k == KUBESPHERE_WORKSPACE
                    || k == RANCHER_PROJECT
                {
                    continue;
                }
                if exactly(&|n| n.labels.get(k) == Some(v)) {
                    return ScopeExpr::Label(k.clone(), v.clone());
                }
            }
        }
    }
    ScopeExpr::Names(wanted.iter().map(|s| s.to_string()).collect())
}

fn scope_name(expr: &ScopeExpr, pull_secret: &str) -> String {
    match expr {
        ScopeExpr::RancherProject(p) => {
            format!("project-{}", slug(p.rsplit(':').next().unwrap_or(p)))
        }
        ScopeExpr::KubesphereWorkspace(w) => format!("workspace-{}", slug(w)),
        ScopeExpr::Label(k, v) => slug(&format!("{}-{v}", k.rsplit('/').next().unwrap_or(k))),
        ScopeExpr::Names(_) => format!("{}-namespaces", slug(pull_secret)),
    }
}

/// Reads the candidates: the dockerconfig Secrets in view, parsed, each else left out.
fn found<'a>(
    observed: &'a Observed,
    in_view: &BTreeSet<&str>,
    left_out: &mut Vec<LeftOut>,
) -> Vec<Found<'a>> {
    let mut out = Vec::new();
    for s in &observed.secrets {
        if !in_view.contains(s.namespace.as_str())
            || !matches!(s.type_.as_str(), DOCKERCONFIGJSON | DOCKERCFG)
        {
            continue;
        }
        if let Some(l) = owned_elsewhere(s) {
            left_out.push(l);
            continue;
        }
        if s.type_ == DOCKERCFG {
            left_out.push(LeftOut {
                what: format!("Secret {}/{}", s.namespace, s.name),
                why: "a legacy kubernetes.io/dockercfg Secret: its type cannot change, so taking it over deletes it and creates a dockerconfigjson one, which is more than adoption".into(),
                todo: format!(
                    "to have regops replace it, add pull secret `{}` with `adopt: true` and its registries to the spec yourself; or convert it by hand (kubectl create secret docker-registry) and import again",
                    s.name
                ),
            });
            continue;
        }
        let parsed = match (&s.dockerconfigjson, s.type_.as_str()) {
            (Some(doc), DOCKERCONFIGJSON) => dockerconfig::parse(doc, false),
            (Some(doc), _) => dockerconfig::parse(doc, true),
            (None, _) => Err(dockerconfig::DocError::Missing),
        };
        match parsed {
            Ok(logins) => out.push(Found { secret: s, logins }),
            Err(why) => left_out.push(LeftOut {
                what: format!("Secret {}/{}", s.namespace, s.name),
                why: format!("cannot be read: {why}"),
                todo: "fix or delete it, then import again".into(),
            }),
        }
    }
    out
}

/// Infers the spec (see the module's documentation). `plan` plans a candidate's text against
/// what was read (the shell's: it parses the spec and resolves the logins).
// Kept whole (over 80 lines): the inference's steps in order, each feeding the next.
pub fn infer(
    observed: &Observed,
    only: Option<&BTreeSet<String>>,
    name: &str,
    recipients: &[String],
    infer_selectors: bool,
) -> Import {
    let mut im = Import {
        name: name.to_string(),
        recipients: recipients.to_vec(),
        ..Import::default()
    };
    let all: Vec<&Namespace> = observed
        .namespaces
        .iter()
        .filter(|n| !n.terminating && only.is_none_or(|o| o.contains(&n.name)))
        .collect();
    im.namespaces = all.len();
    let in_view: BTreeSet<&str> = all.iter().map(|n| n.name.as_str()).collect();
    let mut found = found(observed, &in_view, &mut im.left_out);
    found.sort_by(|a, b| {
        (&a.secret.name, &a.secret.namespace).cmp(&(&b.secret.name, &b.secret.namespace))
    });
    // By name, the variants (same logins), each with its Secrets.
    let mut by_name: BTreeMap<&str, Vec<Vec<&Found>>> = BTreeMap::new();
    for f in &found {
        let variants = by_name.entry(f.secret.name.as_str()).or_default();
        match variants.iter_mut().find(|v| same(&v[0].logins, &f.logins)) {
            Some(v) => v.push(f),
            None => variants.push(vec![f]),
        }
    }
    let mut taken_registries = BTreeSet::new();
    let mut taken_credentials = BTreeSet::new();
    for (ps_name, mut variants) in by_name {
        // The variant found in the most namespaces (the first found, on a tie).
        variants.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let chosen = variants.remove(0);
        for other in &variants {
            let places: Vec<&str> = other.iter().map(|f| f.secret.namespace.as_str()).collect();
            im.left_out.push(LeftOut {
                what: format!("Secret {ps_name} in {}", places.join(", ")),
                why: format!(
                    "the same name as the imported `{ps_name}` ({} namespace{}), with other logins: not merged",
                    chosen.len(),
                    if chosen.len() == 1 { "" } else { "s" }
                ),
                todo: "rename it there, or make its logins match, then import again".into(),
            });
        }
        let registries: Vec<String> = chosen[0]
            .logins
            .iter()
            .map(|(server, login)| {
                place(
                    &mut im,
                    server,
                    login,
                    &mut taken_registries,
                    &mut taken_credentials,
                )
            })
            .collect();
        let wanted: BTreeSet<&str> = chosen.iter().map(|f| f.secret.namespace.as_str()).collect();
        let expr = scope_for(&wanted, &all, infer_selectors);
        let scope = scope_named(&mut im, expr, ps_name);
        im.secrets += chosen.len();
        im.pull_secrets.push(PullSecretOut {
            name: ps_name.to_string(),
            registries,
            scope,
            found_in: wanted.iter().map(|s| s.to_string()).collect(),
        });
        im.bindings.push(bindings_for(
            observed,
            ps_name,
            &wanted,
            &chosen[0].logins,
            &mut im.notes,
        ));
    }
    im.bindings
        .retain(|b| !b.service_accounts.is_empty() || !b.kinds.is_empty());
    im
}

/// The registry (and credential) a pull secret's login is written as: one already made for
/// the same server and login, or a new one.
fn place(
    im: &mut Import,
    server: &str,
    login: &Login,
    taken_registries: &mut BTreeSet<String>,
    taken_credentials: &mut BTreeSet<String>,
) -> String {
    let credential = match im.credentials.iter().find(|c| {
        c.login.username == login.username
            && c.login.email == login.email
            && c.login.password.expose_secret() == login.password.expose_secret()
    }) {
        Some(c) => c.name.clone(),
        None => {
            let n = unique(
                format!("{}-{}", registry_base(server), slug(&login.username)),
                taken_credentials,
            );
            taken_credentials.insert(n.clone());
            im.credentials.push(CredentialOut {
                name: n.clone(),
                login: Login {
                    username: login.username.clone(),
                    password: SecretString::from(login.password.expose_secret().to_string()),
                    email: login.email.clone(),
                    source_digest: None,
                    expires_at: None,
                },
            });
            n
        }
    };
    if let Some(r) = im
        .registries
        .iter()
        .find(|r| r.server == server && r.credential == credential)
    {
        return r.name.clone();
    }
    let n = unique(registry_base(server), taken_registries);
    taken_registries.insert(n.clone());
    im.registries.push(RegistryOut {
        name: n.clone(),
        server: server.to_string(),
        credential,
    });
    n
}

/// The scope named for `expr`: one already made, or a new one.
fn scope_named(im: &mut Import, expr: ScopeExpr, pull_secret: &str) -> String {
    if let Some(s) = im.scopes.iter().find(|s| s.expr == expr) {
        return s.name.clone();
    }
    let taken: BTreeSet<String> = im.scopes.iter().map(|s| s.name.clone()).collect();
    let n = unique(scope_name(&expr, pull_secret), &taken);
    im.scopes.push(ScopeOut {
        name: n.clone(),
        expr,
    });
    n
}

/// The references to `pull_secret` found in `wanted`, as a binding that adds none.
fn bindings_for(
    observed: &Observed,
    pull_secret: &str,
    wanted: &BTreeSet<&str>,
    logins: &[(String, Login)],
    notes: &mut Vec<String>,
) -> BindingOut {
    let mut b = BindingOut {
        pull_secret: pull_secret.to_string(),
        ..BindingOut::default()
    };
    let sas: Vec<_> = observed
        .service_accounts
        .iter()
        .filter(|s| wanted.contains(s.namespace.as_str()))
        .collect();
    let names: BTreeSet<&str> = sas
        .iter()
        .filter(|s| s.image_pull_secrets.iter().any(|e| e == pull_secret))
        .map(|s| s.name.as_str())
        .collect();
    for n in names {
        let without: Vec<&str> = sas
            .iter()
            .filter(|s| s.name == n && !s.image_pull_secrets.iter().any(|e| e == pull_secret))
            .map(|s| s.namespace.as_str())
            .collect();
        if without.is_empty() {
            b.service_accounts.push(n.to_string());
        } else {
            notes.push(format!(
                "pull secret `{pull_secret}`: ServiceAccount `{n}` is not bound: it lacks the entry in {}; its entries stay as they are.",
                without.join(", ")
            ));
        }
    }
    b.kinds = bound_kinds(
        observed,
        pull_secret,
        wanted,
        logins,
        notes,
        &mut b.kubesphere,
    );
    b
}

/// The workload kinds whose workloads pulling from the pull secret's registries in `wanted`
/// all reference it already (and whether they carry KubeSphere's annotation for it).
fn bound_kinds(
    observed: &Observed,
    pull_secret: &str,
    wanted: &BTreeSet<&str>,
    logins: &[(String, Login)],
    notes: &mut Vec<String>,
    kubesphere: &mut bool,
) -> Vec<regops_spec::WorkloadKind> {
    let mut kinds = Vec::new();
    let servers: Vec<&str> = logins.iter().map(|(s, _)| s.as_str()).collect();
    for kind in regops_spec::WorkloadKind::ALL {
        let of_kind: Vec<_> = observed
            .workloads
            .iter()
            .filter(|w| {
                w.kind == kind && wanted.contains(w.namespace.as_str()) && w.controller.is_none()
            })
            .collect();
        let refers =
            |w: &&&crate::observed::Workload| w.image_pull_secrets.iter().any(|e| e == pull_secret);
        let selected: Vec<_> = of_kind
            .iter()
            .filter(|w| {
                w.containers.iter().any(|c| {
                    servers
                        .iter()
                        .any(|s| ImageRef::parse(&c.image).pulls_from(s))
                })
            })
            .collect();
        let lacking: Vec<String> = selected
            .iter()
            .filter(|w| !refers(w))
            .map(|w| format!("{}/{}", w.namespace, w.name))
            .collect();
        if !lacking.is_empty() && selected.iter().any(refers) {
            notes.push(format!(
                "pull secret `{pull_secret}`: {} workloads are not bound: {} lack{} the entry; their entries stay as they are.",
                kind.as_str(),
                lacking.join(", "),
                if lacking.len() == 1 { "s" } else { "" }
            ));
        }
        if !selected.is_empty() && lacking.is_empty() {
            kinds.push(kind);
            if selected.iter().any(|w| {
                w.template_annotations
                    .get(KUBESPHERE_ANNOTATION)
                    .is_some_and(|v| v.contains(pull_secret))
            }) {
                *kubesphere = true;
            }
        }
    }
    kinds
}

/// What the plan of an import's spec shows beyond adoption, and what is taken out for it.
/// Returns whether anything was.
pub fn narrow(im: &mut Import, plan: &Plan) -> bool {
    let mut changed = false;
    for c in plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Noop && !is_adoption(c))
    {
        let adds: Vec<&String> = c
            .causes
            .iter()
            .flat_map(|k| match k {
                Cause::EntryMissing { entries } => entries.iter().collect(),
                _ => Vec::new(),
            })
            .collect();
        changed |= match c.kind {
            regops_spec::kind::ObjectKind::Secret => name_the_namespaces(im, c),
            regops_spec::kind::ObjectKind::ServiceAccount => unbind_service_account(im, c, &adds),
            kind => kind
                .workload()
                .is_some_and(|wk| unbind_workloads(im, c, wk, &adds)),
        };
    }
    // Scopes no pull secret uses any more.
    let used: BTreeSet<String> = im.pull_secrets.iter().map(|p| p.scope.clone()).collect();
    im.scopes.retain(|s| used.contains(&s.name));
    im.bindings
        .retain(|b| !b.service_accounts.is_empty() || !b.kinds.is_empty());
    changed
}

/// A change adoption makes: regops' label and annotations on a Secret (and `kubectl apply`'s
/// copy of its data removed).
fn is_adoption(c: &crate::plan::Change) -> bool {
    c.action == Action::Update
        && c.causes.iter().all(|k| {
            matches!(
                k,
                Cause::Adopted
                    | Cause::OwnershipChanged
                    | Cause::RecordOutdated
                    | Cause::LastAppliedRemoved
            )
        })
}

/// A Secret the scope reaches where none was found: the scope names the namespaces instead.
fn name_the_namespaces(im: &mut Import, c: &crate::plan::Change) -> bool {
    let Some(ps) = im.pull_secrets.iter_mut().find(|p| p.name == c.name) else {
        return false;
    };
    if !matches!(c.action, Action::Create) {
        return false;
    }
    let names = ScopeExpr::Names(ps.found_in.clone());
    let taken: BTreeSet<String> = im.scopes.iter().map(|s| s.name.clone()).collect();
    let n = unique(scope_name(&names, &ps.name), &taken);
    im.scopes.push(ScopeOut {
        name: n.clone(),
        expr: names,
    });
    im.notes.push(format!(
        "pull secret `{}`: its scope would also reach {}, where it was not found; it names its namespaces instead.",
        ps.name, c.namespace
    ));
    ps.scope = n;
    true
}

/// A ServiceAccount a binding would add an entry to: unbound.
fn unbind_service_account(im: &mut Import, c: &crate::plan::Change, adds: &[&String]) -> bool {
    let mut changed = false;
    for b in im
        .bindings
        .iter_mut()
        .filter(|b| adds.contains(&&b.pull_secret))
    {
        let before = b.service_accounts.len();
        b.service_accounts.retain(|s| *s != c.name);
        if b.service_accounts.len() != before {
            im.notes.push(format!(
                "pull secret `{}`: ServiceAccount `{}` is not bound: it lacks the entry in {}; its entries stay as they are.",
                b.pull_secret, c.name, c.namespace
            ));
            changed = true;
        }
    }
    changed
}

/// A workload a binding would add an entry to (its kind is unbound), or whose KubeSphere
/// annotation it would change (the annotation is left alone).
fn unbind_workloads(
    im: &mut Import,
    c: &crate::plan::Change,
    wk: regops_spec::WorkloadKind,
    adds: &[&String],
) -> bool {
    let annotation = c
        .causes
        .iter()
        .any(|k| matches!(k, Cause::AnnotationDiffers | Cause::AnnotationMoved));
    let mut changed = false;
    for b in im.bindings.iter_mut() {
        if adds.contains(&&b.pull_secret) {
            let before = b.kinds.len();
            b.kinds.retain(|k| *k != wk);
            if b.kinds.len() != before {
                im.notes.push(format!(
                    "pull secret `{}`: {} workloads are not bound: {} {}/{} lacks the entry; their entries stay as they are.",
                    b.pull_secret, wk.as_str(), wk.as_str(), c.namespace, c.name
                ));
                changed = true;
            }
        } else if b.kubesphere && annotation {
            b.kubesphere = false;
            im.notes.push(format!(
                "pull secret `{}`: KubeSphere's annotation is not kept by regops: it differs on {} {}/{}.",
                b.pull_secret, wk.as_str(), c.namespace, c.name
            ));
            changed = true;
        }
    }
    changed
}

/// The changes of a plan beyond adoption (none, for an import's spec).
pub fn beyond_adoption(plan: &Plan) -> usize {
    plan.changes
        .iter()
        .filter(|c| c.action != Action::Noop && !is_adoption(c))
        .count()
        + plan.conflicts.len()
}

/// The environment variable [`prove`] names for every password of the candidate spec: never
/// read, as the check resolves the logins itself ([`logins`]).
pub const CHECK_ENV: &str = "REGOPS_IMPORT_CHECK";

/// Why an import could not be proved to plan to adoption only.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The rendered spec is not one `regops check` accepts (a bug in [`render`]).
    #[error("the imported spec does not load")]
    Invalid(Box<regops_spec::Invalid>),
    /// Narrowing did not settle within its rounds (a bug in [`narrow`]).
    #[error("the imported spec did not settle into adoption only; please report this")]
    Unsettled,
}

/// Loads a rendered spec (the import's own output) as `regops check` would.
pub fn load(text: &str, name: &str) -> Result<regops_spec::Loaded, Box<regops_spec::Invalid>> {
    let mut sources = regops_spec::Sources::default();
    sources.add(
        std::path::PathBuf::from(format!("{name}.yaml")),
        text.to_string(),
        regops_spec::source::SpecFormat::Yaml,
    );
    regops_spec::load(sources, name)
}

/// Plans the candidate against what was read, taking out what would be more than adoption,
/// until nothing more is; returns how many changes are still beyond adoption (none expected).
pub fn prove(
    im: &mut Import,
    observed: &Observed,
    only: Option<&BTreeSet<String>>,
    target: &str,
) -> Result<usize, ProveError> {
    let env = |_: &CredentialOut| Password::Env(CHECK_ENV.into());
    for _ in 0..16 {
        let loaded = load(&render(im, "", &env), &im.name).map_err(ProveError::Invalid)?;
        let desired = crate::desired::compute(&loaded.spec, &logins(im), observed, only);
        let plan = crate::plan::compute(
            &im.name,
            target,
            crate::plan::Source::default(),
            &desired,
            observed,
            only,
        );
        if !narrow(im, &plan) {
            return Ok(beyond_adoption(&plan));
        }
    }
    Err(ProveError::Unsettled)
}

/// A YAML double-quoted string.
fn q(s: &str) -> String {
    regops_spec::untrusted::yaml_string(s)
}

/// A name as the spec is written: plain where it is a plain name (`web`, `harbor-pull`), else
/// quoted (a name read from a hostile API server may hold anything, `: ` and line breaks
/// included, which plain would turn into spec).
fn n(s: &str) -> String {
    let plain = s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
        && !matches!(
            s,
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain { s.to_string() } else { q(s) }
}

fn names(list: &[String]) -> String {
    list.iter().map(|s| n(s)).collect::<Vec<_>>().join(", ")
}

/// What an import did, for people: what it found, what it left out and why, and what to do
/// next. Names and reasons from the cluster are escaped (`regops_spec::untrusted`).
pub fn summary(im: &Import, beyond: usize, written: Option<&std::path::Path>) -> String {
    use regops_spec::untrusted::terminal;
    let mut o = format!(
        "Imported {} Secret{} as {} pull secret{} ({} registr{}, {} credential{}) from {} namespace{} looked at; {} binding{}.\n",
        im.secrets,
        if im.secrets == 1 { "" } else { "s" },
        im.pull_secrets.len(),
        if im.pull_secrets.len() == 1 { "" } else { "s" },
        im.registries.len(),
        if im.registries.len() == 1 { "y" } else { "ies" },
        im.credentials.len(),
        if im.credentials.len() == 1 { "" } else { "s" },
        im.namespaces,
        if im.namespaces == 1 { "" } else { "s" },
        im.bindings.len(),
        if im.bindings.len() == 1 { "" } else { "s" },
    );
    if im.left_out.is_empty() {
        o.push_str("Nothing was left out. (Secrets of other types are not read.)\n");
    } else {
        o.push_str(&format!(
            "Left out ({}; Secrets of other types are not read):\n",
            im.left_out.len()
        ));
        // What was left out and why name the cluster's objects (data): one line each.
        for l in &im.left_out {
            o.push_str(&format!(
                "  - {}: {}.\n    What to do: {}.\n",
                terminal(&l.what),
                terminal(&l.why),
                terminal(&l.todo)
            ));
        }
    }
    for n in &im.notes {
        o.push_str(&format!("Note: {}\n", terminal(n)));
    }
    if beyond > 0 {
        o.push_str(&format!(
            "Warning: {beyond} change{} beyond adoption remain in its plan; review them with `regops plan`.\n",
            if beyond == 1 { "" } else { "s" }
        ));
    }
    if let Some(path) = written {
        o.push_str(&format!(
            "Wrote {} (mode 0600). Next: `regops plan -f {} -i KEY` shows only adoption; `regops apply` takes the Secrets over.\n",
            terminal(&path.display().to_string()),
            terminal(&path.display().to_string())
        ));
    }
    o
}

/// The spec as a person would write it: sorted, a comment per pull secret saying where it
/// was found. `password` gives each credential's password (by credential name).
pub fn render(im: &Import, header: &str, password: &dyn Fn(&CredentialOut) -> Password) -> String {
    let mut o = String::new();
    // Comments quote the cluster (its address, namespaces' names): escaped, so that no line
    // break of theirs (`\r`, NEL, U+2028 end a YAML line too) ends a comment and writes spec.
    for line in header.lines() {
        let _ = writeln!(o, "# {}", regops_spec::untrusted::terminal(line));
    }
    let _ = writeln!(
        o,
        "apiVersion: regops.dev/v1\nkind: RegistryConfig\nmetadata:\n  name: {}",
        q(&im.name)
    );
    let _ = writeln!(o, "recipients:");
    for r in &im.recipients {
        let _ = writeln!(o, "  - {}", q(r));
    }
    let _ = writeln!(
        o,
        "registries:{}",
        if im.registries.is_empty() { " {}" } else { "" }
    );
    let mut registries: Vec<&RegistryOut> = im.registries.iter().collect();
    registries.sort_by(|a, b| a.name.cmp(&b.name));
    for r in registries {
        let _ = writeln!(
            o,
            "  {}:\n    server: {}\n    credential: {}",
            n(&r.name),
            q(&r.server),
            n(&r.credential)
        );
    }
    credentials(&mut o, im, password);
    scopes(&mut o, im);
    pull_secrets(&mut o, im);
    bindings(&mut o, im);
    o
}

fn credentials(o: &mut String, im: &Import, password: &dyn Fn(&CredentialOut) -> Password) {
    let _ = writeln!(
        o,
        "credentials:{}",
        if im.credentials.is_empty() { " {}" } else { "" }
    );
    let mut credentials: Vec<&CredentialOut> = im.credentials.iter().collect();
    credentials.sort_by(|a, b| a.name.cmp(&b.name));
    for c in credentials {
        let _ = writeln!(
            o,
            "  {}:\n    username: {}",
            n(&c.name),
            q(&c.login.username)
        );
        if let Some(e) = &c.login.email {
            let _ = writeln!(o, "    email: {}", q(e));
        }
        match password(c) {
            Password::Ciphertext(armour) => {
                let _ = writeln!(o, "    password: |");
                for line in armour.trim_end().lines() {
                    let _ = writeln!(o, "      {line}");
                }
            }
            Password::Env(var) => {
                let _ = writeln!(o, "    password: {{ env: {var} }}");
            }
            Password::Redacted => {
                let _ = writeln!(
                    o,
                    "    password: \"(redacted: age ciphertext in the written file)\""
                );
            }
        }
    }
}

fn scopes(o: &mut String, im: &Import) {
    let _ = writeln!(
        o,
        "scopes:{}",
        if im.scopes.is_empty() { " {}" } else { "" }
    );
    let mut scopes: Vec<&ScopeOut> = im.scopes.iter().collect();
    scopes.sort_by(|a, b| a.name.cmp(&b.name));
    for s in scopes {
        let _ = writeln!(o, "  {}:", n(&s.name));
        match &s.expr {
            ScopeExpr::RancherProject(p) => {
                let _ = writeln!(o, "    rancherProject: {}", q(p));
            }
            ScopeExpr::KubesphereWorkspace(w) => {
                let _ = writeln!(o, "    kubesphereWorkspace: {}", q(w));
            }
            ScopeExpr::Label(k, v) => {
                let _ = writeln!(
                    o,
                    "    selector:\n      matchLabels:\n        {}: {}",
                    q(k),
                    q(v)
                );
            }
            ScopeExpr::Names(names) => {
                let _ = writeln!(o, "    namespaces:");
                for name in names {
                    let _ = writeln!(o, "      - {}", n(name));
                }
            }
        }
    }
}

fn pull_secrets(o: &mut String, im: &Import) {
    let _ = writeln!(
        o,
        "pullSecrets:{}",
        if im.pull_secrets.is_empty() {
            " {}"
        } else {
            ""
        }
    );
    for p in &im.pull_secrets {
        let _ = writeln!(
            o,
            "  # Found in {}.",
            regops_spec::untrusted::terminal(&p.found_in.join(", "))
        );
        let _ = writeln!(
            o,
            "  {}:\n    registries: [{}]\n    scope: {}\n    adopt: true",
            n(&p.name),
            names(&p.registries),
            n(&p.scope)
        );
    }
}

fn bindings(o: &mut String, im: &Import) {
    if im.bindings.is_empty() {
        let _ = writeln!(o, "bindings: []");
    } else {
        let _ = writeln!(o, "bindings:");
    }
    for b in &im.bindings {
        let _ = writeln!(o, "  - pullSecret: {}", n(&b.pull_secret));
        if !b.service_accounts.is_empty() {
            let _ = writeln!(o, "    serviceAccounts: [{}]", names(&b.service_accounts));
        }
        if !b.kinds.is_empty() {
            let kinds: Vec<&str> = b.kinds.iter().map(|k| k.as_str()).collect();
            let _ = writeln!(o, "    workloads: {{ kinds: [{}] }}", kinds.join(", "));
            if b.kubesphere {
                let _ = writeln!(o, "    kubesphereAnnotation: true");
            }
        }
    }
}

/// The logins of an import's credentials, by name, for planning the candidate.
pub fn logins(im: &Import) -> BTreeMap<String, Login> {
    im.credentials
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                Login {
                    username: c.login.username.clone(),
                    password: SecretString::from(c.login.password.expose_secret().to_string()),
                    email: c.login.email.clone(),
                    source_digest: None,
                    expires_at: None,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use base64::Engine;
    use serde_json::json;

    #[test]
    fn registries_are_named_by_their_telling_host_label() {
        for (server, name) in [
            ("https://index.docker.io/v1/", "dockerhub"),
            ("docker.io", "dockerhub"),
            ("harbor.example.com", "harbor"),
            ("harbor.example.com:8443", "harbor"),
            ("registry.gitlab.com", "gitlab"),
            ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "ecr"),
            ("http://10.0.0.5:5000", "10"),
        ] {
            assert_eq!(registry_base(server), name, "{server}");
        }
        assert_eq!(slug("robot$ci"), "robot-ci");
        let taken: BTreeSet<String> = ["harbor".to_string(), "harbor-2".to_string()].into();
        assert_eq!(unique("harbor".into(), &taken), "harbor-3");
    }

    fn ns(
        name: &str,
        labels: serde_json::Value,
        annotations: serde_json::Value,
    ) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels, "annotations": annotations}})
    }

    #[test]
    fn a_scope_is_the_smallest_exact_expression() {
        let p = json!({"field.cattle.io/projectId": "c-1:p-1"});
        let (o, _) = Observed::from_objects(&[
            ns(
                "a",
                json!({"team": "web", "kubesphere.io/workspace": "w"}),
                p.clone(),
            ),
            ns(
                "b",
                json!({"team": "web", "kubesphere.io/workspace": "w"}),
                p.clone(),
            ),
            ns("c", json!({"team": "web"}), json!({})),
            ns("d", json!({"env": "x"}), json!({})),
        ]);
        let all: Vec<&Namespace> = o.namespaces.iter().collect();
        let set = |names: &[&'static str]| names.iter().copied().collect::<BTreeSet<&str>>();
        assert_eq!(
            scope_for(&set(&["a", "b"]), &all, false),
            ScopeExpr::RancherProject("c-1:p-1".into())
        );
        // A label only when asked: by default, the names.
        assert_eq!(
            scope_for(&set(&["a", "b", "c"]), &all, true),
            ScopeExpr::Label("team".into(), "web".into())
        );
        assert_eq!(
            scope_for(&set(&["a", "b", "c"]), &all, false),
            ScopeExpr::Names(vec!["a".into(), "b".into(), "c".into()])
        );
        // One namespace: its name (a label matching only it says nothing more).
        assert_eq!(
            scope_for(&set(&["d"]), &all, true),
            ScopeExpr::Names(vec!["d".into()])
        );
        assert_eq!(
            scope_for(&set(&["a", "c"]), &all, true),
            ScopeExpr::Names(vec!["a".into(), "c".into()])
        );
    }

    fn pull_secret(ns: &str, name: &str, ty: &str, key: &str, doc: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Secret", "type": ty,
            "metadata": {"name": name, "namespace": ns},
            "data": {key: base64::engine::general_purpose::STANDARD.encode(doc)}})
    }

    #[test]
    fn legacy_secrets_are_left_out_and_variants_are_not_merged() {
        let (o, skipped) = Observed::from_objects(&[
            ns("a", json!({}), json!({})),
            ns("b", json!({}), json!({})),
            ns("c", json!({}), json!({})),
            pull_secret(
                "a",
                "p",
                DOCKERCFG,
                ".dockercfg",
                r#"{"quay.io":{"username":"u","password":"pw-first"}}"#,
            ),
            pull_secret(
                "b",
                "p",
                DOCKERCONFIGJSON,
                ".dockerconfigjson",
                r#"{"auths":{"quay.io":{"username":"u","password":"pw-first"}}}"#,
            ),
            pull_secret(
                "c",
                "p",
                DOCKERCONFIGJSON,
                ".dockerconfigjson",
                r#"{"auths":{"quay.io":{"username":"u","password":"pw-second"}}}"#,
            ),
        ]);
        assert!(skipped.is_empty(), "{skipped:?}");
        let im = infer(&o, None, "t", &[], false);
        assert_eq!(im.pull_secrets.len(), 1);
        let p = &im.pull_secrets[0];
        // b and c tie (one each): the first found is imported.
        assert_eq!(p.found_in, ["b"]);
        assert_eq!(im.credentials.len(), 1);
        let left: Vec<&str> = im.left_out.iter().map(|l| l.what.as_str()).collect();
        assert_eq!(left, ["Secret a/p", "Secret p in c"]);
        assert!(
            im.left_out[0]
                .why
                .contains("legacy kubernetes.io/dockercfg")
        );
        assert!(im.left_out[0].todo.contains("adopt: true"));
        let text = render(&im, "", &|_| Password::Redacted);
        assert!(
            !text.contains("pw-first") && !text.contains("pw-second"),
            "{text}"
        );
    }
}
