//! The test server's integration tests, one binary: each module is one subject.

// A test binary: helpers are `pub` for the modules beside them, and a test may unwrap.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

mod common;

mod api;
mod custom_resources;
mod field_validation;
mod kubectl;
mod watch;
