//! `regops apply`: the flags turned into an apply [`Session`]; the plan shown and confirmed;
//! the session's writes with progress; the report. The session's steps (read without the
//! Lease, the Lease, the fenced writes, the Events) are [`crate::ops::session`]'s.

use std::io::IsTerminal;

use regops_core::format::{Format, Style};
use regops_core::plan::{Action, Plan};
use regops_core::report;

use crate::ExitStatus;
use crate::cli::ApplyArgs;
use crate::cluster::client::runtime;
use crate::cluster::lock::Lock;
use crate::failure::{Failure, Outcome};
use crate::ops::load::prepare;
use crate::ops::prepared::Prepared;
use crate::ops::session::{Session, Staged};
use crate::output::Term;

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
        .map_err(|e| Failure::caused("cannot read the answer", e))?;
    Ok(answer.trim() == "yes")
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
    let opts = args.options();
    let prepared = prepare(&opts.run, term)?;
    if let Some(members) = crate::ops::fleet::fleet_members(&opts.run, &prepared)? {
        return apply_fleet(&args, &prepared, &members, term);
    }
    let rt = runtime()?;
    let session = crate::ops::apply::session(&opts, &prepared.loaded.name)?;
    let (conn, staged) = crate::ops::apply::stage_cluster(&rt, &session, &opts, &prepared, term)?;
    let Staged {
        observed,
        desired,
        plan,
        lock,
    } = staged;
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
            (&session, &conn),
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
/// was not done. `by` is the session and its connection.
pub(crate) fn write_and_report(
    args: &ApplyArgs,
    rt: &tokio::runtime::Runtime,
    by: (&Session, &crate::cluster::Connection),
    (plan, desired, observed): (
        &Plan,
        &regops_core::desired::Desired,
        &regops_core::observed::Observed,
    ),
    lock: Option<&Lock>,
    term: &Term,
) -> Outcome {
    let (session, conn) = by;
    let total = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Noop)
        .count();
    let progress = crate::output::Progress::new(term, total, args.output == Format::Text);
    let written = rt.block_on(session.write(
        conn,
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

/// `apply` over the spec's clusters: every cluster read and planned at once under its own
/// Lease, one plan shown and one confirmation, then every cluster written at once. A cluster
/// that cannot be reached or refuses is reported; the others are still applied.
fn apply_fleet(
    args: &ApplyArgs,
    prepared: &Prepared,
    members: &[crate::ops::fleet::Member],
    term: &Term,
) -> Outcome {
    use regops_core::fleet::Applied;
    let rt = runtime()?;
    let opts = args.options();
    let session = &crate::ops::apply::session(&opts, &prepared.loaded.name)?;
    let limit = usize::from(opts.run.cluster_concurrency);
    let staged = rt.block_on(crate::ops::apply::stage_fleet(
        session, &opts, prepared, members, term,
    ));
    let any_changes = staged
        .iter()
        .any(|m| m.result.as_ref().is_ok_and(|r| r.staged.plan.has_changes()));
    show_fleet_plan(&staged, args, prepared, term);
    let dry_run = args.dry_run.is_some();
    if any_changes && !args.yes && !dry_run {
        let answer = confirm(term);
        if !matches!(answer, Ok(true)) {
            rt.block_on(crate::ops::apply::release_fleet(staged));
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
    let applied = rt.block_on(crate::ops::apply::write_fleet(
        session, staged, limit, &progress, term,
    ));
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
    staged: &[regops_core::fleet::PerCluster<crate::ops::apply::Reached>],
    args: &ApplyArgs,
    prepared: &Prepared,
    term: &Term,
) {
    let plans: Vec<regops_core::fleet::PerCluster<&Plan>> = staged
        .iter()
        .map(|m| regops_core::fleet::PerCluster {
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
