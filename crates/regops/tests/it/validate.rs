//! `regops validate` against a real registry: Debian's `docker-registry` (Docker
//! Distribution), started here on 127.0.0.1 with htpasswd authentication, over TLS with a CA
//! generated for the test and over plain HTTP, sharing one storage into which the test pushes
//! an image. Those tests are `#[ignore = "needs docker-registry …"]`: `.ci/run` installs the
//! package and runs them with `--include-ignored`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    clippy::print_stderr
)]

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use base64::Engine;
use common::{regops, run};
use sha2::Digest;

use common::registry::{free_port, hex, start, start_with, tls_files, workdir};

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
#[ignore = "needs docker-registry and htpasswd (Debian: docker-registry, apache2-utils)"]
fn validate_logs_in_to_a_real_registry() {
    common::registry::require();
    let (dir, storage) = workdir();

    let (cert_path, key_path, _) = tls_files(dir.path());
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
  helped: {{ server: \"127.0.0.1:{p}\", credential: from-helper, insecure: true }}
credentials:
  from-helper: {{ password: {{ helper: fake }} }}
  alice: {{ username: alice, password: {{ env: REGOPS_CRED_ALICE_PASSWORD }}, expires: \"2099-01-01\" }}
  wrong-password: {{ username: alice, password: {{ env: REGOPS_CRED_WRONG_PASSWORD }}, expires: \"2020-01-01T00:00:00Z\" }}
  mallory: {{ username: mallory, password: {{ env: REGOPS_CRED_ALICE_PASSWORD }} }}
",
            t = tls.port,
            p = plain.port,
            g = free_port()
        ),
    )
    .unwrap();
    let validate = |extra: &[&str]| {
        let mut c = regops();
        // The fake docker credential helper answers alice's login.
        let _home = common::fake_helper(&mut c, &[("FAKE_HELPER_SECRET", "s3cret")], &[]);
        run(c
            .arg("validate")
            .arg("-f")
            .arg(&spec)
            .args(["--output", "json"])
            .args(extra)
            .env("REGOPS_CRED_ALICE_PASSWORD", "s3cret")
            .env("REGOPS_CRED_WRONG_PASSWORD", "MARKER-wrong"))
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
    // Each credential's `expires` is reported beside the login's result.
    let row = |name: &str| {
        v["registries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["registry"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(row("tls")["expiresAt"], 4_070_908_800_i64);
    assert!(
        row("tls")["expires"]
            .as_str()
            .unwrap()
            .starts_with("expires at 2099-01-01 (in ")
    );
    assert!(
        row("wrong-password")["expires"]
            .as_str()
            .unwrap()
            .starts_with("expired at 2020-01-01T00:00:00Z (")
    );
    assert!(row("unknown-user").get("expires").is_none());
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
    // The user and password from a docker credential helper log in (only alice is in the
    // registry's htpasswd).
    assert_eq!(result("helped").0, "OK", "{:?}", result("helped"));
    assert_eq!(result("wrong-password").0, "bad credentials");
    assert_eq!(result("unknown-user").0, "bad credentials");
    assert_eq!(
        result("untrusted").0,
        "TLS error",
        "{:?}",
        result("untrusted")
    );
    // The TLS error says which roots judged the certificate, and what caFile is for.
    assert!(
        result("untrusted").1.contains("needs `caFile`"),
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
        .env("REGOPS_CRED_ALICE_PASSWORD", "s3cret"));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        r.stdout.starts_with("REGISTRY") && r.stdout.contains("logged in (Basic)"),
        "{}",
        r.stdout
    );
}

/// A token issuer as Docker Distribution's token auth expects one: Basic auth in,
/// `{"token": JWT}` out, the JWT signed RS256 with the issuer's certificate in `x5c`, granting
/// pull on the repositories in `grants` only.
struct Issuer {
    port: u16,
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

struct SigningKey {
    pair: ring::signature::RsaKeyPair,
    cert_der: Vec<u8>,
    cert_pem: String,
}

fn pem_body(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// An RSA key and a self-signed certificate for it, made with the openssl command line (ring
/// signs with RSA keys but does not generate them).
fn signing_key() -> SigningKey {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=regops test token issuer",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "openssl req failed");
    let key_pem = std::fs::read_to_string(&key).unwrap();
    assert!(
        key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
        "expected a PKCS#8 key"
    );
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&pem_body(&key_pem)).unwrap();
    let cert_pem = std::fs::read_to_string(&cert).unwrap();
    SigningKey {
        pair,
        cert_der: pem_body(&cert_pem),
        cert_pem,
    }
}

fn token(key: &SigningKey, service: &str, scope: &str, grants: &[&str]) -> String {
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [base64::engine::general_purpose::STANDARD.encode(&key.cert_der)]});
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Grant what was asked for, on the granted repositories only.
    let access: Vec<serde_json::Value> = scope
        .split(' ')
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, _actions) = (parts.next()?, parts.next()?, parts.next()?);
            (kind == "repository" && grants.contains(&name)).then(
                || serde_json::json!({"type": "repository", "name": name, "actions": ["pull"]}),
            )
        })
        .collect();
    let claims = serde_json::json!({
        "iss": "regops-test-issuer", "sub": "alice", "aud": service,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", scope.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let rng = ring::rand::SystemRandom::new();
    let mut sig = vec![0u8; key.pair.public().modulus_len()];
    key.pair
        .sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &rng,
            signing_input.as_bytes(),
            &mut sig,
        )
        .unwrap();
    format!("{signing_input}.{}", b64url(&sig))
}

fn query_param(query: &str, key: &str) -> String {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| {
            let mut out = Vec::new();
            let b = v.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' && i + 2 < b.len() {
                    out.push(
                        u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16)
                            .unwrap(),
                    );
                    i += 3;
                } else {
                    out.push(if b[i] == b'+' { b' ' } else { b[i] });
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn start_issuer(key: SigningKey, grants: &'static [&'static str]) -> Issuer {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = req.split_whitespace().nth(1).unwrap_or("");
            let query = path.split_once('?').map_or("", |(_, q)| q);
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
            );
            let authorized = req.lines().any(|l| {
                l.to_ascii_lowercase().starts_with("authorization:")
                    && l.split_once(':').is_some_and(|(_, v)| v.trim() == expected)
            });
            let resp = if authorized {
                let body = serde_json::json!({"token": token(&key, &query_param(query, "service"), &query_param(query, "scope"), grants)}).to_string();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = s.write_all(resp.as_bytes());
        }
    });
    Issuer { port }
}

#[test]
#[ignore = "needs docker-registry and htpasswd (Debian: docker-registry, apache2-utils)"]
fn validate_follows_a_bearer_challenge_to_a_token_service() {
    common::registry::require();
    let (dir, storage) = workdir();
    let plain = start(dir.path(), "plain", &storage, None);
    push_image(plain.port, "team/app", "1.0");
    push_image(plain.port, "team/secret", "1.0");

    // The registry trusts `good`'s certificate; `rogue` signs with a key it does not know.
    let good = signing_key();
    let bundle = dir.path().join("issuer.pem");
    std::fs::write(&bundle, &good.cert_pem).unwrap();
    let issuer = start_issuer(good, &["team/app"]);
    let rogue = start_issuer(signing_key(), &["team/app"]);
    let token_auth = |realm_port: u16| {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{realm_port}/token\n    service: regops-test-registry\n    issuer: regops-test-issuer\n    rootcertbundle: {}\n",
            bundle.display()
        )
    };
    let registry = start_with(
        dir.path(),
        "token",
        &storage,
        None,
        &token_auth(issuer.port),
    );
    let fooled = start_with(
        dir.path(),
        "token-rogue",
        &storage,
        None,
        &token_auth(rogue.port),
    );

    let spec = dir.path().join("regops.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: regops.dev/v1
kind: RegistryConfig
registries:
  token: {{ server: \"127.0.0.1:{r}\", credential: alice, insecure: true }}
  token-wrong-password: {{ server: \"127.0.0.1:{r}\", credential: wrong, insecure: true }}
  token-wrong-key: {{ server: \"127.0.0.1:{f}\", credential: alice, insecure: true }}
credentials:
  alice: {{ username: alice, password: {{ env: REGOPS_CRED_ALICE_PASSWORD }} }}
  wrong: {{ username: alice, password: {{ env: REGOPS_CRED_WRONG_PASSWORD }} }}
",
            r = registry.port,
            f = fooled.port
        ),
    )
    .unwrap();
    let validate = |extra: &[&str]| {
        let mut c = regops();
        // The fake docker credential helper answers alice's login.
        let _home = common::fake_helper(&mut c, &[("FAKE_HELPER_SECRET", "s3cret")], &[]);
        run(c
            .arg("validate")
            .arg("-f")
            .arg(&spec)
            .args(["--output", "json"])
            .args(extra)
            .env("REGOPS_CRED_ALICE_PASSWORD", "s3cret")
            .env("REGOPS_CRED_WRONG_PASSWORD", "nope"))
    };
    let result = |r: &common::Run, name: &str| {
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
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
    let r = validate(&[]);
    assert_eq!(
        result(&r, "token"),
        ("OK".to_string(), "logged in (Bearer token)".to_string()),
        "{}",
        r.transcript()
    );
    assert_eq!(result(&r, "token-wrong-password").0, "bad credentials");
    assert_eq!(
        result(&r, "token-wrong-key").0,
        "bad credentials",
        "{}",
        r.stdout
    );

    let granted = validate(&[
        "--registry",
        "token",
        "--image",
        &format!("127.0.0.1:{}/team/app:1.0", registry.port),
    ]);
    assert_eq!(granted.code, 0, "{}", granted.transcript());
    assert!(
        result(&granted, "token")
            .1
            .contains("may pull team/app:1.0")
    );
    let refused = validate(&[
        "--registry",
        "token",
        "--image",
        &format!("127.0.0.1:{}/team/secret:1.0", registry.port),
    ]);
    assert_eq!(refused.code, 1, "{}", refused.transcript());
    assert_eq!(
        result(&refused, "token").0,
        "denied",
        "insufficient_scope: {}",
        refused.stdout
    );
}

/// An HTTPS registry whose Bearer challenge sends logins to a plain-HTTP token service (a
/// downgrade, which would put the credentials on the network in clear): refused, and the
/// token service never hears from regops. The real registry answers with the realm it is
/// configured with.
#[test]
#[ignore = "needs docker-registry and htpasswd (Debian: docker-registry, apache2-utils)"]
fn a_bearer_realm_that_downgrades_to_plain_http_gets_no_credentials() {
    common::registry::require();
    let (dir, storage) = workdir();
    let (cert, key, _) = tls_files(dir.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let realm_port = listener.local_addr().unwrap().port();
    let heard = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = heard.clone();
    std::thread::spawn(move || {
        for _ in listener.incoming() {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let bundle = dir.path().join("issuer.pem");
    std::fs::write(&bundle, signing_key().cert_pem).unwrap();
    let registry = start_with(
        dir.path(),
        "downgrade",
        &storage,
        Some((&cert, &key)),
        &format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{realm_port}/token\n    service: s\n    issuer: i\n    rootcertbundle: {}\n",
            bundle.display()
        ),
    );
    let spec = dir.path().join("regops.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: regops.dev/v1
kind: RegistryConfig
registries:
  r: {{ server: \"127.0.0.1:{}\", credential: alice, caFile: ca.pem }}
credentials:
  alice: {{ username: alice, password: {{ env: REGOPS_CRED_ALICE_PASSWORD }} }}
",
            registry.port
        ),
    )
    .unwrap();
    let r = run(regops()
        .args(["validate", "--output", "json", "-f"])
        .arg(&spec)
        .env("REGOPS_CRED_ALICE_PASSWORD", "s3cret-MARKER"));
    assert_eq!(r.code, 1, "{}", r.transcript());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let row = &v["registries"][0];
    assert_eq!(row["result"], "refused", "{}", r.stdout);
    assert!(
        row["detail"].as_str().unwrap().contains(&format!(
            "sends logins to the token service http://127.0.0.1:{realm_port}/token over plain HTTP"
        )),
        "{}",
        r.stdout
    );
    assert_eq!(heard.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(!r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"));
}

/// `regops check` reads each registry's `caFile`: one that does not exist, or holds no
/// certificate, is an error at the field, with what `caFile` is for (issue 39: it passed).
#[test]
fn check_verifies_each_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not-a-ca.pem"), "hello\n").unwrap();
    let spec = dir.path().join("regops.yaml");
    std::fs::write(
        &spec,
        "apiVersion: regops.dev/v1
kind: RegistryConfig
registries:
  missing: { server: registry.example.com, credential: alice, caFile: nowhere.pem }
  garbage: { server: registry2.example.com, credential: alice, caFile: not-a-ca.pem }
credentials:
  alice: { username: alice, password: { env: REGOPS_CRED_ALICE_PASSWORD } }
",
    )
    .unwrap();
    let r = run(regops().args(["check", "--no-decrypt", "-f"]).arg(&spec));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(r.stderr.contains("nowhere.pem"), "{}", r.stderr);
    assert!(r.stderr.contains("holds no certificate"), "{}", r.stderr);
    assert!(r.stderr.contains("caFile is a PEM bundle"), "{}", r.stderr);
}
