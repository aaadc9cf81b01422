//! Runs over the spec's `clusters`: which clusters a run works on, how each is reached (its
//! kubeconfig checked as untrusted input), reading each, working on them at once within
//! `--cluster-concurrency`, and the exit code of the whole. What each command does on one
//! cluster stays in that command's module.

use std::future::Future;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use regops_core::fleet::{ClusterFailure, PerCluster as Outcome};
use regops_spec::Loaded;

use crate::ExitStatus;
use crate::failure::Failure;

/// One cluster of the run: how to reach it and the spec as it sees it.
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) context: String,
    pub(crate) kubeconfig: Option<PathBuf>,
    pub(crate) spec: regops_spec::Spec,
}

impl Member {
    /// Connects to this cluster, with the run's context. Each connection knows whether its
    /// own cluster has answered: one answering says nothing of another.
    pub(crate) async fn connect(
        &self,
        ctx: &crate::context::RunContext,
    ) -> Result<
        (crate::cluster::Connection, crate::cluster::client::Target),
        crate::cluster::client::ClusterError,
    > {
        let (client, target) =
            crate::cluster::client::connect(self.kubeconfig.as_deref(), Some(&self.context))
                .await?;
        Ok((crate::cluster::Connection::new(client, ctx.clone()), target))
    }

    /// How the lock's renewal thread connects to this cluster.
    pub(crate) fn lock_connect(&self) -> crate::cluster::lock::Connect {
        crate::cluster::client::lock_connect(self.kubeconfig.clone(), Some(self.context.clone()))
    }
}

/// The kubeconfig a cluster entry names: `~/` is the home directory (refused by the spec's
/// checks unless the load restrictor is `none`), a relative path is relative to the spec file;
/// checked to stay in the spec's root, to run no program and to skip no TLS check, as
/// [`crate::cluster::client::spec_kubeconfig_refusals`] says.
fn entry_kubeconfig(
    loaded: &Loaded,
    cluster: &regops_spec::Cluster,
    path: &regops_spec::Spanned<PathBuf>,
) -> Result<PathBuf, regops_spec::Diagnostic> {
    let what = format!("the kubeconfig of cluster `{}`", cluster.name.value);
    let file = match path.value.strip_prefix("~") {
        Ok(rest) if loaded.sources.confining_root(path.loc).is_none() => {
            Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(rest)
        }
        // The kubeconfig is still read by name, by kube (see docs/security.md).
        _ => crate::inputs::confined::path(&loaded.sources, path, &what)?.to_path_buf(),
    };
    let refusals = crate::cluster::client::spec_kubeconfig_refusals(
        &file,
        cluster.context(),
        loaded.sources.confining_root(path.loc),
        loaded.policy.allow_kubeconfig_exec,
    )
    .map_err(|e| {
        regops_spec::Diagnostic::error("trust::kubeconfig", format!("{what}: {e}"))
            .with_label(path.loc, "unreadable")
    })?;
    if refusals.is_empty() {
        return Ok(file);
    }
    Err(regops_spec::Diagnostic::error(
        "trust::kubeconfig",
        format!(
            "{what} may not be used: {}",
            refusals.join("; ")
        ),
    )
    .with_label(path.loc, "named by the spec")
    .with_help("a kubeconfig in the spec is written by whoever edits the spec: give it a token or client certificate and a CA, or leave `kubeconfig` out and pass the operator's with --kubeconfig; if every author of this spec is trusted, --allow-kubeconfig-exec lets it run plugins, skip TLS checks and use plain HTTP"))
}

/// The clusters a run works on: `None` for a spec without `clusters` (the one cluster
/// `--kubeconfig` and `--context` reach); else those `--cluster` names, or all of them.
/// `kubeconfig` (`--kubeconfig`) is the file for clusters that name none; `context`
/// (`--context`) is refused, since the spec says which context each cluster is.
pub(crate) fn members(
    loaded: &Loaded,
    clusters: &[String],
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<Option<Vec<Member>>, Failure> {
    let spec = &loaded.spec;
    if spec.clusters.is_empty() {
        if let Some(name) = clusters.first() {
            return Err(Failure::Message {
                message: format!("--cluster {name}: the spec has no `clusters`"),
                help: Some("list the clusters in a top-level `clusters` section, or choose the cluster with --kubeconfig and --context".into()),
            });
        }
        return Ok(None);
    }
    if let Some(c) = context {
        return Err(Failure::Message {
            message: format!("--context {c}: the spec lists its clusters, each with its context"),
            help: Some("choose among the spec's clusters with --cluster NAME".into()),
        });
    }
    for name in clusters {
        if !spec.clusters.contains_key(name) {
            return Err(Failure::Message {
                message: format!("--cluster {name}: the spec has no cluster of this name"),
                help: Some(format!(
                    "the spec's clusters: {}",
                    spec.clusters.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
            });
        }
    }
    let mut members = Vec::new();
    let mut refused = regops_spec::Diagnostics::default();
    for c in spec
        .clusters
        .values()
        .filter(|c| clusters.is_empty() || clusters.contains(&c.name.value))
    {
        let own = match c
            .kubeconfig
            .as_ref()
            .map(|k| entry_kubeconfig(loaded, c, k))
        {
            Some(Ok(path)) => Some(path),
            Some(Err(d)) => {
                refused.push(d);
                continue;
            }
            None => None,
        };
        members.push(Member {
            name: c.name.value.clone(),
            context: c.context().to_string(),
            kubeconfig: own.or_else(|| kubeconfig.map(Path::to_path_buf)),
            spec: regops_spec::fleet::for_cluster(spec, &c.name.value),
        });
    }
    if !refused.is_empty() {
        return Err(Failure::Spec {
            sources: loaded.sources.clone(),
            diagnostics: refused,
        });
    }
    Ok(Some(members))
}

/// Runs `work` on every member, at most `limit` at once, and returns each one's outcome in
/// the members' order. One cluster's failure is its own: the others go on.
pub(crate) async fn each<'m, T, F, Fut>(
    members: &'m [Member],
    limit: usize,
    work: F,
) -> Vec<Outcome<T>>
where
    F: Fn(&'m Member) -> Fut,
    Fut: Future<Output = Result<T, ClusterFailure>>,
{
    let results: Vec<Result<T, ClusterFailure>> = futures::stream::iter(members.iter().map(work))
        .buffered(limit.max(1))
        .collect()
        .await;
    members
        .iter()
        .zip(results)
        .map(|(m, result)| Outcome {
            cluster: m.name.clone(),
            result,
        })
        .collect()
}

/// A cluster's failure as the report shows it.
pub(crate) fn error(e: impl Into<Failure>) -> ClusterFailure {
    let f = e.into();
    match &f {
        Failure::Spec { diagnostics, .. } => ClusterFailure {
            message: format!("{} error(s) in the spec", diagnostics.error_count()),
            help: None,
        },
        Failure::Message { .. } | Failure::Error { .. } => {
            let (message, help) = f.message().unwrap_or_default();
            ClusterFailure { message, help }
        }
    }
}

/// The exit code of a fleet run: 1 if any cluster failed, else 2 if any has changes (or
/// drift), else 0.
pub(crate) fn exit(failed: bool, changes: bool) -> ExitStatus {
    if failed {
        ExitStatus::Failure
    } else if changes {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    }
}

/// The clusters of a fleet run as `run` says; `None` for a spec without `clusters`.
pub(crate) fn fleet_members(
    run: &crate::ops::options::RunOptions,
    prepared: &crate::ops::prepared::Prepared,
) -> Result<Option<Vec<Member>>, Failure> {
    members(
        &prepared.loaded,
        &run.clusters,
        run.cluster.kubeconfig.as_deref(),
        run.cluster.context.as_deref(),
    )
}

/// Connects to one cluster of a fleet and reads what its plan needs.
pub(crate) async fn read_member(
    member: &Member,
    prepared: &crate::ops::prepared::Prepared,
) -> Result<(regops_core::observed::Observed, String), regops_core::fleet::ClusterFailure> {
    let (conn, target) = member.connect(&prepared.ctx).await.map_err(error)?;
    let observed = crate::cluster::read::from_cluster(
        &conn,
        &target,
        &member.spec,
        &prepared.loaded.name,
        prepared.only.as_ref(),
    )
    .await
    .map_err(error)?;
    Ok((observed, target.to_string()))
}

/// Every member read and planned at once (at most the run's `cluster_concurrency`), each
/// member's desired state and plan turned into what the command keeps by `keep`.
pub(crate) fn plan_each<T>(
    run: &crate::ops::options::RunOptions,
    prepared: &crate::ops::prepared::Prepared,
    members: &[Member],
    keep: &(dyn Fn(regops_core::desired::Desired, regops_core::plan::Plan) -> T + Sync),
) -> Result<Vec<Outcome<T>>, Failure> {
    let only = prepared.only.as_ref();
    let limit = usize::from(run.cluster_concurrency);
    Ok(
        crate::cluster::client::runtime()?.block_on(each(members, limit, |m| async move {
            let (observed, target) = read_member(m, prepared).await?;
            let (desired, plan) = prepared.plan_with(&m.spec, &observed, &target, only).await;
            Ok(keep(desired, plan))
        })),
    )
}
