//! `regops render`: the pull-secret Secrets as manifests, without a cluster.

use regops_core::node_trust::{self, Runtime};
use regops_core::render;

use crate::ExitStatus;
use crate::cli::RenderArgs;
use crate::failure::Outcome;
use crate::ops::load::{load, resolve_logins, used_credentials};
use crate::output::Term;

pub(super) fn render(args: RenderArgs, term: &Term) -> Outcome {
    let loaded = load(&args.spec.options(), term)?;
    if let Some(runtime) = args.node_config {
        return node_config(&loaded, runtime.into(), args.output_dir.as_deref(), term);
    }
    let spec = &loaded.spec;
    if args.namespaces.is_empty() {
        for scope in render::dynamic_scopes(spec) {
            term.note(&format!(
                "note: scope `{scope}` also selects namespaces by label, Rancher project or KubeSphere workspace, which needs a cluster; showing only the namespaces it names (pass --namespaces to choose)"
            ));
        }
    }
    crate::ops::load::only_namespaces(&args.namespaces, "--namespaces")?;
    let used = used_credentials(spec);
    // render has no --request-timeout: the flag's default.
    let ctx = crate::context::RunContext::default();
    let mut logins = resolve_logins(&loaded, &args.identity.identity, Some(&used), &ctx)?;
    crate::ops::load::mint_all(&loaded, &mut logins, &used, &ctx)?;
    let given = (!args.namespaces.is_empty()).then_some(args.namespaces.as_slice());
    if let Some(members) = crate::ops::fleet::members(&loaded, &args.fleet.clusters, None, None)? {
        // One YAML stream per cluster, each under a comment naming it: `--cluster NAME` gives
        // one cluster's manifests alone, ready for `kubectl apply`.
        let mut any = false;
        for m in &members {
            let objects = render::pull_secrets(&m.spec, &logins, given);
            any |= !objects.is_empty();
            term.stdout(&format!(
                "# cluster: {} (context `{}`)
",
                regops_spec::untrusted::terminal(&m.name),
                regops_spec::untrusted::terminal(&m.context)
            ));
            term.stdout(&render::to_yaml(&objects, &loaded.name, args.show_secrets));
        }
        if !any {
            term.note(
                "nothing to render: no pull secret has a namespace in scope on these clusters",
            );
        }
        return Ok(ExitStatus::Success);
    }
    let objects = render::pull_secrets(spec, &logins, given);
    if objects.is_empty() {
        term.note("nothing to render: no pull secret has a namespace in scope");
        return Ok(ExitStatus::Success);
    }
    term.stdout(&render::to_yaml(&objects, &loaded.name, args.show_secrets));
    Ok(ExitStatus::Success)
}

/// `render --node-config`: the runtime's node-trust files, to stdout as a YAML stream or into
/// a directory. Nothing is decrypted.
fn node_config(
    loaded: &regops_spec::Loaded,
    runtime: Runtime,
    output_dir: Option<&std::path::Path>,
    term: &Term,
) -> Outcome {
    let hosts = crate::ops::node_trust::trusted_hosts(loaded)?;
    let files = node_trust::render(runtime, &hosts);
    if files.is_empty() {
        term.note("nothing to render: no registry is marked `insecure: true` or has a `caFile`");
        return Ok(ExitStatus::Success);
    }
    match output_dir {
        Some(dir) => {
            crate::ops::node_trust::write_dir(dir, &files)?;
            term.note(&format!(
                "wrote {} file{} for {} under {} (on the node: {})",
                files.len(),
                if files.len() == 1 { "" } else { "s" },
                runtime,
                regops_spec::untrusted::terminal(&dir.display().to_string()),
                runtime.root()
            ));
        }
        None => term.stdout(&node_trust::to_yaml(runtime, &files)),
    }
    term.note(&crate::ops::node_trust::takes_effect(runtime));
    Ok(ExitStatus::Success)
}
