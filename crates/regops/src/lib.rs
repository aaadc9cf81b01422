//! regops: keeps Kubernetes image-pull credentials in git and in step with the clusters.
//!
//! The binary's modules, each owning one concern:
//! - [`apply`]: carrying out a plan: write strategy per kind, retries, ordering.
//! - [`atomic`]: every file regops writes: exclusive, private, flushed, never through a link.
//! - [`bounded`]: reading what a peer sends (answers, pages, watch lines, helper output), capped.
//! - [`cli`]: flags and subcommands (clap), nothing else.
//! - [`commands`]: one module per subcommand, argument handling only: its flags turned into
//!   calls on the others, and what the user sees (the plan, the confirmation, the report).
//! - [`child_env`]: what a credential helper or kubeconfig plugin is started without.
//! - [`cluster`]: kubeconfig, context and client; cluster errors that say what to do.
//! - [`controller`]: `apply --watch`: its loop, watches and queue, `--recycle-stuck-pods`, its
//!   HTTP endpoint and metrics.
//! - [`confined`]: reading the files a spec names: inside its root, regular, size-capped.
//! - [`crypto`]: age identities, recipients, encryption and decryption.
//! - [`credentials`]: the spec's credentials resolved to logins (decrypted, env, file).
//! - [`mint`]: short-lived registry tokens minted from ECR, Google Cloud and ACR identities.
//! - [`helper`]: docker credential helpers, asked as docker asks them.
//! - [`load`]: the spec loaded from its files as the flags say, its credentials resolved, a
//!   [`prepared::Prepared`] spec built.
//! - [`lock`]: the Lease that keeps two applies apart (and elects `apply --watch`'s leader).
//! - [`edit`]: in-place edits of spec files that keep comments and layout.
//! - [`errors`]: errors in words: the chain of causes, what a failed API request means.
//! - [`events`]: Kubernetes Events of what an apply did, repeats folded into series.
//! - [`failure`]: why a command failed, ready to be shown; the one place a failure is shown.
//! - [`fleet`]: running over a spec's `clusters`: which, how each is reached, how many at once.
//! - `fuzz_entry` (feature `test-support`): the untrusted-input parsers behind one bytes-in
//!   function each, for the fuzz targets and their replay in the tests.
//! - [`observe`]: reading the cluster (a few paged LISTs) or a state file.
//! - [`prepared`]: a spec made ready to plan: logins, the run's minted tokens, planning.
//! - [`registry`]: logging in to a registry as `docker login` does (`regops validate`).
//! - [`provenance`]: the spec's git commit and whether it is dirty.
//! - [`retry`]: one retry policy (backoff, Retry-After, timeouts) for reads, writes and the lock.
//! - [`output`]: the only place that prints (and [`request_log`], the `-v` log).
//! - [`request_log`]: `-v`/`-vv`: each API request and retry on stderr, never a header or body.
//! - [`saved_plan`]: `plan --out` and `apply FILE`: the spec's digest, the cluster's identity,
//!   the plan file.
//! - [`session`]: an apply session, shared by `apply`, a fleet's apply and the controller: read
//!   and plan, take the Lease, read again under it, write fenced by it, record the Events.

pub mod apply;
pub mod atomic;
pub mod bounded;
pub mod child_env;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod confined;
pub mod controller;
pub mod credentials;
pub mod crypto;
pub mod edit;
pub mod errors;
pub mod events;
pub mod failure;
pub mod fleet;
#[cfg(feature = "test-support")]
pub mod fuzz_entry;
pub mod helper;
pub mod load;
pub mod lock;
pub mod mint;
pub mod node_sync;
pub mod node_trust;
pub mod observe;
pub mod options;
pub mod output;
pub mod prepared;
pub mod provenance;
pub mod registry;
pub mod request_log;
pub mod retry;
pub mod saved_plan;
pub mod secret_managers;
pub mod session;

/// The process exit status, in one place: every command's outcome is one of these, and this is
/// the only mapping from outcomes to codes (the table in `docs/using.md` and in `regops --help`).
///
/// | code | meaning |
/// | --- | --- |
/// | 0 | success, nothing pending |
/// | 1 | an error, usage errors included (and `plan` with conflicts, `apply` that left something undone) |
/// | 2 | `plan`: changes pending; `drift`: drift found (conflicts included); and nothing else |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Success: done, or (plan, drift) nothing pending. `--help`, `--version`, `show`.
    Success = 0,
    /// An error: a usage error, bad input, a failed request, something planned not done, a plan
    /// with conflicts.
    Failure = 1,
    /// plan: changes pending; drift: drift found. Nothing else exits 2.
    Changes = 2,
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s as u8)
    }
}
