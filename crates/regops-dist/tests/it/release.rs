//! The release's steps that need no tool beyond the Rust toolchain and coreutils: the SBOM and
//! the checksums, through `dist/sbom` and `dist/checksums` as the release workflow calls them.
//! `dist/sbom` is given this build's `regops-dist` (`REGOPS_DIST`), as the workflow gives it
//! the one it built, so the test does not start a second `cargo run` (whose build, for one
//! package's features, differs from the workspace's and rebuilt half the dependencies).

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const TARGET: &str = "x86_64-unknown-linux-musl";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a script under `dist/`, returning its stdout; fails the test on a non-zero exit.
fn dist(script: &str, args: &[&str]) -> String {
    let out = Command::new(repo().join("dist").join(script))
        .args(args)
        .env("REGOPS_DIST", env!("CARGO_BIN_EXE_regops-dist"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dist/{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The release's other steps, as the workflow runs them: the SBOM of the musl build (what the
/// binary links, with crates.io's checksums; no dev-dependency) and the checksums file, which
/// `sha256sum -c` accepts.
#[test]
fn the_sbom_and_checksums_are_what_the_release_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let sbom = dir.path().join("regops.cdx.json");
    dist("sbom", &[TARGET, sbom.to_str().unwrap()]);
    let bom = json(&sbom);
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["metadata"]["component"]["name"], "regops");
    let component = |name: &str| {
        bom["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
    };
    let kube = component("kube").expect("kube is linked");
    assert_eq!(kube["hashes"][0]["alg"], "SHA-256");
    assert!(
        kube["purl"]
            .as_str()
            .unwrap()
            .starts_with("pkg:cargo/kube@")
    );
    assert!(component("regops-core").is_some());
    for dev_only in ["insta", "tempfile", "kube-test-server", "rcgen"] {
        assert!(
            component(dev_only).is_none(),
            "{dev_only} is not in the binary"
        );
    }
    // The same lockfile gives the same bytes.
    let again = dir.path().join("again.json");
    dist("sbom", &[TARGET, again.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(&sbom).unwrap(),
        std::fs::read(&again).unwrap()
    );

    let sums = dir.path().join("SHA256SUMS");
    dist(
        "checksums",
        &[
            sums.to_str().unwrap(),
            sbom.to_str().unwrap(),
            again.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&sums).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    let check = Command::new("sha256sum")
        .arg("-c")
        .arg(&sums)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(check.status.success(), "{text}");
}
