//! Reading the files a spec names (`file:`, `ageFile:`, `caFile:`, a cluster's `kubeconfig:`):
//! each path resolved inside the spec's root as [`regops_spec::trust`] says, only regular files
//! (a FIFO would block, `/dev/zero` never ends), and never more than a stated size.

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

/// The file the spec's `path` names, inside its root; else a diagnostic at `path` that says
/// where it leads and which flag would allow it. `what` says whose file it is.
pub fn path(sources: &Sources, p: &Spanned<PathBuf>, what: &str) -> Result<PathBuf, Diagnostic> {
    sources.resolve(p.loc, &p.value).map_err(|e| {
        Diagnostic::error("trust::path", format!("{what}: {e}"))
            .with_label(p.loc, "outside the spec's root")
            .with_help(regops_spec::trust::PATH_HELP)
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("it is not a regular file")]
    NotAFile,
    #[error("it is larger than the {} KiB limit", .0 >> 10)]
    TooLarge(u64),
}

/// At most `limit` bytes of the regular file at `path` (an error past it), in a buffer zeroed
/// on drop.
pub fn read(path: &Path, limit: u64) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(ReadError::NotAFile);
    }
    let file = std::fs::File::open(path)?;
    // Checked again on what was opened: the path may have been swapped in between.
    if !file.metadata()?.is_file() {
        return Err(ReadError::NotAFile);
    }
    let mut buf = Zeroizing::new(Vec::new());
    file.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok(buf)
}

/// As [`read`], as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> Result<Zeroizing<String>, ReadError> {
    let mut bytes = read(path, limit)?;
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

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("regops-confined-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
