//! What the test files share.

#![allow(clippy::print_stderr, dead_code, unreachable_pub)]

/// Whether kubectl is installed. Missing, the caller skips (with a note in the output), except
/// under REGOPS_REQUIRE_TOOLS (set by .ci/run), where that is a failure.
pub fn have_kubectl() -> bool {
    let found = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("REGOPS_REQUIRE_TOOLS").is_none(),
            "kubectl is required (REGOPS_REQUIRE_TOOLS) but not installed"
        );
        eprintln!("kubectl is not installed: skipping");
    }
    found
}
