//! Every command's exit code means one thing (docs/using.md, "Exit codes"): 0 success with
//! nothing pending; 2 changes pending (`plan`) or drift found (`drift`), and only that; 1 any
//! error, usage errors included. Conflicts: `plan` 1, `drift` 2, `apply` 1. The real binary,
//! with the quickstart example, against the test API server seeded with its state.yaml.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::path::{Path, PathBuf};

use common::{Run, regops, run};
use kube_test_server::{Config, Fault, TestServer};
use serde_json::{Value, json};

/// The quickstart's recipient, for `import`.
const RECIPIENT: &str = "age1rqurtv6hcs5xk5hdnjnhyhd9zfmgy6hw0hlrqpqpg772dzarddfq9gqnwl";

fn quickstart(file: &str) -> PathBuf {
    common::repo().join("examples/quickstart").join(file)
}

/// Runs `regops args` in `dir` and checks its exit code and that its output says `says`
/// (stderr for an error, either stream otherwise), naming the command when it does not.
fn expect(dir: &Path, args: &[&str], code: i32, says: &str) -> Run {
    let r = run(regops().current_dir(dir).args(args));
    let shown = format!("`regops {}`", args.join(" "));
    assert_eq!(r.code, code, "{shown}:\n{}", r.transcript());
    let out = if code == 1 {
        r.flat_stderr()
    } else {
        format!("{}{}", r.stdout, r.flat_stderr())
    };
    assert!(
        out.contains(says),
        "{shown} does not say {says:?}:\n{}",
        r.transcript()
    );
    r
}

/// The quickstart's spec and key, and the cluster of its state.yaml (on which the spec has
/// changes pending: two Secrets to create, two ServiceAccounts to patch).
struct Env {
    cluster: common::Cluster,
}

impl Env {
    fn new() -> Env {
        let spec = std::fs::read_to_string(quickstart("regops.yaml")).unwrap();
        let cluster = common::Cluster::new(&spec);
        let state = std::fs::read_to_string(quickstart("state.yaml")).unwrap();
        let state: Value = serde_saphyr::from_str(&state).unwrap();
        for item in state["items"].as_array().unwrap() {
            let mut item = item.clone();
            if item["kind"] == "Deployment" {
                // The snapshot is trimmed; a server wants the selector it left out.
                let app = json!({"app": item["metadata"]["name"]});
                item["spec"]["selector"] = json!({"matchLabels": app});
                item["spec"]["template"]["metadata"] = json!({"labels": app});
            }
            if let Err(e) = cluster.server.seed(item.clone()) {
                // kube-system: the server has it already; given the snapshot's labels.
                assert_eq!(item["kind"], "Namespace", "{e:?}");
                let name = item["metadata"]["name"].as_str().unwrap();
                let (status, body) = cluster.server.admin(
                    "PATCH",
                    &format!("/api/v1/namespaces/{name}"),
                    "application/merge-patch+json",
                    &json!({"metadata": {"labels": item["metadata"]["labels"]}}),
                );
                assert_eq!(status, 200, "{body}");
            }
        }
        cluster.server.clear_log();
        Env { cluster }
    }

    fn dir(&self) -> &Path {
        self.cluster.dir.path()
    }

    /// `regops SUB -f regops.yaml -i KEY --kubeconfig KUBECONFIG EXTRA...`, checked.
    fn expect(&self, sub: &str, extra: &[&str], code: i32, says: &str) -> Run {
        let key = quickstart("example-key.txt");
        let kubeconfig = self.cluster.kubeconfig.to_str().unwrap().to_string();
        let mut args = vec![sub, "-f", "regops.yaml", "-i", key.to_str().unwrap()];
        args.extend(["--kubeconfig", &kubeconfig]);
        args.extend(extra);
        expect(self.dir(), &args, code, says)
    }
}

/// What clap says of a missing required argument.
const MISSING: &str = "the following required arguments were not provided";
/// What a command that reads a spec says without -f in a directory that has none.
const NO_SPEC: &str = "no spec: -f was not given";

/// A usage error is 1 for every command (clap's own code, 2, read as "changes pending"), and a
/// bare `regops`, which shows its help on stderr: nothing was done.
#[test]
fn usage_errors_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&[], "Usage: regops [OPTIONS] <COMMAND>"),
        (
            &["no-such-command"],
            "unrecognized subcommand 'no-such-command'",
        ),
        (&["help", "no-such-command"], "unrecognized subcommand"),
        (&["--no-such-flag"], "unexpected argument '--no-such-flag'"),
        (
            &["plan", "-f", "regops.yaml", "--no-such-flag"],
            "unexpected argument '--no-such-flag'",
        ),
        (&["plan"], NO_SPEC),
        (
            &["plan", "-f", "regops.yaml", "-o", "yaml"],
            "invalid value 'yaml' for '--output",
        ),
        (
            &["plan", "-f", "regops.yaml", "--request-timeout", "0"],
            "must be longer than zero",
        ),
        (&["drift"], NO_SPEC),
        (
            &["drift", "-f", "regops.yaml", "-o", "markdown"],
            "invalid value 'markdown'",
        ),
        (&["apply"], NO_SPEC),
        (
            &["apply", "-f", "regops.yaml", "--no-such-flag"],
            "unexpected argument",
        ),
        (&["apply", "plan.json", "--watch"], "cannot be used with"),
        (&["show"], MISSING),
        (&["show", "plan.json", "-o", "yaml"], "invalid value 'yaml'"),
        (&["check"], NO_SPEC),
        (
            &["check", "-f", "regops.yaml", "--no-such-flag"],
            "unexpected argument",
        ),
        (&["validate"], NO_SPEC),
        (
            &["validate", "-f", "regops.yaml", "-o", "markdown"],
            "invalid value 'markdown'",
        ),
        (&["render"], NO_SPEC),
        (
            &["render", "-f", "regops.yaml", "--no-such-flag"],
            "unexpected argument",
        ),
        (&["import"], MISSING),
        (
            &["import", "--dry-run", "--no-such-flag"],
            "unexpected argument",
        ),
        (&["completions", "tcsh"], "invalid value 'tcsh'"),
    ];
    for (args, says) in cases {
        let r = expect(dir.path(), args, 1, says);
        assert!(
            r.stdout.is_empty(),
            "{args:?} wrote to stdout:\n{}",
            r.stdout
        );
    }
}

/// `--help`, `-h`, `--version`, `regops help` and a subcommand's help exit 0, on stdout; the
/// top-level help has the table of exit codes.
#[test]
fn help_and_version_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--help"], "Exit status, for every command"),
        (&["-h"], "Exit status, for every command"),
        (&["help"], "Exit status, for every command"),
        (&["--version"], "regops "),
        (&["-V"], "regops "),
        (&["help", "plan"], "2 changes pending"),
        (&["plan", "--help"], "2 changes pending"),
        (&["drift", "-h"], "2 drift"),
        (&["apply", "--help"], "apply never exits 2"),
        (&["show", "--help"], "0 shown"),
        (&["validate", "--help"], "Exit codes"),
        (&["import", "--help"], "Usage: regops import"),
        (&["check", "--help"], "Usage: regops check"),
        (&["render", "--help"], "Usage: regops render"),
    ];
    for (args, says) in cases {
        let r = expect(dir.path(), args, 0, says);
        assert!(
            r.stdout.contains(says),
            "{args:?}: not on stdout:\n{}",
            r.stdout
        );
        assert!(r.stderr.is_empty(), "{args:?}:\n{}", r.stderr);
    }
    let help = run(regops().arg("--help"));
    for line in [
        "  0  success, nothing pending",
        "  1  an error",
        "  2  changes pending (`plan`) or drift found (`drift`",
    ] {
        assert!(help.stdout.contains(line), "{line:?}:\n{}", help.stdout);
    }
}

/// Bad input is 1 before anything is read or written: a spec that does not parse, for every
/// command that reads one; a saved plan that is not there.
#[test]
fn a_spec_that_does_not_parse_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: regops.dev/v1\nkind: [RegistryConfig\n",
    )
    .unwrap();
    for sub in [
        "plan", "apply", "drift", "check", "validate", "render", "rekey",
    ] {
        expect(
            dir.path(),
            &[sub, "-f", "bad.yaml"],
            1,
            "error in the spec; nothing was done",
        );
    }
    expect(
        dir.path(),
        &["show", "no-such-plan.json"],
        1,
        "no-such-plan.json",
    );
    expect(
        dir.path(),
        &["apply", "no-such-plan.json", "--yes"],
        1,
        "no-such-plan.json",
    );
}

/// Commands that need no cluster exit 0 when they succeed.
#[test]
fn success_without_a_cluster_exits_0() {
    let key = quickstart("example-key.txt");
    let key = key.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["check", "-f", "regops.yaml", "-i", key], ""),
        (&["check", "-f", "regops.yaml", "--no-decrypt"], ""),
        (
            &["render", "-f", "regops.yaml", "-i", key, "-n", "web"],
            "kind: Secret",
        ),
        (&["schema"], "\"$schema\""),
        (&["completions", "bash"], "regops"),
    ];
    for (args, says) in cases {
        expect(&quickstart(""), args, 0, says);
    }
    // A state file with changes pending is still 2.
    expect(
        &quickstart(""),
        &[
            "plan",
            "-f",
            "regops.yaml",
            "-i",
            key,
            "--live-state",
            "state.yaml",
        ],
        2,
        "Plan: 2 to create",
    );
}

/// Changes pending: 2 from `plan` (and `plan --out`) and `drift`, and from nothing else:
/// `show` of the saved plan is 0, a dry run is 0, the apply that carries them out is 0.
#[test]
fn changes_pending_exit_2_from_plan_and_drift_only() {
    let e = Env::new();
    e.expect("plan", &[], 2, "Plan: 2 to create");
    e.expect("plan", &["-o", "json"], 2, "\"changes\"");
    e.expect(
        "plan",
        &["--out", "plan.json"],
        2,
        "Saved the plan to plan.json",
    );
    e.expect("drift", &[], 2, "missing");
    for format in ["text", "json", "markdown"] {
        expect(e.dir(), &["show", "plan.json", "-o", format], 0, "harbor");
    }
    e.expect("apply", &["--yes", "--dry-run=server"], 0, "");
    assert!(
        e.cluster
            .server
            .object("secrets", "api", "registries")
            .is_none(),
        "the dry run wrote"
    );
    e.expect("apply", &["--yes"], 0, "");
    assert!(
        e.cluster
            .server
            .object("secrets", "api", "registries")
            .is_some()
    );
}

/// Converged: every command 0, nothing pending.
#[test]
fn a_converged_cluster_exits_0() {
    let e = Env::new();
    e.expect("apply", &["--yes"], 0, "");
    e.expect("plan", &[], 0, "No changes");
    e.expect(
        "plan",
        &["--out", "plan.json"],
        0,
        "Saved the plan to plan.json",
    );
    expect(e.dir(), &["show", "plan.json"], 0, "No changes");
    e.expect("drift", &[], 0, "");
    e.expect("apply", &["--yes"], 0, "");
    let kubeconfig = e.cluster.kubeconfig.to_str().unwrap();
    let key = quickstart("example-key.txt");
    let key = key.to_str().unwrap();
    expect(
        e.dir(),
        &[
            "apply",
            "plan.json",
            "--yes",
            "-i",
            key,
            "--kubeconfig",
            kubeconfig,
        ],
        0,
        "",
    );
    expect(
        e.dir(),
        &[
            "import",
            "--dry-run",
            "--recipient",
            RECIPIENT,
            "--kubeconfig",
            kubeconfig,
        ],
        0,
        "kind: RegistryConfig",
    );
    expect(
        e.dir(),
        &["cluster-info", "--kubeconfig", kubeconfig],
        0,
        "",
    );
}

/// A Secret of a pull secret's name that regops does not own: `plan` 1 (the apply on merge
/// would leave it undone), `drift` 2 (it is drift), `apply` 1 (something planned was not
/// done); `show` of that plan is 0, it was shown.
#[test]
fn conflicts_exit_1_from_plan_and_apply_and_2_from_drift() {
    let e = Env::new();
    e.cluster
        .server
        .seed(json!({"apiVersion": "v1", "kind": "Secret",
                     "metadata": {"name": "registries", "namespace": "api"},
                     "type": "kubernetes.io/dockerconfigjson",
                     "data": {".dockerconfigjson": "e30="}}))
        .unwrap();
    let owned_by_someone_else = "would overwrite a Secret owned by someone else";
    let plan = e.expect("plan", &[], 1, "");
    assert!(
        plan.stdout.contains(owned_by_someone_else),
        "{}",
        plan.stdout
    );
    e.expect("plan", &["--out", "plan.json"], 1, "");
    expect(e.dir(), &["show", "plan.json"], 0, owned_by_someone_else);
    e.expect("drift", &[], 2, "conflict");
    let apply = e.expect("apply", &["--yes"], 1, "");
    assert!(
        apply.stdout.contains(owned_by_someone_else),
        "{}",
        apply.stdout
    );
    assert_eq!(
        e.cluster
            .server
            .object("secrets", "api", "registries")
            .unwrap()["data"][".dockerconfigjson"],
        "e30=",
        "someone else's Secret was overwritten"
    );
    // The rest was applied; the conflict stays, and so do the codes.
    e.expect("apply", &["--yes"], 1, "");
    e.expect("drift", &[], 2, "conflict");
}

/// An apply that could not write everything it planned exits 1, and says what was not done.
#[test]
fn a_partial_failure_exits_apply_1() {
    let e = Env::new();
    // Every write of a Secret in `api` is refused (403 is not retried); the rest goes on.
    e.cluster.server.add_fault(
        Fault::status(403)
            .verb("patch")
            .resource("secrets")
            .namespace("api"),
    );
    let r = e.expect("apply", &["--yes"], 1, "");
    assert!(r.stdout.contains("Not applied (failed):"), "{}", r.stdout);
    assert!(
        e.cluster
            .server
            .object("secrets", "payments-api", "payments-pull")
            .is_some()
    );
    e.expect("plan", &[], 2, "Plan: 1 to create");
    e.cluster.server.clear_faults();
    e.expect("apply", &["--yes"], 0, "");
}

/// A cluster that cannot be reached (its port closed) is 1 for every command that reads one;
/// each gives up after its retries. Run at once, so the test takes as long as one of them.
#[test]
fn an_unreachable_cluster_exits_1() {
    let e = Env::new();
    let closed = e.dir().join("closed-kubeconfig");
    {
        let gone = TestServer::start(Config::default()).unwrap();
        gone.write_kubeconfig(&closed).unwrap();
    }
    let closed = closed.to_str().unwrap();
    let key = quickstart("example-key.txt");
    let key = key.to_str().unwrap();
    let spec_args = |sub: &str| -> Vec<String> {
        [sub, "-f", "regops.yaml", "-i", key, "--kubeconfig", closed]
            .map(String::from)
            .to_vec()
    };
    // The saved plan of a cluster that went away since.
    e.expect("plan", &["--out", "plan.json"], 2, "");
    let cases: Vec<Vec<String>> = vec![
        spec_args("plan"),
        spec_args("drift"),
        [spec_args("apply"), vec!["--yes".into()]].concat(),
        [
            "apply",
            "plan.json",
            "--yes",
            "-i",
            key,
            "--kubeconfig",
            closed,
        ]
        .map(String::from)
        .to_vec(),
        [
            "import",
            "--dry-run",
            "--recipient",
            RECIPIENT,
            "--kubeconfig",
            closed,
        ]
        .map(String::from)
        .to_vec(),
        ["cluster-info", "--kubeconfig", closed]
            .map(String::from)
            .to_vec(),
    ];
    std::thread::scope(|s| {
        for args in &cases {
            let dir = e.dir();
            s.spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                expect(dir, &args, 1, "cannot reach the cluster");
            });
        }
    });
}

/// A cluster that refuses the connection and has never answered is given up on after
/// `--connect-timeout` (5 s by default), not after every retry (about 12 s before), and each
/// retry is said (issue 39: kubectl fails at once, and silence for 15 s reads as a hang). With a
/// longer `--connect-timeout`, regops keeps trying for longer.
#[test]
fn a_cluster_never_reached_is_given_up_on_after_the_connect_timeout() {
    let e = Env::new();
    let closed = e.dir().join("closed-kubeconfig");
    {
        let gone = TestServer::start(Config::default()).unwrap();
        gone.write_kubeconfig(&closed).unwrap();
    }
    let closed = closed.to_str().unwrap();
    let key = quickstart("example-key.txt");
    let key = key.to_str().unwrap();
    let run = |connect: &str| {
        let start = std::time::Instant::now();
        let out = regops()
            .current_dir(e.dir())
            .args([
                "plan",
                "-v",
                "-f",
                "regops.yaml",
                "-i",
                key,
                "--kubeconfig",
                closed,
                "--connect-timeout",
                connect,
            ])
            .output()
            .unwrap();
        (out, start.elapsed())
    };
    let (short, short_took) = run("1s");
    assert_eq!(short.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert!(stderr.contains("cannot reach the cluster"), "{stderr}");
    assert!(
        stderr.contains("retrying in"),
        "each retry is said: {stderr}"
    );
    let (long, long_took) = run("4s");
    assert_eq!(long.status.code(), Some(1));
    // The budget is what ends it: a longer one waits longer, and neither takes the ~12 s of
    // every retry.
    assert!(
        short_took < long_took && long_took < std::time::Duration::from_secs(9),
        "1s budget: {short_took:?}, 4s budget: {long_took:?}"
    );
}
