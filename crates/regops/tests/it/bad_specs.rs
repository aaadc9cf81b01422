//! Every spec under fixtures/bad/ is refused by `regops check` with exit code 1 and located
//! diagnostics. The transcripts are insta snapshots.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use common::{regops, run};

#[test]
fn bad_specs_are_reported_with_locations() {
    common::each_entry(
        &common::repo().join("crates/regops/tests/fixtures/bad"),
        |path| {
            let name = path.file_name().unwrap();
            let r = run(regops()
                .current_dir(path.parent().unwrap())
                .env("REGOPS_CRED_HARBOR_TOKEN", "x")
                .env("REGOPS_CRED_A_TOKEN", "x")
                .env("B_TOKEN", "x")
                .arg("check")
                .arg("-f")
                .arg(name)
                .args(["-i", "../test-key.txt"]));
            assert_eq!(r.code, 1, "{}", r.transcript());
            assert!(r.stdout.is_empty(), "diagnostics go to stderr");
            assert!(
                r.stderr.contains("×"),
                "a rendered diagnostic: {}",
                r.stderr
            );
            // Fixtures 11 and 17 hold a plaintext password and a private key: never shown.
            assert!(!r.stderr.contains("PLAINTEXT-MARKER"), "{}", r.stderr);
            assert!(!r.stderr.contains("SMARKER"), "{}", r.stderr);
            insta::assert_snapshot!(r.transcript());
        },
    );
}

/// Every committed snapshot belongs to a fixture that still exists (no stale snapshots).
#[test]
fn no_snapshot_without_a_fixture() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let fixtures: Vec<String> = std::fs::read_dir(dir.join("fixtures/bad"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for snap in std::fs::read_dir(dir.join("it/snapshots")).unwrap() {
        let name = snap.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(rest) =
            name.strip_prefix("it__bad_specs__bad_specs_are_reported_with_locations@")
        {
            let fixture = rest.trim_end_matches(".snap");
            assert!(
                fixtures.iter().any(|f| f == fixture),
                "stale snapshot {name}"
            );
        }
    }
}

/// A spec file over the size limit is refused before it is parsed, with the limit named.
#[test]
fn a_spec_file_over_the_size_limit_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let limit = regops_spec::source::MAX_SPEC_FILE_BYTES;
    let mut text = String::from("apiVersion: regops.dev/v1\nkind: RegistryConfig\n# ");
    text.push_str(&"x".repeat(usize::try_from(limit).unwrap()));
    std::fs::write(&path, text).unwrap();
    let r = run(regops()
        .arg("check")
        .arg("-f")
        .arg(&path)
        .arg("--no-decrypt"));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr()
            .contains("is larger than the 16 MiB limit for a spec file"),
        "{}",
        r.transcript()
    );
    assert!(r.stderr.len() < 2000, "{}", r.stderr.len());
}

/// Specs made to be expensive (generated, see `regops_bench::hostile`): each is refused with
/// at most a screenful of diagnostics and a line counting the rest, and no quoted value is
/// echoed whole. Their time and memory bounds are asserted by the `hostile_specs` benchmark
/// on a release build.
#[test]
fn hostile_specs_get_a_screenful_of_diagnostics() {
    // Seconds of a core per spec in a debug build: no timing test runs beside it.
    let _heavy = common::heavy();
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in regops_bench::hostile::specs() {
        let path = dir.path().join(name);
        std::fs::write(&path, &text).unwrap();
        let r = run(regops().args(["check", "--no-decrypt", "-f"]).arg(&path));
        assert_eq!(r.code, 1, "{name}");
        let drawn = r.stderr.matches("\n  × ").count() + r.stderr.matches("\n  ⚠ ").count();
        assert!(drawn <= 50, "{name}: {drawn} diagnostics drawn");
        assert!(
            r.stderr.len() < 64 * 1024,
            "{name}: {} bytes",
            r.stderr.len()
        );
        match name {
            "5mb-name.yaml" => {}
            // Refused before it is built: more values than a spec may hold.
            "16mib-tiny-tables.toml" => assert!(
                r.stderr.contains("this spec holds more than 250000 values"),
                "{name}: {}",
                &r.stderr[..r.stderr.len().min(600)]
            ),
            _ => assert!(
                r.stderr.contains("more not shown ("),
                "{name}: the rest is counted: {}",
                &r.stderr[r.stderr.len().saturating_sub(300)..]
            ),
        }
    }
}
