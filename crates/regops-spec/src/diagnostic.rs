//! Diagnostics as data (code, severity, message, labelled locations, help), rendered at the
//! edge with miette. Nothing here ever formats a credential: messages quote names and
//! structure, never secret values.

use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

use crate::node::Loc;
use crate::source::Sources;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub loc: Loc,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable identifier, such as `spec::unknown-field`.
    pub code: &'static str,
    pub message: String,
    /// The first label is the primary location.
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: cut_quotes(message.into()),
            labels: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn with_label(mut self, loc: Loc, text: impl Into<String>) -> Self {
        self.labels.push(Label {
            loc,
            text: cut_quotes(text.into()),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(cut_quotes(help.into()));
        self
    }

    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        if let Some(h) = help {
            self.help = Some(cut_quotes(h));
        }
        self
    }

    pub fn primary(&self) -> Option<Loc> {
        self.labels.first().map(|l| l.loc)
    }
}

/// The longest a value quoted in a message (between backticks) is shown.
pub const MAX_QUOTED: usize = 80;

/// `text` with every backtick-quoted value longer than [`MAX_QUOTED`] bytes cut, marked with
/// `…`: a 5 MB name in a spec is named, not echoed.
fn cut_quotes(text: String) -> String {
    if text.len() <= MAX_QUOTED {
        return text;
    }
    let mut out = String::with_capacity(text.len().min(4 * MAX_QUOTED));
    let mut inside = false;
    for (i, part) in text.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        if inside && part.len() > MAX_QUOTED {
            out.push_str(&part[..floor_char(part, MAX_QUOTED)]);
            out.push('…');
        } else {
            out.push_str(part);
        }
        inside = !inside;
    }
    // Text outside quotes is regops' own; a message still this long has quoted something
    // without backticks: cut it whole.
    if out.len() > 16 * MAX_QUOTED {
        out.truncate(floor_char(&out, 16 * MAX_QUOTED));
        out.push('…');
    }
    out
}

/// How many diagnostics are drawn; past it, a line says how many more there are (errors
/// first: a spec with 50,000 problems is read in time linear in its size and shown in a
/// screenful).
pub const MAX_SHOWN: usize = 50;

/// How many diagnostics of each severity are kept; past it they are only counted (a 16 MiB
/// spec can hold a million mistakes, and each kept one costs memory and time to sort).
pub const MAX_KEPT: usize = 1_000;

/// An ordered collection of diagnostics: the first [`MAX_KEPT`] of each severity, and a count
/// of the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    kept: [usize; 2],
    /// Not kept, by severity (errors, warnings).
    dropped: [usize; 2],
}

fn slot(s: Severity) -> usize {
    match s {
        Severity::Error => 0,
        Severity::Warning => 1,
    }
}

impl FromIterator<Diagnostic> for Diagnostics {
    fn from_iter<I: IntoIterator<Item = Diagnostic>>(iter: I) -> Self {
        let mut d = Diagnostics::default();
        for x in iter {
            d.push(x);
        }
        d
    }
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        let i = slot(d.severity);
        if self.kept[i] < MAX_KEPT {
            self.kept[i] += 1;
            self.items.push(d);
        } else {
            self.dropped[i] += 1;
        }
    }

    pub fn extend(&mut self, other: Diagnostics) {
        for d in other.items {
            self.push(d);
        }
        self.dropped[0] += other.dropped[0];
        self.dropped[1] += other.dropped[1];
    }

    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    /// Errors found, kept or not.
    pub fn error_count(&self) -> usize {
        self.kept[0] + self.dropped[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Diagnostics found, kept or not.
    pub fn len(&self) -> usize {
        self.items.len() + self.dropped[0] + self.dropped[1]
    }

    /// The kept diagnostics.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// Sorts by file and position, so output is stable and reads top to bottom.
    pub fn sort(&mut self) {
        self.items.sort_by_key(|d| {
            d.primary()
                .map(|l| (l.file, l.start, l.end))
                .unwrap_or((usize::MAX, 0, 0))
        });
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    /// The kept diagnostics.
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// How diagnostics are drawn.
#[derive(Clone, Copy, Debug)]
pub struct RenderOptions {
    pub color: bool,
    pub width: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            color: false,
            width: 100,
        }
    }
}

/// Renders diagnostics the way compilers do: message, `file:line:col`, the source with the
/// offending text underlined, and the help line.
pub fn render(diags: &Diagnostics, sources: &Sources, opts: RenderOptions) -> String {
    let theme = if opts.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(opts.width)
        .with_links(false);
    let mut out = String::new();
    // Errors first, then warnings, up to MAX_SHOWN; drawn in the order of the file.
    let items = &diags.items;
    let mut shown: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].severity == Severity::Error)
        .chain((0..items.len()).filter(|&i| items[i].severity != Severity::Error))
        .take(MAX_SHOWN)
        .collect();
    shown.sort_unstable();
    // Each file's masked text, and whether it has lines to cut, are made once, not once per
    // diagnostic (each is a pass over the whole file).
    let mut texts: std::collections::HashMap<usize, (Arc<str>, bool)> =
        std::collections::HashMap::new();
    for &i in &shown {
        let d = &items[i];
        let text = d.primary().map(|l| {
            texts
                .entry(l.file)
                .or_insert_with(|| {
                    let text = sources.display_text(l.file);
                    let long = text.split('\n').any(|line| line.len() > MAX_SHOWN_LINE);
                    // A file shown whole is escaped here, once (a control character in it is
                    // shown as `?`, in place); one with long lines is cut around each
                    // diagnostic's labels first, and the cut excerpt escaped then.
                    let text = if long {
                        text
                    } else {
                        match crate::untrusted::same_offsets(&text) {
                            std::borrow::Cow::Owned(o) => Arc::from(o),
                            std::borrow::Cow::Borrowed(_) => text,
                        }
                    };
                    (text, long)
                })
                .clone()
        });
        let adapter = MietteAdapter::new(d, sources, text);
        if handler.render_report(&mut out, &adapter).is_err() {
            // Rendering into a String cannot fail; fall back to the plain message regardless.
            out.push_str(&d.message);
            out.push('\n');
        }
    }
    let hidden = diags.len() - shown.len();
    if hidden > 0 {
        let errors = diags.error_count();
        let warnings = diags.len() - errors;
        out.push_str(&format!(
            "… and {hidden} more not shown ({errors} error{} and {warnings} warning{} in all); fix these and run again\n",
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" },
        ));
    }
    out
}

/// Lines longer than this (in bytes) are cut in diagnostics.
const MAX_SHOWN_LINE: usize = 160;
/// How much of a long line is shown before a label.
const SHOWN_BEFORE: usize = 40;

/// Where each kept piece of a line went: `(old start, old end, new start)`.
struct OffsetMap(Vec<(usize, usize, usize)>);

impl OffsetMap {
    /// The new offset of an old one; offsets in cut text go to the nearest kept edge.
    fn map(&self, old: usize) -> usize {
        let i = self.0.partition_point(|(start, _, _)| *start <= old);
        match i.checked_sub(1).map(|i| self.0[i]) {
            Some((start, end, new)) => new + old.min(end) - start,
            None => 0,
        }
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `text` with every line longer than [`MAX_SHOWN_LINE`] cut to a window (around the first of
/// `points` on it, or its start), marked with `…`; line count unchanged, so line numbers
/// hold. `None` when no line is that long.
fn shorten_long_lines(text: &str, points: &[usize]) -> Option<(String, OffsetMap)> {
    if !text.split('\n').any(|l| l.len() > MAX_SHOWN_LINE) {
        return None;
    }
    let mut out = String::with_capacity(text.len().min(1 << 20));
    let mut map = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let body = line.strip_suffix('\n').unwrap_or(line);
        if body.len() <= MAX_SHOWN_LINE {
            map.push((offset, offset + line.len(), out.len()));
            out.push_str(line);
        } else {
            let end_of_line = offset + body.len();
            let at = points
                .iter()
                .copied()
                .filter(|p| (offset..=end_of_line).contains(p))
                .min()
                .map_or(0, |p| p - offset);
            let from = floor_char(body, at.saturating_sub(SHOWN_BEFORE));
            let to = floor_char(body, from + MAX_SHOWN_LINE);
            if from > 0 {
                out.push('…');
            }
            map.push((offset + from, offset + to, out.len()));
            out.push_str(&body[from..to]);
            if to < body.len() {
                out.push('…');
            }
            if line.len() > body.len() {
                map.push((end_of_line, end_of_line + 1, out.len()));
                out.push('\n');
            }
        }
        offset += line.len();
    }
    Some((out, OffsetMap(map)))
}

struct MietteAdapter {
    message: String,
    code: &'static str,
    severity: miette::Severity,
    help: Option<String>,
    source: Option<NamedSource<Arc<str>>>,
    labels: Vec<LabeledSpan>,
}

impl MietteAdapter {
    /// `display` is the primary file's text and whether it has lines to cut; a file without
    /// them comes escaped ([`crate::untrusted::same_offsets`]).
    fn new(d: &Diagnostic, sources: &Sources, display: Option<(Arc<str>, bool)>) -> Self {
        let primary_file = d.primary().map(|l| l.file);
        let mut help = d.help.clone();
        let mut labels = Vec::new();
        for (i, label) in d.labels.iter().enumerate() {
            if Some(label.loc.file) == primary_file {
                let span = SourceSpan::new(label.loc.start.into(), label.loc.end - label.loc.start);
                let text = (!label.text.is_empty())
                    .then(|| crate::untrusted::terminal(&label.text).into_owned());
                labels.push(if i == 0 {
                    LabeledSpan::new_primary_with_span(text, span)
                } else {
                    LabeledSpan::new_with_span(text, span)
                });
            } else {
                // miette draws one file per report: point at other files by position.
                let extra = format!("{}: {}", sources.position(label.loc), label.text);
                help = Some(match help {
                    Some(h) => format!("{h}\n{extra}"),
                    None => extra,
                });
            }
        }
        // Long lines (minified JSON, a pasted blob, a hostile 200,000-character line) are cut
        // around the labels, so a diagnostic shows the place, not the whole line.
        let mut source = None;
        if let (Some(file), Some((text, long))) =
            (primary_file.and_then(|f| sources.get(f)), display)
        {
            let points: Vec<usize> = labels.iter().map(|l| l.offset()).collect();
            if let Some((short, map)) = long.then(|| shorten_long_lines(&text, &points)).flatten() {
                labels = labels
                    .into_iter()
                    .map(|l| {
                        let start = map.map(l.offset());
                        let end = map.map(l.offset() + l.len()).max(start);
                        let span = SourceSpan::new(start.into(), end - start);
                        let text = l.label().map(str::to_string);
                        if l.primary() {
                            LabeledSpan::new_primary_with_span(text, span)
                        } else {
                            LabeledSpan::new_with_span(text, span)
                        }
                    })
                    .collect();
                source = Some(NamedSource::new(
                    crate::untrusted::terminal(&file.name),
                    Arc::from(crate::untrusted::same_offsets(&short)),
                ));
                // The excerpt's columns are the cut line's: say where the place really is.
                if let Some(primary) = d.primary() {
                    let real = format!(
                        "shown cut from a long line; the place is at {}",
                        sources.position(primary)
                    );
                    help = Some(match help {
                        Some(h) => format!("{h}\n{real}"),
                        None => real,
                    });
                }
            } else {
                // Escaped already, once per file, by `render`.
                source = Some(NamedSource::new(
                    crate::untrusted::terminal(&file.name),
                    text,
                ));
            }
        }
        // What a diagnostic says quotes the spec, a file or a cluster: data, escaped. A spec's
        // diagnostic (it has a code) is one line, so a line break in it is the spec's and is
        // escaped too; a command's failure (no code) may list things on lines of its own, and
        // escapes what it quotes where it is made (`Failure::msg`).
        let message = if d.code.is_empty() {
            crate::untrusted::lines(&d.message)
        } else {
            crate::untrusted::terminal(&d.message)
        };
        MietteAdapter {
            message: message.into_owned(),
            code: d.code,
            severity: match d.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            },
            help: help.map(|h| crate::untrusted::lines(&h).into_owned()),
            source,
            labels,
        }
    }
}

impl fmt::Debug for MietteAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for MietteAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MietteAdapter {}

impl miette::Diagnostic for MietteAdapter {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        (!self.code.is_empty()).then(|| Box::new(self.code) as Box<dyn fmt::Display>)
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
}

/// The closest candidate by edit distance, for "did you mean" hints.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // A hostile 5 MB name is no typo of a short one (and would cost its length times each
    // candidate's to compare).
    if wrong.len() > 4 * MAX_QUOTED {
        return None;
    }
    let limit = (wrong.chars().count() / 3).max(1) + 1;
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(wrong, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_around_the_place_keeping_line_numbers() {
        let long = format!("key: {}bad{}", "é".repeat(100_000), "x".repeat(100_000));
        let text = format!("first: 1\n{long}\nlast: 2\n");
        let at = text.find("bad").unwrap_or_default();
        let Some((short, map)) = shorten_long_lines(&text, &[at]) else {
            panic!("a 300 KB line was not cut");
        };
        assert!(short.len() < 1_000, "{} bytes shown", short.len());
        assert_eq!(short.lines().count(), 3, "line numbers hold");
        assert!(short.starts_with("first: 1\n…") && short.ends_with("…\nlast: 2\n"));
        let mapped = map.map(at);
        assert_eq!(&short[mapped..mapped + 3], "bad");
        // Offsets on short lines move only by what was cut before them.
        let last = text.find("last").unwrap_or_default();
        assert_eq!(&short[map.map(last)..map.map(last) + 4], "last");
        assert!(shorten_long_lines("a: 1\nb: 2\n", &[0]).is_none());
    }

    #[test]
    fn past_the_kept_number_diagnostics_are_counted_not_kept() {
        let mut d = Diagnostics::default();
        for i in 0..MAX_KEPT + 10 {
            d.push(Diagnostic::error("x", format!("error {i}")));
        }
        d.push(Diagnostic::warning("w", "a warning"));
        assert_eq!(
            d.iter().count(),
            MAX_KEPT + 1,
            "kept: each severity its own"
        );
        assert_eq!((d.len(), d.error_count()), (MAX_KEPT + 11, MAX_KEPT + 10));
        let mut other = Diagnostics::default();
        other.push(Diagnostic::error("y", "one more"));
        d.extend(other);
        assert_eq!(d.error_count(), MAX_KEPT + 11);
        let shown = render(&d, &Sources::default(), RenderOptions::default());
        assert!(
            shown.contains(&format!(
                "… and {} more not shown ({} errors and 1 warning in all)",
                MAX_KEPT + 12 - MAX_SHOWN,
                MAX_KEPT + 11
            )),
            "{}",
            &shown[shown.len().saturating_sub(200)..]
        );
    }

    #[test]
    fn quoted_values_are_cut() {
        let long = "a".repeat(500);
        let d = Diagnostic::error("x", format!("name `{long}` is wrong"));
        assert!(d.message.len() < 120, "{}", d.message);
        assert!(d.message.ends_with("…` is wrong"), "{}", d.message);
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("harbr", ["harbor", "dockerhub"]),
            Some("harbor")
        );
        assert_eq!(did_you_mean("quay", ["harbor", "dockerhub"]), None);
        assert_eq!(
            did_you_mean("servr", ["server", "credential", "insecure"]),
            Some("server")
        );
    }
}
