//! The Prometheus text exposition format (version 0.0.4), written in one place: `regops
//! drift --metrics-file` (node-exporter's textfile collector) and the controller's `/metrics`
//! both build their text with [`Exposition`].

use std::fmt::Write as _;

/// A metric family's type, as `# TYPE` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Gauge,
    Counter,
    Histogram,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Gauge => "gauge",
            Type::Counter => "counter",
            Type::Histogram => "histogram",
        }
    }
}

/// The text being written: families, each with its `# HELP` and `# TYPE`, then its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn new() -> Self {
        Exposition::default()
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, type_: Type, help: &str) {
        let _ = writeln!(
            self.text,
            "# HELP {name} {help}\n# TYPE {name} {}",
            type_.as_str()
        );
    }

    /// One sample, `name{labels} value`, with `labels` rendered by [`labels`] (and perhaps
    /// more appended, each value escaped with [`escape`]).
    pub fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.text, "{name}{{{labels}}} {value}");
    }

    pub fn into_string(self) -> String {
        self.text
    }
}

/// A label value escaped as the format says: backslash, double quote and newline.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Labels rendered for a sample: `spec="web",cluster="eu"`, values escaped.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_and_its_samples_with_escaped_labels() {
        let mut e = Exposition::new();
        e.family("regops_x", Type::Counter, "Things.");
        e.sample("regops_x", &labels(&[("spec", "a\"b\\c\nd")]), 3);
        assert_eq!(
            e.into_string(),
            "# HELP regops_x Things.\n# TYPE regops_x counter\nregops_x{spec=\"a\\\"b\\\\c\\nd\"} 3\n"
        );
    }
}
