//! `regops apply --watch`: the flags turned into a [`Controller`] (the spec loaded and, for a
//! fleet, narrowed to the one cluster; the client; the listener), which is run. The loop
//! itself is [`crate::controller`].

use crate::cli::ApplyArgs;
use crate::cluster::client::runtime;
use crate::controller::{Controller, Spec};
use crate::failure::{Failure, Outcome};
use crate::ops::load::prepare;
use crate::ops::options::RunOptions;
use crate::ops::prepared::Prepared;
use crate::output::Term;

/// For a spec with `clusters`, the one cluster a controller works on (`--cluster`): the spec
/// narrowed to what that cluster sees, and `run` set to reach it. `None` for a spec without.
fn fleet_member(run: &mut RunOptions, prepared: &mut Prepared) -> Result<Option<String>, Failure> {
    let Some(members) = crate::ops::fleet::fleet_members(run, prepared)? else {
        return Ok(None);
    };
    let [member] = members.as_slice() else {
        return Err(Failure::Message {
            message: "--watch works on one cluster, and the spec lists several".into(),
            help: Some("run one controller per cluster, each with --cluster NAME".into()),
        });
    };
    run.cluster.context = Some(member.context.clone());
    run.cluster.kubeconfig.clone_from(&member.kubeconfig);
    run.clusters = vec![member.name.clone()];
    prepared.loaded.spec = member.spec.clone();
    Ok(Some(member.name.clone()))
}

pub(super) fn watch(args: ApplyArgs, term: &Term) -> Outcome {
    let mut options = args.controller_options();
    let mut prepared = prepare(&options.run, term)?;
    let cluster = fleet_member(&mut options.run, &mut prepared)?;
    let print = crate::ops::load::spec_print(&options.run.spec)?;
    let rt = runtime()?;
    let (conn, target) =
        crate::cluster::client::connect_as(&options.run.cluster, &prepared.ctx, &rt)?;
    let listener = match &args.listen {
        Some(addr) => Some(
            rt.block_on(crate::controller::listen::bind(addr))
                .map_err(|e| Failure::caused(format!("cannot listen on {addr}"), e))?,
        ),
        None => None,
    };
    let session = crate::ops::apply::session(&args.options(), &prepared.loaded.name)?;
    let mut controller = Controller::new(
        &options,
        term,
        (conn, target),
        Spec {
            prepared,
            cluster,
            print,
        },
        session,
    );
    rt.block_on(controller.run(listener))
}
