//! `regops node-sync`: containerd's node trust kept on a node. It reads the stream
//! `render --node-config containerd` prints (a file; in the cluster, the ConfigMap `apply`
//! keeps, mounted), takes from it only what [`regops_core::node_trust::from_stream`] lets
//! through (hosts, schemes, CA certificates), renders the files again, and writes them under
//! `--root` (containerd's `certs.d`), for the hosts the operator allows only.
//!
//! What it owns is marked: a host directory it made holds [`OWNER_MARK`]. It writes only into
//! directories it owns (or makes), never into one it did not make, never through a symbolic
//! link; it removes its own directories whose host left the stream or the allowlist, and
//! nothing else. containerd's `config.toml` is only read, to report whether containerd reads
//! `--root` at all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regops_core::node_trust::{self, ConfigPath, NodeFile, NodeHost, OWNER_MARK, Runtime};

use crate::failure::Failure;

/// The largest stream read: a ConfigMap holds at most 1 MiB.
const STREAM_LIMIT: u64 = 1 << 20;
/// The files node-sync writes in a host directory (and so may remove), besides the mark.
const OWN_FILES: [&str; 2] = ["hosts.toml", "ca.crt"];

pub(crate) struct Options {
    pub from: PathBuf,
    pub root: PathBuf,
    pub allow: Vec<NodeHost>,
    pub containerd_config: Option<PathBuf>,
    /// The directory `--root` is on the node (what containerd's `config_path` must name).
    pub node_path: String,
}

/// What one sync did; every line ready to show.
#[derive(Default, Debug)]
pub(crate) struct Report {
    pub written: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
    /// Hosts the stream asks for and that were not written, with why.
    pub refused: Vec<String>,
    /// containerd's configuration, if it does not read `--root`.
    pub config: Option<String>,
}

pub(crate) fn sync(o: &Options) -> Result<Report, Failure> {
    let text = crate::inputs::confined::read_text(&o.from, STREAM_LIMIT)
        .map_err(|e| Failure::caused(format!("cannot read {}", o.from.display()), e))?;
    let docs: Vec<node_trust::StreamDoc> = if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_saphyr::from_multiple(&text).map_err(|e| {
            Failure::msg(format!(
                "{} is not the YAML stream `regops render --node-config containerd` prints: {e}",
                o.from.display()
            ))
        })?
    };
    let hosts = node_trust::from_stream(&docs)
        .map_err(|e| Failure::msg(format!("{}: {e}; nothing was written", o.from.display())))?;
    let meta = std::fs::metadata(&o.root)
        .map_err(|e| Failure::caused(format!("cannot use --root {}", o.root.display()), e))?;
    if !meta.is_dir() {
        return Err(Failure::msg(format!(
            "--root {} is not a directory",
            o.root.display()
        )));
    }

    let mut report = Report::default();
    let allowed: BTreeSet<&NodeHost> = o.allow.iter().collect();
    let mut wanted: BTreeMap<String, Vec<NodeFile>> = BTreeMap::new();
    for t in &hosts {
        if !allowed.contains(&t.host) {
            report.refused.push(format!(
                "{}: not on --allow-host; the operator decides which registries nodes trust (add it to the allowlist to write it)",
                t.host
            ));
            continue;
        }
        let files = node_trust::render(Runtime::Containerd, std::slice::from_ref(t));
        wanted.insert(t.host.to_string(), files);
    }

    // What is there: regops' own directories, and names that are not.
    let mut owned = BTreeSet::new();
    let entries = std::fs::read_dir(&o.root)
        .map_err(|e| Failure::caused(format!("cannot list {}", o.root.display()), e))?;
    for e in entries {
        let e = e.map_err(|e| Failure::caused(format!("cannot list {}", o.root.display()), e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if is_owned(&e.path()) {
            owned.insert(name);
        }
    }

    for (host, files) in &wanted {
        let dir = o.root.join(host);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                report.refused.push(format!(
                    "{host}: {} is a symbolic link; node-sync never writes through one",
                    dir.display()
                ));
                continue;
            }
            Ok(m) if !m.is_dir() => {
                report
                    .refused
                    .push(format!("{host}: {} is not a directory", dir.display()));
                continue;
            }
            Ok(_) if !owned.contains(host) => {
                report.refused.push(format!(
                    "{host}: {} is not node-sync's (no {OWNER_MARK}); left untouched",
                    dir.display()
                ));
                continue;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&dir)
                    .map_err(|e| Failure::caused(format!("cannot create {}", dir.display()), e))?;
                write(
                    &dir.join(OWNER_MARK),
                    b"regops node-sync writes this directory and removes it when its host leaves the spec; delete this file to keep it as yours.\n",
                )?;
            }
            Err(e) => return Err(Failure::caused(format!("cannot read {}", dir.display()), e)),
        }
        let mut changed = false;
        for f in files {
            let name = f.rel.rsplit('/').next().unwrap_or(&f.rel);
            let path = dir.join(name);
            if read_regular(&path).as_deref() == Some(f.content.as_bytes()) {
                continue;
            }
            write(&path, f.content.as_bytes())?;
            changed = true;
        }
        // A file node-sync wrote before that the host no longer has (a CA no longer given).
        for name in OWN_FILES {
            if !files.iter().any(|f| f.rel.ends_with(&format!("/{name}"))) {
                changed |= remove_file(&dir.join(name))?;
            }
        }
        if changed {
            report.written.push(host.clone());
        } else {
            report.unchanged.push(host.clone());
        }
    }

    for name in owned.iter().filter(|n| !wanted.contains_key(*n)) {
        let dir = o.root.join(name);
        for f in OWN_FILES.iter().chain(std::iter::once(&OWNER_MARK)) {
            remove_file(&dir.join(f))?;
        }
        match std::fs::remove_dir(&dir) {
            Ok(()) => report.removed.push(name.clone()),
            Err(e) => report
                .removed
                .push(format!("{name} (its files; the directory stays: {e})")),
        }
    }

    if let Some(config) = &o.containerd_config {
        report.config = containerd_config(config, &o.node_path);
    }
    Ok(report)
}

/// A real directory (not a link) holding a regular mark file.
fn is_owned(dir: &Path) -> bool {
    let real_dir = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
    real_dir && std::fs::symlink_metadata(dir.join(OWNER_MARK)).is_ok_and(|m| m.is_file())
}

/// The content of a regular file (not through a link), if there is one.
fn read_regular(path: &Path) -> Option<Vec<u8>> {
    let m = std::fs::symlink_metadata(path).ok()?;
    if !m.is_file() || m.len() > STREAM_LIMIT {
        return None;
    }
    std::fs::read(path).ok()
}

/// Written atomically, never through a link ([`crate::atomic`]), mode 0644: containerd runs as
/// root, and nothing here is secret.
fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    crate::atomic::write(path, bytes, crate::atomic::Existing::Replace)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)))
        .map_err(|e| Failure::caused(format!("cannot write {}", path.display()), e))
}

/// Removes `path` if it is there (a link is removed, never followed); whether it was.
fn remove_file(path: &Path) -> Result<bool, Failure> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(Failure::msg(format!(
            "{} is a directory; node-sync removes only the files it writes",
            path.display()
        ))),
        Ok(_) => std::fs::remove_file(path)
            .map(|()| true)
            .map_err(|e| Failure::caused(format!("cannot remove {}", path.display()), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Failure::caused(
            format!("cannot read {}", path.display()),
            e,
        )),
    }
}

/// Why containerd would not read `node_path`, from its `config.toml` (read only).
fn containerd_config(config: &Path, node_path: &str) -> Option<String> {
    let shown = config.display();
    let text = match crate::inputs::confined::read_text(config, STREAM_LIMIT) {
        Ok(t) => t,
        Err(crate::inputs::confined::ReadError::Io(e))
            if e.kind() == std::io::ErrorKind::NotFound =>
        {
            return Some(format!(
                "{shown} does not exist: containerd 2.x reads {node_path} by default, containerd 1.6 and 1.7 do not (set the CRI registry config_path to {node_path} there and restart containerd once)"
            ));
        }
        Err(e) => return Some(format!("cannot read {shown}: {e}")),
    };
    match node_trust::containerd_config_path(&text, node_path) {
        ConfigPath::Reads => None,
        ConfigPath::Elsewhere(p) => Some(format!(
            "{shown}: the CRI registry config_path is {p}, not {node_path}: containerd does not read what node-sync writes"
        )),
        ConfigPath::Unset => Some(format!(
            "{shown}: no CRI registry config_path (containerd 1.x): containerd does not read {node_path}; set config_path = \"{node_path}\" under [plugins.\"io.containerd.grpc.v1.cri\".registry] and restart containerd once"
        )),
        ConfigPath::Unknown(why) => Some(format!(
            "{shown}: cannot tell whether containerd reads {node_path}: {why}"
        )),
    }
}
