//! The shell of saved plans (`plan --out`, `apply FILE`, `show FILE`): what is read from the
//! spec's files and the cluster to record a plan's inputs, and the plan file itself. What is
//! recorded and compared is [`regops_core::saved`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regops_core::saved::{ClusterRecord, SavedPlan};
use regops_spec::{Sources, Spec};

/// The largest saved plan read (a plan of 10,000 namespaces is tens of megabytes).
pub const PLAN_FILE_LIMIT: u64 = 512 << 20;

fn sha256_hex(chunks: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for c in chunks {
        h.update(c);
    }
    let hash = h.finalize();
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:<hex>` of the spec's files: each one's path inside its root (so the same checkout
/// in another directory, or `-f specs` and `-f ./specs`, give the same digest) and its bytes,
/// in the order they are read.
pub fn files_digest(sources: &Sources) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for f in sources.files() {
        let inside = f
            .path
            .strip_prefix(&f.root)
            .ok()
            .filter(|p| !p.as_os_str().is_empty())
            .or_else(|| f.path.file_name().map(Path::new))
            .unwrap_or(&f.path);
        let name = inside.to_string_lossy();
        // Lengths first, so that no two different sequences of files hash alike.
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((f.text.len() as u64).to_le_bytes());
        h.update(f.text.as_bytes());
    }
    let hash = h.finalize();
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// For each credential whose password is an `ageFile`, `sha256:<hex>` of the ciphertext in it
/// (inline ciphertext is in the spec's files already); for each that reads sops files, of
/// those files. Ciphertext only: a password in clear
/// (`env`, `file`) is never hashed into a file that is uploaded as a CI artifact. A file that
/// cannot be read is recorded as `unreadable` (the credential's own error says why).
pub fn ciphertext_digests(spec: &Spec, sources: &Sources) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, cred) in &spec.credentials {
        // The sops files a credential reads (its user name's, its password's) are ciphertext
        // too: one that changed after the plan would put other values in the Secrets.
        let mut sops_files: Vec<&regops_spec::Spanned<std::path::PathBuf>> =
            cred.username_sops.iter().map(|s| &s.file).collect();
        if let regops_spec::SecretSource::Sops { sops } = &cred.password {
            sops_files.push(&sops.file);
        }
        if !sops_files.is_empty() {
            let contents: Option<Vec<_>> = sops_files
                .iter()
                .map(|f| {
                    crate::inputs::confined::path(sources, f, "")
                        .ok()
                        .and_then(|p| p.read(regops_core::sops::FILE_LIMIT).ok())
                })
                .collect();
            let digest = contents.map_or_else(
                || "unreadable".to_string(),
                |c| {
                    let parts: Vec<&[u8]> = c.iter().map(|b| b.as_slice()).collect();
                    format!("sha256:{}", sha256_hex(&parts))
                },
            );
            out.insert(name.clone(), digest);
            continue;
        }
        let regops_spec::SecretSource::AgeFile { age_file } = &cred.password else {
            continue;
        };
        let digest = crate::inputs::confined::path(sources, age_file, "")
            .ok()
            .and_then(|p| p.read(crate::inputs::confined::SECRET_FILE_LIMIT).ok())
            .map_or_else(
                || "unreadable".to_string(),
                |bytes| format!("sha256:{}", sha256_hex(&[bytes.trim_ascii()])),
            );
        out.insert(name.clone(), digest);
    }
    out
}

/// The cluster's identity: its server, and the uid of its `kube-system` namespace (read with
/// a LIST narrowed by `metadata.name`, a verb regops already needs, rather than a GET).
pub async fn cluster_identity(
    client: &kube::Client,
    target: &crate::cluster::client::Target,
) -> Result<ClusterRecord, crate::cluster::client::ClusterError> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    let params = kube::api::ListParams::default().fields("metadata.name=kube-system");
    let list = crate::cluster::retry::retry(|| api.list_metadata(&params))
        .await
        .map_err(|e| {
            crate::cluster::client::api_error(e, target, "list", "namespaces", "", None)
        })?;
    let uid = list
        .items
        .into_iter()
        .find_map(|n| n.metadata.uid)
        .unwrap_or_default();
    Ok(ClusterRecord {
        target: target.to_string(),
        server: target.server.clone(),
        kube_system_uid: uid,
    })
}

/// Why a saved plan file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: regops_core::saved::PlanFileError,
    },
}

/// Reads and parses a saved plan (a regular file, at most [`PLAN_FILE_LIMIT`] bytes).
pub fn read(path: &Path) -> Result<SavedPlan, FileError> {
    let bytes =
        crate::inputs::confined::read(path, PLAN_FILE_LIMIT).map_err(|e| FileError::Read {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    regops_core::saved::parse(&bytes).map_err(|source| FileError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a saved plan: atomically, mode 0600 (a plan names the cluster's objects), replacing
/// an earlier one.
pub fn write(path: &Path, saved: &SavedPlan) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let bytes = regops_core::saved::to_bytes(saved).map_err(std::io::Error::other)?;
    crate::atomic::write(path, &bytes, crate::atomic::Existing::Replace)?;
    // A file that existed keeps its mode through `Replace`; a plan is private whatever it was.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// The spec files as a saved plan records them: relative to the top of the git repository
/// they are in (an absolute `-f` too), so that the plan applies from any directory inside it;
/// as given when they are not all in one (then `apply FILE` works from the same directory).
pub fn files_to_record(files: &[PathBuf]) -> (Vec<String>, bool) {
    let as_given = || -> (Vec<String>, bool) {
        (
            files.iter().map(|f| f.display().to_string()).collect(),
            false,
        )
    };
    let Ok(cwd) = std::env::current_dir() else {
        return as_given();
    };
    let Some(root) = crate::inputs::provenance::repository_root(&cwd) else {
        return as_given();
    };
    let relative: Option<Vec<String>> = files
        .iter()
        .map(|f| {
            let abs = cwd.join(f).canonicalize().ok()?;
            let rel = abs.strip_prefix(&root).ok()?;
            (!rel.as_os_str().is_empty()).then(|| rel.display().to_string())
        })
        .collect();
    match relative {
        Some(rel) => (rel, true),
        None => as_given(),
    }
}

/// The spec files recorded in a saved plan, when `apply FILE` is given no `-f`: only relative
/// paths, below the top of the repository the plan was made in (looked for from the working
/// directory) or, for a plan made outside one, below the working directory. The plan file may
/// come from a pull request's job, and must not name `/etc/...` to be read and quoted in a
/// diagnostic. The files' digest is checked against the plan's before they are parsed.
pub fn recorded_files(saved: &SavedPlan) -> Result<Vec<PathBuf>, String> {
    let base = if saved.spec.from_repository {
        let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
        Some(crate::inputs::provenance::repository_root(&cwd).ok_or_else(|| {
            "the plan names its spec files inside the git repository it was made in, and this directory is in none: apply it from inside that repository".to_string()
        })?)
    } else {
        None
    };
    saved
        .spec
        .files
        .iter()
        .map(|f| {
            let p = PathBuf::from(f);
            let plain = p.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::CurDir
                )
            });
            if plain && !f.is_empty() {
                match &base {
                    None => Ok(p),
                    // Below the repository's top, links followed: a committed symlink on the
                    // way out of it (`lnk -> /elsewhere`) is refused as a symlinked -f is.
                    Some(b) => {
                        let joined = b.join(&p);
                        match joined.canonicalize() {
                            Ok(real) if real.starts_with(b) => Ok(joined),
                            Ok(_) => Err(format!(
                                "the plan names the spec file `{f}`, which leads outside the repository"
                            )),
                            Err(e) => Err(format!("the plan names the spec file `{f}`: {e}")),
                        }
                    }
                }
            } else {
                Err(format!(
                    "the plan names the spec file `{f}`, which is not a relative path below {}",
                    if base.is_some() {
                        "the repository's top"
                    } else {
                        "this directory"
                    }
                ))
            }
        })
        .collect()
}
