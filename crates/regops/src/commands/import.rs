//! `regops import`: read the cluster's pull secrets, infer a spec (regops-core's `import`),
//! prove it plans to adoption only, encrypt the passwords, write the file.
//!
//! Nothing is written to the cluster. Plaintext passwords live in `SecretString`s from the
//! read to the encryption; the file holds only ciphertext and is written with mode 0600,
//! atomically, never over an existing file without `--force`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use regops_core::import::{self, Import, Password};
use regops_spec::{Loc, Sources, Spanned};

use crate::ExitStatus;
use crate::cli::ImportArgs;
use crate::cluster::runtime;
use crate::crypto;
use crate::failure::{Failure, Outcome};
use crate::output::Term;

/// The environment variable the import's own check names for every password (never read:
/// the check resolves the logins itself).
const CHECK_ENV: &str = "REGOPS_IMPORT_CHECK";

/// The recipients given, one per entry (files: one per line, `#` comments skipped).
fn recipients(args: &ImportArgs) -> Result<Vec<String>, Failure> {
    let mut out: Vec<String> = args
        .recipient
        .iter()
        .map(|r| r.trim().to_string())
        .collect();
    for f in &args.recipients_file {
        let text = std::fs::read_to_string(f).map_err(|e| {
            Failure::msg(format!(
                "cannot read the recipients file {}: {e}",
                f.display()
            ))
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

/// Loads a rendered spec (the import's own output) as `regops check` would.
fn load(text: &str, name: &str) -> Result<regops_spec::Loaded, Failure> {
    let mut sources = Sources::default();
    sources.add(
        PathBuf::from(format!("{name}.yaml")),
        text.to_string(),
        regops_spec::source::Format::Yaml,
    );
    regops_spec::load(sources, name).map_err(|inv| Failure::Spec {
        sources: inv.sources,
        diagnostics: inv.diagnostics,
    })
}

/// Plans the candidate against what was read, taking out what would be more than adoption,
/// until nothing more is; returns the changes still beyond adoption (none expected).
fn prove(
    im: &mut Import,
    observed: &regops_core::observed::Observed,
    only: Option<&BTreeSet<String>>,
    target: &str,
) -> Result<usize, Failure> {
    let env = |_: &import::CredentialOut| Password::Env(CHECK_ENV.into());
    for _ in 0..16 {
        let loaded = load(&import::render(im, "", &env), &im.name)?;
        let desired =
            regops_core::desired::compute(&loaded.spec, &import::logins(im), observed, only);
        let plan = regops_core::plan::compute(
            &im.name,
            target,
            regops_core::plan::Source::default(),
            &desired,
            observed,
            only,
        );
        if !import::narrow(im, &plan) {
            return Ok(import::beyond_adoption(&plan));
        }
    }
    Err(Failure::msg(
        "the imported spec did not settle into adoption only; please report this",
    ))
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

// Kept whole (over 80 lines): the command's steps in order (recipients, refusal to
// overwrite, read, infer, prove, encrypt, check, write).
pub(super) fn import(args: ImportArgs, term: &Term) -> Outcome {
    let recipients = recipients(&args)?;
    let spanned: Vec<Spanned<String>> = recipients
        .iter()
        .map(|r| Spanned::new(r.clone(), Loc::default()))
        .collect();
    let parsed = crypto::parse_recipients(&spanned).map_err(|diagnostics| Failure::Spec {
        sources: Sources::default(),
        diagnostics,
    })?;
    if let Some(out) = &args.output
        && out.exists()
        && !args.force
        && !args.dry_run
    {
        return Err(Failure::Message {
            message: format!("{} exists; nothing was read or written", out.display()),
            help: Some("pass --force to overwrite it".into()),
        });
    }
    let only = crate::load::only_namespaces(&args.namespaces, "-n")?;
    let rt = runtime()?;
    let (client, target) = crate::cluster::connect_as(&args.cluster.options(), &rt)?;
    let observed = rt.block_on(crate::observe::for_import(
        &client,
        &target,
        only.as_ref(),
        args.selector.as_deref(),
    ))?;
    let name = args
        .name
        .clone()
        .or_else(|| {
            args.output
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
        args.infer_selectors,
    );
    let beyond = prove(&mut im, &observed, only.as_ref(), &target.to_string())?;
    let header = format!(
        "Imported by `regops import` from {target} on {}.\nEach pull secret adopts the Secrets it was found as (`adopt: true`): `regops plan` shows\nonly adoption (regops' label and annotations), and nothing after one apply.",
        jiff::Timestamp::now().strftime("%Y-%m-%d")
    );
    if args.dry_run {
        term.stdout(&import::render(&im, &header, &|_| Password::Redacted));
        term.note(import::summary(&im, beyond, None).trim_end());
        return Ok(ExitStatus::Success);
    }
    let mut ciphertexts = std::collections::BTreeMap::new();
    for c in &im.credentials {
        let armour = crypto::encrypt(&c.login.password, &parsed)
            .map_err(|e| Failure::msg(format!("cannot encrypt credential `{}`: {e}", c.name)))?;
        ciphertexts.insert(c.name.clone(), armour);
    }
    let text = import::render(&im, &header, &|c| {
        Password::Ciphertext(ciphertexts.get(&c.name).cloned().unwrap_or_default())
    });
    // What is written must be a spec `regops check` accepts.
    load(&text, &name)?;
    let Some(out) = &args.output else {
        return Err(Failure::msg("--output FILE is required without --dry-run"));
    };
    write_private(out, &text, args.force)?;
    term.note(import::summary(&im, beyond, Some(out)).trim_end());
    Ok(ExitStatus::Success)
}
