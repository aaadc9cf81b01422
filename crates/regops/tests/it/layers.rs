//! The layers stay apart: clap's types, and the flag structs made with them, live in the cli
//! layer (`cli.rs`, `commands/`, `main.rs`) alone. Below it, code takes plain options
//! (`regops::options`), so the loading, cluster, fleet and controller code can be driven
//! without a command line (cargo's `ops` take `CompileOptions`, never clap's matches).

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
        rel == Path::new("cli.rs") || rel == Path::new("main.rs") || rel.starts_with("commands")
    };
    // The flag structs cli.rs defines (`…Args`, `ColorChoice`; its `Command` and
    // `LoadRestrictor` share their names with std's and regops_spec's), and clap itself.
    let cli_text = std::fs::read_to_string(src.join("cli.rs")).unwrap();
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
