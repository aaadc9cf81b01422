//! The scale regression check, run by `cargo test`: the benchmark's cluster at 1,000
//! namespaces (5,000 Deployments), the real binary for plan, apply, a no-op apply and drift.
//! It asserts exact request counts (a few paged LISTs per kind, one write per changed object),
//! zero writes on the second apply, and a peak RSS ceiling. It times nothing: speed is the
//! benchmark's (`cargo bench -p regops --bench scale`).
//!
//! A harness-less test, because each run is measured by a fresh copy of this executable (see
//! `regops_bench::measure`).

use std::io::Write;
use std::time::Duration;

/// 1,000 namespaces: where the project's limit is 64 MB of peak RSS.
const NAMESPACES: usize = 1000;

fn main() {
    regops_bench::serve_if_asked();
    let options = regops_bench::Options {
        namespaces: NAMESPACES,
        latency: Duration::ZERO,
        concurrency: 8,
        regops: env!("CARGO_BIN_EXE_regops").into(),
        baseline: false,
        plan_only: false,
        repeat: 1,
        instructions: false,
    };
    let mut err = std::io::stderr();
    let report = match regops_bench::run(&options, &|_| {}) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "scale: {e}");
            let _ = writeln!(err, "0 passed, 1 failed");
            std::process::exit(1);
        }
    };
    let failures = report.check(regops_bench::limits::rss_bytes(NAMESPACES));
    let mut out = std::io::stdout();
    for s in &report.steps {
        let _ = writeln!(
            out,
            "scale: {:<12} {} requests, {} writes, peak RSS {:.1} MB",
            s.step.name(),
            s.traffic.total(),
            s.traffic.writes,
            s.usage.max_rss as f64 / 1e6
        );
    }
    if failures.is_empty() {
        let _ = writeln!(out, "1 passed, 0 failed");
    } else {
        for f in &failures {
            let _ = writeln!(err, "scale: {f}");
        }
        let _ = writeln!(out, "0 passed, 1 failed");
        std::process::exit(1);
    }
}
