//! Talking to a cluster: everything regops sends to a Kubernetes API server.
//!
//! - [`client`]: kubeconfig, context and client; cluster errors that say what to do.
//! - [`read`]: reading the cluster (a few paged LISTs per kind) or a state file into the lean
//!   observed model.
//! - [`write`]: carrying out a plan: write strategy per kind, retries, ordering.
//! - [`lock`]: the Lease that keeps two applies apart (and elects `apply --watch`'s leader).
//! - [`retry`]: one retry policy (backoff, Retry-After, timeouts) for reads, writes and the
//!   lock.
//! - [`events`]: Kubernetes Events of what an apply did, repeats folded into series.
//! - [`progress`]: the work loop's heartbeat, which `/healthz` reads.
//! - [`request_log`]: `-v`/`-vv`: each API request and retry on stderr, never a header or
//!   body.

pub mod client;
pub mod events;
pub mod lock;
pub mod progress;
pub mod read;
pub mod request_log;
pub mod retry;
pub mod write;
