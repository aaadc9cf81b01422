//! Checks a JSON value against one of the JSON Schemas regops publishes (the spec, the JSON
//! plan, the fleet plan), for the tests that hold the schemas to what regops reads and writes.
//!
//! It knows the part of JSON Schema draft 2020-12 (<https://json-schema.org/draft/2020-12>)
//! that schemars writes and the schemas use: `$ref` to `#/$defs/…`, `type`, `enum`, `const`,
//! `properties`, `required`, `additionalProperties`, `items`, `anyOf`, `oneOf`, `allOf`, `not`,
//! `pattern`, `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`,
//! `maxLength`, `minItems`, `maxItems`, and boolean schemas. `format` is an annotation, as the
//! draft's default vocabulary has it (§7.2.1), and so are `title`, `description`, `default`,
//! `readOnly`, `examples` and `deprecated`. Any other keyword is refused when the validator is
//! made, so a schema that starts using one fails its tests instead of passing them unchecked.
//!
//! It replaced the `jsonschema` crate, which took a minute and a half of the test build on two
//! cores, and turned on serde_json's `float_roundtrip` for the tests only, which rebuilt
//! serde_json and everything above it (k8s-openapi, kube) between `cargo run` and `cargo test`.
//! The keywords' meaning is the draft's; `pattern` is searched for (not anchored), as ECMA-262
//! regular expressions are in §6.3.3, and its `\d` and `\w` are ECMA-262's, ASCII only (Rust's
//! regex would take any Unicode digit). A keyword whose value is not of the kind the draft
//! gives it (an `enum` that is not an array, a `minimum` that is not a number) is refused when
//! the validator is made, rather than passing every instance.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};

/// Keywords that only annotate: they never fail an instance.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "definitions",
    "title",
    "description",
    "default",
    "readOnly",
    "writeOnly",
    "examples",
    "deprecated",
    "format",
];

/// Keywords that are checked.
const ASSERTIONS: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
];

/// One way an instance fails its schema: where in the instance (a JSON Pointer) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    path: String,
    message: String,
}

impl ValidationError {
    /// Where in the instance, as a JSON Pointer (`""` for the whole of it).
    pub fn instance_path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why a schema cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError(String);

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SchemaError {}

/// A schema made ready to check instances: its keywords known, its patterns compiled, its
/// references found.
#[derive(Debug)]
pub struct Validator {
    root: Value,
    patterns: HashMap<String, regex::Regex>,
}

/// A validator for `schema`, or why it cannot be one (a keyword it does not know, a pattern
/// that is not a regular expression, a `$ref` to nothing).
pub fn validator_for(schema: &Value) -> Result<Validator, SchemaError> {
    let mut v = Validator {
        root: schema.clone(),
        patterns: HashMap::new(),
    };
    let root = schema.clone();
    v.prepare(&root, "#")?;
    Ok(v)
}

impl Validator {
    /// Every error of `instance`, outermost first.
    pub fn iter_errors(&self, instance: &Value) -> std::vec::IntoIter<ValidationError> {
        let mut out = Vec::new();
        self.check(&self.root, instance, "", &mut out, 0);
        out.into_iter()
    }

    /// Whether `instance` has no error.
    pub fn is_valid(&self, instance: &Value) -> bool {
        self.iter_errors(instance).next().is_none()
    }

    fn prepare(&mut self, schema: &Value, at: &str) -> Result<(), SchemaError> {
        let obj = match schema {
            Value::Bool(_) => return Ok(()),
            Value::Object(o) => o,
            other => {
                return Err(SchemaError(format!(
                    "{at}: a schema must be an object or a boolean, not {other}"
                )));
            }
        };
        for (k, sub) in obj {
            if !ANNOTATIONS.contains(&k.as_str()) && !ASSERTIONS.contains(&k.as_str()) {
                return Err(SchemaError(format!(
                    "{at}: the keyword `{k}` is not one this checker knows"
                )));
            }
            let here = format!("{at}/{k}");
            match k.as_str() {
                "$defs" | "definitions" | "properties" => {
                    let Value::Object(m) = sub else {
                        return Err(SchemaError(format!("{here}: not an object")));
                    };
                    for (name, s) in m {
                        self.prepare(s, &format!("{here}/{name}"))?;
                    }
                }
                "additionalProperties" | "items" | "not" => self.prepare(sub, &here)?,
                "anyOf" | "oneOf" | "allOf" => {
                    let Value::Array(list) = sub else {
                        return Err(SchemaError(format!("{here}: not an array")));
                    };
                    for (i, s) in list.iter().enumerate() {
                        self.prepare(s, &format!("{here}/{i}"))?;
                    }
                }
                "pattern" => {
                    let Value::String(p) = sub else {
                        return Err(SchemaError(format!("{here}: not a string")));
                    };
                    let re = regex::Regex::new(&ecma_classes(p))
                        .map_err(|e| SchemaError(format!("{here}: {e}")))?;
                    self.patterns.insert(p.clone(), re);
                }
                "enum" | "required" if !sub.is_array() => {
                    return Err(SchemaError(format!("{here}: not an array")));
                }
                "required"
                    if !sub
                        .as_array()
                        .is_some_and(|a| a.iter().all(Value::is_string)) =>
                {
                    return Err(SchemaError(format!("{here}: not an array of names")));
                }
                "type" if !type_names(sub) => {
                    return Err(SchemaError(format!(
                        "{here}: not a type name or a list of them"
                    )));
                }
                "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" | "minLength"
                | "maxLength" | "minItems" | "maxItems"
                    if !sub.is_number() =>
                {
                    return Err(SchemaError(format!("{here}: not a number")));
                }
                "$ref" => {
                    let Value::String(r) = sub else {
                        return Err(SchemaError(format!("{here}: not a string")));
                    };
                    if self.resolve(r).is_none() {
                        return Err(SchemaError(format!("{here}: `{r}` leads to nothing")));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The schema a local `$ref` (`#`, `#/$defs/Name`, any JSON Pointer in the document)
    /// names.
    fn resolve(&self, r: &str) -> Option<&Value> {
        let pointer = r.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    // Kept whole (over 80 lines): one arm per keyword, in the draft's order.
    #[allow(clippy::too_many_lines)]
    fn check(
        &self,
        schema: &Value,
        v: &Value,
        path: &str,
        out: &mut Vec<ValidationError>,
        depth: u32,
    ) {
        let mut fail = |message: String| {
            out.push(ValidationError {
                path: path.to_string(),
                message,
            });
        };
        let obj: &Map<String, Value> = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => return fail("nothing is allowed here (false schema)".into()),
            Value::Object(o) => o,
            _ => return,
        };
        if depth > 64 {
            return fail("the schema's references go 64 deep: a loop".into());
        }
        if let Some(Value::String(r)) = obj.get("$ref") {
            match self.resolve(r) {
                Some(target) => self.check(target, v, path, out, depth + 1),
                None => out.push(ValidationError {
                    path: path.to_string(),
                    message: format!("`{r}` leads to nothing"),
                }),
            }
        }
        let mut fail = |message: String| {
            out.push(ValidationError {
                path: path.to_string(),
                message,
            });
        };
        if let Some(t) = obj.get("type") {
            let allowed: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !allowed.iter().any(|a| is_type(v, a)) {
                fail(format!("{v} is not of type {}", allowed.join(" or ")));
            }
        }
        if let Some(Value::Array(options)) = obj.get("enum")
            && !options.iter().any(|o| same(o, v))
        {
            fail(format!(
                "{v} is not one of {}",
                Value::Array(options.clone())
            ));
        }
        if let Some(c) = obj.get("const")
            && !same(c, v)
        {
            fail(format!("{c} was expected, not {v}"));
        }
        if let (Some(Value::String(p)), Value::String(s)) = (obj.get("pattern"), v)
            && let Some(re) = self.patterns.get(p)
            && !re.is_match(s)
        {
            fail(format!("{v} does not match {p:?}"));
        }
        if let Value::String(s) = v {
            let n = s.chars().count() as f64;
            if let Some(min) = obj.get("minLength").and_then(Value::as_f64)
                && n < min
            {
                fail(format!("{v} is shorter than {min}"));
            }
            if let Some(max) = obj.get("maxLength").and_then(Value::as_f64)
                && n > max
            {
                fail(format!("{v} is longer than {max}"));
            }
        }
        if let Some(n) = v.as_f64() {
            let bound = |k: &str| obj.get(k).and_then(Value::as_f64);
            if bound("minimum").is_some_and(|m| n < m) {
                fail(format!("{v} is less than the minimum {}", obj["minimum"]));
            }
            if bound("maximum").is_some_and(|m| n > m) {
                fail(format!("{v} is more than the maximum {}", obj["maximum"]));
            }
            if bound("exclusiveMinimum").is_some_and(|m| n <= m) {
                fail(format!("{v} is not more than {}", obj["exclusiveMinimum"]));
            }
            if bound("exclusiveMaximum").is_some_and(|m| n >= m) {
                fail(format!("{v} is not less than {}", obj["exclusiveMaximum"]));
            }
        }
        if let Value::Object(fields) = v {
            if let Some(Value::Array(required)) = obj.get("required") {
                for r in required.iter().filter_map(Value::as_str) {
                    if !fields.contains_key(r) {
                        fail(format!("\"{r}\" is a required property"));
                    }
                }
            }
            let props = obj.get("properties").and_then(Value::as_object);
            for (k, fv) in fields {
                let at = format!("{path}/{}", escape(k));
                match props.and_then(|p| p.get(k)) {
                    Some(s) => self.check(s, fv, &at, out, depth + 1),
                    None => match obj.get("additionalProperties") {
                        Some(Value::Bool(false)) => out.push(ValidationError {
                            path: path.to_string(),
                            message: format!(
                                "additional properties are not allowed ({k:?} was unexpected)"
                            ),
                        }),
                        Some(s) => self.check(s, fv, &at, out, depth + 1),
                        None => {}
                    },
                }
            }
        }
        let mut fail = |message: String| {
            out.push(ValidationError {
                path: path.to_string(),
                message,
            });
        };
        if let Value::Array(items) = v {
            let n = items.len() as f64;
            if let Some(min) = obj.get("minItems").and_then(Value::as_f64)
                && n < min
            {
                fail(format!("{v} has fewer than {min} items"));
            }
            if let Some(max) = obj.get("maxItems").and_then(Value::as_f64)
                && n > max
            {
                fail(format!("{v} has more than {max} items"));
            }
            if let Some(s) = obj.get("items") {
                for (i, item) in items.iter().enumerate() {
                    self.check(s, item, &format!("{path}/{i}"), out, depth + 1);
                }
            }
        }
        let valid = |s: &Value| {
            let mut errs = Vec::new();
            self.check(s, v, path, &mut errs, depth + 1);
            errs.is_empty()
        };
        let mut fail = |message: String| {
            out.push(ValidationError {
                path: path.to_string(),
                message,
            });
        };
        if let Some(Value::Array(all)) = obj.get("allOf") {
            for (i, s) in all.iter().enumerate() {
                if !valid(s) {
                    fail(format!("{v} is not valid under allOf/{i}"));
                }
            }
        }
        if let Some(Value::Array(any)) = obj.get("anyOf")
            && !any.iter().any(valid)
        {
            fail(format!(
                "{v} is not valid under any of the schemas listed in anyOf"
            ));
        }
        if let Some(Value::Array(one)) = obj.get("oneOf") {
            match one.iter().filter(|s| valid(s)).count() {
                1 => {}
                0 => fail(format!(
                    "{v} is not valid under any of the schemas listed in oneOf"
                )),
                n => fail(format!(
                    "{v} is valid under {n} of the schemas listed in oneOf, not one"
                )),
            }
        }
        if let Some(not) = obj.get("not")
            && valid(not)
        {
            fail(format!("{v} is valid under the schema in not"));
        }
    }
}

/// Whether `t` is a type name of the draft, or a list of them (validation §6.1.1).
fn type_names(t: &Value) -> bool {
    const NAMES: &[&str] = &[
        "null", "boolean", "object", "array", "number", "string", "integer",
    ];
    match t {
        Value::String(s) => NAMES.contains(&s.as_str()),
        Value::Array(a) => a
            .iter()
            .all(|x| x.as_str().is_some_and(|s| NAMES.contains(&s))),
        _ => false,
    }
}

/// `pattern` with ECMA-262's meaning of `\d`, `\D`, `\w` and `\W` (ASCII digits and word
/// characters), which Rust's regex gives to every Unicode digit and letter. A class inside a
/// class is a union in Rust's syntax, so they may stand inside brackets too.
fn ecma_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str("[0-9]"),
            Some('D') => out.push_str("[^0-9]"),
            Some('w') => out.push_str("[A-Za-z0-9_]"),
            Some('W') => out.push_str("[^A-Za-z0-9_]"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Whether `v` is of the JSON Schema type `t`; an integer is a number with no fraction
/// (2020-12 validation §6.1.1).
fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

/// JSON equality, with numbers equal by value (`1` is `1.0`), as the draft's `enum` and
/// `const` compare (core §4.2.2).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| same(p, q)))
        }
        _ => a == b,
    }
}

/// A member name as a JSON Pointer token (RFC 6901 §3).
fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn errors(schema: Value, v: Value) -> Vec<String> {
        validator_for(&schema)
            .unwrap()
            .iter_errors(&v)
            .map(|e| format!("{} at {:?}", e, e.instance_path()))
            .collect()
    }

    #[test]
    fn each_keyword_fails_what_it_should_and_passes_the_rest() {
        let s = json!({
            "$defs": {"Name": {"type": "string", "pattern": "^[a-z]+$", "minLength": 2}},
            "type": "object",
            "required": ["name"],
            "additionalProperties": false,
            "properties": {
                "name": {"$ref": "#/$defs/Name"},
                "n": {"type": "integer", "minimum": 1, "maximum": 3},
                "kind": {"enum": ["a", "b"]},
                "v": {"const": "v1"},
                "list": {"type": "array", "items": {"type": ["string", "null"]}, "maxItems": 2},
                "any": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "one": {"oneOf": [{"type": "integer"}, {"type": "number"}]},
                "map": {"type": "object", "additionalProperties": {"type": "boolean"}}
            }
        });
        let good = json!({"name": "ab", "n": 2, "kind": "a", "v": "v1", "list": ["x", null],
                          "any": 3, "one": 1.5, "map": {"x": true}});
        assert_eq!(errors(s.clone(), good), Vec::<String>::new());
        let cases = [
            (json!({}), "\"name\" is a required property at \"\""),
            (
                json!({"name": "ab", "extra": 1}),
                "\"extra\" was unexpected) at \"\"",
            ),
            (
                json!({"name": "AB"}),
                "does not match \"^[a-z]+$\" at \"/name\"",
            ),
            (json!({"name": "a"}), "is shorter than 2 at \"/name\""),
            (json!({"name": 1}), "1 is not of type string at \"/name\""),
            (
                json!({"name": "ab", "n": 1.5}),
                "1.5 is not of type integer at \"/n\"",
            ),
            (
                json!({"name": "ab", "n": 4}),
                "more than the maximum 3 at \"/n\"",
            ),
            (
                json!({"name": "ab", "n": 0}),
                "less than the minimum 1 at \"/n\"",
            ),
            (
                json!({"name": "ab", "kind": "c"}),
                "is not one of [\"a\",\"b\"] at \"/kind\"",
            ),
            (
                json!({"name": "ab", "v": "v2"}),
                "\"v1\" was expected, not \"v2\" at \"/v\"",
            ),
            (
                json!({"name": "ab", "list": [1]}),
                "1 is not of type string or null at \"/list/0\"",
            ),
            (
                json!({"name": "ab", "list": ["a", "b", "c"]}),
                "has more than 2 items at \"/list\"",
            ),
            (
                json!({"name": "ab", "any": true}),
                "any of the schemas listed in anyOf at \"/any\"",
            ),
            (
                json!({"name": "ab", "one": 2}),
                "valid under 2 of the schemas listed in oneOf",
            ),
            (
                json!({"name": "ab", "map": {"a/b": 1}}),
                "1 is not of type boolean at \"/map/a~1b\"",
            ),
        ];
        for (v, expected) in cases {
            let errs = errors(s.clone(), v.clone());
            assert!(
                errs.iter().any(|e| e.contains(expected)),
                "{v}: {errs:?}, wanted {expected}"
            );
        }
    }

    #[test]
    fn a_schema_with_an_unknown_keyword_or_a_dangling_ref_is_refused() {
        assert!(validator_for(&json!({"if": {"type": "string"}})).is_err());
        assert!(validator_for(&json!({"properties": {"a": {"$ref": "#/$defs/Nope"}}})).is_err());
        assert!(validator_for(&json!({"pattern": "("})).is_err());
        assert!(validator_for(&json!({"enum": "a"})).is_err());
        assert!(validator_for(&json!({"required": [1]})).is_err());
        assert!(validator_for(&json!({"minimum": "1"})).is_err());
        assert!(validator_for(&json!({"type": "text"})).is_err());
        assert!(validator_for(&json!({"format": "uint", "description": "x"})).is_ok());
    }

    /// `\d` and `\w` are ECMA-262's: ASCII only, also inside a class; an escaped backslash
    /// stays one.
    #[test]
    fn patterns_have_ecma_262s_digits_and_word_characters() {
        let s = json!({"pattern": "^\\d{2}[\\w-]$"});
        assert_eq!(errors(s.clone(), json!("12a")), Vec::<String>::new());
        assert_eq!(errors(s.clone(), json!("12-")), Vec::<String>::new());
        assert_eq!(
            errors(s.clone(), json!("\u{663}2a")).len(),
            1,
            "an Arabic-Indic digit"
        );
        assert_eq!(
            errors(s, json!("12\u{e9}")).len(),
            1,
            "a letter beyond ASCII"
        );
        let backslash = json!({"pattern": "^\\\\d$"});
        assert_eq!(errors(backslash, json!("\\d")), Vec::<String>::new());
    }

    #[test]
    fn boolean_schemas_and_not() {
        assert_eq!(errors(json!(true), json!(1)), Vec::<String>::new());
        assert_eq!(errors(json!(false), json!(1)).len(), 1);
        assert_eq!(
            errors(json!({"not": {"type": "string"}}), json!("x")).len(),
            1
        );
        assert_eq!(
            errors(json!({"not": {"type": "string"}}), json!(1)).len(),
            0
        );
    }

    /// The published schemas are all within what this checker knows.
    #[test]
    fn the_published_schemas_are_within_the_checkers_keywords() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let schema: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
        assert!(n >= 3, "found {n} schemas");
    }
}
