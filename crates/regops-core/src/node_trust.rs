//! Node trust: the container-runtime configuration that makes a node pull from the registries a
//! spec names as plain HTTP (`insecure: true`) or with a CA of their own (`caFile:`).
//!
//! Pure: the shell reads each CA file (confined, size-capped) and hands its bytes here; this
//! module checks hosts and certificates and renders one file set per runtime:
//!
//! - containerd: `certs.d/<host[:port]>/hosts.toml` (+ `ca.crt` beside it), as containerd's
//!   `docs/hosts.md` describes (containerd/containerd, `core/remotes/docker/config/hosts.go`:
//!   `hostPaths`, `parseHostsFile`, `parseHostConfig`);
//! - k3s and RKE2: `registries.yaml` (<https://docs.k3s.io/installation/private-registry>,
//!   <https://docs.rke2.io/install/private_registry>), CA files under `certs.d/<host>/`;
//! - Docker: the `insecure-registries` key of `daemon.json`
//!   (<https://docs.docker.com/reference/cli/dockerd/#insecure-registries>) and
//!   `certs.d/<host[:port]>/ca.crt` (<https://docs.docker.com/engine/security/certificates/>);
//! - CRI-O (and podman, through containers/image): `certs.d/<host[:port]>/ca.crt`
//!   (containers/image `docs/containers-certs.d.5.md`: "*.crt files ... will be interpreted as
//!   CA certificates") and a `registries.conf.d` drop-in with `[[registry]] location` and
//!   `insecure = true` for plain HTTP (`docs/containers-registries.conf.5.md`,
//!   `docs/containers-registries.conf.d.5.md`).

use std::collections::BTreeMap;
use std::fmt;

use regops_spec::{DOCKER_HUB_SERVER, Spec};

/// The largest CA bundle written to a node (the whole rendered set must also fit in one
/// ConfigMap, at most 1 MiB): a bundle of a hundred certificates is about 150 KiB.
pub const NODE_CA_LIMIT: usize = 256 << 10;

/// The file that marks a host directory as written by `regops node-sync`.
pub const OWNER_MARK: &str = ".regops-node-trust";

/// A container runtime whose node configuration regops renders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Runtime {
    Containerd,
    K3s,
    Rke2,
    Docker,
    Crio,
}

impl Runtime {
    pub const ALL: [Runtime; 5] = [
        Runtime::Containerd,
        Runtime::K3s,
        Runtime::Rke2,
        Runtime::Docker,
        Runtime::Crio,
    ];

    /// The directory on the node the rendered paths are relative to.
    pub fn root(self) -> &'static str {
        match self {
            Runtime::Containerd => "/etc/containerd/certs.d",
            Runtime::K3s => "/etc/rancher/k3s",
            Runtime::Rke2 => "/etc/rancher/rke2",
            Runtime::Docker => "/etc/docker",
            Runtime::Crio => "/etc/containers",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::K3s => "k3s",
            Runtime::Rke2 => "rke2",
            Runtime::Docker => "docker",
            Runtime::Crio => "crio",
        }
    }

    /// What the node needs before it uses the files.
    pub fn takes_effect(self) -> &'static str {
        match self {
            Runtime::Containerd => {
                "containerd reads certs.d on every pull once its CRI registry `config_path` is /etc/containerd/certs.d (the default in containerd 2.x; in 1.6 and 1.7 set it and restart containerd once)"
            }
            Runtime::K3s => {
                "k3s reads registries.yaml when it starts: merge it into /etc/rancher/k3s/registries.yaml on every node and restart k3s (or k3s-agent)"
            }
            Runtime::Rke2 => {
                "RKE2 reads registries.yaml when it starts: merge it into /etc/rancher/rke2/registries.yaml on every node and restart rke2-server (or rke2-agent)"
            }
            Runtime::Docker => {
                "merge `insecure-registries` into /etc/docker/daemon.json and reload dockerd (SIGHUP, or `systemctl reload docker`); certs.d is read on every pull"
            }
            Runtime::Crio => {
                "CRI-O reads /etc/containers/certs.d on every pull; it reads registries.conf.d when it starts or reloads its configuration (SIGHUP, or `systemctl reload crio`)"
            }
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A runtime's name that is none of regops' runtimes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not one of containerd, k3s, rke2, docker, crio")]
pub struct UnknownRuntime(pub String);

impl std::str::FromStr for Runtime {
    type Err = UnknownRuntime;
    fn from_str(s: &str) -> Result<Self, UnknownRuntime> {
        Runtime::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| UnknownRuntime(s.to_string()))
    }
}

/// Why node trust cannot be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeTrustError {
    #[error("registry host `{host}` {reason}")]
    Host { host: String, reason: String },
    #[error("the CA of registry `{registry}` {reason}")]
    Ca {
        registry: String,
        #[source]
        reason: CaError,
    },
    #[error(
        "registries `{first}` and `{second}` both name host `{host}` but ask different node trust (plain HTTP or CA)"
    )]
    Conflict {
        host: String,
        first: String,
        second: String,
    },
}

/// A registry host as runtimes name it in an image reference and in their per-host
/// directories: `host[:port]`, a lower-case DNS name, an IPv4 address or a bracketed IPv6
/// address in its canonical (RFC 5952) form. Nothing else can reach a path: no `/`, no `..`,
/// no `_default`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeHost(String);

impl NodeHost {
    pub fn parse(s: &str) -> Result<NodeHost, NodeTrustError> {
        let bad = |reason: String| NodeTrustError::Host {
            host: s.to_string(),
            reason,
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (inner, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("has an unclosed IPv6 bracket".into()))?;
            let ip: std::net::Ipv6Addr = inner
                .parse()
                .map_err(|_| bad(format!("has `{inner}` in brackets, not an IPv6 address")))?;
            if ip.to_string() != inner {
                return Err(bad(format!(
                    "is not written in canonical form: write `[{ip}]` as image references do"
                )));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("is not [ipv6]:port".into()))?,
                ),
            };
            (None, port)
        } else {
            match s.split_once(':') {
                Some((h, p)) => (Some(h), Some(p)),
                None => (Some(s), None),
            }
        };
        if let Some(port) = port {
            let ok = !port.is_empty()
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && !port.starts_with('0')
                && port.parse::<u16>().is_ok();
            if !ok {
                return Err(bad(format!("has `{port}`, not a port number (1-65535)")));
            }
        }
        if let Some(host) = host
            && host.parse::<std::net::Ipv4Addr>().is_err()
        {
            dns_name(host).map_err(|why| bad(why.to_string()))?;
        }
        Ok(NodeHost(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host of a spec registry's normalised `server` (its path, if any, dropped: runtimes
    /// configure a host, not a repository prefix). Docker Hub is `docker.io`, the name
    /// containerd's `certs.d` and image references use.
    pub fn of_server(server: &str) -> Result<NodeHost, NodeTrustError> {
        if server == DOCKER_HUB_SERVER {
            return NodeHost::parse("docker.io");
        }
        NodeHost::parse(regops_spec::trust::server_host(server))
    }
}

impl fmt::Display for NodeHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `host` is a DNS name; if not, why (the rest of a sentence about it).
fn dns_name(host: &str) -> Result<(), &'static str> {
    if host.is_empty() || host.len() > 253 {
        return Err("must be 1 to 253 characters");
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(
                "is not a registry host: lower-case DNS labels of letters, digits and '-' separated by '.', an IPv4 address or a bracketed IPv6 address",
            );
        }
    }
    Ok(())
}

/// Why a CA bundle is refused, said after "the CA": never its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    #[error("is {len} bytes; a CA bundle written to nodes may be at most {} KiB", NODE_CA_LIMIT >> 10)]
    TooLarge { len: usize },
    #[error(
        "holds a PEM block other than CERTIFICATE ({0}); only CA certificates are written to nodes"
    )]
    NotCertificate(String),
    #[error("is not PEM: {0}")]
    NotPem(String),
    #[error("holds no PEM certificate")]
    Empty,
    #[error("certificate {index} does not parse: {reason}")]
    Unparsable { index: usize, reason: String },
}

/// CA certificates, checked and written again as plain PEM: only `CERTIFICATE` blocks, each a
/// certificate rustls accepts as a root. Anything else in the file (a private key, text) is
/// refused rather than copied to every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaBundle {
    pem: String,
    count: usize,
}

impl CaBundle {
    /// Checks `bytes` (a `caFile`'s content). The error says what is wrong, never the content.
    pub fn parse(bytes: &[u8]) -> Result<CaBundle, CaError> {
        use rustls_pki_types::pem::{self, SectionKind};
        if bytes.len() > NODE_CA_LIMIT {
            return Err(CaError::TooLarge { len: bytes.len() });
        }
        let mut reader = bytes;
        let mut ders = Vec::new();
        loop {
            match pem::from_buf(&mut reader) {
                Ok(None) => break,
                Ok(Some((SectionKind::Certificate, der))) => ders.push(der),
                Ok(Some((kind, _))) => {
                    return Err(CaError::NotCertificate(format!("{kind:?}")));
                }
                Err(e) => return Err(CaError::NotPem(e.to_string())),
            }
        }
        if ders.is_empty() {
            return Err(CaError::Empty);
        }
        let mut pem = String::new();
        for (i, der) in ders.iter().enumerate() {
            let cert = rustls_pki_types::CertificateDer::from(der.as_slice());
            webpki::anchor_from_trusted_cert(&cert).map_err(|e| CaError::Unparsable {
                index: i + 1,
                reason: format!("{e:?}"),
            })?;
            pem.push_str(&pem_block(der));
        }
        Ok(CaBundle {
            pem,
            count: ders.len(),
        })
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub fn count(&self) -> usize {
        self.count
    }
}

fn pem_block(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// What a node must trust for one registry host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedHost {
    pub host: NodeHost,
    /// The spec registries that name this host (sorted).
    pub registries: Vec<String>,
    /// Plain HTTP (`insecure: true`).
    pub plain_http: bool,
    pub ca: Option<CaBundle>,
}

/// One spec registry's node-trust request, before merging by host.
#[derive(Clone, Debug)]
pub struct Request {
    pub registry: String,
    pub server: String,
    pub plain_http: bool,
    /// The CA file's bytes, read by the shell.
    pub ca: Option<Vec<u8>>,
}

/// The registries of `spec` that ask for node trust, without their CA bytes (the shell reads
/// those and fills [`Request::ca`]).
pub fn requested(spec: &Spec) -> Vec<&regops_spec::Registry> {
    spec.registries
        .values()
        .filter(|r| r.insecure || r.ca_file.is_some())
        .collect()
}

/// Checks every request and merges them by host: two registries on one host must ask the same.
pub fn hosts(requests: &[Request]) -> Result<Vec<TrustedHost>, NodeTrustError> {
    let mut by_host: BTreeMap<NodeHost, TrustedHost> = BTreeMap::new();
    for r in requests {
        let host = NodeHost::of_server(&r.server)?;
        let ca = match &r.ca {
            Some(bytes) => Some(CaBundle::parse(bytes).map_err(|reason| NodeTrustError::Ca {
                registry: r.registry.clone(),
                reason,
            })?),
            None => None,
        };
        match by_host.get_mut(&host) {
            Some(t) if t.plain_http == r.plain_http && t.ca == ca => {
                t.registries.push(r.registry.clone());
                t.registries.sort();
            }
            Some(t) => {
                return Err(NodeTrustError::Conflict {
                    host: host.to_string(),
                    first: t.registries[0].clone(),
                    second: r.registry.clone(),
                });
            }
            None => {
                by_host.insert(
                    host.clone(),
                    TrustedHost {
                        host,
                        registries: vec![r.registry.clone()],
                        plain_http: r.plain_http,
                        ca,
                    },
                );
            }
        }
    }
    Ok(by_host.into_values().collect())
}

/// One rendered file: its path relative to [`Runtime::root`], and its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFile {
    pub rel: String,
    pub content: String,
    /// The registries it is for (names sanitised), shown as a comment in the YAML stream.
    pub note: String,
}

impl NodeFile {
    /// The path on the node.
    pub fn path(&self, runtime: Runtime) -> String {
        format!("{}/{}", runtime.root(), self.rel)
    }
}

/// Registry names as they may appear in a generated comment: the spec is untrusted, and a
/// newline in a comment would end it.
fn names(t: &TrustedHost) -> String {
    t.registries
        .iter()
        .map(|n| {
            n.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '?'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn all_names(hosts: &[TrustedHost]) -> String {
    let all: Vec<String> = hosts.iter().map(names).collect();
    format!("registries {}", all.join(", "))
}

/// The files of `runtime` for `hosts`. Nothing for no hosts.
pub fn render(runtime: Runtime, hosts: &[TrustedHost]) -> Vec<NodeFile> {
    match runtime {
        Runtime::Containerd => containerd(hosts),
        Runtime::K3s | Runtime::Rke2 => rancher(runtime, hosts),
        Runtime::Docker => docker(hosts),
        Runtime::Crio => crio(hosts),
    }
}

/// The drop-in CRI-O (containers/image) reads for plain HTTP, beside the node's own
/// `registries.conf`: its name sorts late among the drop-ins, which are read in order.
pub const CRIO_DROP_IN: &str = "registries.conf.d/50-regops-node-trust.conf";

/// `certs.d/<host[:port]>/ca.crt` for a CA, and for plain HTTP a `registries.conf.d` drop-in
/// of `[[registry]]` tables with `location` (the host, as image references write it) and
/// `insecure = true` (containers-registries.conf(5): "unencrypted HTTP as well as TLS
/// connections with untrusted certificates are allowed"; the only way it speaks plain HTTP).
/// A host with a CA is not marked insecure: the CA is trusted instead.
fn crio(hosts: &[TrustedHost]) -> Vec<NodeFile> {
    let mut files = Vec::new();
    let plain: Vec<TrustedHost> = hosts.iter().filter(|t| t.plain_http).cloned().collect();
    if !plain.is_empty() {
        let mut conf = format!(
            "# Written by regops: node trust for {}. CRI-O reads it at start and on reload.\n",
            plain
                .iter()
                .map(|t| t.host.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for t in &plain {
            // A checked host is ASCII without quotes or backslashes: a JSON string is a TOML
            // basic string.
            conf.push_str(&format!(
                "\n[[registry]]\nlocation = {}\ninsecure = true\n",
                yq(t.host.as_str())
            ));
        }
        files.push(NodeFile {
            rel: CRIO_DROP_IN.into(),
            content: conf,
            note: all_names(&plain),
        });
    }
    for t in hosts {
        if let Some(ca) = &t.ca {
            files.push(NodeFile {
                rel: format!("certs.d/{}/ca.crt", t.host),
                content: ca.pem().to_string(),
                note: format!("registry {}", names(t)),
            });
        }
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    files
}

/// `certs.d/<host[:port]>/hosts.toml`. containerd looks for `<host>_<port>_` first, then
/// `<host>:<port>`, then `_default` (`hostPaths` in `config_unix.go`); `<host>:<port>` is the
/// name `docs/hosts.md` shows and image references use. `ca` is relative to the hosts.toml
/// (`makeAbsPath`, since containerd 1.5). Capabilities are `pull` and `resolve` only: a node
/// does not push. With an `http://` host containerd speaks plain HTTP; with a CA as well it
/// tries HTTPS first (`ConfigureHosts`: "host will try HTTPS first").
fn containerd(hosts: &[TrustedHost]) -> Vec<NodeFile> {
    let mut files = Vec::new();
    for t in hosts {
        let scheme = if t.plain_http { "http" } else { "https" };
        let url = format!("{scheme}://{}", t.host);
        // A function of the host, the scheme and whether there is a CA only: `node-sync`
        // accepts a hosts.toml only if it is exactly this (see [`from_stream`]).
        let mut toml = format!(
            "# Written by regops: node trust for {}.\n\
             # containerd reads this on every pull; edits are overwritten.\n\
             server = \"{url}\"\n\n[host.\"{url}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            t.host,
        );
        let note = format!("registry {}", names(t));
        if let Some(ca) = &t.ca {
            toml.push_str("  ca = \"ca.crt\"\n");
            files.push(NodeFile {
                rel: format!("{}/ca.crt", t.host),
                content: ca.pem().to_string(),
                note: note.clone(),
            });
        }
        files.push(NodeFile {
            rel: format!("{}/hosts.toml", t.host),
            content: toml,
            note,
        });
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    files
}

/// YAML double-quoted scalar (JSON's string syntax is YAML's).
fn yq(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// `registries.yaml`: `mirrors.<host>.endpoint` with the `http://` URL for plain HTTP (the
/// documented way to reach a registry without TLS) and `configs.<host>.tls.ca_file` for a CA.
/// `insecure_skip_verify` is never written: a CA is trusted instead of verification being
/// turned off.
fn rancher(runtime: Runtime, hosts: &[TrustedHost]) -> Vec<NodeFile> {
    if hosts.is_empty() {
        return Vec::new();
    }
    let mut files = Vec::new();
    let mut yaml = format!(
        "# Written by regops: node trust for {}. Merge into {}/registries.yaml and restart {}.\n",
        hosts
            .iter()
            .map(|t| t.host.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        runtime.root(),
        runtime.name(),
    );
    let plain: Vec<&TrustedHost> = hosts.iter().filter(|t| t.plain_http).collect();
    if !plain.is_empty() {
        yaml.push_str("mirrors:\n");
        for t in &plain {
            yaml.push_str(&format!(
                "  {}:\n    endpoint:\n      - {}\n",
                yq(t.host.as_str()),
                yq(&format!("http://{}", t.host))
            ));
        }
    }
    let with_ca: Vec<&TrustedHost> = hosts.iter().filter(|t| t.ca.is_some()).collect();
    if !with_ca.is_empty() {
        yaml.push_str("configs:\n");
        for t in &with_ca {
            let rel = format!("certs.d/{}/ca.crt", t.host);
            yaml.push_str(&format!(
                "  {}:\n    tls:\n      ca_file: {}\n",
                yq(t.host.as_str()),
                yq(&format!("{}/{rel}", runtime.root()))
            ));
            if let Some(ca) = &t.ca {
                files.push(NodeFile {
                    rel,
                    content: ca.pem().to_string(),
                    note: format!("registry {}", names(t)),
                });
            }
        }
    }
    files.push(NodeFile {
        rel: "registries.yaml".into(),
        content: yaml,
        note: all_names(hosts),
    });
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    files
}

/// `daemon.json`'s `insecure-registries` (to merge into the node's own daemon.json) and
/// `certs.d/<host[:port]>/ca.crt`.
fn docker(hosts: &[TrustedHost]) -> Vec<NodeFile> {
    let mut files = Vec::new();
    let insecure: Vec<&str> = hosts
        .iter()
        .filter(|t| t.plain_http)
        .map(|t| t.host.as_str())
        .collect();
    if !insecure.is_empty() {
        let json = serde_json::json!({ "insecure-registries": insecure });
        let mut content = serde_json::to_string_pretty(&json).unwrap_or_default();
        content.push('\n');
        let plain: Vec<TrustedHost> = hosts.iter().filter(|t| t.plain_http).cloned().collect();
        files.push(NodeFile {
            rel: "daemon.json".into(),
            content,
            note: all_names(&plain),
        });
    }
    for t in hosts {
        if let Some(ca) = &t.ca {
            files.push(NodeFile {
                rel: format!("certs.d/{}/ca.crt", t.host),
                content: ca.pem().to_string(),
                note: format!("registry {}", names(t)),
            });
        }
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    files
}

/// The files as a YAML stream, one document per file with `path:` (on the node) and `content:`.
pub fn to_yaml(runtime: Runtime, files: &[NodeFile]) -> String {
    let mut out = String::new();
    for f in files {
        out.push_str("---\n");
        // `note` is made of sanitised names: it cannot end the comment.
        out.push_str(&format!("# {}\n", f.note));
        out.push_str(&format!("path: {}\n", yq(&f.path(runtime))));
        // An explicit indentation indicator: a line of the content may start with spaces.
        out.push_str("content: |2\n");
        for line in f.content.lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The key of the node-trust ConfigMap that `node-sync` reads: containerd's stream.
pub const STREAM_KEY: &str = "containerd.yaml";

/// The data of the ConfigMap `apply` keeps (`nodeTrust:`): one key per runtime
/// (`<runtime>.yaml`), each the YAML stream `render --node-config <runtime>` prints.
/// [`STREAM_KEY`] is what node-sync reads; the others are there for review. CA certificates
/// and runtime configuration only: public.
pub fn config_map_data(hosts: &[TrustedHost]) -> BTreeMap<String, String> {
    Runtime::ALL
        .into_iter()
        .map(|r| (format!("{}.yaml", r.name()), to_yaml(r, &render(r, hosts))))
        .collect()
}

/// The allowlist as node-sync reads it (`--allow-host=$(ALLOW_HOSTS)`, split at commas, empty
/// entries skipped): its hosts, or the first entry node-sync would refuse to start with.
pub fn parse_allow_list(value: &str) -> Result<Vec<NodeHost>, NodeTrustError> {
    value
        .split(',')
        .filter(|h| !h.is_empty())
        .map(NodeHost::parse)
        .collect()
}

/// One document of the YAML stream [`to_yaml`] writes.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamDoc {
    pub path: String,
    pub content: String,
}

/// Why a stream of rendered files is not node trust regops wrote.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{path}: {reason}")]
pub struct StreamError {
    pub path: String,
    pub reason: String,
}

/// What nodes must trust, read back from containerd's rendered files (the stream
/// `render --node-config containerd` prints, which `apply` keeps in a ConfigMap). Only what
/// regops itself renders passes: each path is `<certs.d>/<host>/hosts.toml` or `ca.crt` with a
/// checked host; each `ca.crt` is checked again as a CA; each `hosts.toml` must be exactly what
/// [`render`] gives for its host, so nothing but a host, a scheme and CA certificates reaches a
/// node (no `ca = "/etc/shadow"`, no mirror, no header).
pub fn from_stream(docs: &[StreamDoc]) -> Result<Vec<TrustedHost>, StreamError> {
    let root = format!("{}/", Runtime::Containerd.root());
    let mut tomls: BTreeMap<NodeHost, &str> = BTreeMap::new();
    let mut cas: BTreeMap<NodeHost, CaBundle> = BTreeMap::new();
    for d in docs {
        let bad = |reason: &str| StreamError {
            path: regops_spec::untrusted::terminal(&d.path).into_owned(),
            reason: reason.to_string(),
        };
        let rel = d
            .path
            .strip_prefix(&root)
            .ok_or_else(|| bad(&format!("is not under {root}")))?;
        let (host, file) = rel
            .rsplit_once('/')
            .ok_or_else(|| bad("is not <host>/hosts.toml or <host>/ca.crt"))?;
        let host = NodeHost::parse(host).map_err(|e| bad(&e.to_string()))?;
        let dup = match file {
            "hosts.toml" => tomls.insert(host, &d.content).is_some(),
            "ca.crt" => {
                let ca = CaBundle::parse(d.content.as_bytes())
                    .map_err(|e| bad(&format!("the CA {e}")))?;
                cas.insert(host, ca).is_some()
            }
            _ => return Err(bad("is not <host>/hosts.toml or <host>/ca.crt")),
        };
        if dup {
            return Err(bad("is given twice"));
        }
    }
    if let Some(host) = cas.keys().find(|h| !tomls.contains_key(*h)) {
        return Err(StreamError {
            path: format!("{root}{host}/ca.crt"),
            reason: "has no hosts.toml beside it".into(),
        });
    }
    let mut out = Vec::new();
    for (host, toml) in tomls {
        let ca = cas.remove(&host);
        let found = [false, true].into_iter().find_map(|plain_http| {
            let t = TrustedHost {
                host: host.clone(),
                registries: Vec::new(),
                plain_http,
                ca: ca.clone(),
            };
            let mine = containerd(std::slice::from_ref(&t));
            mine.iter()
                .any(|f| f.rel.ends_with("/hosts.toml") && f.content == toml)
                .then_some(t)
        });
        out.push(found.ok_or_else(|| StreamError {
            path: format!("{root}{host}/hosts.toml"),
            reason: "is not a hosts.toml regops renders (only the host, its scheme and a CA beside it are taken from the stream)".into(),
        })?);
    }
    Ok(out)
}

/// Whether containerd reads the `certs.d` directory node trust is written to.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigPath {
    /// `config_path` is `want` (or containerd 2.x's default, which is).
    Reads,
    /// `config_path` is set elsewhere.
    Elsewhere(String),
    /// containerd 1.x without `config_path`: certs.d is not read; set it and restart once.
    Unset,
    /// The configuration is not TOML, or its version unknown.
    Unknown(String),
}

/// Reads containerd's `config.toml` (read-only) for its CRI registry `config_path`:
/// `plugins."io.containerd.grpc.v1.cri".registry` in a version 2 file (containerd 1.x),
/// `plugins."io.containerd.cri.v1.images".registry` in version 3 (2.x), whose default is
/// `/etc/containerd/certs.d` (containerd's docs/hosts.md, "CRI"). `config_path` may list
/// several directories separated by `:`.
pub fn containerd_config_path(config: &str, want: &str) -> ConfigPath {
    let Ok(table) = toml::de::DeTable::parse(config) else {
        return ConfigPath::Unknown("the file is not TOML".into());
    };
    let table = table.into_inner();
    let version = match table.get("version").map(|v| v.get_ref()) {
        Some(toml::de::DeValue::Integer(i)) => i.as_str().to_string(),
        None => "1".into(),
        Some(_) => return ConfigPath::Unknown("`version` is not a number".into()),
    };
    let plugin = match version.as_str() {
        "1" | "2" => "io.containerd.grpc.v1.cri",
        "3" => "io.containerd.cri.v1.images",
        v => return ConfigPath::Unknown(format!("config version {v} is not known")),
    };
    fn get<'b, 'a>(t: &'b toml::de::DeTable<'a>, k: &str) -> Option<&'b toml::de::DeTable<'a>> {
        match t.get(k).map(|v| v.get_ref()) {
            Some(toml::de::DeValue::Table(t)) => Some(t),
            _ => None,
        }
    }
    let path = get(&table, "plugins")
        .and_then(|p| get(p, plugin))
        .and_then(|c| get(c, "registry"))
        .and_then(|r| match r.get("config_path").map(|v| v.get_ref()) {
            Some(toml::de::DeValue::String(s)) => Some(s.to_string()),
            _ => None,
        });
    match path {
        Some(p)
            if p.split(':')
                .any(|d| d.trim_end_matches('/') == want.trim_end_matches('/')) =>
        {
            ConfigPath::Reads
        }
        Some(p) if !p.is_empty() => ConfigPath::Elsewhere(p),
        _ if version == "3" => ConfigPath::Reads,
        _ => ConfigPath::Unset,
    }
}

#[cfg(test)]
mod tests;
