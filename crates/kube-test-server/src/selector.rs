//! Label and field selectors, parsed as the API server parses them.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed `labelSelector` (all requirements must hold).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn values(list: &str) -> Result<Vec<String>, String> {
    let inner = list
        .trim()
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised list, found `{list}`"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s)
            .into_iter()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(key.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Equals(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Equals(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once(" notin ") {
                Requirement::NotIn(k.trim().to_string(), values(v)?)
            } else if let Some((k, v)) = part.split_once(" in ") {
                Requirement::In(k.trim().to_string(), values(v)?)
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
            {
                Requirement::Exists(part.to_string())
            } else {
                return Err(format!("unable to parse requirement: `{part}`"));
            };
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

/// A parsed `fieldSelector`: `metadata.name` and `metadata.namespace` for every kind, and
/// `status.phase` for pods, with `=`/`==`/`!=`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::parse_for("", s)
    }

    /// As [`FieldSelector::parse`], with the fields `kind` adds: the API server registers
    /// selectable fields per resource (`status.phase` and others for pods, in
    /// pkg/registry/core/pod/strategy.go `PodToSelectableFields`; `type` for secrets, in
    /// pkg/registry/core/secret/strategy.go `SelectableFields`); any other field is refused
    /// with "field label not supported".
    pub fn parse_for(kind: &str, s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!("invalid field selector: `{part}`"));
            };
            let field = field.trim();
            let for_kind =
                (kind == "Pod" && field == "status.phase") || (kind == "Secret" && field == "type");
            if !for_kind && !matches!(field, "metadata.name" | "metadata.namespace") {
                return Err(format!("field label not supported: {field}"));
            }
            out.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, value)| {
            let actual = match field.as_str() {
                "metadata.name" => obj["metadata"]["name"].as_str().unwrap_or(""),
                "status.phase" => obj["status"]["phase"].as_str().unwrap_or(""),
                "type" => obj["type"].as_str().unwrap_or(""),
                _ => obj["metadata"]["namespace"].as_str().unwrap_or(""),
            };
            (actual == value) == *eq
        })
    }
}

/// The fuzz target's entry: a `labelSelector` and a `fieldSelector` parsed from arbitrary
/// bytes, and the label selector matched against a few labels. Must not panic.
pub fn fuzz_entry(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(sel) = LabelSelector::parse(&text) {
        let labels = serde_json::json!({"app": "web", "team": "", "a": "b"});
        let _ = sel.matches(labels.as_object());
        let _ = sel.matches(None);
    }
    if let Ok(sel) = FieldSelector::parse(&text) {
        let _ = sel.matches(&serde_json::json!({"metadata": {"name": "x", "namespace": "y"}}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn set_based_and_equality() {
        let l = labels(json!({"team": "a", "env": "prod"}));
        let yes = [
            "team=a",
            "team==a",
            "env!=dev",
            "team in (a,b)",
            "team notin (c)",
            "env",
            "!missing",
            "team in (a, b),env=prod",
            "x notin (a)",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches(Some(&l)), "{s}");
        }
        let no = [
            "team=b",
            "team in (b,c)",
            "team notin (a)",
            "missing",
            "!team",
            "team=a,env=dev",
        ];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches(Some(&l)), "{s}");
        }
        assert!(LabelSelector::parse("team in a").is_err());
    }

    #[test]
    fn fields() {
        let o = json!({"metadata": {"name": "x", "namespace": "web"}});
        assert!(FieldSelector::parse("metadata.name=x").unwrap().matches(&o));
        assert!(
            FieldSelector::parse("metadata.namespace!=api,metadata.name==x")
                .unwrap()
                .matches(&o)
        );
        assert!(
            !FieldSelector::parse("metadata.namespace=api")
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse("spec.x=1").is_err());
    }
}
