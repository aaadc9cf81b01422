//! `regops render --node-config`: the node-trust files from a spec, to stdout or a directory,
//! without decrypting anything; a spec's CA and hosts are checked before anything is written.

use std::path::Path;

use crate::common::{registry, regops, run};

/// A spec with the seeds' two cases: Harbor over plain HTTP on an address, and an HTTPS
/// registry with a private CA (`ca.pem` beside the spec), plus Docker Hub, which asks nothing.
pub fn spec(dir: &Path, http: &str, https: &str) -> std::path::PathBuf {
    let (_, _, ca) = registry::tls_files(dir);
    std::fs::rename(ca, dir.join("ca.pem")).unwrap();
    let path = dir.join("regops.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: regops.dev/v1
kind: RegistryConfig
registries:
  harbor-http:
    server: {http}
    credential: robot
    insecure: true
  harbor:
    server: '{https}'
    credential: robot
    caFile: ca.pem
  hub:
    server: docker.io
    credential: robot
credentials:
  robot:
    username: robot$ci
    password: {{ env: REGOPS_CRED_NEVER_READ }}
"
        ),
    )
    .unwrap();
    path
}

#[test]
fn stdout_is_one_yaml_document_per_file_and_nothing_is_decrypted() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "192.168.0.99", "harbor.example.com:8443");
    // No identity and the credential's variable unset: rendering node trust reads neither.
    let r = run(regops()
        .args(["render", "--node-config", "containerd", "-f"])
        .arg(&spec));
    assert_eq!(r.code, 0, "{}", r.stderr);
    #[derive(serde::Deserialize)]
    struct Doc {
        path: String,
        content: String,
    }
    let docs: Vec<Doc> = serde_saphyr::from_multiple(&r.stdout).unwrap();
    let paths: Vec<&str> = docs.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/etc/containerd/certs.d/192.168.0.99/hosts.toml",
            "/etc/containerd/certs.d/harbor.example.com:8443/ca.crt",
            "/etc/containerd/certs.d/harbor.example.com:8443/hosts.toml",
        ]
    );
    assert!(docs[0].content.contains("server = \"http://192.168.0.99\""));
    // The CA is the spec's caFile, certificate for certificate.
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    assert_eq!(
        docs[1].content.split_whitespace().collect::<String>(),
        ca.split_whitespace().collect::<String>()
    );
    assert!(r.stderr.contains("config_path"), "{}", r.stderr);
}

#[test]
fn output_dir_is_laid_out_as_on_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "192.168.0.99", "[fd00::5]:5000");
    for runtime in ["containerd", "k3s", "rke2", "docker"] {
        let out = dir.path().join(runtime);
        let r = run(regops()
            .args(["render", "--node-config", runtime, "-f"])
            .arg(&spec)
            .arg("--output-dir")
            .arg(&out));
        assert_eq!(r.code, 0, "{runtime}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{runtime}: {}", r.stdout);
        let mut files: Vec<String> = walk(&out)
            .into_iter()
            .map(|p| p.strip_prefix(&out).unwrap().display().to_string())
            .collect();
        files.sort();
        let want: &[&str] = match runtime {
            "containerd" => &[
                "192.168.0.99/hosts.toml",
                "[fd00::5]:5000/ca.crt",
                "[fd00::5]:5000/hosts.toml",
            ],
            "docker" => &["certs.d/[fd00::5]:5000/ca.crt", "daemon.json"],
            _ => &["certs.d/[fd00::5]:5000/ca.crt", "registries.yaml"],
        };
        assert_eq!(files, want, "{runtime}");
    }
    let daemon = std::fs::read_to_string(dir.path().join("docker/daemon.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&daemon).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"insecure-registries": ["192.168.0.99"]})
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The attacker writes the spec: a caFile that is a private key (it would be copied to every
/// node), or a CA outside the spec's root. Refused, located, and nothing is written.
#[test]
fn a_bad_ca_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "192.168.0.99", "harbor.example.com");
    let key = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
    std::fs::write(dir.path().join("ca.pem"), &key).unwrap();
    let out = dir.path().join("out");
    let r = run(regops()
        .args(["render", "--node-config", "containerd", "-f"])
        .arg(&spec)
        .arg("--output-dir")
        .arg(&out));
    assert_eq!(r.code, 1);
    let err = r.flat_stderr();
    assert!(err.contains("other than CERTIFICATE"), "{err}");
    assert!(err.contains("caFile: ca.pem"), "not located: {err}");
    let body = key.lines().nth(1).unwrap();
    assert!(!r.stderr.contains(body), "the key was shown: {}", r.stderr);
    assert!(!out.exists(), "something was written");

    let text = std::fs::read_to_string(&spec).unwrap().replace(
        "caFile: ca.pem",
        "caFile: /etc/ssl/certs/ca-certificates.crt",
    );
    std::fs::write(&spec, text).unwrap();
    let r = run(regops()
        .args(["render", "--node-config", "containerd", "-f"])
        .arg(&spec));
    assert_eq!(r.code, 1);
    assert!(
        r.flat_stderr().contains("outside the spec's root"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
}

#[test]
fn nothing_is_rendered_unless_the_spec_asks() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "192.168.0.99", "harbor.example.com");
    let text = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("    insecure: true\n", "")
        .replace("    caFile: ca.pem\n", "");
    std::fs::write(&spec, text).unwrap();
    let out = dir.path().join("out");
    let r = run(regops()
        .args(["render", "--node-config", "containerd", "-f"])
        .arg(&spec)
        .arg("--output-dir")
        .arg(&out));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("nothing to render"), "{}", r.stderr);
    assert!(!out.exists());
}

#[test]
fn output_dir_needs_node_config() {
    let r = run(regops().args(["render", "--output-dir", "x"]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("--node-config"), "{}", r.stderr);
}
