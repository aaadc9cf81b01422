//! Parse errors of files that may hold a secret (a kubeconfig, an age identity file, a
//! helper's answer, a saved plan), said without what the file holds: where (line, column) and
//! what kind of error, never a value. Parsers quote what they failed on (serde's `invalid
//! type: string "…"`, a YAML parser's excerpt of the line with `token: …`), and such an error
//! goes into CI logs.

use std::fmt;

/// A parse error, located, with its kind in regops' words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseFailure {
    /// 1-based line and column, where the parser knew them.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// What kind of error, in words that quote nothing of the file.
    pub kind: String,
}

impl fmt::Display for ParseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.kind),
            (Some(l), None) => write!(f, "line {l}: {}", self.kind),
            _ => f.write_str(&self.kind),
        }
    }
}

/// The kind of a serde error from its message, without what it quotes: `invalid type: string
/// "…", expected a sequence` is "a value of the wrong type (expected a sequence)"; `missing
/// field `token`` keeps the field's name (the name is the program's, not the file's). A
/// message of no known shape is `fallback`.
pub fn serde_kind(message: &str, fallback: &str) -> String {
    let m = message.trim();
    // `expected …` is serde's (the type's own words): kept where it names no value.
    let expected = m
        .rsplit_once(", expected ")
        .map(|(_, e)| e)
        .filter(|e| parser_words(e));
    let with_expected = |what: &str| match expected {
        Some(e) => format!("{what} (expected {e})"),
        None => what.to_string(),
    };
    if m.starts_with("invalid type") {
        with_expected("a value of the wrong type")
    } else if m.starts_with("invalid value") {
        with_expected("an invalid value")
    } else if m.starts_with("invalid length") {
        with_expected("a list or map of the wrong length")
    } else if m.starts_with("unknown variant") {
        "an unknown variant".into()
    } else if m.starts_with("unknown field") {
        "an unknown field".into()
    } else if let Some(rest) = m.strip_prefix("missing field ") {
        match rest.trim_matches('`').trim() {
            name if identifier(name) => format!("missing field `{name}`"),
            _ => "a missing field".into(),
        }
    } else if let Some(rest) = m.strip_prefix("duplicate field ") {
        match rest.trim_matches('`').trim() {
            name if identifier(name) => format!("duplicate field `{name}`"),
            _ => "a duplicate field".into(),
        }
    } else {
        fallback.to_string()
    }
}

/// A serde_json error: its line, column and kind. A syntax error's text is serde_json's own
/// (`expected value`, `trailing characters`: no value in it); a data error's is
/// [`serde_kind`]'s.
pub fn json(err: &serde_json::Error) -> ParseFailure {
    use serde_json::error::Category;
    let text = err.to_string();
    // serde_json appends ` at line L column C` to its message.
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(m, _)| m);
    let kind = match err.classify() {
        Category::Io => "the input could not be read".to_string(),
        Category::Eof => "the input ends too early".to_string(),
        Category::Syntax if parser_words(message) => format!("malformed JSON ({message})"),
        Category::Syntax => "malformed JSON".to_string(),
        Category::Data => serde_kind(message, "not the expected JSON"),
    };
    ParseFailure {
        line: (err.line() > 0).then_some(err.line()),
        column: (err.column() > 0).then_some(err.column()),
        kind,
    }
}

/// A name as a program writes one (`client-key-data`, `formatVersion`).
fn identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// Whether `s` can only be a parser's own words (letters, spaces and a little punctuation: no
/// quotes, digits or anything else a value would bring), so that it may be shown.
pub fn parser_words(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 120
        && s.chars()
            .all(|c| c.is_ascii_alphabetic() || " ,`-()[]{}:/".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_what_they_quote() {
        for (message, kind) in [
            (
                "invalid type: string \"s3cret\", expected a sequence",
                "a value of the wrong type (expected a sequence)",
            ),
            (
                "invalid value: string \"s3cret\", expected one of `a`, `b`",
                "an invalid value (expected one of `a`, `b`)",
            ),
            (
                "unknown variant `s3cret`, expected `x`",
                "an unknown variant",
            ),
            ("unknown field `s3cret`", "an unknown field"),
            ("missing field `token`", "missing field `token`"),
            ("missing field `s3cret \"x\"`", "a missing field"),
            ("something \"s3cret\"", "fallback"),
            (
                "invalid type: integer `12345`, expected \"s3cret\"",
                "a value of the wrong type",
            ),
        ] {
            assert_eq!(serde_kind(message, "fallback"), kind, "{message}");
        }
    }

    #[test]
    fn json_errors_are_located_and_quote_nothing() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Plan {
            steps: Vec<String>,
        }
        let Err(e) = serde_json::from_str::<Plan>("{\n  \"steps\": \"SECRET-MARKER\"\n}") else {
            panic!("parsed")
        };
        let f = json(&e);
        assert_eq!(f.line, Some(2));
        assert!(!f.to_string().contains("MARKER"), "{f}");
        assert!(f.to_string().starts_with("line 2, column"), "{f}");
        let Err(e) = serde_json::from_str::<Plan>("{\"steps\": [SECRET-MARKER]}") else {
            panic!("parsed")
        };
        assert_eq!(
            json(&e).to_string(),
            "line 1, column 12: malformed JSON (expected value)"
        );
    }
}
