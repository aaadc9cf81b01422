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

enum Frame {
    Seq {
        start: Loc,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: Loc,
        anchor: usize,
        entries: Vec<(Spanned<String>, Node)>,
        key: Option<Node>,
    },
}

/// Parses one YAML document. A syntax error stops parsing (YAML cannot be recovered reliably);
/// structural problems (non-scalar keys, duplicate keys, several documents) are all reported.
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
    let mut anchors: HashMap<usize, Node> = HashMap::new();
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
                    anchors.insert(anchor, node.clone());
                }
                Some(node)
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(node) => Some(Node {
                    loc: loc(span),
                    value: node.value.clone(),
                }),
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
            Event::SequenceStart(_, anchor, _) => {
                stack.push(Frame::Seq {
                    start: loc(span),
                    anchor,
                    items: Vec::new(),
                });
                None
            }
            Event::MappingStart(_, anchor, _) => {
                stack.push(Frame::Map {
                    start: loc(span),
                    anchor,
                    entries: Vec::new(),
                    key: None,
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
                    }) => {
                        let node = Node {
                            loc: container_loc(text, start, end, items.last().map(|n| n.loc)),
                            value: Value::Seq(items),
                        };
                        if anchor > 0 {
                            anchors.insert(anchor, node.clone());
                        }
                        Some(node)
                    }
                    Some(Frame::Map {
                        start,
                        anchor,
                        entries,
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
                            anchors.insert(anchor, node.clone());
                        }
                        Some(node)
                    }
                    None => None,
                }
            }
            // Comments and any event a later parser version adds carry no data for us.
            _ => None,
        };
        let Some(node) = completed else { continue };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => {
                    let Value::Scalar(Scalar { text, .. }) = k.value else {
                        diags.push(
                            Diagnostic::error("spec::syntax", "mapping keys must be plain names")
                                .with_label(k.loc, "this key is a list or a mapping"),
                        );
                        continue;
                    };
                    if let Some((first, _)) = entries.iter().find(|(e, _)| e.value == text) {
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
                    entries.push((Spanned::new(text, k.loc), node));
                }
            },
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

    #[test]
    fn syntax_error_has_location() {
        let mut d = Diagnostics::default();
        assert!(parse(0, "a: [1, 2\nb: c\n", &mut d).is_none());
        assert_eq!(d.len(), 1);
    }
}
