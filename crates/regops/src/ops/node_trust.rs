//! Node trust, the shell's part: each `caFile` read as every spec file is (confined to the
//! spec's root, size-capped), then checked and rendered by [`regops_core::node_trust`]; the
//! rendered files written into a directory laid out as on the node.

use std::path::Path;

use regops_core::node_trust::{self, NodeFile, Request, Runtime, TrustedHost};
use regops_spec::{Diagnostic, Diagnostics, Loaded};

use crate::failure::Failure;

/// The hosts the spec's registries ask nodes to trust, each CA read and checked; every
/// problem located in the spec.
pub(crate) fn trusted_hosts(loaded: &Loaded) -> Result<Vec<TrustedHost>, Failure> {
    let mut diags = Diagnostics::default();
    let mut requests = Vec::new();
    for reg in node_trust::requested(&loaded.spec) {
        let name = &reg.name.value;
        let ca = match &reg.ca_file {
            None => None,
            Some(c) => {
                let what = format!("the CA file of registry `{name}`");
                let read = crate::inputs::confined::path(&loaded.sources, c, &what).and_then(|p| {
                    p.read(crate::inputs::confined::CA_FILE_LIMIT).map_err(|e| {
                        Diagnostic::error("node-trust::ca-file", format!("{what}: {e}"))
                            .with_label(c.loc, "cannot be read")
                    })
                });
                match read {
                    Ok(bytes) => {
                        // Checked here, per registry, to locate the problem at its caFile.
                        if let Err(reason) = node_trust::CaBundle::parse(&bytes) {
                            diags.push(
                                Diagnostic::error(
                                    "node-trust::ca-file",
                                    format!("{what} {reason}"),
                                )
                                .with_label(c.loc, "not written to nodes")
                                .with_help("caFile is a PEM bundle of the CA certificates that sign the registry's own certificate; nodes are given exactly those certificates"),
                            );
                            continue;
                        }
                        Some(bytes.to_vec())
                    }
                    Err(d) => {
                        diags.push(d);
                        continue;
                    }
                }
            }
        };
        if let Err(e) = node_trust::NodeHost::of_server(&reg.server.value) {
            diags.push(
                Diagnostic::error("node-trust::host", e.to_string())
                    .with_label(reg.server.loc, "not a host nodes can be configured for"),
            );
            continue;
        }
        requests.push(Request {
            registry: name.clone(),
            server: reg.server.value.clone(),
            plain_http: reg.insecure,
            ca,
        });
    }
    if !diags.is_empty() {
        return Err(Failure::Spec {
            sources: loaded.sources.clone(),
            diagnostics: diags,
        });
    }
    node_trust::hosts(&requests).map_err(|e| {
        let mut d = Diagnostics::default();
        let mut diag = Diagnostic::error("node-trust::conflict", e.to_string());
        if let node_trust::NodeTrustError::Conflict { second, .. } = &e
            && let Some(reg) = loaded.spec.registries.get(second)
        {
            diag = diag.with_label(reg.server.loc, "the same host as another registry");
        }
        d.push(diag);
        Failure::Spec {
            sources: loaded.sources.clone(),
            diagnostics: d,
        }
    })
}

/// Writes `files` under `dir` (created if missing), each as `dir/<rel>`, mode 0644: the layout
/// of [`Runtime::root`] on the node. Paths are made of checked hosts and fixed names only.
pub(crate) fn write_dir(dir: &Path, files: &[NodeFile]) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    for f in files {
        let path = dir.join(&f.rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Failure::caused(format!("cannot create {}", parent.display()), e))?;
        }
        crate::atomic::write(
            &path,
            f.content.as_bytes(),
            crate::atomic::Existing::Replace,
        )
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)))
        .map_err(|e| Failure::caused(format!("cannot write {}", path.display()), e))?;
    }
    Ok(())
}

/// The note that follows rendered files: what the node needs to use them.
pub(crate) fn takes_effect(runtime: Runtime) -> String {
    format!("note: {}", runtime.takes_effect())
}
