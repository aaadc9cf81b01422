//! `regops drift`: how the cluster differs from the spec, for cron and CronJobs; optionally a
//! Prometheus textfile. With `clusters` in the spec, every cluster at once, one report.

use regops_core::fleet::{Drifted, PerCluster};
use regops_core::report;

use crate::ExitStatus;
use crate::cli::DriftArgs;
use crate::failure::{Failure, Outcome};
use crate::ops::fleet::fleet_members;
use crate::ops::load::read_cluster;
use crate::ops::load::{default_name, prepare};
use crate::ops::prepared::Prepared;
use crate::output::Term;
use regops_core::format::Style;

/// What a drift run found, for the metrics file.
struct Found {
    clusters: Clusters,
    /// The credentials in use with an `expires`.
    expiries: Vec<regops_core::expiry::Expiry>,
}

enum Clusters {
    /// One cluster (a spec without `clusters`): the objects in drift.
    One(usize),
    /// Each cluster's objects in drift, `None` for one that could not be read.
    Fleet(Vec<(String, Option<usize>)>),
}

pub(super) fn drift(args: DriftArgs, term: &Term) -> Outcome {
    let result = drift_inner(&args, term);
    if let Some(path) = &args.metrics_file {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let text = match &result {
            Ok((name, found, _)) => match &found.clusters {
                Clusters::One(n) => {
                    regops_core::drift::metrics(name, Some(*n), true, now, &found.expiries)
                }
                Clusters::Fleet(clusters) => {
                    regops_core::fleet::metrics(name, clusters, now, &found.expiries)
                }
            },
            Err(_) => failed_metrics(&args, now),
        };
        crate::atomic::write_file(path, text.as_bytes(), crate::atomic::Existing::Replace)?;
    }
    result.map(|(_, _, status)| status)
}

/// The metrics of a run that failed before any cluster was read: the spec's name (even from a
/// spec with errors) and, for a fleet, every cluster it lists, each marked failed.
fn failed_metrics(args: &DriftArgs, now: u64) -> String {
    let fallback = default_name(&args.run.spec.files);
    let spec =
        regops_spec::source::read_paths(&args.run.spec.files, args.run.spec.trust.restrictor())
            .ok()
            .map(|sources| match regops_spec::load(sources, &fallback) {
                Ok(l) => (l.name, l.spec),
                Err(inv) => (fallback.clone(), inv.partial),
            });
    match spec {
        Some((name, spec)) if !spec.clusters.is_empty() => {
            let clusters: Vec<(String, Option<usize>)> =
                spec.clusters.keys().map(|c| (c.clone(), None)).collect();
            let expiries = regops_core::expiry::expiries(&spec);
            regops_core::fleet::metrics(&name, &clusters, now, &expiries)
        }
        Some((name, spec)) => {
            let expiries = regops_core::expiry::expiries(&spec);
            regops_core::drift::metrics(&name, None, false, now, &expiries)
        }
        None => regops_core::drift::metrics(&fallback, None, false, now, &[]),
    }
}

fn drift_inner(args: &DriftArgs, term: &Term) -> Result<(String, Found, ExitStatus), Failure> {
    // Drift reports; it never asks a cloud for a token.
    let run = crate::ops::options::RunOptions {
        mint: false,
        ..args.run.options()
    };
    let prepared = prepare(&run, term)?;
    if let Some(members) = fleet_members(&run, &prepared)? {
        return drift_fleet(args, &prepared, &members, term);
    }
    let (observed, target) = read_cluster(&run.cluster, &prepared)?;
    let (desired, plan) =
        crate::cluster::client::runtime()?.block_on(prepared.plan(&observed, &target));
    let drift = with_expiring(&plan, &desired, args, prepared.ctx.unix_now());
    drop((desired, observed));
    term.view(
        &report::DriftView {
            plan: &plan,
            drift: &drift,
        },
        args.output,
        &Style::default(),
    );
    let status = if drift.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Changes
    };
    let found = Found {
        clusters: Clusters::One(report::drifted_objects(&drift)),
        expiries: regops_core::expiry::expiries(&prepared.loaded.spec),
    };
    Ok((prepared.loaded.name, found, status))
}

/// The plan's drift, and the Secrets whose minted token expires before the next run.
fn with_expiring(
    plan: &regops_core::plan::Plan,
    desired: &regops_core::desired::Desired,
    args: &DriftArgs,
    now: i64,
) -> Vec<regops_core::drift::Drift> {
    let mut drift = regops_core::drift::drift(plan);
    drift.extend(regops_core::drift::expiring(
        desired,
        now,
        args.next_run.as_secs(),
    ));
    drift
}

/// `drift` over the spec's clusters, at once: one report grouped by cluster.
fn drift_fleet(
    args: &DriftArgs,
    prepared: &Prepared,
    members: &[crate::ops::fleet::Member],
    term: &Term,
) -> Result<(String, Found, ExitStatus), Failure> {
    let results: Vec<PerCluster<Drifted>> =
        crate::ops::fleet::plan_each(&args.run.options(), prepared, members, &|desired, plan| {
            let drift = with_expiring(&plan, &desired, args, prepared.ctx.unix_now());
            Drifted { plan, drift }
        })?;
    let spec = prepared.loaded.name.as_str();
    term.view(
        &regops_core::fleet::FleetDriftView {
            spec,
            members: &results,
        },
        args.output,
        &Style::default(),
    );
    let found: Vec<(String, Option<usize>)> = results
        .iter()
        .map(|m| {
            let n = m.result.as_ref().ok();
            (
                m.cluster.clone(),
                n.map(|d| report::drifted_objects(&d.drift)),
            )
        })
        .collect();
    let failed = found.iter().any(|(_, n)| n.is_none());
    let drifted = found.iter().any(|(_, n)| n.is_some_and(|n| n > 0));
    let found = Found {
        clusters: Clusters::Fleet(found),
        expiries: regops_core::expiry::expiries(&prepared.loaded.spec),
    };
    Ok((
        prepared.loaded.name.clone(),
        found,
        crate::ops::fleet::exit(failed, drifted),
    ))
}
