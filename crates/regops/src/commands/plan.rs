//! `regops plan`: the changes an apply would make, against a cluster or a state file.

use regops_core::warning::{Warning, WarningKind};

use super::load::{prepare, read_cluster};
use super::{Failure, Outcome};
use crate::ExitStatus;
use crate::cli::{OutputFormat, PlanArgs};
use crate::output::Term;

pub(super) fn plan(args: PlanArgs, term: &Term) -> Outcome {
    let prepared = prepare(&args.run, term)?;
    let mut extra_warnings = Vec::new();
    let (observed, target) = match &args.live_state {
        Some(path) => {
            let (observed, skipped) =
                crate::observe::from_file(path).map_err(|e| Failure::msg(e.to_string()))?;
            for s in skipped {
                extra_warnings.push(Warning::new(
                    WarningKind::SkippedObject,
                    format!("object {}", s.index + 1),
                    format!(
                        "{}: object {} skipped: {}",
                        path.display(),
                        s.index + 1,
                        s.reason
                    ),
                ));
            }
            (observed, format!("state file {}", path.display()))
        }
        None => read_cluster(&args.run, &prepared)?,
    };
    let (desired, mut plan) = prepared.plan(&observed, &target);
    plan.warn(extra_warnings);
    // The cluster as read and the desired state are not needed to show the plan: free them
    // before the view is built, so the two never add up.
    drop((desired, observed));
    match args.output {
        OutputFormat::Text => term.stdout(&regops_core::view::text(
            &plan,
            term.color_stdout(),
            args.detail.view(),
        )),
        // Streamed: at 10,000 namespaces the JSON plan is tens of megabytes.
        OutputFormat::Json => term.stdout_with(|w| regops_core::view::write_json(&plan, w)),
        OutputFormat::Markdown => term.stdout(&regops_core::view::markdown(&plan, args.max_bytes)),
    }
    Ok(if !plan.conflicts.is_empty() {
        ExitStatus::Failure
    } else if plan.has_changes() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    })
}
