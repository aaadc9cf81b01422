//! Every file regops writes (spec edits, `ageFile`s, the drift metrics textfile, an imported
//! spec, a new identity) is written one way: a sibling temporary file created exclusively
//! (`O_CREAT|O_EXCL`, so never through a link someone planted, and under a name nobody can
//! guess ahead), mode 0600 unless the file it replaces had other permissions, flushed to disk,
//! then renamed over the target (or linked into place where an existing file must be kept),
//! and the directory flushed. A target that is a symbolic link is refused, not followed; the
//! temporary file never outlives a failure.

use std::io::Write;
use std::path::{Path, PathBuf};

/// What to do when the target exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Replace it, keeping its permissions.
    Replace,
    /// Fail with `AlreadyExists`, even if it appears while writing.
    Keep,
}

/// Writes `bytes` to `path` atomically, as the module says.
pub fn write(path: &Path, bytes: &[u8], existing: Existing) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "it is a symbolic link; regops writes only regular files, never through a link",
            ));
        }
        Ok(_) if existing == Existing::Keep => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "it exists",
            ));
        }
        Ok(meta) if meta.is_file() => meta.permissions().mode() & 0o7777,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "it is not a regular file",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0o600,
        Err(e) => return Err(e),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (tmp, mut file) = create_temporary(&dir, path)?;
    let written = file
        .write_all(bytes)
        // The mode at creation is masked by the umask; set it exactly.
        .and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(mode)))
        .and_then(|()| file.sync_all())
        .and_then(|()| match existing {
            Existing::Replace => std::fs::rename(&tmp, path),
            Existing::Keep => std::fs::hard_link(&tmp, path),
        })
        .and_then(|()| std::fs::File::open(&dir)?.sync_all());
    drop(file);
    // After a rename it is gone already; after a link or a failure, it goes now.
    let _ = std::fs::remove_file(&tmp);
    written
}

/// [`write`], its failure in words for the user: a file that exists is kept, and says how to
/// replace it (`--force`).
pub(crate) fn write_file(
    path: &Path,
    bytes: &[u8],
    existing: Existing,
) -> Result<(), crate::failure::Failure> {
    use crate::failure::Failure;
    write(path, bytes, existing).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Failure::Message {
            message: format!("{} exists; nothing was written", path.display()),
            help: Some("pass --force to overwrite it".into()),
        },
        _ => Failure::caused(format!("cannot write {}", path.display()), e),
    })
}

/// A new, empty, private file beside `path`, under a name no other process chose first.
fn create_temporary(dir: &Path, path: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut last = None;
    for attempt in 0..16u32 {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            ^ attempt.wrapping_mul(0x9E37_79B9);
        let tmp = dir.join(format!(
            ".{name}.regops-{}-{nonce:08x}.tmp",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary file name was free")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".regops-"))
            .collect()
    }

    #[test]
    fn a_new_file_is_private_and_an_existing_one_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.prom");
        write(&p, b"one", Existing::Replace).unwrap();
        assert_eq!(
            (std::fs::read(&p).unwrap(), mode(&p)),
            (b"one".to_vec(), 0o600)
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&p, b"two", Existing::Replace).unwrap();
        assert_eq!(
            (std::fs::read(&p).unwrap(), mode(&p)),
            (b"two".to_vec(), 0o644)
        );
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn links_are_never_written_through_and_kept_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("regops.prom");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = write(&link, b"overwritten", Existing::Replace).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let e = write(&victim, b"overwritten", Existing::Keep).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let fresh = dir.path().join("new");
        write(&fresh, b"x", Existing::Keep).unwrap();
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "x");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file_and_the_target_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub");
        std::fs::create_dir(&target).unwrap();
        // A directory is not a file to replace.
        assert!(write(&target, b"x", Existing::Replace).is_err());
        assert!(target.is_dir());
        assert!(leftovers(dir.path()).is_empty());
        // A directory that cannot be written to: the error, and nothing left.
        let missing = dir.path().join("no-such-dir/file");
        assert!(write(&missing, b"x", Existing::Replace).is_err());
    }
}
