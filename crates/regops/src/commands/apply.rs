//! `regops apply`: take the lock, read the cluster, plan, confirm, write, report.

use std::io::IsTerminal;

use futures::StreamExt;

use regops_core::plan::{Action, Plan};
use regops_core::report;

use super::load::{prepare, runtime};
use super::{Failure, Outcome};
use crate::ExitStatus;
use crate::cli::ApplyArgs;
use crate::output::Term;
use crate::prepared::Prepared;
use regops_core::format::{Format, Style};

/// This process in the Lease: the host (a pod's name) and the process id.
pub(crate) fn holder_identity() -> String {
    crate::lock::holder_identity()
}

pub(crate) fn confirm(term: &Term) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Message {
            message: "not applying without confirmation: standard input is not a terminal".into(),
            help: Some("pass --yes to apply unattended".into()),
        });
    }
    term.prompt("Apply these changes? Only 'yes' is accepted: ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Failure::msg(format!("cannot read the answer: {e}")))?;
    Ok(answer.trim() == "yes")
}

/// Takes this spec's lock (a Lease), renewed on its own thread with its own client (from
/// `connect`) until released. A dry run takes none: it writes nothing. `cluster` names the
/// cluster of a fleet run in the messages.
pub(crate) async fn acquire_lock(
    args: &ApplyArgs,
    client: &kube::Client,
    spec_name: &str,
    connect: crate::lock::Connect,
    cluster: Option<&str>,
    term: &Term,
) -> Result<Option<crate::lock::Lock>, Failure> {
    if args.dry_run.is_some() {
        return Ok(None);
    }
    let at = cluster.map_or(String::new(), |c| format!("cluster {c}: "));
    let name = lock_name(args, spec_name);
    let warn = |m: &str| term.note(&format!("warning: {at}{m}"));
    let settings = crate::lock::Settings {
        namespace: &args.lock_namespace,
        name: &name,
        holder: &holder_identity(),
        times: lock_times(args)?,
        wait: Some(args.lock_wait),
        poll: std::time::Duration::from_millis(250),
        on_wait: &|holder: &str| {
            term.note(&format!(
                "{at}waiting up to {:?} for the lock: another apply holds it (`{holder}`)",
                args.lock_wait
            ));
        },
    };
    crate::lock::acquire(client, &settings, &warn, connect)
        .await
        .map(Some)
        .map_err(|e| Failure::Message {
            help: e.help(),
            message: e.to_string(),
        })
}

/// The Lease's name: `--lock-name`, or `regops-<spec>`.
pub(crate) fn lock_name(args: &ApplyArgs, spec_name: &str) -> String {
    args.lock_name
        .clone()
        .unwrap_or_else(|| format!("regops-{spec_name}"))
}

/// Records the Events of an apply (not of a dry run, nor once the lock is lost: another
/// process may be writing), and warns when some could not be.
pub(crate) async fn record_events(
    args: &ApplyArgs,
    client: &kube::Client,
    plan: &Plan,
    report: &report::Report,
    observed: &regops_core::observed::Observed,
    lost: bool,
    term: &Term,
) {
    if args.dry_run.is_some() || lost {
        return;
    }
    let recorder = crate::events::Recorder::new(&plan.spec, &holder_identity());
    let lease = crate::events::lease(&args.lock_namespace, &lock_name(args, &plan.spec));
    let recorded = recorder
        .record_apply(client, plan, report, observed, Some(lease))
        .await;
    if let Some(w) = recorded.warning() {
        term.note(&format!("warning: {w}"));
    }
}

/// The Lease's three times from the flags, checked as client-go checks them.
pub(crate) fn lock_times(args: &ApplyArgs) -> Result<crate::lock::Times, Failure> {
    let times = crate::lock::Times {
        duration: args.lock_duration,
        renew_deadline: args.renew_deadline,
        retry_period: args.retry_period,
    };
    times.check().map_err(|message| Failure::Message {
        message,
        help: Some(
            "client-go's defaults: --lock-duration 15s --renew-deadline 10s --retry-period 2s"
                .into(),
        ),
    })?;
    Ok(times)
}

/// Shows the plan: on stdout with the text report, on stderr (coloured by stderr's setting)
/// when the report on stdout is JSON, so `regops apply | tee log` gets no escapes.
pub(crate) fn show_plan(plan: &Plan, args: &ApplyArgs, term: &Term) {
    let detail = args.detail.view();
    if args.output == Format::Text {
        term.stdout(&regops_core::view::text(plan, term.color_stdout(), detail));
    } else {
        term.note(regops_core::view::text(plan, term.color, detail).trim_end());
    }
}

pub(crate) fn apply(args: ApplyArgs, term: &Term) -> Outcome {
    let prepared = prepare(&args.run, term)?;
    if let Some(members) = super::load::fleet_members(&args.run, &prepared)? {
        return apply_fleet(&args, &prepared, &members, term);
    }
    let rt = runtime()?;
    let (client, target) = super::load::connect(&args.run.cluster, &rt)?;
    // A cluster that already matches the spec gets not a single write, not even the Lease:
    // a first read without the lock settles it. When there is something to write, the lock
    // is taken and the cluster read again under it, so the plan carried out is made from a
    // cluster no other apply of this spec is writing to.
    if args.dry_run.is_none() {
        let observed = rt.block_on(crate::observe::from_cluster(
            &client,
            &target,
            &prepared.loaded.spec,
            &prepared.loaded.name,
            prepared.only.as_ref(),
        ))?;
        let (_, plan) = rt.block_on(prepared.plan(&observed, &target.to_string()));
        if !plan.has_changes() {
            return Ok(unchanged(&plan, &args, term));
        }
    }
    let connect = super::load::lock_connect(&args.run.cluster);
    let lock = rt.block_on(acquire_lock(
        &args,
        &client,
        &prepared.loaded.name,
        connect,
        None,
        term,
    ))?;
    let result = read_plan_write(&args, prepared, &rt, &client, &target, lock.as_ref(), term);
    if let Some(lock) = lock {
        rt.block_on(lock.release());
    }
    result
}

/// A plan with nothing to write: shown (with the JSON report when asked); exit 1 if it has
/// conflicts, else 0.
pub(crate) fn unchanged(plan: &Plan, args: &ApplyArgs, term: &Term) -> ExitStatus {
    show_plan(plan, args, term);
    if args.output == Format::Json {
        term.stdout(&report::apply_json(
            plan,
            &report::Report::default(),
            args.dry_run.is_some(),
        ));
    }
    if plan.conflicts.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    }
}

/// The options of the writes.
pub(crate) fn options(args: &ApplyArgs, prepared: &Prepared) -> crate::apply::Options {
    crate::apply::Options {
        spec: prepared.loaded.name.clone(),
        commit: prepared.source.commit.clone(),
        prune: args.prune,
        dry_run: args.dry_run.is_some(),
        force_conflicts: args.force_conflicts,
        concurrency: usize::from(args.concurrency),
    }
}

/// Under the lock: read, plan, confirm, write, report.
fn read_plan_write(
    args: &ApplyArgs,
    prepared: Prepared,
    rt: &tokio::runtime::Runtime,
    client: &kube::Client,
    target: &crate::cluster::Target,
    lock: Option<&crate::lock::Lock>,
    term: &Term,
) -> Outcome {
    let dry_run = args.dry_run.is_some();
    let loaded = &prepared.loaded;
    let opts = options(args, &prepared);
    let observed = rt.block_on(crate::observe::from_cluster(
        client,
        target,
        &loaded.spec,
        &loaded.name,
        prepared.only.as_ref(),
    ))?;
    let (desired, plan) = rt.block_on(prepared.plan(&observed, &target.to_string()));
    if !plan.has_changes() {
        return Ok(unchanged(&plan, args, term));
    }
    show_plan(&plan, args, term);
    if !args.yes && !dry_run && !confirm(term)? {
        term.note("Apply cancelled; nothing was written.");
        return Ok(ExitStatus::Failure);
    }
    write_and_report(
        args, rt, client, &plan, &desired, &observed, &opts, lock, term,
    )
}

/// Carries out a confirmed plan, with progress, and reports what was and was not done.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_and_report(
    args: &ApplyArgs,
    rt: &tokio::runtime::Runtime,
    client: &kube::Client,
    plan: &Plan,
    desired: &regops_core::desired::Desired,
    observed: &regops_core::observed::Observed,
    opts: &crate::apply::Options,
    lock: Option<&crate::lock::Lock>,
    term: &Term,
) -> Outcome {
    let dry_run = args.dry_run.is_some();
    let in_conflict = !plan.conflicts.is_empty();
    let total = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Noop)
        .count();
    let progress = crate::output::Progress::new(term, total, args.output == Format::Text);
    let lost = || lock.is_some_and(crate::lock::Lock::lost);
    let report = rt.block_on(crate::retry::fenced(
        lock.map(crate::lock::Lock::held),
        crate::apply::run(
            client,
            plan,
            desired,
            observed,
            opts,
            &|item| progress.item(item),
            &lost,
        ),
    ));
    progress.finish();
    rt.block_on(record_events(
        args,
        client,
        plan,
        &report,
        observed,
        lost(),
        term,
    ));
    term.view(
        &report::ApplyView {
            plan,
            report: &report,
            dry_run,
        },
        args.output,
        &Style::default(),
    );
    if lost() {
        term.note(
            "error: the lock was lost during the apply (another apply took it over, or it could not be renewed); writes not yet started were not made. Run apply again.",
        );
    }
    Ok(if report.failed() > 0 || in_conflict || lost() {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// One cluster of a fleet apply, read and planned under its Lease, waiting to be written.
struct Staged {
    client: kube::Client,
    lock: Option<crate::lock::Lock>,
    observed: regops_core::observed::Observed,
    desired: regops_core::desired::Desired,
    plan: Plan,
}

/// Connects to one cluster and reads and plans it; when there is something to write, takes
/// its Lease and reads and plans again under it (as a single-cluster apply does). The Lease
/// is released again if that read fails.
async fn stage(
    args: &ApplyArgs,
    prepared: &Prepared,
    m: &super::fleet::Member,
    term: &Term,
) -> Result<Staged, regops_core::fleet::ClusterError> {
    use super::fleet::error;
    let name = &prepared.loaded.name;
    let only = prepared.only.as_ref();
    let (client, target) = m.connect().await.map_err(error)?;
    let read = || async {
        let observed = crate::observe::from_cluster(&client, &target, &m.spec, name, only).await?;
        let (desired, plan) = prepared
            .plan_with(&m.spec, &observed, &target.to_string(), only)
            .await;
        Ok::<_, crate::cluster::ClusterError>((observed, desired, plan))
    };
    let (observed, desired, plan) = read().await.map_err(error)?;
    if !plan.has_changes() || args.dry_run.is_some() {
        return Ok(Staged {
            client,
            lock: None,
            observed,
            desired,
            plan,
        });
    }
    drop((observed, desired, plan));
    let lock = acquire_lock(args, &client, name, m.lock_connect(), Some(&m.name), term)
        .await
        .map_err(error)?;
    match read().await {
        Ok((observed, desired, plan)) => Ok(Staged {
            client,
            lock,
            observed,
            desired,
            plan,
        }),
        Err(e) => {
            if let Some(lock) = lock {
                lock.release().await;
            }
            Err(error(e))
        }
    }
}

/// `apply` over the spec's clusters: every cluster read and planned at once under its own
/// Lease, one plan shown and one confirmation, then every cluster written at once. A cluster
/// that cannot be reached or refuses is reported; the others are still applied.
fn apply_fleet(
    args: &ApplyArgs,
    prepared: &Prepared,
    members: &[super::fleet::Member],
    term: &Term,
) -> Outcome {
    use regops_core::fleet::{Applied, Member};
    let rt = runtime()?;
    crate::retry::set_request_timeout(args.run.cluster.request_timeout);
    let limit = usize::from(args.run.cluster_concurrency);
    let staged: Vec<Member<Staged>> = rt.block_on(super::fleet::each(members, limit, |m| {
        stage(args, prepared, m, term)
    }));
    let any_changes = staged
        .iter()
        .any(|m| m.result.as_ref().is_ok_and(|s| s.plan.has_changes()));
    show_fleet_plan(&staged, args, prepared, term);
    let dry_run = args.dry_run.is_some();
    if any_changes && !args.yes && !dry_run {
        let answer = confirm(term);
        if !matches!(answer, Ok(true)) {
            rt.block_on(release_all(staged));
            answer?;
            term.note("Apply cancelled; nothing was written to any cluster.");
            return Ok(ExitStatus::Failure);
        }
    }
    let total = staged
        .iter()
        .filter_map(|m| m.result.as_ref().ok())
        .flat_map(|s| s.plan.changes.iter())
        .filter(|c| c.action != Action::Noop)
        .count();
    let progress =
        crate::output::Progress::new(term, total, args.output == Format::Text && any_changes);
    let opts = options(args, prepared);
    let (progress, opts) = (&progress, &opts);
    let applied: Vec<Member<Applied>> = rt.block_on(
        futures::stream::iter(staged.into_iter().map(|m| async move {
            let cluster = m.cluster;
            let result = match m.result {
                Ok(s) => Ok(write(s, &cluster, args, opts, progress, term).await),
                Err(e) => Err(e),
            };
            Member { cluster, result }
        }))
        .buffered(limit)
        .collect(),
    );
    progress.finish();
    term.view(
        &regops_core::fleet::FleetApplyView {
            spec: &prepared.loaded.name,
            members: &applied,
            dry_run,
        },
        args.output,
        &Style::default(),
    );
    let failed = applied
        .iter()
        .any(|m| m.result.as_ref().map_or(true, Applied::failed));
    Ok(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// Shows a fleet's plans as [`show_plan`] shows one.
fn show_fleet_plan(
    staged: &[regops_core::fleet::Member<Staged>],
    args: &ApplyArgs,
    prepared: &Prepared,
    term: &Term,
) {
    let plans: Vec<regops_core::fleet::Member<&Plan>> = staged
        .iter()
        .map(|m| regops_core::fleet::Member {
            cluster: m.cluster.clone(),
            result: m.result.as_ref().map(|s| &s.plan).map_err(Clone::clone),
        })
        .collect();
    let (spec, detail) = (prepared.loaded.name.as_str(), args.detail.view());
    if args.output == Format::Text {
        let text = regops_core::fleet::plan_text(spec, &plans, term.color_stdout(), detail);
        term.stdout(&text);
    } else {
        let text = regops_core::fleet::plan_text(spec, &plans, term.color, detail);
        term.note(text.trim_end());
    }
}

/// Writes one staged cluster's plan (when it has changes), then releases its Lease.
async fn write(
    s: Staged,
    cluster: &str,
    args: &ApplyArgs,
    opts: &crate::apply::Options,
    progress: &crate::output::Progress,
    term: &Term,
) -> regops_core::fleet::Applied {
    let lost = || s.lock.as_ref().is_some_and(crate::lock::Lock::lost);
    let report = if s.plan.has_changes() {
        crate::retry::fenced(
            s.lock.as_ref().map(crate::lock::Lock::held),
            crate::apply::run(
                &s.client,
                &s.plan,
                &s.desired,
                &s.observed,
                opts,
                &|item| progress.item_in(Some(cluster), item),
                &lost,
            ),
        )
        .await
    } else {
        report::Report::default()
    };
    if s.plan.has_changes() || !s.plan.conflicts.is_empty() {
        record_events(args, &s.client, &s.plan, &report, &s.observed, lost(), term).await;
    }
    let lock_lost = lost();
    if let Some(lock) = s.lock {
        lock.release().await;
    }
    regops_core::fleet::Applied {
        plan: s.plan,
        report,
        lock_lost,
    }
}

/// Releases the Lease of every staged cluster (an apply that was not confirmed).
/// Releases every cluster's Lease at once: each release waits for its renewal to stop (up to
/// a renew deadline when a renewal is out), and one slow cluster must not hold up the others'
/// standbys.
async fn release_all(staged: Vec<regops_core::fleet::Member<Staged>>) {
    let locks = staged.into_iter().filter_map(|m| match m.result {
        Ok(Staged {
            lock: Some(lock), ..
        }) => Some(lock.release()),
        _ => None,
    });
    futures::future::join_all(locks).await;
}
