//! One report for a run over several clusters: each cluster's plan, apply or drift report
//! under its name, a line per cluster, and the fleet's total. Pure: the shell works on the
//! clusters and hands each one's outcome (or why it failed) here.
//!
//! The JSON reports are `formatVersion: "2"`: a `clusters` list whose entries carry the
//! cluster's name, `status` (`ok` or `failed`), the `error` when failed, and the cluster's
//! own report (a version-1 plan, apply or drift document) when not; then a fleet `summary`.
//! A spec without `clusters` still gets the version-1 documents.

use std::borrow::Borrow;
use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::drift::Drift;
use crate::plan::{Action, Plan, Source};
use crate::report::plural;
use crate::report::{Outcome, Report};
use regops_spec::untrusted;

/// The version of the fleet JSON reports.
pub const FORMAT_VERSION: &str = "2";

/// Why a cluster's part of the run failed, as the user is told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
// Its schema keeps the name it was published with.
#[schemars(rename = "ClusterError")]
pub struct ClusterFailure {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// One cluster's part of a fleet run.
#[derive(Clone, Debug)]
pub struct PerCluster<T> {
    pub cluster: String,
    pub result: Result<T, ClusterFailure>,
}

/// What an apply did on one cluster.
#[derive(Clone, Debug)]
pub struct Applied {
    pub plan: Plan,
    pub report: Report,
    /// The cluster's Lease was lost during the writes.
    pub lock_lost: bool,
}

impl Applied {
    pub fn failed(&self) -> bool {
        self.report.failed() > 0 || !self.plan.conflicts.is_empty() || self.lock_lost
    }
}

/// What drift found on one cluster.
#[derive(Clone, Debug)]
pub struct Drifted {
    pub plan: Plan,
    pub drift: Vec<Drift>,
}

fn failed_count<T>(members: &[PerCluster<T>]) -> usize {
    members.iter().filter(|m| m.result.is_err()).count()
}

fn width<T>(members: &[PerCluster<T>]) -> usize {
    members
        .iter()
        .map(|m| untrusted::terminal(&m.cluster).chars().count())
        .max()
        .unwrap_or(0)
}

// A cluster's name comes from the spec and its error from the cluster: both are data, shown by
// `regops_spec::untrusted`'s rule.
fn error_text(out: &mut String, e: &ClusterFailure) {
    let _ = writeln!(out, "error: {}", untrusted::terminal(&e.message));
    if let Some(h) = &e.help {
        for line in h.lines() {
            let _ = writeln!(out, "  help: {}", untrusted::terminal(line));
        }
    }
}

/// Each cluster's own report (`section`) under `=== cluster NAME ===`, then `title` and a line
/// per cluster (`line`); a failed cluster shows its error in both. The caller adds the total.
fn grouped<T>(
    members: &[PerCluster<T>],
    title: &str,
    mut section: impl FnMut(&mut String, &T),
    mut line: impl FnMut(&T) -> String,
) -> String {
    let mut out = String::new();
    for m in members {
        let _ = writeln!(out, "=== cluster {} ===", untrusted::terminal(&m.cluster));
        match &m.result {
            Ok(t) => section(&mut out, t),
            Err(e) => error_text(&mut out, e),
        }
        out.push('\n');
    }
    let w = width(members);
    let _ = writeln!(out, "{title}");
    for m in members {
        let l = match &m.result {
            Ok(t) => line(t),
            Err(e) => format!("FAILED: {}", untrusted::terminal(&e.message)),
        };
        let _ = writeln!(out, "  {:<w$}  {l}", untrusted::terminal(&m.cluster));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// plan

/// The plan summed over the clusters that were planned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetSummary {
    pub clusters: usize,
    pub failed: usize,
    pub with_changes: usize,
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub patch: usize,
    pub delete: usize,
    pub noop: usize,
    pub conflicts: usize,
}

pub fn plan_summary<P: Borrow<Plan>>(members: &[PerCluster<P>]) -> FleetSummary {
    let mut s = FleetSummary {
        clusters: members.len(),
        failed: failed_count(members),
        ..FleetSummary::default()
    };
    for plan in members.iter().filter_map(|m| m.result.as_ref().ok()) {
        let plan = plan.borrow();
        let p = &plan.summary;
        s.with_changes += usize::from(plan.has_changes());
        s.create += p.create;
        s.update += p.update;
        s.replace += p.replace;
        s.patch += p.patch;
        s.delete += p.delete;
        s.noop += p.noop;
        s.conflicts += p.conflicts;
    }
    s
}

fn plan_line(plan: &Plan) -> String {
    if !plan.has_changes() && plan.conflicts.is_empty() {
        return format!(
            "no changes ({} checked)",
            plural(plan.summary.noop, "object", "objects")
        );
    }
    let mut line = crate::view::summary_line(plan);
    if plan.summary.conflicts > 0 {
        let _ = write!(line, " {} in conflict.", plan.summary.conflicts);
    }
    line
}

fn total_line(s: &FleetSummary) -> String {
    format!(
        "{} to create, {} to update, {} to replace, {} to patch, {} to delete on {} of {}{}.",
        s.create,
        s.update,
        s.replace,
        s.patch,
        s.delete,
        s.with_changes,
        plural(s.clusters, "cluster", "clusters"),
        if s.failed > 0 {
            format!("; {} failed", s.failed)
        } else {
            String::new()
        }
    )
}

/// The text view: each cluster's plan under its name, then one line per cluster and the total.
pub fn plan_text<P: Borrow<Plan>>(
    spec: &str,
    members: &[PerCluster<P>],
    color: bool,
    detail: crate::view::Detail,
) -> String {
    let title = format!(
        "Fleet plan: spec `{}` on {}",
        untrusted::terminal(spec),
        plural(members.len(), "cluster", "clusters")
    );
    let mut out = grouped(
        members,
        &title,
        |out, plan| out.push_str(&crate::view::text(plan.borrow(), color, detail)),
        |plan| plan_line(plan.borrow()),
    );
    let _ = writeln!(out, "Total: {}", total_line(&plan_summary(members)));
    out
}

/// One cluster in the JSON fleet plan.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPlan<'a> {
    pub cluster: &'a str,
    /// `ok` or `failed`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a ClusterFailure>,
    /// The cluster's plan, as `regops plan -o json` shows one cluster's (format 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<&'a Plan>,
}

/// The JSON view of a fleet plan (`schemas/fleet-plan.schema.json`).
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(title = "regops fleet plan")]
pub struct FleetPlan<'a> {
    /// Always "2" for this format.
    pub format_version: &'static str,
    pub spec: &'a str,
    pub source: &'a Source,
    pub clusters: Vec<ClusterPlan<'a>>,
    pub summary: FleetSummary,
}

pub fn fleet_plan<'a>(
    spec: &'a str,
    source: &'a Source,
    members: &'a [PerCluster<Plan>],
) -> FleetPlan<'a> {
    FleetPlan {
        format_version: FORMAT_VERSION,
        spec,
        source,
        clusters: members
            .iter()
            .map(|m| ClusterPlan {
                cluster: &m.cluster,
                status: if m.result.is_ok() { "ok" } else { "failed" },
                error: m.result.as_ref().err(),
                plan: m.result.as_ref().ok(),
            })
            .collect(),
        summary: plan_summary(members),
    }
}

/// The JSON view, written as it is produced.
pub fn write_plan_json(
    spec: &str,
    source: &Source,
    members: &[PerCluster<Plan>],
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, &fleet_plan(spec, source, members))?;
    w.write_all(b"\n")
}

/// The JSON Schema of the fleet plan.
pub fn plan_json_schema() -> String {
    let mut schema = crate::view::serialize_schema::<FleetPlan<'static>>();
    schema.insert(
        "$id".into(),
        "https://regops.dev/schemas/fleet-plan.schema.json".into(),
    );
    let mut out = serde_json::to_string_pretty(&schema).unwrap_or_default();
    out.push('\n');
    out
}

/// The Markdown view for one pull-request comment: a table of the clusters and the total,
/// then each cluster's plan (in a collapsed section when it has no changes), sharing
/// `max_bytes` between them.
pub fn plan_markdown(spec: &str, members: &[PerCluster<Plan>], max_bytes: usize) -> String {
    let mut out = String::new();
    let s = plan_summary(members);
    let _ = writeln!(
        out,
        "### regops plan: {} on {}\n",
        untrusted::code(spec),
        plural(members.len(), "cluster", "clusters")
    );
    let _ = writeln!(out, "**Total: {}**\n", total_line(&s));
    let _ = writeln!(
        out,
        "| cluster | create | update | replace | patch | delete | conflicts | status |\n|---|---|---|---|---|---|---|---|"
    );
    for m in members {
        match &m.result {
            Ok(plan) => {
                let p = &plan.summary;
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    untrusted::cell(&m.cluster),
                    p.create,
                    p.update,
                    p.replace,
                    p.patch,
                    p.delete,
                    p.conflicts,
                    if plan.has_changes() {
                        "changes"
                    } else {
                        "no changes"
                    }
                );
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "| {} | | | | | | | **failed**: {} |",
                    untrusted::cell(&m.cluster),
                    untrusted::cell(&e.message)
                );
            }
        }
    }
    out.push('\n');
    let planned = members.iter().filter(|m| m.result.is_ok()).count().max(1);
    let share = max_bytes.saturating_sub(out.len()) / planned;
    for (i, m) in members.iter().enumerate() {
        let Ok(plan) = &m.result else { continue };
        let open = plan.has_changes() || !plan.conflicts.is_empty();
        // The summary is HTML, where no code span can hold the cluster's name: it says only
        // regops' own words, and the name follows as Markdown.
        let _ = writeln!(
            out,
            "<details{}><summary>cluster {} of {}: {}</summary>\n\nCluster {}:\n",
            if open { " open" } else { "" },
            i + 1,
            members.len(),
            plan_line(plan),
            untrusted::code(&m.cluster),
        );
        out.push_str(&crate::view::markdown(plan, share));
        out.push_str("\n</details>\n\n");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// apply

/// The text report after a fleet apply: each cluster's report, then a line per cluster.
pub fn apply_text(members: &[PerCluster<Applied>], dry_run: bool) -> String {
    let title = format!(
        "Fleet apply{}: {}",
        if dry_run { " (dry run)" } else { "" },
        plural(members.len(), "cluster", "clusters")
    );
    let (mut applied, mut failed, mut skipped) = (0, 0, 0);
    let done = if dry_run {
        Outcome::DryRun
    } else {
        Outcome::Applied
    };
    let section = |out: &mut String, a: &Applied| {
        if !a.plan.has_changes() {
            let _ = writeln!(out, "No changes.");
            return;
        }
        out.push_str(
            crate::report::apply_text(&a.report, dry_run, a.plan.conflicts.len()).trim_start(),
        );
        if a.lock_lost {
            let _ = writeln!(
                out,
                "error: the Lease was lost during the apply; writes not yet started were not made."
            );
        }
    };
    let line = |a: &Applied| {
        let (d, f, s) = (
            a.report.count(done),
            a.report.failed(),
            a.report.count(Outcome::Skipped),
        );
        applied += d;
        failed += f;
        skipped += s;
        let mut line = format!("{d} applied, {f} failed, {s} skipped");
        if !a.plan.conflicts.is_empty() {
            let _ = write!(line, ", {} in conflict", a.plan.conflicts.len());
        }
        if a.lock_lost {
            line.push_str(", Lease lost");
        }
        line
    };
    let mut out = grouped(members, &title, section, line);
    let down = failed_count(members);
    let _ = writeln!(
        out,
        "Total: {applied} applied, {failed} failed, {skipped} skipped{}.",
        if down > 0 {
            format!(
                "; {} could not be worked on",
                plural(down, "cluster", "clusters")
            )
        } else {
            String::new()
        }
    );
    if down > 0
        || failed > 0
        || members
            .iter()
            .any(|m| m.result.as_ref().is_ok_and(|a| a.lock_lost))
    {
        let _ = writeln!(out, "What was applied stays; run apply again to converge.");
    }
    out
}

/// Each cluster's entry in a format-2 JSON report: `cluster`, `status`, and the `error`, or
/// what `fill` adds for a cluster that was worked on.
fn cluster_entries<T>(
    members: &[PerCluster<T>],
    fill: impl Fn(&T, &mut serde_json::Value),
) -> Vec<serde_json::Value> {
    members
        .iter()
        .map(|m| {
            let status = if m.result.is_ok() { "ok" } else { "failed" };
            let mut v = json!({"cluster": m.cluster, "status": status});
            match &m.result {
                Ok(t) => fill(t, &mut v),
                Err(e) => v["error"] = json!(e),
            }
            v
        })
        .collect()
}

/// The JSON report after a fleet apply (format 2).
pub fn apply_json(spec: &str, members: &[PerCluster<Applied>], dry_run: bool) -> String {
    let done = if dry_run {
        Outcome::DryRun
    } else {
        Outcome::Applied
    };
    let ok = || members.iter().filter_map(|m| m.result.as_ref().ok());
    let clusters = cluster_entries(members, |a, v| {
        v["report"] = crate::report::apply_value(&a.plan, &a.report, dry_run);
        v["lockLost"] = json!(a.lock_lost);
    });
    crate::report::pretty(&json!({
        "formatVersion": FORMAT_VERSION,
        "spec": spec,
        "dryRun": dry_run,
        "clusters": clusters,
        "summary": {
            "clusters": members.len(),
            "failed": failed_count(members),
            "applied": ok().map(|a| a.report.count(done)).sum::<usize>(),
            "failedChanges": ok().map(|a| a.report.failed()).sum::<usize>(),
            "skipped": ok().map(|a| a.report.count(Outcome::Skipped)).sum::<usize>(),
            "conflicts": ok().map(|a| a.plan.conflicts.len()).sum::<usize>(),
        },
    }))
}

// ---------------------------------------------------------------------------------------------
// drift

/// The text report of a fleet drift: each cluster's, then a line per cluster.
pub fn drift_text(spec: &str, members: &[PerCluster<Drifted>]) -> String {
    let title = format!(
        "Fleet drift: spec `{}` on {}",
        untrusted::terminal(spec),
        plural(members.len(), "cluster", "clusters")
    );
    let mut drifted = 0;
    let mut out = grouped(
        members,
        &title,
        |out, d| out.push_str(&crate::report::drift_text(&d.plan, &d.drift)),
        |d| {
            if d.drift.is_empty() {
                return "in sync".to_string();
            }
            drifted += 1;
            let n = crate::report::drifted_objects(&d.drift);
            format!(
                "{} from the spec",
                plural(n, "object differs", "objects differ")
            )
        },
    );
    let down = failed_count(members);
    let _ = writeln!(
        out,
        "Total: {} of {} in drift{}.",
        drifted,
        plural(members.len(), "cluster", "clusters"),
        if down > 0 {
            format!("; {down} could not be read")
        } else {
            String::new()
        }
    );
    out
}

/// The JSON report of a fleet drift (format 2).
pub fn drift_json(spec: &str, members: &[PerCluster<Drifted>]) -> String {
    let ok = || members.iter().filter_map(|m| m.result.as_ref().ok());
    let clusters = cluster_entries(members, |d, v| {
        v["report"] = crate::report::drift_value(&d.plan, &d.drift);
    });
    crate::report::pretty(&json!({
        "formatVersion": FORMAT_VERSION,
        "spec": spec,
        "clusters": clusters,
        "summary": {
            "clusters": members.len(),
            "failed": failed_count(members),
            "inDrift": ok().filter(|d| !d.drift.is_empty()).count(),
            "driftedObjects": ok().map(|d| crate::report::drifted_objects(&d.drift)).sum::<usize>(),
        },
    }))
}

/// The Prometheus textfile of a fleet drift: the series of [`crate::drift::metrics`], one per
/// cluster, each with a `cluster` label. `drifted` is `None` for a cluster that failed.
pub fn metrics(
    spec: &str,
    clusters: &[(String, Option<usize>)],
    now_seconds: u64,
    expiries: &[crate::expiry::Expiry],
) -> String {
    let runs: Vec<(String, Option<usize>)> = clusters
        .iter()
        .map(|(c, n)| {
            let labels = crate::prometheus::labels(&[("spec", spec), ("cluster", c)]);
            (labels, *n)
        })
        .collect();
    crate::drift::metrics_for(&runs, now_seconds, expiries)
}

/// Whether any planned cluster has changes other than `noop`.
pub fn any_changes(members: &[PerCluster<Plan>]) -> bool {
    members
        .iter()
        .filter_map(|m| m.result.as_ref().ok())
        .any(|p| p.changes.iter().any(|c| c.action != Action::Noop))
}

// views

/// `regops plan` over a fleet: each cluster's plan view under its name, and the totals.
pub struct FleetPlanView<'a> {
    pub spec: &'a str,
    pub source: &'a Source,
    pub members: &'a [PerCluster<Plan>],
}

impl crate::format::View for FleetPlanView<'_> {
    const FORMATS: &'static [(crate::format::Format, &'static str)] =
        <crate::view::PlanView<'_> as crate::format::View>::FORMATS;

    fn write(
        &self,
        format: crate::format::Format,
        style: &crate::format::Style,
        w: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        use crate::format::Format;
        match format {
            Format::Text => w.write_all(
                plan_text(self.spec, self.members, style.color, style.detail).as_bytes(),
            ),
            Format::Json => write_plan_json(self.spec, self.source, self.members, w),
            Format::Markdown => {
                w.write_all(plan_markdown(self.spec, self.members, style.max_bytes).as_bytes())
            }
        }
    }
}

/// `regops apply` over a fleet.
pub struct FleetApplyView<'a> {
    pub spec: &'a str,
    pub members: &'a [PerCluster<Applied>],
    pub dry_run: bool,
}

impl crate::format::View for FleetApplyView<'_> {
    const FORMATS: &'static [(crate::format::Format, &'static str)] =
        <crate::report::ApplyView<'_> as crate::format::View>::FORMATS;

    fn write(
        &self,
        format: crate::format::Format,
        _: &crate::format::Style,
        w: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        crate::format::write_report::<Self>(
            format,
            w,
            || apply_text(self.members, self.dry_run),
            || apply_json(self.spec, self.members, self.dry_run),
        )
    }
}

/// `regops drift` over a fleet.
pub struct FleetDriftView<'a> {
    pub spec: &'a str,
    pub members: &'a [PerCluster<Drifted>],
}

impl crate::format::View for FleetDriftView<'_> {
    const FORMATS: &'static [(crate::format::Format, &'static str)] =
        <crate::report::DriftView<'_> as crate::format::View>::FORMATS;

    fn write(
        &self,
        format: crate::format::Format,
        _: &crate::format::Style,
        w: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        crate::format::write_report::<Self>(
            format,
            w,
            || drift_text(self.spec, self.members),
            || drift_json(self.spec, self.members),
        )
    }
}
