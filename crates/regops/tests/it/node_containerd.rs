//! Node trust proven by a real containerd: Debian's `containerd`, started as root with its own
//! config, socket, root and state under a temporary directory, fetches from Debian's
//! `docker-registry` through the `certs.d` directory regops rendered (`ctr content fetch
//! --hosts-dir DIR`, which reads a directory as CRI's `config_path` does: containerd's
//! `remotes/docker/config.ConfigureHosts` with `HostDirFromRoot`).
//!
//! The registries listen in a network namespace the test creates, on an address that is not
//! loopback: for a loopback host containerd itself falls back to plain HTTP and skips TLS
//! verification (`ConfigureHosts`: "Skipping TLS verification for localhost"), so a test on
//! 127.0.0.1 would pass without regops' files. Two registries: one over TLS with a CA made for
//! the test, one over plain HTTP. Without regops' files both fetches fail (unknown authority;
//! an HTTP response to an HTTPS client); with the directory `regops render --node-config
//! containerd --output-dir` wrote, both succeed.
//!
//! IPv4 only: Debian 12's skopeo refuses an image reference with a bracketed IPv6 host
//! ("invalid reference format"), so no image can be pushed to an IPv6 address here. The
//! `[addr]:port` directory names are checked against containerd's `hostPaths` rules in
//! regops-core's `node_trust` tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::common::{registry, regops, run, wait_until};

/// A network namespace and a veth pair into it: `host_ip` on this side, `ns_ip` inside.
pub struct Netns {
    pub name: String,
    pub ns_ip: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let pid = std::process::id();
        // Each test of the process its own subnet (and the tests of other processes, mostly):
        // one per tag.
        const TAGS: [&str; 3] = ["r", "s", "a"];
        let i = TAGS
            .iter()
            .position(|t| *t == tag)
            .unwrap_or_else(|| panic!("tag {tag} is not one of {TAGS:?}"));
        let k = (pid % 5000) * 3 + u32::try_from(i).unwrap();
        let (b, c) = (64 + k / 250, k % 250);
        let name = format!("regops-{tag}-{pid}");
        let (host_if, ns_if) = (format!("rg{tag}{k}h"), format!("rg{tag}{k}n"));
        let host_ip = format!("10.{b}.{c}.1");
        let ns_ip = format!("10.{b}.{c}.2");
        let ip = |args: &[&str]| {
            let out = Command::new("ip")
                .args(args)
                .output()
                .expect("run ip (iproute2)");
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ip(&["netns", "add", &name]);
        let ns = Netns {
            name: name.clone(),
            ns_ip: ns_ip.clone(),
        };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &name]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        let exec = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &name, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        exec(&["addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if]);
        exec(&["link", "set", &ns_if, "up"]);
        exec(&["link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// containerd, as root, with everything of its own under `dir`.
pub struct Containerd {
    child: Child,
    pub socket: PathBuf,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Containerd {
    pub fn start(dir: &Path) -> Containerd {
        std::fs::create_dir_all(dir).unwrap();
        let d = dir.display();
        let config = dir.join("config.toml");
        // The CRI plugin is not needed: `ctr content fetch` resolves and fetches in the client
        // and writes into the daemon's content store.
        std::fs::write(
            &config,
            format!(
                r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = "{d}/debug.sock"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start containerd (Debian package containerd)");
        let socket = dir.join("containerd.sock");
        let mut c = Containerd { child, socket };
        let up = wait_until("containerd's socket", Duration::from_secs(30), || {
            c.socket.exists() && c.ctr(&["version"]).status.success()
        });
        assert!(
            up && c.child.try_wait().unwrap().is_none(),
            "containerd did not start: {}",
            std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
        );
        c
    }

    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "regops-test"])
            .args(args)
            .output()
            .expect("run ctr (Debian package containerd)")
    }

    /// `ctr content fetch --hosts-dir HOSTS REF`.
    pub fn fetch(&self, hosts: &Path, reference: &str) -> std::process::Output {
        let hosts = hosts.display().to_string();
        self.ctr(&["content", "fetch", "--hosts-dir", &hosts, reference])
    }
}

fn sha256(bytes: &[u8]) -> String {
    registry::hex(&Sha256::digest(bytes))
}

/// A one-layer OCI image layout in `dir` (the layer an empty tar archive), tagged `1`.
pub fn oci_layout(dir: &Path) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = sha256(bytes);
        std::fs::write(blobs.join(&d), bytes).unwrap();
        (format!("sha256:{d}"), bytes.len())
    };
    let (layer, layer_size) = put(&[0u8; 1024]);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [layer] },
    });
    let (config, config_size) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size }],
    });
    let (manifest, manifest_size) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest,
            "size": manifest_size,
            "annotations": { "org.opencontainers.image.ref.name": "1" },
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// `skopeo copy` of the layout to `reference`, trusting `certs` (a directory with `ca.crt`)
/// or, without it, over plain HTTP.
pub fn push(layout: &Path, reference: &str, certs: Option<&Path>) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--quiet"]);
    match certs {
        Some(c) => cmd.arg("--dest-cert-dir").arg(c),
        None => cmd.arg("--dest-tls-verify=false"),
    };
    let out = cmd
        .arg(format!("oci:{}:1", layout.display()))
        .arg(format!("docker://{reference}"))
        .output()
        .expect("run skopeo (Debian package skopeo)");
    assert!(
        out.status.success(),
        "skopeo copy to {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The digests of the manifest `reference` has in its registry, its config and its layers
/// (skopeo compresses the layer on the way: what containerd fetches is what is there).
pub fn blobs(reference: &str, certs: Option<&Path>) -> Vec<String> {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw"]);
    match certs {
        Some(c) => cmd.arg("--cert-dir").arg(c),
        None => cmd.arg("--tls-verify=false"),
    };
    let out = cmd
        .arg(format!("docker://{reference}"))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut digests = vec![format!("sha256:{}", sha256(&out.stdout))];
    digests.push(manifest["config"]["digest"].as_str().unwrap().to_string());
    for l in manifest["layers"].as_array().unwrap() {
        digests.push(l["digest"].as_str().unwrap().to_string());
    }
    digests
}

/// The two registries of the seeds' cases in a namespace, an image in each, and containerd.
pub struct Bench {
    pub tls_ref: String,
    pub http_ref: String,
    /// What each reference's registry holds: manifest, config and layer digests.
    pub tls_blobs: Vec<String>,
    pub http_blobs: Vec<String>,
    pub spec: PathBuf,
    pub containerd: Containerd,
    // Dropped in this order, after containerd: the registries, their namespace, then the
    // directory containerd and the registries kept their files in.
    _registries: Vec<registry::Registry>,
    _netns: Netns,
    pub dir: tempfile::TempDir,
}

pub fn bench(tag: &str) -> Bench {
    let netns = Netns::new(tag);
    let dir = tempfile::tempdir().unwrap();
    let ip = netns.ns_ip.clone();
    let (cert, key, ca) = registry::tls_files_for(dir.path(), &[&ip]);
    let (tls_storage, http_storage) = (
        dir.path().join("tls-storage"),
        dir.path().join("http-storage"),
    );
    std::fs::create_dir_all(&tls_storage).unwrap();
    std::fs::create_dir_all(&http_storage).unwrap();
    let tls = registry::start_at(
        Some(&netns.name),
        &ip,
        5443,
        dir.path(),
        "tls",
        &tls_storage,
        Some((&cert, &key)),
        "",
    );
    let http = registry::start_at(
        Some(&netns.name),
        &ip,
        5000,
        dir.path(),
        "http",
        &http_storage,
        None,
        "",
    );
    let layout = dir.path().join("layout");
    oci_layout(&layout);
    let certs = dir.path().join("skopeo-certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&ca, certs.join("ca.crt")).unwrap();
    let tls_ref = format!("{ip}:5443/regops/test:1");
    let http_ref = format!("{ip}:5000/regops/test:1");
    push(&layout, &tls_ref, Some(&certs));
    push(&layout, &http_ref, None);
    let tls_blobs = blobs(&tls_ref, Some(&certs));
    let http_blobs = blobs(&http_ref, None);

    // The spec names the CA beside it, as a user's would.
    let spec_dir = dir.path().join("spec");
    std::fs::create_dir_all(&spec_dir).unwrap();
    std::fs::copy(&ca, spec_dir.join("ca.pem")).unwrap();
    let spec = spec_dir.join("regops.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: regops.dev/v1
kind: RegistryConfig
registries:
  harbor-http:
    server: {ip}:5000
    credential: robot
    insecure: true
  harbor:
    server: {ip}:5443
    credential: robot
    caFile: ca.pem
credentials:
  robot:
    username: robot$ci
    password: {{ env: REGOPS_CRED_NEVER_READ }}
"
        ),
    )
    .unwrap();
    let containerd = Containerd::start(&dir.path().join("c"));
    Bench {
        dir,
        tls_ref,
        http_ref,
        tls_blobs,
        http_blobs,
        spec,
        containerd,
        _registries: vec![tls, http],
        _netns: netns,
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Both fetches fail through `hosts` (unknown authority; plain HTTP refused).
pub fn fetches_fail(b: &Bench, hosts: &Path) {
    let tls = b.containerd.fetch(hosts, &b.tls_ref);
    assert!(!tls.status.success(), "fetched without trusting the CA");
    assert!(
        text(&tls).contains("certificate signed by unknown authority"),
        "{}",
        text(&tls)
    );
    let http = b.containerd.fetch(hosts, &b.http_ref);
    assert!(!http.status.success(), "fetched over plain HTTP unasked");
    assert!(
        text(&http).contains("server gave HTTP response to HTTPS client"),
        "{}",
        text(&http)
    );
}

/// Both fetches succeed through `hosts`, and containerd's content store then holds the
/// manifest, config and layer each registry has.
pub fn fetches_succeed(b: &Bench, hosts: &Path) {
    for (reference, want) in [(&b.tls_ref, &b.tls_blobs), (&b.http_ref, &b.http_blobs)] {
        let out = b.containerd.fetch(hosts, reference);
        assert!(out.status.success(), "{reference}: {}", text(&out));
        let ls = b.containerd.ctr(&["content", "ls", "-q"]);
        let have = String::from_utf8_lossy(&ls.stdout).into_owned();
        for d in want {
            assert!(
                have.contains(d.as_str()),
                "{reference}: {d} not fetched: {have}"
            );
        }
    }
}

#[test]
#[ignore = "needs root, containerd, docker-registry, skopeo and ip (Debian: containerd, docker-registry, skopeo, iproute2)"]
fn containerd_pulls_through_the_rendered_certs_d() {
    let b = bench("r");
    let hosts = b.dir.path().join("certs.d");
    std::fs::create_dir_all(&hosts).unwrap();
    fetches_fail(&b, &hosts);

    let r = run(regops()
        .args(["render", "--node-config", "containerd", "-f"])
        .arg(&b.spec)
        .arg("--output-dir")
        .arg(&hosts));
    assert_eq!(r.code, 0, "{}", r.stderr);
    fetches_succeed(&b, &hosts);
}

/// The same, through the directory `regops node-sync` keeps from the stream `render` prints:
/// the way it runs on a node.
#[test]
#[ignore = "needs root, containerd, docker-registry, skopeo and ip (Debian: containerd, docker-registry, skopeo, iproute2)"]
fn containerd_pulls_through_what_node_sync_writes() {
    let b = bench("s");
    let hosts = b.dir.path().join("certs.d");
    std::fs::create_dir_all(&hosts).unwrap();
    fetches_fail(&b, &hosts);

    let r = run(regops()
        .args(["render", "--node-config", "containerd", "-f"])
        .arg(&b.spec));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let stream = b.dir.path().join("containerd.yaml");
    std::fs::write(&stream, &r.stdout).unwrap();
    let ip = b.tls_ref.split(':').next().unwrap();
    let r = run(regops()
        .args(["node-sync", "--from"])
        .arg(&stream)
        .arg("--root")
        .arg(&hosts)
        .arg("--allow-host")
        .arg(format!("{ip}:5443,{ip}:5000")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    fetches_succeed(&b, &hosts);
}

/// End to end, as a cluster runs it: the spec with `nodeTrust:` → plan → apply (against the
/// test API server, through a kubeconfig) → the ConfigMap apply keeps, laid out as the kubelet
/// mounts a ConfigMap volume → `regops node-sync` reading it (the component's arguments) → a
/// real containerd fetch succeeding, over TLS with the private CA and over plain HTTP.
#[test]
#[ignore = "needs root, containerd, docker-registry, skopeo and ip (Debian: containerd, docker-registry, skopeo, iproute2)"]
fn containerd_pulls_through_what_apply_keeps() {
    let b = bench("a");
    let mut text = std::fs::read_to_string(&b.spec).unwrap();
    text.push_str("nodeTrust: {}\n");
    std::fs::write(&b.spec, text).unwrap();
    let ip = b.tls_ref.split(':').next().unwrap().to_string();
    let allowed = format!("{ip}:5443,{ip}:5000");

    let server = kube_test_server::TestServer::start(kube_test_server::Config::default()).unwrap();
    let kubeconfig = b.dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "regops-node-trust"}}))
        .unwrap();
    server
        .seed(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "regops-node-trust-allow", "namespace": "regops-node-trust"},
            "data": {"allow-hosts": allowed}}))
        .unwrap();
    let regops_on = |sub: &str, extra: &[&str]| {
        run(regops()
            .arg(sub)
            .arg("-f")
            .arg(&b.spec)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(extra))
    };
    let r = regops_on("plan", &[]);
    assert!(
        r.stdout.contains("+ ConfigMap regops-node-trust") && !r.stdout.contains("refused"),
        "{}",
        r.transcript()
    );
    let r = regops_on("apply", &["--yes"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let writes = |s: &kube_test_server::TestServer| {
        s.log()
            .iter()
            .filter(|l| l.resource == "configmaps" && l.verb == "patch")
            .count()
    };
    let once = writes(&server);
    assert_eq!(once, 1);
    let r = regops_on("apply", &["--yes"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(writes(&server), once, "the second apply wrote");

    let cm = server
        .object("configmaps", "regops-node-trust", "regops-node-trust")
        .expect("the ConfigMap apply keeps");
    let mounted = b.dir.path().join("pod");
    std::fs::create_dir_all(&mounted).unwrap();
    let vol = crate::node_trust_apply::mount_config_map(&mounted, cm["data"].as_object().unwrap());

    let hosts = b.dir.path().join("certs.d");
    std::fs::create_dir_all(&hosts).unwrap();
    fetches_fail(&b, &hosts);
    let r = run(regops()
        .args(["node-sync", "--from"])
        .arg(vol.join("containerd.yaml"))
        .arg("--root")
        .arg(&hosts)
        .arg(format!("--allow-host={allowed}")));
    assert_eq!(r.code, 0, "{}", r.transcript());
    fetches_succeed(&b, &hosts);
}
