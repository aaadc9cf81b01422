//! The plan for people and programs: text like `terraform plan`, JSON (the model itself,
//! `schemas/plan.schema.json`), and Markdown for a pull-request comment. Pure functions of the
//! plan; nothing here sees a secret value.

use std::fmt::Write;

use crate::kind::ObjectKind;
use crate::plan::{Action, Change, Plan};

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

fn symbol(a: Action) -> (&'static str, &'static str) {
    match a {
        Action::Create => ("+", "32"),
        Action::Update | Action::Patch => ("~", "33"),
        Action::Replace => ("-/+", "35"),
        Action::Delete => ("-", "31"),
        Action::Noop => (" ", "0"),
    }
}

fn verb(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Patch => "patch",
        Action::Delete => "delete",
        Action::Noop => "unchanged",
    }
}

fn headline(plan: &Plan) -> String {
    let mut h = format!("spec `{}` against {}", plan.spec, plan.target);
    if let Some(c) = &plan.source.commit {
        let _ = write!(h, ", from commit {}", &c[..c.len().min(12)]);
        if plan.source.dirty {
            h.push_str(" with uncommitted changes");
        }
    }
    h
}

fn summary_line(plan: &Plan) -> String {
    let s = &plan.summary;
    format!(
        "{} to create, {} to update, {} to replace, {} to patch, {} to delete.",
        s.create, s.update, s.replace, s.patch, s.delete
    )
}

fn change_note(c: &Change) -> String {
    let mut notes = Vec::new();
    if !c.logins.is_empty() && matches!(c.action, Action::Create | Action::Replace) {
        notes.push(c.logins.join(", "));
    }
    if let Some(r) = &c.reason {
        notes.push(r.clone());
    }
    if c.restarts_pods {
        notes.push("will restart its pods".into());
    }
    if c.kind == ObjectKind::CronJob && c.action == Action::Patch {
        notes.push("its next Jobs get this; running Jobs are unchanged".into());
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!("  ({})", notes.join("; "))
    }
}

/// The human view.
pub fn text(plan: &Plan, color: bool) -> String {
    let st = Style { color };
    let mut out = String::new();
    let _ = writeln!(out, "regops plan: {}", headline(plan));
    if !plan.last_applied_commits.is_empty() {
        let _ = writeln!(
            out,
            "The cluster was last applied from commit {}.",
            plan.last_applied_commits.join(", ")
        );
    }
    let shown: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Noop)
        .collect();
    if shown.is_empty() && plan.conflicts.is_empty() {
        let _ = writeln!(
            out,
            "\nNo changes. The cluster matches the spec ({} object{} checked).",
            plan.summary.noop,
            if plan.summary.noop == 1 { "" } else { "s" }
        );
    } else if !shown.is_empty() {
        let mut used: Vec<Action> = shown.iter().map(|c| c.action).collect();
        used.sort();
        used.dedup();
        let legend: Vec<String> = used
            .iter()
            .map(|a| format!("{} {}", st.paint(symbol(*a).1, symbol(*a).0), verb(*a)))
            .collect();
        let _ = writeln!(out, "\nSymbols: {}", legend.join("   "));
        // One block per namespace, each keeping the plan's (apply) order.
        let mut by_namespace: std::collections::BTreeMap<&str, Vec<&Change>> =
            std::collections::BTreeMap::new();
        for c in &shown {
            by_namespace
                .entry(c.namespace.as_str())
                .or_default()
                .push(c);
        }
        for (ns, changes) in by_namespace {
            let _ = writeln!(out, "\nnamespace {ns}");
            for c in changes {
                let (sym, code) = symbol(c.action);
                let _ = writeln!(
                    out,
                    "  {} {} {}{}",
                    st.paint(code, &format!("{sym:>3}")),
                    c.kind,
                    c.name,
                    change_note(c)
                );
                if !c.entries_before.is_empty() || !c.entries_after.is_empty() {
                    let _ = writeln!(out, "        imagePullSecrets:");
                    for (tag, entry) in list_diff(&c.entries_before, &c.entries_after) {
                        let line = format!("          {tag} {entry}");
                        let painted = match tag {
                            '+' => st.paint("32", &line),
                            '-' => st.paint("31", &line),
                            _ => line,
                        };
                        let _ = writeln!(out, "{painted}");
                    }
                }
                for f in &c.fields {
                    let before = f.before.as_deref().unwrap_or("(none)");
                    let after = f.after.as_deref().unwrap_or("(none)");
                    let _ = writeln!(out, "        {}: {} → {}", f.field, before, after);
                }
            }
        }
    }
    if !plan.conflicts.is_empty() {
        let _ = writeln!(out, "\n{}", st.paint("31", "Conflicts (not applied):"));
        for c in &plan.conflicts {
            let _ = writeln!(
                out,
                "  ! {} {}/{}: {}",
                c.kind, c.namespace, c.name, c.message
            );
        }
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings:");
        for w in &plan.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    if !shown.is_empty() || !plan.conflicts.is_empty() {
        let _ = writeln!(
            out,
            "\nPlan: {}{}",
            summary_line(plan),
            if plan.summary.conflicts > 0 {
                format!(" {} in conflict.", plan.summary.conflicts)
            } else {
                String::new()
            }
        );
    }
    out
}

/// The JSON view: the plan model, versioned by `formatVersion`.
pub fn json(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// The JSON Schema of the JSON view (`schemas/plan.schema.json`).
pub fn json_schema() -> String {
    let mut schema = schemars::schema_for!(Plan);
    schema.insert(
        "$id".into(),
        "https://regops.dev/schemas/plan.schema.json".into(),
    );
    let mut out = serde_json::to_string_pretty(&schema).unwrap_or_default();
    out.push('\n');
    out
}

/// A list's entries with `+`, `-` or ` ` for added, removed and kept, in order (Myers diff).
pub fn list_diff(before: &[String], after: &[String]) -> Vec<(char, String)> {
    let ops = similar::capture_diff_slices(similar::Algorithm::Myers, before, after);
    let mut out = Vec::new();
    for op in ops {
        for change in op.iter_changes(before, after) {
            let tag = match change.tag() {
                similar::ChangeTag::Insert => '+',
                similar::ChangeTag::Delete => '-',
                similar::ChangeTag::Equal => ' ',
            };
            out.push((tag, change.value().clone()));
        }
    }
    out
}

fn md_escape(s: &str) -> String {
    // `|` ends a table cell; `$` starts math on GitHub (Harbor robot names contain it).
    s.replace('|', "\\|").replace('$', "\\$").replace('\n', " ")
}

/// The Markdown view, for a pull-request comment.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### regops plan: `{}`\n", plan.spec);
    let _ = writeln!(out, "{}\n", md_escape(&headline(plan)));
    let shown: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Noop)
        .collect();
    if shown.is_empty() && plan.conflicts.is_empty() {
        let _ = writeln!(
            out,
            "**No changes.** The cluster matches the spec ({} objects checked).",
            plan.summary.noop
        );
        return out;
    }
    let _ = writeln!(
        out,
        "**Plan: {}**{}\n",
        summary_line(plan),
        if plan.summary.conflicts > 0 {
            format!(" **{} in conflict.**", plan.summary.conflicts)
        } else {
            String::new()
        }
    );
    if !shown.is_empty() {
        let _ = writeln!(
            out,
            "| action | kind | namespace | name | details |\n|---|---|---|---|---|"
        );
        for c in &shown {
            let mut details: Vec<String> = Vec::new();
            if !c.entries_before.is_empty() || !c.entries_after.is_empty() {
                let entries: Vec<String> = list_diff(&c.entries_before, &c.entries_after)
                    .into_iter()
                    .filter(|(t, _)| *t != ' ')
                    .map(|(t, e)| format!("{t}{e}"))
                    .collect();
                details.push(format!("`imagePullSecrets`: {}", entries.join(" ")));
            }
            details.extend(c.fields.iter().map(|f| {
                format!(
                    "`{}`: {} → {}",
                    f.field,
                    f.before.as_deref().unwrap_or("(none)"),
                    f.after.as_deref().unwrap_or("(none)")
                )
            }));
            let note = change_note(c);
            if !note.is_empty() {
                details.insert(
                    0,
                    note.trim()
                        .trim_start_matches('(')
                        .trim_end_matches(')')
                        .to_string(),
                );
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                verb(c.action),
                c.kind,
                c.namespace,
                c.name,
                md_escape(&details.join("<br>"))
            );
        }
    }
    if !plan.conflicts.is_empty() {
        let _ = writeln!(out, "\n#### Conflicts\n");
        for c in &plan.conflicts {
            let _ = writeln!(
                out,
                "- `{} {}/{}`: {}",
                c.kind,
                c.namespace,
                c.name,
                md_escape(&c.message)
            );
        }
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "\n#### Warnings\n");
        for w in &plan.warnings {
            let _ = writeln!(out, "- {}", md_escape(w));
        }
    }
    out
}
