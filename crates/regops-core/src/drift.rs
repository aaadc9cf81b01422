//! Drift: the plan read as "how does the cluster differ from the spec", for unattended runs.

use schemars::JsonSchema;
use serde::Serialize;

use crate::observed::Observed;
use crate::ownership;
use crate::plan::{Action, Plan};

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
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub how: How,
    pub detail: String,
}

/// Every way the cluster differs from the spec, one entry per object and cause.
pub fn drift(plan: &Plan, observed: &Observed) -> Vec<Drift> {
    let mut out = Vec::new();
    let d = |c: &crate::plan::Change, how: How, detail: String| Drift {
        kind: c.kind.clone(),
        namespace: c.namespace.clone(),
        name: c.name.clone(),
        how,
        detail,
    };
    // Namespaces holding a Secret of this spec: a Secret to create there went missing.
    let owned_in: std::collections::BTreeSet<&str> = observed
        .secrets
        .iter()
        .filter(|s| s.owned_by(&plan.spec))
        .map(|s| s.namespace.as_str())
        .collect();
    let sa_annotations: std::collections::BTreeMap<(&str, &str), &crate::observed::Labels> =
        observed
            .service_accounts
            .iter()
            .map(|s| ((s.namespace.as_str(), s.name.as_str()), &s.annotations))
            .collect();
    let workload_annotations: std::collections::BTreeMap<
        (&str, &str, &str),
        &crate::observed::Labels,
    > = observed
        .workloads
        .iter()
        .map(|w| {
            (
                (w.namespace.as_str(), w.kind.as_str(), w.name.as_str()),
                &w.annotations,
            )
        })
        .collect();
    for c in &plan.changes {
        match (c.action, c.kind.as_str()) {
            (Action::Noop, _) => {}
            (Action::Create, _) => {
                let has_others = owned_in.contains(c.namespace.as_str());
                if has_others {
                    out.push(d(c, How::Missing, "the Secret is gone".into()));
                } else {
                    out.push(d(
                        c,
                        How::NewNamespace,
                        "the namespace has no Secret of this spec yet".into(),
                    ));
                }
            }
            (Action::Update, _) => {
                let data: Vec<&str> = c
                    .fields
                    .iter()
                    .filter(|f| f.field.starts_with("auths") || f.field.starts_with("data"))
                    .map(|f| f.field.as_str())
                    .collect();
                if !data.is_empty() {
                    out.push(d(c, How::DataChanged, data.join(", ")));
                }
                if c.fields.iter().any(|f| f.field.starts_with("metadata.")) {
                    out.push(d(
                        c,
                        How::OwnershipChanged,
                        "regops' label or annotation is missing".into(),
                    ));
                }
            }
            (Action::Replace, _) => out.push(d(
                c,
                How::NeedsReplacement,
                c.reason.clone().unwrap_or_default(),
            )),
            (Action::Delete, _) => out.push(d(
                c,
                How::Orphaned,
                "owned by this spec, no longer in it".into(),
            )),
            (Action::Patch, kind) => {
                let annotations = if kind == "ServiceAccount" {
                    sa_annotations
                        .get(&(c.namespace.as_str(), c.name.as_str()))
                        .copied()
                } else {
                    workload_annotations
                        .get(&(c.namespace.as_str(), kind, c.name.as_str()))
                        .copied()
                };
                let recorded = annotations
                    .map(|a| ownership::added_by(a, &plan.spec))
                    .unwrap_or_default();
                let (removed, missing): (Vec<&String>, Vec<&String>) =
                    c.add.iter().partition(|a| recorded.contains(a));
                if !removed.is_empty() {
                    out.push(d(
                        c,
                        How::EntryRemoved,
                        removed
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ));
                }
                if !missing.is_empty() {
                    out.push(d(
                        c,
                        How::EntryMissing,
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ));
                }
                if c.kubesphere_annotation.is_some() {
                    out.push(d(
                        c,
                        How::EntryMissing,
                        format!("annotation {}", ownership::KUBESPHERE_ANNOTATION),
                    ));
                }
                if !c.remove.is_empty() {
                    out.push(d(c, How::EntryUnwanted, c.remove.join(", ")));
                }
            }
        }
    }
    for c in &plan.conflicts {
        out.push(Drift {
            kind: c.kind.clone(),
            namespace: c.namespace.clone(),
            name: c.name.clone(),
            how: How::Conflict,
            detail: c.message.clone(),
        });
    }
    out
}

/// A Prometheus textfile for node-exporter's textfile collector.
pub fn metrics(spec: &str, drifted: Option<usize>, success: bool, now_seconds: u64) -> String {
    let label = spec.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = String::new();
    if let Some(n) = drifted {
        out.push_str(&format!(
            "# HELP regops_drift_objects Objects that differ from the spec.\n# TYPE regops_drift_objects gauge\nregops_drift_objects{{spec=\"{label}\"}} {n}\n"
        ));
    }
    out.push_str(&format!(
        "# HELP regops_last_run_timestamp_seconds When regops drift last ran.\n# TYPE regops_last_run_timestamp_seconds gauge\nregops_last_run_timestamp_seconds{{spec=\"{label}\"}} {now_seconds}\n"
    ));
    out.push_str(&format!(
        "# HELP regops_run_success Whether the last regops drift run could read the cluster and the spec (1) or not (0).\n# TYPE regops_run_success gauge\nregops_run_success{{spec=\"{label}\"}} {}\n",
        u8::from(success)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_prometheus_text() {
        let m = metrics("web\"x", Some(3), true, 1_700_000_000);
        assert!(m.contains("regops_drift_objects{spec=\"web\\\"x\"} 3\n"));
        assert!(m.contains(
            "# TYPE regops_run_success gauge\nregops_run_success{spec=\"web\\\"x\"} 1\n"
        ));
        let failed = metrics("web", None, false, 1);
        assert!(
            !failed.contains("regops_drift_objects")
                && failed.contains("regops_run_success{spec=\"web\"} 0")
        );
    }
}
