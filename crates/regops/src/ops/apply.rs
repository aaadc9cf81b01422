//! `apply`'s work around the [`Session`]: the session made from the options, its Lease taken
//! (waiting for another apply), and a fleet's clusters staged and written at once. The
//! command ([`crate::cli::commands`]'s `apply`) shows the plans, asks, and reports.

use futures::StreamExt;

use regops_core::fleet::{Applied, ClusterFailure, PerCluster};

use crate::cluster::Connection;
use crate::cluster::lock::{Connect, Lock};
use crate::failure::Failure;
use crate::ops::fleet::error;
use crate::ops::options::{ApplyOptions, LockOptions};
use crate::ops::prepared::Prepared;
use crate::ops::session::{Session, Staged, Waiting};
use crate::output::{Progress, Term};

/// The apply [`Session`] for `spec`: its Lease, its writes.
pub(crate) fn session(opts: &ApplyOptions, spec: &str) -> Result<Session, Failure> {
    opts.lock.times.check().map_err(|e| {
        Failure::error(e).with_help(
            "client-go's defaults: --lock-duration 15s --renew-deadline 10s --retry-period 2s",
        )
    })?;
    Ok(Session::new(
        spec,
        &opts.lock.namespace,
        opts.lock.name.as_deref(),
        opts.lock.times,
        opts.writes.clone(),
    ))
}

/// Takes the session's Lease, waiting up to the options' wait for another apply and saying
/// so on the terminal. `cluster` names the cluster of a fleet run in the messages.
pub(crate) async fn take_lease(
    session: &Session,
    lock: &LockOptions,
    conn: &Connection,
    connect: Connect,
    cluster: Option<&str>,
    term: &Term,
) -> Result<Lock, Failure> {
    let at = cluster.map_or(String::new(), |c| format!("cluster {c}: "));
    let at = regops_spec::untrusted::terminal(&at).into_owned();
    let warn = |m: &str| {
        term.note(&format!(
            "warning: {at}{}",
            regops_spec::untrusted::terminal(m)
        ))
    };
    let on_wait = |holder: &str| {
        term.note(&format!(
            "{at}waiting up to {:?} for the lock: another apply holds it (`{}`)",
            lock.wait,
            regops_spec::untrusted::terminal(holder)
        ));
    };
    let waiting = Waiting {
        wait: Some(lock.wait),
        poll: std::time::Duration::from_millis(250),
        on_wait: &on_wait,
        warn: &warn,
    };
    session
        .take_lease(conn, connect, &waiting)
        .await
        .map_err(|e| Failure::Message {
            help: e.help(),
            message: e.to_string(),
        })
}

/// A single cluster's apply staged with the session: connected as the options say, read and
/// planned; when there is something to write, its Lease taken and the cluster read again under
/// it. The client is returned for the writes.
pub(crate) fn stage_cluster(
    rt: &tokio::runtime::Runtime,
    session: &Session,
    opts: &ApplyOptions,
    prepared: &Prepared,
    term: &Term,
) -> Result<(Connection, Staged), Failure> {
    let (client, target) = rt.block_on(crate::cluster::client::connect(
        opts.run.cluster.kubeconfig.as_deref(),
        opts.run.cluster.context.as_deref(),
    ))?;
    let conn = Connection::new(client, prepared.ctx.clone());
    let loaded = &prepared.loaded;
    let read = async || {
        let observed = crate::cluster::read::from_cluster(
            &conn,
            &target,
            &loaded.spec,
            &loaded.name,
            prepared.only.as_ref(),
        )
        .await?;
        let (desired, plan) = prepared.plan(&observed, &target.to_string()).await;
        Ok::<_, Failure>((observed, desired, plan))
    };
    let connect = crate::cluster::client::lock_connect(
        opts.run.cluster.kubeconfig.clone(),
        opts.run.cluster.context.clone(),
    );
    let take = async || take_lease(session, &opts.lock, &conn, connect, None, term).await;
    let staged = rt.block_on(session.stage(read, take))?;
    Ok((conn, staged))
}

/// One cluster of a fleet apply: its client and what the session staged.
pub(crate) struct Reached {
    pub conn: Connection,
    pub staged: Staged,
}

/// Connects to one cluster and stages it with the session (read and plan; when there is
/// something to write, its Lease and a second read under it).
async fn stage(
    session: &Session,
    lock: &LockOptions,
    prepared: &Prepared,
    m: &crate::ops::fleet::Member,
    term: &Term,
) -> Result<Reached, ClusterFailure> {
    let only = prepared.only.as_ref();
    let (conn, target) = m.connect(&prepared.ctx).await.map_err(error)?;
    let read = async || {
        let observed =
            crate::cluster::read::from_cluster(&conn, &target, &m.spec, &session.spec, only)
                .await
                .map_err(error)?;
        let (desired, plan) = prepared
            .plan_with(&m.spec, &observed, &target.to_string(), only)
            .await;
        Ok((observed, desired, plan))
    };
    let take = async || {
        take_lease(session, lock, &conn, m.lock_connect(), Some(&m.name), term)
            .await
            .map_err(error)
    };
    let staged = session.stage(read, take).await?;
    Ok(Reached { conn, staged })
}

/// Every cluster of a fleet read and planned at once (at most `limit`), each under its own
/// Lease when it has something to write. A cluster that cannot be reached or refuses is an
/// error in its place; the others are staged.
pub(crate) async fn stage_fleet(
    session: &Session,
    opts: &ApplyOptions,
    prepared: &Prepared,
    members: &[crate::ops::fleet::Member],
    term: &Term,
) -> Vec<PerCluster<Reached>> {
    let limit = usize::from(opts.run.cluster_concurrency);
    crate::ops::fleet::each(members, limit, |m| {
        stage(session, &opts.lock, prepared, m, term)
    })
    .await
}

/// Releases the Leases of a fleet that is not written (the apply was not confirmed).
pub(crate) async fn release_fleet(staged: Vec<PerCluster<Reached>>) {
    let locks = staged
        .into_iter()
        .filter_map(|m| m.result.ok().and_then(|r| r.staged.lock));
    crate::ops::session::release_all(locks).await;
}

/// Every staged cluster written at once (at most `limit`), each Lease released after.
pub(crate) async fn write_fleet(
    session: &Session,
    staged: Vec<PerCluster<Reached>>,
    limit: usize,
    progress: &Progress,
    term: &Term,
) -> Vec<PerCluster<Applied>> {
    futures::stream::iter(staged.into_iter().map(|m| async move {
        let cluster = m.cluster;
        let result = match m.result {
            Ok(r) => Ok(write(session, r, &cluster, progress, term).await),
            Err(e) => Err(e),
        };
        PerCluster { cluster, result }
    }))
    .buffered(limit)
    .collect()
    .await
}

/// Writes one staged cluster's plan with the session, then releases its Lease.
async fn write(
    session: &Session,
    r: Reached,
    cluster: &str,
    progress: &Progress,
    term: &Term,
) -> Applied {
    let Reached { conn, staged } = r;
    let written = session
        .write(
            &conn,
            &staged.plan,
            &staged.desired,
            &staged.observed,
            staged.lock.as_ref(),
            &|item| progress.item_in(Some(cluster), item),
            &|| false,
        )
        .await;
    if let Some(w) = &written.events_warning {
        term.note(&format!(
            "warning: {}",
            regops_spec::untrusted::terminal(&format!("cluster {cluster}: {w}"))
        ));
    }
    if let Some(lock) = staged.lock {
        lock.release().await;
    }
    Applied {
        plan: staged.plan,
        report: written.report,
        lock_lost: written.lock_lost,
    }
}
