//! A spec made ready to plan: loaded and validated, its logins resolved, and the run's token
//! sources (minted tokens, kept for the run and shared by a fleet's clusters, minting at most
//! once at a time per credential). Planning against what was read of a cluster is here too,
//! so the commands and the controller plan the same way. Built from the flags by
//! [`crate::ops::load`].

use std::collections::BTreeMap;

use regops_spec::Loaded;

use crate::inputs::credentials::Login;

/// What plan and apply start from: the validated spec, the namespace filter, the logins the
/// pull secrets need, and the spec's provenance.
pub struct Prepared {
    pub loaded: Loaded,
    pub only: Option<std::collections::BTreeSet<String>>,
    pub logins: BTreeMap<String, Login>,
    /// The node-trust ConfigMap the spec asks for (`nodeTrust:`), its CA files read and
    /// checked once.
    pub node_trust: Option<regops_core::desired::NodeTrustMap>,
    pub source: regops_core::plan::Source,
    /// Minted tokens of this run (shared by a fleet's clusters: minted once), and credentials
    /// whose helper failed.
    pub tokens: std::sync::Mutex<regops_core::desired::Tokens>,
    /// Whether planning may mint tokens that are due (not for `drift`, which only reports):
    /// set once, from the run's options ([`crate::ops::options::RunOptions::mint`]).
    pub(crate) mint: bool,
    /// One gate per minted credential: a fleet's clusters planned at once mint each token
    /// once, the others waiting for it without holding up anything else.
    pub minting: std::sync::Mutex<BTreeMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// The run's context: its clock (credential expiry and tokens are measured against it),
    /// request timeout (minting is bounded by it too), connect budget and list limits.
    pub ctx: crate::context::RunContext,
}

impl Prepared {
    /// The tokens this run holds, as of now. Held only while no await is pending.
    fn current_tokens(&self) -> std::sync::MutexGuard<'_, regops_core::desired::Tokens> {
        // A poisoned lock only means another cluster's plan panicked; the tokens are whole.
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.now = self.ctx.unix_now();
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
    pub fn desired(
        &self,
        spec: &regops_spec::Spec,
        observed: &regops_core::observed::Observed,
        only: Option<&std::collections::BTreeSet<String>>,
    ) -> regops_core::desired::Desired {
        let tokens = self.current_tokens();
        let mut desired =
            regops_core::desired::compute_with(spec, &self.logins, &tokens, observed, only);
        desired.node_trust = self.node_trust.clone();
        desired
    }

    /// Mints the tokens the desired state against `observed` needs and this run does not hold
    /// (once per run: a fleet's clusters share them; a token is minted again only when it is
    /// itself due). Async all through: a token endpoint that hangs holds up only the plans
    /// that need its token, never another cluster's plan nor the controller's listener. A
    /// failure is kept as the credential's token (a conflict on the Secrets that need it).
    pub async fn mint_due(
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
            let env = crate::inputs::mint::Env::process(&self.ctx);
            let minted = crate::inputs::mint::mint(&self.loaded.spec, &name, env)
                .await
                .map_err(|e| {
                    let kind = self
                        .loaded
                        .spec
                        .credentials
                        .get(&name)
                        .and_then(|c| c.minted())
                        .map_or("", |m| m.key());
                    regops_core::desired::NoToken::Mint {
                        kind,
                        why: e.to_string(),
                    }
                });
            self.tokens
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .fresh
                .insert(name, minted);
        }
    }

    /// The minted credentials whose token this run could not have, and those it holds.
    pub fn mint_outcomes(&self) -> (Vec<String>, Vec<String>) {
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
    pub fn forget_failed_tokens(&self) {
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
    pub async fn plan(
        &self,
        observed: &regops_core::observed::Observed,
        target: &str,
    ) -> (regops_core::desired::Desired, regops_core::plan::Plan) {
        self.plan_with(&self.loaded.spec, observed, target, self.only.as_ref())
            .await
    }

    /// As [`Prepared::plan`], for the namespaces in `only` (the watch's namespace passes:
    /// namespaces an event touched, which may be gone or outside every scope, so nothing is
    /// said of them; see [`Prepared::plan_with`]).
    pub async fn plan_for(
        &self,
        observed: &regops_core::observed::Observed,
        target: &str,
        only: Option<&std::collections::BTreeSet<String>>,
    ) -> (regops_core::desired::Desired, regops_core::plan::Plan) {
        self.plan_in(&self.loaded.spec, observed, target, only)
            .await
    }

    /// As [`Prepared::plan`], for `spec` (one cluster's view of the spec in a fleet), with
    /// `only` the namespaces the user gave (`-n`): each of them that the plan wants no pull
    /// secret in, because it does not exist or because no scope selects it, is warned of, so
    /// that a mistyped `-n` is not an empty plan that looks like a clean one.
    pub async fn plan_with(
        &self,
        spec: &regops_spec::Spec,
        observed: &regops_core::observed::Observed,
        target: &str,
        only: Option<&std::collections::BTreeSet<String>>,
    ) -> (regops_core::desired::Desired, regops_core::plan::Plan) {
        let (desired, mut plan) = self.plan_in(spec, observed, target, only).await;
        let unplanned = unplanned_namespaces(spec, observed, only);
        if !unplanned.is_empty() {
            plan.warn(unplanned);
        }
        (desired, plan)
    }

    /// The plan of `spec` against `observed` in `only`: the tokens due minted first
    /// ([`Prepared::mint_due`]), then the pure plan.
    async fn plan_in(
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
        let expiring = regops_core::expiry::warnings(spec, self.ctx.unix_now());
        if !expiring.is_empty() {
            plan.warn(expiring);
        }
        (desired, plan)
    }
}

/// A warning for each namespace of `only` (`-n`) the plan of `spec` wants no pull secret in:
/// one that is not among the namespaces read (the cluster's, or the state file's), and one
/// that is but that no scope selects (where the plan may still remove what regops added
/// before). A missing namespace a scope names is warned of already, by the desired state
/// (`MissingNamespace`), and is not said twice.
fn unplanned_namespaces(
    spec: &regops_spec::Spec,
    observed: &regops_core::observed::Observed,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Vec<regops_core::warning::Warning> {
    use regops_core::warning::{Warning, WarningKind};
    use regops_spec::untrusted::Message;
    let Some(only) = only else {
        return Vec::new();
    };
    // Only the namespaces given are looked at: the scopes' selection of those, not of the
    // whole cluster (read whole when `-n` names more than a few).
    let present: Vec<regops_core::observed::Namespace> = observed
        .namespaces
        .iter()
        .filter(|n| only.contains(&n.name))
        .cloned()
        .collect();
    let selected: std::collections::BTreeSet<String> = spec
        .scopes
        .values()
        .flat_map(|scope| regops_core::desired::scope_namespaces(scope, &present))
        .collect();
    let named = |ns: &str| {
        spec.scopes
            .values()
            .any(|scope| scope.namespaces.iter().any(|n| n.value == ns))
    };
    let mut warnings = Vec::new();
    for ns in only {
        if !present.iter().any(|n| n.name == *ns) {
            if !named(ns) {
                warnings.push(Warning::new(
                    WarningKind::NoSuchNamespace,
                    format!("namespace {ns}"),
                    Message::own("namespace ")
                        .code(ns.as_str())
                        .and(" (given with `-n`) does not exist; nothing is planned for it"),
                ));
            }
        } else if !selected.contains(ns) {
            warnings.push(Warning::new(
                WarningKind::UnselectedNamespace,
                format!("namespace {ns}"),
                Message::own("namespace ")
                    .code(ns.as_str())
                    .and(" (given with `-n`) is selected by no scope of the spec; no pull secret is planned for it"),
            ));
        }
    }
    warnings
}
