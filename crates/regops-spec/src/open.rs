//! Opening the files a spec is read from, and the files it names, for reading: never blocking
//! (a FIFO opens at once, without a writer), never becoming the controlling terminal, never
//! inherited by a child, and only a regular file (checked on the handle, before a byte is
//! read). A file the trust boundary confined ([`crate::trust::confine`]) is opened by handle
//! below its root's directory, on the path that was checked, following no symlink
//! ([`regular_beneath`]): a local process that swaps a directory or a file for a symlink after
//! the check makes the open fail instead of leading it out of the root (or into `.git`).

use std::fs::File;
use std::path::Path;

/// Why a file was not opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("it is not a regular file")]
    NotAFile,
    #[error(
        "it changed after it was checked: a symlink stands where the spec's root held a file or directory"
    )]
    Changed,
}

/// The regular file at `path`, symlinks followed (a path the operator gave, or one a spec
/// names under `--load-restrictor none`).
pub fn regular(path: &Path) -> Result<File, OpenError> {
    imp::regular(path)
}

/// The regular file `below` the directory `root`, where `root` is a real path (absolute, no
/// symlink in it: what `canonicalize` gives) and `below` plain names, as
/// [`crate::trust::confine`] resolved and checked them. No symlink is followed, in `root` or
/// below it: the root is opened name by name from `/`, the file below its handle with
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` where the kernel
/// has it (Linux 5.6), else with one `openat(O_NOFOLLOW)` per name. A symlink found on the way
/// is [`OpenError::Changed`]: there was none when the path was checked.
pub fn regular_beneath(root: &Path, below: &Path) -> Result<File, OpenError> {
    imp::regular_beneath(root, below)
}

/// A spec's root directory, held open from when the spec was read: every file the spec names
/// is opened below this very directory ([`RootDir::regular`]), whatever its name leads to by
/// then. A local process that swaps the root's name for a symlink (or another directory)
/// after the spec was read cannot redirect the reads (an attack review found it could, 35 of
/// 50 runs, when the root's real path was looked up again for each read).
#[derive(Clone, Debug)]
pub struct RootDir {
    #[cfg(unix)]
    fd: std::sync::Arc<std::os::fd::OwnedFd>,
    #[cfg(not(unix))]
    path: std::path::PathBuf,
}

impl RootDir {
    /// Opens the directory at the real path `real` (absolute, no symlink: what `canonicalize`
    /// gives), name by name from `/`, following no symlink.
    pub fn open(real: &Path) -> Result<RootDir, OpenError> {
        imp::root_dir(real)
    }

    /// The regular file `below` this directory (plain names), following no symlink.
    pub fn regular(&self, below: &Path) -> Result<File, OpenError> {
        imp::regular_in(self, below)
    }
}

/// `resolved` (what [`crate::trust::confine`] returned for a path inside `root`) split into
/// `root`'s real path and the names below it, for [`regular_beneath`]; `None` if it is not
/// below the root's real path now (the root moved since).
pub fn split_below(
    root: &Path,
    resolved: &Path,
) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let real = std::fs::canonicalize(root).ok()?;
    let below = resolved.strip_prefix(&real).ok()?.to_path_buf();
    Some((real, below))
}

#[cfg(unix)]
mod imp {
    use std::ffi::OsStr;
    use std::fs::File;
    use std::os::fd::{AsFd, OwnedFd};
    use std::path::{Component, Path};

    use rustix::fs::{FileType, Mode, OFlags};
    use rustix::io::Errno;

    use super::OpenError;

    /// How a file is opened for reading.
    pub(super) const FILE_FLAGS: OFlags = OFlags::RDONLY
        .union(OFlags::CLOEXEC)
        .union(OFlags::NOCTTY)
        .union(OFlags::NONBLOCK);
    /// How the directories on the way are opened: on Linux as `O_PATH`, which needs only the
    /// search permission a lookup through them needs (`/home/user` may be `0711`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) const DIR_FLAGS: OFlags =
        OFlags::PATH.union(OFlags::CLOEXEC).union(OFlags::DIRECTORY);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) const DIR_FLAGS: OFlags = OFlags::RDONLY
        .union(OFlags::CLOEXEC)
        .union(OFlags::DIRECTORY);

    pub(super) fn regular(path: &Path) -> Result<File, OpenError> {
        let fd = rustix::fs::open(path, FILE_FLAGS, Mode::empty()).map_err(std::io::Error::from)?;
        checked(fd)
    }

    pub(super) fn regular_beneath(root: &Path, below: &Path) -> Result<File, OpenError> {
        let top = rustix::fs::open("/", DIR_FLAGS, Mode::empty()).map_err(changed)?;
        let dir = open_names(top, &plain_names(root)?, DIR_FLAGS).map_err(changed)?;
        let fd = open_names(dir, &plain_names(below)?, FILE_FLAGS).map_err(changed)?;
        checked(fd)
    }

    pub(super) fn root_dir(real: &Path) -> Result<super::RootDir, OpenError> {
        let top = rustix::fs::open("/", DIR_FLAGS, Mode::empty()).map_err(changed)?;
        let dir = open_names(top, &plain_names(real)?, DIR_FLAGS).map_err(changed)?;
        Ok(super::RootDir {
            fd: std::sync::Arc::new(dir),
        })
    }

    pub(super) fn regular_in(root: &super::RootDir, below: &Path) -> Result<File, OpenError> {
        let dir = root.fd.try_clone()?;
        let fd = open_names(dir, &plain_names(below)?, FILE_FLAGS).map_err(changed)?;
        checked(fd)
    }

    /// Only a swap makes these: the path was checked to be plain names, no symlink.
    fn changed(e: Errno) -> OpenError {
        match e {
            Errno::LOOP | Errno::NOTDIR | Errno::XDEV => OpenError::Changed,
            e => OpenError::Io(e.into()),
        }
    }

    /// `fd` as a file, if it is a regular one.
    fn checked(fd: OwnedFd) -> Result<File, OpenError> {
        let stat = rustix::fs::fstat(&fd).map_err(std::io::Error::from)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(OpenError::NotAFile);
        }
        Ok(File::from(fd))
    }

    /// The names of `path` (a real path, or one below a root), refusing `..` and the like.
    pub(super) fn plain_names(path: &Path) -> Result<Vec<&OsStr>, OpenError> {
        let mut names = Vec::new();
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(n) => names.push(n),
                Component::ParentDir | Component::Prefix(_) => return Err(OpenError::Changed),
            }
        }
        Ok(names)
    }

    /// `names` below `dir`, the last opened with `flags`, following no symlink.
    pub(super) fn open_names(
        dir: OwnedFd,
        names: &[&OsStr],
        flags: OFlags,
    ) -> Result<OwnedFd, Errno> {
        if names.is_empty() {
            return Ok(dir);
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::fs::ResolveFlags;
            let joined: std::path::PathBuf = names.iter().collect();
            let resolve =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(&dir, &joined, flags, Mode::empty(), resolve) {
                // No openat2 (before Linux 5.6, or a seccomp filter that refuses it), or a
                // rename somewhere on the file system while it resolved: walk name by name.
                Err(Errno::NOSYS | Errno::PERM | Errno::INVAL | Errno::TOOBIG | Errno::AGAIN) => {}
                done => return done,
            }
        }
        walk(dir, names, flags)
    }

    /// `names` below `dir` with one `openat(O_NOFOLLOW)` each: a symlink anywhere fails it.
    pub(super) fn walk(
        mut dir: OwnedFd,
        names: &[&OsStr],
        flags: OFlags,
    ) -> Result<OwnedFd, Errno> {
        let Some((last, on_the_way)) = names.split_last() else {
            return Ok(dir);
        };
        for name in on_the_way {
            dir = rustix::fs::openat(
                dir.as_fd(),
                *name,
                DIR_FLAGS | OFlags::NOFOLLOW,
                Mode::empty(),
            )?;
        }
        rustix::fs::openat(dir.as_fd(), *last, flags | OFlags::NOFOLLOW, Mode::empty())
    }
}

/// Elsewhere, by name (regops itself runs on Unix; this keeps the spec crate portable).
#[cfg(not(unix))]
mod imp {
    use std::fs::File;
    use std::path::Path;

    use super::OpenError;

    pub(super) fn regular(path: &Path) -> Result<File, OpenError> {
        let file = File::open(path)?;
        if !file.metadata()?.is_file() {
            return Err(OpenError::NotAFile);
        }
        Ok(file)
    }

    pub(super) fn regular_beneath(root: &Path, below: &Path) -> Result<File, OpenError> {
        regular(&root.join(below))
    }

    pub(super) fn root_dir(real: &Path) -> Result<super::RootDir, OpenError> {
        Ok(super::RootDir {
            path: real.to_path_buf(),
        })
    }

    pub(super) fn regular_in(root: &super::RootDir, below: &Path) -> Result<File, OpenError> {
        regular(&root.path.join(below))
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::ffi::OsStr;
    use std::io::Read as _;

    use rustix::fs::Mode;
    use rustix::io::Errno;

    use super::imp::{DIR_FLAGS, FILE_FLAGS, open_names, plain_names, walk};
    use super::*;

    fn read(f: Result<File, OpenError>) -> String {
        let mut s = String::new();
        f.unwrap().read_to_string(&mut s).unwrap();
        s
    }

    /// What was checked is what is read: a directory or a file swapped for a symlink after the
    /// check is not followed, out of the root or within it; a FIFO is refused without blocking.
    #[test]
    fn a_file_is_opened_beneath_its_root_following_no_symlink() {
        let dir = std::env::temp_dir().join(format!("regops-open-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("d/secret"), "inside").unwrap();
        std::fs::create_dir_all(dir.join("out")).unwrap();
        std::fs::write(dir.join("out/secret"), "OUTSIDE").unwrap();
        let real = std::fs::canonicalize(&root).unwrap();
        let open = || regular_beneath(&real, Path::new("d/secret"));
        assert_eq!(read(open()), "inside");
        // The directory becomes a symlink out of the root.
        std::fs::rename(root.join("d"), root.join("d.was")).unwrap();
        std::os::unix::fs::symlink(dir.join("out"), root.join("d")).unwrap();
        assert!(matches!(open(), Err(OpenError::Changed)));
        // The file itself becomes a symlink, even to a file inside the root.
        std::fs::remove_file(root.join("d")).unwrap();
        std::fs::rename(root.join("d.was"), root.join("d")).unwrap();
        std::fs::rename(root.join("d/secret"), root.join("d/kept")).unwrap();
        std::os::unix::fs::symlink("kept", root.join("d/secret")).unwrap();
        assert!(matches!(open(), Err(OpenError::Changed)));
        // A FIFO opens at once and is refused before a byte is read.
        std::fs::remove_file(root.join("d/secret")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            root.join("d/secret"),
            Mode::RUSR | Mode::WUSR,
        )
        .unwrap();
        assert!(matches!(open(), Err(OpenError::NotAFile)));
        assert!(matches!(
            regular(&root.join("d/secret")),
            Err(OpenError::NotAFile)
        ));
        assert!(matches!(
            regular(Path::new("/dev/zero")),
            Err(OpenError::NotAFile)
        ));
        // `..` is not a name confine() hands out; nor is a root that is not a real path.
        assert!(regular_beneath(&real, Path::new("d/../d/kept")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The walk for kernels without openat2 (and for macOS) refuses what openat2 refuses.
    #[test]
    fn the_walk_name_by_name_follows_no_symlink() {
        let dir = std::env::temp_dir().join(format!("regops-walk-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("d")).unwrap();
        let root = std::fs::canonicalize(&dir).unwrap();
        std::fs::write(root.join("d/f"), "f").unwrap();
        std::os::unix::fs::symlink("d", root.join("l")).unwrap();
        std::os::unix::fs::symlink("f", root.join("d/l")).unwrap();
        let open = |names: &[&str]| {
            let names: Vec<&OsStr> = names.iter().map(OsStr::new).collect();
            let top = open_names(
                rustix::fs::open("/", DIR_FLAGS, Mode::empty()).unwrap(),
                &plain_names(&root).unwrap(),
                DIR_FLAGS,
            )
            .unwrap();
            walk(top, &names, FILE_FLAGS)
        };
        assert!(open(&["d", "f"]).is_ok());
        assert!(matches!(
            open(&["l", "f"]),
            Err(Errno::NOTDIR | Errno::LOOP)
        ));
        assert!(matches!(open(&["d", "l"]), Err(Errno::LOOP)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
