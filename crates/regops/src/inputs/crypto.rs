//! age encryption of credentials: finding identities, parsing recipients, encrypting and
//! decrypting. Plaintext only ever lives in [`SecretString`] or [`Zeroizing`] buffers, and no
//! error here quotes key material or plaintext.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use regops_spec::{Diagnostic, Diagnostics, Spanned};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// The largest identity file or ciphertext regops reads (credentials are small).
const MAX_INPUT: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    #[error("cannot read identity file {path}: {source}")]
    ReadIdentity {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `at` says where (`, line 3 is not an identity`), never what the line holds.
    #[error("{origin} holds no usable age identity{at}")]
    NoIdentityInFile { origin: String, at: String },
    #[error("{origin} is a passphrase-protected SSH key, which regops cannot use unattended")]
    EncryptedSshKey { origin: String },
    #[error("{origin} is an SSH key of a type age does not support")]
    UnsupportedSshKey { origin: String },
    #[error("no age identity found")]
    NoIdentities,
    #[error(
        "{origin}, line {line} is a post-quantum age identity (AGE-SECRET-KEY-PQ-1...), which regops cannot use: it reads age X25519 and SSH identities"
    )]
    PostQuantum { origin: String, line: usize },
    /// What went wrong running `$SOPS_AGE_KEY_CMD` (never its output: that is where keys are).
    #[error("$SOPS_AGE_KEY_CMD {0}")]
    KeyCmd(String),
    #[error("encryption failed: {0}")]
    Encrypt(String),
}

impl CryptoError {
    /// What the user can do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            CryptoError::NoIdentities => Some(format!(
                "regops looked in: {}. Create one with `regops keygen -o ~/.config/regops/key.txt` and have someone who can decrypt add its public key to `recipients` and run `regops rekey`",
                IDENTITY_SOURCES_DOC
            )),
            CryptoError::EncryptedSshKey { .. } => Some("use an age identity (`regops keygen`) for unattended runs".into()),
            CryptoError::PostQuantum { .. } => Some("decrypt with an X25519 identity (`age1...` recipient) the file is also encrypted to, or keep that identity out of the files regops reads".into()),
            CryptoError::NoIdentityInFile { .. } => Some("an identity file holds lines starting with AGE-SECRET-KEY-1, or an OpenSSH private key".into()),
            _ => None,
        }
    }
}

pub const IDENTITY_SOURCES_DOC: &str = "--identity FILE, $REGOPS_AGE_KEY, $REGOPS_AGE_KEY_FILE, $SOPS_AGE_KEY, $SOPS_AGE_KEY_FILE, $SOPS_AGE_SSH_PRIVATE_KEY_FILE, $SOPS_AGE_KEY_CMD, $XDG_CONFIG_HOME/sops/age/keys.txt (~/.config/sops/age/keys.txt), $XDG_CONFIG_HOME/regops/key.txt (~/.config/regops/key.txt)";

/// The identities this run can decrypt with, and where each came from.
pub struct Identities {
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
    pub origins: Vec<String>,
}

impl Identities {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Where to look for identities: explicit files, or else the environment and the default files.
pub struct IdentityLookup<'a> {
    pub files: &'a [PathBuf],
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl IdentityLookup<'_> {
    /// Every identity found. With `--identity` files, only those; otherwise all of the
    /// environment variables and default files that exist (as sops does).
    pub fn load(&self) -> Result<Identities, CryptoError> {
        let mut ids = Identities {
            keys: Vec::new(),
            origins: Vec::new(),
        };
        if !self.files.is_empty() {
            for f in self.files {
                let text = read_limited(f).map_err(|source| CryptoError::ReadIdentity {
                    path: f.clone(),
                    source,
                })?;
                parse_identities(&text, &f.display().to_string(), &mut ids)?;
            }
            return Ok(ids);
        }
        for var in ["REGOPS_AGE_KEY", "SOPS_AGE_KEY"] {
            if let Some(v) = (self.env)(var).filter(|v| !v.trim().is_empty()) {
                let v = Zeroizing::new(v);
                parse_identities(&v, &format!("${var}"), &mut ids)?;
            }
        }
        for var in ["REGOPS_AGE_KEY_FILE", "SOPS_AGE_KEY_FILE"] {
            if let Some(path) = (self.env)(var).filter(|v| !v.is_empty()) {
                let path = PathBuf::from(path);
                let text = read_limited(&path).map_err(|source| CryptoError::ReadIdentity {
                    path: path.clone(),
                    source,
                })?;
                parse_identities(&text, &format!("{} (${var})", path.display()), &mut ids)?;
            }
        }
        // sops's SSH key (age's `ssh-ed25519` and `ssh-rsa` recipients), as sops reads it
        // (`loadAgeSSHIdentity` in sops's age/keysource.go; its fallback to ~/.ssh/id_ed25519
        // and ~/.ssh/id_rsa is not followed: regops reads no SSH key it was not pointed at).
        if let Some(path) = (self.env)("SOPS_AGE_SSH_PRIVATE_KEY_FILE").filter(|v| !v.is_empty()) {
            let path = PathBuf::from(path);
            let text = read_limited(&path).map_err(|source| CryptoError::ReadIdentity {
                path: path.clone(),
                source,
            })?;
            parse_identities(
                &text,
                &format!("{} ($SOPS_AGE_SSH_PRIVATE_KEY_FILE)", path.display()),
                &mut ids,
            )?;
        }
        // The operator's command that prints identities (`getOutputFromCmd` in sops's
        // age/keysource.go: split as a shell would, run without a shell). It runs as the
        // operator's credential helpers do: only the allowlist of regops' environment
        // (crate::inputs::child_env), a time limit, its output capped and never shown. sops sets
        // SOPS_AGE_RECIPIENT for it, once per recipient; regops loads identities once, so the
        // command is asked once, without it.
        if let Some(cmd) = (self.env)("SOPS_AGE_KEY_CMD").filter(|v| !v.trim().is_empty()) {
            let text = run_key_cmd(&cmd)?;
            parse_identities(&text, "$SOPS_AGE_KEY_CMD", &mut ids)?;
        }
        let config = (self.env)("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| (self.env)("HOME").map(|h| Path::new(&h).join(".config")));
        if let Some(config) = config {
            for path in [
                config.join("sops/age/keys.txt"),
                config.join("regops/key.txt"),
            ] {
                if path.is_file() {
                    let text = read_limited(&path).map_err(|source| CryptoError::ReadIdentity {
                        path: path.clone(),
                        source,
                    })?;
                    parse_identities(&text, &path.display().to_string(), &mut ids)?;
                }
            }
        }
        if ids.is_empty() {
            return Err(CryptoError::NoIdentities);
        }
        Ok(ids)
    }
}

/// Runs `$SOPS_AGE_KEY_CMD` and returns what it printed.
fn run_key_cmd(cmd: &str) -> Result<Zeroizing<String>, CryptoError> {
    let words = split_command(cmd)
        .filter(|w| !w.is_empty())
        .ok_or_else(|| CryptoError::KeyCmd("is not a command line (an unclosed quote?)".into()))?;
    let ran =
        crate::inputs::helper::run(&words[0], &words[1..], b"", crate::inputs::helper::TIMEOUT)
            .map_err(|e| {
                use crate::inputs::helper::RunError;
                CryptoError::KeyCmd(match e {
                    RunError::NotFound => format!("names `{}`, which is not on PATH", words[0]),
                    RunError::Spawn(detail) => format!("could not be run: {detail}"),
                    RunError::Timeout => format!(
                        "did not finish within {} s",
                        crate::inputs::helper::TIMEOUT.as_secs()
                    ),
                    RunError::TooLarge(limit) => {
                        format!(
                            "printed more than the {} KiB identities may hold",
                            limit >> 10
                        )
                    }
                })
            })?;
    if !ran.status.success() {
        return Err(CryptoError::KeyCmd(format!(
            "failed ({}): {}",
            ran.status,
            crate::inputs::helper::said(&ran.stderr)
        )));
    }
    let mut stdout = ran.stdout;
    String::from_utf8(std::mem::take(&mut *stdout))
        .map(Zeroizing::new)
        .map_err(|e| {
            let mut b = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut b);
            CryptoError::KeyCmd("printed something that is not text".into())
        })
}

/// A command line split into words as a POSIX shell splits it (what sops's `shlex.Split`
/// does): blanks separate words, `'...'` is literal, `"..."` keeps blanks with `\` escaping
/// `"`, `\`, `$` and `` ` ``, and `\` outside quotes escapes the next character. No
/// expansion of any kind. `None` for an unclosed quote or a trailing `\`.
fn split_command(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => w.push(c),
                            '\n' => {}
                            c => {
                                w.push('\\');
                                w.push(c);
                            }
                        },
                        c => w.push(c),
                    }
                }
            }
            '\\' => {
                let next = chars.next()?;
                if next != '\n' {
                    word.get_or_insert_with(String::new).push(next);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(w) = word {
        words.push(w);
    }
    Some(words)
}

fn read_limited(path: &Path) -> std::io::Result<Zeroizing<String>> {
    let mut buf = Zeroizing::new(String::new());
    std::fs::File::open(path)?
        .take(MAX_INPUT)
        .read_to_string(&mut buf)?;
    Ok(buf)
}

fn parse_identities(text: &str, origin: &str, ids: &mut Identities) -> Result<(), CryptoError> {
    if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        let key = age::ssh::Identity::from_buffer(text.as_bytes(), Some(origin.to_string()))
            .map_err(|_| CryptoError::NoIdentityInFile {
                origin: origin.to_string(),
                at: String::new(),
            })?;
        match key {
            age::ssh::Identity::Unencrypted(_) => {
                ids.keys.push(Box::new(key));
                ids.origins.push(origin.to_string());
                return Ok(());
            }
            age::ssh::Identity::Encrypted(_) => {
                return Err(CryptoError::EncryptedSshKey {
                    origin: origin.to_string(),
                });
            }
            age::ssh::Identity::Unsupported(_) => {
                return Err(CryptoError::UnsupportedSshKey {
                    origin: origin.to_string(),
                });
            }
        }
    }
    // A post-quantum hybrid identity (age 1.3's ML-KEM-768 + X25519, `AGE-SECRET-KEY-PQ-1`):
    // the age library regops is built on (0.12) has no identity of that kind. It is left out
    // (its line blanked, so that age's line numbers still hold) when the file has others, and
    // is the error when it has none.
    let pq_line = text
        .lines()
        .position(|l| l.trim_start().starts_with("AGE-SECRET-KEY-PQ-1"));
    let without_pq;
    let text = match pq_line {
        None => text,
        Some(line) => {
            without_pq = Zeroizing::new(
                text.lines()
                    .map(|l| {
                        if l.trim_start().starts_with("AGE-SECRET-KEY-PQ-1") {
                            ""
                        } else {
                            l
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            if !without_pq
                .lines()
                .any(|l| l.trim_start().starts_with("AGE-SECRET-KEY-1"))
            {
                return Err(CryptoError::PostQuantum {
                    origin: origin.to_string(),
                    line: line + 1,
                });
            }
            without_pq.as_str()
        }
    };
    let file = age::IdentityFile::from_buffer(text.as_bytes()).map_err(|e| {
        CryptoError::NoIdentityInFile {
            origin: origin.to_string(),
            at: bad_line(&e),
        }
    })?;
    let keys = file
        .into_identities()
        .map_err(|_| CryptoError::NoIdentityInFile {
            origin: origin.to_string(),
            at: String::new(),
        })?;
    if keys.is_empty() {
        return Err(CryptoError::NoIdentityInFile {
            origin: origin.to_string(),
            at: String::new(),
        });
    }
    for k in keys {
        ids.keys.push(k);
        ids.origins.push(origin.to_string());
    }
    Ok(())
}

/// Where age found a line that is no identity: `, line 3 is not an identity`. age's error
/// names the line by its number so as not to quote it; only that number is taken from it.
fn bad_line(err: &std::io::Error) -> String {
    let text = err.to_string();
    text.rsplit_once("on line ")
        .map(|(_, n)| n.trim())
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        .map_or_else(String::new, |n| format!(", line {n} is not an identity"))
}

/// A recipient from the spec, parsed.
pub type Recipient = Box<dyn age::Recipient + Send>;

/// Why a spec's recipient is not usable: never the text when it is a private key.
#[derive(Debug, thiserror::Error)]
enum BadRecipient {
    /// age's words for a malformed `age1...` key.
    #[error("{0}")]
    Age(String),
    /// age's description of a malformed SSH key.
    #[error("{0}")]
    Ssh(String),
    #[error("this is a private key, not a public one; remove it from the spec and rotate it")]
    PrivateKey,
    #[error("expected an age public key (age1...) or an SSH public key (ssh-ed25519 ...)")]
    Unknown,
}

/// Parses the spec's recipients; each bad one is a diagnostic at its position.
pub fn parse_recipients(recipients: &[Spanned<String>]) -> Result<Vec<Recipient>, Diagnostics> {
    let mut out: Vec<Recipient> = Vec::new();
    let mut diags = Diagnostics::default();
    for r in recipients {
        let text = r.value.trim();
        let parsed: Result<Recipient, BadRecipient> = if text.starts_with("age1") {
            age::x25519::Recipient::from_str(text)
                .map(|k| Box::new(k) as Recipient)
                .map_err(|e| BadRecipient::Age(e.to_string()))
        } else if text.starts_with("ssh-") {
            // `ssh-ed25519 AAAA... comment`: the comment is not part of the key.
            let key: Vec<&str> = text.split_whitespace().take(2).collect();
            age::ssh::Recipient::from_str(&key.join(" "))
                .map(|k| Box::new(k) as Recipient)
                .map_err(|e| BadRecipient::Ssh(format!("{e:?}")))
        } else if text.starts_with("AGE-SECRET-KEY-") {
            // Never echo it: this is a private key pasted in the wrong place.
            Err(BadRecipient::PrivateKey)
        } else {
            Err(BadRecipient::Unknown)
        };
        match parsed {
            Ok(k) => out.push(k),
            Err(why) => diags.push(
                Diagnostic::error("spec::invalid-recipient", "invalid recipient")
                    .with_label(r.loc, "not a usable recipient")
                    .with_help(why.to_string()),
            ),
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// Encrypts to every recipient, ASCII-armored.
pub fn encrypt(plaintext: &SecretString, recipients: &[Recipient]) -> Result<String, CryptoError> {
    let err = |e: &dyn std::fmt::Display| CryptoError::Encrypt(e.to_string());
    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
    )
    .map_err(|e| err(&e))?;
    let mut out = Vec::new();
    let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(|e| err(&e))?;
    let mut writer = encryptor.wrap_output(armor).map_err(|e| err(&e))?;
    writer
        .write_all(plaintext.expose_secret().as_bytes())
        .map_err(|e| err(&e))?;
    writer
        .finish()
        .and_then(|armor| armor.finish())
        .map_err(|e| err(&e))?;
    String::from_utf8(out).map_err(|e| err(&e))
}

/// Why a ciphertext could not be decrypted, in words for the user.
#[derive(Debug, PartialEq, Eq)]
pub enum DecryptFailure {
    NoMatchingKey,
    Damaged,
    NotAge,
    NotUtf8,
}

impl DecryptFailure {
    pub fn message(&self) -> &'static str {
        match self {
            DecryptFailure::NoMatchingKey => "none of your identities can decrypt it",
            DecryptFailure::Damaged => "the ciphertext is damaged or was tampered with",
            DecryptFailure::NotAge => "this is not age ciphertext",
            DecryptFailure::NotUtf8 => "the decrypted value is not UTF-8 text",
        }
    }
}

/// Decrypts ASCII-armored (or binary) age ciphertext.
pub fn decrypt(ciphertext: &str, identities: &Identities) -> Result<SecretString, DecryptFailure> {
    let plain = decrypt_bytes(ciphertext, identities)?;
    let text = std::str::from_utf8(&plain).map_err(|_| DecryptFailure::NotUtf8)?;
    Ok(SecretString::from(text.to_owned()))
}

/// As [`decrypt`], the plaintext as bytes (a sops file's data key is 32 raw bytes).
pub fn decrypt_bytes(
    ciphertext: &str,
    identities: &Identities,
) -> Result<Zeroizing<Vec<u8>>, DecryptFailure> {
    let ciphertext = ciphertext.trim();
    if !(ciphertext.starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
        || ciphertext.starts_with("age-encryption.org/"))
    {
        return Err(DecryptFailure::NotAge);
    }
    let reader = ArmoredReader::new(ciphertext.as_bytes());
    let decryptor = age::Decryptor::new(reader).map_err(map_decrypt_error)?;
    let mut stream = decryptor
        .decrypt(
            identities
                .keys
                .iter()
                .map(|k| k.as_ref() as &dyn age::Identity),
        )
        .map_err(map_decrypt_error)?;
    let mut plain = Zeroizing::new(Vec::new());
    (&mut stream)
        .take(MAX_INPUT)
        .read_to_end(&mut plain)
        .map_err(|_| DecryptFailure::Damaged)?;
    Ok(plain)
}

fn map_decrypt_error(e: age::DecryptError) -> DecryptFailure {
    match e {
        age::DecryptError::NoMatchingKeys => DecryptFailure::NoMatchingKey,
        // The text did start like age (checked above), so anything unreadable is damage.
        age::DecryptError::UnknownFormat => DecryptFailure::Damaged,
        _ => DecryptFailure::Damaged,
    }
}

/// A fresh X25519 identity: the secret key (zeroized on drop) and its public key.
pub struct NewIdentity {
    pub secret: SecretString,
    pub public: String,
}

pub fn generate_identity() -> NewIdentity {
    let id = age::x25519::Identity::generate();
    NewIdentity {
        secret: id.to_string(),
        public: id.to_public().to_string(),
    }
}

#[cfg(test)]
mod tests {

    /// age 0.12 has no post-quantum identity: one is refused by name, and its line number.
    #[test]
    fn a_post_quantum_identity_is_a_clear_error_that_quotes_no_key() {
        let env = |k: &str| {
            (k == "SOPS_AGE_KEY").then(|| {
                "# created: now\nAGE-SECRET-KEY-PQ-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\n".to_string()
            })
        };
        let lookup = IdentityLookup {
            files: &[],
            env: &env,
        };
        let Err(e) = lookup.load() else {
            panic!("a post-quantum identity was accepted");
        };
        assert_eq!(
            e.to_string(),
            "$SOPS_AGE_KEY, line 2 is a post-quantum age identity (AGE-SECRET-KEY-PQ-1...), which regops cannot use: it reads age X25519 and SSH identities"
        );
        // Beside an X25519 identity, it is left out and the other is used.
        let x25519 = generate_identity();
        let both = format!(
            "AGE-SECRET-KEY-PQ-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\n{}\n",
            x25519.secret.expose_secret()
        );
        let env = move |k: &str| (k == "SOPS_AGE_KEY").then(|| both.clone());
        let lookup = IdentityLookup {
            files: &[],
            env: &env,
        };
        let ids = lookup.load().unwrap();
        assert_eq!(ids.origins, ["$SOPS_AGE_KEY"]);
    }

    /// As a POSIX shell (and sops's `shlex.Split`) splits a command line.
    #[test]
    fn key_commands_are_split_as_a_shell_splits_them() {
        let split = |s: &str| split_command(s).map(|w| w.join("|"));
        assert_eq!(split("a b  c").as_deref(), Some("a|b|c"));
        assert_eq!(
            split(r#"pass show 'age/my key'"#).as_deref(),
            Some("pass|show|age/my key")
        );
        assert_eq!(
            split(r#"x "a \"b\" $c" d\ e"#).as_deref(),
            Some(r#"x|a "b" $c|d e"#)
        );
        assert_eq!(split(r#"a"b"'c'"#).as_deref(), Some("abc"));
        assert_eq!(split("''").as_deref(), Some(""));
        assert_eq!(split("a 'b"), None);
        assert_eq!(split("a \\"), None);
    }

    use super::*;

    fn ids_for(secret: &SecretString) -> Identities {
        let mut ids = Identities {
            keys: Vec::new(),
            origins: Vec::new(),
        };
        parse_identities(secret.expose_secret(), "test", &mut ids).unwrap();
        ids
    }

    fn recipient(public: &str) -> Vec<Recipient> {
        parse_recipients(&[Spanned::new(public.to_string(), Default::default())]).unwrap()
    }

    #[test]
    fn round_trip() {
        let id = generate_identity();
        let ct = encrypt(&SecretString::from("s3cret-value"), &recipient(&id.public)).unwrap();
        assert!(ct.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!ct.contains("s3cret-value"));
        assert_eq!(
            decrypt(&ct, &ids_for(&id.secret)).unwrap().expose_secret(),
            "s3cret-value"
        );
    }

    #[test]
    fn wrong_key_and_tampering_are_distinguished() {
        let a = generate_identity();
        let b = generate_identity();
        let ct = encrypt(&SecretString::from("x"), &recipient(&a.public)).unwrap();
        assert_eq!(
            decrypt(&ct, &ids_for(&b.secret)).unwrap_err(),
            DecryptFailure::NoMatchingKey
        );
        // Flip a character in the last line of the armored body: the encrypted payload.
        let mut lines: Vec<String> = ct.lines().map(str::to_string).collect();
        let last = lines.len() - 2;
        let c = if lines[last].starts_with('A') {
            "B"
        } else {
            "A"
        };
        lines[last].replace_range(0..1, c);
        let tampered = lines.join("\n");
        assert_eq!(
            decrypt(&tampered, &ids_for(&a.secret)).unwrap_err(),
            DecryptFailure::Damaged
        );
        assert_eq!(
            decrypt("hello", &ids_for(&a.secret)).unwrap_err(),
            DecryptFailure::NotAge
        );
    }

    #[test]
    fn bad_recipients_are_reported_without_echoing_private_keys() {
        let id = generate_identity();
        let Err(err) = parse_recipients(&[Spanned::new(
            id.secret.expose_secret().to_string(),
            Default::default(),
        )]) else {
            panic!("a private key was accepted as a recipient");
        };
        let d = err.iter().next().unwrap();
        assert!(!format!("{d:?}").contains(id.secret.expose_secret()));
        assert!(
            parse_recipients(&[Spanned::new("age1notakey".into(), Default::default())]).is_err()
        );
    }

    #[test]
    fn ssh_ed25519_recipient_with_comment() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@rust";
        assert_eq!(
            parse_recipients(&[Spanned::new(key.into(), Default::default())])
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn identity_lookup_order_and_env() {
        let id = generate_identity();
        let secret = id.secret.expose_secret().to_string();
        let env = move |k: &str| (k == "SOPS_AGE_KEY").then(|| secret.clone());
        let ids = IdentityLookup {
            files: &[],
            env: &env,
        }
        .load()
        .unwrap();
        assert_eq!(ids.origins, vec!["$SOPS_AGE_KEY".to_string()]);
        let none = |_: &str| None;
        assert!(matches!(
            IdentityLookup {
                files: &[],
                env: &none
            }
            .load(),
            Err(CryptoError::NoIdentities)
        ));
    }
}
