//! `regops cluster-info`: which cluster the kubeconfig reaches, and that regops can read it.

use crate::ExitStatus;
use crate::cli::ClusterArgs;
use crate::cluster::client::runtime;
use crate::failure::Outcome;
use crate::output::Term;

pub(super) fn cluster_info(args: ClusterArgs, term: &Term) -> Outcome {
    let info = runtime()?.block_on(crate::cluster::client::info(&args.options()))?;
    // The server's version string and the kubeconfig's names are data.
    use regops_spec::untrusted::terminal;
    term.stdout(&format!(
        "server:     {}\ncontext:    {}\nversion:    {}\nnamespaces: {}\n",
        terminal(&info.target.server),
        terminal(info.target.context.as_deref().unwrap_or("(in-cluster)")),
        terminal(&info.version.to_string()),
        info.namespaces
    ));
    Ok(ExitStatus::Success)
}
