//! The credential workflow end to end, through the real binary: keygen, encrypt (inline and to
//! an ageFile, YAML and TOML), check, render, rekey when a recipient leaves.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::path::Path;

use base64::Engine;
use common::{keygen, regops, run, run_with_stdin};

fn spec_yaml(recipients: &[&str]) -> String {
    format!(
        "# team registry spec\napiVersion: regops.dev/v1\nkind: RegistryConfig\nmetadata:\n  name: team\nrecipients:\n{}\nregistries:\n  harbor:\n    server: harbor.example.com   # HTTPS\n    credential: robot\n  hub:\n    server: docker.io\n    credential: hub\ncredentials:\n  robot:\n    username: robot$ci\n  hub:\n    username: myorg\nscopes:\n  web:\n    namespaces: [web, api]\npullSecrets:\n  pull:\n    registries: [harbor, hub]\n    scope: web\nbindings:\n  - pullSecret: pull\n    serviceAccounts: [default]\n",
        recipients
            .iter()
            .map(|r| format!("  - {r}\n"))
            .collect::<String>()
    )
}

fn encrypt(spec: &Path, credential: &str, secret: &str, extra: &[&str]) -> common::Run {
    run_with_stdin(
        regops()
            .arg("encrypt")
            .arg("-f")
            .arg(spec)
            .args(["--credential", credential])
            .args(extra),
        Some(secret),
    )
}

#[test]
fn keygen_writes_a_private_file_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let (path, public) = keygen(dir.path(), "key.txt");
    assert!(public.starts_with("age1"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("# public key: age1") && text.contains("AGE-SECRET-KEY-1"));
    let before = text.clone();
    let again = run(regops().args(["keygen", "-o"]).arg(&path));
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("cannot create"), "{}", again.stderr);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        before,
        "existing identity untouched"
    );
    let shown = run(regops().args(["keygen", "--public"]).arg(&path));
    assert_eq!(shown.stdout.trim(), public);
    assert!(!shown.stdout.contains("AGE-SECRET-KEY"));
}

#[test]
fn encrypt_check_render_and_rekey_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, alice_pub) = keygen(dir.path(), "alice.txt");
    let (bob, bob_pub) = keygen(dir.path(), "bob.txt");
    let spec = dir.path().join("regops.yaml");
    std::fs::write(&spec, spec_yaml(&[&alice_pub, &bob_pub])).unwrap();

    // Both credentials lack a password: encrypt fills them in, one inline, one in a file.
    let r = encrypt(&spec, "robot", "robot-pass\n", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("to 2 recipients"), "{}", r.stderr);
    let r = encrypt(
        &spec,
        "hub",
        "hub-token",
        &["--age-file", "secrets/hub.age"],
    );
    assert_ne!(r.code, 0, "the secrets/ directory does not exist yet");
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    let r = encrypt(
        &spec,
        "hub",
        "hub-token",
        &["--age-file", "secrets/hub.age"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&spec).unwrap();
    assert!(text.starts_with("# team registry spec\n"), "comments kept");
    assert!(
        text.contains("server: harbor.example.com   # HTTPS"),
        "layout kept"
    );
    assert!(text.contains("-----BEGIN AGE ENCRYPTED FILE-----"));
    assert!(text.contains("password: { ageFile: \"secrets/hub.age\" }"));
    assert!(!text.contains("robot-pass") && !text.contains("hub-token"));

    // Either recipient can read both.
    for id in [&alice, &bob] {
        let r = run(regops().arg("check").arg("-f").arg(&spec).arg("-i").arg(id));
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stderr.contains("2 of 2 credentials readable"),
            "{}",
            r.stderr
        );
    }

    // Render with secrets: the exact dockerconfigjson, password without the stdin newline.
    let r = run(regops()
        .arg("render")
        .arg("-f")
        .arg(&spec)
        .arg("-i")
        .arg(&alice)
        .arg("--show-secrets"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let docs: Vec<&str> = r.stdout.split("---\n").filter(|d| !d.is_empty()).collect();
    assert_eq!(docs.len(), 2, "one Secret per namespace: {}", r.stdout);
    assert!(docs[0].contains("namespace: \"api\"") && docs[1].contains("namespace: \"web\""));
    let b64 = docs[0]
        .lines()
        .find_map(|l| l.trim().strip_prefix(".dockerconfigjson: "))
        .unwrap();
    let json = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["auths"]["harbor.example.com"]["password"], "robot-pass");
    assert_eq!(
        v["auths"]["https://index.docker.io/v1/"]["username"],
        "myorg"
    );
    assert_eq!(
        v["auths"]["https://index.docker.io/v1/"]["password"],
        "hub-token"
    );

    // Bob leaves: remove his key and rekey as Alice. Bob can no longer decrypt anything.
    let text = std::fs::read_to_string(&spec)
        .unwrap()
        .replace(&format!("  - {bob_pub}\n"), "");
    std::fs::write(&spec, text).unwrap();
    let r = run(regops()
        .arg("rekey")
        .arg("-f")
        .arg(&spec)
        .arg("-i")
        .arg(&alice));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("re-encrypted 2 credentials to 1 recipient"),
        "{}",
        r.stderr
    );
    let r = run(regops()
        .arg("check")
        .arg("-f")
        .arg(&spec)
        .arg("-i")
        .arg(&bob));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("cannot decrypt credential `hub`")
            && r.stderr.contains("cannot decrypt credential `robot`"),
        "{}",
        r.stderr
    );
    let r = run(regops()
        .arg("check")
        .arg("-f")
        .arg(&spec)
        .arg("-i")
        .arg(&alice));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn rekey_without_a_usable_identity_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_alice, alice_pub) = keygen(dir.path(), "alice.txt");
    let (mallory, _) = keygen(dir.path(), "mallory.txt");
    let spec = dir.path().join("regops.yaml");
    std::fs::write(&spec, spec_yaml(&[&alice_pub])).unwrap();
    assert_eq!(encrypt(&spec, "robot", "x", &[]).code, 0);
    assert_eq!(encrypt(&spec, "hub", "y", &[]).code, 0);
    let before = std::fs::read_to_string(&spec).unwrap();
    let r = run(regops()
        .arg("rekey")
        .arg("-f")
        .arg(&spec)
        .arg("-i")
        .arg(&mallory));
    assert_eq!(r.code, 1);
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), before);
}

#[test]
fn identities_come_from_sops_and_regops_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "key.txt");
    let spec = dir.path().join("regops.yaml");
    std::fs::write(&spec, spec_yaml(&[&public])).unwrap();
    assert_eq!(encrypt(&spec, "robot", "x", &[]).code, 0);
    assert_eq!(encrypt(&spec, "hub", "y", &[]).code, 0);
    let secret = std::fs::read_to_string(&key).unwrap();
    for (var, value) in [
        ("REGOPS_AGE_KEY_FILE", key.display().to_string()),
        ("SOPS_AGE_KEY_FILE", key.display().to_string()),
        ("REGOPS_AGE_KEY", secret.clone()),
        ("SOPS_AGE_KEY", secret.clone()),
    ] {
        let r = run(regops().arg("check").arg("-f").arg(&spec).env(var, value));
        assert_eq!(r.code, 0, "{var}: {}", r.stderr);
    }
    // The default sops location under XDG_CONFIG_HOME.
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("sops/age")).unwrap();
    std::fs::copy(&key, config.join("sops/age/keys.txt")).unwrap();
    let r = run(regops()
        .arg("check")
        .arg("-f")
        .arg(&spec)
        .env("XDG_CONFIG_HOME", &config));
    assert_eq!(r.code, 0, "{}", r.stderr);
    // And none at all: a clear error naming where regops looked.
    let r = run(regops().arg("check").arg("-f").arg(&spec));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no age identity found") && r.stderr.contains("SOPS_AGE_KEY_FILE"),
        "{}",
        r.stderr
    );
}

#[test]
fn toml_spec_encrypts_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "key.txt");
    let spec = dir.path().join("regops.toml");
    std::fs::write(
        &spec,
        format!("# comment\napiVersion = \"regops.dev/v1\"\nkind = \"RegistryConfig\"\nrecipients = [\"{public}\"]\n\n[registries.r]\nserver = \"reg.example.com:5000\"\ncredential = \"c\"\n\n[credentials.c]\nusername = \"u\"\n\n[scopes.s]\nnamespaces = [\"ns\"]\n\n[pullSecrets.p]\nregistries = [\"r\"]\nscope = \"s\"\n"),
    )
    .unwrap();
    let r = encrypt(&spec, "c", "toml-secret", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&spec).unwrap();
    assert!(
        text.starts_with("# comment\n") && text.contains("password = '''\n-----BEGIN AGE"),
        "{text}"
    );
    let r = run(regops()
        .arg("render")
        .arg("-f")
        .arg(&spec)
        .arg("-i")
        .arg(&key));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("name: \"p\"") && r.stdout.contains("reg.example.com:5000 as u"),
        "{}",
        r.stdout
    );
}

#[test]
fn encrypt_refuses_unknown_credentials_and_empty_input() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = keygen(dir.path(), "key.txt");
    let spec = dir.path().join("regops.yaml");
    std::fs::write(&spec, spec_yaml(&[&public])).unwrap();
    let before = std::fs::read_to_string(&spec).unwrap();
    let r = encrypt(&spec, "robt", "x", &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no credential `robt`"), "{}", r.stderr);
    let r = encrypt(&spec, "robot", "\n", &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("empty"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), before);
}

#[test]
fn render_for_given_namespaces_honours_scope_and_exclusions() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("regops.yaml");
    std::fs::write(
        &spec,
        "apiVersion: regops.dev/v1\nkind: RegistryConfig\nregistries:\n  r: { server: r.example.com, credential: c }\ncredentials:\n  c: { username: u, password: { env: REGOPS_CRED_C_PASS } }\nscopes:\n  named: { namespaces: [a, b] }\n  labelled: { selector: { matchLabels: { team: x } }, exclude: [c] }\npullSecrets:\n  only-named: { registries: [r], scope: named }\n  by-label: { registries: [r], scope: labelled }\n",
    )
    .unwrap();
    let r = run(regops()
        .arg("render")
        .arg("-f")
        .arg(&spec)
        .args(["--namespaces", "b,c,d"])
        .env("REGOPS_CRED_C_PASS", "p"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pairs: Vec<(String, String)> = r
        .stdout
        .split("---\n")
        .filter(|d| !d.is_empty())
        .map(|d| {
            let get = |k: &str| {
                d.lines()
                    .find_map(|l| l.trim().strip_prefix(k))
                    .unwrap()
                    .trim_matches('"')
                    .to_string()
            };
            (get("namespace: "), get("name: "))
        })
        .collect();
    // `named` only where named (b); `labelled` anywhere given except its exclusion (c).
    assert_eq!(
        pairs,
        [
            ("b".into(), "by-label".into()),
            ("b".into(), "only-named".into()),
            ("d".into(), "by-label".into())
        ]
    );
    let r = run(regops()
        .arg("render")
        .arg("-f")
        .arg(&spec)
        .args(["--namespaces", "Bad_NS"])
        .env("REGOPS_CRED_C_PASS", "p"));
    assert_eq!(r.code, 1);
}

/// An ssh-ed25519 public key as recipient, its OpenSSH private key as identity.
#[test]
#[ignore = "needs ssh-keygen (Debian: openssh-client)"]
fn ssh_ed25519_recipient_and_identity() {
    common::require("ssh-keygen", "-?", "Debian: openssh-client");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ci@example", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let spec = dir.path().join("regops.yaml");
    std::fs::write(&spec, spec_yaml(&[&format!("\"{}\"", public.trim())])).unwrap();
    assert_eq!(encrypt(&spec, "robot", "ssh-protected", &[]).code, 0);
    assert_eq!(encrypt(&spec, "hub", "ssh-protected-2", &[]).code, 0);
    let r = run(regops()
        .arg("check")
        .arg("-f")
        .arg(&spec)
        .arg("-i")
        .arg(&key));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("2 of 2 credentials readable"),
        "{}",
        r.stderr
    );
}
