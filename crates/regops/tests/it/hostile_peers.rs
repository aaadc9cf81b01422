//! Peers that never stop talking, or stop after their headers: a registry, a cloud's token
//! endpoint, a credential helper, and an API server whose LISTs never end and whose watches
//! only ever add (a pull request's spec may name its own kubeconfig). regops reads each answer
//! within a size cap and a deadline, each LIST within its pages, objects and time, and each
//! watch within its objects, and says which limit it hit; it neither hangs nor fills its memory.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

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
    let mut c = regops();
    let _home = common::fake_helper(&mut c, &[("FAKE_HELPER_FLOOD", "1")], &[]);
    let r = run(c.args(["render", "--show-secrets", "-f"]).arg(&s));
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

const CLUSTER_SPEC: &str = "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: hostile }
registries:
  harbor: { server: harbor.example.com, credential: robot }
credentials:
  robot: { username: robot, password: { env: REGOPS_CRED_HARBOR } }
scopes:
  web: { selector: { matchLabels: { team: web } } }
pullSecrets:
  harbor-pull: { registries: [harbor], scope: web }
";

/// `regops plan` against `cluster` with `extra` flags; killed, failing the test, if it is
/// still running after a minute (a read that never ends is what these tests look for).
fn plan(cluster: &common::Cluster, extra: &[&str]) -> common::Run {
    let mut child = regops()
        .arg("plan")
        .args(extra)
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .arg("-f")
        .arg(&cluster.spec)
        .env("REGOPS_CRED_HARBOR", "pw")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = r.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`regops plan {extra:?}` was still reading after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    common::Run {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// A server whose every LIST page of namespaces holds 500 new ones and a fresh `continue`
/// token: each limit stops the read, names itself and its flag, and exits 1, in seconds. The
/// page cap lets exactly that many pages be asked for.
#[test]
fn a_list_that_never_ends_stops_at_each_limit_and_names_its_flag() {
    let cluster = common::Cluster::new(CLUSTER_SPEC);
    cluster.server.add_fault(
        kube_test_server::Fault::new(kube_test_server::FaultAction::EndlessList)
            .verb("list")
            .resource("namespaces"),
    );
    for (flags, said, pages) in [
        (
            &["--max-list-pages", "5"][..],
            "LIST of namespaces at",
            Some(5),
        ),
        (
            &["--max-list-items", "1200"],
            "went past 1,200 objects; a real cluster of this size is unlikely: raise --max-list-items if it is one",
            Some(3),
        ),
        (
            &["--list-timeout", "2s"],
            "took longer than 2s; a real cluster this slow is unlikely: raise --list-timeout if it is one",
            None,
        ),
    ] {
        cluster.server.clear_log();
        let started = Instant::now();
        let r = plan(&cluster, flags);
        let took = started.elapsed();
        assert_eq!(r.code, 1, "{flags:?}: {}", r.transcript());
        let err = r.flat_stderr();
        assert!(err.contains(said), "{flags:?}: {}", r.stderr);
        assert!(took < Duration::from_secs(20), "{flags:?}: {took:?}");
        let lists = cluster
            .server
            .log()
            .iter()
            .filter(|l| l.verb == "list" && l.resource == "namespaces")
            .count();
        match pages {
            Some(n) => assert_eq!(lists, n, "{flags:?}"),
            // Two seconds of pages, and then no more.
            None => assert!(lists > 1, "{flags:?}: {lists}"),
        }
    }
    // The error in full, as the brief says it: what, the limit, and the flag.
    let r = plan(&cluster, &["--max-list-pages", "5"]);
    assert!(
        r.flat_stderr()
            .contains("went past 5 pages; a real cluster of this size is unlikely: raise --max-list-pages if it is one"),
        "{}",
        r.stderr
    );
}

/// `cluster-info` counts namespaces with the same bounded LIST.
#[test]
fn cluster_info_stops_at_the_page_cap_too() {
    let cluster = common::Cluster::new(CLUSTER_SPEC);
    cluster.server.add_fault(
        kube_test_server::Fault::new(kube_test_server::FaultAction::EndlessList)
            .verb("list")
            .resource("namespaces"),
    );
    let r = run(regops()
        .args(["cluster-info", "--max-list-pages", "3", "--kubeconfig"])
        .arg(&cluster.kubeconfig));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr()
            .contains("went past 3 pages; a real cluster of this size is unlikely: raise --max-list-pages if it is one"),
        "{}",
        r.stderr
    );
}

/// With no limit given, the defaults stop the endless LIST: at 1,000 pages (500,000
/// namespaces, about 8 s of a debug build; the 10-minute budget is far off), exit 1.
#[test]
fn the_default_page_cap_stops_an_endless_list() {
    let cluster = common::Cluster::new(CLUSTER_SPEC);
    cluster.server.add_fault(
        kube_test_server::Fault::new(kube_test_server::FaultAction::EndlessList)
            .verb("list")
            .resource("namespaces"),
    );
    let started = Instant::now();
    let r = plan(&cluster, &[]);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr().contains(
            "went past 1,000 pages; a real cluster of this size is unlikely: raise --max-list-pages if it is one"
        ),
        "{}",
        r.stderr
    );
    let lists = cluster
        .server
        .log()
        .iter()
        .filter(|l| l.verb == "list" && l.resource == "namespaces")
        .count();
    assert_eq!(lists, 1000);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A watch of namespaces that only ever adds new ones: the controller holds at most
/// --max-list-items of them, then says so (an error naming the flag), forgets them, lists again
/// and runs a full apply, with a backoff between rounds; its memory stays flat and it goes on
/// serving.
#[test]
fn a_watch_that_only_ever_adds_is_held_to_the_item_cap() {
    use std::io::BufRead;
    let cluster = common::Cluster::new(CLUSTER_SPEC);
    cluster.server.add_fault(
        kube_test_server::Fault::new(kube_test_server::FaultAction::EndlessWatch)
            .verb("watch")
            .resource("namespaces"),
    );
    let port = common::listen_port();
    let mut child = regops()
        .args(["apply", "--watch", "--max-list-items", "200", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .arg("-f")
        .arg(&cluster.spec)
        .env("REGOPS_CRED_HARBOR", "pw")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    for stream in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                lines.lock().unwrap().push(line);
            }
        });
    }
    let said = "the watch of namespaces went past 200 objects; a real cluster of this size is unlikely: raise --max-list-items if it is one";
    let log = || lines.lock().unwrap().join("\n");
    let started = Instant::now();
    while !log().contains(said) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no `{said}` in the log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Round after round, with a backoff between them (200 ms doubling): in eight seconds a
    // handful, not thousands; each lists again.
    let early = peak_rss_kib(child.id());
    std::thread::sleep(Duration::from_secs(8));
    let log = log();
    let rounds = log.matches(said).count();
    assert!((2..=10).contains(&rounds), "{rounds} rounds:\n{log}");
    assert!(
        log.contains("watch of namespaces: listing again, then a full apply (past 200 objects)"),
        "{log}"
    );
    let (code, metrics) = regops_bench::http_get(port, "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("resource=\"namespaces\",reason=\"limit\"}"),
        "{metrics}"
    );
    assert_eq!(regops_bench::http_get(port, "/healthz").0, 200);
    // Memory: what it had after the first round, give or take a few MB (the events that
    // filled the cap are gone with it).
    let late = peak_rss_kib(child.id());
    assert!(
        late < early + 16 * 1024,
        "peak RSS grew from {early} to {late} KiB"
    );
    let _ = child.kill();
    let _ = child.wait();
    // The fake objects never reached the store, and nothing was written for them.
    assert!(cluster.server.log().iter().all(|l| {
        !(l.is_write()
            && l.namespace
                .as_deref()
                .is_some_and(|n| n.starts_with("endless")))
    }));
}
