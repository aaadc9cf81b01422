//! A real registry for tests: Debian's `docker-registry` (Docker Distribution) on 127.0.0.1,
//! with htpasswd authentication (alice, `s3cret`), over TLS with a CA made for the test or
//! over plain HTTP. The tests that use it are `#[ignore = "needs docker-registry …"]` and call
//! [`require`]; `.ci/run` installs it and runs them with `--include-ignored`.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY: &str = "/usr/bin/docker-registry";

pub struct Registry {
    child: Child,
    pub port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    super::listen_port()
}

pub fn start(dir: &Path, name: &str, storage: &Path, tls: Option<(&Path, &Path)>) -> Registry {
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
        dir.join("htpasswd").display()
    );
    start_with(dir, name, storage, tls, &auth)
}

pub fn start_with(
    dir: &Path,
    name: &str,
    storage: &Path,
    tls: Option<(&Path, &Path)>,
    auth: &str,
) -> Registry {
    let port = free_port();
    start_at(None, "127.0.0.1", port, dir, name, storage, tls, auth)
}

/// A registry listening on `ip:port`, run in network namespace `netns` when given (`ip netns
/// exec`), so that its address need not be loopback.
#[allow(clippy::too_many_arguments)]
pub fn start_at(
    netns: Option<&str>,
    ip: &str,
    port: u16,
    dir: &Path,
    name: &str,
    storage: &Path,
    tls: Option<(&Path, &Path)>,
    auth: &str,
) -> Registry {
    let tls_conf = tls.map_or(String::new(), |(c, k)| {
        format!(
            "\n  tls:\n    certificate: {}\n    key: {}",
            c.display(),
            k.display()
        )
    });
    let config = format!(
        "version: 0.1\nlog: {{ level: error }}\nstorage: {{ filesystem: {{ rootdirectory: {} }} }}\nhttp:\n  addr: {ip}:{port}\n  secret: test-secret{tls_conf}\n{auth}",
        storage.display()
    );
    let path = dir.join(format!("{name}.yml"));
    std::fs::write(&path, config).unwrap();
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, REGISTRY]);
            c
        }
        None => Command::new(REGISTRY),
    };
    let child = cmd
        .arg("serve")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let addr: std::net::IpAddr = ip.parse().unwrap();
    while TcpStream::connect((addr, port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "docker-registry did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Registry { child, port }
}

/// Fails the test unless docker-registry and htpasswd are installed (see `super::require`).
pub fn require() {
    assert!(
        Path::new(REGISTRY).exists(),
        "this test needs {REGISTRY} (Debian: docker-registry): install it, or run the suite \
         without --include-ignored"
    );
    super::require("htpasswd", "-h", "Debian: apache2-utils");
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A temporary directory with an htpasswd file for alice, and an empty registry storage in it.
pub fn workdir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    std::fs::create_dir(&storage).unwrap();
    let out = Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret"])
        .output()
        .unwrap();
    std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
    (dir, storage)
}

/// A CA and a server certificate for 127.0.0.1, made for a test: (certificate, key, CA), as
/// PEM files in `dir`.
pub fn tls_files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    tls_files_for(dir, &["127.0.0.1", "localhost"])
}

/// As [`tls_files`], the server certificate for `names` (host names or IP addresses).
pub fn tls_files_for(
    dir: &Path,
    names: &[&str],
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "regops test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
    let (cert_path, key_path, ca_path) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::write(&ca_path, ca.pem()).unwrap();

    (cert_path, key_path, ca_path)
}
