//! `regops rekey`: its flags, and what it says ([`crate::ops::rekey`] does the work).

use crate::ExitStatus;
use crate::cli::RekeyArgs;
use crate::failure::Outcome;
use crate::output::Term;

pub(super) fn rekey(args: RekeyArgs, term: &Term) -> Outcome {
    let done = crate::ops::rekey::rekey(&args.spec.options(), &args.identity.identity, term)?;
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    if done.credentials == 0 {
        term.note("no encrypted credentials to rekey");
    } else {
        term.note(&format!(
            "re-encrypted {} credential{} to {} recipient{}",
            done.credentials,
            plural(done.credentials),
            done.recipients,
            plural(done.recipients)
        ));
    }
    Ok(ExitStatus::Success)
}
