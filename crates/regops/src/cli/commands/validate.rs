//! `regops validate`: log in to each registry with its credential (and, with `--image`, check
//! the image may be pulled).

use regops_core::report::{self, Checked};

use crate::ExitStatus;
use crate::cli::ValidateArgs;
use crate::cluster::client::runtime;
use crate::failure::{Failure, Outcome};
use crate::ops::load::{load, resolve_logins};
use crate::output::Term;
use regops_core::format::Style;

pub(super) fn validate(args: ValidateArgs, term: &Term) -> Outcome {
    let ctx = crate::context::RunContext {
        request_timeout: args.request_timeout,
        ..crate::context::RunContext::default()
    };
    let loaded = load(&args.spec.options(), term)?;
    let spec = &loaded.spec;
    for name in &args.registry {
        if !spec.registries.contains_key(name) {
            let hint = regops_spec::diagnostic::did_you_mean(
                name,
                spec.registries.keys().map(String::as_str),
            );
            return Err(Failure::Message {
                message: format!("no registry `{name}` in the spec"),
                help: hint.map(|h| format!("did you mean `{h}`?")),
            });
        }
    }
    let chosen: Vec<&regops_spec::Registry> = spec
        .registries
        .values()
        .filter(|r| args.registry.is_empty() || args.registry.contains(&r.name.value))
        .collect();
    let wanted: Vec<&str> = chosen.iter().map(|r| r.credential.as_str()).collect();
    let mut logins = resolve_logins(&loaded, &args.identity.identity, Some(&wanted), &ctx)?;
    crate::ops::load::mint_all(&loaded, &mut logins, &wanted, &ctx)?;
    let image_ref = args
        .image
        .as_deref()
        .map(regops_core::image::ImageRef::parse);
    let rt = runtime()?;
    let mut rows = Vec::new();
    for reg in chosen {
        let Some(login) = logins.get(reg.credential.as_str()) else {
            continue;
        };
        // With --image, check it only where it is served from.
        let image = args.image.as_deref().filter(|_| {
            image_ref
                .as_ref()
                .is_some_and(|r| r.pulls_from(&reg.server))
        });
        let ca = reg
            .ca_file
            .as_ref()
            .map(|c| {
                crate::inputs::confined::path(
                    &loaded.sources,
                    c,
                    &format!("the CA file of registry `{}`", reg.name.value),
                )
            })
            .transpose()
            .map_err(|d| Failure::Spec {
                sources: loaded.sources.clone(),
                diagnostics: std::iter::once(d).collect(),
            })?;
        let (verdict, notes) = rt.block_on(crate::registry::check(
            &reg.server,
            reg.insecure,
            ca.as_ref(),
            login,
            image,
            ctx.request_timeout,
        ));
        let now = ctx.unix_now();
        let expires = spec
            .credentials
            .get(reg.credential.as_str())
            .and_then(|c| regops_core::expiry::note(c, now))
            .or_else(|| {
                // A minted token: when this one expires.
                let at = login.expires_at?;
                Some((
                    format!(
                        "minted token expires at {}",
                        regops_spec::rules::format_timestamp(at)
                    ),
                    at,
                ))
            });
        rows.push(Checked {
            registry: reg.name.value.clone(),
            server: reg.server.value.clone(),
            verdict,
            expires,
            notes,
        });
    }
    let ok = rows.iter().all(|r| r.verdict.is_ok());
    term.view(&report::ValidateView(&rows), args.output, &Style::default());
    Ok(if ok {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
