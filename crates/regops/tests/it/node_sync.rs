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
