//! regops-core's integration tests, one binary: each module is one subject.

// A test binary: helpers are `pub` for the modules beside them, and a test may unwrap.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

mod fleet_views;
mod hostile_views;
mod invariants;
mod minted;
mod node_trust_plan;
mod plan_scenarios;
mod views;
