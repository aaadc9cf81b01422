//! The spec's source files: which files, in which format, and positions within them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::node::{FileId, Loc, Node};
use crate::trust::LoadRestrictor;

/// The directory a file is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecFormat {
    Yaml,
    Toml,
}

impl SpecFormat {
    /// The format named by a file's extension: `.yaml`/`.yml` or `.toml`.
    pub fn from_path(path: &Path) -> Option<SpecFormat> {
        match path.extension()?.to_str()? {
            "yaml" | "yml" => Some(SpecFormat::Yaml),
            "toml" => Some(SpecFormat::Toml),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The path as the user gave it (or as found in a directory), for messages.
    pub name: String,
    pub path: PathBuf,
    /// The spec's root for the paths this file names: the `-f` directory it was found in, or
    /// the directory of the `-f` file (see [`crate::trust`]).
    pub root: PathBuf,
    /// The root's directory, held open since the spec was read (`-f` read with the load
    /// restrictor on), and its real path then: what the files it names are opened below
    /// ([`crate::open::RootDir`]).
    pub root_dir: Option<(crate::open::RootDir, PathBuf)>,
    pub text: Arc<str>,
    pub format: SpecFormat,
}

#[derive(Clone, Debug, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
    /// Ranges holding plaintext secrets, masked whenever source text is shown.
    redacted: Vec<Loc>,
    /// Whether the paths the files name must stay inside their root.
    restrictor: LoadRestrictor,
}

impl Sources {
    /// Adds a file whose root is its own directory.
    pub fn add(&mut self, path: PathBuf, text: String, format: SpecFormat) -> FileId {
        let root = parent_dir(&path);
        self.add_with_root(path, root, text, format)
    }

    /// Adds a file read from the `-f` directory `root`.
    pub fn add_with_root(
        &mut self,
        path: PathBuf,
        root: PathBuf,
        text: String,
        format: SpecFormat,
    ) -> FileId {
        self.files.push(SourceFile {
            name: path.display().to_string(),
            path,
            root,
            root_dir: None,
            text: Arc::from(text),
            format,
        });
        self.files.len() - 1
    }

    /// The root directory held open for `loc`'s file, and its real path when it was opened.
    pub fn confining_dir(&self, loc: Loc) -> Option<(&crate::open::RootDir, &Path)> {
        match self.restrictor {
            LoadRestrictor::None => None,
            LoadRestrictor::RootOnly => self
                .files
                .get(loc.file)
                .and_then(|f| f.root_dir.as_ref())
                .map(|(dir, real)| (dir, real.as_path())),
        }
    }

    /// Sets how far the paths a spec names may reach (`--load-restrictor`).
    pub fn set_restrictor(&mut self, restrictor: LoadRestrictor) {
        self.restrictor = restrictor;
    }

    pub fn restrictor(&self) -> LoadRestrictor {
        self.restrictor
    }

    /// The root the paths of `loc`'s file are confined to; `None` when the load restrictor is
    /// `none`.
    pub fn confining_root(&self, loc: Loc) -> Option<&Path> {
        match self.restrictor {
            LoadRestrictor::None => None,
            LoadRestrictor::RootOnly => self.files.get(loc.file).map(|f| f.root.as_path()),
        }
    }

    /// The file a path at `loc` names: relative to the directory of the file that names it,
    /// and (unless the load restrictor is `none`) inside that file's root once symlinks are
    /// followed. See [`crate::trust::confine`].
    pub fn resolve(&self, loc: Loc, path: &Path) -> Result<PathBuf, crate::trust::PathRefused> {
        let (base, root) = self
            .files
            .get(loc.file)
            .map(|f| (parent_dir(&f.path), f.root.clone()))
            .unwrap_or_else(|| (PathBuf::from("."), PathBuf::from(".")));
        let joined = base.join(path);
        match self.restrictor {
            LoadRestrictor::None => Ok(joined),
            LoadRestrictor::RootOnly => crate::trust::confine(&root, &joined, path),
        }
    }

    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id)
    }

    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, loc: Loc) -> (usize, usize) {
        let Some(file) = self.files.get(loc.file) else {
            return (0, 0);
        };
        let before = &file.text[..loc.start.min(file.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    /// `file:line:col`.
    pub fn position(&self, loc: Loc) -> String {
        let (line, col) = self.line_col(loc);
        let name = self
            .files
            .get(loc.file)
            .map_or("<unknown>", |f| f.name.as_str());
        format!("{name}:{line}:{col}")
    }

    /// The source text a location covers.
    pub fn slice(&self, loc: Loc) -> &str {
        self.files
            .get(loc.file)
            .and_then(|f| f.text.get(loc.start..loc.end))
            .unwrap_or("")
    }

    /// Marks a range as secret: [`Sources::display_text`] masks it.
    pub fn redact(&mut self, loc: Loc) {
        self.redacted.push(loc);
    }

    /// A file's text for display in diagnostics: redacted ranges, and the values of lines that
    /// look like `password: <plaintext>`, replaced by `*` byte for byte, so offsets still hold.
    pub fn display_text(&self, id: FileId) -> Arc<str> {
        let Some(file) = self.files.get(id) else {
            return Arc::from("");
        };
        let mut bytes = file.text.as_bytes().to_vec();
        for loc in self.redacted.iter().filter(|l| l.file == id) {
            mask(&mut bytes, loc.start, loc.end);
        }
        // An age private key pasted anywhere (say, into `recipients`) is never shown.
        let mut from = 0;
        while let Some(i) = file.text[from..].find("AGE-SECRET-KEY-") {
            let start = from + i;
            let len = file.text[start..]
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                .unwrap_or(file.text.len() - start);
            mask(&mut bytes, start, start + len);
            from = start + len;
        }
        let mut offset = 0;
        for line in file.text.split_inclusive('\n') {
            if let Some((start, end)) = plaintext_secret_value(line) {
                mask(&mut bytes, offset + start, offset + end);
            }
            offset += line.len();
        }
        // Masking replaces whole characters' bytes (and newlines are never masked), so the
        // result is valid UTF-8; fall back to the original only if that reasoning were wrong.
        match String::from_utf8(bytes) {
            Ok(s) => Arc::from(s),
            Err(_) => Arc::from("<source not shown>"),
        }
    }

    /// Parses one file into a [`Node`].
    pub fn parse(&self, id: FileId, diags: &mut Diagnostics) -> Option<Node> {
        let file = self.files.get(id)?;
        match file.format {
            SpecFormat::Yaml => crate::yaml::parse(id, &file.text, diags),
            SpecFormat::Toml => crate::toml::parse(id, &file.text, diags),
        }
    }
}

/// Errors reading spec files from disk, before any parsing.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read spec file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: unknown spec format; use a .yaml, .yml or .toml file")]
    UnknownFormat { path: PathBuf },
    #[error("{path} holds no .yaml, .yml or .toml files")]
    EmptyDirectory { path: PathBuf },
    #[error(
        "spec file {refused}: a spec file is read only from the directory it is named in (--load-restrictor none lifts this)"
    )]
    Outside { refused: crate::trust::PathRefused },
    #[error("no spec given: pass -f FILE or -f DIRECTORY")]
    NoSpec,
    #[error(
        "{path} is larger than the {limit} MiB limit for a spec file",
        limit = MAX_SPEC_FILE_BYTES >> 20
    )]
    TooLarge { path: PathBuf },
}

/// The largest spec file read. Specs are small (thousands of registries fit in a few hundred
/// KiB); the bound keeps a hostile file in a pull request from filling memory before parsing
/// has a chance to apply its own limits.
pub const MAX_SPEC_FILE_BYTES: u64 = 16 << 20;

/// Reads the given files and directories (each directory's `.yaml`, `.yml` and `.toml` files,
/// in name order, not recursing) into [`Sources`].
pub fn read_paths(paths: &[PathBuf], restrictor: LoadRestrictor) -> Result<Sources, LoadError> {
    if paths.is_empty() {
        return Err(LoadError::NoSpec);
    }
    let mut sources = Sources::default();
    sources.set_restrictor(restrictor);
    // Each root's directory, opened once: the spec's files and every file they name are read
    // below it.
    // `real` is the root's real path as it was checked; opened name by name with no symlink
    // followed, a root swapped for a symlink since is refused, not followed.
    let open_root =
        |root: &Path, real: PathBuf| -> Result<(crate::open::RootDir, PathBuf), LoadError> {
            let read_err = |source| LoadError::Read {
                path: root.to_path_buf(),
                source,
            };
            let dir = crate::open::RootDir::open(&real).map_err(|e| match e {
                crate::open::OpenError::Io(e) => read_err(e),
                other => read_err(std::io::Error::other(other.to_string())),
            })?;
            Ok((dir, real))
        };
    for path in paths {
        // The `-f` path itself is the pull request's too: a `regops.yaml` (or a `specs/`)
        // committed as a symlink to `~/.aws/credentials` (or `/etc`) would be read and quoted in
        // diagnostics. It must stay in the directory it is named in.
        let checked = match restrictor {
            LoadRestrictor::RootOnly => {
                Some(confine_spec_path(path).map_err(|refused| LoadError::Outside { refused })?)
            }
            LoadRestrictor::None => None,
        };
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|source| LoadError::Read {
                path: path.clone(),
                source,
            })?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && SpecFormat::from_path(p).is_some())
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(LoadError::EmptyDirectory { path: path.clone() });
            }
            // The directory as it was checked (its real path then).
            let root_dir = match &checked {
                Some(real) => Some(open_root(path, real.clone())?),
                None => None,
            };
            for file in files {
                // A file found in the directory is the spec's own only if it is in the
                // directory (a symlink to `~/.kube/config` named `x.yaml` would otherwise be
                // parsed and quoted in diagnostics).
                let checked = match &root_dir {
                    Some((dir, real)) => {
                        let written = file.strip_prefix(path).unwrap_or(&file).to_path_buf();
                        let resolved = crate::trust::confine(path, &file, &written)
                            .map_err(|refused| LoadError::Outside { refused })?;
                        Some((dir.clone(), real.clone(), resolved))
                    }
                    None => None,
                };
                read_one(&mut sources, file.clone(), path.clone(), checked)?;
            }
        } else {
            let root = parent_dir(path);
            let checked = match checked {
                Some(resolved) => {
                    // The file's directory, as it is now: the file must still be below it (a
                    // directory swapped since the file was checked makes this fail).
                    let real = std::fs::canonicalize(&root).map_err(|source| LoadError::Read {
                        path: root.clone(),
                        source,
                    })?;
                    let (dir, real) = open_root(&root, real)?;
                    Some((dir, real, resolved))
                }
                None => None,
            };
            read_one(&mut sources, path.clone(), root.clone(), checked)?;
        }
    }
    Ok(sources)
}

/// Whether the `-f` path stays where it is named: it stays in the directory it is named in
/// (a symlink there may lead to a sibling, as a ConfigMap mount's `regops.yaml ->
/// ..data/regops.yaml` does), and, when it is relative, so does every directory on the way
/// below the working directory: `regops/regops.yaml`, with `regops` a committed symlink to a
/// directory out of the checkout, would read the spec there and the files beside it. An
/// absolute path's directories are the operator's to choose (`/spec/` may be a mount, `/tmp` a
/// symlink); `..` climbs out of the working directory by the operator's choice too.
fn confine_spec_path(path: &Path) -> Result<PathBuf, crate::trust::PathRefused> {
    if path.is_relative() {
        let mut on_the_way = PathBuf::new();
        let mut dirs = path.components().peekable();
        while let Some(c) = dirs.next() {
            on_the_way.push(c);
            // The last name is judged below, as written (`specs/` must be a directory).
            if dirs.peek().is_some() && matches!(c, std::path::Component::Normal(_)) {
                crate::trust::confine(&parent_dir(&on_the_way), &on_the_way, path)?;
            }
        }
    }
    crate::trust::confine(&parent_dir(path), path, path)
}

/// Reads the spec file `path` into `sources`, with `root` the root of the paths it names. When
/// it was `checked` (the root's directory held open, its real path then, and `path` as the
/// trust boundary resolved it), it is opened by handle below that directory, on the path that
/// was checked ([`crate::open`]), and the directory is kept for the files the spec names.
fn read_one(
    sources: &mut Sources,
    path: PathBuf,
    root: PathBuf,
    checked: Option<(crate::open::RootDir, PathBuf, PathBuf)>,
) -> Result<FileId, LoadError> {
    let format = SpecFormat::from_path(&path)
        .ok_or_else(|| LoadError::UnknownFormat { path: path.clone() })?;
    let read_err = |source| LoadError::Read {
        path: path.clone(),
        source,
    };
    let opened = match &checked {
        // Judged against the root's real path when its directory was opened: one that moved
        // since is refused rather than judged again.
        Some((dir, real, resolved)) => match resolved.strip_prefix(real) {
            Ok(below) => dir.regular(below),
            Err(_) => Err(crate::open::OpenError::Changed),
        },
        None => crate::open::regular(&path),
    };
    let file = opened.map_err(|e| match e {
        crate::open::OpenError::Io(e) => read_err(e),
        other => read_err(std::io::Error::other(other.to_string())),
    })?;
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_SPEC_FILE_BYTES + 1),
        &mut text,
    )
    .map_err(read_err)?;
    if text.len() as u64 > MAX_SPEC_FILE_BYTES {
        return Err(LoadError::TooLarge { path });
    }
    let id = sources.add_with_root(path, root, text, format);
    if let Some((dir, real, _)) = checked
        && let Some(f) = sources.files.get_mut(id)
    {
        f.root_dir = Some((dir, real));
    }
    Ok(id)
}

/// A diagnostic for a value that is not of the expected kind.
pub(crate) fn expected(node: &Node, what: &str) -> Diagnostic {
    Diagnostic::error(
        "spec::type",
        format!("expected {what}, found {}", node.kind()),
    )
    .with_label(node.loc, format!("expected {what}"))
}

fn mask(bytes: &mut [u8], start: usize, end: usize) {
    let end = end.min(bytes.len());
    let mut i = start;
    while i < end {
        // Replace a whole UTF-8 sequence with as many '*' as it has bytes.
        if bytes[i] != b'\n' && bytes[i] != b'\r' {
            bytes[i] = b'*';
        }
        i += 1;
    }
    // A multi-byte character cut by `end` would leave continuation bytes: mask them too.
    let mut j = end;
    while j < bytes.len() && (bytes[j] & 0xC0) == 0x80 {
        bytes[j] = b'*';
        j += 1;
    }
}

/// The byte range of a plaintext value on a `password: value` / `password = "value"` line, if
/// the value is not ciphertext, a reference (`{ env: ... }`) or a block-scalar header.
fn plaintext_secret_value(line: &str) -> Option<(usize, usize)> {
    let trimmed = line.trim_start();
    let indent = line.len() - trimmed.len();
    let key_end = trimmed.find(|c: char| c == ':' || c == '=' || c.is_whitespace())?;
    let key = trimmed[..key_end].trim_matches(|c| c == '"' || c == '\'');
    if !matches!(
        key.to_ascii_lowercase().as_str(),
        "password" | "token" | "secret" | "auth"
    ) {
        return None;
    }
    let rest = &trimmed[key_end..];
    let sep = rest.find([':', '='])?;
    let value = &rest[sep + 1..];
    let value_trimmed = value.trim();
    if value_trimmed.is_empty()
        || value_trimmed.starts_with('{')
        || value_trimmed.starts_with('|')
        || value_trimmed.starts_with('>')
        || value_trimmed.starts_with("\"\"\"")
        || value_trimmed
            .trim_start_matches(['"', '\''])
            .starts_with("-----BEGIN AGE")
    {
        return None;
    }
    let start = indent + key_end + sep + 1 + (value.len() - value.trim_start().len());
    Some((start, start + value_trimmed.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_plaintext_password_lines() {
        let mut s = Sources::default();
        let text =
            "a:\n  password: hunter2\n  token = \"t0k\"\n  password: { env: X }\n  password: |\n";
        let id = s.add("x.yaml".into(), text.into(), SpecFormat::Yaml);
        let shown = s.display_text(id);
        assert!(!shown.contains("hunter2") && !shown.contains("t0k"));
        assert!(shown.contains("{ env: X }") && shown.contains("password: |"));
        assert_eq!(shown.len(), text.len());
    }

    #[test]
    fn masks_pasted_private_keys() {
        let mut s = Sources::default();
        let text = "recipients:\n  - AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\n";
        let id = s.add("x.yaml".into(), text.into(), SpecFormat::Yaml);
        let shown = s.display_text(id);
        assert!(!shown.contains("AGE-SECRET-KEY-1Q"), "{shown}");
        assert!(shown.starts_with("recipients:\n  - ***"));
    }

    #[test]
    fn masks_redacted_ranges_keeping_utf8() {
        let mut s = Sources::default();
        let text = "x: geheim-ä\ny: ok\n";
        let id = s.add("x.yaml".into(), text.into(), SpecFormat::Yaml);
        s.redact(Loc::new(id, 3, 12));
        let shown = s.display_text(id);
        assert!(!shown.contains("geheim"));
        assert!(shown.ends_with("y: ok\n"));
    }
}
