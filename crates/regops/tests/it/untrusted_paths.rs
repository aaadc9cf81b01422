//! The paths an untrusted spec reaches, continued from `untrusted_spec.rs` (issue 38): each
//! test plays a pull request's author, or a local process racing regops, against a CI job that
//! holds secrets outside the checkout, and asserts nothing outside is read.
//!
//! - what regops checked is what it opens: a directory swapped for a symlink out of the root,
//!   or a file swapped for a FIFO, after the check, is never followed nor waited on (nor is a
//!   spec file that is a FIFO);
//! - every directory on the way to a relative `-f` stays below the working directory;
//! - `.git` is refused in any case (`.GIT/config` is `.git/config` on macOS and Windows).

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Run, run};

const AGE_KEY: &str = "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSUZE4W9";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// A spec with one pull secret whose credential's password is `password`.
fn spec(password: &str) -> String {
    format!(
        "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: {{ name: attack }}
registries:
  r: {{ server: r.example.com, credential: c }}
credentials:
  c: {{ username: u, password: {password} }}
scopes:
  s: {{ namespaces: [web] }}
pullSecrets:
  pull: {{ registries: [r], scope: s }}
"
    )
}

/// The regops under test: this build, or the one `REGOPS_TEST_BIN` names (to show that these
/// tests fail on a build from before the fix: `REGOPS_TEST_BIN=/tmp/regops-7543119 cargo test
/// --test untrusted_paths`).
fn regops() -> Command {
    match std::env::var_os("REGOPS_TEST_BIN") {
        Some(bin) => {
            let mut c = Command::new(bin);
            c.env_clear()
                .env("NO_COLOR", "1")
                .env("HOME", "/nonexistent-home")
                .stdin(Stdio::null());
            c
        }
        None => common::regops(),
    }
}

/// regops with the CI job's age identity in its environment.
fn in_ci() -> Command {
    let mut c = regops();
    c.env("REGOPS_AGE_KEY", AGE_KEY)
        .env("PATH", "/usr/bin:/bin");
    c
}

/// Whether stderr says `text`, whatever miette's wrapping did to spaces.
fn says(r: &Run, text: &str) -> bool {
    let squash = |s: &str| s.split_whitespace().collect::<String>().replace('│', "");
    squash(&r.stderr).contains(&squash(text))
}

/// `render --show-secrets` of `spec`: the password, base64 in the Secret, is what was read.
fn render(spec: &Path) -> Command {
    let mut c = in_ci();
    c.args(["render", "--show-secrets", "-f"]).arg(spec);
    c
}

/// `cmd` run to its end, or `None` if it had not ended after `limit` (it is killed then).
fn run_bounded(cmd: &mut Command, limit: Duration) -> Option<Run> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    status.map(|s| Run {
        code: s.code().unwrap_or(-1),
        stdout,
        stderr,
    })
}

/// A local process swapping `a` and `b` (`renameat2(RENAME_EXCHANGE)`: one or the other is
/// always there) as fast as it can, until dropped.
struct Swapper {
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Swapper {
    fn start(a: PathBuf, b: PathBuf) -> Swapper {
        Swapper::start_holding(a, b, None)
    }

    /// As [`Swapper::start`], holding each state for a while (up to `hold`, varying): a swap
    /// that lands between two steps of regops and stays for the second.
    fn start_holding(a: PathBuf, b: PathBuf, hold: Option<Duration>) -> Swapper {
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::spawn({
            let (stop, swaps) = (stop.clone(), swaps.clone());
            move || {
                use rustix::fs::{CWD, RenameFlags, renameat_with};
                let mut n: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).unwrap();
                    swaps.fetch_add(1, Ordering::Relaxed);
                    if let Some(hold) = hold {
                        n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        let micros = u64::try_from(hold.as_micros()).unwrap().max(1);
                        std::thread::sleep(Duration::from_micros((n >> 33) % micros));
                    }
                }
            }
        });
        Swapper {
            stop,
            swaps,
            thread: Some(thread),
        }
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How many times each race is run: the old code leaked the outside file in about 1 of 250
/// runs of a slower swap and hung in about 1 of 6.
const RACES: usize = 300;
/// Time enough for a render on a loaded machine; a read that blocks takes for ever.
const BOUND: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// 2. What was checked is what is read.

/// A local process swaps `d/` between a directory in the root and a symlink to a directory
/// outside, while regops checks and reads `d/secret`: every run renders the inside password or
/// refuses, and none renders the outside file.
#[test]
fn a_directory_swapped_for_a_symlink_out_of_the_root_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    write(&root, "d/secret", "inside-password");
    write(dir.path(), "outside/secret", "OUTSIDE-MARKER");
    std::os::unix::fs::symlink(dir.path().join("outside"), root.join("d.alt")).unwrap();
    let s = write(&root, "regops.yaml", &spec("{ file: d/secret }"));
    // What reading the inside file renders.
    let clean = run(&mut render(&s));
    assert_eq!(clean.code, 0, "{}", clean.transcript());
    let swapper = Swapper::start(root.join("d"), root.join("d.alt"));
    let (mut rendered, mut refused) = (0, 0);
    for i in 0..RACES {
        let r = run_bounded(&mut render(&s), BOUND)
            .unwrap_or_else(|| panic!("run {i}: regops still reading after {BOUND:?}"));
        assert!(
            !r.stderr.contains("OUTSIDE-MARKER"),
            "run {i}: {}",
            r.stderr
        );
        if r.code == 0 {
            assert_eq!(r.stdout, clean.stdout, "run {i}: rendered another file");
            rendered += 1;
        } else {
            assert_eq!(r.code, 1, "run {i}: {}", r.transcript());
            assert!(r.stdout.is_empty(), "run {i}: {}", r.transcript());
            refused += 1;
        }
    }
    let swaps = swapper.swaps.load(Ordering::Relaxed);
    drop(swapper);
    // The race was run: the swaps landed on both sides of regops' checks.
    assert!(swaps > RACES, "{swaps} swaps");
    assert!(
        rendered > 0 && refused > 0,
        "{rendered} rendered, {refused} refused"
    );
}

/// A local process swaps the spec's root itself (`regops/`, the `-f` directory) with a symlink
/// to a directory outside, while regops reads the spec there and then the password file it
/// names: the spec and the password come from the one directory, held open since the spec was
/// read, and the outside file is never rendered (an attack review got it in 35 of 50 runs when
/// the root's real path was looked up again for the password).
#[test]
fn the_spec_s_root_swapped_for_a_symlink_out_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let root = work.join("regops");
    write(&root, "secret.txt", "inside-password");
    write(&root, "regops.yaml", &spec("{ file: secret.txt }"));
    write(dir.path(), "outside/secret.txt", "OUTSIDE-MARKER");
    write(
        dir.path(),
        "outside/regops.yaml",
        &spec("{ file: secret.txt }"),
    );
    std::os::unix::fs::symlink(dir.path().join("outside"), work.join("swap")).unwrap();
    let render_here = || {
        let mut c = in_ci();
        c.current_dir(&work)
            .args(["render", "--show-secrets", "-n", "web", "-f", "regops"]);
        c
    };
    let clean = run(&mut render_here());
    assert_eq!(clean.code, 0, "{}", clean.transcript());
    // Each state held for up to 4 ms: the swap lands after the spec was read and stays for
    // the password's read.
    let swapper = Swapper::start_holding(
        root.clone(),
        work.join("swap"),
        Some(Duration::from_millis(4)),
    );
    let mut rendered = 0;
    for i in 0..RACES {
        let r = run_bounded(&mut render_here(), BOUND)
            .unwrap_or_else(|| panic!("run {i}: regops still reading after {BOUND:?}"));
        use base64::Engine as _;
        let outside = base64::engine::general_purpose::STANDARD.encode("OUTSIDE-MARKER");
        assert!(
            !r.stdout.contains("OUTSIDE-MARKER")
                && !r.stderr.contains("OUTSIDE-MARKER")
                && !r.stdout.contains(&outside[..12]),
            "run {i}: {}",
            r.transcript()
        );
        if r.code == 0 {
            rendered += 1;
        }
    }
    let swaps = swapper.swaps.load(Ordering::Relaxed);
    drop(swapper);
    assert!(swaps > RACES, "{swaps} swaps");
    assert!(rendered > 0, "no run rendered at all");
}

/// A local process swaps `secret` between a regular file and a FIFO nobody writes to: an open
/// of the FIFO would wait for a writer for ever. Every run ends, rendering the password or
/// refusing a file that is not a regular one.
#[test]
fn a_file_swapped_for_a_fifo_never_blocks_a_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    write(&root, "secret", "inside-password");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        root.join("secret.alt"),
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
    )
    .unwrap();
    let s = write(&root, "regops.yaml", &spec("{ file: secret }"));
    let clean = run(&mut render(&s));
    assert_eq!(clean.code, 0, "{}", clean.transcript());
    let swapper = Swapper::start(root.join("secret"), root.join("secret.alt"));
    let (mut rendered, mut refused) = (0, 0);
    for i in 0..RACES {
        let r = run_bounded(&mut render(&s), BOUND)
            .unwrap_or_else(|| panic!("run {i}: regops blocked on the FIFO for {BOUND:?}"));
        if r.code == 0 {
            assert_eq!(r.stdout, clean.stdout, "run {i}");
            rendered += 1;
        } else {
            assert!(
                r.code == 1 && says(&r, "it is not a regular file"),
                "run {i}: {}",
                r.transcript()
            );
            refused += 1;
        }
    }
    drop(swapper);
    assert!(
        rendered > 0 && refused > 0,
        "{rendered} rendered, {refused} refused"
    );
}

/// A local process swaps a spec file in a `-f` directory between a regular file and a symlink
/// to a file outside (`~/.aws/credentials`): the outside file is never parsed, so never quoted
/// in a diagnostic.
#[test]
fn a_spec_file_swapped_for_a_symlink_out_is_never_parsed() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "home/credentials",
        "aws_secret_access_key: OUTSIDE-MARKER\n",
    );
    let specs = dir.path().join("repo/specs");
    write(&specs, "regops.yaml", &spec("{ env: REGOPS_CRED_C }"));
    std::os::unix::fs::symlink(
        dir.path().join("home/credentials"),
        dir.path().join("repo/specs.alt"),
    )
    .unwrap();
    let check = || {
        let mut c = in_ci();
        c.args(["check", "--no-decrypt", "-f"]).arg(&specs);
        c
    };
    let clean = run(&mut check());
    assert_eq!(clean.code, 0, "{}", clean.transcript());
    let swapper = Swapper::start(specs.join("regops.yaml"), dir.path().join("repo/specs.alt"));
    for i in 0..RACES {
        let r = run_bounded(&mut check(), BOUND).unwrap_or_else(|| panic!("run {i} hung"));
        assert!(
            !r.stdout.contains("OUTSIDE-MARKER") && !r.stderr.contains("OUTSIDE-MARKER"),
            "run {i}: {}",
            r.transcript()
        );
    }
    drop(swapper);
}

/// A spec file that is a FIFO (a local process swaps one in; `-f` names it) is refused at
/// once: opening it would wait for a writer for ever.
#[test]
fn a_spec_file_that_is_a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("regops.yaml");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
    )
    .unwrap();
    let r = run_bounded(
        in_ci().args(["check", "--no-decrypt", "-f"]).arg(&fifo),
        BOUND,
    )
    .expect("regops blocked on the FIFO");
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(says(&r, "it is not a regular file"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// 3. Every directory on the way to a relative `-f` stays below the working directory.

/// `regops` committed as a symlink to a directory out of the checkout: `-f regops/regops.yaml`
/// would parse the spec there and read the files beside it, as `-f regops/` would (refused).
#[test]
fn a_symlinked_directory_on_the_way_to_the_spec_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    write(&elsewhere, "regops.yaml", &spec("{ file: token }"));
    write(&elsewhere, "token", "OUTSIDE-MARKER");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("deploy")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, repo.join("regops")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, repo.join("deploy/specs")).unwrap();
    for f in [
        "regops/regops.yaml",
        "./regops/regops.yaml",
        "regops/",
        "deploy/specs/regops.yaml",
        "deploy/../regops/regops.yaml",
    ] {
        let r = run(in_ci()
            .current_dir(&repo)
            .args(["render", "--show-secrets", "-f", f]));
        assert_eq!(r.code, 1, "{f}: {}", r.transcript());
        assert!(r.stdout.is_empty(), "{f}: rendered {}", r.stdout);
        assert!(
            says(
                &r,
                &format!("spec file `{f}` leads outside the spec's root")
            ),
            "{f}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("OUTSIDE-MARKER"), "{f}: {}", r.stderr);
    }
    // The operator may name the directory by an absolute path, links and all.
    let r = run(in_ci()
        .current_dir(&repo)
        .args(["render", "--show-secrets", "-f"])
        .arg(repo.join("regops/regops.yaml")));
    assert_eq!(r.code, 0, "{}", r.transcript());
    // A symlinked directory that stays in the checkout is followed.
    std::fs::create_dir_all(repo.join("infra")).unwrap();
    write(&repo, "infra/specs/regops.yaml", &spec("{ file: token }"));
    write(&repo, "infra/specs/token", "inside-password");
    std::os::unix::fs::symlink("infra/specs", repo.join("specs")).unwrap();
    let r = run(in_ci().current_dir(&repo).args([
        "render",
        "--show-secrets",
        "-f",
        "specs/regops.yaml",
    ]));
    assert_eq!(r.code, 0, "{}", r.transcript());
}

/// A ConfigMap mounted as the kubelet lays it out: `regops.yaml -> ..data/regops.yaml`,
/// `..data -> ..2026_12_07_10_00_00.000000001`. Read by an absolute `-f`, or a relative one
/// from the mount or above it.
#[test]
fn a_config_map_mount_is_read_through_its_data_links() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("spec");
    let stamp = "..2026_12_07_10_00_00.000000001";
    write(&mount.join(stamp), "regops.yaml", &spec("{ file: token }"));
    write(&mount.join(stamp), "token", "inside-password");
    std::os::unix::fs::symlink(stamp, mount.join("..data")).unwrap();
    for name in ["regops.yaml", "token"] {
        std::os::unix::fs::symlink(format!("..data/{name}"), mount.join(name)).unwrap();
    }
    let cases: [(&Path, PathBuf); 3] = [
        (dir.path(), mount.join("regops.yaml")),
        (&mount, "regops.yaml".into()),
        (dir.path(), "spec/regops.yaml".into()),
    ];
    for (cwd, f) in cases {
        let r = run(in_ci()
            .current_dir(cwd)
            .args(["render", "--show-secrets", "-f"])
            .arg(&f));
        assert_eq!(r.code, 0, "{}: {}", f.display(), r.transcript());
        assert!(r.stdout.contains(".dockerconfigjson"), "{}", f.display());
    }
}

// ---------------------------------------------------------------------------------------------
// 7. `.git` in any case.

/// On a case-insensitive file system (macOS runners, Windows), `.GIT/config` opens the
/// checkout's `.git/config`, where actions/checkout keeps the job's token.
#[test]
fn a_git_directory_is_refused_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    for git in [".GIT", ".Git", "sub/../.gIt"] {
        let name = git.rsplit('/').next().unwrap();
        write(
            dir.path(),
            &format!("{name}/config"),
            "[http \"https://github.com/\"]\n\textraheader = AUTHORIZATION: basic GIT-TOKEN-MARKER\n",
        );
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        let written = format!("{git}/config");
        let s = write(
            dir.path(),
            "regops.yaml",
            &spec(&format!("{{ file: \"{written}\" }}")),
        );
        let r = run(&mut render(&s));
        assert_eq!(r.code, 1, "{written}: {}", r.transcript());
        assert!(r.stdout.is_empty(), "{written}: rendered {}", r.stdout);
        assert!(
            says(&r, &format!("`{written}` is inside a `.git` directory")),
            "{written}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("GIT-TOKEN-MARKER"), "{}", r.stderr);
    }
}
