//! The image, end to end, through the scripts the release workflow calls (`dist/`): a static
//! musl build of regops (`dist/build-binary`, the dev profile here for time; the workflow
//! builds the `dist` profile), written as an OCI layout with no container engine
//! (`dist/image`), twice to the same digest, pushed with skopeo (`dist/push-image`) to a real
//! registry (Docker Distribution over TLS with htpasswd), where `regops validate --image` finds
//! its manifest; its config names a non-root user and the entrypoint; its layer holds no shell,
//! and the binary taken out of it runs with nothing from the host (in a chroot of the layer).
//!
//! Needs the musl target (`rustup target add x86_64-unknown-linux-musl`), musl-gcc, skopeo and
//! docker-registry, so it is `#[ignore = "needs …"]`: `.ci/run` installs them and runs it with
//! `--include-ignored`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    clippy::print_stderr
)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::{start, tls_files, workdir};
use common::{regops, run};
use serde_json::Value;

const TARGET: &str = "x86_64-unknown-linux-musl";

/// Runs a script under `dist/`, returning its stdout; fails the test on a non-zero exit.
fn dist(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(common::repo().join("dist").join(script))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dist/{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The static binary, built by `dist/build-binary`.
fn musl_binary() -> PathBuf {
    common::require_musl_target();
    common::require("skopeo", "--version", "Debian: skopeo");
    let path = dist("build-binary", &[TARGET, "dev"], &[]);
    PathBuf::from(path.trim())
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

#[test]
#[ignore = "needs the musl target, musl-tools, skopeo and docker-registry"]
fn the_image_is_reproducible_runs_as_non_root_and_is_pulled_from_a_real_registry() {
    common::registry::require();
    let _heavy = common::heavy();
    let binary = musl_binary();
    let (dir, storage) = workdir();
    let tag = "0.0.0-test";
    let build = |name: &str| -> (PathBuf, String) {
        let layout = dir.path().join(name);
        let digest = dist(
            "image",
            &[
                layout.to_str().unwrap(),
                tag,
                &format!("amd64={}", binary.display()),
            ],
            &[],
        );
        (layout, digest.trim().to_string())
    };
    let (layout, digest) = build("first");
    let (_, again) = build("second");
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(digest, again, "two builds of the same inputs differ");

    // The layout: index.json names the tag; the image index has the amd64 manifest.
    let top = json(&layout.join("index.json"));
    assert_eq!(top["manifests"][0]["digest"], digest.as_str());
    assert_eq!(
        top["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        tag
    );
    let index = json(&blob(&layout, &digest));
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "amd64");
    let manifest = json(&blob(
        &layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let config = json(&blob(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/regops"])
    );
    let labels = &config["config"]["Labels"];
    let revision = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(common::repo())
        .output()
        .unwrap();
    let revision = String::from_utf8(revision.stdout).unwrap();
    assert_eq!(labels["org.opencontainers.image.revision"], revision.trim());
    assert_eq!(labels["org.opencontainers.image.version"], tag);
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );

    // The layer: exactly the binary, the CA bundle and the user; no shell.
    let layer = blob(&layout, manifest["layers"][0]["digest"].as_str().unwrap());
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(&layer)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    let files: Vec<&str> = listing.lines().filter(|l| !l.ends_with('/')).collect();
    assert_eq!(
        files,
        [
            "etc/group",
            "etc/passwd",
            "etc/ssl/certs/ca-certificates.crt",
            "usr/local/bin/regops"
        ],
        "{listing}"
    );
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&layer)
        .arg("-C")
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(untar.success());
    for shell in ["bin/sh", "bin/bash", "usr/bin/sh", "bin/busybox"] {
        assert!(!rootfs.join(shell).exists(), "{shell} is in the image");
    }

    // The binary from the layer runs with nothing from the host: chrooted into the layer, with
    // the quickstart copied in, `--version` names the commit and the quickstart plan exits 2.
    let quickstart = rootfs.join("quickstart");
    std::fs::create_dir(&quickstart).unwrap();
    for f in ["regops.yaml", "state.yaml", "example-key.txt"] {
        std::fs::copy(
            common::repo().join("examples/quickstart").join(f),
            quickstart.join(f),
        )
        .unwrap();
    }
    let in_image = |args: &[&str]| {
        // As root (CI), chroot; elsewhere a user namespace makes chroot possible. Named by
        // path: the command's environment is emptied, PATH included.
        let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("chroot (coreutils)");
        let mut c = if nix_root() {
            Command::new(chroot)
        } else {
            let mut c = Command::new("/usr/bin/unshare");
            c.args(["--map-root-user", chroot]);
            c
        };
        c.arg(&rootfs)
            .arg("/usr/local/bin/regops")
            .args(args)
            .env_clear()
            .env("NO_COLOR", "1");
        run(&mut c)
    };
    let version = in_image(&["--version"]);
    assert_eq!(version.code, 0, "{}", version.transcript());
    let short = &revision.trim()[..12];
    assert!(
        version.stdout.starts_with("regops ") && version.stdout.contains(short),
        "{}",
        version.stdout
    );
    let plan = in_image(&[
        "plan",
        "-f",
        "/quickstart/regops.yaml",
        "-i",
        "/quickstart/example-key.txt",
        "--live-state",
        "/quickstart/state.yaml",
    ]);
    assert_eq!(plan.code, 2, "{}", plan.transcript());
    assert!(plan.stdout.contains("Plan:"), "{}", plan.stdout);

    // Pushed to a real registry over TLS with a login, under the digest that was built.
    let (cert, key, ca) = tls_files(dir.path());
    let registry = start(dir.path(), "tls", &storage, Some((&cert, &key)));
    let certs = dir.path().join("certs.d");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(&ca, certs.join("ca.crt")).unwrap();
    let repository = format!("127.0.0.1:{}/platform/regops", registry.port);
    let pushed = dist(
        "push-image",
        &[
            layout.to_str().unwrap(),
            tag,
            &repository,
            "--dest-creds",
            "alice:s3cret",
            "--dest-cert-dir",
            certs.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(pushed.trim(), digest);

    // `regops validate --image` finds the manifest under the tag, and names the same digest.
    let spec = dir.path().join("regops.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: regops.dev/v1\nkind: RegistryConfig\nregistries:\n  mirror: {{ server: \"127.0.0.1:{}\", credential: alice, caFile: ca.pem }}\ncredentials:\n  alice: {{ username: alice, password: {{ env: REGOPS_CRED_ALICE_PASSWORD }} }}\n",
            registry.port
        ),
    )
    .unwrap();
    let r = run(regops()
        .arg("validate")
        .arg("-f")
        .arg(&spec)
        .args([
            "--image",
            &format!("{repository}:{tag}"),
            "--output",
            "json",
        ])
        .env("REGOPS_CRED_ALICE_PASSWORD", "s3cret"));
    assert_eq!(r.code, 0, "{}", r.transcript());
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["registries"][0]["result"], "OK", "{}", r.stdout);
    assert_eq!(
        report["registries"][0]["detail"],
        format!("logged in (Basic); may pull platform/regops:{tag} ({digest})"),
    );
}

fn nix_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

/// The release workflow only calls scripts of this repository (which the tests here and
/// regops-dist's run), and
/// each one it names exists and is executable.
#[test]
fn the_release_workflow_calls_the_dist_scripts() {
    use std::os::unix::fs::PermissionsExt;
    let text =
        std::fs::read_to_string(common::repo().join(".github/workflows/release.yml")).unwrap();
    let mut named: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == '"' || c == '$')
        .filter_map(|w| w.strip_prefix("dist/"))
        .filter(|w| !w.is_empty())
        .collect();
    named.sort_unstable();
    named.dedup();
    assert_eq!(
        named,
        ["build-binary", "checksums", "image", "push-image", "sbom"]
    );
    for script in named {
        let meta = std::fs::metadata(common::repo().join("dist").join(script)).unwrap();
        assert!(meta.permissions().mode() & 0o111 != 0, "dist/{script}");
    }
}
