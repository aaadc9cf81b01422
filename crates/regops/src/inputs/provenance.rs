//! Where the spec came from: the git commit holding it, and whether it has uncommitted
//! changes. Outside a repository there is no provenance, which is not an error.

use std::path::Path;

use regops_core::plan::Source;

/// The top of the git working tree holding `dir`, if any (real path).
pub fn repository_root(dir: &Path) -> Option<std::path::PathBuf> {
    let repo = git2::Repository::discover(dir).ok()?;
    repo.workdir()?.canonicalize().ok()
}

/// The commit of the repository containing `spec_files[0]`, and whether any spec file differs
/// from it (modified, staged or untracked).
pub fn source(spec_files: &[&Path]) -> Source {
    let Some(first) = spec_files.first() else {
        return Source::default();
    };
    let dir = if first.is_dir() {
        first.to_path_buf()
    } else {
        first.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let dir = if dir.as_os_str().is_empty() {
        std::path::PathBuf::from(".")
    } else {
        dir
    };
    let Ok(repo) = git2::Repository::discover(&dir) else {
        return Source::default();
    };
    let commit = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id().to_string());
    let Some(workdir) = repo.workdir().and_then(|w| w.canonicalize().ok()) else {
        return Source {
            commit,
            dirty: false,
        };
    };
    let mut dirty = false;
    for f in spec_files {
        let Ok(abs) = f.canonicalize() else { continue };
        let Ok(rel) = abs.strip_prefix(&workdir) else {
            continue;
        };
        let mut opts = git2::StatusOptions::new();
        opts.include_untracked(true)
            .recurse_untracked_dirs(true)
            .pathspec(rel);
        if let Ok(statuses) = repo.statuses(Some(&mut opts))
            && statuses.iter().any(|s| {
                s.status() != git2::Status::CURRENT && !s.status().contains(git2::Status::IGNORED)
            })
        {
            dirty = true;
        }
    }
    Source { commit, dirty }
}
