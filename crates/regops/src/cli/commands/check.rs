//! `regops check`: the spec is valid, and (unless `--no-decrypt`) its credentials readable.

use crate::ExitStatus;
use crate::cli::CheckArgs;
use crate::failure::Outcome;
use crate::ops::load::{load, resolve_logins};
use crate::output::Term;

pub(super) fn check(args: CheckArgs, term: &Term) -> Outcome {
    let loaded = load(&args.spec.options(), term)?;
    let spec = &loaded.spec;
    let decrypted = if args.no_decrypt {
        None
    } else {
        Some(
            resolve_logins(
                &loaded,
                &args.identity.identity,
                None,
                &crate::context::RunContext::default(),
            )?
            .len(),
        )
    };
    // Each registry's CA file is readable and holds certificates: a missing or wrong one is
    // found here, not at the first login.
    let mut bad_ca = regops_spec::Diagnostics::default();
    for reg in spec.registries.values() {
        let Some(c) = &reg.ca_file else { continue };
        let what = format!("the CA file of registry `{}`", reg.name.value);
        let checked = crate::inputs::confined::path(&loaded.sources, c, &what).and_then(|p| {
            crate::registry::connector(Some(&p)).map(drop).map_err(|e| {
                regops_spec::Diagnostic::error("check::ca-file", e.to_string())
                    .with_label(c.loc, "not a usable CA bundle")
                    .with_help(
                        "caFile is a PEM bundle of the CA certificates that sign the registry's own certificate (a self-hosted registry's CA); it is not the registry's certificate chain nor a client certificate",
                    )
            })
        });
        if let Err(d) = checked {
            bad_ca.push(d);
        }
    }
    if !bad_ca.is_empty() {
        return Err(crate::failure::Failure::Spec {
            sources: loaded.sources.clone(),
            diagnostics: bad_ca,
        });
    }
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    let mut summary = format!(
        "spec `{}` is valid: {}, {}, {}, {}, {}",
        loaded.name,
        plural(spec.registries.len(), "registry").replace("registrys", "registries"),
        plural(spec.credentials.len(), "credential"),
        plural(spec.scopes.len(), "scope"),
        plural(spec.pull_secrets.len(), "pull secret"),
        plural(spec.bindings.len(), "binding"),
    );
    if !spec.clusters.is_empty() {
        summary.push_str(&format!(", {}", plural(spec.clusters.len(), "cluster")));
    }
    // Minted credentials are not read here: they are minted when a Secret needs a token.
    let minted = spec
        .credentials
        .values()
        .filter(|c| c.minted().is_some())
        .count();
    if let Some(n) = decrypted {
        summary.push_str(&format!(
            "; {n} of {} credentials readable",
            spec.credentials.len() - minted
        ));
    }
    if minted > 0 {
        summary.push_str(&format!(
            "; {} minted from a cloud when needed",
            plural(minted, "credential")
        ));
    }
    term.note(&summary);
    Ok(ExitStatus::Success)
}
