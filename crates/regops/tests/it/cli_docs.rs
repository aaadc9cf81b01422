//! Help, completions and the man page come from the clap definitions, and every subcommand's
//! help shows examples.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use common::{regops, run};

const SUBCOMMANDS: [&str; 14] = [
    "check",
    "render",
    "keygen",
    "encrypt",
    "import",
    "rekey",
    "plan",
    "apply",
    "drift",
    "validate",
    "cluster-info",
    "completions",
    "man",
    "schema",
];

#[test]
fn every_subcommand_has_help_with_examples() {
    for sub in SUBCOMMANDS {
        let r = run(regops().arg(sub).arg("--help"));
        assert_eq!(r.code, 0, "{sub}: {}", r.stderr);
        if sub != "schema" {
            assert!(
                r.stdout.contains("Examples:"),
                "`regops {sub} --help` has no examples:\n{}",
                r.stdout
            );
        }
    }
    let top = run(regops().arg("--help"));
    for sub in SUBCOMMANDS {
        assert!(
            top.stdout.contains(sub),
            "`regops --help` does not list {sub}"
        );
    }
}

#[test]
fn completions_for_each_shell_know_the_subcommands_and_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let r = run(regops().args(["completions", shell]));
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        // fish writes long flags as `-l kubeconfig`.
        for word in ["plan", "apply", "kubeconfig", "live-state"] {
            assert!(r.stdout.contains(word), "{shell} completion lacks {word}");
        }
    }
}

#[test]
fn the_man_page_is_roff_and_lists_the_subcommands() {
    let r = run(regops().arg("man"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with(".ie") || r.stdout.contains(".TH regops 1"),
        "{}",
        &r.stdout[..200.min(r.stdout.len())]
    );
    for sub in ["plan", "apply", "encrypt"] {
        assert!(r.stdout.contains(sub), "man page lacks {sub}");
    }
}

/// `--output` offers exactly the formats of each command's view (regops-core `format::View`):
/// Markdown for plan and show, not for the reports, which say what they have.
#[test]
fn output_offers_the_formats_of_each_commands_view() {
    for (sub, markdown) in [
        ("plan", true),
        ("show", true),
        ("apply", false),
        ("drift", false),
        ("validate", false),
    ] {
        let help = run(regops().args([sub, "--help"]));
        assert_eq!(help.code, 0, "{sub}");
        assert!(help.stdout.contains("- json:"), "{sub}: {}", help.stdout);
        assert_eq!(
            help.stdout.contains("- markdown:"),
            markdown,
            "{sub}: {}",
            help.stdout
        );
        if !markdown {
            let r = run(regops().args([sub, "-f", "spec.yaml", "--output", "markdown"]));
            assert_eq!(r.code, 1, "a usage error is 1: {sub}: {}", r.stderr);
            assert!(
                r.stderr.contains("[possible values: text, json]"),
                "{sub}: {}",
                r.stderr
            );
        }
    }
}
