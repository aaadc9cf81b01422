//! `import`: read the cluster's pull secrets, infer a spec (regops-core's `import`), prove it
//! plans to adoption only, encrypt the passwords, write the file.
//!
//! Nothing is written to the cluster. Plaintext passwords live in `SecretString`s from the
//! read to the encryption; the file holds only ciphertext and is written with mode 0600,
//! atomically, never over an existing file without `force`.

use std::path::Path;

use regops_core::import::{self, Password, ProveError};
use regops_spec::{Loc, Sources, Spanned};

use crate::cluster::client::runtime;
use crate::failure::Failure;
use crate::inputs::crypto;
use crate::ops::options::ImportOptions;

/// What an import produced.
#[derive(Debug)]
pub enum Imported {
    /// `dry_run`: the spec with its passwords redacted, and the summary; nothing written.
    DryRun { spec: String, summary: String },
    /// The spec was written to its file; the summary says where and what.
    Written { summary: String },
}

/// The recipients given, one per entry (files: one per line, `#` comments skipped).
fn recipients(opts: &ImportOptions) -> Result<Vec<String>, Failure> {
    let mut out: Vec<String> = opts
        .recipients
        .iter()
        .map(|r| r.trim().to_string())
        .collect();
    for f in &opts.recipients_files {
        let text = std::fs::read_to_string(f).map_err(|e| {
            Failure::caused(
                format!("cannot read the recipients file {}", f.display()),
                e,
            )
        })?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    out.retain(|r| !r.is_empty());
    out.dedup();
    if out.is_empty() {
        return Err(Failure::Message {
            message: "import needs at least one recipient: the passwords it finds are written only encrypted".into(),
            help: Some("pass --recipient age1... (your public key: `regops keygen --public KEYFILE`) or --recipients-file FILE".into()),
        });
    }
    Ok(out)
}

fn invalid(inv: Box<regops_spec::Invalid>) -> Failure {
    Failure::Spec {
        sources: inv.sources,
        diagnostics: inv.diagnostics,
    }
}

/// Writes the spec with mode 0600, atomically; an existing file only with `force`.
fn write_private(path: &Path, text: &str, force: bool) -> Result<(), Failure> {
    use crate::atomic::Existing;
    let existing = if force {
        Existing::Replace
    } else {
        Existing::Keep
    };
    crate::atomic::write_file(path, text.as_bytes(), existing)
}

// Kept whole (over 80 lines): the steps in order (recipients, refusal to overwrite, read,
// infer, prove, encrypt, check, write).
pub fn import(opts: &ImportOptions) -> Result<Imported, Failure> {
    let recipients = recipients(opts)?;
    let spanned: Vec<Spanned<String>> = recipients
        .iter()
        .map(|r| Spanned::new(r.clone(), Loc::default()))
        .collect();
    let parsed = crypto::parse_recipients(&spanned).map_err(|diagnostics| Failure::Spec {
        sources: Sources::default(),
        diagnostics,
    })?;
    if let Some(out) = &opts.output
        && out.exists()
        && !opts.force
        && !opts.dry_run
    {
        return Err(Failure::Message {
            message: format!("{} exists; nothing was read or written", out.display()),
            help: Some("pass --force to overwrite it".into()),
        });
    }
    let only = crate::ops::load::only_namespaces(&opts.namespaces, "-n")?;
    let rt = runtime()?;
    let (conn, target) =
        crate::cluster::client::connect_as(&opts.cluster, &opts.cluster.run_context(), &rt)?;
    let observed = rt.block_on(crate::cluster::read::for_import(
        &conn,
        &target,
        only.as_ref(),
        opts.selector.as_deref(),
    ))?;
    let name = opts
        .name
        .clone()
        .or_else(|| {
            opts.output
                .as_ref()
                .and_then(|o| o.file_stem())
                .map(|s| s.to_string_lossy().to_string())
        })
        .unwrap_or_else(|| "imported".into());
    let mut im = import::infer(
        &observed,
        only.as_ref(),
        &name,
        &recipients,
        opts.infer_selectors,
    );
    let beyond = import::prove(&mut im, &observed, only.as_ref(), &target.to_string()).map_err(
        |e| match e {
            ProveError::Invalid(inv) => invalid(inv),
            e @ ProveError::Unsettled => Failure::error(e),
        },
    )?;
    let header = format!(
        "Imported by `regops import` from {target} on {}.\nEach pull secret adopts the Secrets it was found as (`adopt: true`): `regops plan` shows\nonly adoption (regops' label and annotations), and nothing after one apply.",
        jiff::Timestamp::now().strftime("%Y-%m-%d")
    );
    if opts.dry_run {
        return Ok(Imported::DryRun {
            spec: import::render(&im, &header, &|_| Password::Redacted),
            summary: import::summary(&im, beyond, None),
        });
    }
    let mut ciphertexts = std::collections::BTreeMap::new();
    for c in &im.credentials {
        let armour = crypto::encrypt(&c.login.password, &parsed)
            .map_err(|e| Failure::caused(format!("cannot encrypt credential `{}`", c.name), e))?;
        ciphertexts.insert(c.name.clone(), armour);
    }
    let text = import::render(&im, &header, &|c| {
        Password::Ciphertext(ciphertexts.get(&c.name).cloned().unwrap_or_default())
    });
    // What is written must be a spec `regops check` accepts.
    import::load(&text, &name).map_err(invalid)?;
    let Some(out) = &opts.output else {
        return Err(Failure::msg("--output FILE is required without --dry-run"));
    };
    write_private(out, &text, opts.force)?;
    Ok(Imported::Written {
        summary: import::summary(&im, beyond, Some(out)),
    })
}
