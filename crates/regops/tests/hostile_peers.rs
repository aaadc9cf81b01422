//! Peers that never stop talking, or stop after their headers: a registry, a cloud's token
//! endpoint and a credential helper. regops reads each answer within a size cap and a deadline
//! and says which limit it hit; it neither hangs nor fills its memory.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{regops, run};

#[derive(Clone, Copy)]
enum Talk {
    /// `200 OK` with a huge Content-Length, then bytes until the client hangs up (at most
    /// 64 MiB, so the fake stops by itself).
    Flood,
    /// The headers of a `200 OK`, then silence until the client hangs up (at most 20 s).
    HeadersOnly,
}

/// An HTTP peer on 127.0.0.1 answering every request as `talk` says; its thread ends when the
/// test process does.
fn peer(talk: Talk) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n",
                );
                match talk {
                    Talk::Flood => {
                        let chunk = [b'x'; 64 * 1024];
                        for _ in 0..1024 {
                            if s.write_all(&chunk).is_err() {
                                break;
                            }
                        }
                    }
                    Talk::HeadersOnly => {
                        let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                        let _ = s.read(&mut buf);
                    }
                }
            });
        }
    });
    addr
}

fn spec(dir: &std::path::Path, registry: &str, password: &str) -> std::path::PathBuf {
    let p = dir.join("regops.yaml");
    std::fs::write(
        &p,
        format!(
            "apiVersion: regops.dev/v1
kind: RegistryConfig
registries:
  r: {{ server: \"{registry}\", credential: c, insecure: true }}
credentials:
  c: {password}
scopes:
  s: {{ namespaces: [web] }}
pullSecrets:
  pull: {{ registries: [r], scope: s }}
"
        ),
    )
    .unwrap();
    p
}

#[test]
fn a_registry_that_floods_or_stalls_is_an_error_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    for (talk, said) in [
        (Talk::Flood, "larger than the 1024 KiB limit"),
        (Talk::HeadersOnly, "did not arrive in full within"),
    ] {
        let s = spec(
            dir.path(),
            &peer(talk),
            "{ username: u, password: { env: REGOPS_CRED_C } }",
        );
        let started = Instant::now();
        let r = run(regops()
            .args(["validate", "--request-timeout", "2s", "-o", "json", "-f"])
            .arg(&s)
            .env("REGOPS_CRED_C", "pw"));
        assert_eq!(r.code, 1, "{}", r.transcript());
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let row = &v["registries"][0];
        assert_eq!(row["result"], "error", "{}", r.stdout);
        assert!(
            row["detail"].as_str().unwrap().contains(said),
            "{}",
            r.stdout
        );
        // Within the deadline given, not the peer's 20 s.
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_token_endpoint_that_floods_or_stalls_is_an_error_naming_the_step_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let federated = dir.path().join("federated");
    std::fs::write(&federated, "federated-token").unwrap();
    for (talk, said) in [
        (Talk::Flood, "larger than the 1024 KiB limit"),
        (Talk::HeadersOnly, "did not arrive in full within"),
    ] {
        let authority = peer(talk);
        // The registry is never reached: the Entra token is asked for first.
        let s = spec(
            dir.path(),
            "127.0.0.1:9",
            "{ password: { acr: { tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47 } } }",
        );
        let state = dir.path().join("state.yaml");
        std::fs::write(
            &state,
            "apiVersion: v1\nkind: Namespace\nmetadata: { name: web }\n",
        )
        .unwrap();
        let started = Instant::now();
        let r = run(regops()
            .args([
                "plan",
                "--request-timeout",
                "2s",
                "--allow-minted-host",
                "127.0.0.1:9",
            ])
            .arg("--live-state")
            .arg(&state)
            .arg("-f")
            .arg(&s)
            .env("AZURE_AUTHORITY_HOST", format!("http://{authority}"))
            .env("AZURE_CLIENT_ID", "8f4a1e02-5b1c-4a8e-9d3f-0c2b7e6a9d11")
            .env("AZURE_FEDERATED_TOKEN_FILE", &federated));
        assert_eq!(r.code, 1, "{}", r.transcript());
        // The Secret is held back, with the step and the limit said.
        let all = format!("{} {}", r.stdout, r.flat_stderr());
        assert!(
            all.contains("get an Entra ID token") && all.contains(said),
            "{}",
            r.transcript()
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_helper_that_never_stops_printing_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(
        dir.path(),
        "harbor.example.com",
        "{ password: { helper: fake } }",
    );
    let r = run(regops()
        .args(["render", "--show-secrets", "-f"])
        .arg(&s)
        .env(
            "PATH",
            format!(
                "{}:/usr/bin:/bin",
                common::fixtures().join("helpers").display()
            ),
        )
        .env("FAKE_HELPER_FLOOD", "1"));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr().replace("- ", "-").contains(
            "`docker-credential-fake get` answered more than the 1024 KiB an answer may hold"
        ),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("flood"));
}
