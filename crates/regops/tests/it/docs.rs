//! The README and the guide under `docs/` stay true: every relative link leads to a file that
//! exists (and an `#anchor` to a heading of that page, as GitHub makes them), and every
//! `regops` command in their examples is one regops accepts.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::path::{Path, PathBuf};

use clap::Parser;

fn pages() -> Vec<PathBuf> {
    let root = common::repo();
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(page: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(page).unwrap();
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.starts_with("```") {
                fenced = !fenced;
            }
            !fenced && l.starts_with('#')
        })
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

/// `[text](target)` links outside code, as (target, line number).
fn links(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((after[..end].to_string(), n + 1));
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_link_in_the_readme_and_the_guide_leads_somewhere() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (target, line) in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(path)
            };
            let at = format!("{}:{line}: {target}", page.display());
            if !file.exists() {
                broken.push(format!("{at}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor
                && file.extension().is_some_and(|e| e == "md")
                && !anchors(&file).iter().any(|a| a == anchor)
            {
                broken.push(format!("{at}: no such heading"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked > 50, "only {checked} links found");
}

/// The `regops` commands in the examples (shell and console blocks), joined across `\`
/// continuations and cut at a pipe, redirection, `&&` or comment.
fn commands(text: &str) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    let mut in_shell = false;
    let mut pending = String::new();
    for line in text.lines() {
        if let Some(lang) = line.strip_prefix("```") {
            in_shell = !in_shell && matches!(lang.trim(), "sh" | "console" | "bash" | "shell");
            continue;
        }
        if !in_shell {
            continue;
        }
        let line = line.trim();
        let line = line.strip_prefix("$ ").unwrap_or(line);
        // `printf ... | regops encrypt ...`: the command after the pipe.
        let line = match line.find("| regops ") {
            Some(i) if pending.is_empty() => &line[i + 2..],
            _ => line,
        };
        if !pending.is_empty() {
            pending.push(' ');
            pending.push_str(line);
        } else if let Some(rest) = line
            .strip_prefix("regops ")
            .or_else(|| line.strip_prefix("cargo run -q -- "))
            .or_else(|| line.strip_prefix("cargo run -q --locked -- "))
        {
            pending = format!("regops {rest}");
        } else {
            continue;
        }
        if let Some(stripped) = pending.strip_suffix('\\') {
            pending = stripped.trim_end().to_string();
            continue;
        }
        let shown = std::mem::take(&mut pending);
        let words: Vec<String> = shown
            .split_whitespace()
            .take_while(|w| {
                !w.starts_with('>')
                    && !w.starts_with('#')
                    && !matches!(*w, "|" | "||" | "&&" | "2>&1")
            })
            .map(|w| w.trim_matches(['"', '\'']).to_string())
            .collect();
        out.push((words, shown));
    }
    out
}

#[test]
fn every_regops_command_in_the_readme_and_the_guide_parses() {
    let mut failed = Vec::new();
    let mut seen = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (words, shown) in commands(&text) {
            seen += 1;
            if let Err(e) = regops::cli::Cli::try_parse_from(&words) {
                failed.push(format!(
                    "{}: `{shown}`: {}",
                    page.display(),
                    e.to_string().lines().next().unwrap_or("")
                ));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "commands regops refuses:\n{}",
        failed.join("\n")
    );
    assert!(seen > 30, "only {seen} commands found");
}

/// Nothing of the guide is lost from the index: every page under `docs/` is linked from the
/// README and from `docs/README.md`.
#[test]
fn every_page_of_the_guide_is_linked_from_the_readme_and_the_index() {
    let root = common::repo();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let index = std::fs::read_to_string(root.join("docs/README.md")).unwrap();
    for page in pages().iter().skip(1) {
        let name = page.file_name().unwrap().to_string_lossy();
        if name == "README.md" {
            continue;
        }
        assert!(
            readme.contains(&format!("(docs/{name})")),
            "README does not link {name}"
        );
        assert!(
            index.contains(&format!("({name})")),
            "docs/README.md does not link {name}"
        );
    }
}
