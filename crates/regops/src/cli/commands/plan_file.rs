//! Saved plans: `regops plan --out FILE` records a plan with what it was made from, `regops
//! apply FILE` carries out exactly that plan or nothing, `regops show FILE` renders it.

use std::path::Path;

use super::apply::{show_plan, unchanged, write_and_report};
use crate::ExitStatus;
use crate::cli::{ApplyArgs, PlanArgs, ShowArgs};
use crate::failure::{Failure, Outcome};
use crate::ops::plan_file::{SavedApply, stage_saved};
use crate::ops::prepared::Prepared;
use crate::ops::session::Staged;
use crate::output::Term;

/// `plan --out`: the plan made and saved ([`crate::ops::plan_file::plan_and_save`]), returned to
/// be shown as `plan` shows it.
pub(super) fn plan_and_save(
    args: &PlanArgs,
    prepared: &Prepared,
    out: &Path,
    term: &Term,
) -> Result<regops_core::plan::Plan, Failure> {
    let plan = crate::ops::plan_file::plan_and_save(&args.run.options(), prepared, out)?;
    term.note(&format!(
        "Saved the plan to {}: `regops apply {}` carries out exactly this plan, or nothing if \
         the spec or the cluster has moved.",
        out.display(),
        out.display()
    ));
    Ok(plan)
}

/// `regops show FILE`: the plan as `plan` shows it, after what it was made from. Exit 0 once
/// shown (1 if the file cannot be read): only `plan` and `drift` exit 2.
pub(super) fn show(args: ShowArgs, term: &Term) -> Outcome {
    let saved = crate::ops::plan_file::read(&args.file).map_err(|e| Failure::msg(e.to_string()))?;
    term.view(
        &regops_core::saved::SavedPlanView(&saved),
        args.output,
        &regops_core::format::Style {
            color: term.color_stdout(),
            detail: args.detail.view(),
            max_bytes: args.max_bytes,
        },
    );
    // Showing is done once the plan is shown, whatever it holds: its changes were `plan`'s
    // exit code to report (2), its conflicts too (1), when it was made.
    Ok(ExitStatus::Success)
}

/// `regops apply FILE`: exactly the saved plan, or nothing ([`crate::ops::plan_file::stage_saved`]
/// checks it), carried out as a fresh plan is.
pub(super) fn apply_saved(args: ApplyArgs, term: &Term) -> Outcome {
    let Some(path) = args.plan_file.clone() else {
        return Err(Failure::msg("no saved plan given"));
    };
    let SavedApply {
        saved,
        rt,
        session,
        conn,
        staged:
            Staged {
                observed,
                desired,
                plan,
                lock,
            },
    } = stage_saved(args.options(), &path, term)?;
    // What is carried out is the saved plan, its writes as saved (the plan made again only
    // proved it current); `desired` gives the Secrets' data.
    drop(plan);
    let result = (|| {
        if !saved.plan.has_changes() {
            return Ok(unchanged(&saved.plan, &args, term));
        }
        show_plan(&saved.plan, &args, term);
        // A saved plan was reviewed when it was made (and is refused if anything it was made
        // from moved): it is applied without asking, as terraform applies one.
        write_and_report(
            &args,
            &rt,
            (&session, &conn),
            (&saved.plan, &desired, &observed),
            lock.as_ref(),
            term,
        )
    })();
    if let Some(lock) = lock {
        rt.block_on(lock.release());
    }
    result
}
