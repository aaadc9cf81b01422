//! Measuring one run of a command from outside: wall time, CPU (user + sys) and peak RSS, as
//! the kernel accounts them.
//!
//! `getrusage(RUSAGE_CHILDREN)` reports the largest peak RSS among all of a process's reaped
//! children, so it isolates one run only in a process with one child. Each run therefore goes
//! through a fresh copy of the calling executable (`current_exe`), started with
//! [`MEASURE_ARG`]: it runs the command, reaps it, and prints its figures as one JSON line.
//! A bench or test `main` calls [`serve_if_asked`] first thing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The first argument that makes an executable measure the command that follows it.
pub const MEASURE_ARG: &str = "__regops_bench_measure";

/// What one run cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Usage {
    pub exit_code: i32,
    pub wall: Duration,
    pub user: Duration,
    pub sys: Duration,
    /// Peak resident set size, bytes.
    pub max_rss: u64,
}

impl Usage {
    pub fn cpu(&self) -> Duration {
        self.user + self.sys
    }
}

#[derive(Debug)]
pub struct MeasureError(pub String);

impl std::fmt::Display for MeasureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MeasureError {}

fn timeval(tv: nix::sys::time::TimeVal) -> Duration {
    let micros = tv.tv_sec() * 1_000_000 + tv.tv_usec();
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// When this process was started to measure (`argv[1] == MEASURE_ARG`), runs the command in
/// `argv[2..]`, prints its usage as one JSON line and exits. Otherwise returns.
///
/// The command's standard output goes to the file named by `REGOPS_BENCH_STDOUT` (else
/// nowhere), its standard error likewise with `REGOPS_BENCH_STDERR`.
pub fn serve_if_asked() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(MEASURE_ARG) {
        return;
    }
    let code = match measure_here(&args[2..]) {
        Ok(line) => {
            use std::io::Write;
            let mut out = std::io::stdout();
            let _ = writeln!(out, "{line}");
            0
        }
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "measure: {e}");
            3
        }
    };
    std::process::exit(code);
}

fn sink(var: &str) -> Result<Stdio, MeasureError> {
    match std::env::var_os(var) {
        Some(path) => std::fs::File::create(&path).map(Stdio::from).map_err(|e| {
            MeasureError(format!("cannot create {}: {e}", Path::new(&path).display()))
        }),
        None => Ok(Stdio::null()),
    }
}

fn measure_here(cmd: &[String]) -> Result<String, MeasureError> {
    let (program, args) = cmd
        .split_first()
        .ok_or_else(|| MeasureError("no command to measure".into()))?;
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(sink("REGOPS_BENCH_STDOUT")?)
        .stderr(sink("REGOPS_BENCH_STDERR")?)
        .status()
        .map_err(|e| MeasureError(format!("cannot run {program}: {e}")))?;
    let wall = started.elapsed();
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map_err(|e| MeasureError(format!("getrusage: {e}")))?;
    Ok(serde_json::json!({
        "exit": status.code().unwrap_or(-1),
        "wall_us": u64::try_from(wall.as_micros()).unwrap_or(u64::MAX),
        "user_us": u64::try_from(timeval(usage.user_time()).as_micros()).unwrap_or(u64::MAX),
        "sys_us": u64::try_from(timeval(usage.system_time()).as_micros()).unwrap_or(u64::MAX),
        // Linux reports ru_maxrss in kilobytes.
        "maxrss_kb": usage.max_rss(),
    })
    .to_string())
}

/// Runs `program args…` through a measuring copy of this executable. Its standard output is
/// kept in `stdout` when given.
pub fn measure(
    program: &Path,
    args: &[String],
    envs: &[(String, String)],
    stdout: Option<&Path>,
) -> Result<Usage, MeasureError> {
    let me: PathBuf =
        std::env::current_exe().map_err(|e| MeasureError(format!("current_exe: {e}")))?;
    let mut c = Command::new(me);
    c.arg(MEASURE_ARG).arg(program).args(args);
    c.env_clear();
    for (k, v) in envs {
        c.env(k, v);
    }
    if let Some(path) = stdout {
        c.env("REGOPS_BENCH_STDOUT", path);
    }
    let out = c
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| MeasureError(format!("cannot start the measuring process: {e}")))?;
    if !out.status.success() {
        return Err(MeasureError(format!(
            "the measuring process failed ({})",
            out.status
        )));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| MeasureError(format!("unreadable measurement: {e}")))?;
    let us = |k: &str| Duration::from_micros(v[k].as_u64().unwrap_or(0));
    Ok(Usage {
        exit_code: v["exit"]
            .as_i64()
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(-1),
        wall: us("wall_us"),
        user: us("user_us"),
        sys: us("sys_us"),
        max_rss: v["maxrss_kb"].as_u64().unwrap_or(0) * 1024,
    })
}
