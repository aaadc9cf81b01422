//! `regops encrypt`: a credential's password, read without echo, encrypted to the spec's
//! recipients and written into the spec (or an `ageFile`).

use std::io::{IsTerminal, Read};
use std::path::Path;

use regops_spec::{Diagnostic, Diagnostics};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::ExitStatus;
use crate::atomic::Existing;
use crate::atomic::write_file;
use crate::cli::EncryptArgs;
use crate::failure::{Failure, Outcome};
use crate::inputs::crypto;
use crate::ops::load::{default_name, read_sources};
use crate::output::Term;
use regops_spec::edit::{self, NewPassword};

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

// Kept whole (over 80 lines): the edit in its order: find, check, read the secret, encrypt,
// write, verify; each step needs the last's results.
pub(super) fn encrypt(args: EncryptArgs, term: &Term) -> Outcome {
    let sources = read_sources(&args.spec.options())?;
    let (file, cred_node) = edit::find_credential(&sources, &args.credential).map_err(|e| {
        Failure::error(e).with_help(format!(
            "add it first:\n  credentials:\n    {}:\n      username: <user>",
            args.credential
        ))
    })?;
    // A missing password (this credential's or another's, still to be encrypted) and this
    // credential's plaintext password are what this command repairs; any other problem in the
    // spec stops it.
    let spec = match regops_spec::load(sources.clone(), &default_name(&args.spec.files)) {
        Ok(l) => l.spec,
        Err(inv) => {
            let within = |d: &Diagnostic| {
                d.primary().is_some_and(|l| {
                    l.file == file && l.start >= cred_node.loc.start && l.end <= cred_node.loc.end
                }) || d
                    .message
                    .contains(&format!("credential `{}`", args.credential))
            };
            let blocking: Vec<Diagnostic> = inv
                .diagnostics
                .iter()
                .filter(|d| d.severity == regops_spec::Severity::Error)
                .filter(|d| {
                    !(d.code == "spec::missing-credential"
                        || (d.code == "spec::plaintext-secret" && within(d)))
                })
                .cloned()
                .collect();
            if !blocking.is_empty() {
                let mut diagnostics = Diagnostics::default();
                blocking.into_iter().for_each(|d| diagnostics.push(d));
                return Err(Failure::Spec {
                    sources: inv.sources,
                    diagnostics,
                });
            }
            inv.partial
        }
    };
    let recipients =
        crypto::parse_recipients(&spec.recipients).map_err(|diagnostics| Failure::Spec {
            sources: sources.clone(),
            diagnostics,
        })?;
    if recipients.is_empty() {
        return Err(Failure::Message {
            message: "the spec lists no `recipients` to encrypt to".into(),
            help: Some(
                "add your public key (`regops keygen --public KEYFILE`) under `recipients:`".into(),
            ),
        });
    }
    let secret = read_new_secret(&args.credential)?;
    let armor = crypto::encrypt(&secret, &recipients).map_err(Failure::error)?;
    drop(secret);
    let spec_path = sources
        .get(file)
        .map(|f| f.path.clone())
        .unwrap_or_default();
    let age_file = args
        .age_file
        .as_ref()
        .map(|p| p.to_string_lossy().to_string());
    // Confined like every path the spec names: the spec will name this file as `ageFile`.
    let age_path = age_file
        .as_ref()
        .map(|p| sources.resolve(cred_node.loc, Path::new(p)))
        .transpose()
        .map_err(|e| Failure::caused("--age-file", e).with_help(regops_spec::trust::PATH_HELP))?;
    let new = match (&age_file, &age_path) {
        (Some(p), Some(full)) => {
            write_file(full, armor.as_bytes(), Existing::Replace)?;
            NewPassword::AgeFile(p)
        }
        _ => NewPassword::Armored(&armor),
    };
    let e = edit::set_password(&sources, &args.credential, &new).map_err(Failure::error)?;
    let format = sources
        .get(file)
        .map(|f| f.format)
        .unwrap_or(regops_spec::SpecFormat::Yaml);
    for (_, text) in edit::apply(&sources, vec![e]) {
        edit::verify(format, &text, &args.credential, &new).map_err(Failure::error)?;
        write_file(&spec_path, text.as_bytes(), Existing::Replace)?;
    }
    term.note(&format!(
        "encrypted credential `{}` to {} recipient{}; wrote {}",
        args.credential,
        recipients.len(),
        if recipients.len() == 1 { "" } else { "s" },
        age_path.map_or_else(
            || spec_path.display().to_string(),
            |p| format!("{} and {}", p.display(), spec_path.display())
        )
    ));
    Ok(ExitStatus::Success)
}
