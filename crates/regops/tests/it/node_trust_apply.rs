//! `nodeTrust:` end to end against the test API server: plan shows the node-trust ConfigMap
//! and warns of each host the operator's allowlist refuses; apply writes it with regops' marks
//! (a second apply writes nothing); drift tells an edit in the cluster; the ConfigMap's data,
//! laid out as the kubelet mounts a ConfigMap volume, is what `regops node-sync` reads. A
//! ConfigMap regops does not own is never written, and the installs' RBAC with the component's
//! allows exactly this.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::{self, Run, regops, run};
use crate::node_trust::spec;

const NS: &str = "regops-node-trust";
const CM: &str = "regops-node-trust";

struct Env {
    server: kube_test_server::TestServer,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    spec: PathBuf,
}

/// The seeds' spec with `nodeTrust: {}`, against a server holding the component's namespace
/// and an allowlist of `allow` (none: no allowlist).
fn env(allow: Option<&str>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "192.168.0.99", "harbor.example.com:8443");
    let mut text = std::fs::read_to_string(&spec).unwrap();
    text.push_str("nodeTrust: {}\n");
    std::fs::write(&spec, text).unwrap();
    let server = kube_test_server::TestServer::start(kube_test_server::Config::default()).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    server
        .seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
        .unwrap();
    if let Some(hosts) = allow {
        server
            .seed(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "regops-node-trust-allow", "namespace": NS},
                "data": {"allow-hosts": hosts}}))
            .unwrap();
    }
    Env {
        server,
        dir,
        kubeconfig,
        spec,
    }
}

impl Env {
    fn regops(&self, sub: &str, extra: &[&str]) -> Run {
        run(regops()
            .arg(sub)
            .arg("-f")
            .arg(&self.spec)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(extra))
    }

    fn config_map(&self) -> Option<Value> {
        self.server.object("configmaps", NS, CM)
    }

    fn config_map_writes(&self) -> usize {
        self.server
            .log()
            .iter()
            .filter(|l| l.resource == "configmaps" && !matches!(l.verb.as_str(), "get" | "list"))
            .count()
    }

    /// What `render --node-config containerd` prints for the same spec.
    fn rendered(&self) -> String {
        let r = run(regops()
            .args(["render", "--node-config", "containerd", "-f"])
            .arg(&self.spec));
        assert_eq!(r.code, 0, "{}", r.transcript());
        r.stdout
    }
}

/// `data` laid out as the kubelet lays out a ConfigMap volume (kubernetes/kubernetes,
/// `pkg/volume/util/atomic_writer.go`, `writePayloadToDir` and `createUserVisibleFiles`): the
/// files in a timestamped directory `..<ts>`, a symbolic link `..data` to it, and each key a
/// symbolic link `<key> -> ..data/<key>`.
pub fn mount_config_map(dir: &Path, data: &serde_json::Map<String, Value>) -> PathBuf {
    let vol = dir.join("volume");
    let ts = vol.join("..2026_12_07_12_00_00.000000001");
    std::fs::create_dir_all(&ts).unwrap();
    for (k, v) in data {
        std::fs::write(ts.join(k), v.as_str().unwrap()).unwrap();
        std::os::unix::fs::symlink(format!("..data/{k}"), vol.join(k)).unwrap();
    }
    std::os::unix::fs::symlink(ts.file_name().unwrap(), vol.join("..data")).unwrap();
    vol
}

#[test]
fn plan_apply_drift_and_node_sync_read_the_config_map_apply_keeps() {
    let e = env(Some("192.168.0.99"));
    // Plan: the ConfigMap to create, and the host node-sync will refuse.
    let r = e.regops("plan", &[]);
    assert!(r.code == 0 || r.code == 2, "{}", r.transcript());
    assert!(
        r.stdout.contains("+ ConfigMap regops-node-trust"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "node trust for registry host `harbor.example.com:8443` will be refused by `regops node-sync`"
        ),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("host `192.168.0.99` will be refused"),
        "{}",
        r.stdout
    );
    let r = e.regops("plan", &["-o", "json"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let change = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "ConfigMap")
        .unwrap()
        .clone();
    assert_eq!(change["action"], "create");
    assert_eq!(change["namespace"], NS);
    assert_eq!(e.config_map_writes(), 0, "plan wrote");

    // Apply: written with regops' marks and field manager; the stream is render's.
    let r = e.regops("apply", &["--yes"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let cm = e.config_map().expect("the ConfigMap apply keeps");
    assert_eq!(
        cm["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "regops"
    );
    assert_eq!(cm["metadata"]["annotations"]["regops.dev/spec"], "regops");
    assert_eq!(cm["data"]["containerd.yaml"], e.rendered().as_str());
    for key in ["k3s.yaml", "rke2.yaml", "docker.yaml", "crio.yaml"] {
        assert!(cm["data"][key].is_string(), "{key}");
    }
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(managers, ["regops"]);
    let text = cm["data"].to_string();
    assert!(
        !text.contains("REGOPS_CRED") && !text.contains("robot") && !text.contains("PRIVATE"),
        "{text}"
    );

    // A second apply writes nothing, and drift is in sync.
    let writes = e.config_map_writes();
    let r = e.regops("apply", &["--yes"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(e.config_map_writes(), writes, "the second apply wrote");
    let r = e.regops("drift", &[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stdout.contains("In sync"), "{}", r.stdout);

    // The ConfigMap's content, mounted as the kubelet mounts it, is what node-sync reads.
    let vol = mount_config_map(e.dir.path(), cm["data"].as_object().unwrap());
    let root = e.dir.path().join("certs.d");
    std::fs::create_dir(&root).unwrap();
    let r = run(regops()
        .args(["node-sync", "--from"])
        .arg(vol.join("containerd.yaml"))
        .arg("--root")
        .arg(&root)
        .args(["--allow-host", "192.168.0.99,harbor.example.com:8443"]));
    assert_eq!(r.code, 0, "{}", r.transcript());
    for f in [
        "192.168.0.99/hosts.toml",
        "harbor.example.com:8443/hosts.toml",
        "harbor.example.com:8443/ca.crt",
    ] {
        assert!(root.join(f).is_file(), "{f}");
    }

    // An edit in the cluster: drift reports it, apply restores it.
    let (code, _) = e
        .server
        .request(
            "PATCH",
            &format!("/api/v1/namespaces/{NS}/configmaps/{CM}?fieldManager=someone"),
            "application/merge-patch+json",
            Some(&json!({"data": {"containerd.yaml": ""}})),
        )
        .unwrap();
    assert_eq!(code, 200);
    let r = e.regops("drift", &["-o", "json"]);
    assert_ne!(r.code, 0, "{}", r.transcript());
    assert!(
        r.stdout.contains("ConfigMap") && r.stdout.contains("changed-in-cluster"),
        "{}",
        r.stdout
    );
    let r = e.regops("apply", &["--yes", "--force-conflicts"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(
        e.config_map().unwrap()["data"]["containerd.yaml"],
        e.rendered().as_str()
    );
}

#[test]
fn without_an_allowlist_every_host_is_warned_of() {
    let e = env(None);
    let r = e.regops("plan", &[]);
    for host in ["192.168.0.99", "harbor.example.com:8443"] {
        assert!(
            r.stdout.contains(&format!(
                "node trust for registry host `{host}` will be refused"
            )),
            "{}",
            r.stdout
        );
    }
    assert!(r.stdout.contains("does not exist"), "{}", r.stdout);
}

#[test]
fn a_config_map_regops_does_not_own_is_never_written() {
    // The spec (untrusted) names a ConfigMap someone else keeps.
    let e = env(Some("192.168.0.99"));
    e.server
        .seed(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CM, "namespace": NS}, "data": {"containerd.yaml": "theirs"}}))
        .unwrap();
    let r = e.regops("plan", &[]);
    assert!(r.stdout.contains("is not regops'"), "{}", r.transcript());
    let r = e.regops("apply", &["--yes"]);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert_eq!(e.config_map().unwrap()["data"]["containerd.yaml"], "theirs");
    assert_eq!(e.config_map_writes(), 0);
}

#[test]
fn the_installs_rbac_with_the_components_allows_apply_and_drift() {
    let read = |p: &str| -> Vec<Value> {
        let text = std::fs::read_to_string(common::repo().join(p)).unwrap();
        serde_saphyr::from_multiple(&text).unwrap()
    };
    let e = env(Some("192.168.0.99,harbor.example.com:8443"));
    let install = read("deploy/cronjob/rbac.yaml");
    let component = read("deploy/components/node-trust/rbac.yaml");
    // Without the component's Role, writing the ConfigMap is denied.
    e.server.set_policy(Some(kube_test_server::Policy {
        rules: common::rules_of(&install),
    }));
    let r = e.regops("apply", &["--yes"]);
    assert_ne!(r.code, 0, "{}", r.transcript());
    assert!(e.config_map().is_none());
    // With it, apply and drift succeed.
    let mut all = install;
    all.extend(component.iter().cloned());
    e.server.set_policy(Some(kube_test_server::Policy {
        rules: common::rules_of(&all),
    }));
    let r = e.regops("apply", &["--yes"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(e.config_map().is_some());
    let r = e.regops("drift", &[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    // The component grants configmaps in its own namespace only, by name, and never delete.
    for d in component.iter().filter(|d| d["kind"] == "Role") {
        assert_eq!(d["metadata"]["namespace"], NS);
        for rule in d["rules"].as_array().unwrap() {
            assert_eq!(rule["resources"], json!(["configmaps"]));
            assert!(
                rule["resourceNames"]
                    .as_array()
                    .is_some_and(|n| !n.is_empty())
            );
            assert!(!rule["verbs"].as_array().unwrap().contains(&json!("delete")));
        }
    }
}
