//! Text from outside is data: the one rule for showing it.
//!
//! Whatever comes from a cluster, a registry, a cloud, a credential helper, a spec or a saved
//! plan is data, never markup and never control. Every view that shows such a string goes
//! through this module, and through nothing else:
//!
//! - **On a terminal or in a log** ([`terminal`]): C0 and C1 control characters (the newline
//!   included: a newline regops did not write could forge a line of its own), DEL, and the
//!   Unicode bidirectional and invisible format characters are shown escaped, visibly
//!   (`\x1b`, `\n`, `\u{202e}`), as GNU `ls` and git show file names and as kubectl shows
//!   object names since CVE-2021-25743. Colour and hyperlinks only ever come from regops.
//! - **In Markdown** ([`code`], [`cell`]): an inline code span, the one construct in which `<`,
//!   `@`, `[`, `*`, `#` and `!` lose their meaning (CommonMark, "Code spans"); its backtick
//!   fence is longer than any backtick run inside, the characters above are escaped as on a
//!   terminal (so a newline is `\n`), and inside a GFM table cell `|` is `\|` (GitHub splits a
//!   row on `|` before it reads code spans). No HTML, comment, link, image, mention, emphasis,
//!   heading or table break can be formed from data.
//! - **In JSON** nothing changes: the serializer escapes what JSON needs and a program gets
//!   the string back byte for byte.
//!
//! A [`Message`] is prose regops writes about such data (a warning, a reason, a conflict): its
//! own words and the data they quote are kept apart, so that each view can show the words as
//! they are and the data by the rule above.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` is shown escaped: a C0 or C1 control, DEL, or a character that changes how
/// text around it reads without showing itself (bidirectional controls, zero-width and other
/// invisible format characters, line and paragraph separators, tag characters).
pub fn is_hidden(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{ad}'              // soft hyphen
            | '\u{34f}'             // combining grapheme joiner
            | '\u{600}'..='\u{605}' // Arabic number signs (prepended format characters)
            | '\u{61c}'             // Arabic letter mark
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{8e2}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}' // zero-width space, joiners, LRM, RLM
            | '\u{2028}'..='\u{202e}' // line/paragraph separators, LRE RLE PDF LRO RLO
            | '\u{2060}'..='\u{206f}' // word joiner, invisible operators, LRI RLI FSI PDI
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}' // variation selectors
            | '\u{feff}'            // zero-width no-break space (BOM)
            | '\u{ffa0}'
            | '\u{fff9}'..='\u{fffb}' // interlinear annotation
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}' // Egyptian hieroglyph format controls
            | '\u{1bca0}'..='\u{1bca3}' // shorthand format controls
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e007f}' // tag characters
            | '\u{e0100}'..='\u{e01ef}'
    )
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{0}'..='\u{1f}' | '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        _ => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// `s` as it may be written to a terminal or a log line: every [`is_hidden`] character
/// escaped, the rest as it is. Borrowed when there is nothing to escape (the usual case).
pub fn terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_hidden(c) {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text of several lines whose line breaks are regops' own (a diagnostic's help), with the
/// data in each line escaped as [`terminal`] does.
pub fn lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_hidden(c)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.split('\n')
            .map(|l| terminal(l).into_owned())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// A file's text to be shown as an excerpt whose positions are byte offsets into the original
/// (a spec under a diagnostic): each hidden character other than a newline becomes as many `?`
/// as it has bytes (a tab, a space), so that every offset still points where it did.
pub fn same_offsets(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_hidden(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => out.push('\n'),
            // A file's own line ends (CRLF) stay as they are; a lone CR is escaped.
            '\r' if chars.peek() == Some(&'\n') => out.push('\r'),
            '\t' => out.push(' '),
            c if is_hidden(c) => {
                for _ in 0..c.len_utf8() {
                    out.push('?');
                }
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `s` as a Markdown inline code span, anywhere but in a table cell (there, [`cell`]).
pub fn code(s: &str) -> String {
    span(&terminal(s))
}

/// `s` as a Markdown inline code span inside a GFM table cell: as [`code`], with every `|`
/// escaped as `\|`. GitHub (cmark-gfm) splits a row on a `|` that a backslash does not
/// escape, before it parses code spans, and turns every `\|` back into `|` inside the cell (a
/// backslash before it included: data `a\|b` is written `a\\|b` and shown as it is).
pub fn cell(s: &str) -> String {
    span(&terminal(s).replace('|', "\\|"))
}

/// `s` as a YAML double-quoted scalar (the spec `import` writes, the manifests `render`
/// writes): JSON's escapes, which YAML reads the same, and every [`is_hidden`] character
/// escaped too (`\u202e`, `\x85`), so that a YAML reader sees the string and nothing else, and
/// so does a person reading the file on a terminal.
pub fn yaml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_hidden(c) && (c as u32) <= 0xff => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_hidden(c) && (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if is_hidden(c) => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A code span around text that holds no newline: a fence one backtick longer than the
/// longest run inside, and a space either side where the text starts or ends with a backtick
/// or a space (which CommonMark would otherwise take as part of the fence, or strip).
fn span(inner: &str) -> String {
    if inner.is_empty() || inner.chars().all(|c| c == ' ') {
        // An empty span does not exist in CommonMark; spaces only are kept as they are.
        return format!("`{}`", if inner.is_empty() { " " } else { inner });
    }
    let mut longest = 0;
    let mut run = 0;
    for c in inner.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = inner.starts_with(['`', ' ']) || inner.ends_with(['`', ' ']);
    let sp = if pad { " " } else { "" };
    format!("{fence}{sp}{inner}{sp}{fence}")
}

/// One part of a [`Message`].
#[derive(Clone, Debug)]
enum Part {
    /// regops' own words (Markdown may use backticks in them).
    Own(Cow<'static, str>),
    /// A string from outside, and whether the text view shows it between backticks (as a
    /// name: `` `web` ``) or bare.
    Data(String, bool),
}

/// Prose regops writes about data from outside: its own words and the data they quote, kept
/// apart. Serialized (JSON, a saved plan) as the plain string; read back from a saved plan,
/// which is itself data, the whole string is data.
#[derive(Clone, Debug, Default)]
pub struct Message {
    parts: Vec<Part>,
}

impl Message {
    /// A message of regops' own words.
    pub fn own(words: impl Into<Cow<'static, str>>) -> Self {
        Message::default().and(words)
    }

    /// A message that is data from outside, whole.
    pub fn data(data: impl Into<String>) -> Self {
        Message::default().quote(data)
    }

    /// Adds regops' own words.
    #[must_use]
    pub fn and(mut self, words: impl Into<Cow<'static, str>>) -> Self {
        let words = words.into();
        if !words.is_empty() {
            self.parts.push(Part::Own(words));
        }
        self
    }

    /// Adds a string from outside, shown bare in text.
    #[must_use]
    pub fn quote(mut self, data: impl Into<String>) -> Self {
        self.parts.push(Part::Data(data.into(), false));
        self
    }

    /// Adds a string from outside that text shows between backticks, as a name.
    #[must_use]
    pub fn code(mut self, data: impl Into<String>) -> Self {
        self.parts.push(Part::Data(data.into(), true));
        self
    }

    /// Adds strings from outside (as [`Message::quote`]), each separated by regops' `sep`.
    #[must_use]
    pub fn quote_all<S: AsRef<str>>(mut self, data: &[S], sep: &'static str) -> Self {
        for (i, d) in data.iter().enumerate() {
            if i > 0 {
                self = self.and(sep);
            }
            self = self.quote(d.as_ref());
        }
        self
    }

    /// Adds names from outside (as [`Message::code`]), each separated by regops' `sep`.
    #[must_use]
    pub fn code_all<S: AsRef<str>>(mut self, data: &[S], sep: &'static str) -> Self {
        for (i, d) in data.iter().enumerate() {
            if i > 0 {
                self = self.and(sep);
            }
            self = self.code(d.as_ref());
        }
        self
    }

    /// Adds another message.
    #[must_use]
    pub fn then(mut self, other: &Message) -> Self {
        self.parts.extend(other.parts.iter().cloned());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| match p {
            Part::Own(s) => s.is_empty(),
            Part::Data(s, _) => s.is_empty(),
        })
    }

    /// The message as it is, data unescaped (names between backticks, as text shows them):
    /// for JSON and for the Kubernetes API (an Event's message), never for a terminal or
    /// Markdown.
    pub fn raw(&self) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Own(s) => out.push_str(s),
                Part::Data(s, false) => out.push_str(s),
                Part::Data(s, true) => {
                    out.push('`');
                    out.push_str(s);
                    out.push('`');
                }
            }
        }
        out
    }

    /// For a terminal or a log: the data escaped by [`terminal`].
    pub fn terminal(&self) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Own(s) => out.push_str(s),
                Part::Data(s, false) => out.push_str(&terminal(s)),
                Part::Data(s, true) => {
                    out.push('`');
                    out.push_str(&terminal(s));
                    out.push('`');
                }
            }
        }
        out
    }

    /// For Markdown outside a table: the data as code spans ([`code`]).
    pub fn markdown(&self) -> String {
        self.markdown_with(code)
    }

    /// For Markdown in a table cell: the data as code spans ([`cell`]), and `|` in regops'
    /// own words escaped.
    pub fn markdown_cell(&self) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Own(s) => out.push_str(&s.replace('|', "\\|")),
                Part::Data(s, _) => out.push_str(&cell(s)),
            }
        }
        out
    }

    fn markdown_with(&self, quote: fn(&str) -> String) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Own(s) => out.push_str(s),
                Part::Data(s, _) => out.push_str(&quote(s)),
            }
        }
        out
    }
}

impl From<&'static str> for Message {
    fn from(words: &'static str) -> Self {
        Message::own(words)
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.raw() == other.raw()
    }
}

impl Eq for Message {}

impl PartialEq<str> for Message {
    fn eq(&self, other: &str) -> bool {
        self.raw() == other
    }
}

impl PartialEq<&str> for Message {
    fn eq(&self, other: &&str) -> bool {
        self.raw() == *other
    }
}

impl serde::Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw())
    }
}

impl<'de> serde::Deserialize<'de> for Message {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Message::data)
    }
}

impl schemars::JsonSchema for Message {
    fn schema_name() -> Cow<'static, str> {
        "String".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_controls_bidi_and_invisibles_visibly() {
        assert_eq!(terminal("plain text"), Cow::Borrowed("plain text"));
        assert_eq!(
            terminal("a\x1b[2Jb\x07c\nd\u{202e}e\u{9b}f\u{200b}g\u{7f}"),
            "a\\x1b[2Jb\\x07c\\nd\\u{202e}e\\u{9b}f\\u{200b}g\\x7f"
        );
        // An OSC 8 hyperlink loses its ESC and BEL, so it is no longer one.
        assert_eq!(
            terminal("\x1b]8;;https://x\x07click\x1b]8;;\x07"),
            "\\x1b]8;;https://x\\x07click\\x1b]8;;\\x07"
        );
        // Ordinary non-ASCII text is kept.
        assert_eq!(terminal("café 名前 ü"), "café 名前 ü");
    }

    #[test]
    fn excerpts_keep_their_offsets_and_lines_their_breaks() {
        let src = "a: \x1b[2J\u{202e}x\n\tb: 1\n";
        let shown = same_offsets(src);
        assert_eq!(shown.len(), src.len());
        assert_eq!(shown, "a: ?[2J???x\n b: 1\n");
        assert_eq!(lines("one \x07\ntwo \u{202e}"), "one \\x07\ntwo \\u{202e}");
    }

    #[test]
    fn code_spans_have_a_longer_fence_than_any_run_inside() {
        assert_eq!(code("web"), "`web`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("``x"), "``` ``x ```");
        assert_eq!(code(""), "` `");
        assert_eq!(code("a\nb"), "`a\\nb`");
        assert_eq!(code(" x "), "`  x  `");
    }

    #[test]
    fn cells_escape_every_pipe() {
        assert_eq!(cell("a|b"), "`a\\|b`");
        assert_eq!(cell("a\\|b"), "`a\\\\|b`");
        assert_eq!(code("a|b"), "`a|b`");
    }

    #[test]
    fn a_message_keeps_its_words_and_quotes_its_data() {
        let m = Message::own("changed by ")
            .quote("evil\x1b[2J")
            .and(" outside regops");
        assert_eq!(m.raw(), "changed by evil\x1b[2J outside regops");
        assert_eq!(m.terminal(), "changed by evil\\x1b[2J outside regops");
        let named = Message::own("namespace ")
            .code("w\u{202e}b")
            .and(" is gone");
        assert_eq!(named.terminal(), "namespace `w\\u{202e}b` is gone");
        assert_eq!(named.markdown(), "namespace `w\\u{202e}b` is gone");
        assert_eq!(m.markdown(), "changed by `evil\\x1b[2J` outside regops");
        assert_eq!(
            serde_json::to_string(&m).ok().as_deref(),
            Some("\"changed by evil\\u001b[2J outside regops\"")
        );
        // Read back (a saved plan), the whole of it is data.
        let back: Message = serde_json::from_str("\"x <b>\"").unwrap_or_default();
        assert_eq!(back.markdown(), "`x <b>`");
    }
}
