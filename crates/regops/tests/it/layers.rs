//! The layers stay apart: clap's types, and the flag structs made with them, live in the cli
//! layer (`cli/`, `main.rs`) alone. Below it, code takes plain options
//! (`regops::ops::options`), so the loading, cluster, fleet and controller code can be driven
//! without a command line (cargo's `ops` take `CompileOptions`, never clap's matches). And
//! each layer calls only down: `cli` → `controller` → `ops` → `inputs`, `cluster`,
//! `registry` (the folders of `crates/regops/src`, as docs/design.md draws them).

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_clap_type_is_used_below_the_cli_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let cli_layer = |p: &Path| {
        let rel = p.strip_prefix(&src).unwrap();
        rel.starts_with("cli") || rel == Path::new("main.rs")
    };
    // The flag structs cli/mod.rs defines (`…Args`, `ColorChoice`; its `Command` and
    // `LoadRestrictor` share their names with std's and regops_spec's), and clap itself.
    let cli_text = std::fs::read_to_string(src.join("cli").join("mod.rs")).unwrap();
    let flag_types: Vec<String> = cli_text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("pub struct ")
                .or_else(|| l.strip_prefix("pub enum "))
                .map(|rest| rest.split([' ', '{', '<']).next().unwrap().to_string())
        })
        .filter(|t| t.ends_with("Args") || t == "ColorChoice")
        .collect();
    assert!(flag_types.iter().any(|t| t == "RunArgs"), "{flag_types:?}");
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !cli_layer(f)) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            let named = code.contains("clap::")
                || code.contains("crate::cli")
                || code.contains("regops::cli")
                || flag_types.iter().any(|t| {
                    code.match_indices(t.as_str()).any(|(i, _)| {
                        let before = code[..i].chars().last();
                        let after = code[i + t.len()..].chars().next();
                        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    })
                });
            if named {
                found.push(format!(
                    "{}:{}: {}",
                    file.strip_prefix(&src).unwrap().display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "clap types below the cli layer (take an options struct instead):\n{}",
        found.join("\n")
    );
}

/// Which layer a file of `crates/regops/src` is in, by its folder; `None` for the shared
/// modules at the top (output, failure, errors, atomic, bounded) that every layer may use.
fn layer(rel: &Path) -> Option<&'static str> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(match first {
        "cli" | "main.rs" => "cli",
        "controller" => "controller",
        "ops" => "ops",
        "inputs" => "inputs",
        "cluster" => "cluster",
        "registry.rs" => "registry",
        _ => return None,
    })
}

/// The layers each layer may name (besides its own and the shared modules).
fn may_call(layer: &str) -> &'static [&'static str] {
    match layer {
        "cli" => &["controller", "ops", "inputs", "cluster", "registry"],
        "controller" => &["ops", "inputs", "cluster", "registry"],
        "ops" => &["inputs", "cluster", "registry"],
        // The I/O layers beside each other: minting uses the registry's HTTP connector; the
        // kubeconfig's exec plugins start as helpers do; a registry login reads credentials.
        // Time and timeouts come down in the run's context (crate::context), not sideways.
        "inputs" => &["registry"],
        "cluster" => &["inputs"],
        "registry" => &["inputs"],
        _ => &[],
    }
}

#[test]
fn each_layer_calls_only_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let layers = ["cli", "controller", "ops", "inputs", "cluster", "registry"];
    let mut found = Vec::new();
    let mut checked = 0;
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let Some(from) = layer(rel) else { continue };
        checked += 1;
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            for to in layers {
                if to != from
                    && !may_call(from).contains(&to)
                    && (code.contains(&format!("crate::{to}::"))
                        || code.contains(&format!("crate::{to};")))
                {
                    found.push(format!(
                        "{}:{}: {from} names {to}: {}",
                        rel.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    // The walk saw every layer's files (a renamed folder would make this test see nothing).
    assert!(checked > 40, "only {checked} files in the layers");
    for l in layers {
        assert!(
            files
                .iter()
                .any(|f| layer(f.strip_prefix(&src).unwrap()) == Some(l)),
            "no file in layer {l}"
        );
    }
    assert!(
        found.is_empty(),
        "a layer names one above it (move the code down, or pass what it needs):\n{}",
        found.join("\n")
    );
}

/// docs/design.md's layout section names every folder of `crates/regops/src` and every module
/// in the layers' folders, so the picture a reader starts from is the tree.
#[test]
fn the_design_docs_layout_matches_the_tree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let design = std::fs::read_to_string(root.join("../../docs/design.md")).unwrap();
    let start = design.find("## Layout").unwrap();
    let layout = &design[start..];
    let layout = &layout[..layout[3..].find("\n## ").map_or(layout.len(), |i| i + 3)];
    let src = root.join("src");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !path.is_dir() {
            continue;
        }
        if !layout.contains(&format!("src/{name}/")) {
            missing.push(format!("src/{name}/"));
        }
        if ["ops", "inputs", "cluster"].contains(&name.as_str()) {
            for module in std::fs::read_dir(&path).unwrap() {
                let module = module.unwrap().path();
                let stem = module.file_stem().unwrap().to_str().unwrap().to_string();
                let named = |w: &str| {
                    layout.match_indices(w).any(|(i, _)| {
                        let before = layout[..i].chars().last();
                        let after = layout[i + w.len()..].chars().next();
                        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    })
                };
                if stem != "mod" && !named(&stem) {
                    missing.push(format!("src/{name}/{stem}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/design.md's layout does not name: {missing:?}"
    );
}
