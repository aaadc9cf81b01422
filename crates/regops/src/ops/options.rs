//! What a command asks of the layers below it, as plain data.
//!
//! The cli layer makes these from its flags (`options()` on each flag group in `cli/mod.rs`), so
//! no clap type reaches the loading, cluster, fleet or controller code, and a test or another
//! front end can build them directly (cargo's `CompileOptions`, made by `bin/cargo/commands`
//! and taken by `ops`).

use std::path::PathBuf;
use std::time::Duration;

/// Which spec files, and what they may reach.
#[derive(Clone, Debug, Default)]
pub struct SpecOptions {
    /// The files and directories to read; empty: the default file in the current directory.
    pub files: Vec<PathBuf>,
    /// How far the paths the spec names may reach.
    pub restrictor: regops_spec::trust::LoadRestrictor,
    /// What the operator allowed the spec beyond the defaults.
    pub policy: regops_spec::trust::Policy,
}

/// Which cluster, and how long regops waits on it (the cluster layer's own options).
pub use crate::cluster::client::ClusterOptions;

/// A run against a cluster or a fleet: plan, apply, drift and the controller.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub spec: SpecOptions,
    /// The age identity files given (else the environment's and the default files).
    pub identities: Vec<PathBuf>,
    pub cluster: ClusterOptions,
    /// Only these namespaces (`-n`); every namespace in scope when empty.
    pub namespaces: Vec<String>,
    /// Only these clusters of the spec's `clusters` (`--cluster`); every one when empty.
    pub clusters: Vec<String>,
    /// How many clusters are worked on at once.
    pub cluster_concurrency: u16,
    /// Whether planning may mint the tokens that are due (`drift` only reports: it never asks
    /// a cloud for one).
    pub mint: bool,
}

/// What `import` reads and where it writes.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub cluster: ClusterOptions,
    /// Age recipients or SSH public keys the passwords are encrypted to.
    pub recipients: Vec<String>,
    /// Files of recipients, one per line (`#` comments and blank lines skipped).
    pub recipients_files: Vec<PathBuf>,
    /// Only these namespaces; every namespace when empty.
    pub namespaces: Vec<String>,
    /// Only the namespaces this label selector selects.
    pub selector: Option<String>,
    /// The spec's `metadata.name` (else the output file's stem, else `imported`).
    pub name: Option<String>,
    /// The spec file to write.
    pub output: Option<PathBuf>,
    /// Overwrite the output file if it exists.
    pub force: bool,
    /// Render the spec with its passwords redacted; write nothing.
    pub dry_run: bool,
    /// Also write a scope as a label selector where one label selects exactly the namespaces.
    pub infer_selectors: bool,
}

/// The Lease that keeps two applies of a spec apart.
#[derive(Clone, Debug)]
pub struct LockOptions {
    /// Its namespace.
    pub namespace: String,
    /// Its name (else `regops-<spec name>`).
    pub name: Option<String>,
    /// Its three times, checked as client-go checks them when a session is made.
    pub times: crate::cluster::lock::Times,
    /// How long to wait for another apply to release it.
    pub wait: Duration,
}

/// An apply: the run, its Lease and how its writes go.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    pub run: RunOptions,
    pub lock: LockOptions,
    pub writes: crate::ops::session::Writes,
}
