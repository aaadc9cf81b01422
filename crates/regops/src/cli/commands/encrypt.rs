//! `regops encrypt`: its flags, the password prompt (without echo) and what it says;
//! [`crate::ops::encrypt`] encrypts it to the spec's recipients and writes it into the spec.

use std::io::{IsTerminal, Read};

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::ExitStatus;
use crate::cli::EncryptArgs;
use crate::failure::{Failure, Outcome};
use crate::output::Term;

/// Reads the new secret: from the terminal without echo (asked twice), or all of standard input.
pub(super) fn read_new_secret(credential: &str) -> Result<SecretString, Failure> {
    let stdin = std::io::stdin();
    let value = if stdin.is_terminal() {
        // One terminal session for both prompts: echo stays off between them.
        let fail = |e: std::io::Error| Failure::caused("cannot read the password", e);
        let tty = crate::output::Hidden::open().map_err(fail)?;
        let first = tty
            .ask(&format!("Password for credential `{credential}`: "))
            .map_err(fail)?;
        let again = tty.ask("Again: ").map_err(fail)?;
        drop(tty);
        if *first != *again {
            return Err(Failure::msg(
                "the two passwords differ; nothing was written",
            ));
        }
        first
    } else {
        let mut buf = Zeroizing::new(String::new());
        stdin
            .lock()
            .take(64 * 1024)
            .read_to_string(&mut buf)
            .map_err(|e| Failure::caused("cannot read the password from standard input", e))?;
        if buf.ends_with('\n') {
            buf.pop();
            if buf.ends_with('\r') {
                buf.pop();
            }
        }
        buf
    };
    if value.is_empty() {
        return Err(Failure::msg("the password is empty; nothing was written"));
    }
    Ok(SecretString::from(value.as_str().to_owned()))
}

pub(super) fn encrypt(args: EncryptArgs, term: &Term) -> Outcome {
    let done = crate::ops::encrypt::encrypt(
        &args.spec.options(),
        &args.credential,
        args.age_file.as_deref(),
        &|| read_new_secret(&args.credential),
    )?;
    term.note(&format!(
        "encrypted credential `{}` to {} recipient{}; wrote {}",
        args.credential,
        done.recipients,
        if done.recipients == 1 { "" } else { "s" },
        done.wrote
    ));
    Ok(ExitStatus::Success)
}
