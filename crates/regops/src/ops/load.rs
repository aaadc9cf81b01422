//! The spec loaded from its files, as the flags say: read within what a spec may reach
//! ([`regops_spec::trust`]), parsed, validated, its recipients checked; the credentials
//! resolved with the identities (and minted, for the commands that need every token now); a
//! [`Prepared`] spec, whose token sources and planning are [`crate::ops::prepared`]'s. Used by the
//! commands and by the controller's reloads.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use regops_spec::{Loaded, Sources};

use crate::failure::Failure;
use crate::inputs::credentials::{self, Login};
use crate::inputs::crypto::{self, IdentityLookup};
use crate::ops::options::{RunOptions, SpecOptions};
use crate::ops::prepared::Prepared;
use crate::output::Term;

pub(crate) fn env_var(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

pub(crate) fn read_sources(spec: &SpecOptions) -> Result<Sources, Failure> {
    regops_spec::source::read_paths(&spec.files, spec.restrictor).map_err(Failure::error)
}

pub(crate) fn default_name(files: &[PathBuf]) -> String {
    let first = files
        .first()
        .map(PathBuf::as_path)
        .unwrap_or(Path::new("regops"));
    let stem = if first.is_dir() {
        first
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_os_string()))
    } else {
        first.file_stem().map(|s| s.to_os_string())
    };
    stem.map_or_else(|| "regops".into(), |s| s.to_string_lossy().to_string())
}

/// Reads, parses and validates the spec (recipients included) and checks it stays within what
/// a spec may reach ([`regops_spec::trust`]), printing warnings.
pub(crate) fn load(spec_args: &SpecOptions, term: &Term) -> Result<Loaded, Failure> {
    load_checked(spec_args, term, &|_| Ok(()))
}

/// Checks the spec's files as read, before they are parsed (a saved plan's digest).
pub(crate) type SourcesCheck<'a> = &'a dyn Fn(&Sources) -> Result<(), Failure>;

/// As [`load`], with `check` run on the files as read, before anything is parsed or shown.
pub(crate) fn load_checked(
    spec_args: &SpecOptions,
    term: &Term,
    check: SourcesCheck<'_>,
) -> Result<Loaded, Failure> {
    let sources = read_sources(spec_args)?;
    check(&sources)?;
    let mut loaded =
        regops_spec::load(sources, &default_name(&spec_args.files)).map_err(|inv| {
            Failure::Spec {
                sources: inv.sources,
                diagnostics: inv.diagnostics,
            }
        })?;
    let policy = spec_args.policy.clone();
    let mut problems = regops_spec::trust::check(&loaded.spec, &loaded.sources, &policy);
    if let Err(d) = crypto::parse_recipients(&loaded.spec.recipients) {
        problems.extend(d);
    }
    loaded.policy = policy;
    let mut warnings = std::mem::take(&mut loaded.warnings);
    if problems.has_errors() {
        problems.extend(warnings);
        problems.sort();
        return Err(Failure::Spec {
            sources: loaded.sources,
            diagnostics: problems,
        });
    }
    warnings.extend(problems);
    warnings.sort();
    term.diagnostics(&warnings, &loaded.sources);
    loaded.warnings = warnings;
    Ok(loaded)
}

/// The logins of the credentials `wanted` (all without), read with the run's context (a
/// secret manager's token requests are bounded by its request timeout).
pub(crate) fn resolve_logins(
    loaded: &Loaded,
    identity_files: &[PathBuf],
    wanted: Option<&[&str]>,
    ctx: &crate::context::RunContext,
) -> Result<BTreeMap<String, Login>, Failure> {
    let lookup = IdentityLookup {
        files: identity_files,
        env: &env_var,
    };
    credentials::resolve(loaded, &lookup, &env_var, wanted, ctx).map_err(|diagnostics| {
        Failure::Spec {
            sources: loaded.sources.clone(),
            diagnostics,
        }
    })
}

/// Mints a token for each minted credential among `names` into `logins` (for `render` and
/// `validate`, which need every token now). The first failure is the error: it names the
/// credential and the step, never a token.
pub(crate) fn mint_all(
    loaded: &Loaded,
    logins: &mut BTreeMap<String, Login>,
    names: &[&str],
    ctx: &crate::context::RunContext,
) -> Result<(), Failure> {
    for name in names {
        let Some(minted) = loaded.spec.credentials.get(*name).and_then(|c| c.minted()) else {
            continue;
        };
        let login = crate::inputs::mint::mint_blocking(&loaded.spec, name, ctx).map_err(|e| Failure::caused(
            format!(
                "cannot mint a token for credential `{name}` from `{}`",
                minted.key()
            ),
            e,
        ).with_help(match minted {
                regops_spec::Minted::Ecr => "see docs/drift.md, ECR, for the identities regops finds (IRSA, Pod Identity, profiles)",
                regops_spec::Minted::Gcp => "see docs/drift.md, Google Cloud, (GOOGLE_APPLICATION_CREDENTIALS, Workload Identity)",
                regops_spec::Minted::Acr => "see docs/drift.md, ACR, (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE)",
            }))?;
        logins.insert((*name).to_string(), login);
    }
    Ok(())
}

/// The namespaces given with `flag` (`-n`), checked to be namespace names; `None` for none.
pub(crate) fn only_namespaces(
    namespaces: &[String],
    flag: &str,
) -> Result<Option<std::collections::BTreeSet<String>>, Failure> {
    for ns in namespaces {
        regops_spec::rules::dns1123_label(ns).map_err(|why| {
            Failure::msg(format!("{flag}: `{ns}` is not a namespace name: it {why}"))
        })?;
    }
    Ok((!namespaces.is_empty()).then(|| namespaces.iter().cloned().collect()))
}

pub(crate) fn prepare(run: &RunOptions, term: &Term) -> Result<Prepared, Failure> {
    prepare_checked(run, term, &|_| Ok(()))
}

/// As [`prepare`], with `check` run on the spec's files as read ([`load_checked`]).
pub(crate) fn prepare_checked(
    run: &RunOptions,
    term: &Term,
    check: SourcesCheck<'_>,
) -> Result<Prepared, Failure> {
    let (spec, identities, namespaces) = (&run.spec, &run.identities, &run.namespaces);
    // Made before anything is read from outside: a secret manager's token requests are
    // bounded by the run's request timeout too.
    let ctx = run.cluster.run_context();
    let loaded = load_checked(spec, term, check)?;
    let only = only_namespaces(namespaces, "-n")?;
    let lookup = IdentityLookup {
        files: identities,
        env: &env_var,
    };
    let mut failed = Vec::new();
    let logins = credentials::resolve_lenient(
        &loaded,
        &lookup,
        &env_var,
        Some(&used_credentials(&loaded.spec)),
        &mut failed,
        &ctx,
    )
    .map_err(|diagnostics| Failure::Spec {
        sources: loaded.sources.clone(),
        diagnostics,
    })?;
    // A helper that failed holds back only the Secrets that need it: said here in full, and
    // in the plan as a conflict on each of them.
    let mut tokens = regops_core::desired::Tokens::default();
    if !failed.is_empty() {
        let mut shown = regops_spec::Diagnostics::default();
        for (name, d) in failed {
            tokens.fresh.insert(
                name,
                Err(regops_core::desired::NoToken::Helper(d.message.clone())),
            );
            shown.push(d);
        }
        term.diagnostics(&shown, &loaded.sources);
    }
    let files: Vec<&Path> = loaded
        .sources
        .files()
        .iter()
        .map(|f| f.path.as_path())
        .collect();
    let source = crate::inputs::provenance::source(&files);
    // The node-trust ConfigMap, only when the spec asks; every CA checked before any write.
    let node_trust = match &loaded.spec.node_trust {
        Some(target) => {
            let hosts = crate::ops::node_trust::trusted_hosts(&loaded)?;
            Some(regops_core::desired::NodeTrustMap::new(target, &hosts))
        }
        None => None,
    };
    Ok(Prepared {
        node_trust,
        loaded,
        only,
        logins,
        source,
        tokens: std::sync::Mutex::new(tokens),
        mint: run.mint,
        minting: std::sync::Mutex::default(),
        ctx,
    })
}

/// The credentials the pull secrets use.
pub(crate) fn used_credentials(spec: &regops_spec::Spec) -> Vec<&str> {
    spec.used_credentials().into_iter().collect()
}

/// A hash of the spec files' contents: a change (a ConfigMap's symlink swapped, an edit) is a
/// new hash.
pub(crate) fn spec_print(spec: &SpecOptions) -> Result<u64, Failure> {
    let sources = read_sources(spec)?;
    let mut h = DefaultHasher::new();
    for f in sources.files() {
        f.path.hash(&mut h);
        f.text.hash(&mut h);
    }
    Ok(h.finish())
}

/// Connects as the flags say and reads what the plan of `prepared` needs; the target, for
/// messages.
pub(crate) fn read_cluster(
    flags: &crate::ops::options::ClusterOptions,
    prepared: &crate::ops::prepared::Prepared,
) -> Result<(regops_core::observed::Observed, String), crate::failure::Failure> {
    let (loaded, only) = (&prepared.loaded, prepared.only.as_ref());
    let read = async {
        let (client, target) =
            crate::cluster::client::connect(flags.kubeconfig.as_deref(), flags.context.as_deref())
                .await?;
        let conn = crate::cluster::Connection::new(client, prepared.ctx.clone());
        let observed =
            crate::cluster::read::from_cluster(&conn, &target, &loaded.spec, &loaded.name, only)
                .await?;
        Ok::<_, crate::cluster::client::ClusterError>((observed, target.to_string()))
    };
    Ok(crate::cluster::client::runtime()?.block_on(read)?)
}
