//! Running the real binary with a clean environment, as a user would.
#![allow(dead_code, clippy::print_stderr)]

pub mod cloud;
pub mod kubelet;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A free port for a server that a child process (the controller, a registry) will bind.
/// Not one the kernel handed out (`bind(0)` then closed): that is in the ephemeral range, where
/// the kernel also picks the local port of every outgoing connection, and with tests running at
/// once one of those took it before the child bound it ("Address already in use"). These come
/// from below the ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`), each once per
/// test binary, and are checked free.
pub fn listen_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (from, span) = (low.saturating_sub(12_000).max(1024), 11_000);
    // A start that differs between test binaries run at once.
    let start = std::process::id() % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(from + (start + n) % span).unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}

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

/// Tests that time leases and watches in seconds share this lock (`timing`); the heavy ones
/// (the musl build and image, the kubelet's pods) hold it alone (`heavy`), so that in one test
/// binary a build on both cores never starves a lease renewal.
static TIMING: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// For a test whose assertions depend on timings (leases, watches).
pub fn timing() -> std::sync::RwLockReadGuard<'static, ()> {
    TIMING
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// For a test that loads the machine (builds, images, pods): none of the `timing` tests runs
/// beside it.
pub fn heavy() -> std::sync::RwLockWriteGuard<'static, ()> {
    TIMING
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Polls `done` every 100 ms for at most `limit`; whether it came true.
pub fn wait_until(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    eprintln!("gave up waiting for {what} after {limit:?}");
    false
}

/// The regops binary with an empty environment: no colour, no HOME key files, no age keys.
pub fn regops() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_regops"));
    c.env_clear()
        .env("NO_COLOR", "1")
        .env("HOME", "/nonexistent-home")
        .stdin(Stdio::null());
    c
}

/// The fake docker credential helper (`tests/fixtures/helpers/docker-credential-fake`, and
/// under each of `also` names, as `ecr-login`) on `cmd`'s PATH, doing what `settings`
/// (`FAKE_HELPER_*`) say. A helper gets only an allowlist of regops' environment, so the
/// settings go into `$HOME/fake-helper.env`, in a HOME of its own; keep the returned
/// directory until the command has run.
pub fn fake_helper(
    cmd: &mut Command,
    settings: &[(&str, &str)],
    also: &[&str],
) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = fixtures().join("helpers/docker-credential-fake");
    for name in also {
        std::os::unix::fs::symlink(&fake, bin.join(format!("docker-credential-{name}"))).unwrap();
    }
    let lines: String = settings
        .iter()
        .map(|(k, v)| format!("export {k}='{}'\n", v.replace('\'', "'\\''")))
        .collect();
    std::fs::write(home.path().join("fake-helper.env"), lines).unwrap();
    cmd.env("HOME", home.path()).env(
        "PATH",
        format!(
            "{}:{}:/usr/bin:/bin",
            bin.display(),
            fixtures().join("helpers").display()
        ),
    );
    home
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stderr with miette's line wrapping undone (whitespace and `│` gutters collapsed), for
    /// asserting on whole sentences.
    pub fn flat_stderr(&self) -> String {
        self.stderr
            .replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Exit code, stdout and stderr together, for snapshots.
    pub fn transcript(&self) -> String {
        format!(
            "exit code: {}\n----- stdout -----\n{}----- stderr -----\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn run(cmd: &mut Command) -> Run {
    run_with_stdin(cmd, None)
}

pub fn run_with_stdin(cmd: &mut Command, stdin: Option<&str>) -> Run {
    use std::io::Write;
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn regops");
    if let Some(input) = stdin {
        // A command that refuses before reading its input (an unknown credential) may exit
        // first: the pipe is then closed, which is not the test's failure.
        match child.stdin.take().unwrap().write_all(input.as_bytes()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => panic!("writing the command's input: {e}"),
        }
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A fresh age identity in `dir`, returning (identity file, public key).
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let r = run(regops().args(["keygen", "-o"]).arg(&path));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    let public = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    (path, public)
}

/// Fails the test, naming what to install, unless `program` runs (`program probe`).
///
/// The suite's convention for a test that needs a tool: it is marked
/// `#[ignore = "needs <tool> (<package>)"]`, so a developer without the tool sees it listed as
/// ignored rather than passing, and `.ci/run` installs every such tool and runs the suite with
/// `-- --include-ignored`. Run that way without the tool, the test fails here; it never returns
/// early with a green result.
#[allow(dead_code)] // not every test file that includes this module calls it
pub fn require(program: &str, probe: &str, package: &str) {
    let present = Command::new(program).arg(probe).output().is_ok();
    assert!(
        present,
        "this test needs {program} ({package}): install it, or run the suite without \
         --include-ignored"
    );
}

/// Fails the test unless rustup has the `x86_64-unknown-linux-musl` target (the release's static
/// build, `dist/build-binary`).
#[allow(dead_code)] // not every test file that includes this module calls it
pub fn require_musl_target() {
    const TARGET: &str = "x86_64-unknown-linux-musl";
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == TARGET)
        });
    assert!(
        installed,
        "this test needs the {TARGET} target (`rustup target add {TARGET}`) and musl-gcc \
         (Debian: musl-tools), or run the suite without --include-ignored"
    );
}

/// Fails the test unless it runs as root (the kubelet's volume layout, namespaces, chroot).
#[allow(dead_code)] // not every test file that includes this module calls it
pub fn require_root() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    assert!(
        root,
        "this test needs root (it lays volumes out and enters namespaces as the kubelet does): \
         run it as root, or run the suite without --include-ignored"
    );
}

/// A test API server, its kubeconfig and a spec file, in a directory of their own.
pub struct Cluster {
    pub server: kube_test_server::TestServer,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub spec: PathBuf,
}

impl Cluster {
    pub fn new(spec: &str) -> Cluster {
        Cluster::with(spec, kube_test_server::Config::default())
    }

    /// Served over TLS, as kubectl needs to send the bearer token (`install`).
    pub fn new_tls(spec: &str) -> Cluster {
        Cluster::with(
            spec,
            kube_test_server::Config {
                tls: true,
                ..kube_test_server::Config::default()
            },
        )
    }

    pub fn with(spec: &str, config: kube_test_server::Config) -> Cluster {
        let server = kube_test_server::TestServer::start(config).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        let spec_path = dir.path().join("regops.yaml");
        std::fs::write(&spec_path, spec).unwrap();
        Cluster {
            server,
            dir,
            kubeconfig,
            spec: spec_path,
        }
    }
}

/// Seeds `server` with the objects of a YAML fixture in `tests/fixtures/cluster/`.
pub fn seed_fixture(server: &kube_test_server::TestServer, name: &str) {
    let text = std::fs::read_to_string(fixtures().join("cluster").join(name)).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    for d in docs.into_iter().filter(|d| !d.is_null()) {
        server.seed(d).unwrap();
    }
}

/// What `kubectl apply -k` of an install in `deploy/` put on the server.
pub struct Installed {
    /// The objects as the server holds them after the apply.
    pub objects: Vec<serde_json::Value>,
}

impl Installed {
    /// The one object of `kind` named `name`.
    pub fn get(&self, kind: &str, name: &str) -> &serde_json::Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("the install has no {kind} {name}"))
    }

    /// The Roles' and ClusterRoles' rules, as the test server's policy (none with a wildcard).
    pub fn rules(&self) -> Vec<kube_test_server::Rule> {
        rules_of(&self.objects)
    }
}

/// Installs `deploy/<base>` on `server` as the README says a user does: an overlay that sets the
/// image (`images:`) and puts `spec` in the spec's ConfigMap, rendered by `kubectl kustomize`
/// and applied with `kubectl apply -f -` through `kubeconfig` (a TLS server's: kubectl sends
/// a bearer token only over TLS, see `Cluster::new_tls`). Returns what the server then
/// holds of each rendered object. Needs kubectl (see `require`).
pub fn install(
    base: &str,
    server: &kube_test_server::TestServer,
    kubeconfig: &Path,
    spec: &str,
) -> Installed {
    install_with(base, &[], server, kubeconfig, spec)
}

/// As [`install`], with these components of `deploy/components/` in the overlay too.
#[allow(dead_code)] // not every test file that includes this module calls it
pub fn install_with(
    base: &str,
    components: &[&str],
    server: &kube_test_server::TestServer,
    kubeconfig: &Path,
    spec: &str,
) -> Installed {
    use std::io::Write;
    require("kubectl", "version", "Debian: kubernetes-client");
    let overlay = tempfile::tempdir().unwrap();
    std::fs::write(overlay.path().join("regops.yaml"), spec).unwrap();
    // kustomize takes a base only by a relative path: up from the overlay to `/`, then down.
    let overlay_abs = overlay.path().canonicalize().unwrap();
    let ups = overlay_abs.components().count() - 1;
    let base_abs = repo().join("deploy").join(base).canonicalize().unwrap();
    let up = std::iter::repeat_n(Path::new(".."), ups).collect::<PathBuf>();
    let base_path = up.join(base_abs.strip_prefix("/").unwrap());
    let mut components_yaml = String::new();
    for c in components {
        let abs = repo()
            .join("deploy/components")
            .join(c)
            .canonicalize()
            .unwrap();
        if components_yaml.is_empty() {
            components_yaml.push_str("components:\n");
        }
        components_yaml.push_str(&format!(
            "  - {}\n",
            up.join(abs.strip_prefix("/").unwrap()).display()
        ));
    }
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\n\
             images:\n  - name: ghcr.io/regops/regops\n    newName: registry.test/regops\n    newTag: test\n\
             configMapGenerator:\n  - name: regops-spec\n    namespace: regops\n    behavior: replace\n\
             \x20   files: [regops.yaml]\n    options: {{ disableNameSuffixHash: true }}\n{}",
            base_path.display(),
            components_yaml
        ),
    )
    .unwrap();
    let rendered = Command::new("kubectl")
        .arg("kustomize")
        .arg(overlay.path())
        .output()
        .unwrap();
    assert!(
        rendered.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let text = String::from_utf8(rendered.stdout).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let mut apply = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        // kubectl's default validation (strict): the test server says through OpenAPI v3 that
        // it checks fields itself, as kube-apiserver does.
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    apply
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = apply.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl apply: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let objects = docs
        .iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            let plural = format!("{}s", d["kind"].as_str().unwrap().to_lowercase())
                .replace("policys", "policies");
            let ns = d["metadata"]["namespace"].as_str().unwrap_or("");
            let name = d["metadata"]["name"].as_str().unwrap();
            server
                .object(&plural, ns, name)
                .unwrap_or_else(|| panic!("{plural} {ns}/{name} is not on the server"))
        })
        .collect();
    Installed { objects }
}

/// The rules of the Roles and ClusterRoles in an RBAC example, as the test server's policy;
/// none may hold a wildcard.
pub fn rbac_rules(path: &Path) -> Vec<kube_test_server::Rule> {
    let text = std::fs::read_to_string(path).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    rules_of(&docs)
}

pub fn rules_of(docs: &[serde_json::Value]) -> Vec<kube_test_server::Rule> {
    let mut rules = Vec::new();
    for d in docs
        .iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("ClusterRole" | "Role")))
    {
        for r in d["rules"].as_array().unwrap() {
            let list = |k: &str| -> Vec<String> {
                r[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect()
            };
            let (verbs, resources) = (list("verbs"), list("resources"));
            assert!(
                !verbs.contains(&"*".to_string()) && !resources.contains(&"*".to_string()),
                "wildcard in {r}"
            );
            rules.push(kube_test_server::Rule { verbs, resources });
        }
    }
    rules
}
