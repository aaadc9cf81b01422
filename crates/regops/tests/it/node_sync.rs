//! `regops node-sync`: writes only allowlisted hosts' certs.d directories, marks and owns them,
//! removes its own when their host leaves, never touches others nor writes through a link, and
//! takes from its input only what regops renders. Each door is tried as an attacker would.

use std::path::{Path, PathBuf};

use crate::common::{Run, regops, run};
use crate::node_trust::spec;

const MARK: &str = ".regops-node-trust";

/// The stream `render --node-config containerd` prints for the seeds' spec.
fn stream(dir: &Path, http: &str, https: &str) -> PathBuf {
    let spec = spec(dir, http, https);
    let r = run(regops()
        .args(["render", "--node-config", "containerd", "-f"])
        .arg(&spec));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let path = dir.join("node-trust.yaml");
    std::fs::write(&path, r.stdout).unwrap();
    path
}

fn sync(from: &Path, root: &Path, allow: &[&str], extra: &[&str]) -> Run {
    let mut cmd = regops();
    cmd.args(["node-sync", "--from"])
        .arg(from)
        .arg("--root")
        .arg(root);
    for a in allow {
        cmd.args(["--allow-host", a]);
    }
    cmd.args(extra);
    run(&mut cmd)
}

fn names(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn allowlisted_hosts_are_written_marked_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let from = stream(dir.path(), "192.168.0.99", "harbor.example.com:8443");
    let root = dir.path().join("certs.d");
    std::fs::create_dir(&root).unwrap();
    let r = sync(
        &from,
        &root,
        &["192.168.0.99", "harbor.example.com:8443"],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("2 written"), "{}", r.stderr);
    assert_eq!(names(&root), ["192.168.0.99", "harbor.example.com:8443"]);
    assert_eq!(
        names(&root.join("harbor.example.com:8443")),
        [MARK, "ca.crt", "hosts.toml"]
    );
    // What is written is what render gives, byte for byte.
    let out = dir.path().join("rendered");
    let r = run(regops()
        .args(["render", "--node-config", "containerd", "-f"])
        .arg(dir.path().join("regops.yaml"))
        .arg("--output-dir")
        .arg(&out));
    assert_eq!(r.code, 0);
    for f in [
        "192.168.0.99/hosts.toml",
        "harbor.example.com:8443/hosts.toml",
        "harbor.example.com:8443/ca.crt",
    ] {
        assert_eq!(
            std::fs::read(root.join(f)).unwrap(),
            std::fs::read(out.join(f)).unwrap(),
            "{f}"
        );
    }
    // Again: nothing to do.
    let r = sync(
        &from,
        &root,
        &["192.168.0.99", "harbor.example.com:8443"],
        &[],
    );
    assert_eq!(r.code, 0);
    assert!(r.stderr.contains("0 written, 2 unchanged"), "{}", r.stderr);
}

/// A merged spec asks every node to trust a CA (or plain HTTP) for docker.io: the operator did
/// not allow it, so it is refused, said so, and not written; allowed hosts still are.
#[test]
fn a_host_off_the_allowlist_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let from = stream(dir.path(), "docker.io", "harbor.example.com:8443");
    let root = dir.path().join("certs.d");
    std::fs::create_dir(&root).unwrap();
    let r = sync(&from, &root, &["harbor.example.com:8443"], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("refused docker.io: not on --allow-host"),
        "{}",
        r.stderr
    );
    assert_eq!(names(&root), ["harbor.example.com:8443"]);
    // No allowlist at all: nothing is written.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = sync(&from, &empty, &[], &[]);
    assert_eq!(r.code, 1);
    assert!(names(&empty).is_empty());
}

/// Directories node-sync did not make are never written nor removed; its own are removed when
/// their host leaves the stream or the allowlist.
#[test]
fn only_its_own_directories_are_touched_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let from = stream(dir.path(), "192.168.0.99", "harbor.example.com:8443");
    let root = dir.path().join("certs.d");
    // An administrator's own configuration: one for another registry, one for a host the
    // stream also names.
    for (d, text) in [
        ("quay.io", "server = \"https://quay.io\"\n"),
        ("192.168.0.99", "# mine\n"),
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
        std::fs::write(root.join(d).join("hosts.toml"), text).unwrap();
    }
    let r = sync(
        &from,
        &root,
        &["192.168.0.99", "harbor.example.com:8443"],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is not node-sync's"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(root.join("192.168.0.99/hosts.toml")).unwrap(),
        "# mine\n"
    );
    assert!(root.join("harbor.example.com:8443/hosts.toml").exists());

    // The host leaves the allowlist: its directory goes; the others stay as they were.
    let r = sync(&from, &root, &["192.168.0.99"], &[]);
    assert!(
        r.stderr.contains("removed harbor.example.com:8443"),
        "{}",
        r.stderr
    );
    assert_eq!(names(&root), ["192.168.0.99", "quay.io"]);
    assert_eq!(
        std::fs::read_to_string(root.join("quay.io/hosts.toml")).unwrap(),
        "server = \"https://quay.io\"\n"
    );

    // The host leaves the spec: an empty stream removes all of node-sync's, and only those.
    let r = sync(&from, &root, &["harbor.example.com:8443"], &[]);
    assert!(
        root.join("harbor.example.com:8443").exists(),
        "{}",
        r.stderr
    );
    std::fs::write(&from, "").unwrap();
    let r = sync(&from, &root, &["harbor.example.com:8443"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(names(&root), ["192.168.0.99", "quay.io"]);
}

/// A symbolic link in the root where a host directory would be, or in an owned directory
/// where a file would be: never written through.
#[test]
fn symlinks_in_the_root_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let from = stream(dir.path(), "192.168.0.99", "harbor.example.com:8443");
    let root = dir.path().join("certs.d");
    std::fs::create_dir(&root).unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join(MARK), "").unwrap();
    std::fs::write(outside.join("hosts.toml"), "precious\n").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("192.168.0.99")).unwrap();
    let r = sync(&from, &root, &["192.168.0.99"], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is a symbolic link"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(outside.join("hosts.toml")).unwrap(),
        "precious\n"
    );
    // Nor removed through, when the host is not wanted: the link is not node-sync's.
    std::fs::write(&from, "").unwrap();
    let r = sync(&from, &root, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(outside.join(MARK).exists() && outside.join("hosts.toml").exists());

    // An owned directory whose hosts.toml became a link out.
    let from = stream(dir.path(), "192.168.0.99", "harbor.example.com:8443");
    std::fs::remove_file(root.join("192.168.0.99")).unwrap();
    let both = ["192.168.0.99", "harbor.example.com:8443"];
    let r = sync(&from, &root, &both, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let target = root.join("harbor.example.com:8443/hosts.toml");
    std::fs::remove_file(&target).unwrap();
    std::os::unix::fs::symlink(outside.join("hosts.toml"), &target).unwrap();
    let r = sync(&from, &root, &both, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(outside.join("hosts.toml")).unwrap(),
        "precious\n"
    );
}

/// Whoever can edit the ConfigMap writes the stream: a path out of certs.d, a hosts.toml
/// regops would not write (a CA path of its choosing). All refused before anything is written.
#[test]
fn a_forged_stream_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let from = stream(dir.path(), "192.168.0.99", "harbor.example.com:8443");
    let good = std::fs::read_to_string(&from).unwrap();
    let root = dir.path().join("certs.d");
    std::fs::create_dir(&root).unwrap();
    for forged in [
        good.replacen(
            "/etc/containerd/certs.d/192.168.0.99/hosts.toml",
            "/etc/containerd/certs.d/../../../etc/cron.d/x/hosts.toml",
            1,
        ),
        good.replacen(
            "/etc/containerd/certs.d/192.168.0.99/hosts.toml",
            "/etc/containerd/certs.d/192.168.0.99/../../x/hosts.toml",
            1,
        ),
        good.replace("ca = \"ca.crt\"", "ca = \"/etc/shadow\""),
        good.replace(
            "capabilities = [\"pull\", \"resolve\"]",
            "capabilities = [\"pull\", \"resolve\", \"push\"]",
        ),
        format!("{good}unknown: key\n"),
    ] {
        assert_ne!(forged, good);
        std::fs::write(&from, &forged).unwrap();
        let r = sync(
            &from,
            &root,
            &["192.168.0.99", "harbor.example.com:8443"],
            &[],
        );
        assert_eq!(r.code, 1, "accepted:\n{forged}");
        assert!(names(&root).is_empty(), "written from:\n{forged}");
    }
}

#[test]
fn a_bad_allow_host_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let from = stream(dir.path(), "192.168.0.99", "harbor.example.com:8443");
    for bad in ["../etc", "_default", "Docker.io"] {
        let r = sync(&from, dir.path(), &[bad], &[]);
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("--allow-host"), "{}", r.stderr);
    }
}

/// containerd's config.toml is read, never written, and a node whose containerd would not read
/// certs.d is reported.
#[test]
fn a_containerd_that_does_not_read_certs_d_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let from = stream(dir.path(), "192.168.0.99", "harbor.example.com:8443");
    let root = dir.path().join("certs.d");
    std::fs::create_dir(&root).unwrap();
    let config = dir.path().join("config.toml");
    let allow = ["192.168.0.99", "harbor.example.com:8443"];
    let with = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let r = sync(
            &from,
            &root,
            &allow,
            &["--containerd-config", config.to_str().unwrap()],
        );
        assert_eq!(std::fs::read_to_string(&config).unwrap(), text);
        r
    };
    let r = with("version = 2\n");
    assert_eq!(r.code, 0);
    assert!(r.flat_stderr().contains("warning: "), "{}", r.stderr);
    assert!(
        r.flat_stderr().contains("no CRI registry config_path"),
        "{}",
        r.stderr
    );
    let r = with(
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n",
    );
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    let r = with("version = 3\n");
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

/// The kustomize Component, in an overlay of the controller as deploy/README.md shows it: the
/// DaemonSet in a namespace of its own whose Pod Security level allows its hostPath (the
/// `regops` namespace stays `restricted`), root with no capability and no token, writing only
/// certs.d; and its own arguments, run with the ConfigMaps the overlay made, sync a node.
#[test]
#[ignore = "needs kubectl (Debian: kubernetes-client)"]
fn the_node_trust_component_runs_node_sync_with_its_own_arguments() {
    use serde_json::Value;
    let dir = tempfile::tempdir().unwrap();
    let spec_dir = dir.path().join("spec");
    std::fs::create_dir(&spec_dir).unwrap();
    let from = stream(&spec_dir, "192.168.0.99", "harbor.example.com:8443");
    let overlay = dir.path().join("overlay");
    std::fs::create_dir(&overlay).unwrap();
    std::fs::copy(&from, overlay.join("containerd.yaml")).unwrap();
    let rel = |p: &str| {
        let abs = crate::common::repo().join(p).canonicalize().unwrap();
        let ups = overlay.canonicalize().unwrap().components().count() - 1;
        std::iter::repeat_n(Path::new(".."), ups)
            .collect::<PathBuf>()
            .join(abs.strip_prefix("/").unwrap())
            .display()
            .to_string()
    };
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - {}
components:
  - {}
configMapGenerator:
  - name: regops-node-trust
    namespace: regops-node-trust
    files: [containerd.yaml]
    options: {{ disableNameSuffixHash: true }}
  - name: regops-node-trust-allow
    namespace: regops-node-trust
    literals: [\"allow-hosts=192.168.0.99,harbor.example.com:8443\"]
    options: {{ disableNameSuffixHash: true }}
",
            rel("deploy/controller"),
            rel("deploy/components/node-trust")
        ),
    )
    .unwrap();
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(&overlay)
        .output()
        .expect("kubectl (Debian: kubernetes-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let psa = |ns: &str| {
        find("Namespace", ns)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].clone()
    };
    assert_eq!(psa("regops"), "restricted");
    assert_eq!(psa("regops-node-trust"), "privileged");

    let ds = find("DaemonSet", "regops-node-sync");
    assert_eq!(ds["metadata"]["namespace"], "regops-node-trust");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsUser"], 0);
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    assert!(sc.get("capabilities").and_then(|c| c.get("add")).is_none());
    // The host paths: /etc/containerd read-only, certs.d the only one written.
    let volumes = pod["volumes"].as_array().unwrap();
    let host_path = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .and_then(|v| v["hostPath"]["path"].as_str())
    };
    let writable: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["readOnly"] != true)
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(writable, ["certs-d"], "only certs.d is mounted writable");
    assert_eq!(host_path("certs-d"), Some("/etc/containerd/certs.d"));
    let host_volumes: Vec<&str> = volumes
        .iter()
        .filter_map(|v| v["hostPath"]["path"].as_str())
        .collect();
    assert_eq!(host_volumes, ["/etc/containerd", "/etc/containerd/certs.d"]);

    // Run its arguments as the kubelet would: $(ALLOW_HOSTS) from the ConfigMap, the
    // ConfigMap's key as the file, the host's /etc/containerd under a directory; once.
    let allow = find("ConfigMap", "regops-node-trust-allow")["data"]["allow-hosts"]
        .as_str()
        .unwrap()
        .to_string();
    let node = dir.path().join("node");
    std::fs::create_dir_all(node.join("etc/containerd/certs.d")).unwrap();
    let cm = dir.path().join("cm");
    std::fs::create_dir(&cm).unwrap();
    std::fs::write(
        cm.join("containerd.yaml"),
        find("ConfigMap", "regops-node-trust")["data"]["containerd.yaml"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let mut args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap()
                .replace("$(ALLOW_HOSTS)", &allow)
                .replace(
                    "/host/etc/containerd",
                    &node.join("etc/containerd").display().to_string(),
                )
                .replace("/etc/regops-node-trust", &cm.display().to_string())
        })
        .collect();
    let i = args.iter().position(|a| a == "--interval").unwrap();
    args.drain(i..i + 2);
    let r = run(regops().args(&args));
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    assert!(r.stderr.contains("2 written"), "{}", r.stderr);
    assert_eq!(
        names(&node.join("etc/containerd/certs.d")),
        ["192.168.0.99", "harbor.example.com:8443"]
    );
    // No config.toml on this "node": reported, not created.
    assert!(
        r.stderr.contains("config.toml does not exist"),
        "{}",
        r.stderr
    );
    assert!(!node.join("etc/containerd/config.toml").exists());
}
