//! `regops apply`: the flags turned into an apply [`Session`]; the plan shown and confirmed;
//! the session's writes with progress; the report. The session's steps (read without the
//! Lease, the Lease, the fenced writes, the Events) are [`crate::session`]'s.

use std::io::IsTerminal;

use futures::StreamExt;

use regops_core::format::{Format, Style};
use regops_core::plan::{Action, Plan};
use regops_core::report;

use crate::ExitStatus;
use crate::cli::ApplyArgs;
use crate::cluster::runtime;
use crate::failure::{Failure, Outcome};
use crate::load::prepare;
use crate::lock::Lock;
use crate::output::Term;
use crate::prepared::Prepared;
use crate::session::{Session, Staged, Waiting, Writes};

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

/// The flags turned into an apply [`Session`] for `spec`: its Lease, its writes.
pub(crate) fn session(args: &ApplyArgs, spec: &str) -> Result<Session, Failure> {
    Ok(Session::new(
        spec,
        &args.lock_namespace,
        args.lock_name.as_deref(),
        lock_times(args)?,
        Writes {
            prune: args.prune,
            dry_run: args.dry_run.is_some(),
            force_conflicts: args.force_conflicts,
            concurrency: usize::from(args.concurrency),
        },
    ))
}

/// The Lease's three times from the flags, checked as client-go checks them.
fn lock_times(args: &ApplyArgs) -> Result<crate::lock::Times, Failure> {
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

/// Takes the session's Lease, waiting up to `--lock-wait` for another apply and saying so on
/// the terminal. `cluster` names the cluster of a fleet run in the messages.
pub(crate) async fn take_lease(
    session: &Session,
    args: &ApplyArgs,
    client: &kube::Client,
    connect: crate::lock::Connect,
    cluster: Option<&str>,
    term: &Term,
) -> Result<crate::lock::Lock, Failure> {
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
            args.lock_wait,
            regops_spec::untrusted::terminal(holder)
        ));
    };
    let waiting = Waiting {
        wait: Some(args.lock_wait),
        poll: std::time::Duration::from_millis(250),
        on_wait: &on_wait,
        warn: &warn,
    };
    session
        .take_lease(client, connect, &waiting)
        .await
        .map_err(|e| Failure::Message {
            help: e.help(),
            message: e.to_string(),
        })
}

/// Shows the plan: on stdout with the text report, on stderr (coloured by stderr's setting)
/// when the report on stdout is JSON, so `regops apply | tee log` gets no escapes.
pub(crate) fn show_plan(plan: &Plan, args: &ApplyArgs, term: &Term) {
    let detail = args.detail.view();
    if args.output == Format::Text {
        term.stdout(&regops_core::view::text(plan, term.color_stdout(), detail));
    } else {
        term.note_view(regops_core::view::text(plan, term.color, detail).trim_end());
    }
}

pub(crate) fn apply(args: ApplyArgs, term: &Term) -> Outcome {
    let run = args.run.options();
    let prepared = prepare(&run, term)?;
    if let Some(members) = crate::fleet::fleet_members(&run, &prepared)? {
        return apply_fleet(&args, &prepared, &members, term);
    }
    let rt = runtime()?;
    let (client, target) = crate::cluster::connect_as(&run.cluster, &rt)?;
    let session = session(&args, &prepared.loaded.name)?;
    let loaded = &prepared.loaded;
    let read = async || {
        let observed = crate::observe::from_cluster(
            &client,
            &target,
            &loaded.spec,
            &loaded.name,
            prepared.only.as_ref(),
        )
        .await?;
        let (desired, plan) = prepared.plan(&observed, &target.to_string()).await;
        Ok::<_, Failure>((observed, desired, plan))
    };
    let connect = crate::cluster::lock_connect(
        args.run.cluster.kubeconfig.clone(),
        args.run.cluster.context.clone(),
    );
    let take = async || take_lease(&session, &args, &client, connect, None, term).await;
    let Staged {
        observed,
        desired,
        plan,
        lock,
    } = rt.block_on(session.stage(read, take))?;
    let result = (|| {
        if !plan.has_changes() {
            return Ok(unchanged(&plan, &args, term));
        }
        show_plan(&plan, &args, term);
        if !args.yes && args.dry_run.is_none() && !confirm(term)? {
            term.note("Apply cancelled; nothing was written.");
            return Ok(ExitStatus::Failure);
        }
        write_and_report(
            &args,
            &rt,
            (&session, &client),
            (&plan, &desired, &observed),
            lock.as_ref(),
            term,
        )
    })();
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

/// Carries out a confirmed plan with the session, with progress, and reports what was and
/// was not done. `by` is the session and its client.
pub(crate) fn write_and_report(
    args: &ApplyArgs,
    rt: &tokio::runtime::Runtime,
    by: (&Session, &kube::Client),
    (plan, desired, observed): (
        &Plan,
        &regops_core::desired::Desired,
        &regops_core::observed::Observed,
    ),
    lock: Option<&Lock>,
    term: &Term,
) -> Outcome {
    let (session, client) = by;
    let total = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Noop)
        .count();
    let progress = crate::output::Progress::new(term, total, args.output == Format::Text);
    let written = rt.block_on(session.write(
        client,
        plan,
        desired,
        observed,
        lock,
        &|item| progress.item(item),
        &|| false,
    ));
    progress.finish();
    if let Some(w) = &written.events_warning {
        term.note(&format!("warning: {}", regops_spec::untrusted::terminal(w)));
    }
    term.view(
        &report::ApplyView {
            plan,
            report: &written.report,
            dry_run: args.dry_run.is_some(),
        },
        args.output,
        &Style::default(),
    );
    if written.lock_lost {
        term.note(
            "error: the lock was lost during the apply (another apply took it over, or it could not be renewed); writes not yet started were not made. Run apply again.",
        );
    }
    let failed = written.report.failed() > 0 || !plan.conflicts.is_empty() || written.lock_lost;
    Ok(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// One cluster of a fleet apply: its client and what the session staged.
struct Reached {
    client: kube::Client,
    staged: Staged,
}

/// Connects to one cluster and stages it with the session (read and plan; when there is
/// something to write, its Lease and a second read under it).
async fn stage(
    session: &Session,
    args: &ApplyArgs,
    prepared: &Prepared,
    m: &crate::fleet::Member,
    term: &Term,
) -> Result<Reached, regops_core::fleet::ClusterError> {
    use crate::fleet::error;
    let only = prepared.only.as_ref();
    let (client, target) = m.connect().await.map_err(error)?;
    let read = async || {
        let observed = crate::observe::from_cluster(&client, &target, &m.spec, &session.spec, only)
            .await
            .map_err(error)?;
        let (desired, plan) = prepared
            .plan_with(&m.spec, &observed, &target.to_string(), only)
            .await;
        Ok((observed, desired, plan))
    };
    let take = async || {
        take_lease(
            session,
            args,
            &client,
            m.lock_connect(),
            Some(&m.name),
            term,
        )
        .await
        .map_err(error)
    };
    let staged = session.stage(read, take).await?;
    Ok(Reached { client, staged })
}

/// `apply` over the spec's clusters: every cluster read and planned at once under its own
/// Lease, one plan shown and one confirmation, then every cluster written at once. A cluster
/// that cannot be reached or refuses is reported; the others are still applied.
fn apply_fleet(
    args: &ApplyArgs,
    prepared: &Prepared,
    members: &[crate::fleet::Member],
    term: &Term,
) -> Outcome {
    use regops_core::fleet::{Applied, Member};
    let rt = runtime()?;
    crate::retry::set_request_timeout(args.run.cluster.request_timeout);
    let session = &session(args, &prepared.loaded.name)?;
    let limit = usize::from(args.run.cluster_concurrency);
    let staged: Vec<Member<Reached>> = rt.block_on(crate::fleet::each(members, limit, |m| {
        stage(session, args, prepared, m, term)
    }));
    let any_changes = staged
        .iter()
        .any(|m| m.result.as_ref().is_ok_and(|r| r.staged.plan.has_changes()));
    show_fleet_plan(&staged, args, prepared, term);
    let dry_run = args.dry_run.is_some();
    if any_changes && !args.yes && !dry_run {
        let answer = confirm(term);
        if !matches!(answer, Ok(true)) {
            let locks = staged
                .into_iter()
                .filter_map(|m| m.result.ok().and_then(|r| r.staged.lock));
            rt.block_on(crate::session::release_all(locks));
            answer?;
            term.note("Apply cancelled; nothing was written to any cluster.");
            return Ok(ExitStatus::Failure);
        }
    }
    let total = staged
        .iter()
        .filter_map(|m| m.result.as_ref().ok())
        .flat_map(|r| r.staged.plan.changes.iter())
        .filter(|c| c.action != Action::Noop)
        .count();
    let progress =
        crate::output::Progress::new(term, total, args.output == Format::Text && any_changes);
    let progress = &progress;
    let applied: Vec<Member<Applied>> = rt.block_on(
        futures::stream::iter(staged.into_iter().map(|m| async move {
            let cluster = m.cluster;
            let result = match m.result {
                Ok(r) => Ok(write(session, r, &cluster, progress, term).await),
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
    staged: &[regops_core::fleet::Member<Reached>],
    args: &ApplyArgs,
    prepared: &Prepared,
    term: &Term,
) {
    let plans: Vec<regops_core::fleet::Member<&Plan>> = staged
        .iter()
        .map(|m| regops_core::fleet::Member {
            cluster: m.cluster.clone(),
            result: m
                .result
                .as_ref()
                .map(|r| &r.staged.plan)
                .map_err(Clone::clone),
        })
        .collect();
    let (spec, detail) = (prepared.loaded.name.as_str(), args.detail.view());
    if args.output == Format::Text {
        let text = regops_core::fleet::plan_text(spec, &plans, term.color_stdout(), detail);
        term.stdout(&text);
    } else {
        let text = regops_core::fleet::plan_text(spec, &plans, term.color, detail);
        term.note_view(text.trim_end());
    }
}

/// Writes one staged cluster's plan with the session, then releases its Lease.
async fn write(
    session: &Session,
    r: Reached,
    cluster: &str,
    progress: &crate::output::Progress,
    term: &Term,
) -> regops_core::fleet::Applied {
    let Reached { client, staged } = r;
    let written = session
        .write(
            &client,
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
    regops_core::fleet::Applied {
        plan: staged.plan,
        report: written.report,
        lock_lost: written.lock_lost,
    }
}

/// `apply --dry-run=client`: nothing is sent; the plan is shown as `regops plan` shows it (its
/// text, or with `-o json` the plan's JSON), and the exit code is the plan's.
pub(super) fn as_plan(a: ApplyArgs) -> crate::cli::PlanArgs {
    crate::cli::PlanArgs {
        run: a.run,
        output: a.output,
        live_state: None,
        detail: a.detail,
        max_bytes: regops_core::view::MARKDOWN_BUDGET,
        out: None,
    }
}
