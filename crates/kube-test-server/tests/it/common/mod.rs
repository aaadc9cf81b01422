//! What the test files share.

#![allow(clippy::print_stderr, dead_code, unreachable_pub)]

/// Fails the test unless kubectl is installed. The tests that call it are
/// `#[ignore = "needs kubectl …"]`, so a developer without kubectl sees them ignored, and
/// `.ci/run` installs it and runs them with `--include-ignored`: they never pass by skipping.
pub fn require_kubectl() {
    let found = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok();
    assert!(
        found,
        "this test needs kubectl (Debian: kubernetes-client): install it, or run the suite \
         without --include-ignored"
    );
}
