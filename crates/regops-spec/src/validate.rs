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
