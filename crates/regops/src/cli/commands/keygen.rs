//! `regops keygen`: a new age identity, or the public key of one.

use std::io::IsTerminal;
use std::path::Path;

use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::ExitStatus;
use crate::cli::KeygenArgs;
use crate::failure::{Failure, Outcome};
use crate::inputs::crypto;
use crate::output::Term;

pub(super) fn keygen(args: KeygenArgs, term: &Term) -> Outcome {
    if let Some(path) = args.public {
        let text = std::fs::read_to_string(&path)
            .map(Zeroizing::new)
            .map_err(|e| Failure::caused(format!("cannot read {}", path.display()), e))?;
        let mut found = 0;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
        {
            let id: age::x25519::Identity = line.parse().map_err(|_| {
                Failure::msg(format!("{} has an invalid identity line", path.display()))
            })?;
            term.stdout(&format!("{}\n", id.to_public()));
            found += 1;
        }
        if found == 0 {
            return Err(Failure::msg(format!(
                "{} holds no age identity",
                path.display()
            )));
        }
        return Ok(ExitStatus::Success);
    }
    let id = crypto::generate_identity();
    let content = Zeroizing::new(format!(
        "# created: {}\n# public key: {}\n{}\n",
        rfc3339_now(),
        id.public,
        id.secret.expose_secret()
    ));
    match args.output {
        Some(path) => {
            write_private(&path, &content)
                .map_err(|e| Failure::caused(format!("cannot create {}", path.display()), e))?;
            term.note(&format!("Public key: {}", id.public));
        }
        None => {
            term.stdout(&content);
            if !std::io::stdout().is_terminal() {
                term.note(&format!("Public key: {}", id.public));
            }
        }
    }
    Ok(ExitStatus::Success)
}

/// Creates a new file readable only by its owner (and its directory, if missing); an existing
/// file is never overwritten.
pub(super) fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    crate::atomic::write(path, content.as_bytes(), crate::atomic::Existing::Keep)
}

pub(super) fn rfc3339_now() -> String {
    // Seconds precision, as age-keygen writes it.
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
