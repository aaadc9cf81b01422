//! Resolving the spec's credentials to usable logins: age ciphertext decrypted, `env` and `file`
//! sources read. Every failure is a diagnostic at the credential's position in the spec.

use std::collections::BTreeMap;

use regops_spec::trust::Policy;
use regops_spec::{Credential, Diagnostic, Diagnostics, Loaded, Loc, SecretSource, Sources, Spec};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::inputs::crypto::{self, CryptoError, Identities, IdentityLookup};

pub use regops_core::login::Login;

/// Resolves the credentials named in `wanted` (all when `None`). Identities are looked up
/// only if an encrypted credential needs them. Minted credentials (`ecr`, `gcp`, `acr`) are
/// left out: they are minted when a Secret needs a token (see [`crate::inputs::mint`]).
///
/// The name of a variable of this process that no spec may read (whatever `--allow-env` says)
/// and whose value, of at least 8 characters, is inside `value`.
fn holds_a_refused_value(value: &str) -> Option<String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, v)| v.len() >= 8 && regops_spec::trust::refused_env_rule(k).is_some())
        .find(|(_, v)| value.contains(v.as_str()))
        .map(|(k, _)| k)
}

/// `env:` and the files are read as the spec's policy allows ([`regops_spec::trust`]): a
/// variable or path outside it is an error here too, whatever checked the spec before.
pub fn resolve(
    loaded: &Loaded,
    lookup: &IdentityLookup<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    wanted: Option<&[&str]>,
    ctx: &crate::context::RunContext,
) -> Result<BTreeMap<String, Login>, Diagnostics> {
    resolve_inner(loaded, lookup, env, wanted, None, ctx)
}

/// As [`resolve`], but a credential helper that fails is not an error: its diagnostic goes to
/// `failed`, and only the Secrets that need it are held back.
pub fn resolve_lenient(
    loaded: &Loaded,
    lookup: &IdentityLookup<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    wanted: Option<&[&str]>,
    failed: &mut Vec<(String, Diagnostic)>,
    ctx: &crate::context::RunContext,
) -> Result<BTreeMap<String, Login>, Diagnostics> {
    resolve_inner(loaded, lookup, env, wanted, Some(failed), ctx)
}

fn resolve_inner(
    loaded: &Loaded,
    lookup: &IdentityLookup<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    wanted: Option<&[&str]>,
    mut helper_failures: Option<&mut Vec<(String, Diagnostic)>>,
    ctx: &crate::context::RunContext,
) -> Result<BTreeMap<String, Login>, Diagnostics> {
    let (spec, sources): (&Spec, &Sources) = (&loaded.spec, &loaded.sources);
    let mut identities: Option<Result<Identities, CryptoError>> = None;
    let mut fetched = Fetched {
        ctx,
        values: BTreeMap::new(),
    };
    let mut out = BTreeMap::new();
    let mut diags = Diagnostics::default();
    for (name, cred) in &spec.credentials {
        if wanted.is_some_and(|w| !w.contains(&name.as_str())) || cred.minted().is_some() {
            continue;
        }
        if let SecretSource::Helper { helper } = &cred.password {
            // Asked for the one server it serves (the spec checks there is one); a credential
            // no registry uses is not asked at all.
            let Some(server) = spec
                .registries
                .values()
                .find(|r| r.credential.value == *name)
                .map(|r| r.server.value.as_str())
            else {
                continue;
            };
            match from_helper(cred, helper, server) {
                Ok(login) => {
                    out.insert(name.clone(), login);
                }
                Err(d) => match helper_failures.as_deref_mut() {
                    Some(failed) => failed.push((name.clone(), d)),
                    None => diags.push(d),
                },
            }
            continue;
        }
        let username = match &cred.username_sops {
            Some(src) => {
                match from_sops(cred, "user name", src, sources, &mut identities, lookup) {
                    Ok(u) => Some(u),
                    Err(d) => {
                        diags.push(d);
                        None
                    }
                }
            }
            // Only a helper credential may leave it out (the spec checks).
            None => Some(
                cred.username
                    .as_ref()
                    .map(|u| u.value.clone())
                    .unwrap_or_default(),
            ),
        };
        match password(
            cred,
            sources,
            &loaded.policy,
            &mut identities,
            lookup,
            env,
            &mut fetched,
        ) {
            Ok(_) if username.is_none() => {}
            Ok((password, source_digest)) => {
                out.insert(
                    name.clone(),
                    Login {
                        username: username.unwrap_or_default(),
                        password,
                        email: cred.email.as_ref().map(|e| e.value.clone()),
                        source_digest,
                        expires_at: None,
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

/// A credential's login from its docker credential helper, for `server`: the helper's user
/// name, unless the spec names one, which must then be the helper's.
fn from_helper(
    cred: &Credential,
    helper: &regops_spec::Spanned<String>,
    server: &str,
) -> Result<Login, Diagnostic> {
    let name = &cred.name.value;
    let got = crate::inputs::helper::get(&helper.value, server).map_err(|e| {
        let help = match &e {
            crate::inputs::helper::HelperError::NotFound { program } => format!(
                "install {program} on PATH (docker's credential helpers are named so), or use another password source"
            ),
            crate::inputs::helper::HelperError::Failed { .. } => {
                "run it by hand to see why: `echo -n SERVER | docker-credential-NAME get`".into()
            }
            _ => "check the helper works with docker (`docker pull` from this registry)".into(),
        };
        Diagnostic::error(
            "credential::helper",
            format!("cannot get credential `{name}` for {server} from its helper: {e}"),
        )
        .with_label(helper.loc, "this helper")
        .with_help(help)
    })?;
    let username = match &cred.username {
        Some(u) if u.value != got.username => {
            return Err(Diagnostic::error(
                "credential::helper",
                format!(
                    "credential helper `{}` logs in to {server} as `{}`, but credential `{name}` says `{}`",
                    helper.value, got.username, u.value
                ),
            )
            .with_label(u.loc, "not the helper's user")
            .with_help("leave `username` out to use the helper's"));
        }
        Some(u) => u.value.clone(),
        None if got.username.is_empty() => {
            return Err(Diagnostic::error(
                "credential::helper",
                format!(
                    "credential helper `{}` gave no user name for {server} (credential `{name}`)",
                    helper.value
                ),
            )
            .with_label(helper.loc, "no user name")
            .with_help("give `username` in the credential"));
        }
        None => got.username,
    };
    Ok(Login {
        username,
        password: got.secret,
        email: cred.email.as_ref().map(|e| e.value.clone()),
        source_digest: None,
        expires_at: None,
    })
}

/// The values read from secret managers in this run, by [`crate::inputs::secret_managers::cache_key`]:
/// each secret is read once, however many credentials name it.
/// Each value comes with its record ([`regops_core::ownership::value_record`]), made once.
/// They are read with the run's context (`--request-timeout` bounds the token requests on
/// the way).
struct Fetched<'a> {
    ctx: &'a crate::context::RunContext,
    values: BTreeMap<String, Result<(Zeroizing<String>, String), crate::inputs::mint::MintError>>,
}

/// A password from a secret manager (`awsSecretsManager:`, `gcpSecretManager:`,
/// `azureKeyVault:`, `vault:`): allowed by the
/// operator's `--allow-secret` (checked again here, whatever checked the spec before), read
/// once per run. A failure names the credential, the secret and the step, never a value.
/// With the value, its record for the Secrets that hold it
/// ([`regops_core::ownership::value_record`]), by which a later plan tells a value that moved
/// at its source.
fn from_secret_manager(
    cred: &Credential,
    policy: &Policy,
    fetched: &mut Fetched<'_>,
) -> Result<(SecretString, String), Diagnostic> {
    use regops_spec::trust::{secret_of, secret_refusal};
    let name = &cred.name.value;
    let source = &cred.password;
    let (kind, secret, loc) = secret_of(source).ok_or_else(|| {
        Diagnostic::error(
            "credential::secret-manager",
            format!("credential `{name}` is not read from a secret manager"),
        )
    })?;
    let shown = regops_spec::untrusted::terminal(&secret).to_string();
    if let Some(why) = secret_refusal(kind, &secret, policy) {
        return Err(Diagnostic::error(
            "trust::secret",
            format!(
                "credential `{name}` may not read the {} secret `{shown}`: {why}",
                kind.key()
            ),
        )
        .with_label(loc, "not allowed by the operator")
        .with_help(format!(
            "if this spec may read it, run with --allow-secret {}:{shown}",
            kind.key()
        )));
    }
    let key = crate::inputs::secret_managers::cache_key(source).unwrap_or_default();
    let ctx = fetched.ctx;
    let got = fetched.values.entry(key.clone()).or_insert_with(|| {
        crate::inputs::secret_managers::read_blocking(source, policy, ctx).map(|v| {
            let record = regops_core::ownership::value_record(&key, v.as_bytes());
            (v, record)
        })
    });
    match got {
        Ok((value, record)) => Ok((
            SecretString::from(value.as_str().to_owned()),
            record.clone(),
        )),
        Err(why) => Err(Diagnostic::error(
            "credential::secret-manager",
            format!(
                "cannot read the password of credential `{name}` from the {} secret `{shown}`: {why}",
                kind.key()
            ),
        )
        .with_label(source.loc(), "this secret")),
    }
}

// Kept whole (over 80 lines): one arm per password source, each with its own errors.
fn password(
    cred: &Credential,
    sources: &Sources,
    policy: &Policy,
    identities: &mut Option<Result<Identities, CryptoError>>,
    lookup: &IdentityLookup<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    fetched: &mut Fetched<'_>,
) -> Result<(SecretString, Option<String>), Diagnostic> {
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
        // Minted when a Secret needs a token, never resolved here.
        SecretSource::Ecr { .. } | SecretSource::Gcp { .. } | SecretSource::Acr { .. } => {
            return Err(Diagnostic::error(
                "credential::minted",
                format!("credential `{name}` is minted from a cloud when a Secret needs it"),
            )
            .with_label(cred.password.loc(), "minted"));
        }
        // Resolved with its server, in `from_helper`.
        SecretSource::Helper { helper } => {
            return Err(Diagnostic::error(
                "credential::helper",
                format!(
                    "credential `{name}` comes from a helper, which needs its registry's server"
                ),
            )
            .with_label(helper.loc, "helper"));
        }
        SecretSource::Sops { sops } => {
            let value = from_sops(cred, "password", sops, sources, identities, lookup)?;
            return Ok((SecretString::from(value), None));
        }
        SecretSource::AwsSecretsManager { .. }
        | SecretSource::GcpSecretManager { .. }
        | SecretSource::AzureKeyVault { .. }
        | SecretSource::Vault { .. } => {
            let (value, record) = from_secret_manager(cred, policy, fetched)?;
            return Ok((value, Some(record)));
        }
        SecretSource::Env { env: var } => {
            if let Some(why) = regops_spec::trust::env_refusal(&var.value, policy) {
                return Err(Diagnostic::error(
                    "trust::env",
                    format!("credential `{name}` may not read `${}`: {why}", var.value),
                )
                .with_label(var.loc, "not readable by a spec"));
            }
            return env(var)
                .map(|v| {
                    // A variable a spec may read that carries one a spec may not (a clone URL
                    // holding the job's token, a copy under another name) is refused too.
                    if let Some(refused) = holds_a_refused_value(&v) {
                        return Err(Diagnostic::error(
                            "trust::env",
                            format!(
                                "credential `{name}` may not read `${}`: it holds the value of `${refused}`, which no spec may read",
                                var.value
                            ),
                        )
                        .with_label(var.loc, "not readable by a spec"));
                    }
                    Ok((SecretString::from(v), None))
                })
                .transpose()?
                .ok_or_else(|| {
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
            let path =
                crate::inputs::confined::path(sources, file, &format!("the password of `{name}`"))?;
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
            return Ok((SecretString::from(text.as_str().to_owned()), None));
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
            let path = crate::inputs::confined::path(
                sources,
                age_file,
                &format!("the ciphertext of `{name}`"),
            )?;
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
    let digest = {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(ciphertext.0.trim().as_bytes());
        format!(
            "age:{}",
            hash.iter()
                .take(4)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    };
    crypto::decrypt(&ciphertext.0, ids).map(|secret| (secret, Some(digest))).map_err(|f| {
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

/// A value of a file sops encrypted (`{sops: {file, extract}}`): the file read as the trust
/// model allows ([`crate::inputs::confined`]), its data key unwrapped with the age identities regops
/// finds, then decrypted, checked against its MAC and extracted by [`regops_core::sops`]. A
/// failure is located at the source in the spec and names the file and the path, never a value.
fn from_sops(
    cred: &Credential,
    what: &str,
    src: &regops_spec::SopsSource,
    sources: &Sources,
    identities: &mut Option<Result<Identities, CryptoError>>,
    lookup: &IdentityLookup<'_>,
) -> Result<String, Diagnostic> {
    use regops_core::sops::{ExtractPath, SopsFile, SopsFormat};
    let name = &cred.name.value;
    let path =
        crate::inputs::confined::path(sources, &src.file, &format!("the sops file of `{name}`"))?;
    let shown = regops_spec::untrusted::terminal(&path.display().to_string()).to_string();
    let extract = src.extract.as_ref().map_or("", |x| x.value.as_str());
    let at = if extract.is_empty() {
        String::new()
    } else {
        format!(" at {}", regops_spec::untrusted::terminal(extract))
    };
    let fail = |loc: Loc, why: &dyn std::fmt::Display| {
        Diagnostic::error(
            "credential::sops",
            format!(
                "cannot read the {what} of credential `{name}` from sops file {shown}{at}: {why}"
            ),
        )
        .with_label(loc, "this sops source")
    };
    let bytes = path
        .read(regops_core::sops::FILE_LIMIT)
        .map_err(|e| fail(src.file.loc, &e))?;
    let format = match &src.format {
        Some(f) => SopsFormat::parse(&f.value).unwrap_or(SopsFormat::Binary),
        None => SopsFormat::for_path(&src.file.value.to_string_lossy()),
    };
    let file = SopsFile::parse(&bytes, format).map_err(|e| fail(src.loc, &e))?;
    let ids = match identities.get_or_insert_with(|| lookup.load()) {
        Ok(ids) => ids,
        Err(e) => {
            let help = e.help().unwrap_or_default();
            return Err(fail(src.loc, e).with_help(help));
        }
    };
    let mut data_key = None;
    let mut damaged = false;
    for key in file.age_keys() {
        match crypto::decrypt_bytes(&key.enc, ids) {
            Ok(k) => {
                data_key = Some(k);
                break;
            }
            Err(crypto::DecryptFailure::NoMatchingKey) => {}
            Err(_) => damaged = true,
        }
    }
    let Some(data_key) = data_key else {
        let recipients: Vec<String> = file
            .age_keys()
            .iter()
            .map(|k| regops_spec::untrusted::terminal(&k.recipient).to_string())
            .collect();
        let pq = file
            .age_keys()
            .iter()
            .any(|k| k.recipient.starts_with("age1pq1"));
        let why = if damaged {
            "its data key does not decrypt: the file was damaged or tampered with".to_string()
        } else if pq {
            "none of regops' identities decrypts its data key, and regops cannot read post-quantum age keys (`age1pq1...`)".to_string()
        } else {
            "none of regops' identities decrypts its data key".to_string()
        };
        return Err(fail(src.loc, &why).with_help(format!(
            "it is encrypted to {}; regops tried the identities from {}",
            recipients.join(", "),
            ids.origins.join(", ")
        )));
    };
    let decrypted = file.decrypt(&data_key).map_err(|e| fail(src.loc, &e))?;
    let path_in_file = ExtractPath::parse(extract)
        .map_err(|e| fail(src.extract.as_ref().map_or(src.loc, |x| x.loc), &e))?;
    let value = decrypted
        .extract(&path_in_file)
        .map_err(|e| fail(src.extract.as_ref().map_or(src.loc, |x| x.loc), &e))?;
    let unwrap = regops_core::sops::Unwrap {
        base64: src.decode.as_ref().is_some_and(|d| d.value == "base64"),
        json: src
            .json_key
            .as_ref()
            .map(|k| regops_core::sops::json_key(&k.value).map_err(|e| fail(k.loc, &e)))
            .transpose()?,
    };
    let value = unwrap
        .apply(value, &path_in_file)
        .map_err(|e| fail(src.loc, &e))?;
    Ok(value.as_str().to_owned())
}

fn read_secret_file(
    path: &crate::inputs::confined::SpecPath,
) -> Result<Zeroizing<String>, crate::inputs::confined::ReadError> {
    path.read_text(crate::inputs::confined::SECRET_FILE_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::RunContext;
    use secrecy::ExposeSecret;

    #[test]
    fn age_credentials_carry_a_digest_of_their_ciphertext_and_env_ones_none() {
        let id = crypto::generate_identity();
        let recipients = crypto::parse_recipients(&[regops_spec::Spanned::new(
            id.public.clone(),
            Loc::default(),
        )])
        .unwrap();
        let ct = crypto::encrypt(&SecretString::from("s3cret"), &recipients).unwrap();
        let block: String = ct.lines().map(|l| format!("      {l}\n")).collect();
        let text = format!(
            "apiVersion: regops.dev/v1\nkind: RegistryConfig\nrecipients: [{}]\ncredentials:\n  a:\n    username: u\n    password: |\n{block}  b:\n    username: v\n    password: {{ env: REGOPS_CRED_B }}\n",
            id.public
        );
        let mut sources = Sources::default();
        sources.add("x.yaml".into(), text, regops_spec::SpecFormat::Yaml);
        let loaded = regops_spec::load(sources, "x").unwrap();
        let secret = id.secret.expose_secret().to_string();
        let env = move |k: &str| match k {
            "REGOPS_AGE_KEY" => Some(secret.clone()),
            "REGOPS_CRED_B" => Some("env-pass".to_string()),
            _ => None,
        };
        let lookup = IdentityLookup {
            files: &[],
            env: &env,
        };
        let logins = resolve(&loaded, &lookup, &env, None, &RunContext::default()).unwrap();
        use sha2::Digest;
        let expected: String = sha2::Sha256::digest(ct.trim().as_bytes())
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            logins["a"].source_digest.as_deref(),
            Some(format!("age:{expected}").as_str())
        );
        assert_eq!(logins["a"].password.expose_secret(), "s3cret");
        assert_eq!(logins["b"].source_digest, None);
    }

    /// The readers apply the policy themselves: a spec that reached them unchecked still
    /// cannot read a refused variable or a file outside its root.
    #[test]
    fn refused_variables_and_paths_are_refused_when_read_too() {
        let dir = std::env::temp_dir().join(format!("regops-cred-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("spec")).unwrap();
        std::fs::write(dir.join("secret"), "outside").unwrap();
        let text = "apiVersion: regops.dev/v1\nkind: RegistryConfig\ncredentials:\n  a: { username: u, password: { env: REGOPS_AGE_KEY } }\n  b: { username: u, password: { file: ../secret } }\n";
        let mut sources = Sources::default();
        sources.add(
            dir.join("spec/x.yaml"),
            text.into(),
            regops_spec::SpecFormat::Yaml,
        );
        let loaded = regops_spec::load(sources, "x").unwrap();
        let env = |k: &str| (k == "REGOPS_AGE_KEY").then(|| "AGE-SECRET-KEY-1XYZ".to_string());
        let lookup = IdentityLookup {
            files: &[],
            env: &env,
        };
        let Err(diags) = resolve(&loaded, &lookup, &env, None, &RunContext::default()) else {
            panic!("resolved");
        };
        let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["trust::env", "trust::path"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
