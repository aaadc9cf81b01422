//! `regops apply --watch`: the flags turned into a [`Controller`] (the spec loaded and, for a
//! fleet, narrowed to the one cluster; the client; the listener), which is run. The loop
//! itself is [`crate::controller`].
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::load::{prepare, read_sources, runtime};
use super::{Failure, Outcome};
use crate::cli::ApplyArgs;
use crate::controller::Controller;
use crate::controller::metrics::Metrics;
use crate::controller::watches::{Prints, Queue, RETRY_FIRST, RETRY_MAX};
use crate::output::{Log, Term};
use crate::prepared::Prepared;
use regops_core::format::Format;

/// For a spec with `clusters`, the one cluster a controller works on (`--cluster`): the spec
/// narrowed to what that cluster sees, and `args` set to reach it. `None` for a spec without.
fn fleet_member(args: &mut ApplyArgs, prepared: &mut Prepared) -> Result<Option<String>, Failure> {
    let Some(members) = super::load::fleet_members(&args.run, prepared)? else {
        return Ok(None);
    };
    let [member] = members.as_slice() else {
        return Err(Failure::Message {
            message: "--watch works on one cluster, and the spec lists several".into(),
            help: Some("run one controller per cluster, each with --cluster NAME".into()),
        });
    };
    args.run.cluster.context = Some(member.context.clone());
    args.run.cluster.kubeconfig.clone_from(&member.kubeconfig);
    args.run.fleet.clusters = vec![member.name.clone()];
    prepared.loaded.spec = member.spec.clone();
    Ok(Some(member.name.clone()))
}

/// The spec read again (a reload), narrowed to the controller's cluster as at the start.
pub(crate) fn reprepare(
    args: &ApplyArgs,
    cluster: Option<&str>,
    term: &Term,
) -> Result<Prepared, Failure> {
    let mut prepared = prepare(&args.run, term)?;
    if let Some(name) = cluster {
        if !prepared.loaded.spec.clusters.contains_key(name) {
            return Err(Failure::msg(format!(
                "the new spec has no cluster `{name}`, the one this controller works on"
            )));
        }
        prepared.loaded.spec = regops_spec::fleet::for_cluster(&prepared.loaded.spec, name);
    }
    Ok(prepared)
}

pub(super) fn watch(mut args: ApplyArgs, term: &Term) -> Outcome {
    let mut prepared = prepare(&args.run, term)?;
    let cluster = fleet_member(&mut args, &mut prepared)?;
    let print = spec_print(&args)?;
    let rt = runtime()?;
    let (client, target) = super::load::connect(&args.run.cluster, &rt)?;
    let metrics = Arc::new(Metrics::new(&prepared.loaded.name, cluster.as_deref()));
    let log = Log {
        json: args.output == Format::Json,
    };
    let listener = match &args.listen {
        Some(addr) => Some(
            rt.block_on(crate::controller::listen::bind(addr))
                .map_err(|e| Failure::msg(format!("cannot listen on {addr}: {e}")))?,
        ),
        None => None,
    };
    let session = super::apply::session(&args, &prepared.loaded.name)?;
    let mut controller = Controller {
        args: &args,
        term,
        log,
        client,
        target,
        prepared,
        cluster,
        spec_print: print,
        rejected_print: None,
        metrics,
        queue: Arc::new(Queue::default()),
        prints: Arc::new(Prints::default()),
        stop: Arc::new(AtomicBool::new(false)),
        hangup: Arc::new(AtomicBool::new(false)),
        watches: Vec::new(),
        retry: None,
        renew_at: None,
        retry_wait: RETRY_FIRST,
        retries: crate::controller::watches::Retries::new(RETRY_FIRST, RETRY_MAX),
        mint_retries: crate::controller::watches::Retries::new(RETRY_FIRST, RETRY_MAX),
        held_back: std::collections::BTreeSet::new(),
        limiter: crate::controller::recycle::Limiter::default(),
        rechecks: Vec::new(),
        session,
    };
    rt.block_on(controller.run(listener))
}

/// A hash of the spec files' contents: a change (a ConfigMap's symlink swapped, an edit) is a
/// new hash.
pub(crate) fn spec_print(args: &ApplyArgs) -> Result<u64, Failure> {
    let sources = read_sources(&args.run.spec)?;
    let mut h = DefaultHasher::new();
    for f in sources.files() {
        f.path.hash(&mut h);
        f.text.hash(&mut h);
    }
    Ok(h.finish())
}
