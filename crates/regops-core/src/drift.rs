//! Drift: the plan read as "how does the cluster differ from the spec", for unattended runs.

use schemars::JsonSchema;
use serde::Serialize;

use crate::ownership;
use crate::plan::{Action, Cause, Change, Origin, Plan};
use regops_spec::kind::ObjectKind;
use regops_spec::untrusted::Message;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// A Secret the spec wants was deleted (others of this spec are in its namespace).
    Missing,
    /// A namespace entered a scope and has no Secret of this spec yet.
    NewNamespace,
    /// A managed Secret's data differs from the spec (changed by hand, or the spec changed).
    DataChanged,
    /// A managed Secret lost regops' label or annotation.
    OwnershipChanged,
    /// A Secret must be recreated (its type differs, or it is immutable and must change).
    NeedsReplacement,
    /// An `imagePullSecrets` entry regops had added was removed.
    EntryRemoved,
    /// An `imagePullSecrets` entry (or the KubeSphere annotation) the spec wants is not there.
    EntryMissing,
    /// An entry regops added is no longer wanted.
    EntryUnwanted,
    /// A Secret this spec owns that the spec no longer wants.
    Orphaned,
    /// A Secret of the wanted name that regops does not own.
    Conflict,
    /// A Secret's minted token expires before the next run (`--next-run`), or it does not say
    /// when.
    Expiring,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
    pub how: How,
    /// Who moved: the spec, the cluster, both; deleted in the cluster, or new in scope (the
    /// change's [`Origin`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Origin>,
    pub detail: Message,
}

/// How one cause reads as drift, or `None` for a cause that is housekeeping rather than a
/// difference from the spec (regops' own record, an annotation an earlier regops misplaced, a
/// takeover the spec asked for).
fn as_drift(change: &Change, cause: &Cause) -> Option<(How, Message)> {
    Some(match cause {
        Cause::Missing => (How::Missing, "the Secret is gone".into()),
        Cause::NewNamespace => (
            How::NewNamespace,
            "the namespace has no Secret of this spec yet".into(),
        ),
        // What differs, then who moved, in the plan's words.
        Cause::DataChanged { fields, by, .. } => (
            How::DataChanged,
            match &change.reason {
                Some(why) => Message::default()
                    .quote_all(fields, ", ")
                    .and(": ")
                    .then(why),
                None if by.is_empty() => Message::default().quote_all(fields, ", "),
                None => Message::default()
                    .quote_all(fields, ", ")
                    .and(" (by ")
                    .quote_all(by, ", ")
                    .and(")"),
            },
        ),
        Cause::OwnershipChanged => (
            How::OwnershipChanged,
            "regops' label or annotation is missing".into(),
        ),
        Cause::TypeDiffers { .. } | Cause::Immutable => (
            How::NeedsReplacement,
            change.reason.clone().unwrap_or_default(),
        ),
        Cause::EntryRemoved { entries } => (
            How::EntryRemoved,
            Message::default().quote_all(entries, ", "),
        ),
        Cause::EntryMissing { entries } => (
            How::EntryMissing,
            Message::default().quote_all(entries, ", "),
        ),
        Cause::AnnotationDiffers => (
            How::EntryMissing,
            Message::own(format!("annotation {}", ownership::KUBESPHERE_ANNOTATION)),
        ),
        Cause::EntryUnwanted { entries } => (
            How::EntryUnwanted,
            Message::default().quote_all(entries, ", "),
        ),
        Cause::Orphaned => (How::Orphaned, "owned by this spec, no longer in it".into()),
        Cause::Adopted
        | Cause::AnnotationMoved
        | Cause::RecordOutdated
        | Cause::LastAppliedRemoved
        | Cause::TokenRenewal { .. } => return None,
    })
}

/// Every way the cluster differs from the spec, one entry per object and cause, read from the
/// plan's causes.
pub fn drift(plan: &Plan) -> Vec<Drift> {
    let mut out = Vec::new();
    for c in plan.changes.iter().filter(|c| c.action != Action::Noop) {
        for cause in &c.causes {
            if let Some((how, detail)) = as_drift(c, cause) {
                out.push(Drift {
                    kind: c.kind,
                    namespace: c.namespace.clone(),
                    name: c.name.clone(),
                    how,
                    cause: c.cause,
                    detail,
                });
            }
        }
    }
    for c in &plan.conflicts {
        out.push(Drift {
            kind: c.kind,
            namespace: c.namespace.clone(),
            name: c.name.clone(),
            how: How::Conflict,
            cause: None,
            detail: c.message.clone(),
        });
    }
    out
}

/// The Secrets whose minted token expires before `now + next_run` (seconds): the next run
/// would find them expired unless something renews them first.
pub fn expiring(desired: &crate::desired::Desired, now: i64, next_run: u64) -> Vec<Drift> {
    let horizon = now.saturating_add(i64::try_from(next_run).unwrap_or(i64::MAX));
    desired
        .secrets
        .iter()
        .filter_map(|d| {
            let at = d.expires_at.filter(|at| *at < horizon)?;
            let detail = Message::own(if at <= 0 {
                "the Secret does not say when its token expires".to_string()
            } else if at <= now {
                format!(
                    "its token expired at {}",
                    regops_spec::rules::format_timestamp(at)
                )
            } else {
                format!(
                    "its token expires at {}, before the next run",
                    regops_spec::rules::format_timestamp(at)
                )
            });
            Some(Drift {
                kind: ObjectKind::Secret,
                namespace: d.namespace.clone(),
                name: d.name.clone(),
                how: How::Expiring,
                cause: None,
                detail,
            })
        })
        .collect()
}

/// A Prometheus textfile for node-exporter's textfile collector, for one cluster. `expiries`
/// are the credentials in use with an `expires` (`regops_credential_expiry_timestamp_seconds`).
pub fn metrics(
    spec: &str,
    drifted: Option<usize>,
    success: bool,
    now_seconds: u64,
    expiries: &[crate::expiry::Expiry],
) -> String {
    let labels = crate::prometheus::labels(&[("spec", spec)]);
    metrics_for(
        &[(labels, drifted.filter(|_| success))],
        now_seconds,
        expiries,
    )
}

/// The textfile for runs, each given as its rendered labels (`spec="web"` or
/// `spec="web",cluster="eu"`, by [`crate::prometheus::labels`]) and the objects in drift
/// (`None` for a run that failed): each series once per run, under one HELP and TYPE.
pub fn metrics_for(
    runs: &[(String, Option<usize>)],
    now_seconds: u64,
    expiries: &[crate::expiry::Expiry],
) -> String {
    use crate::prometheus::{Exposition, Type, escape};
    let mut out = Exposition::new();
    if !expiries.is_empty() {
        let name = "regops_credential_expiry_timestamp_seconds";
        out.family(
            name,
            Type::Gauge,
            "When a credential in use expires (its `expires`), as Unix seconds.",
        );
        for (labels, _) in runs {
            for e in expiries {
                let labels = format!("{labels},credential=\"{}\"", escape(&e.credential));
                out.sample(name, &labels, e.at);
            }
        }
    }
    if runs.iter().any(|(_, n)| n.is_some()) {
        let name = "regops_drift_objects";
        out.family(name, Type::Gauge, "Objects that differ from the spec.");
        for (labels, n) in runs {
            if let Some(n) = n {
                out.sample(name, labels, n);
            }
        }
    }
    let name = "regops_last_run_timestamp_seconds";
    out.family(name, Type::Gauge, "When regops drift last ran.");
    for (labels, _) in runs {
        out.sample(name, labels, now_seconds);
    }
    let name = "regops_run_success";
    out.family(
        name,
        Type::Gauge,
        "Whether the last regops drift run could read the cluster and the spec (1) or not (0).",
    );
    for (labels, n) in runs {
        out.sample(name, labels, u8::from(n.is_some()));
    }
    out.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_prometheus_text() {
        let m = metrics("web\"x", Some(3), true, 1_700_000_000, &[]);
        assert!(m.contains("regops_drift_objects{spec=\"web\\\"x\"} 3\n"));
        assert!(m.contains(
            "# TYPE regops_run_success gauge\nregops_run_success{spec=\"web\\\"x\"} 1\n"
        ));
        let failed = metrics("web", None, false, 1, &[]);
        assert!(!failed.contains("regops_credential_expiry"));
        let expiring = crate::expiry::Expiry {
            credential: "robot".into(),
            written: "2027-03-01".into(),
            at: 1_803_859_200,
            warn_before: 0,
        };
        let with = metrics("web", Some(0), true, 1, &[expiring]);
        assert!(
            with.contains("# TYPE regops_credential_expiry_timestamp_seconds gauge\nregops_credential_expiry_timestamp_seconds{spec=\"web\",credential=\"robot\"} 1803859200\n"),
            "{with}"
        );
        assert!(
            !failed.contains("regops_drift_objects")
                && failed.contains("regops_run_success{spec=\"web\"} 0")
        );
    }
}
