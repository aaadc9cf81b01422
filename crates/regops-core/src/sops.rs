//! Reading files that sops (github.com/getsops/sops, 3.x) encrypted: YAML, JSON, dotenv, INI
//! and binary files, their values decrypted with the file's data key and checked against the
//! file's MAC exactly as sops checks them, and one value taken out with sops's `--extract` path.
//!
//! Pure: the caller reads the file (within the spec's trust model) and unwraps the data key
//! with its age identities ([`SopsFile::age_keys`]); this module parses, decrypts, verifies and
//! extracts. Every decrypted value lives in a [`Zeroizing`] buffer, and no error holds a value:
//! they name the path in the file and what is wrong.
//!
//! References are to sops's Go source (getsops/sops, v3.11): `sops.go` (`Tree.Decrypt`,
//! `shouldBeEncrypted`, `ToBytes`, `TreeBranch.Truncate`), `aes/cipher.go` (`Cipher.Decrypt`),
//! `stores/stores.go` (the metadata), `cmd/sops/decrypt.go` (the MAC check),
//! `cmd/sops/main.go` (`parseTreePath`) and the stores under `stores/`.

mod formats;
#[cfg(test)]
mod tests;

use std::fmt;

use aes_gcm::aead::consts::{U12, U32};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine as _;
use sha2::Digest as _;
use zeroize::Zeroizing;

/// The largest sops file read (sops files of registry logins are a few KiB).
pub const FILE_LIMIT: u64 = 1 << 20;

/// How sops wrote a file: the store it used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SopsFormat {
    Yaml,
    Json,
    Dotenv,
    Ini,
    /// A file sops encrypted whole: a JSON document whose `data` holds the file.
    Binary,
}

impl SopsFormat {
    /// The format sops picks for a path, by its name's ending
    /// ([`regops_spec::rules::sops_format_for_path`]).
    pub fn for_path(path: &str) -> SopsFormat {
        SopsFormat::parse(regops_spec::rules::sops_format_for_path(
            std::path::Path::new(path),
        ))
        .unwrap_or(SopsFormat::Binary)
    }

    /// sops's name for it (`--input-type`).
    pub fn parse(name: &str) -> Option<SopsFormat> {
        Some(match name {
            "yaml" => SopsFormat::Yaml,
            "json" => SopsFormat::Json,
            "dotenv" => SopsFormat::Dotenv,
            "ini" => SopsFormat::Ini,
            "binary" => SopsFormat::Binary,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SopsFormat::Yaml => "yaml",
            SopsFormat::Json => "json",
            SopsFormat::Dotenv => "dotenv",
            SopsFormat::Ini => "ini",
            SopsFormat::Binary => "binary",
        }
    }
}

/// What went wrong. None of these holds a value from the file, encrypted or not: they say
/// where (a path in `--extract` syntax) and what.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SopsError {
    #[error("it is not a valid {format} file (line {line})")]
    Syntax { format: &'static str, line: usize },
    #[error("it is not a {format} document sops wrote: {why}")]
    Shape {
        format: &'static str,
        why: &'static str,
    },
    #[error("it has no sops metadata: it is not a file sops encrypted")]
    NoMetadata,
    #[error("its sops metadata has no `{0}`")]
    MissingMetadata(&'static str),
    #[error("its sops metadata is malformed: {0}")]
    BadMetadata(&'static str),
    #[error("it uses {0}, which regops does not read; decrypt it with sops")]
    Unsupported(String),
    #[error("its `{field}` is not a regular expression regops can read")]
    BadRegex { field: &'static str },
    #[error("the value at {path} is not a value sops encrypted (`ENC[AES256_GCM,...]`)")]
    Malformed { path: String },
    #[error(
        "the value at {path} does not decrypt: it was changed after sops wrote it, or the data key is not this file's"
    )]
    Decrypt { path: String },
    #[error(
        "the MAC does not decrypt: `mac` or `lastmodified` was changed after sops wrote them, or the data key is not this file's"
    )]
    MacUndecryptable,
    #[error(
        "the MAC does not match its values: a value, a key or their order was changed after sops wrote the file"
    )]
    MacMismatch,
    #[error("the data key is not 32 bytes: it is not this file's")]
    BadDataKey,
    #[error(
        "`extract` is not a sops path: {0} (write it as sops's --extract does: `[\"key\"][0]`)"
    )]
    BadPath(&'static str),
    #[error("{path} is not in the file")]
    NotFound { path: String },
    #[error("the value at {path} is not base64 text (`decode: base64`)")]
    NotBase64 { path: String },
    #[error("the value at {path} is not a JSON document (`jsonKey`)")]
    NotJson { path: String },
    #[error("{key} is not in the JSON document at {path}")]
    NotInJson { path: String, key: String },
    #[error("{path} is {what}, not a single value")]
    NotAValue { path: String, what: &'static str },
}

/// The reference to one age recipient's copy of the data key (`sops.age[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgeKey {
    /// `age1...`, `age1pq1...` or an SSH public key.
    pub recipient: String,
    /// The data key, age-encrypted and ASCII-armored.
    pub enc: String,
}

/// A sops file, parsed, its values still encrypted.
#[derive(Debug)]
pub struct SopsFile {
    tree: Tree,
    meta: Metadata,
    format: SopsFormat,
}

/// A parsed value: what sops's stores put in a `sops.Tree`, comments left out (they are not
/// in the MAC, and regops never reads them).
#[derive(Debug)]
pub(crate) enum Tree {
    Map(Vec<(String, Tree)>),
    Seq(Vec<Tree>),
    Str(Zeroizing<String>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// YAML's null: sops walks past it (`walkValue`'s `case nil`), outside the MAC.
    Null,
}

#[derive(Debug, Default)]
struct Metadata {
    age: Vec<AgeKey>,
    lastmodified: String,
    mac: String,
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<regex::Regex>,
    encrypted_regex: Option<regex::Regex>,
    mac_only_encrypted: bool,
}

/// The metadata as read from either shape (nested, or flattened with `__map_` / `__list_`).
#[derive(Debug, Default)]
pub(crate) struct RawMetadata {
    pub(crate) scalars: Vec<(String, String)>,
    pub(crate) age: Vec<AgeKey>,
    /// The other key sources and key-group entries present (`pgp`, `kms`, `key_groups`...).
    pub(crate) others: Vec<String>,
}

/// What sops's other key sources are called, for the error that refuses them.
fn key_source_name(key: &str) -> &str {
    match key {
        "pgp" => "PGP keys (`pgp`)",
        "kms" => "AWS KMS keys (`kms`)",
        "gcp_kms" => "Google Cloud KMS keys (`gcp_kms`)",
        "azure_kv" => "Azure Key Vault keys (`azure_kv`)",
        "hc_vault" => "Vault transit keys (`hc_vault`)",
        "hckms" => "HuaweiCloud KMS keys (`hckms`)",
        other => other,
    }
}

/// The metadata keys that name a key source (`metadata` in `stores/stores.go`).
pub(crate) const KEY_SOURCES: [&str; 7] = [
    "age", "pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms",
];

impl RawMetadata {
    fn get(&self, key: &str) -> Option<&str> {
        self.scalars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn into_metadata(self) -> Result<Metadata, SopsError> {
        if self
            .others
            .iter()
            .any(|k| k == "key_groups" || k == "shamir_threshold")
            || self.get("shamir_threshold").is_some()
        {
            return Err(SopsError::Unsupported(
                "key groups (Shamir secret sharing of the data key)".into(),
            ));
        }
        for field in ["unencrypted_comment_regex", "encrypted_comment_regex"] {
            if self.get(field).is_some_and(|v| !v.is_empty()) {
                return Err(SopsError::Unsupported(format!("`{field}`")));
            }
        }
        if self.age.is_empty() {
            let mut others: Vec<&str> = self.others.iter().map(|k| key_source_name(k)).collect();
            others.dedup();
            return Err(SopsError::Unsupported(if others.is_empty() {
                "no key source regops knows (it has no `age` recipient)".into()
            } else {
                format!(
                    "only {} and no age recipient (regops reads sops files encrypted to age keys)",
                    others.join(", ")
                )
            }));
        }
        let regex = |field: &'static str| -> Result<Option<regex::Regex>, SopsError> {
            match self.get(field) {
                None | Some("") => Ok(None),
                Some(r) => regex::Regex::new(r)
                    .map(Some)
                    .map_err(|_| SopsError::BadRegex { field }),
            }
        };
        let text = |field: &str| self.get(field).filter(|v| !v.is_empty()).map(String::from);
        Ok(Metadata {
            lastmodified: text("lastmodified").ok_or(SopsError::MissingMetadata("lastmodified"))?,
            mac: text("mac").ok_or(SopsError::MissingMetadata("mac"))?,
            unencrypted_suffix: text("unencrypted_suffix"),
            encrypted_suffix: text("encrypted_suffix"),
            unencrypted_regex: regex("unencrypted_regex")?,
            encrypted_regex: regex("encrypted_regex")?,
            // A YAML or JSON bool, or the text of one in the flat stores.
            mac_only_encrypted: matches!(
                self.get("mac_only_encrypted"),
                Some("true" | "True" | "TRUE" | "1")
            ),
            age: self.age,
        })
    }
}

impl SopsFile {
    /// Parses `bytes` as sops writes `format`, and reads its metadata. Files whose data key is
    /// not (also) age-encrypted, or that use key groups or comment regexes, are refused.
    pub fn parse(bytes: &[u8], format: SopsFormat) -> Result<SopsFile, SopsError> {
        let (tree, raw) = formats::parse(bytes, format)?;
        Ok(SopsFile {
            tree,
            meta: raw.into_metadata()?,
            format,
        })
    }

    /// The data key's age-encrypted copies, one per recipient.
    pub fn age_keys(&self) -> &[AgeKey] {
        &self.meta.age
    }

    pub fn format(&self) -> SopsFormat {
        self.format
    }

    /// Decrypts every value with `data_key` and checks the file's MAC, as `sops decrypt` does
    /// (`cmd/sops/decrypt.go`: `tree.Decrypt`, then the stored MAC decrypted with
    /// `lastmodified` as its additional data, then compared).
    pub fn decrypt(&self, data_key: &[u8]) -> Result<Decrypted, SopsError> {
        let key: &[u8; 32] = data_key.try_into().map_err(|_| SopsError::BadDataKey)?;
        let mut walk = Walk {
            meta: &self.meta,
            key,
            hash: sha2::Sha512::new(),
            keys: Vec::new(),
            shown: Vec::new(),
        };
        if self.meta.mac_only_encrypted {
            walk.hash.update(MAC_ONLY_ENCRYPTED_INITIALIZATION);
        }
        let plain = walk.value(&self.tree)?;
        let computed = Zeroizing::new(
            walk.hash
                .finalize()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<String>(),
        );
        let (stored, _) = decrypt_value(
            &self.meta.mac,
            key,
            &lastmodified_aad(&self.meta.lastmodified),
        )
        .map_err(|e| match e {
            ValueError::Malformed => SopsError::BadMetadata("`mac` is not a value sops encrypted"),
            ValueError::Open => SopsError::MacUndecryptable,
        })?;
        if stored.as_slice() != computed.as_bytes() {
            return Err(SopsError::MacMismatch);
        }
        Ok(Decrypted {
            tree: plain,
            format: self.format,
        })
    }
}

/// `sops.MACOnlyEncryptedInitialization` (`sops.go`): the hash of a `mac_only_encrypted`
/// file starts with these bytes, so that its MAC differs from a full one.
const MAC_ONLY_ENCRYPTED_INITIALIZATION: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// The MAC's additional data: `LastModified.Format(time.RFC3339)` of the time sops parsed
/// from `lastmodified` (`cmd/sops/decrypt.go`). RFC 3339 as Go formats it has no fractional
/// seconds, so a fraction written in the file is dropped.
fn lastmodified_aad(text: &str) -> String {
    match text.find('.') {
        Some(dot) => {
            let rest = &text[dot + 1..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            format!("{}{}", &text[..dot], &rest[digits..])
        }
        None => text.to_string(),
    }
}

/// A decrypted value's type, as sops records it after `type:` (`aes/cipher.go`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Float,
    Bool,
    Bytes,
    Time,
    Comment,
}

enum ValueError {
    Malformed,
    Open,
}

/// `Cipher.Decrypt` (`aes/cipher.go`): `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`, AES-256-GCM
/// with the IV's length as the nonce size and `aad` as additional data.
fn decrypt_value(
    text: &str,
    key: &[u8; 32],
    aad: &str,
) -> Result<(Zeroizing<Vec<u8>>, Kind), ValueError> {
    static ENC: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let re = ENC
        .get_or_init(|| {
            regex::Regex::new(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]").ok()
        })
        .as_ref()
        .ok_or(ValueError::Malformed)?;
    let caps = re.captures(text).ok_or(ValueError::Malformed)?;
    let b64 = |i: usize| {
        caps.get(i)
            .and_then(|m| {
                base64::engine::general_purpose::STANDARD
                    .decode(m.as_str())
                    .ok()
            })
            .ok_or(ValueError::Malformed)
    };
    let mut data = b64(1)?;
    let iv = b64(2)?;
    let tag = b64(3)?;
    let kind = match caps.get(4).map(|m| m.as_str()) {
        Some("str") => Kind::Str,
        Some("int") => Kind::Int,
        Some("float") => Kind::Float,
        Some("bool") => Kind::Bool,
        Some("bytes") => Kind::Bytes,
        Some("time") => Kind::Time,
        Some("comment") => Kind::Comment,
        _ => return Err(ValueError::Malformed),
    };
    if tag.len() != 16 {
        return Err(ValueError::Malformed);
    }
    data.extend_from_slice(&tag);
    let payload = Payload {
        msg: &data,
        aad: aad.as_bytes(),
    };
    // sops writes 32-byte IVs (`nonceSize` in aes/cipher.go); 12 bytes is GCM's usual size.
    let plain =
        match iv.len() {
            32 => AesGcm::<Aes256, U32>::new(key.into())
                .decrypt(Nonce::<U32>::from_slice(&iv), payload),
            12 => AesGcm::<Aes256, U12>::new(key.into())
                .decrypt(Nonce::<U12>::from_slice(&iv), payload),
            _ => return Err(ValueError::Malformed),
        };
    plain
        .map(|p| (Zeroizing::new(p), kind))
        .map_err(|_| ValueError::Open)
}

/// The walk of `Tree.Decrypt` (`sops.go`): each value decrypted if `shouldBeEncrypted` says
/// it was encrypted, with its path of keys joined by `:` (and a trailing `:`) as additional
/// data; each value's bytes (`ToBytes`) hashed in order, all of them or, with
/// `mac_only_encrypted`, the encrypted ones.
struct Walk<'a> {
    meta: &'a Metadata,
    key: &'a [u8; 32],
    hash: sha2::Sha512,
    /// The mapping keys above the value (sops's `path`: list indices are not in it).
    keys: Vec<String>,
    /// The path in `--extract` syntax, for errors.
    shown: Vec<Step>,
}

pub use regops_spec::rules::SopsStep as Step;

/// A path written as sops's `--extract` takes it: `["harbor"]["password"]`, `[0]`.
pub fn show_path(steps: &[Step]) -> String {
    if steps.is_empty() {
        return "the document".into();
    }
    steps
        .iter()
        .map(|s| match s {
            // Debug quoting escapes quotes, backslashes and control characters.
            Step::Key(k) => format!("[{k:?}]"),
            Step::Index(i) => format!("[{i}]"),
        })
        .collect()
}

impl Walk<'_> {
    fn value(&mut self, tree: &Tree) -> Result<Plain, SopsError> {
        match tree {
            Tree::Map(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    self.keys.push(k.clone());
                    self.shown.push(Step::Key(k.clone()));
                    let plain = self.value(v);
                    self.keys.pop();
                    self.shown.pop();
                    out.push((k.clone(), plain?));
                }
                Ok(Plain::Map(out))
            }
            Tree::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, v) in items.iter().enumerate() {
                    self.shown.push(Step::Index(i));
                    let plain = self.value(v);
                    self.shown.pop();
                    out.push(plain?);
                }
                Ok(Plain::Seq(out))
            }
            Tree::Null => Ok(Plain::Null),
            leaf => self.leaf(leaf),
        }
    }

    fn leaf(&mut self, leaf: &Tree) -> Result<Plain, SopsError> {
        let encrypted = should_be_encrypted(self.meta, &self.keys);
        let path = || show_path(&self.shown);
        let value = if encrypted {
            let Tree::Str(text) = leaf else {
                // "Expected encrypted value as string" (`Tree.Decrypt`).
                return Err(SopsError::Malformed { path: path() });
            };
            if text.is_empty() {
                // `Cipher.Decrypt` returns "" for "" (`isEmpty`): sops never encrypts it.
                Plain::Value(Zeroizing::new(String::new()), Kind::Str)
            } else {
                let aad = format!("{}:", self.keys.join(":"));
                let (bytes, kind) = decrypt_value(text, self.key, &aad).map_err(|e| match e {
                    ValueError::Malformed => SopsError::Malformed { path: path() },
                    ValueError::Open => SopsError::Decrypt { path: path() },
                })?;
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|e| {
                        let mut b = e.into_bytes();
                        zeroize::Zeroize::zeroize(&mut b);
                        SopsError::Malformed { path: path() }
                    })
                    .map(Zeroizing::new)?;
                Plain::Value(text, kind)
            }
        } else {
            match leaf {
                Tree::Str(s) => Plain::Value(s.clone(), Kind::Str),
                Tree::Int(i) => Plain::Value(Zeroizing::new(i.to_string()), Kind::Int),
                Tree::Float(f) => Plain::Value(Zeroizing::new(go_float(*f)), Kind::Float),
                Tree::Bool(b) => Plain::Value(Zeroizing::new(go_bool(*b).into()), Kind::Bool),
                Tree::Map(_) | Tree::Seq(_) | Tree::Null => Plain::Null,
            }
        };
        if (!self.meta.mac_only_encrypted || encrypted)
            && let Plain::Value(text, kind) = &value
        {
            let bytes =
                to_bytes(text, *kind).ok_or_else(|| SopsError::Malformed { path: path() })?;
            self.hash.update(bytes.as_bytes());
        }
        Ok(value)
    }
}

/// `Tree.shouldBeEncrypted` (`sops.go`), without the comment regexes (files that use them are
/// refused): the rules apply in this order, each overriding the one before.
fn should_be_encrypted(meta: &Metadata, path: &[String]) -> bool {
    let mut encrypted = true;
    if let Some(suffix) = &meta.unencrypted_suffix
        && path.iter().any(|k| k.ends_with(suffix.as_str()))
    {
        encrypted = false;
    }
    if let Some(suffix) = &meta.encrypted_suffix {
        encrypted = path.iter().any(|k| k.ends_with(suffix.as_str()));
    }
    if let Some(re) = &meta.unencrypted_regex
        && path.iter().any(|k| re.is_match(k))
    {
        encrypted = false;
    }
    if let Some(re) = &meta.encrypted_regex {
        encrypted = path.iter().any(|k| re.is_match(k));
    }
    encrypted
}

/// `ToBytes` (`sops.go`) of a decrypted value of `kind`, whose text is what `Cipher.Decrypt`
/// parsed: ints and floats formatted again as Go does, booleans as `True`/`False`. `None` for a
/// value that does not parse as its type (sops fails on it too).
fn to_bytes(text: &str, kind: Kind) -> Option<Zeroizing<String>> {
    Some(Zeroizing::new(match kind {
        Kind::Str | Kind::Bytes | Kind::Comment | Kind::Time => text.to_string(),
        // `strconv.Atoi`, then `strconv.Itoa`.
        Kind::Int => text.parse::<i64>().ok()?.to_string(),
        // `strconv.ParseFloat`, then `strconv.FormatFloat(f, 'f', -1, 64)`.
        Kind::Float => go_float(text.parse::<f64>().ok()?),
        // `strconv.ParseBool`, then "True"/"False".
        Kind::Bool => go_bool(match text {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
            "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
            _ => return None,
        })
        .to_string(),
    }))
}

/// `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest decimal that reads back as `f`, never
/// an exponent; Rust's `Display` for `f64` writes the same digits.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{f}")
    }
}

fn go_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// A decrypted file.
#[derive(Debug)]
pub struct Decrypted {
    tree: Plain,
    format: SopsFormat,
}

#[derive(Debug)]
enum Plain {
    Map(Vec<(String, Plain)>),
    Seq(Vec<Plain>),
    Value(Zeroizing<String>, Kind),
    Null,
}

/// A path into a sops file, as `--extract` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractPath(pub Vec<Step>);

impl fmt::Display for ExtractPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&show_path(&self.0))
    }
}

impl ExtractPath {
    /// `parseTreePath` (`cmd/sops/main.go`), as [`regops_spec::rules::sops_path`] reads it.
    pub fn parse(text: &str) -> Result<ExtractPath, SopsError> {
        regops_spec::rules::sops_path(text)
            .map(ExtractPath)
            .map_err(SopsError::BadPath)
    }
}

impl Decrypted {
    /// The value at `path` (`TreeBranch.Truncate`, `sops.go`), as text: strings as they are,
    /// numbers and booleans as sops's stores print them. The whole file of a binary one at the
    /// empty path.
    pub fn extract(&self, path: &ExtractPath) -> Result<Zeroizing<String>, SopsError> {
        let steps: Vec<Step> = if path.0.is_empty() && self.format == SopsFormat::Binary {
            vec![Step::Key("data".into())]
        } else {
            path.0.clone()
        };
        let mut current = &self.tree;
        for (n, step) in steps.iter().enumerate() {
            let next = match (step, current) {
                (Step::Key(k), Plain::Map(entries)) => {
                    entries.iter().find(|(key, _)| key == k).map(|(_, v)| v)
                }
                (Step::Index(i), Plain::Seq(items)) => items.get(*i),
                _ => None,
            };
            current = next.ok_or_else(|| SopsError::NotFound {
                path: show_path(&steps[..=n]),
            })?;
        }
        let what = match current {
            Plain::Value(text, kind) => {
                return Ok(match kind {
                    // sops's YAML and JSON stores print booleans lowercase.
                    Kind::Bool => Zeroizing::new(
                        if to_bytes(text, *kind).is_some_and(|b| b.as_str() == "True") {
                            "true"
                        } else {
                            "false"
                        }
                        .to_string(),
                    ),
                    _ => text.clone(),
                });
            }
            Plain::Map(_) => "a mapping",
            Plain::Seq(_) => "a list",
            Plain::Null => "null",
        };
        Err(SopsError::NotAValue {
            path: show_path(&steps),
            what,
        })
    }
}

/// How a value read from a sops file is unwrapped before use: a Kubernetes Secret's `data` holds
/// base64, and a `.dockerconfigjson` holds JSON around the password.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unwrap {
    /// `decode: base64`: the value is base64 (standard alphabet, padded, as Kubernetes writes
    /// `data`).
    pub base64: bool,
    /// `jsonKey`: the value is a JSON document; take this path's value from it.
    pub json: Option<ExtractPath>,
}

/// A `jsonKey` as written: a plain key (`password`), or a path in `--extract` syntax
/// (`["auths"]["harbor.example.com"]["password"]`).
pub fn json_key(text: &str) -> Result<ExtractPath, SopsError> {
    if text.starts_with('[') {
        ExtractPath::parse(text)
    } else {
        Ok(ExtractPath(vec![Step::Key(text.to_string())]))
    }
}

impl Unwrap {
    /// `value`, found at `at` in the file, unwrapped.
    pub fn apply(
        &self,
        value: Zeroizing<String>,
        at: &ExtractPath,
    ) -> Result<Zeroizing<String>, SopsError> {
        let path = || at.to_string();
        let value = if self.base64 {
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(value.trim().as_bytes())
                    .map_err(|_| SopsError::NotBase64 { path: path() })?,
            );
            Zeroizing::new(
                std::str::from_utf8(&bytes)
                    .map_err(|_| SopsError::NotBase64 { path: path() })?
                    .to_string(),
            )
        } else {
            value
        };
        let Some(key) = &self.json else {
            return Ok(value);
        };
        let tree =
            formats::json_document(&value).map_err(|_| SopsError::NotJson { path: path() })?;
        let mut current = &tree;
        for step in &key.0 {
            let next = match (step, current) {
                (Step::Key(k), Tree::Map(entries)) => {
                    entries.iter().find(|(key, _)| key == k).map(|(_, v)| v)
                }
                (Step::Index(i), Tree::Seq(items)) => items.get(*i),
                _ => None,
            };
            current = next.ok_or_else(|| SopsError::NotInJson {
                path: path(),
                key: key.to_string(),
            })?;
        }
        match current {
            Tree::Str(s) => Ok(s.clone()),
            Tree::Int(i) => Ok(Zeroizing::new(i.to_string())),
            Tree::Float(f) => Ok(Zeroizing::new(go_float(*f))),
            Tree::Bool(b) => Ok(Zeroizing::new(b.to_string())),
            Tree::Map(_) | Tree::Seq(_) | Tree::Null => Err(SopsError::NotAValue {
                path: format!("{key} in the JSON document at {}", path()),
                what: match current {
                    Tree::Map(_) => "a mapping",
                    Tree::Seq(_) => "a list",
                    _ => "null",
                },
            }),
        }
    }
}
