//! Reading the files a spec names (`file:`, `ageFile:`, `caFile:`; a cluster's `kubeconfig:` is
//! resolved here but read by kube): each path resolved inside the spec's root as
//! [`regops_spec::trust`] says and opened by handle on the path that was checked
//! ([`regops_spec::open`]), only regular files (a FIFO would block, `/dev/zero` never ends),
//! and never more than a stated size.

use std::io::Read;
use std::path::{Path, PathBuf};

use regops_spec::{Diagnostic, Sources, Spanned};
use zeroize::Zeroizing;

/// The largest password or ciphertext file read.
pub const SECRET_FILE_LIMIT: u64 = 1 << 20;
/// The largest CA bundle read (the whole Mozilla bundle is about 220 KiB).
pub const CA_FILE_LIMIT: u64 = 4 << 20;
/// The largest kubeconfig read.
pub const KUBECONFIG_LIMIT: u64 = 4 << 20;

/// A file the spec names, as [`path`] resolved it: where it is (for messages, and for the
/// commands that write it), and, unless the load restrictor is `none`, the root it must be
/// opened beneath. [`SpecPath::read`] opens it by handle from the root's directory, following
/// no symlink, so what is read is what was checked, whatever is swapped meanwhile.
#[derive(Clone, Debug)]
pub struct SpecPath {
    path: PathBuf,
    /// The root's real path and the file's path below it (plain names, no symlink among them
    /// when it was checked).
    beneath: Option<(PathBuf, PathBuf)>,
    /// The root's directory held open since the spec was read, and the file's path below it:
    /// opened there, whatever the root's name leads to by now.
    in_dir: Option<(regops_spec::open::RootDir, PathBuf)>,
}

impl std::ops::Deref for SpecPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for SpecPath {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl SpecPath {
    /// At most `limit` bytes of the regular file, opened beneath the spec's root as it was
    /// checked ([`regops_spec::open::regular_beneath`]); with `--load-restrictor none`, as [`read`].
    pub fn read(&self, limit: u64) -> Result<Zeroizing<Vec<u8>>, ReadError> {
        let file = match (&self.in_dir, &self.beneath) {
            (Some((dir, below)), _) => dir.regular(below)?,
            (None, Some((root, below))) => regops_spec::open::regular_beneath(root, below)?,
            (None, None) => regops_spec::open::regular(&self.path)?,
        };
        read_file(file, limit)
    }

    /// As [`SpecPath::read`], as UTF-8 text.
    pub fn read_text(&self, limit: u64) -> Result<Zeroizing<String>, ReadError> {
        utf8(self.read(limit)?)
    }
}

/// The file the spec's `path` names, inside its root; else a diagnostic at `path` that says
/// where it leads and which flag would allow it. `what` says whose file it is.
pub fn path(sources: &Sources, p: &Spanned<PathBuf>, what: &str) -> Result<SpecPath, Diagnostic> {
    let refused = |e: &dyn std::fmt::Display| {
        Diagnostic::error("trust::path", format!("{what}: {e}"))
            .with_label(p.loc, "outside the spec's root")
            .with_help(regops_spec::trust::PATH_HELP)
    };
    let resolved = sources.resolve(p.loc, &p.value).map_err(|e| refused(&e))?;
    let Some(root) = sources.confining_root(p.loc) else {
        return Ok(SpecPath {
            path: resolved,
            beneath: None,
            in_dir: None,
        });
    };
    // The root's directory held open since the spec was read: the file is opened below it,
    // on the path judged against the root's real path at that time (a root whose name leads
    // elsewhere by now is refused, not followed).
    if let Some((dir, real)) = sources.confining_dir(p.loc) {
        return match resolved.strip_prefix(real) {
            Ok(below) => Ok(SpecPath {
                in_dir: Some((dir.clone(), below.to_path_buf())),
                beneath: Some((real.to_path_buf(), below.to_path_buf())),
                path: resolved,
            }),
            Err(_) => Err(refused(&regops_spec::trust::PathRefused {
                written: p.value.clone(),
                why: "leads outside the spec's root",
            })),
        };
    }
    // `resolve` judged `resolved` against the root's real path; the same path is opened below
    // it. A root that moved in between is refused rather than judged again.
    match regops_spec::open::split_below(root, &resolved) {
        Some(beneath) => Ok(SpecPath {
            path: resolved,
            beneath: Some(beneath),
            in_dir: None,
        }),
        None => Err(refused(&regops_spec::trust::PathRefused {
            written: p.value.clone(),
            why: "leads outside the spec's root",
        })),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("it is not a regular file")]
    NotAFile,
    #[error("it is larger than the {} KiB limit", .0 >> 10)]
    TooLarge(u64),
    #[error(
        "it changed after it was checked: a symlink stands where the spec's root held a file or directory"
    )]
    Changed,
}

impl From<regops_spec::open::OpenError> for ReadError {
    fn from(e: regops_spec::open::OpenError) -> ReadError {
        use regops_spec::open::OpenError;
        match e {
            OpenError::Io(e) => ReadError::Io(e),
            OpenError::NotAFile => ReadError::NotAFile,
            OpenError::Changed => ReadError::Changed,
        }
    }
}

/// At most `limit` bytes of `file`, a regular file [`regops_spec::open`] opened.
fn read_file(file: std::fs::File, limit: u64) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let mut buf = Zeroizing::new(Vec::new());
    file.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok(buf)
}

/// At most `limit` bytes of the regular file at `path` (an error past it), in a buffer zeroed
/// on drop; symlinks followed (for the files the operator names: a saved plan, a credential
/// file of the environment's). A FIFO or a device is refused without blocking.
pub fn read(path: &Path, limit: u64) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    read_file(regops_spec::open::regular(path)?, limit)
}

/// As [`read`], as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> Result<Zeroizing<String>, ReadError> {
    utf8(read(path, limit)?)
}

fn utf8(mut bytes: Zeroizing<Vec<u8>>) -> Result<Zeroizing<String>, ReadError> {
    let text = String::from_utf8(std::mem::take(&mut *bytes)).map_err(|e| {
        // The bytes are moved into the error; zero them before they are dropped.
        let mut b = e.into_bytes();
        zeroize::Zeroize::zeroize(&mut b);
        ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "it is not UTF-8 text",
        ))
    })?;
    Ok(Zeroizing::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_capped_and_only_of_regular_files() {
        let dir = tempfile_dir();
        let f = dir.join("small");
        std::fs::write(&f, "abc").unwrap();
        assert_eq!(&**read(&f, 3).unwrap(), b"abc");
        assert!(matches!(read(&f, 2), Err(ReadError::TooLarge(2))));
        assert!(matches!(read(&dir, 10), Err(ReadError::NotAFile)));
        assert!(matches!(
            read(Path::new("/dev/zero"), 10),
            Err(ReadError::NotAFile)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What [`path`] hands out for `below` inside `root`.
    fn beneath(root: &Path, below: &str) -> SpecPath {
        let real = std::fs::canonicalize(root).unwrap();
        SpecPath {
            path: real.join(below),
            beneath: Some((real, below.into())),
            in_dir: None,
        }
    }

    /// What was checked is what is read: a directory or a file swapped for a symlink after the
    /// check is not followed, out of the root or into it; a FIFO is refused without blocking.
    #[test]
    fn a_spec_path_is_opened_beneath_its_root_following_no_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("d/secret"), "inside").unwrap();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        std::fs::write(dir.path().join("out/secret"), "OUTSIDE").unwrap();
        let p = beneath(&root, "d/secret");
        assert_eq!(&**p.read(100).unwrap(), b"inside");
        // The directory becomes a symlink out of the root.
        std::fs::rename(root.join("d"), root.join("d.was")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("out"), root.join("d")).unwrap();
        assert!(matches!(p.read(100), Err(ReadError::Changed)));
        // The file itself becomes a symlink, even to a file inside the root.
        std::fs::remove_file(root.join("d")).unwrap();
        std::fs::rename(root.join("d.was"), root.join("d")).unwrap();
        std::fs::rename(root.join("d/secret"), root.join("d/kept")).unwrap();
        std::os::unix::fs::symlink("kept", root.join("d/secret")).unwrap();
        assert!(matches!(p.read(100), Err(ReadError::Changed)));
        // A FIFO opens at once and is refused before a byte is read.
        std::fs::remove_file(root.join("d/secret")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            root.join("d/secret"),
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        assert!(matches!(p.read(100), Err(ReadError::NotAFile)));
        assert!(matches!(
            read(&root.join("d/secret"), 100),
            Err(ReadError::NotAFile)
        ));
        // A path with `..` in it is not one `path` hands out.
        assert!(beneath(&root, "d/../d/kept").read(100).is_err());
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("regops-confined-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
