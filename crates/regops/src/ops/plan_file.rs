//! The shell of saved plans (`plan --out`, `apply FILE`, `show FILE`): what is read from the
//! spec's files and the cluster to record a plan's inputs, and the plan file itself. What is
//! recorded and compared is [`regops_core::saved`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regops_core::saved::{self, ClusterRecord, SavedPlan, SpecRecord};

use crate::cluster::client::{connect_as, runtime};
use crate::failure::Failure;
use crate::ops::load::prepare_checked;
use crate::ops::options::{ApplyOptions, RunOptions};
use crate::ops::prepared::Prepared;
use crate::output::Term;
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
    conn: &crate::cluster::Connection,
    target: &crate::cluster::client::Target,
) -> Result<ClusterRecord, crate::cluster::client::ClusterError> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(conn.client.clone());
    let params = kube::api::ListParams::default().fields("metadata.name=kube-system");
    let list = crate::cluster::retry::retry(conn, || api.list_metadata(&params))
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

/// Why the spec files a saved plan records cannot be read from here.
#[derive(Debug, thiserror::Error)]
pub enum RecordedFileError {
    #[error("cannot tell the working directory")]
    NoDirectory(#[source] std::io::Error),
    #[error(
        "the plan names its spec files inside the git repository it was made in, and this directory is in none: apply it from inside that repository"
    )]
    NotInRepository,
    #[error("the plan names the spec file `{0}`, which leads outside the repository")]
    Outside(String),
    #[error("the plan names the spec file `{0}`")]
    Unreadable(String, #[source] std::io::Error),
    #[error("the plan names the spec file `{file}`, which is not a relative path below {below}")]
    NotRelative { file: String, below: &'static str },
}

/// The spec files recorded in a saved plan, when `apply FILE` is given no `-f`: only relative
/// paths, below the top of the repository the plan was made in (looked for from the working
/// directory) or, for a plan made outside one, below the working directory. The plan file may
/// come from a pull request's job, and must not name `/etc/...` to be read and quoted in a
/// diagnostic. The files' digest is checked against the plan's before they are parsed.
pub fn recorded_files(saved: &SavedPlan) -> Result<Vec<PathBuf>, RecordedFileError> {
    let base = if saved.spec.from_repository {
        let cwd = std::env::current_dir().map_err(RecordedFileError::NoDirectory)?;
        Some(
            crate::inputs::provenance::repository_root(&cwd)
                .ok_or(RecordedFileError::NotInRepository)?,
        )
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
                            Ok(_) => Err(RecordedFileError::Outside(f.clone())),
                            Err(e) => Err(RecordedFileError::Unreadable(f.clone(), e)),
                        }
                    }
                }
            } else {
                Err(RecordedFileError::NotRelative {
                    file: f.clone(),
                    below: if base.is_some() {
                        "the repository's top"
                    } else {
                        "this directory"
                    },
                })
            }
        })
        .collect()
}

/// How many moved objects a refusal lists before "… and N more".
const SHOWN: usize = 20;

/// `plan --out`: reads the cluster, plans, and saves the plan with the spec's digest, the
/// cluster's identity and the version of every object read. The plan is returned to be shown
/// as `plan` shows it.
pub(crate) fn plan_and_save(
    run: &RunOptions,
    prepared: &Prepared,
    out: &Path,
) -> Result<regops_core::plan::Plan, Failure> {
    let rt = runtime()?;
    let (conn, target) = connect_as(&run.cluster, &prepared.ctx, &rt)?;
    let cluster = rt.block_on(cluster_identity(&conn, &target))?;
    let loaded = &prepared.loaded;
    let observed = rt.block_on(crate::cluster::read::from_cluster(
        &conn,
        &target,
        &loaded.spec,
        &loaded.name,
        prepared.only.as_ref(),
    ))?;
    let (desired, plan) = rt.block_on(prepared.plan(&observed, &target.to_string()));
    drop(desired);
    let objects = saved::versions(&observed);
    drop(observed);
    let (files, from_repository) = files_to_record(&run.spec.files);
    let record = SavedPlan {
        kind: saved::KIND.into(),
        format_version: saved::FORMAT_VERSION.into(),
        regops_version: crate::VERSION.into(),
        created: jiff::Timestamp::now().to_string(),
        spec: SpecRecord {
            name: loaded.name.clone(),
            files,
            from_repository,
            digest: files_digest(&loaded.sources),
            ciphertexts: ciphertext_digests(&loaded.spec, &loaded.sources),
            commit: prepared.source.commit.clone(),
            dirty: prepared.source.dirty,
        },
        cluster,
        namespaces: run.namespaces.clone(),
        workload_kinds: saved::kind_records(&loaded.spec),
        objects,
        plan,
        warnings: Vec::new(),
        writes: Vec::new(),
    };
    write(out, &record).map_err(|e| Failure::Message {
        message: format!("cannot write the plan to {}: {e}", out.display()),
        help: None,
    })?;
    Ok(record.plan)
}

/// A refusal: the plan is not applied, and why, with what to do.
fn refuse(what: String, lines: &[String]) -> Failure {
    // What moved names the cluster's objects and the file's contents: each on its own line,
    // and only there.
    use regops_spec::untrusted::terminal;
    let mut message = format!(
        "the saved plan was not applied; nothing was written: {}",
        terminal(&what)
    );
    for l in lines.iter().take(SHOWN) {
        message.push_str("\n  ");
        message.push_str(&terminal(l));
    }
    if lines.len() > SHOWN {
        message.push_str(&format!("\n  … and {} more", lines.len() - SHOWN));
    }
    Failure::Message {
        message,
        help: Some(
            "plan again (`regops plan -f SPEC --out FILE`), review that plan, and apply it".into(),
        ),
    }
}

/// The objects that moved since the plan, as a refusal.
fn check_unmoved(
    saved: &SavedPlan,
    observed: &regops_core::observed::Observed,
) -> Result<(), Failure> {
    let now = saved::versions(observed);
    let moved = saved::moved(&saved.objects, &now);
    if moved.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = moved.iter().map(ToString::to_string).collect();
    Err(refuse(
        format!(
            "{} object{} read for the plan changed since it was made",
            moved.len(),
            if moved.len() == 1 { "" } else { "s" }
        ),
        &lines,
    ))
}

/// A saved plan staged for `apply FILE`: checked, read and planned again under its Lease.
pub(crate) struct SavedApply {
    pub(crate) saved: SavedPlan,
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) session: crate::ops::session::Session,
    pub(crate) conn: crate::cluster::Connection,
    pub(crate) staged: crate::ops::session::Staged,
}

/// `apply FILE` staged: exactly the saved plan, or nothing. Checked in this order, each before
/// anything is written: the regops version; the spec's files (before they are parsed); the
/// ciphertext files; the cluster; every object read, and the plan made again from all of
/// these, which must be the saved one (once before the Lease is taken, again under it). The
/// command then carries out the saved plan's writes as a fresh plan's are.
pub(crate) fn stage_saved(
    mut opts: ApplyOptions,
    path: &Path,
    term: &Term,
) -> Result<SavedApply, Failure> {
    let saved = read(path).map_err(|e| Failure::msg(e.to_string()))?;
    if saved.regops_version != crate::VERSION {
        return Err(refuse(
            format!(
                "it was made by regops {}, and this is regops {}",
                saved.regops_version,
                crate::VERSION
            ),
            &[],
        ));
    }
    if opts.run.spec.files.is_empty() {
        opts.run.spec.files = recorded_files(&saved).map_err(|e| Failure::Message {
            // The names are the plan file's, which may be crafted: shown on one line.
            message: regops_spec::untrusted::terminal(&crate::errors::sentence(&e)).into_owned(),
            help: Some("name the spec with -f".into()),
        })?;
    }
    opts.run.namespaces = saved.namespaces.clone();
    let check = |sources: &regops_spec::Sources| {
        let now = files_digest(sources);
        if now == saved.spec.digest {
            Ok(())
        } else {
            // The files' new digest is not said: for files a crafted plan names, it would
            // tell whether a guess of their content is right.
            Err(refuse(
                "the spec's files differ from those planned".into(),
                &[format!("planned from {}", saved.spec.digest)],
            ))
        }
    };
    let run = &opts.run;
    let prepared = prepare_checked(run, term, &check)?;
    if crate::ops::fleet::fleet_members(run, &prepared)?.is_some() {
        return Err(Failure::msg(
            "a spec with `clusters` has no saved plans: plan and apply each cluster's spec",
        ));
    }
    let ciphertexts = ciphertext_digests(&prepared.loaded.spec, &prepared.loaded.sources);
    if ciphertexts != saved.spec.ciphertexts {
        let names: Vec<String> = ciphertexts
            .keys()
            .chain(saved.spec.ciphertexts.keys())
            .filter(|k| ciphertexts.get(*k) != saved.spec.ciphertexts.get(*k))
            .map(|k| format!("credential `{k}`"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        return Err(refuse(
            "the ciphertext files of the spec differ from those planned".into(),
            &names,
        ));
    }
    let rt = runtime()?;
    let (conn, target) = connect_as(&run.cluster, &prepared.ctx, &rt)?;
    let cluster = rt.block_on(cluster_identity(&conn, &target))?;
    if cluster.kube_system_uid != saved.cluster.kube_system_uid {
        return Err(refuse(
            "this is another cluster".into(),
            &[
                format!(
                    "planned against {} (kube-system uid {})",
                    saved.cluster.target, saved.cluster.kube_system_uid
                ),
                format!(
                    "connected to {} (kube-system uid {})",
                    cluster.target, cluster.kube_system_uid
                ),
            ],
        ));
    }
    if cluster.server != saved.cluster.server {
        term.note(&format!(
            "note: the cluster is the one planned (same kube-system uid), reached at {} instead of {}",
            regops_spec::untrusted::terminal(&cluster.server),
            regops_spec::untrusted::terminal(&saved.cluster.server)
        ));
    }
    let loaded = &prepared.loaded;
    let session = crate::ops::apply::session(&opts, &loaded.name)?;
    // Staged as a fresh plan is: read and check without the Lease (a stale plan is refused
    // with nothing written, not even the Lease; a plan with nothing to write needs no more),
    // then under it. Each read checks every object the plan was made from, and plans again
    // from them: the plan made again must be the saved one, writes included.
    let read = async || {
        let observed = crate::cluster::read::from_cluster(
            &conn,
            &target,
            &loaded.spec,
            &loaded.name,
            prepared.only.as_ref(),
        )
        .await?;
        check_unmoved(&saved, &observed)?;
        let (desired, plan) = prepared.plan(&observed, &target.to_string()).await;
        let differs = saved::differences(&saved.plan, &plan);
        if !differs.is_empty() {
            return Err(refuse(
                "planned again from the same spec and objects, it differs (a password from \
                 the environment or a file, or a minted token, may have changed)"
                    .into(),
                &differs,
            ));
        }
        Ok::<_, Failure>((observed, desired, plan))
    };
    let connect = crate::cluster::client::lock_connect(
        opts.run.cluster.kubeconfig.clone(),
        opts.run.cluster.context.clone(),
    );
    let take = async || {
        crate::ops::apply::take_lease(&session, &opts.lock, &conn, connect, None, term).await
    };
    let staged = rt.block_on(session.stage(read, take))?;
    Ok(SavedApply {
        saved,
        rt,
        session,
        conn,
        staged,
    })
}
