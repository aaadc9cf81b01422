//! Each command's work, taking plain option structs, never a clap type: the layer between
//! the command line ([`crate::cli`]) and the I/O below ([`crate::inputs`],
//! [`crate::cluster`]).
//!
//! - [`options`]: what a run was asked for (spec, cluster, minting, an apply, an import).
//! - [`load`]: the spec loaded from its files as the options say, its credentials resolved,
//!   a [`prepared::Prepared`] spec built.
//! - [`prepared`]: a spec made ready to plan: logins, the run's minted tokens, planning.
//! - [`session`]: an apply session, shared by `apply`, a fleet's apply and the controller:
//!   read and plan, take the Lease, read again under it, write fenced by it, record the
//!   Events.
//! - [`fleet`]: running over a spec's `clusters`: which, how each is reached, how many at
//!   once.
//! - [`plan_file`]: `plan --out` and `apply FILE`: the spec's digest, the cluster's identity,
//!   the plan file.
//! - [`import`], [`rekey`], [`encrypt`]: the spec's credentials from a cluster, to new
//!   recipients, or one password encrypted into the spec.
//! - [`node_trust`]: the spec's `caFile`s read and rendered for the nodes; [`node_sync`]: the
//!   node's side, writing them under the operator's allowlist.

pub mod apply;
pub mod encrypt;
pub mod fleet;
pub mod import;
pub mod load;
pub mod node_sync;
pub mod node_trust;
pub mod options;
pub mod plan_file;
pub mod prepared;
pub mod rekey;
pub mod session;
