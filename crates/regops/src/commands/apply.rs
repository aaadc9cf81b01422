//! `regops apply`: take the lock, read the cluster, plan, confirm, write, report.

use std::io::IsTerminal;

use regops_core::plan::{Action, Plan};
use regops_core::report;

use super::load::{Prepared, prepare, runtime};
use super::{Failure, Outcome};
use crate::ExitStatus;
use crate::cli::{ApplyArgs, ReportFormat};
use crate::output::Term;

/// This process in the Lease: the host (a pod's name) and the process id.
pub(super) fn holder_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "regops".into());
    format!("{host}/{}", std::process::id())
}

fn confirm(term: &Term) -> Result<bool, Failure> {
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

/// Takes this spec's lock (a Lease), renewed on its own thread with its own client until
/// released. A dry run takes none: it writes nothing.
fn take_lock(
    args: &ApplyArgs,
    rt: &tokio::runtime::Runtime,
    client: &kube::Client,
    spec_name: &str,
    term: &Term,
) -> Result<Option<crate::lock::Lock>, Failure> {
    if args.dry_run.is_some() {
        return Ok(None);
    }
    let name = args
        .lock_name
        .clone()
        .unwrap_or_else(|| format!("regops-{spec_name}"));
    let warn = |m: &str| term.note(&format!("warning: {m}"));
    let connect = super::load::lock_connect(&args.run.cluster);
    let settings = crate::lock::Settings {
        namespace: &args.lock_namespace,
        name: &name,
        holder: &holder_identity(),
        duration_secs: i32::from(args.lock_duration),
        wait: Some(std::time::Duration::from_secs(args.lock_wait)),
        poll: std::time::Duration::from_millis(250),
        on_wait: &|holder: &str| {
            term.note(&format!(
                "waiting up to {} s for the lock: another apply holds it (`{holder}`)",
                args.lock_wait
            ));
        },
    };
    rt.block_on(crate::lock::acquire(client, &settings, &warn, connect))
        .map(Some)
        .map_err(|e| Failure::Message {
            help: e.help(),
            message: e.to_string(),
        })
}

/// Shows the plan: on stdout with the text report, on stderr (coloured by stderr's setting)
/// when the report on stdout is JSON, so `regops apply | tee log` gets no escapes.
fn show_plan(plan: &Plan, args: &ApplyArgs, term: &Term) {
    let detail = args.detail.view();
    if args.output == ReportFormat::Text {
        term.stdout(&regops_core::view::text(plan, term.color_stdout(), detail));
    } else {
        term.note(regops_core::view::text(plan, term.color, detail).trim_end());
    }
}

pub(super) fn apply(args: ApplyArgs, term: &Term) -> Outcome {
    let prepared = prepare(&args.run, term)?;
    let rt = runtime()?;
    let (client, target) = super::load::connect(&args.run.cluster, &rt)?;
    // The lock is taken before reading, so the plan is made from a cluster no other apply of
    // this spec is writing to.
    let lock = take_lock(&args, &rt, &client, &prepared.loaded.name, term)?;
    let result = read_plan_write(&args, prepared, &rt, &client, &target, lock.as_ref(), term);
    if let Some(lock) = lock {
        rt.block_on(lock.release());
    }
    result
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
    let opts = crate::apply::Options {
        spec: loaded.name.clone(),
        commit: prepared.source.commit.clone(),
        prune: args.prune,
        dry_run,
        force_conflicts: args.force_conflicts,
        concurrency: usize::from(args.concurrency),
    };
    let observed = rt.block_on(crate::observe::from_cluster(
        client,
        target,
        &loaded.spec,
        &loaded.name,
        prepared.only.as_ref(),
    ))?;
    let (desired, plan) = prepared.plan(&observed, &target.to_string());
    show_plan(&plan, args, term);
    let in_conflict = !plan.conflicts.is_empty();
    if !plan.has_changes() {
        if args.output == ReportFormat::Json {
            term.stdout(&report::apply_json(
                &plan,
                &report::Report::default(),
                dry_run,
            ));
        }
        return Ok(if in_conflict {
            ExitStatus::Failure
        } else {
            ExitStatus::Success
        });
    }
    if !args.yes && !dry_run && !confirm(term)? {
        term.note("Apply cancelled; nothing was written.");
        return Ok(ExitStatus::Failure);
    }
    let total = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Noop)
        .count();
    let progress = crate::output::Progress::new(term, total, args.output == ReportFormat::Text);
    let lost = || lock.is_some_and(crate::lock::Lock::lost);
    let report = rt.block_on(crate::apply::run(
        client,
        &plan,
        &desired,
        &observed,
        &opts,
        &|item| progress.item(item),
        &lost,
    ));
    progress.finish();
    term.stdout(&match args.output {
        ReportFormat::Text => report::apply_text(&report, dry_run, plan.conflicts.len()),
        ReportFormat::Json => report::apply_json(&plan, &report, dry_run),
    });
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
