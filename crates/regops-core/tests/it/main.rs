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

/// Runs `f` on each entry of `dir`, in order, each with its snapshots named
/// `<test>@<entry's name>` and the entry as their input file: what `insta::glob!("dir/*", f)`
/// does, without the globset and walkdir that insta's `glob` feature adds to the test build
/// (globset turns on regex features the binary does not use, so `cargo test` built regex,
/// and everything above it, again after `cargo run`).
pub fn each_entry(dir: &std::path::Path, mut f: impl FnMut(&std::path::Path)) {
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "nothing in {}", dir.display());
    // As glob! does, every entry is run and the failures are told together (so one run
    // writes every changed snapshot).
    let mut failed = Vec::new();
    for path in &paths {
        let mut settings = insta::Settings::clone_current();
        settings.set_input_file(path);
        settings.set_snapshot_suffix(path.file_name().unwrap().to_str().unwrap());
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            settings.bind(|| f(path));
        }));
        if run.is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "failed for {}", failed.join(", "));
}
