//! The walkthroughs in the README and the guide, run as written: each shell block is read from
//! its page and every line of it run by `bash`, in order, in a directory of its own with a
//! home directory, a kubeconfig reaching test API servers, and `regops` on `PATH`. A line the
//! page says asks something (a password prompt, the apply confirmation) runs on a terminal
//! (util-linux `script`) and is answered there. A comment line that tells the reader to do
//! something (put the public key in the spec) is done by the test, as the reader would.
//!
//! So a walkthrough that stops working (a flag renamed, an exit code changed, a step that no
//! longer does what its comment says) fails here, not for the first reader. The other commands
//! of the guide are checked to parse (`tests/docs.rs`); which pages run here is listed in
//! `docs/development.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use kube_test_server::TestServer;
use serde_json::{Value, json};

/// One line of a page's shell block: the command as `bash` runs it, and its comment.
#[derive(Debug, Clone)]
struct Line {
    command: String,
    comment: String,
    /// For a `console` block: the output the page shows after the command.
    shown: Vec<String>,
}

/// The lines of the first `sh` or `console` block after the paragraph containing `marker` on
/// `page` (relative to the repository). Comment-only lines have an empty `command`.
fn block(page: &str, marker: &str) -> Vec<Line> {
    let text = std::fs::read_to_string(common::repo().join(page)).unwrap();
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("{page} no longer says {marker:?}"));
    let rest = &text[at..];
    let start = rest.find("\n```").unwrap() + 1;
    let fence = rest[start..].lines().next().unwrap();
    let console = fence.trim() == "```console";
    assert!(
        console || fence.trim() == "```sh",
        "{page}: the block after {marker:?} is {fence:?}"
    );
    let body = &rest[start + fence.len() + 1..];
    let body = &body[..body.find("\n```").unwrap()];
    let mut lines: Vec<Line> = Vec::new();
    for raw in body.lines() {
        let raw = raw.trim_end();
        let raw = if console {
            match raw.strip_prefix("$ ") {
                Some(cmd) => cmd,
                None => {
                    lines.last_mut().unwrap().shown.push(raw.trim().to_string());
                    continue;
                }
            }
        } else {
            raw
        };
        // A comment starts at ` #` (or the line's start) outside quotes.
        let (mut quote, mut cut) = (None, raw.len());
        for (i, c) in raw.char_indices() {
            match (quote, c) {
                (None, '\'' | '"') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '#') if i == 0 || raw[..i].ends_with(' ') => {
                    cut = i;
                    break;
                }
                _ => {}
            }
        }
        lines.push(Line {
            command: raw[..cut].trim().to_string(),
            comment: raw[cut..].trim_start_matches('#').trim().to_string(),
            shown: Vec::new(),
        });
    }
    lines
}

/// What a step did.
struct Ran {
    code: i32,
    /// stdout, or everything the terminal showed for a step run on one.
    out: String,
    err: String,
}

/// A directory to follow a walkthrough in: `home/` as `$HOME`, `work/` as the current
/// directory, a kubeconfig, and `regops` (the binary under test) on `PATH`.
struct Reader {
    dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
}

impl Reader {
    fn new(kubeconfig: &str) -> Reader {
        let dir = tempfile::tempdir().unwrap();
        for d in ["home", "work"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let kc = dir.path().join("kubeconfig");
        std::fs::write(&kc, kubeconfig).unwrap();
        let bin = Path::new(env!("CARGO_BIN_EXE_regops")).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
        );
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("PATH", path),
            ("HOME", dir.path().join("home").display().to_string()),
            ("KUBECONFIG", kc.display().to_string()),
            ("NO_COLOR", "1".into()),
            ("TERM", "dumb".into()),
            ("GIT_AUTHOR_NAME", "A Reader".into()),
            ("GIT_AUTHOR_EMAIL", "reader@example.com".into()),
            ("GIT_COMMITTER_NAME", "A Reader".into()),
            ("GIT_COMMITTER_EMAIL", "reader@example.com".into()),
        ] {
            env.insert(k.to_string(), v);
        }
        Reader { dir, env }
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Runs `line` with `bash` (`pipefail`: a failing `regops` before a pipe fails the line).
    /// With `terminal`, on a terminal, answering each prompt once it is shown, as a person
    /// would (typed ahead, a password would be echoed before the prompt turned echo off).
    fn run(&self, line: &str, terminal: Option<Answers>) -> Ran {
        let script = self.dir.path().join("step.sh");
        std::fs::write(&script, format!("set -o pipefail\n{line}\n")).unwrap();
        let Some(answers) = terminal else {
            let mut c = Command::new("bash");
            c.arg(&script)
                .stdin(Stdio::null())
                .env_clear()
                .envs(&self.env)
                .current_dir(self.work());
            let r = common::run(&mut c);
            return Ran {
                code: r.code,
                out: r.stdout,
                err: r.stderr,
            };
        };
        use std::io::{Read, Write};
        let mut child = Command::new("script")
            .arg("-qec")
            .arg(format!("bash {}", script.display()))
            .arg("/dev/null")
            .env_clear()
            .envs(&self.env)
            .current_dir(self.work())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut input, mut output) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        // What the terminal shows, as it comes (a read blocks until there is more or the
        // command has ended), so a prompt that never comes fails after a while, not never.
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let reading = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = output.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let (mut seen, mut from) = (Vec::<u8>::new(), 0);
        for (prompt, answer) in answers {
            loop {
                if let Some(at) = seen[from..]
                    .windows(prompt.len())
                    .position(|w| w == prompt.as_bytes())
                {
                    from += at + prompt.len();
                    break;
                }
                match rx.recv_timeout(std::time::Duration::from_secs(30)) {
                    Ok(more) => seen.extend(more),
                    Err(why) => {
                        let _ = child.kill();
                        panic!(
                            "`{line}` did not ask {prompt:?} ({why:?}); the terminal showed:\n{}",
                            String::from_utf8_lossy(&seen)
                        );
                    }
                }
            }
            input.write_all(format!("{answer}\n").as_bytes()).unwrap();
        }
        // Nothing more is typed: a prompt the test did not expect ends the command.
        drop(input);
        let status = child.wait().unwrap();
        reading.join().unwrap();
        seen.extend(rx.try_iter().flatten());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        Ran {
            code: status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&seen).into_owned(),
            err,
        }
    }
}

/// What a person types on the terminal: each answer once its prompt is shown.
type Answers = &'static [(&'static str, &'static str)];

/// How the test takes one command line of a walkthrough.
struct Step {
    /// The exit code the page implies (`plan` exits 2 when there are changes).
    code: i32,
    /// Typed on a terminal, for a line that asks.
    terminal: Option<Answers>,
}

const fn step(code: i32) -> Step {
    Step {
        code,
        terminal: None,
    }
}

const fn typed(code: i32, answers: Answers) -> Step {
    Step {
        code,
        terminal: Some(answers),
    }
}

/// The apply's confirmation, answered.
const YES: Answers = &[("Only 'yes' is accepted: ", "yes")];

/// Follows `lines` as a reader would: each command line with its [`Step`] (in order; the
/// walkthrough must have exactly as many), `before` called with each comment-only line and
/// with the index of each command about to run, `placeholder` replacing what the page leaves
/// to the reader. Returns what each command line did.
fn follow(
    reader: &Reader,
    lines: &[Line],
    steps: &[Step],
    before: &mut dyn FnMut(&Reader, Before<'_>),
    placeholders: &[(&str, String)],
) -> Vec<(Line, Ran)> {
    let commands = lines.iter().filter(|l| !l.command.is_empty()).count();
    assert_eq!(
        commands,
        steps.len(),
        "the walkthrough has {commands} commands, the test expects {}: {lines:#?}",
        steps.len()
    );
    let mut done = Vec::new();
    let mut steps = steps.iter();
    for line in lines {
        if line.command.is_empty() {
            before(reader, Before::Comment(&line.comment));
            continue;
        }
        before(reader, Before::Command(done.len()));
        let step = steps.next().unwrap();
        let mut command = line.command.clone();
        for (placeholder, value) in placeholders {
            command = command.replace(placeholder, value);
        }
        let ran = reader.run(&command, step.terminal);
        assert_eq!(
            ran.code, step.code,
            "`{}` ({}) exited {}:\n{}\n{}",
            line.command, line.comment, ran.code, ran.out, ran.err
        );
        done.push((line.clone(), ran));
    }
    done
}

enum Before<'a> {
    Comment(&'a str),
    Command(usize),
}

/// A kubeconfig with one context per `(name, server)`, the first current.
fn kubeconfig(servers: &[(&str, &TestServer)]) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let (mut clusters, mut contexts, mut users) = (String::new(), String::new(), String::new());
    for (name, s) in servers {
        clusters.push_str(&format!(
            "- name: {name}\n  cluster:\n    server: {}\n    certificate-authority-data: {}\n",
            s.url(),
            b64(s.ca_pem().unwrap())
        ));
        contexts.push_str(&format!(
            "- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n"
        ));
        users.push_str(&format!(
            "- name: {name}\n  user:\n    token: {}\n",
            s.token().unwrap()
        ));
    }
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{clusters}contexts:\n{contexts}users:\n{users}current-context: {}\n",
        servers[0].0
    )
}

fn tls_server() -> TestServer {
    TestServer::start(kube_test_server::Config {
        tls: true,
        ..kube_test_server::Config::default()
    })
    .unwrap()
}

fn namespace(server: &TestServer, name: &str, labels: Value) {
    server
        .seed(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels}}))
        .unwrap();
}

/// The logins of a `.dockerconfigjson` Secret: server → (username, password).
fn logins(secret: &Value) -> BTreeMap<String, (String, String)> {
    let data = secret["data"][".dockerconfigjson"].as_str().unwrap();
    let doc: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
    .unwrap();
    doc["auths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(server, a)| {
            (
                server.clone(),
                (
                    a["username"].as_str().unwrap().to_string(),
                    a["password"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

fn everything_shown(done: &[(Line, Ran)]) -> String {
    done.iter()
        .map(|(_, r)| format!("{}{}", r.out, r.err))
        .collect()
}

const TYPED_TWICE: Answers = &[
    (
        "Password for credential `harbor-robot`: ",
        "typed-at-the-prompt-7f3a",
    ),
    ("Again: ", "typed-at-the-prompt-7f3a"),
];

/// The README's "first session", and the same lines in docs/using.md: a key made, the spec's
/// two credentials encrypted (one typed at the prompt, one from stdin), checked, planned for
/// the current context and for `prod` as Markdown, applied after `yes` is typed, applied
/// unattended, rendered (and piped to kubectl), rekeyed.
#[test]
#[ignore = "needs script and kubectl (Debian: bsdutils, kubernetes-client)"]
fn the_readme_first_session_runs_as_written() {
    common::require("script", "--version", "Debian: bsdutils");
    common::require("kubectl", "version", "Debian: kubernetes-client");
    let readme = block("README.md", "A first session:");
    let using = block("docs/using.md", "# Using it");
    assert_eq!(
        format!("{readme:?}"),
        format!("{using:?}"),
        "the README's first session and docs/using.md's differ"
    );
    let (dev, prod) = (tls_server(), tls_server());
    namespace(&dev, "web", json!({"team": "web"}));
    namespace(&dev, "api", json!({}));
    namespace(&dev, "web-sandbox", json!({"team": "web"}));
    dev.seed(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "site", "namespace": "web"},
        "spec": {"selector": {"matchLabels": {"app": "site"}},
            "template": {"metadata": {"labels": {"app": "site"}},
                "spec": {"containers": [{"name": "site", "image": "docker.io/myorg/site:1"}]}}}}))
        .unwrap();
    namespace(&prod, "web", json!({"team": "web"}));
    let reader = Reader::new(&kubeconfig(&[("dev", &dev), ("prod", &prod)]));
    // The spec the reader starts from: the Docker Hub and Harbor example, whose credentials
    // the walkthrough encrypts anew.
    std::fs::copy(
        common::repo().join("examples/dockerhub-harbor/regops.yaml"),
        reader.work().join("regops.yaml"),
    )
    .unwrap();
    let (harbor_password, token) = ("typed-at-the-prompt-7f3a", "from-stdin-token-91c2");
    let mut reader = reader;
    reader.env.insert("TOKEN".into(), token.into());
    let mut public = String::new();
    let steps = [
        step(0),               // keygen
        typed(0, TYPED_TWICE), // encrypt, prompted
        step(0),               // encrypt, stdin
        step(0),               // check
        step(2),               // plan
        step(2),               // plan --context prod
        typed(0, YES),         // apply, asks
        step(0),               // apply --yes --prune
        step(0),               // render
        step(0),               // render | kubectl
        step(0),               // rekey
    ];
    let key = reader.home().join(".config/regops/key.txt");
    let done = follow(
        &reader,
        &readme,
        &steps,
        &mut |r, before| {
            if let Before::Comment(c) = before
                && c.contains("add the public key under `recipients:`")
            {
                let text = std::fs::read_to_string(&key).unwrap();
                public = text
                    .lines()
                    .find_map(|l| l.strip_prefix("# public key: "))
                    .unwrap()
                    .to_string();
                let spec = r.work().join("regops.yaml");
                let old = std::fs::read_to_string(&spec).unwrap();
                let (at, end) = (
                    old.find("  - age1").unwrap(),
                    old.find("\n\nregistries").unwrap(),
                );
                std::fs::write(&spec, format!("{}  - {public}{}", &old[..at], &old[end..]))
                    .unwrap();
            }
        },
        &[],
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600,
        "keygen's comment says mode 0600"
    );
    let keygen = format!("{}{}", done[0].1.out, done[0].1.err);
    assert!(keygen.contains(&public), "keygen prints the public key");
    // Only ciphertext went into the spec, for the new recipient.
    let spec = std::fs::read_to_string(reader.work().join("regops.yaml")).unwrap();
    assert!(!spec.contains(harbor_password) && !spec.contains(token));
    assert!(!spec.contains("env: REGOPS_CRED_DOCKERHUB_TOKEN"), "{spec}");
    assert!(spec.contains(&public));
    // The plans: the current context's in text, prod's in Markdown, neither writing.
    assert!(done[4].1.out.contains("harbor-pull"), "{}", done[4].1.out);
    assert!(done[5].1.out.contains("| "), "Markdown: {}", done[5].1.out);
    assert!(prod.objects("secrets").is_empty(), "a plan wrote to prod");
    // The confirmed apply wrote both pull secrets where the scope says, with what was typed.
    for ns in ["web", "api"] {
        let harbor = logins(&dev.object("secrets", ns, "harbor-pull").unwrap());
        assert_eq!(
            harbor["harbor.example.com"],
            ("robot$ci".to_string(), harbor_password.to_string())
        );
        let hub = logins(&dev.object("secrets", ns, "dockerhub-pull").unwrap());
        assert_eq!(
            hub["https://index.docker.io/v1/"],
            ("myorg".to_string(), token.to_string())
        );
    }
    assert!(
        dev.object("secrets", "web-sandbox", "harbor-pull")
            .is_none()
    );
    let sa = dev.object("serviceaccounts", "web", "default").unwrap();
    assert_eq!(sa["imagePullSecrets"], json!([{"name": "harbor-pull"}]));
    let site = dev.object("deployments", "web", "site").unwrap();
    assert_eq!(
        site["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "dockerhub-pull"}])
    );
    // The second apply had nothing to write; kubectl took the rendered Secrets.
    assert!(done[7].1.out.contains("No changes"), "{}", done[7].1.out);
    assert!(
        done[9].1.out.contains("secret/harbor-pull"),
        "{}",
        done[9].1.out
    );
    // The redacted render, and everything else shown, kept the secrets.
    for (line, ran) in &done[..9] {
        let shown = format!("{}{}", ran.out, ran.err);
        assert!(
            !shown.contains(harbor_password) && !shown.contains(token),
            "`{}` showed a password:\n{shown}",
            line.command
        );
    }
    assert!(!everything_shown(&done).contains(token));
    // After the rekey the spec still checks with the reader's key.
    assert_eq!(reader.run("regops check -f regops.yaml", None).code, 0);
}

/// docs/import.md: a cluster's pull secret made by hand becomes the spec, which plans to
/// adoption only; after the apply there is nothing to do.
#[test]
fn the_import_walkthrough_runs_as_written() {
    let lines = block("docs/import.md", "It writes nothing to the cluster.");
    let dev = tls_server();
    namespace(&dev, "web", json!({}));
    let doc = json!({"auths": {"harbor.example.com": {"username": "robot$web",
        "password": "hand-made-5e1d", "auth": base64::engine::general_purpose::STANDARD
            .encode("robot$web:hand-made-5e1d")}}});
    dev.seed(
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "regcred", "namespace": "web"},
        "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD
            .encode(doc.to_string())}}),
    )
    .unwrap();
    dev.seed(json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": "web"},
        "imagePullSecrets": [{"name": "regcred"}]}))
        .unwrap();
    let reader = Reader::new(&kubeconfig(&[("dev", &dev)]));
    assert_eq!(reader.run("git init -q .", None).code, 0);
    let key = reader.home().join(".config/regops/key.txt");
    let mut public = String::new();
    // `age1...` is the key keygen printed: read it once keygen has run.
    let mut lines_after_keygen = lines.clone();
    let first = follow(&reader, &lines[..1], &[step(0)], &mut |_, _| {}, &[]);
    public.push_str(
        std::fs::read_to_string(&key)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .unwrap(),
    );
    assert!(format!("{}{}", first[0].1.out, first[0].1.err).contains(&public));
    lines_after_keygen.remove(0);
    assert!(lines_after_keygen[0].command.contains("age1..."));
    let done = follow(
        &reader,
        &lines_after_keygen,
        &[step(0), step(0), step(2), step(0), step(0)],
        &mut |_, _| {},
        &[("age1...", public.clone())],
    );
    let spec = std::fs::read_to_string(reader.work().join("regops.yaml")).unwrap();
    assert!(!spec.contains("hand-made-5e1d") && spec.contains("BEGIN AGE ENCRYPTED FILE"));
    assert!(done[2].1.out.contains("regcred"), "{}", done[2].1.out);
    let secret = dev.object("secrets", "web", "regcred").unwrap();
    assert_eq!(
        secret["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "regops"
    );
    assert_eq!(
        logins(&secret)["harbor.example.com"],
        ("robot$web".to_string(), "hand-made-5e1d".to_string())
    );
    assert!(!everything_shown(&done).contains("hand-made-5e1d"));
}

/// docs/saved-plans.md: a plan saved on the pull request, shown again from the file, and
/// refused at apply because a namespace it read changed meanwhile, with the output the page
/// shows (resource versions aside).
#[test]
fn the_saved_plan_walkthrough_runs_as_written() {
    let lines = block("docs/saved-plans.md", "not even the Lease");
    let dev = tls_server();
    namespace(&dev, "payments", json!({}));
    let reader = Reader::new(&kubeconfig(&[("dev", &dev)]));
    std::fs::create_dir(reader.work().join("regops")).unwrap();
    std::fs::write(
        reader.work().join("regops/regops.yaml"),
        "apiVersion: regops.dev/v1\nkind: RegistryConfig\nmetadata: { name: payments }\n\
         registries:\n  harbor: { server: harbor.example.com, credential: robot }\n\
         credentials:\n  robot: { username: robot, password: { env: REGOPS_CRED_ROBOT } }\n\
         scopes:\n  payments: { namespaces: [payments] }\n\
         pullSecrets:\n  harbor-pull: { registries: [harbor], scope: payments }\n",
    )
    .unwrap();
    let mut reader = reader;
    reader
        .env
        .insert("REGOPS_CRED_ROBOT".into(), "saved-plan-pw-0b7e".into());
    let done = follow(
        &reader,
        &lines,
        &[step(2), step(0), step(1)],
        &mut |_, before| {
            // Between the review and the merge, someone changes the namespace.
            if let Before::Command(2) = before {
                let mut ns = dev.object("namespaces", "", "payments").unwrap();
                ns["metadata"]["labels"] = json!({"team": "payments"});
                let (status, body) = dev.admin(
                    "PUT",
                    "/api/v1/namespaces/payments",
                    "application/json",
                    &ns,
                );
                assert_eq!(status, 200, "{body}");
            }
        },
        &[],
    );
    assert!(done[1].1.out.contains("harbor-pull"), "{}", done[1].1.out);
    // Words as a person reads them: miette's wrapping and gutters undone, each number as `#`.
    let flat = |s: &str| {
        s.replace('│', " ")
            .split_whitespace()
            .map(|w| {
                let mut out = String::new();
                for c in w.chars() {
                    if !c.is_ascii_digit() {
                        out.push(c);
                    } else if !out.ends_with('#') {
                        out.push('#');
                    }
                }
                out
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (line, refused) = &done[2];
    for shown in &line.shown {
        assert!(
            flat(&refused.err).contains(&flat(shown)),
            "the page shows {shown:?}; regops said:\n{}",
            refused.err
        );
    }
    assert!(
        dev.objects("secrets").is_empty(),
        "a refused saved plan wrote"
    );
    assert!(dev.objects("leases").is_empty(), "not even the Lease");
}

/// docs/apply.md, rotating a credential: the new password encrypted as the page says, then
/// its block: the plan says the Secret changes in place, `validate` proves the real registry
/// takes the new password, and the apply (confirmed at the prompt) updates the Secret in
/// place, same uid.
#[test]
#[ignore = "needs docker-registry, htpasswd and script (Debian: docker-registry, apache2-utils, bsdutils)"]
fn the_rotation_walkthrough_runs_as_written() {
    common::registry::require();
    common::require("script", "--version", "Debian: bsdutils");
    let lines = block("docs/apply.md", "review the plan, prove");
    let (regdir, storage) = common::registry::workdir();
    let (cert, key, ca) = common::registry::tls_files(regdir.path());
    let registry = common::registry::start(regdir.path(), "tls", &storage, Some((&cert, &key)));
    let dev = tls_server();
    namespace(&dev, "web", json!({}));
    let reader = Reader::new(&kubeconfig(&[("dev", &dev)]));
    let (identity, public) = common::keygen(&reader.home(), "key.txt");
    std::fs::create_dir_all(reader.home().join(".config/regops")).unwrap();
    std::fs::rename(&identity, reader.home().join(".config/regops/key.txt")).unwrap();
    std::fs::copy(&ca, reader.work().join("ca.pem")).unwrap();
    std::fs::write(
        reader.work().join("regops.yaml"),
        format!(
            "apiVersion: regops.dev/v1\nkind: RegistryConfig\nmetadata: {{ name: web }}\n\
             recipients: [{public}]\n\
             registries:\n  harbor: {{ server: \"127.0.0.1:{}\", credential: alice, caFile: ca.pem }}\n\
             credentials:\n  alice:\n    username: alice\n    password: {{ env: REGOPS_CRED_ALICE }}\n\
             scopes:\n  web: {{ namespaces: [web] }}\n\
             pullSecrets:\n  harbor-pull: {{ registries: [harbor], scope: web }}\n",
            registry.port
        ),
    )
    .unwrap();
    // In force: an old password, applied.
    let encrypt = "regops encrypt -f regops.yaml --credential alice";
    let old = reader.run(&format!("printf old-password | {encrypt}"), None);
    assert_eq!(old.code, 0, "{}", old.err);
    let first = reader.run("regops apply -f regops.yaml --yes", None);
    assert_eq!(first.code, 0, "{}{}", first.out, first.err);
    let uid = |s: &Value| s["metadata"]["uid"].as_str().unwrap().to_string();
    let before = uid(&dev.object("secrets", "web", "harbor-pull").unwrap());
    // "Encrypt the new password (`regops encrypt -f SPEC --credential NAME`)": alice's real one.
    let new = reader.run(&format!("printf s3cret | {encrypt}"), None);
    assert_eq!(new.code, 0, "{}", new.err);
    let done = follow(
        &reader,
        &lines,
        &[step(2), step(0), typed(0, YES)],
        &mut |_, _| {},
        &[],
    );
    let plan = done[0].1.out.replace('\n', " ");
    assert!(plan.contains("change in place"), "{}", done[0].1.out);
    let secret = dev.object("secrets", "web", "harbor-pull").unwrap();
    assert_eq!(uid(&secret), before, "a rotation keeps the Secret's uid");
    assert_eq!(
        logins(&secret)[&format!("127.0.0.1:{}", registry.port)].1,
        "s3cret"
    );
    assert!(!everything_shown(&done).contains("s3cret"));
}

/// A reader whose `regops.yaml` is the Docker Hub and Harbor example: the reader, the spec's
/// path, and its text as it starts.
fn with_example_spec() -> (Reader, PathBuf, String) {
    let reader = Reader::new(&kubeconfig(&[("dev", &tls_server())]));
    let spec = reader.work().join("regops.yaml");
    std::fs::copy(
        common::repo().join("examples/dockerhub-harbor/regops.yaml"),
        &spec,
    )
    .unwrap();
    let before = std::fs::read_to_string(&spec).unwrap();
    (reader, spec, before)
}

/// The prompt of `regops encrypt` on a terminal: echo is off before the prompt shows, so an
/// answer typed (or pasted) the moment it appears is never echoed; two different answers
/// write nothing.
#[test]
#[ignore = "needs script, for a terminal (Debian: bsdutils)"]
fn a_password_typed_at_the_prompt_is_never_echoed_and_must_match_itself() {
    common::require("script", "--version", "Debian: bsdutils");
    let (reader, spec, before) = with_example_spec();
    let ran = reader.run(
        "regops encrypt -f regops.yaml --credential harbor-robot",
        Some(&[
            (
                "Password for credential `harbor-robot`: ",
                "first-answer-c4d1",
            ),
            ("Again: ", "second-answer-88ab"),
        ]),
    );
    assert_eq!(ran.code, 1, "{}", ran.out);
    assert!(
        ran.out
            .contains("the two passwords differ; nothing was written"),
        "{}",
        ran.out
    );
    assert!(
        !ran.out.contains("first-answer-c4d1") && !ran.out.contains("second-answer-88ab"),
        "echoed:\n{}",
        ran.out
    );
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), before);
}

/// Ctrl-C at the prompt cancels, writes nothing, and leaves the terminal as it was: echo, line
/// editing and the signal keys back on (`stty -a`, run on the same terminal after regops).
#[test]
#[ignore = "needs script, for a terminal (Debian: bsdutils)"]
fn ctrl_c_at_the_password_prompt_cancels_and_gives_the_terminal_back() {
    common::require("script", "--version", "Debian: bsdutils");
    let (reader, spec, before) = with_example_spec();
    let ran = reader.run(
        "regops encrypt -f regops.yaml --credential harbor-robot; echo \"regops exited $?\"; stty -a",
        Some(&[("Password for credential `harbor-robot`: ", "half-typ\u{3}")]),
    );
    assert!(
        ran.out.contains("cannot read the password: cancelled"),
        "{}",
        ran.out
    );
    assert!(ran.out.contains("regops exited 1"), "{}", ran.out);
    let modes: Vec<&str> = ran.out.split_whitespace().collect();
    for mode in ["echo", "icanon", "isig"] {
        assert!(
            modes.contains(&mode) && !modes.contains(&format!("-{mode}").as_str()),
            "{mode} is not back on:\n{}",
            ran.out
        );
    }
    assert!(!ran.out.contains("half-typ"), "{}", ran.out);
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), before);
}

/// Copies `from` into `to`, recursively (a reader's checkout of a part of the repository).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Runs the Deployment `regops/regops` as it is on `server` under the test kubelet (its pod from
/// the image, in-cluster config, only the install's RBAC allowed), and checks what a reader
/// would see on a cluster: the pod becomes ready, and a namespace made afterwards gets its
/// pull secret.
fn run_the_installed_controller(server: &TestServer, image: &common::kubelet::Image, why: &str) {
    use std::time::Duration;
    let roles: Vec<Value> = server
        .objects("clusterroles")
        .into_iter()
        .chain(server.objects("roles"))
        .map(|mut r| {
            r["kind"] = json!(if r["metadata"]["namespace"].is_string() {
                "Role"
            } else {
                "ClusterRole"
            });
            r
        })
        .collect();
    server.set_policy(Some(kube_test_server::Policy {
        rules: common::rules_of(&roles),
    }));
    server.clear_log();
    let deployment = server
        .object("deployments", "regops", "regops")
        .unwrap_or_else(|| panic!("{why}: no Deployment regops/regops"));
    let pod = &deployment["spec"]["template"]["spec"];
    let port = u16::try_from(
        pod["containers"][0]["ports"][0]["containerPort"]
            .as_u64()
            .unwrap(),
    )
    .unwrap();
    let kubelet = common::kubelet::Kubelet::new(server, image);
    let mut controller = kubelet.start("regops-5d8c9b6f7-q4kzm", "regops", pod);
    assert!(
        common::wait_until("ready", Duration::from_secs(30), || {
            controller.http_get(port, "/readyz") == Some(200)
        }),
        "{why}: the controller never became ready:\n{}",
        controller.log()
    );
    let (code, body) = server.admin(
        "POST",
        "/api/v1/namespaces",
        "application/json",
        &json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team-new", "labels": {"team": "web"}}}),
    );
    assert_eq!(code, 201, "{body}");
    assert!(
        common::wait_until("team-new covered", Duration::from_secs(15), || {
            server.object("secrets", "team-new", "registries").is_some()
        }),
        "{why}: the new namespace was not covered:\n{}",
        controller.log()
    );
    controller.terminate();
    assert_eq!(
        controller.wait(Duration::from_secs(30)),
        0,
        "{}",
        controller.log()
    );
    let denied: Vec<_> = server
        .log()
        .into_iter()
        .filter(|l| l.status == 403)
        .collect();
    assert!(denied.is_empty(), "{why}: denied {denied:?}");
}

/// The install page, as a newcomer follows it (README → docs/install.md → deploy/README.md):
/// the README's install block (docs/install.md and deploy/README.md give the same commands) run
/// as written from a checkout of the repository against a test API server over TLS, with the
/// identity the base's spec (the quickstart's) is encrypted to; then deploy/README.md's
/// overlay with the reader's own identity and spec: a copy of `overlays/example`, a key made
/// with `regops keygen`, the spec's recipient changed to it and `regops rekey`ed, the copy's
/// `key.txt` replaced, `kubectl apply -k` of the copy. Each ends with the installed
/// Deployment's pod run under the test kubelet (`common/kubelet.rs`) from the release image:
/// it becomes ready and covers a namespace made after it started.
#[test]
#[ignore = "needs root, the musl target, musl-tools and kubectl (the test kubelet)"]
fn the_install_page_runs_as_written() {
    common::require("kubectl", "version", "Debian: kubernetes-client");
    let image = common::kubelet::image();
    let readme = block("README.md", "## Install");
    let commands = |lines: &[Line]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| !l.command.is_empty())
            .map(|l| l.command.clone())
            .collect()
    };
    for (page, marker) in [
        ("docs/install.md", "**In a cluster**"),
        ("deploy/README.md", "## Install"),
    ] {
        assert_eq!(
            commands(&readme),
            commands(&block(page, marker)),
            "the README's install and {page}'s differ"
        );
    }

    // The install block, as written.
    let server = tls_server();
    namespace(&server, "web", json!({"team": "web"}));
    let reader = Reader::new(&kubeconfig(&[("dev", &server)]));
    copy_tree(
        &common::repo().join("deploy"),
        &reader.work().join("deploy"),
    );
    // The identity the base's spec decrypts with: the quickstart's throwaway one, where the
    // README's first session keeps an identity.
    let key_dir = reader.home().join(".config/regops");
    std::fs::create_dir_all(&key_dir).unwrap();
    std::fs::copy(
        common::repo().join("examples/quickstart/example-key.txt"),
        key_dir.join("key.txt"),
    )
    .unwrap();
    let done = follow(
        &reader,
        &readme,
        &[step(0), step(0), step(0)],
        &mut |_, _| {},
        &[],
    );
    assert!(
        everything_shown(&done).contains("deployment.apps/regops created"),
        "{}",
        everything_shown(&done)
    );
    run_the_installed_controller(&server, &image, "the README's install");

    // deploy/README.md's overlay, with the reader's own identity and spec.
    let server = tls_server();
    namespace(&server, "web", json!({"team": "web"}));
    let reader = Reader::new(&kubeconfig(&[("dev", &server)]));
    copy_tree(
        &common::repo().join("deploy"),
        &reader.work().join("deploy"),
    );
    let mine = reader.work().join("deploy/overlays/mine");
    copy_tree(&reader.work().join("deploy/overlays/example"), &mine);
    let keygen = reader.run("regops keygen --out deploy/overlays/mine/new-key.txt", None);
    assert_eq!(keygen.code, 0, "{}{}", keygen.out, keygen.err);
    let public = format!("{}{}", keygen.out, keygen.err)
        .split_whitespace()
        .find(|w| w.starts_with("age1"))
        .expect("keygen prints the public key")
        .to_string();
    let spec_path = mine.join("regops.yaml");
    let spec = std::fs::read_to_string(&spec_path).unwrap();
    let example = "age1rqurtv6hcs5xk5hdnjnhyhd9zfmgy6hw0hlrqpqpg772dzarddfq9gqnwl";
    assert!(spec.contains(example), "the example's recipient");
    std::fs::write(&spec_path, spec.replace(example, &public)).unwrap();
    let rekey = reader.run(
        "regops rekey -f deploy/overlays/mine/regops.yaml -i deploy/overlays/mine/key.txt",
        None,
    );
    assert_eq!(rekey.code, 0, "{}{}", rekey.out, rekey.err);
    std::fs::rename(mine.join("new-key.txt"), mine.join("key.txt")).unwrap();
    // Only the reader's identity decrypts the spec now.
    let check = reader.run(
        "regops check -f deploy/overlays/mine/regops.yaml -i deploy/overlays/example/key.txt",
        None,
    );
    assert_ne!(
        check.code, 0,
        "the example identity still decrypts the spec"
    );
    let apply = reader.run("kubectl apply -k deploy/overlays/mine", None);
    assert_eq!(apply.code, 0, "{}{}", apply.out, apply.err);
    run_the_installed_controller(&server, &image, "the reader's overlay");
}
