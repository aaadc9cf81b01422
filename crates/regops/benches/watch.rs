//! The watch benchmark: `cargo bench -p regops --bench watch -- --namespaces 10000`.
//!
//! Seeds the test API server as the scale benchmark does (N namespaces in scope, five
//! Deployments each), starts the real binary as `regops apply --watch --listen …`, waits for
//! `/readyz` (the first full apply), then measures, from the server's log and the process's
//! `/proc` status:
//!
//! 1. **idle cost**: the requests made during `--idle SECONDS` with nothing happening (only the
//!    Lease's renewals are expected: the watches stay open and bookmarks arrive on them);
//! 2. **new namespaces**: `--create N` namespaces (default 100) created at `--rate R` per
//!    second (default 10); for each, the time from its create to the end of the later of
//!    its Secret's write and its `default` ServiceAccount's patch, all read off the server's
//!    log (arrival time plus the server's own time); p50, p99 and the maximum;
//! 3. **memory across watch events**: `--events N` (default 10,000) Deployment updates that
//!    planning does not read (replica counts), spread over the cluster, each a MODIFIED event
//!    on regops' Deployments watch; regops' RSS before, halfway and after, and the requests
//!    the events caused (none are expected).
//!
//! `--regops PATH` runs another binary (a before/after comparison).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regops_bench::cluster;
use serde_json::json;

struct Flags {
    namespaces: usize,
    create: usize,
    rate: f64,
    events: usize,
    idle: u64,
    regops: std::path::PathBuf,
}

fn fail(m: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "watch bench: {m}");
    std::process::exit(2)
}

fn flags() -> Flags {
    let mut f = Flags {
        namespaces: 10_000,
        create: 100,
        rate: 10.0,
        events: 10_000,
        idle: 10,
        regops: env!("CARGO_BIN_EXE_regops").into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| fail(&format!("{a} needs a value")))
        };
        let number = |v: String| -> f64 {
            v.parse()
                .unwrap_or_else(|_| fail(&format!("bad number `{v}`")))
        };
        match a.as_str() {
            "--namespaces" => f.namespaces = number(value()) as usize,
            "--create" => f.create = number(value()) as usize,
            "--rate" => f.rate = number(value()),
            "--events" => f.events = number(value()) as usize,
            "--idle" => f.idle = number(value()) as u64,
            "--regops" => f.regops = value().into(),
            "--bench" => {}
            other => fail(&format!("unknown flag {other}")),
        }
    }
    f
}

/// `VmRSS` and `VmHWM` of a process, bytes.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

fn get(port: u16, path: &str) -> u16 {
    fetch(port, path).0
}

use regops_bench::http_get as fetch;

/// Waits until the server has had no request but the Lease's for `quiet`.
fn settle(server: &kube_test_server::TestServer, quiet: Duration) {
    let count = || {
        server
            .log()
            .iter()
            .filter(|l| l.resource != "leases")
            .count()
    };
    let mut last = (count(), Instant::now());
    while last.1.elapsed() < quiet {
        std::thread::sleep(Duration::from_millis(50));
        let n = count();
        if n != last.0 {
            last = (n, Instant::now());
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

// Kept whole (over 80 lines): the benchmark's steps in order, each printing its figures.
fn main() {
    regops_bench::serve_if_asked();
    let f = flags();
    let out = |line: String| {
        let _ = writeln!(std::io::stdout(), "{line}");
    };
    let seeding = Instant::now();
    let server = cluster::seeded_server(f.namespaces).unwrap_or_else(|e| fail(&e));
    out(format!(
        "### apply --watch on {} namespaces\n\nSeeded in {:.1} s.\n",
        f.namespaces,
        seeding.elapsed().as_secs_f64()
    ));
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(&e.to_string()));
    let kubeconfig = dir.path().join("kubeconfig");
    server
        .write_kubeconfig(&kubeconfig)
        .unwrap_or_else(|e| fail(&e.to_string()));
    let spec = dir.path().join("bench.yaml");
    std::fs::write(&spec, cluster::spec()).unwrap_or_else(|e| fail(&e.to_string()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(&e.to_string()));
    let log_file = std::fs::File::create(dir.path().join("regops.log"))
        .unwrap_or_else(|e| fail(&e.to_string()));
    let started = Instant::now();
    let mut child = Command::new(&f.regops)
        .arg("apply")
        .arg("--watch")
        .arg("-f")
        .arg(&spec)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("REGOPS_CRED_BENCH_PASSWORD", "bench-password")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", f.regops.display())));
    let pid = child.id();
    while get(port, "/readyz") != 200 {
        if started.elapsed() > Duration::from_secs(900) || child.try_wait().ok().flatten().is_some()
        {
            let _ = child.kill();
            fail("regops did not become ready");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = started.elapsed();
    settle(&server, Duration::from_secs(2));
    let (rss_ready, hwm_ready) = rss(pid);
    out(format!(
        "| figure | value |\n| --- | --- |\n| first full apply (to ready) | {:.1} s, {} requests |\n| RSS when ready (peak so far) | {} ({}) |",
        first.as_secs_f64(),
        server.log().len(),
        mb(rss_ready),
        mb(hwm_ready)
    ));

    // 1. Idle.
    server.clear_log();
    std::thread::sleep(Duration::from_secs(f.idle));
    let idle = server.log();
    let lease = idle.iter().filter(|l| l.resource == "leases").count();
    out(format!(
        "| requests while idle for {} s | {} (and {lease} to renew the Lease) |",
        f.idle,
        idle.len() - lease
    ));

    // 2. New namespaces at a rate.
    server.clear_log();
    let every = Duration::from_secs_f64(1.0 / f.rate);
    let begin = Instant::now();
    for i in 0..f.create {
        let due = begin + every.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let name = format!("new-{i:04}");
        let (code, body) = server
            .request(
                "POST",
                "/api/v1/namespaces",
                "application/json",
                Some(&json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "labels": {cluster::SCOPE_LABEL: "yes"}}})),
            )
            .unwrap_or_else(|e| fail(&e.to_string()));
        if code != 201 {
            fail(&format!("creating {name}: {code} {body}"));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let names: Vec<String> = (0..f.create).map(|i| format!("new-{i:04}")).collect();
    let covered = |log: &[kube_test_server::LogEntry], ns: &str| {
        let done = |resource: &str| {
            log.iter()
                .filter(|l| {
                    l.is_write()
                        && l.status < 300
                        && l.resource == resource
                        && l.namespace.as_deref() == Some(ns)
                })
                .map(|l| l.at + l.server_time)
                .max()
        };
        Some(done("secrets")?.max(done("serviceaccounts")?))
    };
    let log = loop {
        let log = server.log();
        if names.iter().all(|n| covered(&log, n).is_some()) || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let creates: Vec<Instant> = log
        .iter()
        .filter(|l| l.verb == "create" && l.resource == "namespaces" && l.status == 201)
        .map(|l| l.at)
        .collect();
    let mut latencies: Vec<Duration> = Vec::new();
    let mut missing = 0;
    for (name, created) in names.iter().zip(&creates) {
        match covered(&log, name) {
            Some(done) => latencies.push(done.saturating_duration_since(*created)),
            None => missing += 1,
        }
    }
    latencies.sort();
    settle(&server, Duration::from_secs(1));
    let log = server.log();
    let requests = log
        .iter()
        .filter(|l| l.resource != "leases" && !(l.verb == "create" && l.resource == "namespaces"))
        .count();
    out(format!(
        "| {} new namespaces at {}/s: Secret and `default` binding within | p50 {}, p99 {}, max {} ({missing} not covered in 30 s) |\n| requests for them | {requests} ({:.1} per namespace) |",
        f.create,
        f.rate,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        requests as f64 / f.create.max(1) as f64
    ));

    // 3. Memory across watch events planning does not read.
    server.clear_log();
    let (before, _) = rss(pid);
    let mut halfway = 0;
    for i in 0..f.events {
        let ns = cluster::namespace_name(i % f.namespaces.max(1));
        let path = format!(
            "/apis/apps/v1/namespaces/{ns}/deployments/app-{}",
            (i / f.namespaces.max(1)) % cluster::DEPLOYMENTS_PER_NAMESPACE
        );
        let (code, body) = server
            .request(
                "PATCH",
                &path,
                "application/merge-patch+json",
                Some(&json!({"spec": {"replicas": 3 + (i % 5)}})),
            )
            .unwrap_or_else(|e| fail(&e.to_string()));
        if code != 200 {
            fail(&format!("{path}: {code} {body}"));
        }
        if i + 1 == f.events / 2 {
            settle(&server, Duration::from_millis(500));
            halfway = rss(pid).0;
        }
    }
    settle(&server, Duration::from_secs(1));
    let (after, hwm) = rss(pid);
    let caused = server
        .log()
        .iter()
        .filter(|l| l.resource != "leases" && !(l.verb == "patch" && l.resource == "deployments"))
        .count();
    out(format!(
        "| RSS across {} watch events | {} before, {} halfway, {} after (peak {}) |\n| requests the events caused | {caused} |",
        f.events,
        mb(before),
        mb(halfway),
        mb(after),
        mb(hwm)
    ));
    let (_, metrics) = fetch(port, "/metrics");
    let counted: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            (l.starts_with("regops_watch_restarts_total")
                || l.starts_with("regops_reconciles_total"))
                && !l.ends_with(" 0")
        })
        .collect();
    out(format!(
        "| regops' own counts (/metrics) | {} |",
        counted.join("<br>")
    ));
    let kept = std::env::temp_dir().join("regops-watch-bench.log");
    let _ = std::fs::copy(dir.path().join("regops.log"), &kept);
    out(format!("| regops' log | {} |", kept.display()));
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child.wait();
    out(format!(
        "| exit on SIGTERM | {} |",
        status.map_or("?".into(), |s| s
            .code()
            .map_or("signal".into(), |c| c.to_string()))
    ));
}
