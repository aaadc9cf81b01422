//! `regops check`: the spec is valid, and (unless `--no-decrypt`) its credentials readable.

use crate::ExitStatus;
use crate::cli::CheckArgs;
use crate::failure::Outcome;
use crate::load::{load, resolve_logins};
use crate::output::Term;

pub(super) fn check(args: CheckArgs, term: &Term) -> Outcome {
    let loaded = load(&args.spec, term)?;
    let spec = &loaded.spec;
    let decrypted = if args.no_decrypt {
        None
    } else {
        Some(resolve_logins(&loaded, &args.identity.identity, None)?.len())
    };
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
