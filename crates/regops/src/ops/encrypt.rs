//! `encrypt`: a credential's password encrypted to the spec's recipients and written into the
//! spec (or an `ageFile`), the spec's layout and comments kept.

use std::path::Path;

use regops_spec::edit::{self, NewPassword};
use regops_spec::{Diagnostic, Diagnostics};
use secrecy::SecretString;

use crate::atomic::{Existing, write_file};
use crate::failure::Failure;
use crate::inputs::crypto;
use crate::ops::load::{default_name, read_sources};
use crate::ops::options::SpecOptions;

/// What an encryption wrote.
#[derive(Debug)]
pub struct Encrypted {
    /// To how many recipients.
    pub recipients: usize,
    /// The files written, as the user is told.
    pub wrote: String,
}

// Kept whole (over 80 lines): the edit in its order: find, check, read the secret, encrypt,
// write, verify; each step needs the last's results. The password is asked for
// (`read_secret`, the command's prompt) only once the spec is known to take it.
pub(crate) fn encrypt(
    spec_opts: &SpecOptions,
    credential: &str,
    age_file: Option<&Path>,
    read_secret: &dyn Fn() -> Result<SecretString, Failure>,
) -> Result<Encrypted, Failure> {
    let sources = read_sources(spec_opts)?;
    let (file, cred_node) = edit::find_credential(&sources, credential).map_err(|e| {
        Failure::error(e).with_help(format!(
            "add it first:\n  credentials:\n    {}:\n      username: <user>",
            credential
        ))
    })?;
    // A missing password (this credential's or another's, still to be encrypted) and this
    // credential's plaintext password are what this command repairs; any other problem in the
    // spec stops it.
    let spec = match regops_spec::load(sources.clone(), &default_name(&spec_opts.files)) {
        Ok(l) => l.spec,
        Err(inv) => {
            let within = |d: &Diagnostic| {
                d.primary().is_some_and(|l| {
                    l.file == file && l.start >= cred_node.loc.start && l.end <= cred_node.loc.end
                }) || d.message.contains(&format!("credential `{}`", credential))
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
    let secret = read_secret()?;
    let armor = crypto::encrypt(&secret, &recipients).map_err(Failure::error)?;
    drop(secret);
    let spec_path = sources
        .get(file)
        .map(|f| f.path.clone())
        .unwrap_or_default();
    let age_file = age_file.map(|p| p.to_string_lossy().to_string());
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
    let e = edit::set_password(&sources, credential, &new).map_err(Failure::error)?;
    let format = sources
        .get(file)
        .map(|f| f.format)
        .unwrap_or(regops_spec::SpecFormat::Yaml);
    for (_, text) in edit::apply(&sources, vec![e]) {
        edit::verify(format, &text, credential, &new).map_err(Failure::error)?;
        write_file(&spec_path, text.as_bytes(), Existing::Replace)?;
    }
    Ok(Encrypted {
        recipients: recipients.len(),
        wrote: age_path.map_or_else(
            || spec_path.display().to_string(),
            |p| format!("{} and {}", p.display(), spec_path.display()),
        ),
    })
}
