//! `rekey`: every encrypted credential re-encrypted to the spec's current recipients, all or
//! none: everything is decrypted and re-encrypted before the first write.

use std::collections::BTreeMap;
use std::path::PathBuf;

use regops_spec::edit::{self, NewPassword};
use regops_spec::{Loaded, SecretSource};

use crate::atomic::{Existing, write_file};
use crate::failure::Failure;
use crate::inputs::crypto;
use crate::ops::load::{load, resolve_logins};
use crate::ops::options::SpecOptions;
use crate::output::Term;

/// What a rekey did.
#[derive(Debug, Default)]
pub struct Rekeyed {
    /// The credentials re-encrypted (none: nothing was written).
    pub credentials: usize,
    /// To how many recipients.
    pub recipients: usize,
}

/// The credentials rekey re-encrypts: those the spec keeps age-encrypted.
fn encrypted(loaded: &Loaded) -> Vec<&str> {
    loaded
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
        .collect()
}

/// Re-encrypts every age-encrypted credential of the spec to its `recipients`, decrypting with
/// `identities` (else the environment's and the default files). Credentials read from a sops
/// file are left alone, and said so: a sops file is encrypted to its own recipients (its
/// `sops.age`), and sops's `updatekeys` is the tool that changes them.
// Kept whole (over 80 lines): all-or-nothing, in order: decrypt all, encrypt all, edit and
// verify every file, then write.
pub fn rekey(spec: &SpecOptions, identities: &[PathBuf], term: &Term) -> Result<Rekeyed, Failure> {
    let loaded = load(spec, term)?;
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
    // Said before anything is decrypted, so that a rekey that fails still says which
    // credentials it would not have touched.
    for cred in
        loaded.spec.credentials.values().filter(|c| {
            matches!(c.password, SecretSource::Sops { .. }) || c.username_sops.is_some()
        })
    {
        term.note(&format!(
            "credential `{}` is read from a sops file: rekey leaves it alone (run `sops updatekeys` on the file to change who can decrypt it)",
            cred.name.value
        ));
    }
    let encrypted = encrypted(&loaded);
    if encrypted.is_empty() {
        return Ok(Rekeyed::default());
    }
    let logins = resolve_logins(
        &loaded,
        identities,
        Some(&encrypted),
        &crate::context::RunContext::default(),
    )?;
    let mut armors: BTreeMap<&str, String> = BTreeMap::new();
    for name in &encrypted {
        let login = logins
            .get(*name)
            .ok_or_else(|| Failure::msg(format!("credential `{name}` was not decrypted")))?;
        armors.insert(
            name,
            crypto::encrypt(&login.password, &recipients).map_err(Failure::error)?,
        );
    }
    let mut edits = Vec::new();
    let mut checks = Vec::new();
    let mut age_files = Vec::new();
    let mut spec_files = Vec::new();
    for name in &encrypted {
        let cred = &loaded.spec.credentials[*name];
        let armor = &armors[name];
        match &cred.password {
            SecretSource::AgeFile { age_file } => {
                let full = crate::inputs::confined::path(
                    &loaded.sources,
                    age_file,
                    &format!("the ciphertext of `{name}`"),
                )
                .map_err(|d| Failure::Spec {
                    sources: loaded.sources.clone(),
                    diagnostics: std::iter::once(d).collect(),
                })?;
                age_files.push((full, armor.as_bytes()));
            }
            _ => {
                let new = NewPassword::Armored(armor);
                edits
                    .push(edit::set_password(&loaded.sources, name, &new).map_err(Failure::error)?);
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
            .map_err(Failure::error)?;
        }
        spec_files.push((src.path.clone(), text));
    }
    // Every edit verified: only now is anything written.
    for (path, bytes) in &age_files {
        write_file(path, bytes, Existing::Replace)?;
    }
    for (path, text) in &spec_files {
        write_file(path, text.as_bytes(), Existing::Replace)?;
    }
    Ok(Rekeyed {
        credentials: encrypted.len(),
        recipients: recipients.len(),
    })
}
