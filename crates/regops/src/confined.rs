//! Reading the files a spec names (`file:`, `ageFile:`, `caFile:`, a cluster's `kubeconfig:`):
//! each path resolved inside the spec's root as [`regops_spec::trust`] says, only regular files
//! (a FIFO would block, `/dev/zero` never ends), and never more than a stated size.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use regops_spec::{Diagnostic, Sources, Spanned};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
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
    /// checked (see [`open_beneath`]); with `--load-restrictor none`, as [`read`].
    pub fn read(&self, limit: u64) -> Result<Zeroizing<Vec<u8>>, ReadError> {
        let fd = match &self.beneath {
            Some((root, below)) => open_beneath(root, below)?,
            None => open_file(&self.path)?,
        };
        read_fd(fd, limit)
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
        });
    };
    // `resolve` judged `resolved` against the root's real path; the same path is opened below
    // it. A root that moved in between is refused rather than judged again.
    let beneath = std::fs::canonicalize(root).ok().and_then(|real| {
        let below = resolved.strip_prefix(&real).ok()?.to_path_buf();
        Some((real, below))
    });
    match beneath {
        Some(beneath) => Ok(SpecPath {
            path: resolved,
            beneath: Some(beneath),
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

impl From<Errno> for ReadError {
    fn from(e: Errno) -> ReadError {
        match e {
            // Only a swap makes these: the path was checked to be plain names, no symlink.
            Errno::LOOP | Errno::NOTDIR | Errno::XDEV => ReadError::Changed,
            e => ReadError::Io(e.into()),
        }
    }
}

/// How every file is opened for reading: never blocking (a FIFO opens at once, without a
/// writer; the type is checked before a byte is read), never becoming the controlling
/// terminal, never inherited by a child.
const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY)
    .union(OFlags::NONBLOCK);
/// How the directories on the way are opened when walking name by name.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::DIRECTORY);

/// The file `below` the directory `root` (a real path: absolute, no symlink in it), opened
/// without following a symlink anywhere: the root is opened name by name from `/`, and the
/// file beneath its handle, with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_MAGICLINKS)` where the kernel has it (Linux 5.6), else with one
/// `openat(O_NOFOLLOW)` per name. A symlink swapped in after the path was checked fails the
/// open ([`ReadError::Changed`]) instead of being followed out of the root or into `.git`.
fn open_beneath(root: &Path, below: &Path) -> Result<OwnedFd, ReadError> {
    let dir = open_names(
        rustix::fs::open("/", DIR_FLAGS, Mode::empty())?,
        &plain_names(root)?,
        DIR_FLAGS,
    )?;
    Ok(open_names(dir, &plain_names(below)?, FILE_FLAGS)?)
}

/// The names of `path` (a real path, or one below a root), refusing `..` and the like.
fn plain_names(path: &Path) -> Result<Vec<&OsStr>, ReadError> {
    let mut names = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => names.push(n),
            Component::ParentDir | Component::Prefix(_) => return Err(ReadError::Changed),
        }
    }
    Ok(names)
}

/// `names` below `dir`, the last opened with `flags`, following no symlink.
fn open_names(dir: OwnedFd, names: &[&OsStr], flags: OFlags) -> Result<OwnedFd, Errno> {
    if names.is_empty() {
        return Ok(dir);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::ResolveFlags;
        let joined: PathBuf = names.iter().collect();
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&dir, &joined, flags, Mode::empty(), resolve) {
            // No openat2 (before Linux 5.6, or a seccomp filter that refuses it), or a rename
            // somewhere on the file system while it resolved: walk name by name instead.
            Err(Errno::NOSYS | Errno::PERM | Errno::INVAL | Errno::TOOBIG | Errno::AGAIN) => {}
            done => return done,
        }
    }
    walk(dir, names, flags)
}

/// `names` below `dir` with one `openat(O_NOFOLLOW)` each: a symlink anywhere fails it.
fn walk(mut dir: OwnedFd, names: &[&OsStr], flags: OFlags) -> Result<OwnedFd, Errno> {
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

/// `path` opened for reading as [`FILE_FLAGS`] says (symlinks followed: a path the operator
/// gave, or one the spec names under `--load-restrictor none`).
fn open_file(path: &Path) -> Result<OwnedFd, ReadError> {
    Ok(rustix::fs::open(path, FILE_FLAGS, Mode::empty()).map_err(std::io::Error::from)?)
}

/// At most `limit` bytes of the open `fd`, which must be a regular file (checked on the handle,
/// before reading: a FIFO or a device is never read).
fn read_fd(fd: OwnedFd, limit: u64) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let stat = rustix::fs::fstat(&fd).map_err(std::io::Error::from)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(ReadError::NotAFile);
    }
    let mut buf = Zeroizing::new(Vec::new());
    std::fs::File::from(fd)
        .take(limit + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok(buf)
}

/// At most `limit` bytes of the regular file at `path` (an error past it), in a buffer zeroed
/// on drop; symlinks followed (for the files the operator names: a saved plan, a credential
/// file of the environment's). A FIFO or a device is refused without blocking.
pub fn read(path: &Path, limit: u64) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    read_fd(open_file(path)?, limit)
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
            Mode::RUSR | Mode::WUSR,
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

    /// The walk for kernels without openat2 (and for macOS) refuses what openat2 refuses.
    #[test]
    fn the_walk_name_by_name_follows_no_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("d")).unwrap();
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
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("regops-confined-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
