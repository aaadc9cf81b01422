//! Saved plans end to end against the test server: `plan --out FILE` then `apply FILE`
//! carries out exactly the plan reviewed, and refuses, writing nothing, once anything it was
//! made from has moved; `show FILE` renders it.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::path::{Path, PathBuf};

use common::{Run, regops, run};
use kube_test_server::TestServer;
use serde_json::{Value, json};

const SPEC: &str = "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: saved }
registries:
  harbor: { server: harbor.example.com, credential: robot }
credentials:
  robot: { username: robot$ci, password: { env: REGOPS_CRED_HARBOR_TOKEN } }
scopes:
  web: { selector: { matchLabels: { team: web } } }
pullSecrets:
  harbor-pull: { registries: [harbor], scope: web }
bindings:
  - { pullSecret: harbor-pull, serviceAccounts: [default] }
";

struct Env {
    cluster: common::Cluster,
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

impl Env {
    /// Two namespaces in scope (`web-a`, `web-b`) and one not (`other`).
    fn new() -> Env {
        let cluster = common::Cluster::new(SPEC);
        seed(&cluster.server);
        Env { cluster }
    }

    fn server(&self) -> &TestServer {
        &self.cluster.server
    }

    fn dir(&self) -> &Path {
        self.cluster.dir.path()
    }

    fn plan_file(&self) -> PathBuf {
        self.dir().join("plan.json")
    }

    /// regops in the spec's directory, with `kubeconfig`.
    fn regops_at(&self, kubeconfig: &Path, args: &[&str]) -> Run {
        let mut c = regops();
        c.current_dir(self.dir())
            .args(args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env("REGOPS_CRED_HARBOR_TOKEN", "MARKER-saved-plan");
        let r = run(&mut c);
        assert!(
            !r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"),
            "a credential leaked:\n{}",
            r.transcript()
        );
        r
    }

    fn regops(&self, args: &[&str]) -> Run {
        self.regops_at(&self.cluster.kubeconfig, args)
    }

    /// `plan --out plan.json`, which has changes.
    fn save_plan(&self) {
        let r = self.regops(&["plan", "-f", "regops.yaml", "--out", "plan.json"]);
        assert_eq!(r.code, 2, "{}", r.transcript());
        assert!(
            r.stderr.contains("Saved the plan to plan.json"),
            "{}",
            r.transcript()
        );
        self.server().clear_log();
    }

    fn apply_saved(&self) -> Run {
        self.regops(&["apply", "plan.json", "--yes"])
    }

    /// Every write the server received (the Lease's included).
    fn writes(&self) -> Vec<String> {
        writes(self.server())
    }

    fn secrets(&self) -> Vec<String> {
        self.server()
            .objects("secrets")
            .iter()
            .map(|s| {
                format!(
                    "{}/{}",
                    s["metadata"]["namespace"].as_str().unwrap(),
                    s["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// An edit with kubectl (a merge patch) between plan and apply.
    fn patch(&self, path: &str, body: Value) {
        let (code, answer) = self
            .server()
            .request("PATCH", path, "application/merge-patch+json", Some(&body))
            .unwrap();
        assert_eq!(code, 200, "{answer}");
        self.server().clear_log();
    }
}

fn seed(server: &TestServer) {
    server
        .seed(namespace("web-a", json!({"team": "web"})))
        .unwrap();
    server
        .seed(namespace("web-b", json!({"team": "web"})))
        .unwrap();
    server
        .seed(namespace("other", json!({"team": "data"})))
        .unwrap();
    server.clear_log();
}

fn writes(server: &TestServer) -> Vec<String> {
    server
        .log()
        .iter()
        .filter(|e| e.is_write())
        .map(|e| format!("{} {} {}", e.verb, e.resource, e.path))
        .collect()
}

/// The saved plan is applied as planned, with no `-f` (the plan names the spec's files), and
/// a plan afterwards has nothing left to do.
#[test]
fn a_saved_plan_is_applied_as_planned() {
    let e = Env::new();
    e.save_plan();
    let r = e.apply_saved();
    assert_eq!(r.code, 0, "{}", r.transcript());
    let mut secrets = e.secrets();
    secrets.sort();
    assert_eq!(secrets, ["web-a/harbor-pull", "web-b/harbor-pull"]);
    let sa = e
        .server()
        .object("serviceaccounts", "web-a", "default")
        .unwrap();
    assert_eq!(sa["imagePullSecrets"], json!([{"name": "harbor-pull"}]));
    let again = e.regops(&["plan", "-f", "regops.yaml"]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    // Applied once, it is spent: what it was made from has moved (regops' own writes).
    e.server().clear_log();
    let twice = e.apply_saved();
    assert_eq!(twice.code, 1, "{}", twice.transcript());
    assert!(
        twice
            .flat_stderr()
            .contains("Secret web-a/harbor-pull appeared"),
        "{}",
        twice.transcript()
    );
    assert!(e.writes().is_empty(), "{:?}", e.writes());
}

/// The file holds no credential and is private: it is uploaded as a CI artifact.
#[test]
fn the_plan_file_is_private_and_holds_no_credential() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::new();
    // An earlier file readable by all is replaced by a private one.
    std::fs::write(e.plan_file(), "old").unwrap();
    std::fs::set_permissions(e.plan_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    e.save_plan();
    let mode = std::fs::metadata(e.plan_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(e.plan_file()).unwrap();
    assert!(!text.contains("MARKER"), "{text}");
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["kind"], "SavedPlan");
    assert!(
        doc["spec"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(doc["spec"]["files"], json!(["regops.yaml"]));
    // Every object read is recorded with its version: the namespaces among them.
    let kube_system = e.server().object("namespaces", "", "kube-system").unwrap();
    assert_eq!(
        doc["cluster"]["kubeSystemUid"],
        kube_system["metadata"]["uid"]
    );
    let objects = doc["objects"].as_array().unwrap();
    let web_a = objects
        .iter()
        .find(|o| o["kind"] == "Namespace" && o["name"] == "web-a")
        .unwrap();
    let ns = e.server().object("namespaces", "", "web-a").unwrap();
    assert_eq!(web_a["resourceVersion"], ns["metadata"]["resourceVersion"]);
}

/// A namespace labelled into the scope after the review would get credentials nobody
/// approved: refused, naming it, with nothing written (not even the Lease).
#[test]
fn a_namespace_labelled_after_the_plan_refuses_it() {
    let e = Env::new();
    e.save_plan();
    e.patch(
        "/api/v1/namespaces/other",
        json!({"metadata": {"labels": {"team": "web"}}}),
    );
    let r = e.apply_saved();
    assert_eq!(r.code, 1, "{}", r.transcript());
    let msg = r.flat_stderr();
    assert!(msg.contains("nothing was written"), "{msg}");
    assert!(msg.contains("Namespace other changed"), "{msg}");
    assert!(e.writes().is_empty(), "{:?}", e.writes());
    assert!(e.secrets().is_empty());
}

/// A namespace created after the plan is an object the plan did not see.
#[test]
fn a_namespace_created_after_the_plan_refuses_it() {
    let e = Env::new();
    e.save_plan();
    e.server()
        .seed(namespace("web-c", json!({"team": "web"})))
        .unwrap();
    e.server().clear_log();
    let r = e.apply_saved();
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr().contains("Namespace web-c appeared"),
        "{}",
        r.transcript()
    );
    assert!(e.writes().is_empty(), "{:?}", e.writes());
}

/// An object the plan would patch, edited in between (another entry added by someone else).
#[test]
fn an_object_edited_after_the_plan_refuses_it() {
    let e = Env::new();
    e.save_plan();
    e.patch(
        "/api/v1/namespaces/web-b/serviceaccounts/default",
        json!({"imagePullSecrets": [{"name": "theirs"}]}),
    );
    let r = e.apply_saved();
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr()
            .contains("ServiceAccount web-b/default changed"),
        "{}",
        r.transcript()
    );
    assert!(e.writes().is_empty(), "{:?}", e.writes());
    let sa = e
        .server()
        .object("serviceaccounts", "web-b", "default")
        .unwrap();
    assert_eq!(sa["imagePullSecrets"], json!([{"name": "theirs"}]));
}

/// A cluster built alike (same namespaces, same labels) is still another cluster.
#[test]
fn another_cluster_refuses_it() {
    let e = Env::new();
    e.save_plan();
    let twin = TestServer::start(kube_test_server::Config::default()).unwrap();
    seed(&twin);
    let kubeconfig = e.dir().join("twin-kubeconfig");
    twin.write_kubeconfig(&kubeconfig).unwrap();
    let r = e.regops_at(&kubeconfig, &["apply", "plan.json", "--yes"]);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr().contains("this is another cluster"),
        "{}",
        r.transcript()
    );
    assert!(writes(&twin).is_empty(), "{:?}", writes(&twin));
    assert!(twin.objects("secrets").is_empty());
}

/// A spec edited after the review (even a comment) is not the spec reviewed; it is refused
/// before it is parsed.
#[test]
fn an_edited_spec_refuses_it() {
    let e = Env::new();
    e.save_plan();
    let spec = e.dir().join("regops.yaml");
    let edited = SPEC.replace(
        "scopes:\n",
        "scopes:\n  all: { selector: { matchLabels: {} } }\n",
    );
    std::fs::write(&spec, edited).unwrap();
    let r = e.apply_saved();
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr()
            .contains("the spec's files differ from those planned"),
        "{}",
        r.transcript()
    );
    assert!(e.server().log().is_empty(), "{:?}", e.writes());
}

/// The plan file may come from a pull request's job: one that names a spec file outside the
/// working directory is refused without reading it.
#[test]
fn a_plan_file_naming_files_elsewhere_is_refused() {
    let e = Env::new();
    e.save_plan();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("secret.yaml");
    std::fs::write(&target, "password: MARKER-outside\n").unwrap();
    for named in [target.display().to_string(), "../secret.yaml".into()] {
        let mut doc: Value =
            serde_json::from_str(&std::fs::read_to_string(e.plan_file()).unwrap()).unwrap();
        doc["spec"]["files"] = json!([named]);
        std::fs::write(e.plan_file(), doc.to_string()).unwrap();
        let r = e.apply_saved();
        assert_eq!(r.code, 1, "{}", r.transcript());
        assert!(
            r.flat_stderr()
                .contains("not a relative path below this directory"),
            "{}",
            r.transcript()
        );
        assert!(e.server().log().is_empty());
    }
}

/// A plan made by another regops is refused (what it compares is that version's).
#[test]
fn a_plan_from_another_version_is_refused() {
    let e = Env::new();
    e.save_plan();
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(e.plan_file()).unwrap()).unwrap();
    doc["regopsVersion"] = json!("0.0.1 (0000000 2020-01-01)");
    std::fs::write(e.plan_file(), doc.to_string()).unwrap();
    let r = e.apply_saved();
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr().contains("made by regops 0.0.1"),
        "{}",
        r.transcript()
    );
    assert!(e.server().log().is_empty());
}

/// A plan saved in format 2 (before the file carried each change's write) is refused, saying
/// which format this regops reads; nothing is read from the cluster.
#[test]
fn a_plan_of_the_old_format_is_refused() {
    let e = Env::new();
    e.save_plan();
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(e.plan_file()).unwrap()).unwrap();
    assert_eq!(doc["formatVersion"], "3");
    assert_eq!(
        doc["writes"].as_array().unwrap().len(),
        doc["plan"]["changes"].as_array().unwrap().len(),
        "{doc}"
    );
    doc["formatVersion"] = json!("2");
    doc.as_object_mut().unwrap().remove("writes");
    std::fs::write(e.plan_file(), doc.to_string()).unwrap();
    let r = e.apply_saved();
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr()
            .contains("a saved plan of format 2; this regops reads format 3"),
        "{}",
        r.transcript()
    );
    assert!(e.server().log().is_empty());
}

/// A change whose apiVersion is not its kind's was not written by regops: refused.
#[test]
fn a_change_whose_api_version_is_not_its_kinds_is_refused() {
    let e = Env::new();
    e.save_plan();
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(e.plan_file()).unwrap()).unwrap();
    doc["plan"]["changes"][0]["apiVersion"] = json!("evil.example.com/v1");
    std::fs::write(e.plan_file(), doc.to_string()).unwrap();
    let r = e.apply_saved();
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr()
            .contains("says apiVersion `evil.example.com/v1`"),
        "{}",
        r.transcript()
    );
    assert!(e.server().log().is_empty());
}

/// `show` renders the saved plan as `plan` renders it, in each format.
#[test]
fn show_renders_a_saved_plan() {
    let e = Env::new();
    e.save_plan();
    let show = |args: &[&str]| {
        let mut c = regops();
        c.current_dir(e.dir())
            .arg("show")
            .arg("plan.json")
            .args(args);
        let r = run(&mut c);
        assert_eq!(r.code, 0, "shown, changes or not: {}", r.transcript());
        r
    };
    let text = show(&[]);
    assert!(
        text.stdout.contains("Saved plan of spec `saved`"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("harbor-pull"), "{}", text.stdout);
    let md = show(&["--output", "markdown"]);
    assert!(
        md.stdout.starts_with("_Saved plan of `saved`"),
        "{}",
        md.stdout
    );
    let shown: Value = serde_json::from_str(&show(&["-o", "json"]).stdout).unwrap();
    let planned: Value = serde_json::from_str(
        &e.regops(&["plan", "-f", "regops.yaml", "-o", "json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(shown["changes"], planned["changes"]);
    assert_eq!(shown["summary"], planned["summary"]);
}

/// Not a saved plan, or a truncated one: a clear error.
#[test]
fn a_file_that_is_not_a_saved_plan_is_refused() {
    let e = Env::new();
    std::fs::write(e.plan_file(), "{\"kind\": \"Plan\"}").unwrap();
    let r = e.apply_saved();
    assert_eq!(r.code, 1);
    assert!(
        r.flat_stderr().contains("not a saved regops plan"),
        "{}",
        r.transcript()
    );
    e.save_plan();
    let text = std::fs::read_to_string(e.plan_file()).unwrap();
    std::fs::write(e.plan_file(), &text[..text.len() / 2]).unwrap();
    let r = e.apply_saved();
    assert_eq!(r.code, 1);
    assert!(
        r.flat_stderr().contains("not a saved regops plan"),
        "{}",
        r.transcript()
    );
    assert!(e.server().log().is_empty());
}

/// A plan made in a git repository names its spec files from the repository's top, so it is
/// applied from any directory inside the repository (issue 39: from another directory it
/// failed with `cannot read spec file regops.yaml`); outside the repository it is refused,
/// saying where to apply it from, and nothing is written.
#[test]
fn a_saved_plan_applies_from_anywhere_in_its_repository() {
    let e = Env::new();
    let repo = e.dir().join("repo");
    let deploy = repo.join("deploy");
    std::fs::create_dir_all(deploy.join("nested")).unwrap();
    std::fs::write(deploy.join("regops.yaml"), SPEC).unwrap();
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .current_dir(&repo)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "spec"]);
    let plan = e.dir().join("repo-plan.json");
    let at = |dir: &Path, args: &[&str]| -> Run {
        let mut c = regops();
        c.current_dir(dir)
            .args(args)
            .arg("--kubeconfig")
            .arg(&e.cluster.kubeconfig)
            .env("REGOPS_CRED_HARBOR_TOKEN", "MARKER-saved-plan");
        run(&mut c)
    };
    let made = at(
        &deploy,
        &["plan", "-f", "regops.yaml", "--out", plan.to_str().unwrap()],
    );
    assert_eq!(made.code, 2, "{}", made.transcript());
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert_eq!(saved["spec"]["files"], json!(["deploy/regops.yaml"]));
    assert_eq!(saved["spec"]["fromRepository"], true);
    // Outside the repository: refused, nothing written.
    let outside = at(e.dir(), &["apply", plan.to_str().unwrap()]);
    assert_eq!(outside.code, 1, "{}", outside.transcript());
    assert!(
        outside
            .stderr
            .contains("apply it from inside that repository"),
        "{}",
        outside.stderr
    );
    // A crafted plan naming a file through a committed symlink out of the repository is
    // refused before the file is read (no digest of it, which would tell whether a guess of
    // its content is right).
    let outside = e.dir().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("creds.yaml"), SPEC).unwrap();
    std::os::unix::fs::symlink(&outside, repo.join("lnk")).unwrap();
    let mut crafted = saved.clone();
    crafted["spec"]["files"] = json!(["lnk/creds.yaml"]);
    let crafted_path = e.dir().join("crafted.json");
    std::fs::write(&crafted_path, crafted.to_string()).unwrap();
    let r = at(&deploy, &["apply", crafted_path.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.stderr.contains("leads outside the repository"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("now sha256"), "{}", r.stderr);
    // From a directory deep inside it: applied.
    let applied = at(&deploy.join("nested"), &["apply", plan.to_str().unwrap()]);
    assert_eq!(applied.code, 0, "{}", applied.transcript());
    assert!(
        e.server()
            .object("secrets", "web-a", "harbor-pull")
            .is_some()
    );
}

/// A spec whose plan writes a Secret, a ServiceAccount and a workload with the KubeSphere
/// annotation, in `web-a` and `web-b`.
const WRITES_SPEC: &str = "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: saved }
registries:
  harbor: { server: harbor.example.com, credential: robot }
credentials:
  robot: { username: robot$ci, password: { env: REGOPS_CRED_HARBOR_TOKEN } }
scopes:
  web: { selector: { matchLabels: { team: web } } }
pullSecrets:
  harbor-pull: { registries: [harbor], scope: web }
bindings:
  - { pullSecret: harbor-pull, serviceAccounts: [default] }
  - pullSecret: harbor-pull
    workloads: { kinds: [Deployment] }
    kubesphereAnnotation: true
";

/// A Deployment pulling from harbor, whose pod template carries KubeSphere's annotation for
/// another container (so the write merges into it, bound to the version read).
fn deployment(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {"kubesphere.io/imagepullsecrets": "{\"sidecar\":\"theirs\"}"}
                },
                "spec": {"containers": [
                    {"name": "app", "image": "harbor.example.com/team/app:1"},
                    {"name": "sidecar", "image": "example.org/sidecar:1"}
                ]}
            }
        }
    })
}

/// The body apply sends for `c`, rendered from the write the saved plan holds. A Secret's
/// data is the one thing a plan never holds: it is left out on both sides (`data`).
fn rendered(spec: &str, c: &regops_core::plan::Change) -> Value {
    use regops_core::request;
    use regops_core::write::Write;
    match c.write.as_ref().unwrap() {
        Write::Secret(w) => {
            let data = secrecy::SecretString::from("(derived at apply)".to_string());
            let mut v = serde_json::to_value(request::SecretApply {
                namespace: &c.namespace,
                name: &c.name,
                write: w,
                data: &data,
                resource_version: None,
            })
            .unwrap();
            v["data"] = json!("(derived at apply)");
            v
        }
        Write::ServiceAccount(w) => {
            let entries: Vec<String> = w.entries.iter().map(|e| e.to_string()).collect();
            request::service_account_patch(
                spec,
                &entries,
                w.resource_version.as_deref(),
                c.record.as_ref().map(Option::as_deref),
            )
        }
        Write::Workload(w) => request::workload_body(
            c.kind,
            &c.namespace,
            &c.name,
            w,
            &|_| false,
            (
                w.kubesphere.as_ref().map(|k| k.value.as_str()),
                w.kubesphere
                    .as_ref()
                    .and_then(|k| k.resource_version.as_deref()),
            ),
        ),
        other => panic!("no such write in this plan: {other:?}"),
    }
}

/// What `apply FILE` sends is what the saved plan holds: each body the server received is the
/// one rendered from the change's write in the file, and nothing else is written. A Secret's
/// data, which the file never holds, is derived at apply: the credential's document.
#[test]
fn a_saved_plan_sends_the_writes_it_holds() {
    let e = Env {
        cluster: common::Cluster::new(WRITES_SPEC),
    };
    seed(e.server());
    for ns in ["web-a", "web-b"] {
        e.server().seed(deployment(ns, "api")).unwrap();
    }
    e.save_plan();
    let saved = regops_core::saved::parse(&std::fs::read(e.plan_file()).unwrap()).unwrap();
    e.server().record_bodies(true);
    let r = e.apply_saved();
    assert_eq!(r.code, 0, "{}", r.transcript());
    let log = e.server().log();
    let written: Vec<&kube_test_server::LogEntry> = log
        .iter()
        .filter(|l| l.is_write() && l.resource != "leases" && l.resource != "events")
        .collect();
    let mut kinds = std::collections::BTreeSet::new();
    let mut planned = 0;
    for c in saved.plan.changes.iter().filter(|c| c.write.is_some()) {
        planned += 1;
        kinds.insert(c.kind.as_str());
        let path = format!("{}/{}", c.kind.collection_path(Some(&c.namespace)), c.name);
        let mut sent: Vec<Value> = written
            .iter()
            .filter(|l| l.path == path)
            .map(|l| serde_json::from_slice(l.body.as_deref().unwrap()).unwrap())
            .collect();
        assert_eq!(sent.len(), 1, "{path}: {sent:?}");
        if c.kind == regops_spec::kind::ObjectKind::Secret {
            use base64::Engine;
            let data = sent[0]["data"][".dockerconfigjson"].take();
            let doc = base64::engine::general_purpose::STANDARD
                .decode(data.as_str().unwrap())
                .unwrap();
            let doc: Value = serde_json::from_slice(&doc).unwrap();
            assert_eq!(
                doc["auths"]["harbor.example.com"]["username"], "robot$ci",
                "{path}"
            );
            assert!(doc["auths"]["harbor.example.com"]["password"] == "MARKER-saved-plan");
            sent[0]["data"] = json!("(derived at apply)");
        }
        assert_eq!(sent[0], rendered(&saved.plan.spec, c), "{path}");
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["Deployment", "Secret", "ServiceAccount"]
    );
    assert_eq!(written.len(), planned, "{written:?}");
    // The Deployment's write merged into KubeSphere's value and was bound to its version.
    let d = saved
        .plan
        .changes
        .iter()
        .find(|c| c.kind.as_str() == "Deployment")
        .unwrap();
    let Some(regops_core::write::Write::Workload(w)) = &d.write else {
        panic!("{d:?}")
    };
    let k = w.kubesphere.as_ref().unwrap();
    assert_eq!(k.value, r#"{"app":"harbor-pull","sidecar":"theirs"}"#);
    assert!(k.resource_version.is_some());
}

/// A saved plan is data anyone may hand over: a write edited in the file (a ServiceAccount
/// given another Secret) is not the plan made again from the same spec and cluster, and is
/// refused with nothing written.
#[test]
fn a_saved_plan_whose_write_was_edited_is_refused() {
    let e = Env::new();
    e.save_plan();
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(e.plan_file()).unwrap()).unwrap();
    let write = doc["writes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|w| w["write"] == "serviceAccount")
        .unwrap();
    assert_eq!(write["entries"], json!(["harbor-pull"]));
    write["entries"] = json!(["harbor-pull", "someone-elses"]);
    std::fs::write(e.plan_file(), doc.to_string()).unwrap();
    let r = e.apply_saved();
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr().contains("differently than planned"),
        "{}",
        r.transcript()
    );
    assert!(e.writes().is_empty(), "{:?}", e.writes());
}

/// A workload's status moves its resourceVersion without anyone editing what planning reads of
/// it: the plan is still the saved one, and the saved write, bound to the version planned,
/// is sent as it is; its conflict is resolved as any apply's is, by reading the workload again
/// and merging again (KubeSphere's value for another container kept).
#[test]
fn a_saved_workload_write_bound_to_a_version_since_moved_is_merged_again() {
    let e = Env {
        cluster: common::Cluster::new(WRITES_SPEC),
    };
    seed(e.server());
    e.server().seed(deployment("web-a", "api")).unwrap();
    e.save_plan();
    let saved = regops_core::saved::parse(&std::fs::read(e.plan_file()).unwrap()).unwrap();
    let planned_rv = saved
        .plan
        .changes
        .iter()
        .find_map(|c| match &c.write {
            Some(regops_core::write::Write::Workload(w)) => {
                w.kubesphere.as_ref()?.resource_version.clone()
            }
            _ => None,
        })
        .unwrap();
    // A controller scales it: not what planning reads, but a new resourceVersion.
    e.patch(
        "/apis/apps/v1/namespaces/web-a/deployments/api",
        json!({"spec": {"replicas": 3}}),
    );
    e.server().record_bodies(true);
    let r = e.apply_saved();
    assert_eq!(r.code, 0, "{}", r.transcript());
    let sent: Vec<(u16, Value)> = e
        .server()
        .log()
        .iter()
        .filter(|l| l.is_write() && l.resource == "deployments")
        .map(|l| {
            (
                l.status,
                serde_json::from_slice(l.body.as_deref().unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].0, 409, "{sent:?}");
    assert_eq!(
        sent[0].1["metadata"]["resourceVersion"].as_str(),
        Some(&*planned_rv)
    );
    assert_eq!(sent[1].0, 200, "{sent:?}");
    assert_ne!(
        sent[1].1["metadata"]["resourceVersion"].as_str(),
        Some(&*planned_rv)
    );
    let d = e.server().object("deployments", "web-a", "api").unwrap();
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["kubesphere.io/imagepullsecrets"],
        r#"{"app":"harbor-pull","sidecar":"theirs"}"#
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "harbor-pull"}])
    );
    assert_eq!(d["spec"]["replicas"], 3);
}
