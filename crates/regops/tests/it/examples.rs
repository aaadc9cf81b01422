//! Every example spec is valid and its credentials decrypt with the example's throwaway
//! identity, so the README's commands and the examples it links keep working.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use common::{regops, repo, run};

#[test]
fn every_example_spec_checks_with_its_example_identity() {
    let mut checked = Vec::new();
    for dir in std::fs::read_dir(repo().join("examples")).unwrap() {
        let dir = dir.unwrap().path();
        let key = dir.join("example-key.txt");
        if !key.is_file() {
            continue;
        }
        for spec in std::fs::read_dir(&dir).unwrap() {
            let spec = spec.unwrap().path();
            if spec.extension().is_none_or(|e| e != "yaml") || spec.ends_with("state.yaml") {
                continue;
            }
            // Credentials read from the environment get a value, as CI would give them.
            let text = std::fs::read_to_string(&spec).unwrap();
            let mut cmd = regops();
            for var in text.split("env: ").skip(1) {
                let name: String = var
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                cmd.env(name, "from-the-environment");
            }
            let r = run(cmd.arg("check").arg("-f").arg(&spec).arg("-i").arg(&key));
            assert_eq!(r.code, 0, "{}: {}", spec.display(), r.transcript());
            checked.push(spec.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    checked.sort();
    assert!(checked.contains(&"fleet.yaml".to_string()), "{checked:?}");
    assert!(checked.len() >= 4, "{checked:?}");
}

/// The fleet example goes where it says: each cluster renders the pull secrets of the scopes on
/// it (the Rancher project only on its own cluster).
#[test]
fn the_fleet_example_puts_each_pull_secret_on_its_clusters() {
    let spec = repo().join("examples/fleet/fleet.yaml");
    let key = repo().join("examples/fleet/example-key.txt");
    let render = |cluster: &str| {
        let r = run(regops()
            .args(["render", "-f"])
            .arg(&spec)
            .arg("-i")
            .arg(&key)
            .args(["--cluster", cluster, "-n", "payments,canary"]));
        assert_eq!(r.code, 0, "{}", r.transcript());
        let mut names: Vec<String> = r
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("  name: "))
            .map(|n| n.trim_matches('"').to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    };
    assert_eq!(render("staging"), ["harbor-canary", "harbor-pull"]);
    assert_eq!(render("prod-us"), ["harbor-payments", "harbor-pull"]);
    assert_eq!(
        render("prod-eu"),
        ["harbor-data", "harbor-payments", "harbor-pull"]
    );
}

/// Every regops command in the CI examples is one regops accepts (flags and their values as
/// written there; the shell's variables stand for paths).
#[test]
fn every_regops_command_in_the_ci_examples_parses() {
    use clap::Parser;
    let mut seen = 0;
    for file in std::fs::read_dir(repo().join("examples/ci")).unwrap() {
        let file = file.unwrap().path();
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("regops ") else {
                continue;
            };
            // The command ends at a redirection, a pipe or a `||`.
            let words: Vec<String> = std::iter::once("regops")
                .chain(
                    rest.split_whitespace()
                        .take_while(|w| !w.starts_with('>') && *w != "|" && *w != "||"),
                )
                .map(|w| w.trim_matches('"').to_string())
                .collect();
            if let Err(e) = regops::cli::Cli::try_parse_from(&words) {
                panic!("{}: `{line}` does not parse:\n{e}", file.display());
            }
            seen += 1;
        }
    }
    // The plan, show and apply of the saved-plan workflow, and the others'.
    assert!(seen >= 6, "only {seen} commands found");
}
