//! TOML to [`Node`], on the `toml` crate's spanned document parser. Syntax errors are
//! recovered where the parser can, so several are reported at once.

use toml::Spanned as TSpanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::node::{FileId, Loc, Node, Scalar, Spanned, Value};

pub(crate) fn parse(file: FileId, text: &str, diags: &mut Diagnostics) -> Option<Node> {
    // Every value follows a `=`, a `,` or a `[`, and every table starts with `[`: more of those
    // than the spec may hold values, and the document is refused before it is built (a 16 MiB
    // file of tiny tables would take a gigabyte as a tree).
    let most = text
        .bytes()
        .filter(|b| matches!(b, b'=' | b',' | b'['))
        .count();
    if most > crate::yaml::MAX_NODES {
        let at = text
            .bytes()
            .enumerate()
            .filter(|(_, b)| matches!(b, b'=' | b',' | b'['))
            .nth(crate::yaml::MAX_NODES)
            .map_or(0, |(i, _)| i);
        diags.push(
            Diagnostic::error(
                "spec::too-large",
                format!(
                    "this spec holds more than {} values",
                    crate::yaml::MAX_NODES
                ),
            )
            .with_label(
                Loc::new(file, at, (at + 1).min(text.len())),
                "the limit is reached here",
            ),
        );
        return None;
    }
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for err in errors {
            let range = err.span().unwrap_or(0..0);
            let end = if range.end > range.start {
                range.end
            } else {
                (range.start + 1).min(text.len())
            };
            diags.push(
                Diagnostic::error(
                    "spec::syntax",
                    format!("invalid TOML: {}", err.message().trim_end()),
                )
                .with_label(Loc::new(file, range.start, end), "here"),
            );
        }
        return None;
    }
    let span = root.span();
    Some(Node {
        loc: Loc::new(file, span.start, span.end),
        value: table(file, root.get_ref()),
    })
}

fn table(file: FileId, t: &DeTable<'_>) -> Value {
    Value::Map(
        t.iter()
            .map(|(k, v)| {
                let ks = k.span();
                (
                    Spanned::new(k.get_ref().to_string(), Loc::new(file, ks.start, ks.end)),
                    node(file, v),
                )
            })
            .collect(),
    )
}

fn node(file: FileId, v: &TSpanned<DeValue<'_>>) -> Node {
    let span = v.span();
    let scalar = |text: String, quoted: bool| Value::Scalar(Scalar { text, quoted });
    let value = match v.get_ref() {
        DeValue::String(s) => scalar(s.to_string(), true),
        DeValue::Integer(i) => scalar(i.as_str().to_string(), false),
        DeValue::Float(f) => scalar(f.as_str().to_string(), false),
        DeValue::Boolean(b) => scalar(b.to_string(), false),
        DeValue::Datetime(d) => scalar(d.to_string(), false),
        DeValue::Array(a) => Value::Seq(a.iter().map(|item| node(file, item)).collect()),
        DeValue::Table(t) => table(file, t),
    };
    Node {
        loc: Loc::new(file, span.start, span.end),
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_values() {
        let text = "[registries.harbor]\nserver = \"harbor.example.com\"\ninsecure = true\n";
        let mut d = Diagnostics::default();
        let root = parse(0, text, &mut d).unwrap();
        let server = root
            .get("registries")
            .unwrap()
            .get("harbor")
            .unwrap()
            .get("server")
            .unwrap();
        assert_eq!(
            &text[server.loc.start..server.loc.end],
            "\"harbor.example.com\""
        );
        let insecure = root
            .get("registries")
            .unwrap()
            .get("harbor")
            .unwrap()
            .get("insecure")
            .unwrap();
        assert_eq!(
            insecure.value,
            Value::Scalar(Scalar {
                text: "true".into(),
                quoted: false
            })
        );
    }

    #[test]
    fn several_syntax_errors_are_reported() {
        let mut d = Diagnostics::default();
        assert!(parse(0, "a = \nb = [1,\n", &mut d).is_none());
        assert!(!d.is_empty());
    }
}
