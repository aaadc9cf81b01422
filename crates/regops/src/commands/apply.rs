//! `regops apply`: take the lock, read the cluster, plan, confirm, write, report.

use std::io::IsTerminal;

use regops_core::report;

use super::load::{Prepared, prepare, runtime};
use super::{Failure, Outcome};
use crate::ExitStatus;
use crate::cli::{ApplyArgs, ReportFormat};
use crate::output::Term;

pub(super) fn holder_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "regops".into());
    format!("{host}/{}", std::process::id())
}

pub(super) fn confirm(term: &Term) -> Result<bool, Failure> {
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

pub(super) fn apply(args: ApplyArgs, term: &Term) -> Outcome {
    let Prepared {
        loaded,
        only,
        logins,
        source,
    } = prepare(&args.run, term)?;
    let dry_run = args.dry_run.is_some();
    let opts = crate::apply::Options {
        spec: loaded.name.clone(),
        commit: source.commit.clone(),
        prune: args.prune,
        dry_run,
        force_conflicts: args.force_conflicts,
        concurrency: usize::from(args.concurrency),
    };
    let rt = runtime()?;
    crate::retry::set_request_timeout(args.run.cluster.request_timeout);
    let (client, target) = rt.block_on(crate::cluster::connect(
        args.run.cluster.kubeconfig.as_deref(),
        args.run.cluster.context.as_deref(),
    ))?;
    // The lock is taken before reading, so the plan is made from a cluster no other apply of
    // this spec is writing to.
    let lock = if dry_run {
        None
    } else {
        let name = args
            .lock_name
            .clone()
            .unwrap_or_else(|| format!("regops-{}", loaded.name));
        let warn = |m: &str| term.note(&format!("warning: {m}"));
        Some(
            rt.block_on(crate::lock::acquire(
                &client,
                &args.lock_namespace,
                &name,
                &holder_identity(),
                i32::from(args.lock_duration),
                std::time::Duration::from_secs(args.lock_wait),
                &warn,
                {
                    let kubeconfig = args.run.cluster.kubeconfig.clone();
                    let context = args.run.cluster.context.clone();
                    Box::new(move || {
                        Box::pin(async move {
                            crate::cluster::connect(kubeconfig.as_deref(), context.as_deref())
                                .await
                                .ok()
                                .map(|(client, _)| client)
                        })
                    })
                },
            ))
            .map_err(|e| Failure::Message {
                help: e.help(),
                message: e.to_string(),
            })?,
        )
    };
    let result = (|| -> Outcome {
        let observed = rt.block_on(crate::observe::from_cluster(
            &client,
            &target,
            &loaded.spec,
            &loaded.name,
        ))?;
        let desired =
            regops_core::desired::compute(&loaded.spec, &logins, &observed, only.as_ref());
        let plan = regops_core::plan::compute(
            &loaded.name,
            &target.to_string(),
            source.clone(),
            &desired,
            &observed,
            only.as_ref(),
        );
        {
            // Coloured by the stream it goes to: stdout's setting for the text report, stderr's
            // when the report on stdout is JSON (`regops apply | tee log` gets no escapes).
            if args.output == ReportFormat::Text {
                term.stdout(&regops_core::view::text(&plan, term.color_stdout()));
            } else {
                term.note(regops_core::view::text(&plan, term.color).trim_end());
            }
        }
        if !plan.has_changes() {
            if args.output == ReportFormat::Json {
                term.stdout(&report::apply_json(
                    &plan,
                    &report::Report::default(),
                    dry_run,
                ));
            }
            return Ok(if plan.conflicts.is_empty() {
                ExitStatus::Success
            } else {
                ExitStatus::Failure
            });
        }
        if !args.yes && !dry_run && !confirm(term)? {
            term.note("Apply cancelled; nothing was written.");
            return Ok(ExitStatus::Failure);
        }
        let total = plan
            .changes
            .iter()
            .filter(|c| c.action != regops_core::plan::Action::Noop)
            .count();
        let progress = crate::output::Progress::new(term, total, args.output == ReportFormat::Text);
        let report = rt.block_on(crate::apply::run(
            &client,
            &plan,
            &desired,
            &observed,
            &opts,
            &|item| progress.item(item),
            &|| lock.as_ref().is_some_and(crate::lock::Lock::lost),
        ));
        progress.finish();
        match args.output {
            ReportFormat::Text => {
                term.stdout(&report::apply_text(&report, dry_run, plan.conflicts.len()))
            }
            ReportFormat::Json => term.stdout(&report::apply_json(&plan, &report, dry_run)),
        }
        let lost = lock.as_ref().is_some_and(crate::lock::Lock::lost);
        if lost {
            term.note(
                "error: the lock was lost during the apply (another apply took it over, or it could not be renewed); writes not yet started were not made. Run apply again.",
            );
        }
        Ok(
            if report.failed() > 0 || !plan.conflicts.is_empty() || lost {
                ExitStatus::Failure
            } else {
                ExitStatus::Success
            },
        )
    })();
    if let Some(lock) = lock {
        rt.block_on(lock.release());
    }
    result
}
