//! A kubelet for the tests: runs a pod's container from the regops image, as a node would.
//!
//! - **The image.** The static binary built by `dist/build-binary`, written into an OCI layout
//!   by `dist/image` (as the release does), whose one layer is unpacked as the container's
//!   root filesystem. The container runs `chroot`ed into it, so nothing of the host is there.
//! - **The container's filesystem** (what runc sets up from containerd's spec): a private mount
//!   namespace (`unshare --mount`), the image's rootfs bind-mounted read-only when
//!   `readOnlyRootFilesystem` is set, `/proc`, a `/dev` holding `null`, `zero`, `random` and
//!   `urandom`, and each volume mounted at its `mountPath` (read-only when `readOnly`).
//! - **Volumes, read from the API server as the kubelet reads them**, and laid out as its
//!   `AtomicWriter` and `SetVolumeOwnership` lay them out (kubernetes/kubernetes):
//!   - `pkg/volume/util/atomic_writer.go` (`writePayloadToDir`): each file written by the
//!     kubelet (root), so owned by root:root, with the item's mode, else the volume's
//!     `defaultMode` (0644 when unset: `SecretVolumeSourceDefaultMode`,
//!     `ConfigMapVolumeSourceDefaultMode`, `ProjectedVolumeSourceDefaultMode`);
//!   - `pkg/volume/volume_linux.go` (`SetVolumeOwnership`, `changeFilePermission`): only with
//!     the pod's `fsGroup`, every file gets group fsGroup and `mode | 0440` (a read-only volume:
//!     Secret, ConfigMap, projected) or `| 0660` (emptyDir), directories `| 0110` and setgid;
//!   - `pkg/volume/emptydir/empty_dir.go`: an emptyDir is a directory of mode 0777;
//!   - the service-account token (`plugin/pkg/admission/serviceaccount/admission.go` adds the
//!     projected `kube-api-access-*` volume at `/var/run/secrets/kubernetes.io/serviceaccount`,
//!     `defaultMode` 0644, unless `automountServiceAccountToken: false`):
//!     `pkg/volume/projected/projected.go` (`collectData`) writes `token` with mode 0600 when
//!     the pod has an fsUser or fsGroup, owned by the fsUser (the pod's `runAsUser`), beside
//!     `ca.crt` (the `kube-root-ca.crt` ConfigMap) and `namespace` (the downward API).
//! - **The process** (`pkg/kubelet/kuberuntime/security_context.go`): uid `runAsUser` (else the
//!   image's user), gid `runAsGroup` (else the image's, 65532), fsGroup among the supplementary
//!   groups; the image's entrypoint with the container's `args`; its `env` as written
//!   (`valueFrom.fieldRef` `metadata.name`/`metadata.namespace` resolved), plus what the
//!   kubelet adds: `KUBERNETES_SERVICE_HOST`/`_PORT` (`pkg/kubelet/kubelet_pods.go`,
//!   `getServiceEnvVarMap`), `HOSTNAME`, and containerd's default `PATH`. So regops reaches the
//!   API server through in-cluster config, over TLS with the mounted CA and token.
//! - **Probes**: `exec` runs in the container's namespaces and root (`nsenter`) as its user;
//!   `httpGet` is a plain HTTP GET, as the kubelet's prober sends.
//!
//! What it does not model: the network namespace (the pod shares the host's: a `--listen`
//! port must be free), cgroups and seccomp. Needs root (mounts, chroot, chown): CI runs as
//! root; the tests that use it are `#[ignore = "needs root, …"]` and [`image`] fails without it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

/// The image's user and group (distroless `nonroot`, `crates/regops-dist/src/image.rs`).
const IMAGE_USER: u32 = 65532;
/// containerd's default PATH for a container whose image sets none (`oci.DefaultEnv`).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The regops image, built by the release's scripts and unpacked.
pub struct Image {
    /// One node at a time (pods share the host's network: the controller's port), and no
    /// timing-sensitive test beside it (`super::heavy`).
    _node: std::sync::RwLockWriteGuard<'static, ()>,
    _dir: tempfile::TempDir,
    pub rootfs: PathBuf,
    /// The image config's `Entrypoint`.
    pub entrypoint: Vec<String>,
}

/// Builds the image (`dist/build-binary` for musl, dev profile; `dist/image`) and unpacks its
/// layer. Fails the test, naming what is missing, without root, the musl target, `unshare`,
/// `nsenter` or `chroot`: the tests that call it are `#[ignore = "needs root, …"]`.
pub fn image() -> Image {
    const TARGET: &str = "x86_64-unknown-linux-musl";
    super::require_root();
    for tool in ["unshare", "nsenter", "chroot"] {
        super::require(tool, "--version", "Debian: util-linux, coreutils");
    }
    super::require_musl_target();
    let dist = |script: &str, args: &[&str]| -> String {
        let out = Command::new(super::repo().join("dist").join(script))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dist/{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let node = super::heavy();
    let binary = dist("build-binary", &[TARGET, "dev"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let layout = dir.path().join("layout");
    let digest = dist(
        "image",
        &[
            layout.to_str().unwrap(),
            "0.0.0-test",
            &format!("amd64={binary}"),
        ],
    );
    let blob = |digest: &str| -> Value {
        let path = layout
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap());
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let index = blob(&digest);
    let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
    let config = blob(manifest["config"]["digest"].as_str().unwrap());
    let layer = layout.join("blobs/sha256").join(
        manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap(),
    );
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    std::fs::set_permissions(&rootfs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&layer)
        .arg("-C")
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(untar.success());
    let entrypoint = config["config"]["Entrypoint"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        config["config"]["User"],
        format!("{IMAGE_USER}:{IMAGE_USER}"),
        "the image's user"
    );
    Image {
        _node: node,
        _dir: dir,
        rootfs,
        entrypoint,
    }
}

/// Quotes `s` for `sh`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A JSON number as a uid, gid or mode.
pub fn u32_at(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// A volume's file as the kubelet writes it: root's, with `mode`; then the fsGroup's pass.
fn write_file(path: &Path, bytes: &[u8], mode: u32, owner: Option<u32>, fs_group: Option<u32>) {
    std::fs::write(path, bytes).unwrap();
    std::os::unix::fs::chown(path, Some(owner.unwrap_or(0)), Some(0)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    if let Some(g) = fs_group {
        std::os::unix::fs::chown(path, None, Some(g)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o440)).unwrap();
    }
}

/// A read-only volume's directory (Secret, ConfigMap, projected): root's, 0755 with the
/// fsGroup's group and setgid when there is one.
fn volume_dir(dir: &Path, fs_group: Option<u32>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    if let Some(g) = fs_group {
        std::os::unix::fs::chown(dir, None, Some(g)).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o2755)).unwrap();
    }
}

/// A node: runs pods from `image` against `server` (a TLS test server: in-cluster config is
/// always HTTPS).
pub struct Kubelet<'a> {
    pub server: &'a kube_test_server::TestServer,
    pub image: &'a Image,
    dir: tempfile::TempDir,
}

/// A running (or ended) container.
pub struct Pod {
    pub name: String,
    child: Option<Child>,
    pid: u32,
    uid: u32,
    gid: u32,
    log: PathBuf,
    code: Option<i32>,
}

impl<'a> Kubelet<'a> {
    pub fn new(server: &'a kube_test_server::TestServer, image: &'a Image) -> Kubelet<'a> {
        assert!(
            server.ca_pem().is_some(),
            "in-cluster config is HTTPS: start the test server with tls"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Kubelet { server, image, dir }
    }

    /// Starts the first container of `pod` (a PodSpec, as a Deployment's or a Job's template
    /// holds it) as pod `name` in `namespace`.
    pub fn start(&self, name: &str, namespace: &str, pod: &Value) -> Pod {
        let sc = &pod["securityContext"];
        let container = &pod["containers"][0];
        let csc = &container["securityContext"];
        let uid = u32_at(&csc["runAsUser"])
            .or(u32_at(&sc["runAsUser"]))
            .unwrap_or(IMAGE_USER);
        let gid = u32_at(&csc["runAsGroup"])
            .or(u32_at(&sc["runAsGroup"]))
            .unwrap_or(IMAGE_USER);
        let fs_group = u32_at(&sc["fsGroup"]);
        let here = self.dir.path().join(name);
        std::fs::create_dir(&here).unwrap();
        std::fs::set_permissions(&here, std::fs::Permissions::from_mode(0o755)).unwrap();

        // (host directory, mount path, read-only)
        let mut mounts: Vec<(PathBuf, String, bool)> = Vec::new();
        let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
        for m in container["volumeMounts"].as_array().into_iter().flatten() {
            let vname = m["name"].as_str().unwrap();
            let at = m["mountPath"].as_str().unwrap().to_string();
            let read_only = m["readOnly"] == true;
            let volume = volumes
                .iter()
                .find(|v| v["name"] == vname)
                .unwrap_or_else(|| panic!("{name}: no volume {vname}"));
            let dir = here.join("volumes").join(vname);
            if let Some(secret) = volume.get("secret") {
                let object = self
                    .server
                    .object("secrets", namespace, secret["secretName"].as_str().unwrap())
                    .unwrap_or_else(|| panic!("{name}: the Secret of volume {vname} is missing"));
                let mode = u32_at(&secret["defaultMode"]).unwrap_or(0o644);
                volume_dir(&dir, fs_group);
                for (k, v) in object["data"].as_object().into_iter().flatten() {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(v.as_str().unwrap())
                        .unwrap();
                    write_file(&dir.join(k), &bytes, mode, None, fs_group);
                }
                mounts.push((dir, at, true));
            } else if let Some(cm) = volume.get("configMap") {
                let object = self
                    .server
                    .object("configmaps", namespace, cm["name"].as_str().unwrap())
                    .unwrap_or_else(|| {
                        panic!("{name}: the ConfigMap of volume {vname} is missing")
                    });
                let mode = u32_at(&cm["defaultMode"]).unwrap_or(0o644);
                volume_dir(&dir, fs_group);
                for (k, v) in object["data"].as_object().into_iter().flatten() {
                    write_file(
                        &dir.join(k),
                        v.as_str().unwrap().as_bytes(),
                        mode,
                        None,
                        fs_group,
                    );
                }
                mounts.push((dir, at, true));
            } else if volume.get("emptyDir").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                let mut mode = 0o777;
                if let Some(g) = fs_group {
                    std::os::unix::fs::chown(&dir, None, Some(g)).unwrap();
                    mode |= 0o2000;
                }
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
                mounts.push((dir, at, read_only));
            } else {
                panic!("{name}: a volume of a kind this kubelet does not mount: {volume}");
            }
        }
        // The service-account token, as the ServiceAccount admission plugin and the kubelet
        // give it.
        if pod["automountServiceAccountToken"] != false {
            let dir = here.join("volumes/kube-api-access");
            volume_dir(&dir, fs_group);
            let token_mode = if fs_group.is_some() || sc["runAsUser"].is_u64() {
                0o600
            } else {
                0o644
            };
            write_file(
                &dir.join("token"),
                self.server.token().unwrap_or_default().as_bytes(),
                token_mode,
                u32_at(&sc["runAsUser"]),
                fs_group,
            );
            write_file(
                &dir.join("ca.crt"),
                self.server.ca_pem().unwrap().as_bytes(),
                0o644,
                None,
                fs_group,
            );
            write_file(
                &dir.join("namespace"),
                namespace.as_bytes(),
                0o644,
                None,
                fs_group,
            );
            mounts.push((dir, SERVICE_ACCOUNT_DIR.to_string(), true));
        }

        // Mount points the runtime creates in the image's filesystem.
        let rootfs = &self.image.rootfs;
        for at in mounts
            .iter()
            .map(|(_, at, _)| at.as_str())
            .chain(["/proc", "/dev"])
        {
            std::fs::create_dir_all(rootfs.join(at.trim_start_matches('/'))).unwrap();
        }
        let root = here.join("root");
        std::fs::create_dir(&root).unwrap();
        let read_only_root = csc["readOnlyRootFilesystem"] == true;
        let r = quote(root.to_str().unwrap());
        let mut script = String::from("set -eu\n");
        script.push_str(&format!(
            "mount --bind {} {r}\n",
            quote(rootfs.to_str().unwrap())
        ));
        if read_only_root {
            script.push_str(&format!("mount -o remount,bind,ro {r}\n"));
        }
        script.push_str(&format!("mount -t proc proc {r}/proc\n"));
        script.push_str(&format!("mount -t tmpfs -o mode=755 tmpfs {r}/dev\n"));
        for d in ["null", "zero", "random", "urandom"] {
            script.push_str(&format!(
                "touch {r}/dev/{d}\nmount --bind /dev/{d} {r}/dev/{d}\n"
            ));
        }
        for (dir, at, ro) in &mounts {
            let target = format!("{r}{}", quote(at));
            script.push_str(&format!(
                "mount --bind {} {target}\n",
                quote(dir.to_str().unwrap())
            ));
            if *ro {
                script.push_str(&format!("mount -o remount,bind,ro {target}\n"));
            }
        }
        // The environment: the container's, then the kubelet's.
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), DEFAULT_PATH.into()),
            ("HOSTNAME".into(), name.into()),
        ];
        for e in container["env"].as_array().into_iter().flatten() {
            let key = e["name"].as_str().unwrap().to_string();
            let value = if let Some(v) = e["value"].as_str() {
                v.to_string()
            } else {
                match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                    Some("metadata.name") => name.to_string(),
                    Some("metadata.namespace") => namespace.to_string(),
                    other => panic!("{name}: env {key} from {other:?} is not modelled"),
                }
            };
            env.push((key, value));
        }
        // runc sets HOME from the image's /etc/passwd when the container's env has none
        // (libcontainer's `setupUser`): /home/nonroot for 65532.
        if !env.iter().any(|(k, _)| k == "HOME") {
            let home = if uid == IMAGE_USER {
                "/home/nonroot"
            } else {
                "/"
            };
            env.push(("HOME".into(), home.into()));
        }
        let port = self.server.addr().port();
        env.push(("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into()));
        env.push(("KUBERNETES_SERVICE_PORT".into(), port.to_string()));
        env.push(("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.to_string()));
        let mut argv: Vec<String> = match container["command"].as_array() {
            Some(c) => c.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
            None => self.image.entrypoint.clone(),
        };
        argv.extend(
            container["args"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| v.as_str().unwrap().to_string()),
        );
        let mut groups = vec![gid];
        groups.extend(fs_group);
        let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
        let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("chroot (coreutils)");
        script.push_str(&format!(
            "exec /usr/bin/env -i {} {chroot} --userspec={uid}:{gid} --groups={} {r} {}\n",
            env.iter()
                .map(|(k, v)| quote(&format!("{k}={v}")))
                .collect::<Vec<_>>()
                .join(" "),
            groups.join(","),
            argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
        ));
        let script_path = here.join("start.sh");
        std::fs::write(&script_path, script).unwrap();
        let log = here.join("log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh"])
            .arg(&script_path)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Pod {
            name: name.to_string(),
            pid: child.id(),
            child: Some(child),
            uid,
            gid,
            log,
            code: None,
        }
    }
}

impl Pod {
    /// What the container wrote to stdout and stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the container to end (at most `limit`), returning its exit code.
    pub fn wait(&mut self, limit: Duration) -> i32 {
        if let Some(code) = self.code {
            return code;
        }
        let child = self.child.as_mut().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let code = status.code().unwrap_or(-1);
                self.code = Some(code);
                return code;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                panic!("{} still runs after {limit:?}:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM, as the kubelet does to stop a container.
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// An `exec` probe or `kubectl exec`: `argv` in the container's mount namespace and root,
    /// as its user, with containerd's PATH.
    pub fn exec(&self, argv: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .arg(format!("--target={}", self.pid))
            .args(["--mount", "--root", "--wd"])
            .arg(format!("--setuid={}", self.uid))
            .arg(format!("--setgid={}", self.gid))
            .arg("--")
            .args(argv)
            .env_clear()
            .env("PATH", DEFAULT_PATH)
            .output()
            .unwrap()
    }

    /// An `httpGet` probe: the status code of `GET path` on `port`, or None if nothing answers.
    pub fn http_get(&self, port: u16, path: &str) -> Option<u16> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
