//! The parsers that read untrusted input, each behind one function taking arbitrary bytes:
//! the entry points of the fuzz targets (`fuzz/`, cargo-fuzz on nightly) and of their stable
//! replay in CI (`tests/it/fuzz_replay.rs`). Each must return, without panicking, within the
//! bounds the parsers set themselves (node, depth, alias and size limits); the fuzzers are run
//! with `-timeout=1 -rss_limit_mb=256 -malloc_limit_mb=256`.

use regops_spec::{RenderOptions, Sources, SpecFormat};

fn spec(data: &[u8], format: SpecFormat, name: &str) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut sources = Sources::default();
    sources.add(name.into(), text.to_string(), format);
    let opts = RenderOptions {
        color: false,
        width: 100,
    };
    match regops_spec::load(sources, "fuzz") {
        Ok(loaded) => {
            let _ = regops_spec::diagnostic::render(&loaded.warnings, &loaded.sources, opts);
        }
        // The diagnostics are rendered as a user would see them: spans, cut lines, masking.
        Err(invalid) => {
            let _ = regops_spec::diagnostic::render(&invalid.diagnostics, &invalid.sources, opts);
        }
    }
}

/// A spec in YAML: parsed, decoded, validated, its diagnostics rendered.
pub fn spec_yaml(data: &[u8]) {
    spec(data, SpecFormat::Yaml, "fuzz.yaml");
}

/// A spec in TOML.
pub fn spec_toml(data: &[u8]) {
    spec(data, SpecFormat::Toml, "fuzz.toml");
}

/// A `--live-state` file, JSON or YAML, read into the observed model.
pub fn state_file(data: &[u8]) {
    let _ = crate::cluster::read::from_bytes(data, "fuzz-state");
}

/// An image reference, normalised and matched against a pattern (the input's first line is
/// the pattern when there are two).
pub fn image_ref(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (pattern, image) = text.split_once('\n').unwrap_or(("*", &text));
    let r = regops_core::image::ImageRef::parse(image);
    let _ = r.full();
    let _ = r.pulls_from(pattern);
    let _ = regops_core::image::pattern_matches(pattern, image);
}

/// A `WWW-Authenticate` header value, and the token URL built from its realm.
pub fn www_authenticate(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for c in crate::registry::parse_challenges(&text) {
        let realm = c.param("realm").unwrap_or("");
        let _ = crate::registry::token_url(realm, c.param("service").unwrap_or(""), Some("x"));
    }
    let _ = crate::registry::parse_challenge(&text);
}
