//! The installs' pods can read what they mount, under the kubelet's rules: each base in
//! deploy/ rendered as a user renders it (`kubectl kustomize`), each Secret and ConfigMap volume
//! laid out as the kubelet lays it out, and `regops check` run with the pod's uid, gid and
//! supplementary groups against the mounted spec and age key.
//!
//! How the kubelet lays a Secret or ConfigMap volume out (kubernetes/kubernetes):
//! - `pkg/volume/util/atomic_writer.go` (`AtomicWriter.writePayloadToDir`): each key is a file
//!   written by the kubelet, which runs as root, so owned by root:root, with the item's mode,
//!   else the volume's `defaultMode` (0644 when unset: `SecretVolumeSourceDefaultMode`).
//! - `pkg/volume/volume_linux.go` (`SetVolumeOwnership`, `changeFilePermission`): only when the
//!   pod sets `fsGroup`, every file is chowned to group fsGroup (`os.Lchown(name, -1, fsGroup)`)
//!   and given the group's read bits: `mode | 0440` for a read-only volume, which Secret and
//!   ConfigMap volumes are (`GetAttributes().ReadOnly`); without fsGroup nothing changes
//!   (kubernetes/kubernetes#57923: a `defaultMode: 0400` Secret is then readable by root only).
//! - The container's processes run as `runAsUser`, with primary group `runAsGroup` (else the
//!   image's: 65532 for distroless `nonroot`) and fsGroup among their supplementary groups
//!   (`pkg/kubelet/kuberuntime/security_context.go`, `SupplementalGroups` gets `FSGroup`).
//!
//! The tests need root (to chown and to drop to the pod's uid with setpriv), so they are
//! `#[ignore = "needs root, …"]`; `.ci/run` runs as root with `--include-ignored`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    unreachable_pub
)]

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const DISTROLESS_NONROOT_GID: u32 = 65532;

/// A volume's files: name and bytes.
type Files = Vec<(String, Vec<u8>)>;

/// A base (or overlay) rendered as a user renders it: `kubectl kustomize`.
fn rendered(base: &str) -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("kubectl")
        .args(["kustomize", base])
        .current_dir(&root)
        .output()
        .expect("kubectl kustomize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

/// The Pods' templates of a rendered base: `(what, pod spec)`.
fn pods(base: &str) -> Vec<(String, Value)> {
    rendered(base)
        .into_iter()
        .filter_map(|d| {
            let name = format!(
                "{}/{}",
                d["kind"].as_str()?,
                d["metadata"]["name"].as_str()?
            );
            let spec = match d["kind"].as_str()? {
                "Deployment" => d["spec"]["template"]["spec"].clone(),
                "CronJob" => d["spec"]["jobTemplate"]["spec"]["template"]["spec"].clone(),
                _ => return None,
            };
            Some((name, spec))
        })
        .collect()
}

/// The rendered Secrets' data (decoded), by name.
fn secrets(base: &str) -> Vec<(String, Files)> {
    use base64::Engine;
    rendered(base)
        .into_iter()
        .filter(|d| d["kind"] == "Secret")
        .map(|d| {
            let files = d["data"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            // kustomize folds long values over lines.
                            let text: String = v
                                .as_str()
                                .unwrap()
                                .chars()
                                .filter(|c| !c.is_whitespace())
                                .collect();
                            let bytes = base64::engine::general_purpose::STANDARD
                                .decode(text)
                                .unwrap();
                            (k.clone(), bytes)
                        })
                        .collect()
                })
                .unwrap_or_default();
            (d["metadata"]["name"].as_str().unwrap().to_string(), files)
        })
        .collect()
}

/// The rendered ConfigMaps' data, by name.
fn config_maps(base: &str) -> Vec<(String, Value)> {
    rendered(base)
        .into_iter()
        .filter(|d| d["kind"] == "ConfigMap")
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap().to_string(),
                d["data"].clone(),
            )
        })
        .collect()
}

fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) {
    std::os::unix::fs::chown(path, uid, gid).unwrap();
}

/// One volume's files, laid out as the kubelet does: owned by root, `mode`, then (with an
/// fsGroup) the group and `| 0440`.
fn lay_out(dir: &Path, files: &[(&str, &[u8])], mode: u32, fs_group: Option<u32>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        chown(&path, Some(0), Some(0));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        if let Some(g) = fs_group {
            chown(&path, None, Some(g));
            let m = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m | 0o440)).unwrap();
        }
    }
}

use common::kubelet::u32_at;

/// Runs `regops check` in the pod's container as the kubelet would start it (its uid, gid and
/// groups), with the volumes laid out under `root` and its env's paths pointing there.
fn check_in_pod(
    what: &str,
    pod: &Value,
    spec_data: &Value,
    rendered_secrets: &[(String, Files)],
    root: &Path,
    bin: &Path,
) -> (bool, String) {
    let sc = &pod["securityContext"];
    let uid = u32_at(&sc["runAsUser"]).unwrap_or_else(|| panic!("{what}: no runAsUser"));
    let gid = u32_at(&sc["runAsGroup"]).unwrap_or(DISTROLESS_NONROOT_GID);
    let fs_group = u32_at(&sc["fsGroup"]);
    let container = &pod["containers"][0];
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in container["volumeMounts"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let at = m["mountPath"].as_str().unwrap();
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap();
        let dir = root.join(name);
        if let Some(secret) = volume.get("secret") {
            // The age identity's Secret: as the install renders it (an overlay's
            // secretGenerator), else the example key under the key the README creates.
            let mode = u32_at(&secret["defaultMode"]).unwrap_or(0o644);
            let name = secret["secretName"].as_str().unwrap_or_default();
            let files: Files = rendered_secrets
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, f)| f.clone())
                .unwrap_or_else(|| {
                    let key = std::fs::read(
                        Path::new(env!("CARGO_MANIFEST_DIR"))
                            .join("../../examples/quickstart/example-key.txt"),
                    )
                    .unwrap();
                    vec![("key.txt".to_string(), key)]
                });
            let refs: Vec<(&str, &[u8])> = files
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            lay_out(&dir, &refs, mode, fs_group);
        } else if let Some(cm) = volume.get("configMap") {
            let mode = u32_at(&cm["defaultMode"]).unwrap_or(0o644);
            let files: Vec<(String, Vec<u8>)> = spec_data
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().as_bytes().to_vec()))
                .collect();
            let refs: Vec<(&str, &[u8])> = files
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            lay_out(&dir, &refs, mode, fs_group);
        } else if volume.get("emptyDir").is_some() {
            // pkg/volume/emptydir: a directory of mode 0777, then the fsGroup's ownership.
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            if let Some(g) = fs_group {
                chown(&dir, None, Some(g));
            }
        } else {
            panic!("{what}: a volume of a kind this test does not lay out: {volume}");
        }
        mounts.push((at.to_string(), dir));
    }
    // The container's paths, mapped to where the volumes are laid out.
    let map = |p: &str| -> String {
        for (at, dir) in &mounts {
            if let Some(rest) = p.strip_prefix(at.as_str()) {
                return format!("{}{rest}", dir.display());
            }
        }
        p.to_string()
    };
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let spec_arg = args
        .iter()
        .position(|a| a == "-f")
        .map(|i| args[i + 1].clone())
        .unwrap_or_else(|| panic!("{what}: no -f"));
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"));
    match fs_group {
        Some(g) => cmd.arg(format!("--groups={g}")),
        None => cmd.arg("--clear-groups"),
    };
    cmd.arg(bin).args(["check", "-f", &map(&spec_arg)]);
    cmd.env_clear()
        .env("HOME", root)
        .env("PATH", "/usr/bin:/bin");
    for e in container["env"].as_array().into_iter().flatten() {
        if let Some(v) = e["value"].as_str() {
            cmd.env(e["name"].as_str().unwrap(), map(v));
        }
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The binary, where the pod's user can run it (the target directory is under root's home).
fn binary_for_others(dir: &Path) -> PathBuf {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("regops");
    std::fs::copy(env!("CARGO_BIN_EXE_regops"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
#[ignore = "needs root, kubectl and setpriv (Debian: kubernetes-client, util-linux)"]
fn every_install_reads_its_spec_and_key_as_the_kubelet_mounts_them() {
    common::require_root();
    common::require("kubectl", "version", "Debian: kubernetes-client");
    common::require("setpriv", "--version", "Debian: util-linux");
    let tmp = tempfile::tempdir().unwrap();
    let bin = binary_for_others(tmp.path());
    let mut checked = 0;
    // The bases, and the example overlay a user copies (its spec and key from its generators).
    for base in [
        "deploy/controller",
        "deploy/cronjob",
        "deploy/overlays/example",
    ] {
        let spec = config_maps(base)
            .into_iter()
            .find(|(n, _)| n == "regops-spec")
            .map(|(_, d)| d)
            .expect("the spec's ConfigMap");
        for (what, pod) in pods(base) {
            let root = tmp.path().join(format!("{base}-{what}").replace('/', "-"));
            let (ok, out) = check_in_pod(&what, &pod, &spec, &secrets(base), &root, &bin);
            assert!(
                ok,
                "{base} {what}: `regops check` failed in the pod:\n{out}"
            );
            assert!(!out.contains("Permission denied"), "{out}");
            checked += 1;
        }
    }
    assert_eq!(
        checked, 3,
        "a Deployment, a CronJob and the overlay's Deployment"
    );
}

/// The model above can fail: the same Secret volume without an fsGroup (as the bases had it)
/// is unreadable to the pod's user, as on a real kubelet.
#[test]
#[ignore = "needs root, kubectl and setpriv (Debian: kubernetes-client, util-linux)"]
fn without_fs_group_a_0400_secret_is_unreadable_to_the_pod() {
    common::require_root();
    common::require("kubectl", "version", "Debian: kubernetes-client");
    common::require("setpriv", "--version", "Debian: util-linux");
    let tmp = tempfile::tempdir().unwrap();
    let bin = binary_for_others(tmp.path());
    let (what, mut pod) = pods("deploy/controller").remove(0);
    pod["securityContext"]
        .as_object_mut()
        .unwrap()
        .remove("fsGroup");
    let spec = config_maps("deploy/controller").remove(0).1;
    let (ok, out) = check_in_pod(&what, &pod, &spec, &[], &tmp.path().join("pod"), &bin);
    assert!(!ok, "{out}");
    assert!(
        out.contains("Permission denied"),
        "the key is root's alone without fsGroup:\n{out}"
    );
}

/// Every pod of the installs meets the Pod Security Standards' `restricted` profile, the one
/// deploy/common labels regops' namespace with, rule by rule as kubernetes' pod-security-admission
/// checks it (k8s.io/pod-security-admission/policy): check_privileged.go, check_hostNamespaces.go
/// (no hostNetwork, hostPID, hostIPC), check_hostPorts.go, check_restrictedVolumes.go (only
/// configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret),
/// check_allowPrivilegeEscalation.go (false on every container), check_runAsNonRoot.go (true on
/// the pod, or on every container), check_runAsUser.go (never 0),
/// check_seccompProfile_restricted.go (RuntimeDefault or Localhost, on the pod or every
/// container), check_capabilities_restricted.go (drop ALL; add nothing but NET_BIND_SERVICE).
#[test]
#[ignore = "needs kubectl (Debian: kubernetes-client)"]
fn every_install_meets_the_restricted_pod_security_standard() {
    common::require("kubectl", "version", "Debian: kubernetes-client");
    let mut checked = 0;
    for base in ["deploy/controller", "deploy/cronjob"] {
        for (what, pod) in pods(base) {
            let mut broken: Vec<String> = Vec::new();
            let psc = &pod["securityContext"];
            for field in ["hostNetwork", "hostPID", "hostIPC"] {
                if pod[field] == true {
                    broken.push(format!("{field} (check_hostNamespaces)"));
                }
            }
            const VOLUMES: [&str; 8] = [
                "configMap",
                "csi",
                "downwardAPI",
                "emptyDir",
                "ephemeral",
                "persistentVolumeClaim",
                "projected",
                "secret",
            ];
            for v in pod["volumes"].as_array().into_iter().flatten() {
                let kinds: Vec<&String> = v
                    .as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| *k != "name")
                    .collect();
                if !kinds.iter().all(|k| VOLUMES.contains(&k.as_str())) {
                    broken.push(format!("volume {kinds:?} (check_restrictedVolumes)"));
                }
            }
            let containers: Vec<&serde_json::Value> = pod["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(pod["initContainers"].as_array().into_iter().flatten())
                .collect();
            assert!(!containers.is_empty(), "{what}");
            for c in containers {
                let sc = &c["securityContext"];
                let name = c["name"].as_str().unwrap_or("?");
                if sc["privileged"] == true {
                    broken.push(format!("{name}: privileged (check_privileged)"));
                }
                if sc["allowPrivilegeEscalation"] != false {
                    broken.push(format!(
                        "{name}: allowPrivilegeEscalation (check_allowPrivilegeEscalation)"
                    ));
                }
                if !(sc["runAsNonRoot"] == true
                    || (psc["runAsNonRoot"] == true && sc["runAsNonRoot"] != false))
                {
                    broken.push(format!("{name}: runAsNonRoot (check_runAsNonRoot)"));
                }
                if sc["runAsUser"] == 0 || psc["runAsUser"] == 0 {
                    broken.push(format!("{name}: runAsUser 0 (check_runAsUser)"));
                }
                let seccomp = sc["seccompProfile"]["type"]
                    .as_str()
                    .or(psc["seccompProfile"]["type"].as_str());
                if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
                    broken.push(format!(
                        "{name}: seccompProfile {seccomp:?} (check_seccompProfile_restricted)"
                    ));
                }
                let drops: Vec<&str> = sc["capabilities"]["drop"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.as_str())
                    .collect();
                if !drops.contains(&"ALL") {
                    broken.push(format!(
                        "{name}: capabilities not dropped (check_capabilities_restricted)"
                    ));
                }
                for add in sc["capabilities"]["add"].as_array().into_iter().flatten() {
                    if add != "NET_BIND_SERVICE" {
                        broken.push(format!(
                            "{name}: adds {add} (check_capabilities_restricted)"
                        ));
                    }
                }
                for port in c["ports"].as_array().into_iter().flatten() {
                    if port["hostPort"].as_u64().is_some_and(|p| p != 0) {
                        broken.push(format!("{name}: hostPort (check_hostPorts)"));
                    }
                }
            }
            assert!(broken.is_empty(), "{base} {what}: {broken:#?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 2);
    // The namespace enforces it.
    let docs = rendered("deploy/controller");
    let ns = docs.iter().find(|d| d["kind"] == "Namespace").unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

/// `kubectl` with `kubeconfig`, run from the repository's top as a reader of the install page
/// runs it; fails the test on an error.
fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .current_dir(common::repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn web_namespace(server: &kube_test_server::TestServer, name: &str) {
    server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"team": "web"}}}))
        .unwrap();
}

fn pull_secret(server: &kube_test_server::TestServer, namespace: &str) -> Option<Value> {
    server.object("secrets", namespace, "registries")
}

/// The installs as a node runs them: each applied with kubectl as the install page says, then
/// its pod run from the image the release builds (the binary chrooted into the image's own
/// filesystem, read-only), with the volumes the kubelet would mount from what the API server
/// holds, as the pod's uid, gid and fsGroup, reaching the API server only through in-cluster
/// config (the mounted token and CA, `KUBERNETES_SERVICE_HOST`), and allowed only what the
/// install's RBAC grants. The CronJob's run applies and exits 0; the controller becomes ready
/// (its `httpGet` readiness probe), passes its `exec` liveness probe, covers a namespace made
/// after it started, and exits 0 on SIGTERM. See `common/kubelet.rs` for what is modelled
/// and where the kubelet's source says so.
#[test]
#[ignore = "needs root, the musl target, musl-tools and kubectl (the test kubelet)"]
fn the_installs_run_from_the_image_under_the_kubelet_with_in_cluster_config() {
    use std::time::Duration;
    common::require("kubectl", "version", "Debian: kubernetes-client");
    let image = common::kubelet::image();
    let key = common::repo().join("examples/quickstart/example-key.txt");

    // The CronJob, installed as the README's install block says.
    let cluster = common::Cluster::new_tls("");
    let server = &cluster.server;
    web_namespace(server, "web");
    web_namespace(server, "web-sandbox");
    let kc = &cluster.kubeconfig;
    kubectl(kc, &["create", "namespace", "regops"]);
    kubectl(
        kc,
        &[
            "-n",
            "regops",
            "create",
            "secret",
            "generic",
            "regops-age-key",
            &format!("--from-file=key.txt={}", key.display()),
        ],
    );
    kubectl(kc, &["apply", "-k", "deploy/cronjob"]);
    server.set_policy(Some(kube_test_server::Policy {
        rules: common::rules_of(&rendered("deploy/cronjob")),
    }));
    server.clear_log();
    let cronjob = server.object("cronjobs", "regops", "regops").unwrap();
    let kubelet = common::kubelet::Kubelet::new(server, &image);
    let mut job = kubelet.start(
        "regops-29412017-x7k2q",
        "regops",
        &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    );
    let code = job.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "the CronJob's run:\n{}", job.log());
    let secret = pull_secret(server, "web").expect("the CronJob's run made web's pull secret");
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    assert!(pull_secret(server, "web-sandbox").is_none(), "excluded");
    let denied: Vec<_> = server
        .log()
        .into_iter()
        .filter(|l| l.status == 403)
        .collect();
    assert!(denied.is_empty(), "denied: {denied:?}\n{}", job.log());

    // The controller, from the example overlay a user copies (its spec and key generated).
    let cluster = common::Cluster::new_tls("");
    let server = &cluster.server;
    web_namespace(server, "web");
    kubectl(
        &cluster.kubeconfig,
        &["apply", "-k", "deploy/overlays/example"],
    );
    server.set_policy(Some(kube_test_server::Policy {
        rules: common::rules_of(&rendered("deploy/overlays/example")),
    }));
    server.clear_log();
    let deployment = server.object("deployments", "regops", "regops").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let port = u16::try_from(container["ports"][0]["containerPort"].as_u64().unwrap()).unwrap();
    // The pod shares the host's network here: its port must be free.
    drop(
        std::net::TcpListener::bind(("0.0.0.0", port)).unwrap_or_else(|e| {
            panic!("port {port}, which the controller listens on, is taken on this machine: {e}")
        }),
    );
    let kubelet = common::kubelet::Kubelet::new(server, &image);
    let mut controller = kubelet.start("regops-6f9c8d7b5-t2wqz", "regops", pod);
    let readiness = &container["readinessProbe"]["httpGet"];
    assert_eq!(readiness["port"], "http");
    let ready_path = readiness["path"].as_str().unwrap();
    assert!(
        common::wait_until("ready", Duration::from_secs(30), || {
            controller.http_get(port, ready_path) == Some(200)
        }),
        "the controller never became ready:\n{}",
        controller.log()
    );
    assert!(pull_secret(server, "web").is_some(), "{}", controller.log());
    // The liveness probe, as written in the Deployment, in the container.
    let probe: Vec<&str> = container["livenessProbe"]["exec"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        common::wait_until("the liveness probe", Duration::from_secs(10), || {
            controller.exec(&probe).status.success()
        }),
        "{:?}\n{}",
        controller.exec(&probe),
        controller.log()
    );
    // A namespace made after it started is covered.
    let (code, body) = server.admin(
        "POST",
        "/api/v1/namespaces",
        "application/json",
        &serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team-new", "labels": {"team": "web"}}}),
    );
    assert_eq!(code, 201, "{body}");
    assert!(
        common::wait_until("team-new covered", Duration::from_secs(15), || {
            pull_secret(server, "team-new").is_some()
        }),
        "{}",
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
    assert!(denied.is_empty(), "denied: {denied:?}");
}
