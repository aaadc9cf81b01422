//! `regops node-sync`: flags to [`crate::ops::node_sync`], its report to the terminal.

use regops_core::node_trust::NodeHost;

use crate::ExitStatus;
use crate::cli::NodeSyncArgs;
use crate::failure::{Failure, Outcome};
use crate::output::Term;

pub(super) fn node_sync(args: NodeSyncArgs, term: &Term) -> Outcome {
    let allow = args
        .allow_host
        .iter()
        // `--allow-host=$(ALLOW_HOSTS)` with an empty list, in the DaemonSet: no host.
        .filter(|h| !h.is_empty())
        .map(|h| NodeHost::parse(h).map_err(|e| Failure::caused("--allow-host", e)))
        .collect::<Result<Vec<_>, _>>()?;
    let options = crate::ops::node_sync::Options {
        from: args.from,
        root: args.root,
        allow,
        containerd_config: args.containerd_config,
        node_path: args.node_path,
    };
    loop {
        let status = once(&options, term);
        let Some(every) = args.interval else {
            return status;
        };
        if let Err(f) = status {
            // In a loop a failed round is reported and tried again, as the DaemonSet would
            // restart the container, without the back-off.
            f.report(term);
        }
        std::thread::sleep(every);
    }
}

fn once(options: &crate::ops::node_sync::Options, term: &Term) -> Outcome {
    let r = crate::ops::node_sync::sync(options)?;
    for h in &r.written {
        term.note(&format!("wrote {h}"));
    }
    for h in &r.removed {
        term.note(&format!("removed {h}"));
    }
    for h in &r.refused {
        term.note(&format!("refused {h}"));
    }
    if let Some(c) = &r.config {
        term.note(&format!("warning: {c}"));
    }
    term.note(&format!(
        "node-sync: {} written, {} unchanged, {} removed, {} refused",
        r.written.len(),
        r.unchanged.len(),
        r.removed.len(),
        r.refused.len()
    ));
    Ok(if r.refused.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
