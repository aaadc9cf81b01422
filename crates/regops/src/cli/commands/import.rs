//! `regops import`: its flags, and what it prints ([`crate::ops::import`] does the work).

use crate::ExitStatus;
use crate::cli::ImportArgs;
use crate::failure::Outcome;
use crate::ops::import::Imported;
use crate::output::Term;

pub(super) fn import(args: ImportArgs, term: &Term) -> Outcome {
    match crate::ops::import::import(&args.options())? {
        Imported::DryRun { spec, summary } => {
            term.stdout(&spec);
            term.note(summary.trim_end());
        }
        Imported::Written { summary } => term.note(summary.trim_end()),
    }
    Ok(ExitStatus::Success)
}
