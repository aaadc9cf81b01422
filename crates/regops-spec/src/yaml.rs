//! YAML to [`Node`], on granit-parser's event stream (the parser under serde-saphyr, which
//! kube-rs also uses), which gives every event a span.

use std::collections::HashMap;

use granit_parser::{Event, Marker, Parser, ScalarStyle, Span};

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::node::{FileId, Loc, Node, Scalar, Spanned, Value};

/// Maps saphyr's character indices to byte offsets (they differ only for non-ASCII text).
struct Offsets {
    table: Option<Vec<usize>>,
    len: usize,
}

impl Offsets {
    fn new(text: &str) -> Self {
        let table = (!text.is_ascii()).then(|| text.char_indices().map(|(i, _)| i).collect());
        Offsets {
            table,
            len: text.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index.min(self.len),
            Some(t) => t.get(char_index).copied().unwrap_or(self.len),
        }
    }

    fn of(&self, m: &Marker) -> usize {
        m.byte_offset()
            .map_or_else(|| self.byte(m.index()), |b| b.min(self.len))
    }
}

/// The most nodes a spec may hold once its aliases are expanded. A real spec with thousands of
/// registries holds tens of thousands; a few hundred bytes of nested aliases (a "billion
/// laughs") would otherwise expand to billions and exhaust the machine.
pub(crate) const MAX_NODES: usize = 250_000;
/// The deepest nesting of lists and mappings a spec may use (a spec needs six or so).
pub(crate) const MAX_DEPTH: usize = 64;

enum Frame {
    Seq {
        start: Loc,
        anchor: usize,
        items: Vec<Node>,
        /// Nodes in this subtree so far, itself included (aliases counted expanded).
        size: usize,
    },
    Map {
        start: Loc,
        anchor: usize,
        entries: Vec<(Spanned<String>, Node)>,
        /// Each key's index in `entries`: duplicate keys are found in constant time, so a
        /// mapping of thousands of registries is checked in linear time.
        seen: std::collections::HashMap<String, usize>,
        key: Option<Node>,
        size: usize,
    },
}

/// Parses one YAML document. A syntax error stops parsing (YAML cannot be recovered reliably);
/// structural problems (non-scalar keys, duplicate keys, several documents) are all reported.
// Kept whole (over 80 lines): an event loop over the YAML parser's events with one stack; its
// state does not split cleanly.
pub(crate) fn parse(file: FileId, text: &str, diags: &mut Diagnostics) -> Option<Node> {
    let offsets = Offsets::new(text);
    let loc = |span: Span| {
        Loc::new(
            file,
            offsets.byte(span.start.index()),
            offsets.byte(span.end.index()),
        )
    };
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    // Each anchored node with its size (nodes, aliases expanded), so that expanding an alias
    // is charged what it costs before it is copied.
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut total = 0usize;
    let mut root: Option<Node> = None;
    let mut documents = 0usize;

    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(pair) => pair,
            Err(err) => {
                let at = offsets.of(err.marker());
                diags.push(
                    Diagnostic::error("spec::syntax", format!("invalid YAML: {}", err.info()))
                        .with_label(Loc::new(file, at, at + 1), "here"),
                );
                return None;
            }
        };
        let completed = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Anchor(..) => None,
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    diags.push(
                        Diagnostic::error("spec::syntax", "a spec file holds one YAML document")
                            .with_label(loc(span), "a second document starts here")
                            .with_help("split the documents into separate files and pass a directory with -f"),
                    );
                    return None;
                }
                None
            }
            Event::Scalar(value, style, anchor, _tag) => {
                let mut at = loc(span);
                if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
                    at.start = block_header_start(text, at.start);
                    // saphyr's span runs on into the next line's indentation: end at the content.
                    at.end = at.start + text[at.start..at.end.min(text.len())].trim_end().len();
                }
                let text = value;
                let node = Node {
                    loc: at,
                    value: Value::Scalar(Scalar {
                        text: text.into_owned(),
                        quoted: style != ScalarStyle::Plain,
                    }),
                };
                if anchor > 0 {
                    anchors.insert(anchor, (node.clone(), 1));
                }
                Some((node, 1, 1))
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some((node, size)) => {
                    if total.saturating_add(*size) > MAX_NODES {
                        diags.push(
                            Diagnostic::error(
                                "spec::too-large",
                                format!("YAML aliases expand this spec beyond {MAX_NODES} nodes"),
                            )
                            .with_label(loc(span), "this alias would exceed the limit")
                            .with_help("write the values out, or use fewer nested aliases"),
                        );
                        return None;
                    }
                    Some((
                        Node {
                            loc: loc(span),
                            value: node.value.clone(),
                        },
                        *size,
                        *size,
                    ))
                }
                None => {
                    diags.push(
                        Diagnostic::error("spec::syntax", "unknown YAML alias")
                            .with_label(loc(span), "no anchor of this name"),
                    );
                    return None;
                }
            },
            Event::UnresolvedAlias(_) => {
                diags.push(
                    Diagnostic::error("spec::syntax", "unknown YAML alias")
                        .with_label(loc(span), "no anchor of this name"),
                );
                return None;
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _)
                if stack.len() >= MAX_DEPTH =>
            {
                let _ = anchor;
                diags.push(
                    Diagnostic::error(
                        "spec::too-deep",
                        format!("lists and mappings nest deeper than {MAX_DEPTH} levels here"),
                    )
                    .with_label(loc(span), "too deep"),
                );
                return None;
            }
            Event::SequenceStart(_, anchor, _) => {
                stack.push(Frame::Seq {
                    start: loc(span),
                    anchor,
                    items: Vec::new(),
                    size: 1,
                });
                None
            }
            Event::MappingStart(_, anchor, _) => {
                stack.push(Frame::Map {
                    start: loc(span),
                    anchor,
                    entries: Vec::new(),
                    seen: std::collections::HashMap::new(),
                    key: None,
                    size: 1,
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let end = loc(span);
                match stack.pop() {
                    Some(Frame::Seq {
                        start,
                        anchor,
                        items,
                        size,
                    }) => {
                        let node = Node {
                            loc: container_loc(text, start, end, items.last().map(|n| n.loc)),
                            value: Value::Seq(items),
                        };
                        if anchor > 0 {
                            anchors.insert(anchor, (node.clone(), size));
                        }
                        Some((node, size, 1))
                    }
                    Some(Frame::Map {
                        start,
                        anchor,
                        entries,
                        size,
                        ..
                    }) => {
                        let node = Node {
                            loc: container_loc(
                                text,
                                start,
                                end,
                                entries.last().map(|(_, n)| n.loc),
                            ),
                            value: Value::Map(entries),
                        };
                        if anchor > 0 {
                            anchors.insert(anchor, (node.clone(), size));
                        }
                        Some((node, size, 1))
                    }
                    None => None,
                }
            }
            // Comments and any event a later parser version adds carry no data for us.
            _ => None,
        };
        let Some((node, size, charge)) = completed else {
            continue;
        };
        // Every node is counted once, when it completes: a scalar or a list or mapping itself
        // (its children counted before it), an alias as all it expands to.
        total = total.saturating_add(charge);
        if total > MAX_NODES {
            diags.push(
                Diagnostic::error(
                    "spec::too-large",
                    format!("this spec holds more than {MAX_NODES} values"),
                )
                .with_label(node.loc, "the limit is reached here"),
            );
            return None;
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, size: s, .. }) => {
                *s += size;
                items.push(node)
            }
            Some(Frame::Map {
                entries,
                seen,
                key,
                size: s,
                ..
            }) => {
                *s += size;
                match key.take() {
                    None => *key = Some(node),
                    Some(k) => {
                        let Value::Scalar(Scalar { text, .. }) = k.value else {
                            diags.push(
                                Diagnostic::error(
                                    "spec::syntax",
                                    "mapping keys must be plain names",
                                )
                                .with_label(k.loc, "this key is a list or a mapping"),
                            );
                            continue;
                        };
                        if let Some((first, _)) = seen.get(&text).and_then(|&i| entries.get(i)) {
                            diags.push(
                                Diagnostic::error(
                                    "spec::duplicate-key",
                                    format!("duplicate key `{text}`"),
                                )
                                .with_label(k.loc, "defined again here")
                                .with_label(first.loc, "first defined here"),
                            );
                            continue;
                        }
                        seen.insert(text.clone(), entries.len());
                        entries.push((Spanned::new(text, k.loc), node));
                    }
                }
            }
        }
    }
    Some(root.unwrap_or(Node {
        loc: Loc::new(file, 0, 0),
        value: Value::Map(Vec::new()),
    }))
}

/// saphyr's span of a block scalar starts at its content; the value as written starts at its
/// `|` or `>` header on an earlier line.
fn block_header_start(text: &str, content_start: usize) -> usize {
    let before = text[..content_start.min(text.len())].trim_end();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    match before[line_start..].rfind(['|', '>']) {
        Some(i) => line_start + i,
        None => content_start,
    }
}

/// A container's range: from its start marker to the end of its last child, or to its closing
/// bracket for flow style (where the end event lies past the last child).
fn container_loc(text: &str, start: Loc, end: Loc, last_child: Option<Loc>) -> Loc {
    let mut loc = start;
    if let Some(child) = last_child {
        loc = loc.join(child);
    }
    // A flow collection ends at its `]` or `}` (the end event's span may run on over trailing
    // spaces and comments); a block collection ends with its last child.
    if end.start >= loc.start && matches!(text.as_bytes().get(end.start), Some(b']' | b'}')) {
        loc = loc.join(Loc::new(end.file, end.start, end.start + 1));
    }
    loc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Node {
        let mut d = Diagnostics::default();
        let n = parse(0, text, &mut d).unwrap();
        assert!(d.is_empty(), "{d:?}");
        n
    }

    fn slice<'a>(text: &'a str, n: &Node) -> &'a str {
        &text[n.loc.start..n.loc.end]
    }

    #[test]
    fn spans_cover_values() {
        let text =
            "a:\n  b: hello\n  c: { env: X }\n  d: [1, 2]\n  e: |\n    line1\n    line2\nf: 'q'\n";
        let root = parse_ok(text);
        let a = root.get("a").unwrap();
        assert_eq!(slice(text, a.get("b").unwrap()), "hello");
        assert_eq!(slice(text, a.get("c").unwrap()), "{ env: X }");
        let commented = parse_ok("p: { env: X }  # comment\nq: [1]   # c\n");
        assert_eq!(
            slice(
                "p: { env: X }  # comment\nq: [1]   # c\n",
                commented.get("p").unwrap()
            ),
            "{ env: X }"
        );
        assert_eq!(
            slice(
                "p: { env: X }  # comment\nq: [1]   # c\n",
                commented.get("q").unwrap()
            ),
            "[1]"
        );
        assert_eq!(slice(text, a.get("d").unwrap()), "[1, 2]");
        assert!(slice(text, a.get("e").unwrap()).starts_with('|'));
        assert!(slice(text, a.get("e").unwrap()).ends_with("line2"));
        assert_eq!(slice(text, root.get("f").unwrap()), "'q'");
        assert_eq!(root.key_loc("f").map(|l| &text[l.start..l.end]), Some("f"));
    }

    #[test]
    fn non_ascii_offsets_are_bytes() {
        let text = "name: \"Grüße\"\nnext: ok\n";
        let root = parse_ok(text);
        assert_eq!(slice(text, root.get("next").unwrap()), "ok");
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let mut d = Diagnostics::default();
        parse(0, "a: 1\nb: 2\na: 3\n", &mut d);
        assert_eq!(d.len(), 1);
        assert!(
            d.iter()
                .next()
                .unwrap()
                .message
                .contains("duplicate key `a`")
        );
    }

    #[test]
    fn aliases_resolve() {
        let root = parse_ok("x: &v [a, b]\ny: *v\n");
        assert_eq!(root.get("x").unwrap().value, root.get("y").unwrap().value);
    }

    /// Nine levels of nine aliases: 9^9 (387 million) nodes from under 400 bytes. Expanded,
    /// this grew a checker to 24 GB before the kernel killed it.
    fn alias_bomb() -> String {
        let mut y = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = format!("*a{}", i - 1);
            y.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                [prev.as_str(); 9].join(", ")
            ));
        }
        y
    }

    #[test]
    fn an_alias_bomb_is_a_diagnostic_at_the_alias() {
        let text = alias_bomb();
        let mut d = Diagnostics::default();
        assert!(parse(0, &text, &mut d).is_none());
        let diag = d.iter().next().unwrap();
        assert_eq!(diag.code, "spec::too-large");
        let at = diag.primary().unwrap();
        assert_eq!(
            &text[at.start..at.end],
            "*a4",
            "the alias that crosses the limit"
        );
    }

    #[test]
    fn aliases_are_counted_expanded_up_to_the_limit() {
        // 4 levels of 9: 6,561 scalars and their lists, well within the limit, resolve.
        let text: String = alias_bomb().lines().take(4).collect::<Vec<_>>().join("\n");
        let root = parse_ok(&text);
        assert!(root.get("a3").is_some());
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_a_diagnostic() {
        let deep = format!(
            "x: {}1{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        let mut d = Diagnostics::default();
        assert!(parse(0, &deep, &mut d).is_none());
        assert_eq!(d.iter().next().unwrap().code, "spec::too-deep");
        let ok = format!(
            "x: {}1{}",
            "[".repeat(MAX_DEPTH - 2),
            "]".repeat(MAX_DEPTH - 2)
        );
        assert!(parse_ok(&ok).get("x").is_some());
    }

    #[test]
    fn syntax_error_has_location() {
        let mut d = Diagnostics::default();
        assert!(parse(0, "a: [1, 2\nb: c\n", &mut d).is_none());
        assert_eq!(d.len(), 1);
    }
}
