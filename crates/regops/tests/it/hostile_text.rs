//! A hostile API server (issue 37): a pull request's spec may name its own kubeconfig, so the
//! server regops reads may say anything. Namespace names no real API server stores (a newline
//! and `<!--`, an ANSI clear screen, a right-to-left override, a backtick, a pipe,
//! `</details>` and a mention) and a `Status` message made to do harm reach regops as data:
//!
//! - on a terminal (text views, stderr) no control character nor bidirectional control of
//!   theirs is written raw; each is shown escaped (`\x1b`, `\u{202e}`, `\n`);
//! - in Markdown (a pull-request comment) nothing of theirs is HTML, a comment, an image or a
//!   mention: outside code spans none of it is left;
//! - in JSON every name comes back byte for byte.
//!
//! The server is the test server's hostile fixture (`kube_test_server::hostile`); the scope
//! selects the namespaces by label, so the names come from the server, not from the spec.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use common::{Cluster, regops, run};
use kube_test_server::{Fault, hostile};
use serde_json::Value;

const SPEC: &str = "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: hostile }
registries:
  harbor: { server: harbor.example.com, credential: robot }
credentials:
  robot: { username: robot, password: { env: REGOPS_CRED_HOSTILE_TOKEN } }
scopes:
  hostile:
    selector: { matchLabels: { hostile: \"yes\" } }
pullSecrets:
  harbor-pull: { registries: [harbor], scope: hostile }
bindings:
  - { pullSecret: harbor-pull, serviceAccounts: [default] }
";

/// The test server with the hostile namespaces (each with its `default` ServiceAccount).
fn hostile_cluster() -> Cluster {
    let c = Cluster::new(SPEC);
    c.server.seed_hostile_namespaces().unwrap();
    c
}

/// `regops COMMAND -f spec --kubeconfig ... ARGS`.
fn regops_on(c: &Cluster, command: &str, args: &[&str]) -> common::Run {
    run(regops()
        .arg(command)
        .arg("-f")
        .arg(&c.spec)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(args)
        .env("REGOPS_CRED_HOSTILE_TOKEN", "hostile-test-password"))
}

/// Whether `c` may not reach a terminal raw: a C0 control other than the newline, DEL, a C1
/// control, or a bidirectional control (embeddings and overrides, isolates, marks).
fn is_forbidden(c: char) -> bool {
    (c < '\u{20}' && c != '\n')
        || ('\u{7f}'..='\u{9f}').contains(&c)
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{61c}')
}

/// Fails naming `what`, the character and the line it stands in, if `text` holds a character
/// a terminal must not be given raw.
fn assert_no_raw_controls(what: &str, text: &str) {
    for (n, line) in text.lines().enumerate() {
        if let Some(c) = line.chars().find(|&c| is_forbidden(c)) {
            panic!(
                "{what}: line {} holds U+{:04X} raw: {line:?}\n--- whole ---\n{}",
                n + 1,
                c as u32,
                text.escape_debug()
            );
        }
    }
}

/// Fails unless `text` shows each of `shown`, as it is (escaped forms, not raw characters).
fn assert_shows(what: &str, text: &str, shown: &[&str]) {
    for s in shown {
        assert!(
            text.contains(s),
            "{what}: `{s}` is not shown in:\n{}",
            text.escape_debug()
        );
    }
}

/// The namespace names as the text views show them: each control and bidi control escaped.
const ESCAPED: [&str; 3] = ["evil\\n<!--\\n", "a\\x1b[2Jb", "x\\u{202e}y"];

/// `markdown` with every code span taken out: a run of backticks, what follows up to the next
/// run of the same length, and that run (CommonMark, "Code spans"). A run with no closing run
/// of its length is literal and kept.
fn outside_code_spans(markdown: &str) -> String {
    let chars: Vec<char> = markdown.chars().collect();
    let run_at = |i: usize| chars[i..].iter().take_while(|&&c| c == '`').count();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let open = run_at(i);
        let mut j = i + open;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let n = run_at(j);
                if n == open {
                    close = Some(j + n);
                    break;
                }
                j += n;
            } else {
                j += 1;
            }
        }
        match close {
            Some(end) => i = end,
            None => {
                out.extend(&chars[i..i + open]);
                i += open;
            }
        }
    }
    out
}

/// Fails if the Markdown `text`, code spans taken out, still holds HTML, a comment, an image or
/// a mention of the data's. regops' own `<details>` blocks are HTML too: each `</details>` must
/// close one of them.
fn assert_markdown_inert(what: &str, text: &str) {
    assert_no_raw_controls(what, text);
    let rest = outside_code_spans(text);
    for bad in ["<!--", "<img", "@octocat", "attacker.example"] {
        assert!(
            !rest.contains(bad),
            "{what}: `{bad}` outside a code span in:\n{text}\n--- outside code spans ---\n{rest}"
        );
    }
    assert_eq!(
        rest.matches("</details>").count(),
        rest.matches("<details>").count(),
        "{what}: a `</details>` that regops did not open, outside a code span:\n{text}\n--- outside code spans ---\n{rest}"
    );
}

/// Each hostile name is among `names`, byte for byte.
fn assert_names_back(what: &str, names: &[String]) {
    for name in hostile::NAMESPACES {
        assert!(
            names.iter().any(|n| n == name),
            "{what}: {name:?} is not given back as it is; got {names:?}"
        );
    }
}

#[test]
fn plan_shows_hostile_namespace_names_as_data() {
    let c = hostile_cluster();

    for detail in ["summary", "full"] {
        let text = regops_on(&c, "plan", &["--detail", detail]);
        assert_eq!(text.code, 2, "changes pending: {}", text.transcript());
        assert_no_raw_controls(&format!("plan text ({detail}), stdout"), &text.stdout);
        assert_no_raw_controls(&format!("plan text ({detail}), stderr"), &text.stderr);
        if detail == "full" {
            assert_shows("plan text (full)", &text.stdout, &ESCAPED);
        }

        let md = regops_on(&c, "plan", &["--detail", detail, "--output", "markdown"]);
        assert_eq!(md.code, 2, "{}", md.transcript());
        assert_markdown_inert(&format!("plan markdown ({detail})"), &md.stdout);
        assert_no_raw_controls(&format!("plan markdown ({detail}), stderr"), &md.stderr);
    }

    let json = regops_on(&c, "plan", &["--output", "json"]);
    assert_eq!(json.code, 2, "{}", json.transcript());
    assert_no_raw_controls("plan json, stderr", &json.stderr);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    let namespaces: Vec<String> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["namespace"].as_str().map(str::to_string))
        .collect();
    assert_names_back("plan json, changes[].namespace", &namespaces);
    // Reading is all plan does.
    assert!(c.server.log().iter().all(|e| !e.is_write()));
}

#[test]
fn drift_shows_hostile_namespace_names_as_data() {
    let c = hostile_cluster();

    let text = regops_on(&c, "drift", &[]);
    assert_eq!(text.code, 2, "drift found: {}", text.transcript());
    assert_no_raw_controls("drift text, stdout", &text.stdout);
    assert_no_raw_controls("drift text, stderr", &text.stderr);
    assert_shows("drift text", &text.stdout, &ESCAPED);

    let json = regops_on(&c, "drift", &["--output", "json"]);
    assert_eq!(json.code, 2, "{}", json.transcript());
    assert_no_raw_controls("drift json, stderr", &json.stderr);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    let namespaces: Vec<String> = v["drift"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["namespace"].as_str().map(str::to_string))
        .collect();
    assert_names_back("drift json, drift[].namespace", &namespaces);
}

/// The server answers a LIST with a `Status` whose message is made to do harm: the error regops
/// prints on stderr shows it escaped, and nothing of it on stdout.
#[test]
fn a_hostile_status_message_is_shown_escaped_on_stderr() {
    let c = hostile_cluster();
    for (command, args) in [
        ("plan", &[][..]),
        ("plan", &["--output", "markdown"][..]),
        ("plan", &["--output", "json"][..]),
        ("drift", &[][..]),
        ("drift", &["--output", "json"][..]),
    ] {
        c.server.add_fault(
            Fault::status_message(400, hostile::STATUS_MESSAGE)
                .verb("list")
                .resource("secrets")
                .times(1),
        );
        let r = regops_on(&c, command, args);
        let what = format!("{command} {args:?} against a hostile Status");
        assert_eq!(r.code, 1, "{what}: {}", r.transcript());
        c.server.clear_faults();
        assert_no_raw_controls(&format!("{what}, stderr"), &r.stderr);
        assert_no_raw_controls(&format!("{what}, stdout"), &r.stdout);
        // The message is shown, escaped: its ESC, BEL, C1 CSI, DEL, RLO and isolates visibly,
        // and its newlines as `\n`, so it cannot forge lines of its own.
        let flat = r.flat_stderr();
        assert_shows(
            &format!("{what}, stderr"),
            &flat,
            &[
                "denied\\x1b[2J\\x1b[1;32mPlan:",
                "\\x1b]8;;https://attacker.example\\x07click",
                "\\u{9b}31m",
                "\\x7f",
                "\\u{202e}exe.txt\\u{202c}",
                "\\u{2066}isolate\\u{2069}",
                "</details>\\n# No changes\\r\\n@octocat",
            ],
        );
        assert!(
            !r.stderr
                .lines()
                .any(|l| l.trim_start().starts_with("# No changes")),
            "{what}: the message forged a line of its own:\n{}",
            r.stderr.escape_debug()
        );
    }
}
