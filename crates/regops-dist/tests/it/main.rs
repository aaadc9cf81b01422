//! regops-dist's tests: the release's steps as the workflow runs them, through the `dist/`
//! scripts. One test binary for the crate (`tests/it/main.rs`), as every crate of the
//! workspace has.

mod release;
