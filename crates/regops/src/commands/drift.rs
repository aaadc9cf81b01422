//! `regops drift`: how the cluster differs from the spec, for cron and CronJobs; optionally a
//! Prometheus textfile.

use regops_core::report;

use super::load::{default_name, prepare, read_cluster};
use super::{Failure, Outcome};
use crate::ExitStatus;
use crate::cli::{DriftArgs, ReportFormat};
use crate::output::Term;

pub(super) fn drift(args: DriftArgs, term: &Term) -> Outcome {
    // The spec's name for the metrics, even when the run failed after reading it.
    let spec_name = || {
        let fallback = default_name(&args.run.spec.files);
        regops_spec::source::read_paths(&args.run.spec.files)
            .ok()
            .and_then(|sources| regops_spec::load(sources, &fallback).ok())
            .map_or(fallback.clone(), |l| l.name)
    };
    let result = drift_inner(&args, term);
    if let Some(path) = &args.metrics_file {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (name, drifted, ok) = match &result {
            Ok((name, n, _)) => (name.clone(), Some(*n), true),
            Err(_) => (spec_name(), None, false),
        };
        crate::edit::write_atomic(path, &regops_core::drift::metrics(&name, drifted, ok, now))
            .map_err(|e| Failure::msg(e.to_string()))?;
    }
    result.map(|(_, _, status)| status)
}

pub(super) fn drift_inner(
    args: &DriftArgs,
    term: &Term,
) -> Result<(String, usize, ExitStatus), Failure> {
    let prepared = prepare(&args.run, term)?;
    let (observed, target) = read_cluster(&args.run, &prepared)?;
    let (desired, plan) = prepared.plan(&observed, &target);
    let drift = regops_core::drift::drift(&plan);
    drop((desired, observed));
    term.stdout(&match args.output {
        ReportFormat::Json => report::drift_json(&plan, &drift),
        ReportFormat::Text => report::drift_text(&plan, &drift),
    });
    let status = if drift.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Changes
    };
    Ok((
        prepared.loaded.name,
        report::drifted_objects(&drift),
        status,
    ))
}
