//! The pure core of regops: no I/O, no clock, no cluster.
//!
//! ```text
//! Spec + logins + Observed --desired::compute--> Desired
//! Desired x Observed       --plan::compute-----> Plan --view--> text | JSON | Markdown
//! ```

pub mod desired;
pub mod dockerconfig;
pub mod drift;
pub mod events;
pub mod expiry;
pub mod fingerprint;
pub mod fleet;
pub mod format;
pub mod group;
pub mod image;
pub mod import;
pub mod login;
pub mod node_trust;
pub mod observed;
pub mod ownership;
pub mod plan;
pub mod prometheus;
pub mod render;
pub mod report;
pub mod request;
pub mod saved;
pub mod sops;
pub mod view;
pub mod warning;
pub mod write;
