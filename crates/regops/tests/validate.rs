//! `regops validate` against a real registry: Debian's `docker-registry` (Docker
//! Distribution), started here on 127.0.0.1 with htpasswd authentication, over TLS with a CA
//! generated for the test and over plain HTTP, sharing one storage into which the test pushes
//! an image. `.ci/run` installs the package and sets REGOPS_REQUIRE_REGISTRY=1, so in CI these
//! tests cannot be skipped; elsewhere they are skipped when the package is missing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    clippy::print_stderr
)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{regops, run};
use sha2::Digest;

const REGISTRY: &str = "/usr/bin/docker-registry";

struct Registry {
    child: Child,
    port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &Path, name: &str, storage: &Path, tls: Option<(&Path, &Path)>) -> Registry {
    let port = free_port();
    let tls_conf = tls.map_or(String::new(), |(c, k)| {
        format!(
            "\n  tls:\n    certificate: {}\n    key: {}",
            c.display(),
            k.display()
        )
    });
    let config = format!(
        "version: 0.1\nlog: {{ level: error }}\nstorage: {{ filesystem: {{ rootdirectory: {} }} }}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: test-secret{tls_conf}\nauth:\n  htpasswd:\n    realm: test\n    path: {}\n",
        storage.display(),
        dir.join("htpasswd").display()
    );
    let path = dir.join(format!("{name}.yml"));
    std::fs::write(&path, config).unwrap();
    let child = Command::new(REGISTRY)
        .arg("serve")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "docker-registry did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Registry { child, port }
}

fn available() -> bool {
    let present =
        Path::new(REGISTRY).exists() && Command::new("htpasswd").arg("-h").output().is_ok();
    if !present && std::env::var_os("REGOPS_REQUIRE_REGISTRY").is_some() {
        panic!("docker-registry and htpasswd (apache2-utils) must be installed here");
    }
    if !present {
        eprintln!("docker-registry or htpasswd not installed: skipping");
    }
    present
}

/// A minimal HTTP/1.1 request to the plain-HTTP instance (to push an image).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, out)
}

fn push_blob(port: u16, repo: &str, data: &[u8]) -> String {
    let digest = format!("sha256:{}", hex(&sha2::Sha256::digest(data)));
    let (status, resp) = http(
        port,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    assert_eq!(status, 202, "{resp}");
    let location = resp
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .unwrap()
        .trim()
        .to_string();
    let path = location
        .split_once(&format!("127.0.0.1:{port}"))
        .map_or(location.clone(), |(_, p)| p.to_string());
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, resp) = http(
        port,
        "PUT",
        &format!("{path}{sep}digest={digest}"),
        &[("Content-Type", "application/octet-stream".into())],
        data,
    );
    assert_eq!(status, 201, "{resp}");
    digest
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Pushes `repo:tag` (one config blob, one layer) through the plain-HTTP instance.
fn push_image(port: u16, repo: &str, tag: &str) {
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#;
    let layer = b"not really a tarball, but a blob all the same";
    let config_digest = push_blob(port, repo, config);
    let layer_digest = push_blob(port, repo, layer);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config.len(), "digest": config_digest},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": layer.len(), "digest": layer_digest}],
    })
    .to_string();
    let (status, resp) = http(
        port,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v2+json".into(),
        )],
        manifest.as_bytes(),
    );
    assert_eq!(status, 201, "{resp}");
}

#[test]
fn validate_logs_in_to_a_real_registry() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    std::fs::create_dir(&storage).unwrap();
    let out = Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret"])
        .output()
        .unwrap();
    std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();

    // A CA and a server certificate for 127.0.0.1, made for this test.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "regops test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
    let (cert_path, key_path, ca_path) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::write(&ca_path, ca.pem()).unwrap();

    let tls = start(dir.path(), "tls", &storage, Some((&cert_path, &key_path)));
    let plain = start(dir.path(), "plain", &storage, None);
    push_image(plain.port, "team/app", "1.0");

    let spec = dir.path().join("regops.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: regops.dev/v1
kind: RegistryConfig
registries:
  tls: {{ server: \"127.0.0.1:{t}\", credential: alice, caFile: ca.pem }}
  plain: {{ server: \"127.0.0.1:{p}\", credential: alice, insecure: true }}
  wrong-password: {{ server: \"127.0.0.1:{t}\", credential: wrong-password, caFile: ca.pem }}
  unknown-user: {{ server: \"127.0.0.1:{t}\", credential: mallory, caFile: ca.pem }}
  untrusted: {{ server: \"127.0.0.1:{t}\", credential: alice }}
  gone: {{ server: \"127.0.0.1:{g}\", credential: alice, insecure: true }}
credentials:
  alice: {{ username: alice, password: {{ env: ALICE_PASSWORD }} }}
  wrong-password: {{ username: alice, password: {{ env: WRONG_PASSWORD }} }}
  mallory: {{ username: mallory, password: {{ env: ALICE_PASSWORD }} }}
",
            t = tls.port,
            p = plain.port,
            g = free_port()
        ),
    )
    .unwrap();
    let validate = |extra: &[&str]| {
        run(regops()
            .arg("validate")
            .arg("-f")
            .arg(&spec)
            .args(["--output", "json"])
            .args(extra)
            .env("ALICE_PASSWORD", "s3cret")
            .env("WRONG_PASSWORD", "MARKER-wrong"))
    };
    let r = validate(&[]);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        !r.stdout.contains("s3cret")
            && !r.stdout.contains("MARKER")
            && !r.stderr.contains("s3cret"),
        "{}",
        r.transcript()
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let result = |name: &str| {
        v["registries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["registry"] == name)
            .map(|x| {
                (
                    x["result"].as_str().unwrap().to_string(),
                    x["detail"].as_str().unwrap().to_string(),
                )
            })
            .unwrap()
    };
    assert_eq!(result("tls").0, "OK", "{:?}", result("tls"));
    assert_eq!(result("plain").0, "OK", "{:?}", result("plain"));
    assert_eq!(result("wrong-password").0, "bad credentials");
    assert_eq!(result("unknown-user").0, "bad credentials");
    assert_eq!(
        result("untrusted").0,
        "TLS error",
        "{:?}",
        result("untrusted")
    );
    assert_eq!(result("gone").0, "unreachable", "{:?}", result("gone"));

    // The pushed image may be pulled; one that does not exist is reported as such.
    let image = format!("127.0.0.1:{}/team/app:1.0", tls.port);
    let r = validate(&["--registry", "tls", "--image", &image]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stdout.contains("may pull team/app:1.0"), "{}", r.stdout);
    let r = validate(&[
        "--registry",
        "tls",
        "--image",
        &format!("127.0.0.1:{}/team/missing:1.0", tls.port),
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("not found"), "{}", r.stdout);

    // The text table, for people.
    let r = run(regops()
        .arg("validate")
        .arg("-f")
        .arg(&spec)
        .args(["--registry", "tls", "--registry", "plain"])
        .env("ALICE_PASSWORD", "s3cret"));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        r.stdout.starts_with("REGISTRY") && r.stdout.contains("logged in (Basic)"),
        "{}",
        r.stdout
    );
}
