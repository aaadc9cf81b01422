//! Resolving the spec's credentials to usable logins: age ciphertext decrypted, `env` and `file`
//! sources read. Every failure is a diagnostic at the credential's position in the spec.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use regops_spec::{Credential, Diagnostic, Diagnostics, Loc, SecretSource, Sources, Spec};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::crypto::{self, CryptoError, Identities, IdentityLookup};

pub use regops_core::login::Login;

/// A relative path in the spec, resolved against the directory of the file that names it.
pub fn resolve_path(sources: &Sources, loc: Loc, path: &std::path::Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    let base = sources
        .get(loc.file)
        .and_then(|f| f.path.parent().map(|p| p.to_path_buf()))
        .unwrap_or_default();
    base.join(path)
}

/// Resolves the credentials named in `wanted` (all when `None`). Identities are looked up
/// only if an encrypted credential needs them.
pub fn resolve(
    spec: &Spec,
    sources: &Sources,
    lookup: &IdentityLookup<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    wanted: Option<&[&str]>,
) -> Result<BTreeMap<String, Login>, Diagnostics> {
    let mut identities: Option<Result<Identities, CryptoError>> = None;
    let mut out = BTreeMap::new();
    let mut diags = Diagnostics::default();
    for (name, cred) in &spec.credentials {
        if wanted.is_some_and(|w| !w.contains(&name.as_str())) {
            continue;
        }
        match password(cred, sources, &mut identities, lookup, env) {
            Ok(password) => {
                out.insert(
                    name.clone(),
                    Login {
                        username: cred.username.value.clone(),
                        password,
                        email: cred.email.as_ref().map(|e| e.value.clone()),
                    },
                );
            }
            Err(d) => diags.push(d),
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

fn password(
    cred: &Credential,
    sources: &Sources,
    identities: &mut Option<Result<Identities, CryptoError>>,
    lookup: &IdentityLookup<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SecretString, Diagnostic> {
    let name = &cred.name.value;
    let undecryptable = |loc: Loc, why: &str, help: String| {
        Diagnostic::error(
            "credential::undecryptable",
            format!("cannot decrypt credential `{name}`: {why}"),
        )
        .with_label(loc, why.to_string())
        .with_help(help)
    };
    let ciphertext: (Zeroizing<String>, Loc) = match &cred.password {
        SecretSource::Env { env: var } => {
            return env(var).map(SecretString::from).ok_or_else(|| {
                Diagnostic::error(
                    "credential::env-unset",
                    format!(
                        "the password of credential `{name}` comes from `${}`, which is not set",
                        var.value
                    ),
                )
                .with_label(var.loc, "not set")
            });
        }
        SecretSource::File { file } => {
            let path = resolve_path(sources, file.loc, file);
            let mut text = read_secret_file(&path).map_err(|e| {
                Diagnostic::error(
                    "credential::file",
                    format!(
                        "cannot read the password of credential `{name}` from {}: {e}",
                        path.display()
                    ),
                )
                .with_label(file.loc, "unreadable")
            })?;
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            return Ok(SecretString::from(text.as_str().to_owned()));
        }
        SecretSource::Age(ct) => {
            // Point at the first line of the ciphertext, not the whole block.
            let shown = sources.slice(ct.loc);
            let first_line = shown.find('\n').unwrap_or(shown.len());
            (
                Zeroizing::new(ct.value.clone()),
                Loc::new(ct.loc.file, ct.loc.start, ct.loc.start + first_line),
            )
        }
        SecretSource::AgeFile { age_file } => {
            let path = resolve_path(sources, age_file.loc, age_file);
            let text = read_secret_file(&path).map_err(|e| {
                Diagnostic::error(
                    "credential::file",
                    format!(
                        "cannot read the ciphertext of credential `{name}` from {}: {e}",
                        path.display()
                    ),
                )
                .with_label(age_file.loc, "unreadable")
            })?;
            (text, age_file.loc)
        }
    };
    let ids = identities.get_or_insert_with(|| lookup.load());
    let ids = match ids {
        Ok(ids) => ids,
        Err(e) => {
            let help = e.help().unwrap_or_default();
            return Err(undecryptable(ciphertext.1, &e.to_string(), help));
        }
    };
    crypto::decrypt(&ciphertext.0, ids).map_err(|f| {
        let help = match f {
            crypto::DecryptFailure::NoMatchingKey => format!(
                "tried the identities from {}; ask someone who can decrypt to add your public key to `recipients` and run `regops rekey`",
                ids.origins.join(", ")
            ),
            crypto::DecryptFailure::Damaged | crypto::DecryptFailure::NotAge => {
                format!("re-encrypt it: `regops encrypt -f <spec> --credential {name}`")
            }
            crypto::DecryptFailure::NotUtf8 => "regops reads passwords as text".into(),
        };
        undecryptable(ciphertext.1, f.message(), help)
    })
}

fn read_secret_file(path: &std::path::Path) -> std::io::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    std::fs::File::open(path)?
        .take(1 << 20)
        .read_to_string(&mut text)?;
    Ok(text)
}
