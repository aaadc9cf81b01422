//! The scale benchmark: `cargo bench -p regops --bench scale -- --namespaces 10000`.
//!
//! Seeds the workspace's test API server, runs the real binary for plan, the first apply
//! (latency injected on every write), a no-op apply and drift, and prints a table per step
//! (see `crates/regops-bench`). Flags:
//!
//! - `--namespaces N[,N…]`: cluster sizes to run (default 1000); with two or more, the growth
//!   from the smallest to the largest is printed too;
//! - `--latency-ms MS`: latency injected on every write of the first apply (default 10);
//! - `--concurrency N`: the apply's `--concurrency` (default 8);
//! - `--regops PATH`: another regops binary (for a before/after comparison);
//! - `--repeat N`: runs of each step but the first apply, each figure the median (default 5);
//! - `--instructions`: also count each step's instructions under valgrind's callgrind (steady
//!   where CPU time is noisy; needs `valgrind`), shown in the growth table;
//! - `--plan-only`: run the plan step alone (a quick look at the read path);
//! - `--no-baseline`: skip the per-object client baseline;
//! - `--write-state FILE`: write the seeded cluster (the smallest size) as a kubectl `-o json`
//!   List for `regops plan --live-state`, and stop;
//! - `--check`: fail on the regression check (exact request counts, no writes on the second
//!   apply, peak RSS within the limit).

use std::io::Write;
use std::time::Duration;

fn main() {
    regops_bench::serve_if_asked();
    let mut sizes = vec![1000usize];
    let mut latency = 10u64;
    let mut concurrency = 8usize;
    let mut baseline = true;
    let mut check = false;
    let mut plan_only = false;
    let mut instructions = false;
    let mut repeat = 5usize;
    let mut write_state: Option<std::path::PathBuf> = None;
    let mut regops: std::path::PathBuf = env!("CARGO_BIN_EXE_regops").into();
    let mut args = std::env::args().skip(1);
    let fail = |m: String| -> ! {
        let _ = writeln!(std::io::stderr(), "scale bench: {m}");
        std::process::exit(2)
    };
    while let Some(a) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .unwrap_or_else(|| fail(format!("{flag} needs a value")))
        };
        match a.as_str() {
            "--namespaces" => {
                sizes = value("--namespaces")
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse()
                            .unwrap_or_else(|_| fail(format!("bad size `{s}`")))
                    })
                    .collect();
            }
            "--latency-ms" => {
                latency = value("--latency-ms")
                    .parse()
                    .unwrap_or_else(|_| fail("--latency-ms takes milliseconds".into()));
            }
            "--concurrency" => {
                concurrency = value("--concurrency")
                    .parse()
                    .unwrap_or_else(|_| fail("--concurrency takes a number".into()));
            }
            "--regops" => regops = value("--regops").into(),
            "--no-baseline" => baseline = false,
            "--plan-only" => plan_only = true,
            "--instructions" => instructions = true,
            "--repeat" => {
                repeat = value("--repeat")
                    .parse()
                    .unwrap_or_else(|_| fail("--repeat takes a number".into()));
            }
            "--write-state" => write_state = Some(std::path::PathBuf::from(value("--write-state"))),
            "--check" => check = true,
            // cargo bench passes --bench to every bench target.
            "--bench" => {}
            other => fail(format!("unknown argument `{other}`")),
        }
    }
    sizes.sort_unstable();
    if let Some(path) = write_state {
        let n = sizes.first().copied().unwrap_or(1000);
        let server = regops_bench::cluster::seeded_server(n).unwrap_or_else(|e| fail(e));
        let list = regops_bench::cluster::kubectl_list(&server);
        std::fs::write(&path, serde_json::to_vec(&list).unwrap_or_default())
            .unwrap_or_else(|e| fail(format!("cannot write {}: {e}", path.display())));
        return;
    }
    let mut out = std::io::stdout();
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    let _ = writeln!(
        out,
        "## regops scale benchmark\n\nMachine: {} cores; regops binary: {}\n",
        std::thread::available_parallelism().map_or(0, usize::from),
        regops.display()
    );
    for n in sizes {
        let options = regops_bench::Options {
            namespaces: n,
            latency: Duration::from_millis(latency),
            concurrency,
            regops: regops.clone(),
            baseline: baseline && !plan_only,
            plan_only,
            repeat,
            instructions,
        };
        let report = regops_bench::run(&options, &|m| {
            let _ = writeln!(std::io::stderr(), "[{n}] {m}");
        })
        .unwrap_or_else(|e| fail(e));
        let _ = writeln!(out, "{}", report.markdown());
        if check {
            failures.extend(report.check(regops_bench::limits::rss_bytes(n)));
        }
        reports.push(report);
    }
    if let (Some(first), Some(last)) = (reports.first(), reports.last())
        && reports.len() > 1
    {
        let _ = writeln!(out, "{}", regops_bench::growth(first, last));
    }
    if !failures.is_empty() {
        fail(failures.join("\n"));
    }
}
