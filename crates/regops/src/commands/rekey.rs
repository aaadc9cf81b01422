//! `regops rekey`: every encrypted credential re-encrypted to the spec's current recipients,
//! all or none.

use std::collections::BTreeMap;

use regops_spec::SecretSource;

use crate::ExitStatus;
use crate::atomic::Existing;
use crate::atomic::write_file;
use crate::cli::RekeyArgs;
use crate::crypto;
use crate::edit::{self, NewPassword};
use crate::failure::{Failure, Outcome};
use crate::load::{load, resolve_logins};
use crate::output::Term;

// Kept whole (over 80 lines): all-or-nothing: everything is decrypted and re-encrypted before
// the first write.
pub(super) fn rekey(args: RekeyArgs, term: &Term) -> Outcome {
    let loaded = load(&args.spec.options(), term)?;
    let recipients =
        crypto::parse_recipients(&loaded.spec.recipients).map_err(|diagnostics| Failure::Spec {
            sources: loaded.sources.clone(),
            diagnostics,
        })?;
    if recipients.is_empty() {
        return Err(Failure::msg(
            "the spec lists no `recipients`; rekeying would lock everyone out",
        ));
    }
    let encrypted: Vec<&str> = loaded
        .spec
        .credentials
        .values()
        .filter(|c| {
            matches!(
                c.password,
                SecretSource::Age(_) | SecretSource::AgeFile { .. }
            )
        })
        .map(|c| c.name.as_str())
        .collect();
    // A sops file is encrypted to its own recipients (its `sops.age`), not to the spec's:
    // sops's `updatekeys` is the tool that changes them.
    for cred in loaded.spec.credentials.values() {
        if matches!(cred.password, SecretSource::Sops { .. }) || cred.username_sops.is_some() {
            term.note(&format!(
                "credential `{}` is read from a sops file: rekey leaves it alone (run `sops updatekeys` on the file to change who can decrypt it)",
                cred.name.value
            ));
        }
    }
    if encrypted.is_empty() {
        term.note("no encrypted credentials to rekey");
        return Ok(ExitStatus::Success);
    }
    // Decrypt everything first: either all credentials are rekeyed or none.
    let logins = resolve_logins(&loaded, &args.identity.identity, Some(&encrypted))?;
    let mut armors: BTreeMap<&str, String> = BTreeMap::new();
    for name in &encrypted {
        let login = logins
            .get(*name)
            .ok_or_else(|| Failure::msg(format!("credential `{name}` was not decrypted")))?;
        armors.insert(
            name,
            crypto::encrypt(&login.password, &recipients)
                .map_err(|e| Failure::msg(e.to_string()))?,
        );
    }
    let mut edits = Vec::new();
    let mut checks = Vec::new();
    for name in &encrypted {
        let cred = &loaded.spec.credentials[*name];
        let armor = &armors[name];
        match &cred.password {
            SecretSource::AgeFile { age_file } => {
                let full = crate::confined::path(
                    &loaded.sources,
                    age_file,
                    &format!("the ciphertext of `{name}`"),
                )
                .map_err(|d| Failure::Spec {
                    sources: loaded.sources.clone(),
                    diagnostics: std::iter::once(d).collect(),
                })?;
                write_file(&full, armor.as_bytes(), Existing::Replace)?;
            }
            _ => {
                let new = NewPassword::Armored(armor);
                edits.push(
                    edit::set_password(&loaded.sources, name, &new)
                        .map_err(|e| Failure::msg(e.to_string()))?,
                );
                checks.push((cred.name.loc.file, *name));
            }
        }
    }
    for (file, text) in edit::apply(&loaded.sources, edits) {
        let Some(src) = loaded.sources.get(file) else {
            continue;
        };
        for (_, name) in checks.iter().filter(|(f, _)| *f == file) {
            edit::verify(
                src.format,
                &text,
                name,
                &NewPassword::Armored(&armors[name]),
            )
            .map_err(|e| Failure::msg(e.to_string()))?;
        }
        write_file(&src.path, text.as_bytes(), Existing::Replace)?;
    }
    term.note(&format!(
        "re-encrypted {} credential{} to {} recipient{}",
        encrypted.len(),
        if encrypted.len() == 1 { "" } else { "s" },
        recipients.len(),
        if recipients.len() == 1 { "" } else { "s" }
    ));
    Ok(ExitStatus::Success)
}
