//! The regops spec: what a user writes, read from YAML or TOML with every position kept, checked
//! completely before anything touches a cluster, and reported as diagnostics that point at the
//! offending text.
//!
//! ```text
//! files -> Sources -> Node (yaml.rs / toml.rs) -> Spec per file (decode.rs) -> merged Spec
//!       -> cross-references (validate.rs) -> Loaded, or Diagnostics
//! ```

pub mod decode;
pub mod diagnostic;
pub mod duration;
pub mod edit;
pub mod fleet;
pub mod kind;
pub mod masked;
pub mod model;
pub mod node;
pub mod open;
pub mod rules;
pub mod schema;
pub mod source;
mod toml;
pub mod trust;
pub mod untrusted;
mod validate;
mod yaml;

pub use diagnostic::{Diagnostic, Diagnostics, RenderOptions, Severity};
pub use kind::{ObjectKind, WorkloadKind};
pub use model::*;
pub use node::{FileId, Loc, Node, Spanned, Value};
pub use source::{LoadError, SourceFile, Sources, SpecFormat};

/// One YAML document read into a [`Node`] tree, for YAML files that are not specs (the sops
/// files a spec names): the same parser, with the same bounds on aliases and nesting. On failure,
/// the byte offset of the first problem (a caller that must not echo the file's text says where,
/// not what).
pub fn parse_yaml_document(text: &str) -> Result<Node, usize> {
    let mut diags = Diagnostics::default();
    match yaml::parse(0, text, &mut diags) {
        Some(node) if diags.is_empty() => Ok(node),
        _ => Err(diags
            .iter()
            .filter_map(|d| d.labels.first().map(|l| l.loc.start))
            .next()
            .unwrap_or(0)),
    }
}

/// A spec that parsed and validated, with the warnings found on the way.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub sources: Sources,
    pub spec: Spec,
    /// `metadata.name`, or the stem of the first file (the directory's name for a directory).
    pub name: String,
    pub warnings: Diagnostics,
    /// What the operator let the spec reach beyond the defaults (checked by
    /// [`trust::check`]; the readers of files, variables and kubeconfigs apply it again).
    pub policy: trust::Policy,
}

/// A spec that did not validate: every problem found, errors and warnings.
#[derive(Clone, Debug)]
pub struct Invalid {
    pub sources: Sources,
    pub diagnostics: Diagnostics,
    /// What could be read despite the errors (for commands that repair a spec, like encrypt).
    pub partial: Spec,
}

/// Parses, decodes, merges and validates the files in `sources`.
pub fn load(mut sources: Sources, default_name: &str) -> Result<Loaded, Box<Invalid>> {
    let mut diags = Diagnostics::default();
    let mut merged = Spec::default();
    let mut redactions = Vec::new();
    let mut parsed_all = true;
    let mut roots = Vec::new();
    for id in 0..sources.files().len() {
        match sources.parse(id, &mut diags) {
            Some(root) => roots.push(root),
            None => parsed_all = false,
        }
    }
    // The declared workload kinds first, from every file: a binding may name a kind that
    // another file declares.
    for root in &roots {
        let kinds = decode::Decoder::new(&mut diags).workload_kinds(root);
        decode::merge_map(
            &mut merged.workload_kinds,
            kinds,
            "workload kind",
            |k| k.name.loc,
            &mut diags,
        );
    }
    for root in &roots {
        let mut decoder = decode::Decoder::new(&mut diags).with_kinds(&merged.workload_kinds);
        let spec = decoder.spec(root);
        redactions.append(&mut decoder.redactions);
        decode::merge(&mut merged, spec, &mut diags);
    }
    for loc in redactions {
        sources.redact(loc);
    }
    // References are checked only on a complete spec: with a file missing, every reference
    // into it would be reported too.
    if parsed_all {
        validate::references(&merged, &mut diags);
        validate::clusters(&merged, &mut diags);
    }
    // Without `metadata.name`, the file name stands in; it names the Lease, the label key
    // `pull-secrets.regops.dev/<name>` and the field manager, so it must be a DNS label too.
    if merged.metadata.name.is_none()
        && let Err(why) = rules::dns1123_label(default_name)
    {
        diags.push(
            Diagnostic::error(
                "spec::name",
                format!(
                    "the spec has no `metadata.name`, and its file name `{default_name}` cannot stand in for one: it {why}"
                ),
            )
            .with_help("set `metadata.name` to a lowercase DNS label (letters, digits and '-', at most 63 characters): it names the spec's Lease, its label key and its field manager"),
        );
    }
    diags.sort();
    if diags.has_errors() {
        return Err(Box::new(Invalid {
            sources,
            diagnostics: diags,
            partial: merged,
        }));
    }
    let name = merged
        .metadata
        .name
        .as_ref()
        .map_or_else(|| default_name.to_string(), |n| n.value.clone());
    Ok(Loaded {
        sources,
        spec: merged,
        name,
        warnings: diags,
        policy: trust::Policy::default(),
    })
}
