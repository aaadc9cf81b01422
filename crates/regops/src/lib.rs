//! regops: keeps Kubernetes image-pull credentials in git and in step with the clusters.
//!
//! The binary's layers, from the top (each only calls down):
//!
//! - [`cli`]: the command line: clap's flags and subcommands, and [`cli::commands`], one
//!   module per subcommand holding its flags turned into option structs, its prompts and what
//!   it prints. Nothing below it sees a clap type.
//! - [`ops`]: each command's work, taking plain option structs ([`ops::options`]): the spec
//!   loaded and prepared, planning, an apply session, fleets, saved plans, import, rekey and
//!   node trust.
//! - [`controller`]: `apply --watch`: its loop, watches and queue, `--recycle-stuck-pods`, its
//!   HTTP endpoint and metrics; built from [`controller::ControllerOptions`].
//! - The I/O below them:
//!   - [`inputs`]: what a spec names that is read from outside: its files (confined), the
//!     credentials (age, env, files, helpers, sops, secret managers), minted tokens, the git
//!     provenance.
//!   - [`cluster`]: talking to a cluster: the client, the paged read, the writes, the Lease,
//!     the retry policy, Events and the `-v` request log.
//!   - [`registry`]: logging in to a registry as `docker login` does (`regops validate`).
//! - Shared by all: [`output`] (the only place that prints), [`failure`] (why a command failed,
//!   shown in one place), [`errors`] (the chain of causes in words), [`atomic`] (every file
//!   regops writes), [`bounded`] (reading what a peer sends, capped), [`clock`] (the one clock,
//!   which tests drive) and [`context`] (a run's clock, timeouts and limits, made once from its
//!   options and handed down).
//! - `fuzz_entry` (hidden): the untrusted-input parsers behind one bytes-in function each, for
//!   the fuzz targets and their replay in the tests. Nothing in the binary calls it, so the
//!   linker leaves it out of what ships; it is not behind a feature, so that `cargo test`
//!   reuses the library `cargo run` built instead of building it again.
//!
//! The pure parts (the spec, desired state, plan, views) live in `regops-spec` and
//! `regops-core`.

pub mod atomic;
pub mod bounded;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod context;
pub mod controller;
pub mod errors;
pub mod failure;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod inputs;
pub mod ops;
pub mod output;
pub mod registry;

/// `regops --version`: the release, the commit and the date it was built from (see `build.rs`),
/// as `cargo --version` prints them.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("REGOPS_BUILD_COMMIT"),
    " ",
    env!("REGOPS_BUILD_DATE"),
    ")"
);

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
