//! Checks across sections of the merged spec: every reference resolves, and what is defined is
//! used.

use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use crate::model::{SecretSource, Spec};
use crate::node::Spanned;

fn unknown(what: &str, section: &str, r: &Spanned<String>, known: &BTreeSet<String>) -> Diagnostic {
    let hint = did_you_mean(r, known.iter().map(String::as_str));
    Diagnostic::error(
        "spec::unknown-reference",
        format!("unknown {what} `{}`", r.value),
    )
    .with_label(r.loc, format!("no {what} of this name in `{section}`"))
    .with_help(match hint {
        Some(h) => format!("did you mean `{h}`?"),
        None if known.is_empty() => format!("`{section}` defines none"),
        None => format!(
            "defined: {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// The `clusters` section and what refers to it: scopes' cluster selectors, Rancher projects
/// pinned to their cluster, two clusters that are one.
pub(crate) fn clusters(spec: &Spec, diags: &mut Diagnostics) {
    let mut reached: BTreeMap<(Option<&std::path::Path>, &str), &Spanned<String>> = BTreeMap::new();
    for c in spec.clusters.values() {
        let key = (
            c.kubeconfig.as_ref().map(|k| k.value.as_path()),
            c.context(),
        );
        if let Some(first) = reached.insert(key, &c.name) {
            diags.push(
                Diagnostic::error(
                    "spec::duplicate-cluster",
                    format!(
                        "clusters `{}` and `{}` are the same kubeconfig context `{}`",
                        first.value,
                        c.name.value,
                        c.context()
                    ),
                )
                .with_label(c.name.loc, "this cluster")
                .with_label(first.loc, "and this one reach the same context")
                .with_help("each cluster needs its own `context` (or `kubeconfig`); a cluster listed twice would be written twice"),
            );
        }
    }
    for scope in spec.scopes.values() {
        let Some(sel) = &scope.clusters else {
            if let Some(p) = &scope.rancher_project
                && !spec.clusters.is_empty()
                && crate::fleet::scope_clusters(spec, scope).is_empty()
            {
                let id = crate::fleet::rancher_cluster(p.as_str());
                diags.push(
                    Diagnostic::error(
                        "spec::rancher-cluster",
                        format!("no cluster in `clusters` has Rancher id `{id}`, the cluster of project `{}`", p.value),
                    )
                    .with_label(p.loc, format!("a project of Rancher cluster `{id}`"))
                    .with_help(format!("set `rancherId: {id}` on the cluster this project is in")),
                );
            }
            continue;
        };
        if spec.clusters.is_empty() {
            diags.push(
                Diagnostic::error(
                    "spec::no-clusters",
                    format!("scope `{}` selects clusters, but the spec has no `clusters`", scope.name.value),
                )
                .with_label(sel.loc, "cluster selector")
                .with_help("list the clusters in a top-level `clusters` section, or leave this out to use the cluster --context names"),
            );
            continue;
        }
        for n in &sel.names {
            if !spec.declared.clusters.contains(n.as_str()) {
                diags.push(unknown("cluster", "clusters", n, &spec.declared.clusters));
            }
        }
        let on = crate::fleet::scope_clusters(spec, scope);
        let has_terms = !sel.names.is_empty()
            || !sel.match_labels.is_empty()
            || !sel.match_expressions.is_empty();
        if on.is_empty()
            && has_terms
            && sel
                .names
                .iter()
                .all(|n| spec.declared.clusters.contains(n.as_str()))
        {
            diags.push(
                Diagnostic::warning(
                    "spec::no-cluster",
                    format!(
                        "scope `{}` is on no cluster: its selector matches none",
                        scope.name.value
                    ),
                )
                .with_label(sel.loc, "matches no cluster"),
            );
        }
        if let Some(p) = &scope.rancher_project {
            let id = crate::fleet::rancher_cluster(p.as_str());
            for name in on {
                let c = &spec.clusters[name];
                let theirs = c.rancher_id.as_ref();
                if theirs.map(|r| r.as_str()) == Some(id) {
                    continue;
                }
                let d = Diagnostic::error(
                    "spec::rancher-cluster",
                    format!(
                        "scope `{}` puts Rancher project `{}` on cluster `{name}`, which is not Rancher cluster `{id}`",
                        scope.name.value, p.value
                    ),
                )
                .with_label(p.loc, format!("a project of Rancher cluster `{id}`"));
                diags.push(match theirs {
                    Some(r) => d
                        .with_label(r.loc, format!("cluster `{name}` is Rancher cluster `{}`", r.value))
                        .with_help("a Rancher project lives in one cluster: select only that cluster, or split the scope"),
                    None => d
                        .with_label(sel.loc, format!("selects cluster `{name}`, which has no `rancherId`"))
                        .with_help(format!("set `rancherId: {id}` on cluster `{name}` if it is that cluster, or select only the cluster that is")),
                });
            }
        }
    }
}

// Kept whole (over 80 lines): every cross-reference in the spec checked in one pass, in the
// spec's order.
pub(crate) fn references(spec: &Spec, diags: &mut Diagnostics) {
    for reg in spec.registries.values() {
        if !spec.declared.credentials.contains(reg.credential.as_str()) {
            diags.push(unknown(
                "credential",
                "credentials",
                &reg.credential,
                &spec.declared.credentials,
            ));
        }
    }
    for ps in spec.pull_secrets.values() {
        let mut servers: BTreeMap<&str, &Spanned<String>> = BTreeMap::new();
        for r in &ps.registries {
            match spec.registries.get(r.as_str()) {
                None if spec.declared.registries.contains(r.as_str()) => {}
                None => diags.push(unknown(
                    "registry",
                    "registries",
                    r,
                    &spec.declared.registries,
                )),
                Some(reg) => {
                    if let Some(first) = servers.insert(reg.server.as_str(), r) {
                        diags.push(
                            Diagnostic::error(
                                "spec::duplicate-server",
                                format!("pull secret `{}` has two logins for server `{}`", ps.name.value, reg.server.value),
                            )
                            .with_label(r.loc, "this registry")
                            .with_label(first.loc, "and this one have the same server")
                            .with_help("a .dockerconfigjson holds one login per server; use two pull secrets"),
                        );
                    }
                }
            }
        }
        if !spec.declared.scopes.contains(ps.scope.as_str()) {
            diags.push(unknown("scope", "scopes", &ps.scope, &spec.declared.scopes));
        }
    }
    for b in &spec.bindings {
        if !spec.declared.pull_secrets.contains(b.pull_secret.as_str()) {
            diags.push(unknown(
                "pull secret",
                "pullSecrets",
                &b.pull_secret,
                &spec.declared.pull_secrets,
            ));
        }
    }
    // A credential helper answers for one server, and an ACR refresh token is exchanged at
    // one registry: a credential from either serves one server.
    for c in spec.credentials.values() {
        let (loc, from, fix) = match &c.password {
            SecretSource::Helper { helper } => (
                helper.loc,
                format!(
                    "credential helper `{}`, which answers for one server",
                    helper.value
                ),
                "`{ helper: NAME }`",
            ),
            SecretSource::Acr { acr } => (
                acr.loc,
                "`acr`, whose token is exchanged at one registry".to_string(),
                "`{ acr: {} }`",
            ),
            _ => continue,
        };
        let servers: BTreeMap<&str, &Spanned<String>> = spec
            .registries
            .values()
            .filter(|r| r.credential.value == c.name.value)
            .map(|r| (r.server.value.as_str(), &r.name))
            .collect();
        if servers.len() > 1 {
            let mut d = Diagnostic::error(
                "spec::helper-servers",
                format!(
                    "credential `{}` comes from {from}, but registries of {} servers use it",
                    c.name.value,
                    servers.len()
                ),
            )
            .with_label(loc, "one server's login");
            for (server, reg) in servers {
                d = d.with_label(reg.loc, format!("registry `{}` is {server}", reg.value));
            }
            diags.push(d.with_help(format!(
                "give each registry its own credential, each with {fix}"
            )));
        }
    }
    let used: BTreeSet<&str> = spec
        .registries
        .values()
        .map(|r| r.credential.value.as_str())
        .collect();
    for c in spec.credentials.values() {
        if !used.contains(c.name.value.as_str()) {
            diags.push(
                Diagnostic::warning(
                    "spec::unused",
                    format!("credential `{}` is not used by any registry", c.name.value),
                )
                .with_label(c.name.loc, "unused"),
            );
        }
    }
    // Every registry some pull secret lists, gathered once (not searched per registry).
    let listed: BTreeSet<&str> = spec
        .pull_secrets
        .values()
        .flat_map(|p| p.registries.iter().map(|x| x.value.as_str()))
        .collect();
    for r in spec.registries.values() {
        if !listed.contains(r.name.value.as_str()) {
            diags.push(
                Diagnostic::warning(
                    "spec::unused",
                    format!("registry `{}` is in no pull secret", r.name.value),
                )
                .with_label(r.name.loc, "unused"),
            );
        }
    }
    let encrypted = spec.credentials.values().find(|c| {
        matches!(
            c.password,
            SecretSource::Age(_) | SecretSource::AgeFile { .. }
        )
    });
    if spec.recipients.is_empty()
        && let Some(c) = encrypted
    {
        diags.push(
            Diagnostic::warning("spec::no-recipients", "the spec has encrypted credentials but no `recipients`")
                .with_label(c.name.loc, "encrypted")
                .with_help("list the age public keys of everyone who may decrypt, so `regops encrypt` and `regops rekey` can encrypt to them"),
        );
    }
}
