//! `regops plan`: the changes an apply would make, against a cluster or a state file.

use regops_core::warning::{Warning, WarningKind};

use crate::ExitStatus;
use crate::cli::PlanArgs;
use crate::failure::{Failure, Outcome};
use crate::ops::fleet::fleet_members;
use crate::ops::load::prepare;
use crate::ops::load::read_cluster;
use crate::ops::prepared::Prepared;
use crate::output::Term;
use regops_core::format::Style;

/// A state file read as a cluster, with a warning for each object it could not use.
fn read_state_file(
    path: &std::path::Path,
) -> Result<(regops_core::observed::Observed, String, Vec<Warning>), Failure> {
    let (observed, skipped) = crate::cluster::read::from_file(path).map_err(Failure::error)?;
    let warnings = skipped
        .into_iter()
        .map(|s| {
            Warning::new(
                WarningKind::SkippedObject,
                format!("object {}", s.index + 1),
                regops_spec::untrusted::Message::default()
                    .quote(path.display().to_string())
                    .and(format!(": object {} skipped: ", s.index + 1))
                    .quote(s.reason),
            )
        })
        .collect();
    Ok((observed, format!("state file {}", path.display()), warnings))
}

/// How the plan's text and Markdown views are drawn.
fn style(args: &PlanArgs, term: &Term) -> Style {
    Style {
        color: term.color_stdout(),
        detail: args.detail.view(),
        max_bytes: args.max_bytes,
    }
}

pub(super) fn plan(args: PlanArgs, term: &Term) -> Outcome {
    let run = args.run.options();
    let prepared = prepare(&run, term)?;
    if let Some(members) = fleet_members(&run, &prepared)? {
        if args.out.is_some() {
            return Err(Failure::Message {
                message: "--out: a spec with `clusters` has no saved plans".into(),
                help: Some("plan and apply each cluster with its own spec".into()),
            });
        }
        return plan_fleet(&args, &prepared, &members, term);
    }
    let plan = match &args.out {
        Some(out) => super::plan_file::plan_and_save(&args, &prepared, out, term)?,
        None => {
            let (observed, target, extra_warnings) = match &args.live_state {
                Some(path) => read_state_file(path)?,
                None => {
                    let (observed, target) = read_cluster(&run.cluster, &prepared)?;
                    (observed, target, Vec::new())
                }
            };
            let (desired, mut plan) =
                crate::cluster::client::runtime()?.block_on(prepared.plan(&observed, &target));
            plan.warn(extra_warnings);
            // The cluster as read and the desired state are not needed to show the plan: free
            // them before the view is built, so the two never add up.
            drop((desired, observed));
            plan
        }
    };
    term.view(
        &regops_core::view::PlanView(&plan),
        args.output,
        &style(&args, term),
    );
    Ok(if !plan.conflicts.is_empty() {
        ExitStatus::Failure
    } else if plan.has_changes() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    })
}

/// `plan` over the spec's clusters, at once: one report grouped by cluster. A state file
/// stands for one cluster, named with `--cluster`.
fn plan_fleet(
    args: &PlanArgs,
    prepared: &Prepared,
    members: &[crate::ops::fleet::Member],
    term: &Term,
) -> Outcome {
    let only = prepared.only.as_ref();
    let results =
        match &args.live_state {
            Some(path) => {
                let [member] = members else {
                    return Err(Failure::Message {
                        message:
                            "--live-state: a state file is one cluster, and the spec lists several"
                                .into(),
                        help: Some("name the cluster it was read from with --cluster NAME".into()),
                    });
                };
                let (observed, target, warnings) = read_state_file(path)?;
                let (_, mut plan) = crate::cluster::client::runtime()?
                    .block_on(prepared.plan_with(&member.spec, &observed, &target, only));
                plan.warn(warnings);
                vec![regops_core::fleet::PerCluster {
                    cluster: member.name.clone(),
                    result: Ok(plan),
                }]
            }
            None => {
                crate::ops::fleet::plan_each(&args.run.options(), prepared, members, &|_, plan| {
                    plan
                })?
            }
        };
    let spec = prepared.loaded.name.as_str();
    term.view(
        &regops_core::fleet::FleetPlanView {
            spec,
            source: &prepared.source,
            members: &results,
        },
        args.output,
        &style(args, term),
    );
    let failed = results
        .iter()
        .any(|m| m.result.as_ref().map_or(true, |p| !p.conflicts.is_empty()));
    Ok(crate::ops::fleet::exit(
        failed,
        regops_core::fleet::any_changes(&results),
    ))
}
