//! The scale benchmark of regops.
//!
//! It seeds the workspace's Kubernetes API test server with N namespaces (each with its
//! `default` ServiceAccount and five Deployments, three pulling from the spec's registry), then
//! runs the real regops binary against it, through a kubeconfig, for each step a user runs:
//! `plan`, the first `apply` (with latency injected on every write), a no-op `apply`, and
//! `drift`. For each step it reports the requests by verb and resource (from the server's log),
//! the writes, regops' wall time, CPU and peak RSS (measured by the kernel, see [`measure`]),
//! the server's own time, and the ratio to the limit the project holds itself to. A baseline
//! runs a per-object client (kubectl-style GET then PATCH) over the same state.
//!
//! Run it with `cargo bench -p regops --bench scale -- --namespaces 10000`.

pub mod baseline;
pub mod cluster;
pub mod hostile;
pub mod measure;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube_test_server::{Fault, FaultAction, LogEntry};

pub use measure::{Usage, serve_if_asked};

/// Items per LIST page regops asks for.
pub const PAGE: usize = 500;

#[derive(Clone, Debug)]
pub struct Options {
    pub namespaces: usize,
    /// The response time of every write of the first apply (the test server's
    /// `FaultAction::ResponseTime`: the write is done at once, answered this long after it
    /// arrived).
    pub latency: Duration,
    pub concurrency: usize,
    /// The regops binary under test.
    pub regops: PathBuf,
    /// Also run the per-object baseline client (on a second server with the same state).
    pub baseline: bool,
    /// Run only the plan (a quick look at the read path); the other steps need the apply.
    pub plan_only: bool,
    /// Runs of each step but the first apply; each figure is the median.
    pub repeat: usize,
    /// Also count the instructions each step but the first apply executes, once, under
    /// valgrind's callgrind: unlike CPU time, the count does not depend on what else the
    /// machine is doing, so it shows how cost grows with the cluster.
    pub instructions: bool,
}

/// The steps, in the order a user meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Plan,
    FirstApply,
    NoopApply,
    Drift,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Plan, Step::FirstApply, Step::NoopApply, Step::Drift];

    pub fn name(self) -> &'static str {
        match self {
            Step::Plan => "plan",
            Step::FirstApply => "first apply",
            Step::NoopApply => "no-op apply",
            Step::Drift => "drift",
        }
    }

    /// The exit code the step must end with.
    pub fn expected_exit(self) -> i32 {
        match self {
            Step::Plan => 2,
            _ => 0,
        }
    }
}

/// What the server saw during one step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Traffic {
    /// (verb, resource) -> requests.
    pub requests: BTreeMap<(String, String), u64>,
    /// Writes other than to the apply Lease.
    pub writes: u64,
    /// Writes to the Lease (take, renew, release).
    pub lease_writes: u64,
    /// The server's own time, summed over requests.
    pub server_time: Duration,
}

impl Traffic {
    pub fn from_log(log: &[LogEntry]) -> Traffic {
        let mut t = Traffic::default();
        for e in log {
            *t.requests
                .entry((e.verb.clone(), e.resource.clone()))
                .or_default() += 1;
            if e.is_write() {
                if e.resource == "leases" {
                    t.lease_writes += 1;
                } else {
                    t.writes += 1;
                }
            }
            t.server_time += e.server_time;
        }
        t
    }

    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }

    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.requests
            .get(&(verb.to_string(), resource.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

#[derive(Clone, Debug)]
pub struct StepResult {
    pub step: Step,
    pub usage: Usage,
    pub traffic: Traffic,
    /// Instructions executed, when counted (`Options::instructions`).
    pub instructions: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct BaselineResult {
    pub first: Traffic,
    pub first_wall: Duration,
    pub second: Traffic,
    pub second_wall: Duration,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub options: Options,
    pub seed_time: Duration,
    pub steps: Vec<StepResult>,
    pub baseline: Option<BaselineResult>,
}

/// The limits the project holds regops to (see docs/scale.md).
pub mod limits {
    use std::time::Duration;

    /// regops' own CPU (user + sys) for plan, drift and a no-op apply.
    pub const CPU: Duration = Duration::from_millis(1500);

    /// Peak RSS for plan, drift and a no-op apply: 64 MB at 1,000 namespaces, 150 MB at
    /// 10,000, and in between on the line through those two points.
    pub fn rss_bytes(namespaces: usize) -> u64 {
        const MB: f64 = 1e6;
        let n = namespaces as f64;
        let mb = if n <= 1000.0 {
            64.0
        } else {
            64.0 + (150.0 - 64.0) * (n - 1000.0) / 9000.0
        };
        (mb * MB) as u64
    }

    /// The first apply's wall time: within 1.2x of writes x latency / concurrency.
    pub fn first_apply(writes: u64, latency: Duration, concurrency: usize) -> Duration {
        latency.mul_f64(1.2 * writes as f64 / concurrency.max(1) as f64)
    }
}

fn pages(items: usize) -> u64 {
    items.div_ceil(PAGE).max(1) as u64
}

/// The requests each step must send, exactly, on the benchmark's cluster (Lease renewals
/// aside, which depend on time): a few paged LISTs per kind, and on the first apply one write
/// per object that changes.
pub fn expected_requests(step: Step, namespaces: usize) -> BTreeMap<(String, String), u64> {
    let all_namespaces = namespaces + 4;
    let deployments = namespaces * cluster::DEPLOYMENTS_PER_NAMESPACE;
    // Before the first apply no Secret is regops'; after it, one per namespace in scope.
    let owned = if step == Step::Plan || step == Step::FirstApply {
        0
    } else {
        namespaces
    };
    let mut m: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut add = |verb: &str, resource: &str, n: u64| {
        *m.entry((verb.to_string(), resource.to_string()))
            .or_default() += n;
    };
    // An apply with something to write reads twice: once to find it has, then again under
    // the Lease (a cluster that matches the spec is read once and gets no write at all).
    let reads = if step == Step::FirstApply { 2 } else { 1 };
    add("list", "namespaces", reads * pages(all_namespaces));
    // Secrets: those labelled as regops', then the others bearing the pull secret's name
    // (none here).
    add("list", "secrets", reads * (pages(owned) + 1));
    add("list", "serviceaccounts", reads * pages(all_namespaces));
    add("list", "deployments", reads * pages(deployments));
    for kind in [
        "statefulsets",
        "daemonsets",
        "replicasets",
        "jobs",
        "cronjobs",
    ] {
        add("list", kind, reads);
    }
    match step {
        // The Lease: read before taking it, and read again before releasing it (release
        // deletes only a Lease that still names this process).
        Step::FirstApply => {
            add("get", "leases", 2);
            add("create", "leases", 1);
            add("delete", "leases", 1);
            add("patch", "secrets", namespaces as u64);
            add("patch", "serviceaccounts", namespaces as u64);
            add(
                "patch",
                "deployments",
                (namespaces * cluster::PULLING_PER_NAMESPACE) as u64,
            );
            // The Events of the Secrets created: the first of a pass one by one, the rest in
            // one summary Event on the Lease (regops_core::events::PER_REASON).
            let per_reason = 25;
            let created = namespaces.min(per_reason) + usize::from(namespaces > per_reason);
            add("create", "events", created as u64);
        }
        Step::Plan | Step::Drift | Step::NoopApply => {}
    }
    m
}

fn regops_args(step: Step, spec: &Path, kubeconfig: &Path, concurrency: usize) -> Vec<String> {
    let mut a: Vec<String> = match step {
        Step::Plan => vec!["plan".into()],
        // The Lease renewed every 20 s (not client-go's 2 s): renewals are driven by the clock,
        // not by the work, and would make the exact request counts depend on the machine's
        // speed.
        Step::FirstApply | Step::NoopApply => vec![
            "apply".into(),
            "--yes".into(),
            "--concurrency".into(),
            concurrency.to_string(),
            "--lock-duration".into(),
            "60s".into(),
            "--renew-deadline".into(),
            "40s".into(),
            "--retry-period".into(),
            "20s".into(),
        ],
        Step::Drift => vec!["drift".into()],
    };
    a.extend([
        "-f".into(),
        spec.display().to_string(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
    ]);
    a
}

/// Seeds a server, runs every step and (optionally) the baseline.
// Kept whole (over 80 lines): the benchmark's steps in the order a user meets them, each
// measured the same way.
pub fn run(options: &Options, progress: &dyn Fn(&str)) -> Result<Report, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let spec = dir.path().join("bench.yaml");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&spec, cluster::spec()).map_err(|e| e.to_string())?;

    progress(&format!(
        "seeding {} namespaces, {} Deployments",
        options.namespaces,
        options.namespaces * cluster::DEPLOYMENTS_PER_NAMESPACE
    ));
    let started = Instant::now();
    let server = cluster::seeded_server(options.namespaces)?;
    let seed_time = started.elapsed();
    server
        .write_kubeconfig(&kubeconfig)
        .map_err(|e| e.to_string())?;
    let envs = vec![
        (
            "REGOPS_CRED_BENCH_PASSWORD".to_string(),
            "bench-password".to_string(),
        ),
        ("NO_COLOR".to_string(), "1".to_string()),
        ("HOME".to_string(), "/nonexistent-home".to_string()),
    ];
    let mut steps = Vec::new();
    for step in Step::ALL {
        if options.plan_only && step != Step::Plan {
            continue;
        }
        progress(step.name());
        server.clear_log();
        if step == Step::FirstApply && !options.latency.is_zero() {
            for verb in ["create", "update", "patch", "delete"] {
                server.add_fault(Fault::new(FaultAction::ResponseTime(options.latency)).verb(verb));
            }
        }
        let stdout = dir.path().join(format!("{step:?}.out"));
        let usage = measure::measure(
            &options.regops,
            &regops_args(step, &spec, &kubeconfig, options.concurrency),
            &envs,
            Some(&stdout),
        )
        .map_err(|e| e.to_string())?;
        server.clear_faults();
        if usage.exit_code != step.expected_exit() {
            let out = std::fs::read_to_string(&stdout).unwrap_or_default();
            let tail: String = out.lines().rev().take(15).collect::<Vec<_>>().join("\n");
            return Err(format!(
                "{} exited {} (expected {}); the end of its output, last line first:\n{tail}",
                step.name(),
                usage.exit_code,
                step.expected_exit()
            ));
        }
        let traffic = Traffic::from_log(&server.log());
        // Read-only steps (and the no-op apply) can run again on the same state: the median of
        // several runs, since one run of a short step is noisy.
        let mut runs = vec![usage];
        if step != Step::FirstApply {
            for _ in 1..options.repeat.max(1) {
                let again = measure::measure(
                    &options.regops,
                    &regops_args(step, &spec, &kubeconfig, options.concurrency),
                    &envs,
                    None,
                )
                .map_err(|e| e.to_string())?;
                if again.exit_code != step.expected_exit() {
                    return Err(format!(
                        "{} exited {} on a repeat",
                        step.name(),
                        again.exit_code
                    ));
                }
                runs.push(again);
            }
        }
        let instructions = if options.instructions && step != Step::FirstApply {
            Some(count_instructions(
                &options.regops,
                &regops_args(step, &spec, &kubeconfig, options.concurrency),
                &envs,
                &dir.path().join(format!("{step:?}.callgrind")),
            )?)
        } else {
            None
        };
        steps.push(StepResult {
            step,
            usage: median(&runs),
            traffic,
            instructions,
        });
    }
    drop(server);

    let baseline = if options.baseline {
        progress("baseline: a per-object client on a second server with the same state");
        let server = cluster::seeded_server(options.namespaces)?;
        let t = Instant::now();
        baseline::run(&server)?;
        let first_wall = t.elapsed();
        let first = Traffic::from_log(&server.log());
        server.clear_log();
        let t = Instant::now();
        baseline::run(&server)?;
        let second_wall = t.elapsed();
        let second = Traffic::from_log(&server.log());
        Some(BaselineResult {
            first,
            first_wall,
            second,
            second_wall,
        })
    } else {
        None
    };
    Ok(Report {
        options: options.clone(),
        seed_time,
        steps,
        baseline,
    })
}

/// Runs the step once under callgrind and reads the instructions it executed.
fn count_instructions(
    regops: &Path,
    args: &[String],
    envs: &[(String, String)],
    out: &Path,
) -> Result<u64, String> {
    let status = std::process::Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(regops)
        .args(args)
        .env_clear()
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run valgrind (apt-get install valgrind): {e}"))?;
    if status.code() == Some(1) || status.code().is_none() {
        return Err(format!("regops under callgrind failed ({status})"));
    }
    let text = std::fs::read_to_string(out).map_err(|e| format!("callgrind output: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("summary: "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| "no instruction count in the callgrind output".into())
}

/// Each figure's median over runs.
fn median(runs: &[Usage]) -> Usage {
    fn mid<T: Ord + Copy>(mut v: Vec<T>) -> T {
        v.sort_unstable();
        v[v.len() / 2]
    }
    let first = &runs[0];
    Usage {
        exit_code: first.exit_code,
        wall: mid(runs.iter().map(|u| u.wall).collect()),
        user: mid(runs.iter().map(|u| u.user).collect()),
        sys: mid(runs.iter().map(|u| u.sys).collect()),
        max_rss: mid(runs.iter().map(|u| u.max_rss).collect()),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn requests_cell(t: &Traffic) -> String {
    t.requests
        .iter()
        .map(|((verb, resource), n)| format!("{verb} {resource} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Report {
    /// The limit a step is held to, as text, and the ratio of the measurement to it.
    pub fn limit(&self, s: &StepResult) -> Vec<(String, f64)> {
        let o = &self.options;
        match s.step {
            Step::FirstApply => {
                let limit = limits::first_apply(s.traffic.writes, o.latency, o.concurrency);
                if limit.is_zero() {
                    return Vec::new();
                }
                vec![(
                    format!(
                        "wall ≤ 1.2 × {} writes × {} ms / {} = {}",
                        s.traffic.writes,
                        o.latency.as_millis(),
                        o.concurrency,
                        secs(limit)
                    ),
                    s.usage.wall.as_secs_f64() / limit.as_secs_f64(),
                )]
            }
            _ => {
                let rss = limits::rss_bytes(o.namespaces);
                vec![
                    (
                        format!("CPU ≤ {}", secs(limits::CPU)),
                        s.usage.cpu().as_secs_f64() / limits::CPU.as_secs_f64(),
                    ),
                    (
                        format!("peak RSS ≤ {}", mb(rss)),
                        s.usage.max_rss as f64 / rss as f64,
                    ),
                ]
            }
        }
    }

    /// One Markdown table per step, then the baseline.
    // Kept whole (over 80 lines): the report's layout, line by line.
    pub fn markdown(&self) -> String {
        let o = &self.options;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "### {} namespaces, {} Deployments, {} ServiceAccounts\n\nSeeded in {}; first apply with {} ms injected on every write, `--concurrency {}`.\n",
            o.namespaces,
            o.namespaces * cluster::DEPLOYMENTS_PER_NAMESPACE,
            o.namespaces + 4,
            secs(self.seed_time),
            o.latency.as_millis(),
            o.concurrency
        );
        for s in &self.steps {
            let _ = writeln!(out, "#### {}\n", s.step.name());
            let _ = writeln!(out, "| figure | value |\n| --- | --- |");
            let _ = writeln!(
                out,
                "| requests | {} in all: {} |",
                s.traffic.total(),
                requests_cell(&s.traffic)
            );
            let _ = writeln!(
                out,
                "| writes | {} (and {} to the Lease) |",
                s.traffic.writes, s.traffic.lease_writes
            );
            let _ = writeln!(out, "| wall time | {} |", secs(s.usage.wall));
            let _ = writeln!(
                out,
                "| regops CPU | {} (user {}, sys {}) |",
                secs(s.usage.cpu()),
                secs(s.usage.user),
                secs(s.usage.sys)
            );
            let _ = writeln!(out, "| regops peak RSS | {} |", mb(s.usage.max_rss));
            if let Some(n) = s.instructions {
                let _ = writeln!(
                    out,
                    "| instructions (callgrind) | {:.3} billion |",
                    n as f64 / 1e9
                );
            }
            let _ = writeln!(
                out,
                "| server's own time | {} |",
                secs(s.traffic.server_time)
            );
            for (limit, ratio) in self.limit(s) {
                let _ = writeln!(out, "| {limit} | {ratio:.2}× the limit |");
            }
            out.push('\n');
        }
        if let Some(b) = &self.baseline {
            let regops_first = self.steps.iter().find(|s| s.step == Step::FirstApply);
            let regops_noop = self.steps.iter().find(|s| s.step == Step::NoopApply);
            let _ = writeln!(
                out,
                "#### baseline: a per-object client (kubectl-style GET then PATCH), no latency injected\n"
            );
            let _ = writeln!(
                out,
                "| run | requests | writes | wall time | regops on the same job |\n| --- | --- | --- | --- | --- |"
            );
            let _ = writeln!(
                out,
                "| first run | {} | {} | {} | {} requests, {} writes |",
                b.first.total(),
                b.first.writes,
                secs(b.first_wall),
                regops_first.map_or(0, |s| s.traffic.total()),
                regops_first.map_or(0, |s| s.traffic.writes)
            );
            let _ = writeln!(
                out,
                "| second run (nothing to do) | {} | {} | {} | {} requests, {} writes |",
                b.second.total(),
                b.second.writes,
                secs(b.second_wall),
                regops_noop.map_or(0, |s| s.traffic.total()),
                regops_noop.map_or(0, |s| s.traffic.writes)
            );
            out.push('\n');
        }
        out
    }

    /// The regression check: exact request counts, zero writes on the second apply, exit
    /// codes, and a peak RSS ceiling. No timing. Returns what failed.
    pub fn check(&self, max_rss: u64) -> Vec<String> {
        let mut failed = Vec::new();
        for s in &self.steps {
            let name = s.step.name();
            let mut got = s.traffic.requests.clone();
            // Lease renewals depend on how long the apply ran.
            got.remove(&("update".to_string(), "leases".to_string()));
            let want = expected_requests(s.step, self.options.namespaces);
            if got != want {
                let show = |m: &BTreeMap<(String, String), u64>| {
                    m.iter()
                        .map(|((v, r), n)| format!("{v} {r} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                failed.push(format!(
                    "{name}: requests differ\n  expected: {}\n  sent:     {}",
                    show(&want),
                    show(&got)
                ));
            }
            if s.step == Step::NoopApply && s.traffic.writes != 0 {
                failed.push(format!(
                    "{name}: {} writes besides the Lease, expected none",
                    s.traffic.writes
                ));
            }
            if s.step != Step::FirstApply && s.usage.max_rss > max_rss {
                failed.push(format!(
                    "{name}: peak RSS {} over the ceiling of {}",
                    mb(s.usage.max_rss),
                    mb(max_rss)
                ));
            }
        }
        failed
    }
}

/// How two sizes compare: for each step but the first apply, the ratio of CPU and of peak
/// RSS, against the ratio of namespaces ("cost grows linearly": at most 1.1x the size ratio).
pub fn growth(small: &Report, large: &Report) -> String {
    let k = large.options.namespaces as f64 / small.options.namespaces.max(1) as f64;
    let mut out = format!(
        "#### growth from {} to {} namespaces ({k:.0}× the size; the limit is {:.1}×)\n\n| step | CPU | peak RSS | instructions |\n| --- | --- | --- | --- |\n",
        small.options.namespaces,
        large.options.namespaces,
        1.1 * k
    );
    for (a, b) in small.steps.iter().zip(&large.steps) {
        if a.step == Step::FirstApply {
            continue;
        }
        let instructions = match (a.instructions, b.instructions) {
            (Some(x), Some(y)) => format!("{:.2}×", y as f64 / x.max(1) as f64),
            _ => "not counted".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {:.1}× | {:.1}× | {instructions} |",
            a.step.name(),
            b.usage.cpu().as_secs_f64() / a.usage.cpu().as_secs_f64().max(1e-6),
            b.usage.max_rss as f64 / a.usage.max_rss.max(1) as f64
        );
    }
    out
}

/// A plain HTTP/1.1 GET on the loopback (regops' `--listen` endpoint): status and body; status
/// 0 when nothing answers.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}
