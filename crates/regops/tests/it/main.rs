//! regops' integration tests, one binary: each module is one subject (as each was a binary
//! of its own before; one binary links kube, hyper, rustls, age and git2 once, not 32 times).

// A test binary: helpers are `pub` for the modules beside them, and a test may unwrap.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

mod common;

mod apply;
mod bad_specs;
mod child_env;
mod cli_defaults;
mod cli_docs;
mod docs;
mod e2e;
mod events;
mod examples;
mod exit_codes;
mod expiry;
mod fleet;
mod fuzz_replay;
mod helper;
mod hostile_peers;
mod hostile_text;
mod image;
mod import;
mod kubelet_volumes;
mod layers;
mod minted;
mod no_leaks;
mod node_containerd;
mod node_sync;
mod node_trust;
mod node_trust_apply;
mod parse_errors;
mod replace;
mod saved_plan;
mod secret_managers;
mod secret_refresh;
mod sops;
mod state_files;
mod untrusted_paths;
mod untrusted_spec;
mod validate;
mod walkthroughs;
mod watch;
mod workflows;
mod workload_kinds;
