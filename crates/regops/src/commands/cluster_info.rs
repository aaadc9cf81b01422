//! `regops cluster-info`: which cluster the kubeconfig reaches, and that regops can read it.

use crate::ExitStatus;
use crate::cli::ClusterArgs;
use crate::cluster::runtime;
use crate::failure::Outcome;
use crate::output::Term;

pub(super) fn cluster_info(args: ClusterArgs, term: &Term) -> Outcome {
    crate::retry::set_request_timeout(args.request_timeout);
    let info = runtime()?.block_on(crate::cluster::info(
        args.kubeconfig.as_deref(),
        args.context.as_deref(),
    ))?;
    term.stdout(&format!(
        "server:     {}\ncontext:    {}\nversion:    {}\nnamespaces: {}\n",
        info.target.server,
        info.target.context.as_deref().unwrap_or("(in-cluster)"),
        info.version,
        info.namespaces
    ));
    Ok(ExitStatus::Success)
}
