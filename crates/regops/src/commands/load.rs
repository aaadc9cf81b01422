//! What the subcommands share: reading and validating the spec, resolving the credentials
//! with the identities, connecting to the cluster and reading it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regops_spec::{Loaded, Sources};

use super::Failure;
use crate::cli::SpecArgs;
use crate::credentials::{self, Login};
use crate::crypto::{self, IdentityLookup};
use crate::output::Term;

pub(crate) fn env_var(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

pub(crate) fn read_sources(spec: &SpecArgs) -> Result<Sources, Failure> {
    regops_spec::source::read_paths(&spec.files, spec.trust.restrictor())
        .map_err(|e| Failure::msg(e.to_string()))
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

/// Writes a file regops owns, atomically and privately ([`crate::atomic`]).
pub(crate) fn write_file(
    path: &Path,
    bytes: &[u8],
    existing: crate::atomic::Existing,
) -> Result<(), Failure> {
    crate::atomic::write(path, bytes, existing).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Failure::Message {
            message: format!("{} exists; nothing was written", path.display()),
            help: Some("pass --force to overwrite it".into()),
        },
        _ => Failure::msg(format!("cannot write {}: {e}", path.display())),
    })
}

/// Reads, parses and validates the spec (recipients included) and checks it stays within what
/// a spec may reach ([`regops_spec::trust`]), printing warnings.
pub(crate) fn load(spec_args: &SpecArgs, term: &Term) -> Result<Loaded, Failure> {
    load_checked(spec_args, term, &|_| Ok(()))
}

/// Checks the spec's files as read, before they are parsed (a saved plan's digest).
pub(crate) type SourcesCheck<'a> = &'a dyn Fn(&Sources) -> Result<(), Failure>;

/// As [`load`], with `check` run on the files as read, before anything is parsed or shown.
pub(crate) fn load_checked(
    spec_args: &SpecArgs,
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
    let policy = spec_args.trust.policy();
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

pub(crate) fn resolve_logins(
    loaded: &Loaded,
    identity_files: &[PathBuf],
    wanted: Option<&[&str]>,
) -> Result<BTreeMap<String, Login>, Failure> {
    let lookup = IdentityLookup {
        files: identity_files,
        env: &env_var,
    };
    credentials::resolve(loaded, &lookup, &env_var, wanted).map_err(|diagnostics| Failure::Spec {
        sources: loaded.sources.clone(),
        diagnostics,
    })
}

/// Mints a token for each minted credential among `names` into `logins` (for `render` and
/// `validate`, which need every token now). The first failure is the error: it names the
/// credential and the step, never a token.
pub(crate) fn mint_all(
    loaded: &Loaded,
    logins: &mut BTreeMap<String, Login>,
    names: &[&str],
) -> Result<(), Failure> {
    for name in names {
        let Some(minted) = loaded.spec.credentials.get(*name).and_then(|c| c.minted()) else {
            continue;
        };
        let login = crate::mint::mint_blocking(&loaded.spec, name).map_err(|e| Failure::Message {
            message: format!(
                "cannot mint a token for credential `{name}` from `{}`: {e}",
                minted.key()
            ),
            help: Some(match minted {
                regops_spec::Minted::Ecr => "see docs/drift.md, ECR, for the identities regops finds (IRSA, Pod Identity, profiles)".into(),
                regops_spec::Minted::Gcp => "see docs/drift.md, Google Cloud, (GOOGLE_APPLICATION_CREDENTIALS, Workload Identity)".into(),
                regops_spec::Minted::Acr => "see docs/drift.md, ACR, (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE)".into(),
            }),
        })?;
        logins.insert((*name).to_string(), login);
    }
    Ok(())
}

/// The time now, as Unix seconds (credential expiry is measured against it).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A runtime for the commands that talk to a cluster.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::msg(format!("cannot start the async runtime: {e}")))
}

/// What plan and apply start from: the validated spec, the namespace filter, the logins the
/// pull secrets need, and the spec's provenance.
pub(crate) struct Prepared {
    pub(crate) loaded: Loaded,
    pub(crate) only: Option<std::collections::BTreeSet<String>>,
    pub(crate) logins: BTreeMap<String, Login>,
    pub(crate) source: regops_core::plan::Source,
    /// Minted tokens of this run (shared by a fleet's clusters: minted once), and credentials
    /// whose helper failed.
    pub(crate) tokens: std::sync::Mutex<regops_core::desired::Tokens>,
    /// Whether planning may mint tokens that are due (not for `drift`, which only reports).
    pub(crate) mint: bool,
    /// One gate per minted credential: a fleet's clusters planned at once mint each token
    /// once, the others waiting for it without holding up anything else.
    pub(crate) minting: std::sync::Mutex<BTreeMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
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

pub(crate) fn prepare(run: &crate::cli::RunArgs, term: &Term) -> Result<Prepared, Failure> {
    prepare_checked(run, term, &|_| Ok(()))
}

/// As [`prepare`], with `check` run on the spec's files as read ([`load_checked`]).
pub(crate) fn prepare_checked(
    run: &crate::cli::RunArgs,
    term: &Term,
    check: SourcesCheck<'_>,
) -> Result<Prepared, Failure> {
    // Before anything is minted: token requests are bounded by it too.
    crate::retry::set_request_timeout(run.cluster.request_timeout);
    let (spec, identity, namespaces) = (&run.spec, &run.identity, &run.namespaces);
    let loaded = load_checked(spec, term, check)?;
    let only = only_namespaces(namespaces, "-n")?;
    let lookup = IdentityLookup {
        files: &identity.identity,
        env: &env_var,
    };
    let mut failed = Vec::new();
    let logins = credentials::resolve_lenient(
        &loaded,
        &lookup,
        &env_var,
        Some(&used_credentials(&loaded.spec)),
        &mut failed,
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
            tokens.fresh.insert(name, Err(d.message.clone()));
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
    let source = crate::provenance::source(&files);
    Ok(Prepared {
        loaded,
        only,
        logins,
        source,
        tokens: std::sync::Mutex::new(tokens),
        mint: true,
        minting: std::sync::Mutex::default(),
    })
}

/// Connects as `cluster` says, on `rt`, with its request timeout.
pub(crate) fn connect(
    cluster: &crate::cli::ClusterArgs,
    rt: &tokio::runtime::Runtime,
) -> Result<(kube::Client, crate::cluster::Target), Failure> {
    crate::retry::set_request_timeout(cluster.request_timeout);
    Ok(rt.block_on(crate::cluster::connect(
        cluster.kubeconfig.as_deref(),
        cluster.context.as_deref(),
    ))?)
}

/// How the lock's renewal connects on its own thread (a client is driven by the runtime it
/// was built on), as `cluster` says.
pub(crate) fn lock_connect(cluster: &crate::cli::ClusterArgs) -> crate::lock::Connect {
    let (kubeconfig, context) = (cluster.kubeconfig.clone(), cluster.context.clone());
    Box::new(move || {
        Box::pin(async move {
            crate::cluster::connect(kubeconfig.as_deref(), context.as_deref())
                .await
                .ok()
                .map(|(client, _)| client)
        })
    })
}

/// The clusters of a fleet run as `run` says; `None` for a spec without `clusters`.
pub(super) fn fleet_members(
    run: &crate::cli::RunArgs,
    prepared: &Prepared,
) -> Result<Option<Vec<super::fleet::Member>>, Failure> {
    super::fleet::members(
        &prepared.loaded,
        &run.fleet,
        run.cluster.kubeconfig.as_deref(),
        run.cluster.context.as_deref(),
    )
}

/// Connects to one cluster of a fleet and reads what its plan needs.
pub(super) async fn read_member(
    member: &super::fleet::Member,
    prepared: &Prepared,
) -> Result<(regops_core::observed::Observed, String), regops_core::fleet::ClusterError> {
    let (client, target) = member.connect().await.map_err(super::fleet::error)?;
    let observed = crate::observe::from_cluster(
        &client,
        &target,
        &member.spec,
        &prepared.loaded.name,
        prepared.only.as_ref(),
    )
    .await
    .map_err(super::fleet::error)?;
    Ok((observed, target.to_string()))
}

/// Connects as `run` says and reads what the plan needs; the target, for messages.
pub(crate) fn read_cluster(
    run: &crate::cli::RunArgs,
    prepared: &Prepared,
) -> Result<(regops_core::observed::Observed, String), Failure> {
    let (loaded, only) = (&prepared.loaded, prepared.only.as_ref());
    crate::retry::set_request_timeout(run.cluster.request_timeout);
    let read = async {
        let (client, target) = crate::cluster::connect(
            run.cluster.kubeconfig.as_deref(),
            run.cluster.context.as_deref(),
        )
        .await?;
        let observed =
            crate::observe::from_cluster(&client, &target, &loaded.spec, &loaded.name, only)
                .await?;
        Ok::<_, crate::cluster::ClusterError>((observed, target.to_string()))
    };
    Ok(runtime()?.block_on(read)?)
}

/// The credentials the pull secrets use.
pub(crate) fn used_credentials(spec: &regops_spec::Spec) -> Vec<&str> {
    spec.used_credentials().into_iter().collect()
}

impl Prepared {
    /// The tokens this run holds, as of now. Held only while no await is pending.
    fn current_tokens(&self) -> std::sync::MutexGuard<'_, regops_core::desired::Tokens> {
        // A poisoned lock only means another cluster's plan panicked; the tokens are whole.
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.now = unix_now();
        tokens
    }

    /// Drops the tokens minted by an earlier plan of this process that have come within their
    /// own margin, so this plan mints them again (a long-running apply's renewal). A token
    /// minted by this plan is used even when it is due as soon as minted (a lifetime shorter
    /// than `refresh_before`): it is the freshest there is.
    fn drop_due_tokens(&self, spec: &regops_spec::Spec) {
        let mut tokens = self.current_tokens();
        let now = tokens.now;
        tokens.fresh.retain(|name, t| match t {
            Err(_) => true,
            Ok(l) => {
                let margin = spec
                    .credentials
                    .get(name)
                    .map_or(0, |c| i64::try_from(c.refresh_before_secs).unwrap_or(0));
                l.expires_at.is_some_and(|at| at - now > margin)
            }
        });
    }

    /// The desired state against `observed`, with the tokens this run holds (pure: nothing is
    /// minted here; see [`Prepared::mint_due`]).
    pub(crate) fn desired(
        &self,
        spec: &regops_spec::Spec,
        observed: &regops_core::observed::Observed,
        only: Option<&std::collections::BTreeSet<String>>,
    ) -> regops_core::desired::Desired {
        let tokens = self.current_tokens();
        regops_core::desired::compute_with(spec, &self.logins, &tokens, observed, only)
    }

    /// Mints the tokens the desired state against `observed` needs and this run does not hold
    /// (once per run: a fleet's clusters share them; a token is minted again only when it is
    /// itself due). Async all through: a token endpoint that hangs holds up only the plans
    /// that need its token, never another cluster's plan nor the controller's listener. A
    /// failure is kept as the credential's token (a conflict on the Secrets that need it).
    pub(crate) async fn mint_due(
        &self,
        spec: &regops_spec::Spec,
        observed: &regops_core::observed::Observed,
        only: Option<&std::collections::BTreeSet<String>>,
    ) {
        if !self.mint {
            return;
        }
        self.drop_due_tokens(spec);
        let wanted: Vec<String> = {
            let tokens = self.current_tokens();
            let desired =
                regops_core::desired::compute_with(spec, &self.logins, &tokens, observed, only);
            desired
                .due
                .iter()
                .filter(|c| !tokens.fresh.contains_key(c.as_str()))
                .cloned()
                .collect()
        };
        for name in wanted {
            let gate = self
                .minting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(name.clone())
                .or_default()
                .clone();
            let _one_at_a_time = gate.lock().await;
            // Another cluster may have minted it while this one waited at the gate.
            if self.current_tokens().fresh.contains_key(&name) {
                continue;
            }
            let env = |k: &str| std::env::var(k).ok();
            let minted = crate::mint::mint(&self.loaded.spec, &name, &env)
                .await
                .map_err(|e| {
                    let kind = self
                        .loaded
                        .spec
                        .credentials
                        .get(&name)
                        .and_then(|c| c.minted())
                        .map_or("", |m| m.key());
                    format!("cannot mint a token from `{kind}`: {e}")
                });
            self.tokens
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .fresh
                .insert(name, minted);
        }
    }

    /// The minted credentials whose token this run could not have, and those it holds.
    pub(crate) fn mint_outcomes(&self) -> (Vec<String>, Vec<String>) {
        let spec = &self.loaded.spec;
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut failed = Vec::new();
        let mut held = Vec::new();
        for (name, t) in &tokens.fresh {
            if spec
                .credentials
                .get(name)
                .is_none_or(|c| c.minted().is_none())
            {
                continue;
            }
            if t.is_ok() {
                held.push(name.clone());
            } else {
                failed.push(name.clone());
            }
        }
        (failed, held)
    }

    /// Forgets the minted credentials that failed, so the next plan tries them again (a
    /// long-running apply's next full pass).
    pub(crate) fn forget_failed_tokens(&self) {
        let spec = &self.loaded.spec;
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.fresh.retain(|name, t| {
            t.is_ok()
                || spec
                    .credentials
                    .get(name)
                    .is_none_or(|c| c.minted().is_none())
        });
    }

    /// The desired state and the plan against the cluster as `observed` (at `target`).
    pub(crate) async fn plan(
        &self,
        observed: &regops_core::observed::Observed,
        target: &str,
    ) -> (regops_core::desired::Desired, regops_core::plan::Plan) {
        self.plan_for(observed, target, self.only.as_ref()).await
    }

    /// As [`Prepared::plan`], for the namespaces in `only` (the watch's namespace passes).
    pub(crate) async fn plan_for(
        &self,
        observed: &regops_core::observed::Observed,
        target: &str,
        only: Option<&std::collections::BTreeSet<String>>,
    ) -> (regops_core::desired::Desired, regops_core::plan::Plan) {
        self.plan_with(&self.loaded.spec, observed, target, only)
            .await
    }

    /// As [`Prepared::plan_for`], for `spec` (one cluster's view of the spec in a fleet):
    /// the tokens due minted first ([`Prepared::mint_due`]), then the pure plan.
    pub(crate) async fn plan_with(
        &self,
        spec: &regops_spec::Spec,
        observed: &regops_core::observed::Observed,
        target: &str,
        only: Option<&std::collections::BTreeSet<String>>,
    ) -> (regops_core::desired::Desired, regops_core::plan::Plan) {
        self.mint_due(spec, observed, only).await;
        let desired = self.desired(spec, observed, only);
        let mut plan = regops_core::plan::compute(
            &self.loaded.name,
            target,
            self.source.clone(),
            &desired,
            observed,
            only,
        );
        let expiring = regops_core::expiry::warnings(spec, unix_now());
        if !expiring.is_empty() {
            plan.warn(expiring);
        }
        (desired, plan)
    }
}
