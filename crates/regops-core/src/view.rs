//! The plan for people and programs: text like `terraform plan`, JSON (the model itself,
//! `schemas/plan.schema.json`), and Markdown for a pull-request comment. Pure functions of the
//! plan; nothing here sees a secret value.

use std::fmt::Write;

use crate::group::{self, Group};
use crate::plan::{Action, Change, Plan};
use regops_spec::kind::ObjectKind;
use regops_spec::untrusted::{self, Message};

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

/// What was planned against what: the spec's name (from the spec), the target (a context,
/// a server or a file path) and the commit (read from a saved plan) are data.
fn headline(plan: &Plan) -> Message {
    let mut h = Message::own("spec ")
        .code(&plan.spec)
        .and(" against ")
        .quote(&plan.target);
    if let Some(c) = &plan.source.commit {
        let short: String = c.chars().take(12).collect();
        h = h.and(", from commit ").quote(short);
        if plan.source.dirty {
            h = h.and(" with uncommitted changes");
        }
    }
    h
}

/// The commits the cluster was last applied from (read from annotations: data).
fn last_applied(plan: &Plan) -> Option<Message> {
    (!plan.last_applied_commits.is_empty()).then(|| {
        Message::own("The cluster was last applied from commit ")
            .quote_all(&plan.last_applied_commits, ", ")
            .and(".")
    })
}

pub(crate) fn summary_line(plan: &Plan) -> String {
    let s = &plan.summary;
    format!(
        "{} to create, {} to update, {} to replace, {} to patch, {} to delete.",
        s.create, s.update, s.replace, s.patch, s.delete
    )
}

/// How much of a large plan the text view lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Detail {
    /// Alike changes as one line per group, warnings by kind.
    #[default]
    Summary,
    /// Every change and every warning, one by one.
    Full,
}

/// Whether a change touches a workload's pod template.
fn template_changes(c: &Change) -> bool {
    !c.add.is_empty() || !c.remove.is_empty() || c.kubesphere_annotation.is_some()
}

/// The notes on a change or a group: its logins (creations, replacements), its reason, and
/// what a change to a pod template does, said of one object or of several.
fn notes(
    (action, kind): (Action, ObjectKind),
    logins: &[String],
    reason: Option<&Message>,
    template_changes: bool,
    several: bool,
) -> Vec<Message> {
    let mut out = Vec::new();
    if !logins.is_empty() && matches!(action, Action::Create | Action::Replace) {
        out.push(Message::default().quote_all(logins, ", "));
    }
    if let Some(r) = reason {
        out.push(r.clone());
    }
    if action == Action::Patch
        && template_changes
        && let Some((one, many)) = kind.workload().map(|w| w.facts().template_note)
    {
        out.push(Message::own(if several { many } else { one }));
    }
    out
}

fn change_notes(c: &Change) -> Vec<Message> {
    notes(
        (c.action, c.kind),
        &c.logins,
        c.reason.as_ref(),
        template_changes(c),
        false,
    )
}

fn group_notes(g: &Group) -> Vec<Message> {
    let touches_template = !g.add.is_empty() || !g.remove.is_empty() || !g.fields.is_empty();
    notes(
        (g.action, g.kind),
        &g.logins,
        g.reason.as_ref(),
        touches_template,
        true,
    )
}

/// Messages joined by regops' `sep`.
fn joined(messages: &[Message], sep: &'static str) -> Message {
    messages
        .iter()
        .enumerate()
        .fold(Message::default(), |m, (i, x)| {
            if i == 0 {
                m.then(x)
            } else {
                m.and(sep).then(x)
            }
        })
}

/// Notes as the text view writes them after an object: `  (a; b)`, or nothing.
fn in_parentheses(notes: &[Message]) -> String {
    if notes.is_empty() {
        String::new()
    } else {
        format!("  ({})", joined(notes, "; ").terminal())
    }
}

/// What a group does to each member, in a few words: `imagePullSecrets +pull -old`, and the
/// other fields it changes.
fn group_effect(g: &Group) -> Message {
    let mut m = Message::default();
    if !g.add.is_empty() || !g.remove.is_empty() {
        m = m.and("imagePullSecrets");
        for a in &g.add {
            m = m.and(" +").quote(a);
        }
        for r in &g.remove {
            m = m.and(" -").quote(r);
        }
    }
    for (i, f) in g.fields.iter().enumerate() {
        if i > 0 || !m.is_empty() {
            m = m.and("; ");
        }
        m = m.quote(f);
    }
    m
}

/// Data items joined for a list, as a message (`a, b, c`).
fn list(items: &[&str]) -> Message {
    Message::default().quote_all(items, ", ")
}

fn warning_lines(plan: &Plan, detail: Detail) -> Vec<Message> {
    match detail {
        Detail::Full => plan.warnings.iter().map(|w| w.message.clone()).collect(),
        // A kind with few warnings is listed one by one: each says more than the count would.
        Detail::Summary => plan
            .warning_groups
            .iter()
            .flat_map(|g| {
                if g.count < group::GROUP_MIN {
                    plan.warnings
                        .iter()
                        .filter(|w| w.kind == g.kind)
                        .map(|w| w.message.clone())
                        .collect()
                } else {
                    let subjects: Vec<&str> = plan
                        .warnings
                        .iter()
                        .filter(|w| w.kind == g.kind)
                        .take(3)
                        .map(|w| w.subject.as_str())
                        .collect();
                    let rest = g.count - subjects.len();
                    let line = g.message.clone().and(": ").then(&list(&subjects));
                    vec![if rest == 0 {
                        line
                    } else {
                        line.and(format!(", … and {rest} more"))
                    }]
                }
            })
            .collect(),
    }
}

fn write_change(out: &mut String, st: &Style, c: &Change) {
    let (sym, code) = symbol(c.action);
    let _ = writeln!(
        out,
        "  {} {} {}{}",
        st.paint(code, &format!("{sym:>3}")),
        c.kind,
        untrusted::terminal(&c.name),
        in_parentheses(&change_notes(c))
    );
    if !c.entries_before.is_empty() || !c.entries_after.is_empty() {
        let _ = writeln!(out, "        imagePullSecrets:");
        for (tag, entry) in list_diff(&c.entries_before, &c.entries_after) {
            let line = format!("          {tag} {}", untrusted::terminal(&entry));
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
        let _ = writeln!(
            out,
            "        {}: {} → {}",
            untrusted::terminal(&f.field),
            untrusted::terminal(before),
            untrusted::terminal(after)
        );
    }
}

/// The changes, for the text view: each group on one line, then the rest one block per
/// namespace, each in the plan's (apply) order.
fn write_changes(out: &mut String, st: &Style, plan: &Plan, groups: &[Group], in_group: &[bool]) {
    if !groups.is_empty() {
        let _ = writeln!(out, "\nin many namespaces");
        for g in groups {
            let (sym, code) = symbol(g.action);
            let effect = group_effect(g);
            let _ = writeln!(
                out,
                "  {} {} in {}{}{}",
                st.paint(code, &format!("{sym:>3}")),
                g.what().terminal(),
                g.where_().terminal(),
                if effect.is_empty() {
                    String::new()
                } else {
                    format!(": {}", effect.terminal())
                },
                in_parentheses(&group_notes(g))
            );
        }
    }
    // The other changes, one block per namespace, each keeping the plan's (apply) order.
    let mut by_namespace: std::collections::BTreeMap<&str, Vec<&Change>> =
        std::collections::BTreeMap::new();
    for (c, _) in plan
        .changes
        .iter()
        .zip(in_group)
        .filter(|(c, grouped)| c.action != Action::Noop && !**grouped)
    {
        by_namespace
            .entry(c.namespace.as_str())
            .or_default()
            .push(c);
    }
    for (ns, changes) in by_namespace {
        let _ = writeln!(out, "\nnamespace {}", untrusted::terminal(ns));
        for c in changes {
            write_change(out, st, c);
        }
    }
    if !groups.is_empty() {
        let _ = writeln!(
            out,
            "\n{} changes are shown in groups; `--detail full` lists each.",
            in_group.iter().filter(|g| **g).count()
        );
    }
}

/// The human view. With [`Detail::Summary`], alike changes in many namespaces are one line
/// each (the rest one by one, by namespace) and warnings are counted by kind.
pub fn text(plan: &Plan, color: bool, detail: Detail) -> String {
    let st = Style { color };
    let mut out = String::new();
    let _ = writeln!(out, "regops plan: {}", headline(plan).terminal());
    if let Some(last) = last_applied(plan) {
        let _ = writeln!(out, "{}", last.terminal());
    }
    let any = plan.changes.iter().any(|c| c.action != Action::Noop);
    let groups: &[Group] = match detail {
        Detail::Summary => &plan.groups,
        Detail::Full => &[],
    };
    let in_group = group::grouped(groups, plan.changes.len());
    if !any && plan.conflicts.is_empty() {
        let _ = writeln!(
            out,
            "\nNo changes. The cluster matches the spec ({} object{} checked).",
            plan.summary.noop,
            if plan.summary.noop == 1 { "" } else { "s" }
        );
    } else if any {
        let mut used: Vec<Action> = plan
            .changes
            .iter()
            .map(|c| c.action)
            .filter(|a| *a != Action::Noop)
            .collect();
        used.sort();
        used.dedup();
        let legend: Vec<String> = used
            .iter()
            .map(|a| format!("{} {}", st.paint(symbol(*a).1, symbol(*a).0), verb(*a)))
            .collect();
        let _ = writeln!(out, "\nSymbols: {}", legend.join("   "));
        write_changes(&mut out, &st, plan, groups, &in_group);
    }
    if !plan.conflicts.is_empty() {
        let _ = writeln!(out, "\n{}", st.paint("31", "Conflicts (not applied):"));
        for c in &plan.conflicts {
            let _ = writeln!(
                out,
                "  ! {} {}/{}: {}",
                c.kind,
                untrusted::terminal(&c.namespace),
                untrusted::terminal(&c.name),
                c.message.terminal()
            );
        }
    }
    let warnings = warning_lines(plan, detail);
    if !warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings:");
        for w in &warnings {
            let _ = writeln!(out, "  - {}", w.terminal());
        }
    }
    if any || !plan.conflicts.is_empty() {
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

/// The JSON view, written as it is produced (no copy of the whole text is kept).
pub fn write_json(plan: &Plan, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, plan)?;
    w.write_all(b"\n")
}

/// The JSON view: the plan model, versioned by `formatVersion`.
pub fn json(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// The JSON Schema of the JSON view (`schemas/plan.schema.json`).
pub fn json_schema() -> String {
    let mut schema = serialize_schema::<Plan>();
    schema.insert(
        "$id".into(),
        "https://regops.dev/schemas/plan.schema.json".into(),
    );
    let mut out = serde_json::to_string_pretty(&schema).unwrap_or_default();
    out.push('\n');
    out
}

/// The schema of what `T` serialises to: fields left out when empty are not required.
pub(crate) fn serialize_schema<T: schemars::JsonSchema>() -> schemars::Schema {
    schemars::generate::SchemaSettings::default()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>()
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

/// GitHub's limit on a comment is 65,536 characters; the default budget leaves room for what
/// a CI step adds around the plan.
pub const MARKDOWN_BUDGET: usize = 60_000;

// In Markdown every string from outside is a code span (`untrusted::code`, and
// `untrusted::cell` in a table), and regops' own words stand around them: see
// `regops_spec::untrusted`. The `<details>` blocks are HTML, where Markdown is not read until
// the blank line after them, so what stands in them is regops' own words only.

/// A value of a field change in a table cell: the value as a code span, or `(none)`.
fn md_value(v: Option<&str>) -> String {
    v.map_or_else(|| "(none)".to_string(), untrusted::cell)
}

/// One change's details cell.
fn md_details(c: &Change) -> String {
    let mut details: Vec<String> = change_notes(c).iter().map(Message::markdown_cell).collect();
    if !c.entries_before.is_empty() || !c.entries_after.is_empty() {
        let entries: Vec<String> = list_diff(&c.entries_before, &c.entries_after)
            .into_iter()
            .filter(|(t, _)| *t != ' ')
            .map(|(t, e)| format!("{t}{}", untrusted::cell(&e)))
            .collect();
        details.push(format!("`imagePullSecrets`: {}", entries.join(" ")));
    }
    details.extend(c.fields.iter().map(|f| {
        format!(
            "{}: {} → {}",
            untrusted::cell(&f.field),
            md_value(f.before.as_deref()),
            md_value(f.after.as_deref())
        )
    }));
    details.join("<br>")
}

fn md_change_row(c: &Change) -> String {
    format!(
        "| {} | {} | {} | {} | {} |\n",
        verb(c.action),
        c.kind,
        untrusted::cell(&c.namespace),
        untrusted::cell(&c.name),
        md_details(c)
    )
}

fn md_group_row(g: &Group) -> String {
    let mut details = group_notes(g);
    details.push(group_effect(g));
    details.retain(|d| !d.is_empty());
    format!(
        "| {} | {} | {} | {} | {} |\n",
        verb(g.action),
        if g.name.is_some() {
            g.kind.to_string()
        } else {
            format!("{} × {}", g.count, g.kind)
        },
        g.where_().markdown_cell(),
        g.name
            .as_deref()
            .map_or_else(|| "(various)".to_string(), untrusted::cell),
        joined(&details, "; ").markdown_cell()
    )
}

/// A group's members, folded, within about `allowance` bytes: past it, "… and N more"; and
/// whether the list was cut.
fn md_group_details(plan: &Plan, g: &Group, allowance: usize) -> (String, bool) {
    let mut out = format!(
        "<details><summary>{} {} × {} in {}</summary>\n\n",
        verb(g.action),
        g.count,
        g.kind,
        crate::report::plural(g.namespaces, "namespace", "namespaces"),
    );
    const END: &str = "\n</details>\n";
    let mut cut = false;
    for (n, &i) in g.members.iter().enumerate() {
        let Some(c) = plan.changes.get(i) else {
            continue;
        };
        let line = format!(
            "- {}\n",
            untrusted::code(&format!("{}/{}", c.namespace, c.name))
        );
        let more = format!("- … and {} more\n", g.members.len() - n);
        if out.len() + line.len() + more.len() + END.len() > allowance {
            out.push_str(&more);
            cut = true;
            break;
        }
        out.push_str(&line);
    }
    out.push_str(END);
    (out, cut)
}

/// Adds `items` to `out` in order while the total stays within `budget`, keeping room for
/// one "… N more" line; returns how many were left out.
fn fill(
    out: &mut String,
    items: &[String],
    budget: usize,
    more: impl Fn(usize) -> String,
) -> usize {
    for (i, item) in items.iter().enumerate() {
        let left = items.len() - i - 1;
        let reserve = if left > 0 { more(left).len() } else { 0 };
        if out.len() + item.len() + reserve > budget {
            let skipped = items.len() - i;
            out.push_str(&more(skipped));
            return skipped;
        }
        out.push_str(item);
    }
    0
}

/// The Markdown view, for a pull-request comment, within `max_bytes` where it can be.
///
/// What always stays: the headline and summary, every conflict and every deletion. The rest
/// goes in by importance while it fits, each part cut short with a "… N more" line: the other
/// changes (groups first), then the warnings, then each group's members in full. A plan whose
/// conflicts and deletions alone exceed the budget is shown whole.
// Kept whole (over 80 lines): the comment's parts in the order they are filled into the budget;
// the order is the point.
pub fn markdown(plan: &Plan, max_bytes: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### regops plan: {}\n", untrusted::code(&plan.spec));
    let _ = writeln!(out, "{}\n", headline(plan).markdown());
    let any = plan.changes.iter().any(|c| c.action != Action::Noop);
    if !any && plan.conflicts.is_empty() {
        let _ = writeln!(
            out,
            "**No changes.** The cluster matches the spec ({} objects checked).",
            plan.summary.noop
        );
        // Nothing to change is not nothing to say: a `-n` that selected nothing, a credential
        // about to expire.
        let warnings = warning_lines(plan, Detail::Summary);
        if !warnings.is_empty() {
            let _ = writeln!(out, "\n#### Warnings\n");
            for w in &warnings {
                let _ = writeln!(out, "- {}", w.markdown());
            }
        }
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
    let in_group = group::grouped(&plan.groups, plan.changes.len());
    // What always stays.
    let mut kept = String::new();
    if !plan.conflicts.is_empty() {
        let _ = writeln!(kept, "#### Conflicts\n");
        for c in &plan.conflicts {
            let _ = writeln!(
                kept,
                "- {} {}: {}",
                c.kind,
                untrusted::code(&format!("{}/{}", c.namespace, c.name)),
                c.message.markdown()
            );
        }
        kept.push('\n');
    }
    let deletions: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .collect();
    if !deletions.is_empty() {
        let _ = writeln!(
            kept,
            "#### Deletions (with `--prune`)\n\n| action | kind | namespace | name | details |\n|---|---|---|---|---|"
        );
        for c in &deletions {
            kept.push_str(&md_change_row(c));
        }
        kept.push('\n');
    }
    // The rest, most important first.
    let rows: Vec<String> = plan
        .groups
        .iter()
        .map(md_group_row)
        .chain(
            plan.changes
                .iter()
                .zip(&in_group)
                .filter(|(c, g)| !**g && !matches!(c.action, Action::Noop | Action::Delete))
                .map(|(c, _)| md_change_row(c)),
        )
        .collect();
    let warnings: Vec<String> = warning_lines(plan, Detail::Summary)
        .iter()
        .map(|w| format!("- {}\n", w.markdown()))
        .collect();
    // Each group's list gets an equal share of what the budget leaves (measured below).
    let details_for = |room: usize| -> (Vec<String>, usize) {
        let share = room / plan.groups.len().max(1);
        let mut cut = 0;
        let details = plan
            .groups
            .iter()
            .map(|g| {
                let (d, was_cut) = md_group_details(plan, g, share);
                cut += usize::from(was_cut);
                d
            })
            .collect();
        (details, cut)
    };
    const POINTER: &str =
        "\n_Cut to fit a comment: the JSON plan (`regops plan --output json`) lists everything._\n";
    let mut body = String::new();
    let budget = max_bytes.saturating_sub(out.len() + kept.len() + POINTER.len());
    let mut cut = 0;
    // Each part ends with a blank line (one byte more than what `fill` counts).
    if !rows.is_empty() {
        body.push_str("| action | kind | namespace | name | details |\n|---|---|---|---|---|\n");
        cut += fill(&mut body, &rows, budget.saturating_sub(1), |n| {
            format!(
                "| … | | | | {n} more change{} |\n",
                if n == 1 { "" } else { "s" }
            )
        });
        body.push('\n');
    }
    const WARNINGS: &str = "#### Warnings\n\n";
    if !warnings.is_empty() && body.len() + WARNINGS.len() + 64 < budget {
        body.push_str(WARNINGS);
        cut += fill(&mut body, &warnings, budget.saturating_sub(1), |n| {
            format!("- … {n} more warning{}\n", if n == 1 { "" } else { "s" })
        });
        body.push('\n');
    } else {
        cut += warnings.len();
    }
    if !plan.groups.is_empty() {
        let mut folded = String::from("#### Groups in full\n\n");
        let room = budget.saturating_sub(body.len() + 1);
        let (details, lists_cut) = details_for(room.saturating_sub(folded.len() + 32));
        let skipped = fill(&mut folded, &details, room, |n| {
            format!("… {n} more group{}\n", if n == 1 { "" } else { "s" })
        });
        if skipped < details.len() && folded.len() <= room {
            body.push_str(&folded);
            body.push('\n');
        }
        // Lists cut short count as cut.
        cut += skipped + lists_cut;
    }
    out.push_str(&body);
    out.push_str(&kept);
    if cut > 0 {
        out.push_str(POINTER);
    }
    out
}

/// `regops plan` (and `show`): the plan in each of its three views.
pub struct PlanView<'a>(pub &'a Plan);

impl crate::format::View for PlanView<'_> {
    const FORMATS: &'static [(crate::format::Format, &'static str)] = &[
        (
            crate::format::Format::Text,
            "For people, like terraform plan",
        ),
        (
            crate::format::Format::Json,
            "For programs: the versioned plan model (schemas/plan.schema.json)",
        ),
        (
            crate::format::Format::Markdown,
            "For a pull-request comment",
        ),
    ];

    fn write(
        &self,
        format: crate::format::Format,
        style: &crate::format::Style,
        w: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        use crate::format::Format;
        match format {
            Format::Text => w.write_all(text(self.0, style.color, style.detail).as_bytes()),
            // Streamed: at 10,000 namespaces the JSON plan is tens of megabytes.
            Format::Json => write_json(self.0, w),
            Format::Markdown => w.write_all(markdown(self.0, style.max_bytes).as_bytes()),
        }
    }
}
