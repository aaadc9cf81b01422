//! A format-neutral document tree in which every value and every key knows where it came from.
//!
//! YAML and TOML are both read into this tree, so validation, diagnostics and in-place edits
//! are written once. Scalars keep their source text: whether `5` is a number or a name is
//! decided by the field that reads it, not by the parser.

/// Index of a source file in [`crate::Sources`].
pub type FileId = usize;

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Loc {
    pub file: FileId,
    pub start: usize,
    pub end: usize,
}

impl Loc {
    pub fn new(file: FileId, start: usize, end: usize) -> Self {
        Loc {
            file,
            start,
            end: end.max(start),
        }
    }

    /// The smallest range covering both.
    pub fn join(self, other: Loc) -> Loc {
        Loc::new(
            self.file,
            self.start.min(other.start),
            self.end.max(other.end),
        )
    }
}

/// A value with the place it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub loc: Loc,
}

impl<T> Spanned<T> {
    pub fn new(value: T, loc: Loc) -> Self {
        Spanned { value, loc }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl Spanned<String> {
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub loc: Loc,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Spanned<String>, Node)>),
}

/// A scalar as written. `quoted` is true for quoted YAML scalars, block scalars and TOML strings:
/// those are always strings, never null or booleans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scalar {
    pub text: String,
    pub quoted: bool,
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar(_) if self.is_null() => "null",
            Value::Scalar(_) => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// A plain `~`, `null` or empty scalar (YAML's core schema).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(Scalar { text, quoted: false })
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The value as JSON, with plain scalars typed as YAML's core schema does (booleans, null,
    /// numbers); quoted scalars stay strings. Used to check documents against the JSON Schema.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Scalar(_) if self.is_null() => J::Null,
            Value::Scalar(Scalar { text, quoted: true }) => J::String(text.clone()),
            Value::Scalar(Scalar {
                text,
                quoted: false,
            }) => match text.as_str() {
                "true" | "True" | "TRUE" => J::Bool(true),
                "false" | "False" | "FALSE" => J::Bool(false),
                t => t
                    .parse::<i64>()
                    .map(J::from)
                    .ok()
                    .or_else(|| t.parse::<f64>().ok().filter(|f| f.is_finite()).map(J::from))
                    .unwrap_or_else(|| J::String(t.to_string())),
            },
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.value.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.value == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn key_loc(&self, key: &str) -> Option<Loc> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.value == key)
                .map(|(k, _)| k.loc),
            _ => None,
        }
    }
}
