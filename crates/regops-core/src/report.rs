//! What `apply`, `drift` and `validate` found, and their text and JSON views. Pure: the shell
//! runs the writes, reads and logins, and hands their results here to be shown.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::json;

use crate::drift::Drift;
use crate::plan::{Action, Plan};
use regops_spec::kind::ObjectKind;
use regops_spec::untrusted;

/// The version of the JSON reports of `apply`, `drift` and `validate`.
pub const FORMAT_VERSION: &str = "1";

pub(crate) fn pretty(v: &serde_json::Value) -> String {
    // Serialising a `Value` cannot fail (its map keys are strings).
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// `1 Secret`, `3 Secrets`: a count and the word for it (every view says counts this way).
pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

// ---------------------------------------------------------------------------------------------
// apply

/// What became of one change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Applied,
    DryRun,
    Skipped,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    pub action: Action,
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
    pub outcome: Outcome,
    /// Why it failed or was skipped, or a note on what was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The uid of the object written, when the answer said it (for the Events about it).
    #[serde(skip)]
    pub uid: Option<String>,
}

/// Every change's outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub results: Vec<ItemResult>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.count(Outcome::Failed)
    }

    pub fn count(&self, o: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == o).count()
    }

    /// Puts the results in the plan's order (apply finishes them in any order).
    pub fn sort_as(&mut self, plan: &Plan) {
        let order: BTreeMap<(ObjectKind, &str, &str), usize> = plan
            .changes
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.kind, c.namespace.as_str(), c.name.as_str()), i))
            .collect();
        let position = |r: &ItemResult| {
            order
                .get(&(r.kind, r.namespace.as_str(), r.name.as_str()))
                .copied()
                .unwrap_or(usize::MAX)
        };
        self.results.sort_by_key(position);
    }
}

/// The text report after an apply: failures, notes and skips, one section each, then the
/// counts.
pub fn apply_text(report: &Report, dry_run: bool, conflicts: usize) -> String {
    let mut out = String::new();
    let failed = report.failed();
    let skipped = report.count(Outcome::Skipped);
    // One section per outcome worth a line of its own: its title, the mark before each object
    // and whether the action is named, and which results it lists.
    type Pick = fn(&ItemResult) -> bool;
    let sections: [(&str, &str, bool, Pick); 3] = [
        ("Not applied (failed)", "✗", true, |r| {
            r.outcome == Outcome::Failed
        }),
        ("Applied, with notes", "✓", false, |r| {
            matches!(r.outcome, Outcome::Applied | Outcome::DryRun) && r.message.is_some()
        }),
        ("Skipped", "-", false, |r| r.outcome == Outcome::Skipped),
    ];
    for (title, mark, with_verb, pick) in sections {
        let items: Vec<&ItemResult> = report.results.iter().filter(|r| pick(r)).collect();
        if items.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title}:\n"));
        for r in items {
            let verb = if with_verb {
                format!("{} ", format!("{:?}", r.action).to_lowercase())
            } else {
                String::new()
            };
            // The message is the API server's answer, or a note naming objects: data.
            out.push_str(&format!(
                "  {mark} {verb}{} {}/{}: {}\n",
                r.kind,
                untrusted::terminal(&r.namespace),
                untrusted::terminal(&r.name),
                untrusted::terminal(r.message.as_deref().unwrap_or(""))
            ));
        }
    }
    let done = report.count(if dry_run {
        Outcome::DryRun
    } else {
        Outcome::Applied
    });
    out.push_str(&format!(
        "\n{}: {done} applied{}, {failed} failed, {skipped} skipped{}.\n",
        if dry_run {
            "Dry run (server-side, nothing stored)"
        } else {
            "Apply complete"
        },
        if dry_run { " as a dry run" } else { "" },
        if conflicts > 0 {
            format!(", {conflicts} in conflict")
        } else {
            String::new()
        }
    ));
    if failed > 0 {
        out.push_str("Everything else was applied; run apply again to converge.\n");
    }
    out
}

/// The JSON report after an apply.
pub fn apply_json(plan: &Plan, report: &Report, dry_run: bool) -> String {
    pretty(&apply_value(plan, report, dry_run))
}

/// The JSON report after an apply, as a value (a fleet report nests one per cluster).
pub fn apply_value(plan: &Plan, report: &Report, dry_run: bool) -> serde_json::Value {
    json!({
        "formatVersion": FORMAT_VERSION,
        "spec": plan.spec,
        "target": plan.target,
        "dryRun": dry_run,
        "results": report.results,
        "conflicts": plan.conflicts,
        "summary": {
            "applied": report.count(Outcome::Applied),
            "dryRun": report.count(Outcome::DryRun),
            "failed": report.failed(),
            "skipped": report.count(Outcome::Skipped),
            "conflicts": plan.conflicts.len(),
        },
    })
}

// ---------------------------------------------------------------------------------------------
// drift

/// The objects that differ (an object with two causes counts once).
pub fn drifted_objects(drift: &[Drift]) -> usize {
    drift
        .iter()
        .map(|d| (d.kind, d.namespace.as_str(), d.name.as_str()))
        .collect::<BTreeSet<_>>()
        .len()
}

fn how_name(d: &Drift) -> String {
    serde_json::to_value(d.how)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The text report of `regops drift`.
pub fn drift_text(plan: &Plan, drift: &[Drift]) -> String {
    let mut out = format!(
        "regops drift: spec `{}` against {}\n",
        untrusted::terminal(&plan.spec),
        untrusted::terminal(&plan.target)
    );
    let warnings = |out: &mut String| {
        if !plan.warnings.is_empty() {
            out.push_str("Warnings:\n");
            for w in &plan.warnings {
                out.push_str(&format!("  - {}\n", w.message.terminal()));
            }
        }
    };
    if drift.is_empty() {
        out.push_str(&format!(
            "In sync: {} checked.\n",
            plural(plan.changes.len(), "object", "objects")
        ));
        warnings(&mut out);
        return out;
    }
    for d in drift {
        out.push_str(&format!(
            "  {:<17} {} {}/{}: {}\n",
            how_name(d),
            d.kind,
            untrusted::terminal(&d.namespace),
            untrusted::terminal(&d.name),
            d.detail.terminal()
        ));
    }
    let n = drifted_objects(drift);
    out.push_str(&format!(
        "Drift: {n} object{} from the spec; `regops apply` converges.\n",
        if n == 1 { " differs" } else { "s differ" }
    ));
    warnings(&mut out);
    out
}

/// The JSON report of `regops drift`.
pub fn drift_json(plan: &Plan, drift: &[Drift]) -> String {
    pretty(&drift_value(plan, drift))
}

/// The JSON report of `regops drift`, as a value (a fleet report nests one per cluster).
pub fn drift_value(plan: &Plan, drift: &[Drift]) -> serde_json::Value {
    json!({
        "formatVersion": FORMAT_VERSION,
        "spec": plan.spec,
        "target": plan.target,
        "inSync": drift.is_empty(),
        "driftedObjects": drifted_objects(drift),
        "checked": plan.changes.len(),
        "drift": drift,
        "warnings": plan.warnings.iter().map(|w| w.message.raw()).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------------------------
// validate

/// What a registry said to one login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Logged in (and, with an image, may pull it).
    Ok(String),
    BadCredentials(String),
    /// Logged in, but not allowed to pull the image.
    Denied(String),
    NotFound(String),
    Unreachable(String),
    TlsError(String),
    /// Not attempted: going on would have sent the credentials somewhere they must not go.
    Refused(String),
    Error(String),
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        matches!(self, Verdict::Ok(_))
    }

    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Ok(_) => "OK",
            Verdict::BadCredentials(_) => "bad credentials",
            Verdict::Denied(_) => "denied",
            Verdict::NotFound(_) => "not found",
            Verdict::Unreachable(_) => "unreachable",
            Verdict::TlsError(_) => "TLS error",
            Verdict::Refused(_) => "refused",
            Verdict::Error(_) => "error",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Verdict::Ok(d)
            | Verdict::BadCredentials(d)
            | Verdict::Denied(d)
            | Verdict::NotFound(d)
            | Verdict::Unreachable(d)
            | Verdict::TlsError(d)
            | Verdict::Refused(d)
            | Verdict::Error(d) => d,
        }
    }
}

/// One registry's line in the `validate` report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub registry: String,
    pub server: String,
    pub verdict: Verdict,
    /// The credential's `expires`, said at the time of the check, and as Unix seconds.
    pub expires: Option<(String, i64)>,
    /// Where the credentials went that a reader should know of: plain HTTP, a token service
    /// on another host.
    pub notes: Vec<String>,
}

/// The text report of `regops validate`: a table.
pub fn validate_text(rows: &[Checked]) -> String {
    // Names from the spec, and what the registry answered: data.
    let shown = |s: &str| untrusted::terminal(s).into_owned();
    let w1 = rows
        .iter()
        .map(|r| shown(&r.registry).chars().count())
        .max()
        .unwrap_or(8)
        .max(8);
    let w2 = rows
        .iter()
        .map(|r| shown(&r.server).chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = format!(
        "{:<w1$}  {:<w2$}  {:<15}  DETAIL\n",
        "REGISTRY", "SERVER", "RESULT"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<w1$}  {:<w2$}  {:<15}  {}\n",
            shown(&r.registry),
            shown(&r.server),
            r.verdict.label(),
            shown(r.verdict.detail())
        ));
    }
    for r in rows {
        for note in &r.notes {
            out.push_str(&format!("{}: {}\n", shown(&r.registry), shown(note)));
        }
        if let Some((note, _)) = &r.expires {
            out.push_str(&format!(
                "{}: the credential {}\n",
                shown(&r.registry),
                shown(note)
            ));
        }
    }
    out
}

/// The JSON report of `regops validate`.
pub fn validate_json(rows: &[Checked]) -> String {
    let registries: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut v = json!({
                "registry": r.registry,
                "server": r.server,
                "result": r.verdict.label(),
                "detail": r.verdict.detail(),
            });
            if let Some((note, at)) = &r.expires {
                v["expires"] = json!(note);
                v["expiresAt"] = json!(at);
            }
            if !r.notes.is_empty() {
                v["notes"] = json!(r.notes);
            }
            v
        })
        .collect();
    pretty(&json!({
        "formatVersion": FORMAT_VERSION,
        "ok": rows.iter().all(|r| r.verdict.is_ok()),
        "registries": registries,
    }))
}

/// The two formats of the reports below.
const REPORT_FORMATS: &[(crate::format::Format, &str)] = &[
    (crate::format::Format::Text, "For people"),
    (
        crate::format::Format::Json,
        "Every action and its outcome, as JSON on standard output",
    ),
];

/// `regops apply`'s report.
pub struct ApplyView<'a> {
    pub plan: &'a Plan,
    pub report: &'a Report,
    pub dry_run: bool,
}

impl crate::format::View for ApplyView<'_> {
    const FORMATS: &'static [(crate::format::Format, &'static str)] = REPORT_FORMATS;

    fn write(
        &self,
        format: crate::format::Format,
        _: &crate::format::Style,
        w: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        crate::format::write_report::<Self>(
            format,
            w,
            || apply_text(self.report, self.dry_run, self.plan.conflicts.len()),
            || apply_json(self.plan, self.report, self.dry_run),
        )
    }
}

/// `regops drift`'s report.
pub struct DriftView<'a> {
    pub plan: &'a Plan,
    pub drift: &'a [Drift],
}

impl crate::format::View for DriftView<'_> {
    const FORMATS: &'static [(crate::format::Format, &'static str)] = REPORT_FORMATS;

    fn write(
        &self,
        format: crate::format::Format,
        _: &crate::format::Style,
        w: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        crate::format::write_report::<Self>(
            format,
            w,
            || drift_text(self.plan, self.drift),
            || drift_json(self.plan, self.drift),
        )
    }
}

/// `regops validate`'s verdicts.
pub struct ValidateView<'a>(pub &'a [Checked]);

impl crate::format::View for ValidateView<'_> {
    const FORMATS: &'static [(crate::format::Format, &'static str)] = REPORT_FORMATS;

    fn write(
        &self,
        format: crate::format::Format,
        _: &crate::format::Style,
        w: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        crate::format::write_report::<Self>(
            format,
            w,
            || validate_text(self.0),
            || validate_json(self.0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::How;
    use crate::plan::{Conflict, Origin, Source, Summary};
    use regops_spec::untrusted::Message;

    fn plan() -> Plan {
        Plan {
            format_version: crate::plan::FORMAT_VERSION.into(),
            spec: "team".into(),
            target: "context kind-dev (https://127.0.0.1:6443)".into(),
            source: Source::default(),
            last_applied_commits: Vec::new(),
            changes: Vec::new(),
            conflicts: vec![Conflict {
                kind: ObjectKind::Secret,
                namespace: "shop".into(),
                name: "pull".into(),
                message: "would overwrite a Secret owned by someone else".into(),
            }],
            warnings: vec![crate::warning::Warning::new(
                crate::warning::WarningKind::RestartsPods,
                "deployment web/api",
                "will restart pods of deployment web/api",
            )],
            groups: Vec::new(),
            warning_groups: Vec::new(),
            summary: Summary::default(),
        }
    }

    fn item(
        action: Action,
        kind: ObjectKind,
        ns: &str,
        outcome: Outcome,
        message: Option<&str>,
    ) -> ItemResult {
        ItemResult {
            action,
            kind,
            namespace: ns.into(),
            name: if kind == ObjectKind::Secret {
                "pull"
            } else {
                "default"
            }
            .into(),
            outcome,
            message: message.map(str::to_string),
            uid: None,
        }
    }

    fn report() -> Report {
        Report {
            results: vec![
                item(
                    Action::Create,
                    ObjectKind::Secret,
                    "web",
                    Outcome::Applied,
                    None,
                ),
                item(
                    Action::Update,
                    ObjectKind::Secret,
                    "api",
                    Outcome::Applied,
                    Some("restored: overwrote the change made by `kubectl-edit`"),
                ),
                item(
                    Action::Create,
                    ObjectKind::Secret,
                    "db",
                    Outcome::Failed,
                    Some("forbidden: secrets is forbidden"),
                ),
                item(
                    Action::Patch,
                    ObjectKind::ServiceAccount,
                    "db",
                    Outcome::Skipped,
                    Some("not written: Secret pull was not applied"),
                ),
                item(
                    Action::Delete,
                    ObjectKind::Secret,
                    "old",
                    Outcome::Skipped,
                    Some("pass --prune to delete"),
                ),
            ],
        }
    }

    #[test]
    fn apply_reports() {
        let r = report();
        assert_eq!((r.failed(), r.count(Outcome::Skipped)), (1, 2));
        insta::assert_snapshot!("apply_text", apply_text(&r, false, 1));
        insta::assert_snapshot!("apply_json", apply_json(&plan(), &r, false));
        let dry = Report {
            results: vec![item(
                Action::Replace,
                ObjectKind::Secret,
                "web",
                Outcome::DryRun,
                Some("would replace: the server accepted the delete; the new Secret is as planned"),
            )],
        };
        insta::assert_snapshot!("apply_text_dry_run", apply_text(&dry, true, 0));
    }

    #[test]
    fn results_follow_the_plans_order() {
        let mut p = plan();
        let mut r = report();
        // The plan's order: by namespace, as a plan lists them.
        for x in [
            ("api", ObjectKind::Secret),
            ("db", ObjectKind::Secret),
            ("db", ObjectKind::ServiceAccount),
            ("old", ObjectKind::Secret),
            ("web", ObjectKind::Secret),
        ] {
            let found = r
                .results
                .iter()
                .find(|i| i.namespace == x.0 && i.kind == x.1)
                .unwrap();
            p.changes.push(crate::plan::Change::new(
                found.action,
                x.1,
                x.0,
                &found.name,
            ));
        }
        r.sort_as(&p);
        let order: Vec<&str> = r.results.iter().map(|i| i.namespace.as_str()).collect();
        assert_eq!(order, ["api", "db", "db", "old", "web"]);
        assert_eq!(r.results[1].kind, ObjectKind::Secret);
    }

    #[test]
    fn drift_reports() {
        let p = plan();
        let drift = vec![
            Drift {
                kind: ObjectKind::Secret,
                namespace: "web".into(),
                name: "pull".into(),
                how: How::DataChanged,
                cause: Some(Origin::ChangedInCluster),
                detail: Message::own(
                    "auths[harbor.example.com].password: changed in the cluster by ",
                )
                .code("kubectl-edit")
                .and("; apply restores it"),
            },
            Drift {
                kind: ObjectKind::Secret,
                namespace: "web".into(),
                name: "pull".into(),
                how: How::OwnershipChanged,
                cause: Some(Origin::ChangedInCluster),
                detail: "regops' label or annotation is missing".into(),
            },
            Drift {
                kind: ObjectKind::ServiceAccount,
                namespace: "web".into(),
                name: "default".into(),
                how: How::EntryRemoved,
                cause: Some(Origin::ChangedInCluster),
                detail: "pull".into(),
            },
        ];
        // Two causes on one Secret: two objects drifted, not three.
        assert_eq!(drifted_objects(&drift), 2);
        insta::assert_snapshot!("drift_text", drift_text(&p, &drift));
        insta::assert_snapshot!("drift_json", drift_json(&p, &drift));
        insta::assert_snapshot!("drift_text_in_sync", drift_text(&p, &[]));
    }

    #[test]
    fn validate_reports() {
        let rows = vec![
            Checked {
                registry: "harbor".into(),
                server: "harbor.example.com".into(),
                verdict: Verdict::Ok("logged in as robot$ci".into()),
                expires: Some(("expires at 2027-03-01 (in 9 days)".into(), 1_803_859_200)),
                notes: Vec::new(),
            },
            Checked {
                registry: "dockerhub".into(),
                server: "https://index.docker.io/v1/".into(),
                verdict: Verdict::BadCredentials("401 Unauthorized from the token service".into()),
                expires: None,
                notes: vec!["token service on another host: auth.docker.io".into()],
            },
            Checked {
                registry: "lab".into(),
                server: "harbor.lab:8080".into(),
                verdict: Verdict::Refused(
                    "the token realm http://harbor.lab/service/token is plain HTTP".into(),
                ),
                expires: None,
                notes: vec!["plain HTTP: the credential crosses the network in clear".into()],
            },
        ];
        insta::assert_snapshot!("validate_text", validate_text(&rows));
        insta::assert_snapshot!("validate_json", validate_json(&rows));
        assert!(validate_json(&rows[..1]).contains("\"ok\": true"));
    }
}
