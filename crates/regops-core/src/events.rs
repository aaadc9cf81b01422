//! The Kubernetes Events an apply records: on which object, of which reason, with the note a
//! person reads in `kubectl describe` and `kubectl get events`. Pure: from the plan and the
//! apply's report to the Events of one pass, capped per reason so that a pass over 10,000
//! namespaces records tens of Events, not 10,000 (the rest are counted in one summary Event).
//! The binary's recorder sends them and aggregates repeats into series, as client-go's does.

use crate::plan::{Action, Cause, Origin, Plan};
use crate::report::{Outcome, Report};
use regops_spec::kind::ObjectKind;
use regops_spec::untrusted::Message;

/// How many Events of one reason a pass records one by one; past it, one summary Event says
/// how many more there were (client-go's aggregator folds similar Events past 10 into one).
pub const PER_REASON: usize = 25;

/// `Normal` or `Warning`, as the API knows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Type {
    Normal,
    Warning,
}

impl Type {
    pub fn as_str(self) -> &'static str {
        match self {
            Type::Normal => "Normal",
            Type::Warning => "Warning",
        }
    }
}

/// The object an Event is about (`regarding`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Regarding {
    pub api_version: String,
    pub kind: String,
    /// Empty for a cluster-scoped object.
    pub namespace: String,
    pub name: String,
    /// Its uid when known (`kubectl describe` finds an object's Events by it).
    pub uid: Option<String>,
}

impl Regarding {
    /// An object of a kind regops plans.
    pub fn of(kind: ObjectKind, namespace: &str, name: &str, uid: Option<String>) -> Self {
        Regarding {
            api_version: kind.facts().api_version.into(),
            kind: kind.as_str().into(),
            namespace: namespace.into(),
            name: name.into(),
            uid,
        }
    }
}

/// One Event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub regarding: Regarding,
    pub type_: Type,
    /// One CamelCase word: `Created`, `Rotated`, `Restored`, `Replaced`, `Pruned`, `Adopted`,
    /// `HeldBack`, `Conflict`, `Failed`.
    pub reason: &'static str,
    /// What regops did or tried: `Apply`, `Replace`, `Prune`, `Plan`.
    pub action: &'static str,
    /// For people, at most [`NOTE_LIMIT`] bytes.
    pub note: String,
}

/// The API server's limit on a note (`NoteLengthLimit`, pkg/apis/core/validation/events.go).
pub const NOTE_LIMIT: usize = 1024;

/// The Events of one pass: those recorded one by one, and per reason past the cap, how many
/// more there were (for one summary Event each).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassEvents {
    pub events: Vec<Event>,
    /// (type, reason, action, how many more, in how many namespaces).
    pub beyond: Vec<(Type, &'static str, &'static str, usize, usize)>,
}

fn cut(mut note: String) -> String {
    if note.len() > NOTE_LIMIT {
        let mut end = NOTE_LIMIT - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}

/// The Events of an apply of `plan` whose outcome is `report`. `uid` gives an object's uid as
/// read or as written (by kind, namespace, name). Nothing is recorded of a dry run.
pub fn of_apply(
    plan: &Plan,
    report: &Report,
    uid: &dyn Fn(ObjectKind, &str, &str) -> Option<String>,
    per_reason: usize,
) -> PassEvents {
    let mut all: Vec<Event> = Vec::new();
    let spec = &plan.spec;
    let changes: std::collections::BTreeMap<(ObjectKind, &str, &str), &crate::plan::Change> = plan
        .changes
        .iter()
        .map(|c| ((c.kind, c.namespace.as_str(), c.name.as_str()), c))
        .collect();
    for r in &report.results {
        let Some(c) = changes.get(&(r.kind, r.namespace.as_str(), r.name.as_str())) else {
            continue;
        };
        let regarding = Regarding::of(
            r.kind,
            &r.namespace,
            &r.name,
            uid(r.kind, &r.namespace, &r.name),
        );
        let logins = if c.logins.is_empty() {
            String::new()
        } else {
            format!(" ({})", c.logins.join(", "))
        };
        let event = match (r.outcome, r.kind, c.action) {
            (Outcome::Failed, _, action) => Some((
                Type::Warning,
                "Failed",
                action_word(action),
                format!(
                    "regops could not {} it for spec `{spec}`: {}",
                    verb(action),
                    r.message.as_deref().unwrap_or("no reason given")
                ),
            )),
            (Outcome::Skipped, ObjectKind::ServiceAccount, _)
            | (Outcome::Skipped, _, Action::Patch)
                if r.message
                    .as_deref()
                    .is_some_and(|m| m.contains("was not applied")) =>
            {
                Some((
                    Type::Warning,
                    "HeldBack",
                    "Apply",
                    format!(
                        "regops held back its pull-secret references for spec `{spec}`: {}",
                        r.message.as_deref().unwrap_or_default()
                    ),
                ))
            }
            (Outcome::Applied, ObjectKind::Secret, Action::Create) => Some((
                Type::Normal,
                "Created",
                "Apply",
                format!("Created by regops from spec `{spec}`{logins}"),
            )),
            (Outcome::Applied, ObjectKind::Secret, Action::Replace) => Some((
                Type::Normal,
                "Replaced",
                "Replace",
                format!(
                    "Deleted and created again by regops for spec `{spec}`: {}{logins}",
                    c.reason
                        .as_ref()
                        .map_or_else(|| "it could not be changed in place".into(), Message::raw)
                ),
            )),
            (Outcome::Applied, ObjectKind::Secret, Action::Delete) => Some((
                Type::Normal,
                "Pruned",
                "Prune",
                format!("Deleted by regops: spec `{spec}` no longer wants it"),
            )),
            (Outcome::Applied, ObjectKind::Secret, Action::Update) => {
                // Who moved decides: a change in the cluster undone is a restoration (a
                // warning), the spec's own change a rotation; the note says it in the plan's
                // words.
                let restored = r
                    .message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("restored"))
                    || matches!(c.cause, Some(Origin::ChangedInCluster | Origin::Both));
                let data = c
                    .causes
                    .iter()
                    .any(|k| matches!(k, Cause::DataChanged { .. }));
                if restored {
                    Some((
                        Type::Warning,
                        "Restored",
                        "Apply",
                        format!(
                            "Restored by regops to spec `{spec}`: {}",
                            r.message
                                .clone()
                                .or_else(|| c.reason.as_ref().map(Message::raw))
                                .unwrap_or_else(|| "it had been changed in the cluster".into())
                        ),
                    ))
                } else if data {
                    Some((
                        Type::Normal,
                        "Rotated",
                        "Apply",
                        format!(
                            "Credentials updated in place by regops from spec `{spec}` (same uid){}{logins}",
                            c.reason
                                .as_ref()
                                .map_or_else(String::new, |why| format!(": {}", why.raw()))
                        ),
                    ))
                } else if c.causes.iter().any(|k| matches!(k, Cause::Adopted)) {
                    Some((
                        Type::Normal,
                        "Adopted",
                        "Apply",
                        format!("Adopted by regops for spec `{spec}` (`adopt: true`)"),
                    ))
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some((type_, reason, action, note)) = event {
            all.push(Event {
                regarding,
                type_,
                reason,
                action,
                note: cut(note),
            });
        }
    }
    for conflict in &plan.conflicts {
        // An Event's note goes to the API server as it is (kubectl escapes what it shows).
        let message = conflict.message.raw();
        let held = message.starts_with("held back");
        all.push(Event {
            regarding: Regarding::of(
                conflict.kind,
                &conflict.namespace,
                &conflict.name,
                uid(conflict.kind, &conflict.namespace, &conflict.name),
            ),
            type_: Type::Warning,
            reason: if held { "HeldBack" } else { "Conflict" },
            action: "Plan",
            note: cut(format!("regops (spec `{spec}`) left it alone: {message}")),
        });
    }
    cap(all, per_reason)
}

/// The first `per_reason` Events of each reason; the rest counted.
fn cap(all: Vec<Event>, per_reason: usize) -> PassEvents {
    use std::collections::{BTreeMap, BTreeSet};
    let mut kept: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut more: BTreeMap<(Type, &'static str, &'static str), (usize, BTreeSet<String>)> =
        BTreeMap::new();
    let mut pass = PassEvents::default();
    for e in all {
        let n = kept.entry(e.reason).or_default();
        if *n < per_reason {
            *n += 1;
            pass.events.push(e);
        } else {
            let m = more.entry((e.type_, e.reason, e.action)).or_default();
            m.0 += 1;
            m.1.insert(e.regarding.namespace);
        }
    }
    pass.beyond = more
        .into_iter()
        .map(|((t, r, a), (n, ns))| (t, r, a, n, ns.len()))
        .collect();
    pass
}

/// The summary Event of a reason past the cap, on the object given (the Lease).
pub fn summary(
    regarding: Regarding,
    spec: &str,
    (type_, reason, action, more, namespaces): (Type, &'static str, &'static str, usize, usize),
    per_reason: usize,
) -> Event {
    Event {
        regarding,
        type_,
        reason,
        action,
        note: cut(format!(
            "regops (spec `{spec}`): {more} more `{reason}` in {namespaces} namespace{}, beyond the {per_reason} recorded one by one this pass (`regops apply --output json` lists every object)",
            if namespaces == 1 { "" } else { "s" }
        )),
    }
}

fn action_word(a: Action) -> &'static str {
    match a {
        Action::Replace => "Replace",
        Action::Delete => "Prune",
        _ => "Apply",
    }
}

fn verb(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Patch => "patch",
        Action::Delete => "delete",
        Action::Noop => "leave",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A note past the API's limit is cut on a character boundary, and says so.
    #[test]
    fn a_long_note_is_cut_to_the_limit() {
        let cut_note = cut("é".repeat(NOTE_LIMIT));
        assert!(cut_note.len() <= NOTE_LIMIT);
        assert!(cut_note.ends_with("..."));
        assert_eq!(cut("short".into()), "short");
    }

    fn event(reason: &'static str, ns: &str) -> Event {
        Event {
            regarding: Regarding::of(ObjectKind::Secret, ns, "pull", None),
            type_: Type::Normal,
            reason,
            action: "Apply",
            note: String::new(),
        }
    }

    /// Past the cap, each reason is counted apart, with the namespaces it touched.
    #[test]
    fn the_cap_counts_each_reason_apart() {
        let all = vec![
            event("Created", "a"),
            event("Created", "b"),
            event("Created", "c"),
            event("Created", "c"),
            event("Rotated", "d"),
        ];
        let pass = cap(all, 2);
        let kept: Vec<&str> = pass
            .events
            .iter()
            .map(|e| e.regarding.namespace.as_str())
            .collect();
        assert_eq!(kept, ["a", "b", "d"]);
        assert_eq!(pass.beyond, [(Type::Normal, "Created", "Apply", 2, 1)]);
    }
}
