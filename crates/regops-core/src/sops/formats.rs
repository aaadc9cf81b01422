//! The stores: each format read into a [`Tree`] as sops's store for it reads it (`stores/yaml`,
//! `stores/json`, `stores/dotenv`, `stores/ini`), and the `sops` metadata taken out of it
//! (`stores.ExtractMetadata`, `stores/metadata.go`).

use std::collections::BTreeMap;

use regops_spec::{Node, Value};
use zeroize::Zeroizing;

use super::{AgeKey, KEY_SOURCES, RawMetadata, SopsError, SopsFormat, Tree, go_float};

pub(super) fn parse(bytes: &[u8], format: SopsFormat) -> Result<(Tree, RawMetadata), SopsError> {
    let text = std::str::from_utf8(bytes).map_err(|e| SopsError::Syntax {
        format: format.as_str(),
        line: line_of(bytes, e.valid_up_to()),
    })?;
    match format {
        SopsFormat::Yaml => nested(yaml(text)?, format),
        SopsFormat::Json | SopsFormat::Binary => nested(json(text, format)?, format),
        SopsFormat::Dotenv => dotenv(text),
        SopsFormat::Ini => ini(text),
    }
}

fn line_of(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The YAML and JSON stores keep the metadata under a top-level `sops` mapping.
fn nested(tree: Tree, format: SopsFormat) -> Result<(Tree, RawMetadata), SopsError> {
    let Tree::Map(mut entries) = tree else {
        return Err(SopsError::Shape {
            format: format.as_str(),
            why: "its top level is not a mapping",
        });
    };
    let at = entries
        .iter()
        .position(|(k, _)| k == "sops")
        .ok_or(SopsError::NoMetadata)?;
    let (_, meta) = entries.remove(at);
    Ok((Tree::Map(entries), raw_from_nested(&meta)?))
}

fn raw_from_nested(meta: &Tree) -> Result<RawMetadata, SopsError> {
    let Tree::Map(entries) = meta else {
        return Err(SopsError::BadMetadata("`sops` is not a mapping"));
    };
    let mut raw = RawMetadata::default();
    for (k, v) in entries {
        match (k.as_str(), v) {
            ("age", Tree::Seq(items)) => {
                for item in items {
                    let Tree::Map(fields) = item else {
                        return Err(SopsError::BadMetadata("an `age` entry is not a mapping"));
                    };
                    let field = |name: &str| {
                        fields.iter().find_map(|(k, v)| match v {
                            Tree::Str(s) if k == name => Some(s.to_string()),
                            _ => None,
                        })
                    };
                    raw.age.push(AgeKey {
                        recipient: field("recipient").unwrap_or_default(),
                        enc: field("enc")
                            .ok_or(SopsError::BadMetadata("an `age` entry has no `enc`"))?,
                    });
                }
            }
            (_, Tree::Seq(items)) if items.is_empty() => {}
            ("key_groups", _) => raw.others.push(k.clone()),
            (source, Tree::Seq(_)) if KEY_SOURCES.contains(&source) => raw.others.push(k.clone()),
            (_, Tree::Str(s)) => raw.scalars.push((k.clone(), s.to_string())),
            (_, Tree::Int(i)) => raw.scalars.push((k.clone(), i.to_string())),
            (_, Tree::Float(f)) => raw.scalars.push((k.clone(), go_float(*f))),
            (_, Tree::Bool(b)) => raw.scalars.push((k.clone(), b.to_string())),
            _ => {}
        }
    }
    Ok(raw)
}

/// The dotenv and INI stores flatten the metadata: `age__list_0__map_enc` (`stores/flatten.go`,
/// `mapSeparator` and `listSeparator`).
fn raw_from_flat(pairs: Vec<(String, String)>) -> Result<RawMetadata, SopsError> {
    let mut raw = RawMetadata::default();
    let mut age: BTreeMap<usize, (Option<String>, Option<String>)> = BTreeMap::new();
    for (k, v) in pairs {
        if let Some(rest) = k.strip_prefix("age__list_") {
            let (index, field) = rest
                .split_once("__map_")
                .and_then(|(i, f)| Some((i.parse::<usize>().ok()?, f)))
                .ok_or(SopsError::BadMetadata("an `age` entry is malformed"))?;
            let entry = age.entry(index).or_default();
            match field {
                "recipient" => entry.0 = Some(v),
                "enc" => entry.1 = Some(v),
                _ => {}
            }
        } else if let Some(source) = KEY_SOURCES.iter().chain(&["key_groups"]).find(|s| {
            k.strip_prefix(**s)
                .is_some_and(|r| r.starts_with("__list_"))
        }) {
            if !raw.others.iter().any(|o| o == source) {
                raw.others.push((*source).to_string());
            }
        } else {
            raw.scalars.push((k, v));
        }
    }
    for (_, (recipient, enc)) in age {
        raw.age.push(AgeKey {
            recipient: recipient.unwrap_or_default(),
            enc: enc.ok_or(SopsError::BadMetadata("an `age` entry has no `enc`"))?,
        });
    }
    Ok(raw)
}

fn yaml(text: &str) -> Result<Tree, SopsError> {
    let node = regops_spec::parse_yaml_document(text).map_err(|offset| SopsError::Syntax {
        format: "yaml",
        line: line_of(text.as_bytes(), offset),
    })?;
    Ok(from_node(&node))
}

fn from_node(node: &Node) -> Tree {
    match &node.value {
        Value::Map(entries) => Tree::Map(
            entries
                .iter()
                .map(|(k, v)| (k.value.clone(), from_node(v)))
                .collect(),
        ),
        Value::Seq(items) => Tree::Seq(items.iter().map(from_node).collect()),
        Value::Scalar(s) if s.quoted => Tree::Str(Zeroizing::new(s.text.clone())),
        Value::Scalar(s) => resolve_plain(&s.text),
    }
}

/// What a plain YAML scalar decodes to in an `interface{}` with yaml.v3, as sops's YAML store
/// decodes it (`node.Decode`; yaml.v3's `resolve.go`): null, booleans of YAML 1.2's core schema,
/// integers (`_` allowed, Go's `0x`/`0o`/`0b`/leading-`0` prefixes), floats, else a string.
fn resolve_plain(text: &str) -> Tree {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Tree::Null,
        "true" | "True" | "TRUE" => return Tree::Bool(true),
        "false" | "False" | "FALSE" => return Tree::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Tree::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Tree::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Tree::Float(f64::NEG_INFINITY),
        _ => {}
    }
    let first = text.as_bytes()[0];
    if first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.') {
        let plain = text.replace('_', "");
        if let Some(i) = go_parse_int(&plain) {
            return Tree::Int(i);
        }
        if is_yaml_style_float(&plain)
            && let Ok(f) = plain.parse::<f64>()
        {
            return Tree::Float(f);
        }
    }
    Tree::Str(Zeroizing::new(text.to_string()))
}

/// `strconv.ParseInt(s, 0, 64)`: a sign, then `0x`, `0o`, `0b`, a leading `0` (octal), or decimal.
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, body) = if let Some(r) = digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
        (16, r)
    } else if let Some(r) = digits.strip_prefix("0o").or(digits.strip_prefix("0O")) {
        (8, r)
    } else if let Some(r) = digits.strip_prefix("0b").or(digits.strip_prefix("0B")) {
        (2, r)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(body, radix).ok()?;
    i64::try_from(if neg { -magnitude } else { magnitude }).ok()
}

/// yaml.v3's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_style_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    mantissa_ok && exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)))
}

/// The JSON store decodes with `UseNumber` and `normalizeJSONNumber` (`stores/json/store.go`):
/// an integer within int64 is an int, any other number a float64.
fn json(text: &str, format: SopsFormat) -> Result<Tree, SopsError> {
    serde_json::from_str::<JsonTree>(text)
        .map(|t| t.0)
        .map_err(|e| SopsError::Syntax {
            format: format.as_str(),
            line: e.line(),
        })
}

/// A JSON document held in a value (`jsonKey`), its strings in zeroizing buffers.
pub(super) fn json_document(text: &str) -> Result<Tree, SopsError> {
    json(text, SopsFormat::Json)
}

struct JsonTree(Tree);

impl<'de> serde::Deserialize<'de> for JsonTree {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor).map(JsonTree)
    }
}

struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
        Ok(Tree::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
        Ok(Tree::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Tree, E> {
        // Beyond int64, `normalizeJSONNumber` falls back to float64.
        Ok(i64::try_from(v).map_or(Tree::Float(v as f64), Tree::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Tree, E> {
        Ok(Tree::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Tree, E> {
        Ok(Tree::Str(Zeroizing::new(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Tree, E> {
        Ok(Tree::Str(Zeroizing::new(v)))
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(JsonTree(t)) = seq.next_element()? {
            items.push(t);
        }
        Ok(Tree::Seq(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut entries: Vec<(String, Tree)> = Vec::new();
        while let Some((k, JsonTree(v))) = map.next_entry::<String, JsonTree>()? {
            // Go's decoder keeps both of a duplicated key; a file sops wrote has none, and
            // which one `extract` would find is not worth guessing.
            if entries.iter().any(|(e, _)| *e == k) {
                return Err(serde::de::Error::custom("duplicate key"));
            }
            entries.push((k, v));
        }
        Ok(Tree::Map(entries))
    }
}

/// `stores/dotenv`'s `LoadPlainFile`: one `KEY=value` per line (empty lines skipped, `#`
/// comments), `\n` in a value read as a newline; the metadata is every `sops_` key.
fn dotenv(text: &str) -> Result<(Tree, RawMetadata), SopsError> {
    let mut entries = Vec::new();
    let mut meta = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or(SopsError::Syntax {
            format: "dotenv",
            line: n + 1,
        })?;
        let value = Zeroizing::new(value.replace("\\n", "\n"));
        match key.strip_prefix("sops_") {
            Some(k) => meta.push((k.to_string(), value.to_string())),
            None => entries.push((key.to_string(), Tree::Str(value))),
        }
    }
    if meta.is_empty() {
        return Err(SopsError::NoMetadata);
    }
    Ok((Tree::Map(entries), raw_from_flat(meta)?))
}

/// `stores/ini` reads with go-ini (`ini.LoadSources`, `AllowNonUniqueSections`): sections of
/// `key = value` (or `key: value`), `#` and `;` comments; a value in matching quotes is what is
/// between them, else it ends at an inline `#` or `;` (go-ini's `readValue`). Keys before the
/// first section are in `DEFAULT`. The metadata is the `[sops]` section, `\n` in its values read
/// as newlines (`EscapeNewlines`).
fn ini(text: &str) -> Result<(Tree, RawMetadata), SopsError> {
    let mut sections: Vec<(String, Vec<(String, Tree)>)> = vec![("DEFAULT".into(), Vec::new())];
    for (n, line) in text.split('\n').enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let syntax = SopsError::Syntax {
            format: "ini",
            line: n + 1,
        };
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.rfind(']').map(|i| rest[..i].trim()).ok_or(syntax)?;
            sections.push((name.to_string(), Vec::new()));
            continue;
        }
        let at = line.find(['=', ':']).ok_or(syntax)?;
        let key = line[..at].trim().to_string();
        let value = ini_value(line[at + 1..].trim());
        if let Some((_, entries)) = sections.last_mut() {
            entries.push((key, Tree::Str(Zeroizing::new(value.to_string()))));
        }
    }
    let at = sections
        .iter()
        .position(|(name, _)| name == "sops")
        .ok_or(SopsError::NoMetadata)?;
    let (_, meta) = sections.remove(at);
    let meta = meta
        .into_iter()
        .filter_map(|(k, v)| match v {
            Tree::Str(s) => Some((k, s.replace("\\n", "\n"))),
            _ => None,
        })
        .collect();
    let tree = Tree::Map(
        sections
            .into_iter()
            .map(|(name, entries)| (name, Tree::Map(entries)))
            .collect(),
    );
    Ok((tree, raw_from_flat(meta)?))
}

fn ini_value(v: &str) -> &str {
    for quote in ['"', '\'', '`'] {
        if v.len() >= 2 && v.starts_with(quote) && v.ends_with(quote) {
            return &v[1..v.len() - 1];
        }
    }
    match v.find(['#', ';']) {
        Some(i) => v[..i].trim_end(),
        None => v,
    }
}

/// A plain scalar's type and MAC bytes, for the tests.
#[cfg(test)]
pub(super) fn tests_resolve(text: &str) -> String {
    match resolve_plain(text) {
        Tree::Int(i) => format!("int {i}"),
        Tree::Float(f) => format!("float {}", go_float(f)),
        Tree::Bool(b) => format!("bool {}", super::go_bool(b)),
        Tree::Str(s) => format!("str {}", s.as_str()),
        Tree::Null => "null".into(),
        Tree::Map(_) | Tree::Seq(_) => "collection".into(),
    }
}
