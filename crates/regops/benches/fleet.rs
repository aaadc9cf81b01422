//! The fleet benchmark: `cargo bench -p regops --bench fleet -- --clusters 3 --namespaces 1000`.
//!
//! Starts one test API server per cluster (each seeded as the scale benchmark's cluster, with
//! a response time on every request, as a remote API server has), then times the real binary:
//! `regops plan` of each cluster alone (`--cluster`), and of the whole fleet at once and one
//! cluster at a time (`--cluster-concurrency`). The claim it checks: a run over N clusters
//! takes about as long as the slowest cluster alone, not the sum. Flags:
//!
//! - `--clusters N`: clusters in the fleet (default 3);
//! - `--namespaces N`: namespaces in each (default 1000);
//! - `--latency-ms MS`: response time of every request (default 20);
//! - `--repeat N`: runs of each measurement, the median shown (default 3);
//! - `--regops PATH`: another regops binary.

use std::io::Write;
use std::time::Duration;

use kube_test_server::{Fault, FaultAction};
use regops_bench::{Usage, cluster, measure::measure};

fn fail(m: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "fleet bench: {m}");
    std::process::exit(2)
}

fn median(mut runs: Vec<Usage>) -> Usage {
    runs.sort_by_key(|u| u.wall);
    runs.swap_remove(runs.len() / 2)
}

fn main() {
    regops_bench::serve_if_asked();
    let (mut clusters, mut namespaces, mut latency, mut repeat) =
        (3usize, 1000usize, 20u64, 3usize);
    let mut regops: std::path::PathBuf = env!("CARGO_BIN_EXE_regops").into();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| fail(&format!("{a} needs a value")))
        };
        let number = |v: String| -> usize {
            v.parse()
                .unwrap_or_else(|_| fail(&format!("bad number `{v}`")))
        };
        match a.as_str() {
            "--clusters" => clusters = number(value()).max(1),
            "--namespaces" => namespaces = number(value()),
            "--latency-ms" => latency = number(value()) as u64,
            "--repeat" => repeat = number(value()).max(1),
            "--regops" => regops = value().into(),
            "--bench" => {}
            other => fail(&format!("unknown flag `{other}`")),
        }
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(&e.to_string()));
    let mut servers = Vec::new();
    let mut spec = cluster::spec();
    spec.push_str("clusters:\n");
    for i in 0..clusters {
        let name = format!("cluster-{i}");
        let _ = writeln!(std::io::stderr(), "seeding {name}: {namespaces} namespaces");
        let server = cluster::seeded_server(namespaces).unwrap_or_else(|e| fail(&e));
        server.add_fault(Fault::new(FaultAction::ResponseTime(
            Duration::from_millis(latency),
        )));
        let kubeconfig = dir.path().join(format!("kubeconfig-{name}"));
        std::fs::write(
            &kubeconfig,
            server.kubeconfig().replace("kube-test-server", &name),
        )
        .unwrap_or_else(|e| fail(&e.to_string()));
        spec.push_str(&format!("  {name}: {{ kubeconfig: kubeconfig-{name} }}\n"));
        servers.push(server);
    }
    let spec_path = dir.path().join("fleet.yaml");
    std::fs::write(&spec_path, spec).unwrap_or_else(|e| fail(&e.to_string()));
    let envs = vec![(
        "REGOPS_CRED_BENCH_PASSWORD".to_string(),
        "bench-password".to_string(),
    )];
    let time = |extra: &[String]| -> Usage {
        let mut args: Vec<String> =
            vec!["plan".into(), "-f".into(), spec_path.display().to_string()];
        args.extend_from_slice(extra);
        median(
            (0..repeat)
                .map(|_| {
                    let u = measure(&regops, &args, &envs, Some(&dir.path().join("out")))
                        .unwrap_or_else(|e| fail(&e.0));
                    if u.exit_code != 2 {
                        fail(&format!(
                            "regops plan {extra:?} exited {} (2 expected)",
                            u.exit_code
                        ));
                    }
                    u
                })
                .collect(),
        )
    };
    let mut out = std::io::stdout().lock();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    let _ = writeln!(
        out,
        "fleet bench: {clusters} clusters x {namespaces} namespaces, {latency} ms per request, median of {repeat}"
    );
    let _ = writeln!(
        out,
        "| run | wall ms | cpu ms | peak RSS MiB |\n|---|---|---|---|"
    );
    let mut slowest = Duration::ZERO;
    for i in 0..clusters {
        let u = time(&["--cluster".into(), format!("cluster-{i}")]);
        slowest = slowest.max(u.wall);
        let _ = writeln!(
            out,
            "| cluster-{i} alone | {:.0} | {:.0} | {:.1} |",
            ms(u.wall),
            ms(u.cpu()),
            mb(u.max_rss)
        );
    }
    let all = time(&["--cluster-concurrency".into(), clusters.to_string()]);
    let _ = writeln!(
        out,
        "| fleet, {clusters} at once | {:.0} | {:.0} | {:.1} |",
        ms(all.wall),
        ms(all.cpu()),
        mb(all.max_rss)
    );
    let one = time(&["--cluster-concurrency".into(), "1".into()]);
    let _ = writeln!(
        out,
        "| fleet, one at a time | {:.0} | {:.0} | {:.1} |",
        ms(one.wall),
        ms(one.cpu()),
        mb(one.max_rss)
    );
    let _ = writeln!(
        out,
        "\nat once / slowest alone: {:.2}; one at a time / slowest alone: {:.2}",
        all.wall.as_secs_f64() / slowest.as_secs_f64(),
        one.wall.as_secs_f64() / slowest.as_secs_f64()
    );
}
