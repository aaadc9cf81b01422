use super::*;

/// A self-signed CA made once with `openssl req -x509 -newkey ec` (P-256, CA:TRUE).
const CA: &str = include_str!("test-ca.pem");

fn req(registry: &str, server: &str, plain_http: bool, ca: Option<&str>) -> Request {
    Request {
        registry: registry.into(),
        server: server.into(),
        plain_http,
        ca: ca.map(|c| c.as_bytes().to_vec()),
    }
}

/// The seeds' two cases: KubeSphere's Harbor over plain HTTP on an address
/// (`--insecure-registry=192.168.0.99`) and an HTTPS registry with a private CA, on a port.
fn seeds() -> Vec<TrustedHost> {
    hosts(&[
        req("harbor-http", "192.168.0.99", true, None),
        req("harbor", "harbor.example.com:8443", false, Some(CA)),
    ])
    .unwrap()
}

fn stream(runtime: Runtime) -> String {
    to_yaml(runtime, &render(runtime, &seeds()))
}

#[test]
fn containerd_hosts_toml_follows_containerds_hosts_md() {
    insta::assert_snapshot!(stream(Runtime::Containerd));
}

#[test]
fn k3s_and_rke2_registries_yaml_follow_the_private_registry_page() {
    insta::assert_snapshot!(stream(Runtime::K3s));
    let rke2 = stream(Runtime::Rke2);
    assert!(rke2.contains("\"/etc/rancher/rke2/registries.yaml\""));
    assert!(rke2.contains("ca_file: \"/etc/rancher/rke2/certs.d/harbor.example.com:8443/ca.crt\""));
}

#[test]
fn docker_daemon_json_and_certs_d_follow_dockers_pages() {
    insta::assert_snapshot!(stream(Runtime::Docker));
}

/// The rendered hosts.toml parses as TOML and has the fields containerd's `parseHostsFile`
/// reads (`server`, `host.<url>.capabilities`, `host.<url>.ca`), with values it accepts.
#[test]
fn containerd_files_parse_as_containerd_reads_them() {
    for f in render(Runtime::Containerd, &seeds()) {
        if !f.rel.ends_with("hosts.toml") {
            assert!(f.content.starts_with("-----BEGIN CERTIFICATE-----\n"));
            continue;
        }
        let doc: toml::Table = f.content.parse().unwrap();
        let server = doc["server"].as_str().unwrap();
        let host = &doc["host"].as_table().unwrap()[server];
        let caps: Vec<&str> = host["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(caps, ["pull", "resolve"]);
        if f.rel.starts_with("192.168.0.99/") {
            assert_eq!(server, "http://192.168.0.99");
            assert!(host.get("ca").is_none());
        } else {
            assert_eq!(server, "https://harbor.example.com:8443");
            assert_eq!(host["ca"].as_str(), Some("ca.crt"));
        }
    }
}

/// The stream parses back: one document per file, `path` on the node, `content` byte for byte.
#[test]
fn the_yaml_stream_gives_back_each_file() {
    #[derive(serde::Deserialize)]
    struct Doc {
        path: String,
        content: String,
    }
    for runtime in Runtime::ALL {
        let files = render(runtime, &seeds());
        let text = to_yaml(runtime, &files);
        let docs: Vec<Doc> = serde_saphyr::from_multiple(&text).unwrap();
        assert_eq!(docs.len(), files.len(), "{runtime}");
        for (d, f) in docs.iter().zip(&files) {
            assert_eq!(d.path, f.path(runtime));
            assert_eq!(d.content, f.content, "{runtime} {}", f.rel);
        }
    }
}

#[test]
fn nothing_is_rendered_unless_the_spec_asks() {
    for runtime in Runtime::ALL {
        assert!(render(runtime, &[]).is_empty(), "{runtime}");
    }
}

#[test]
fn docker_hub_is_docker_io_and_a_path_prefix_is_dropped() {
    assert_eq!(
        NodeHost::of_server(DOCKER_HUB_SERVER).unwrap().as_str(),
        "docker.io"
    );
    assert_eq!(
        NodeHost::of_server("harbor.example.com:8443/library")
            .unwrap()
            .as_str(),
        "harbor.example.com:8443"
    );
}

#[test]
fn ipv6_and_ports_are_kept_as_image_references_write_them() {
    for ok in [
        "[fd00::1]:5000",
        "[::1]",
        "10.0.0.1:80",
        "registry.local",
        "a-b.c:65535",
    ] {
        assert_eq!(NodeHost::parse(ok).unwrap().as_str(), ok);
    }
    let t = hosts(&[req("v6", "[fd00::1]:5000", true, None)]).unwrap();
    let files = render(Runtime::Containerd, &t);
    assert_eq!(files[0].rel, "[fd00::1]:5000/hosts.toml");
    assert!(
        files[0]
            .content
            .contains("server = \"http://[fd00::1]:5000\"")
    );
}

/// Hosts become directory names on every node: nothing that could leave the directory, name
/// containerd's `_default` fallback, or differ from how image references spell the host.
#[test]
fn hosts_that_could_escape_or_mislead_are_refused() {
    for bad in [
        "..",
        ".",
        "../etc",
        "a/../../etc",
        "_default",
        "/etc",
        "a..b",
        "-a.b",
        "Harbor.example.com",
        "harbor.example.com:0",
        "harbor.example.com:65536",
        "harbor.example.com:08443",
        "harbor.example.com:",
        "harbor.example.com:80:80",
        "[fd00::1",
        "[FD00::1]",
        "[fd00:0::1]",
        "[../..]",
        "[fd00::1]x",
        "",
        "a\nb",
        "a b",
    ] {
        assert!(NodeHost::parse(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn a_ca_must_be_pem_certificates_and_nothing_else() {
    let ca = CaBundle::parse(CA.as_bytes()).unwrap();
    assert_eq!(ca.count(), 1);
    // Written again canonically: text around the block is not copied to the nodes.
    let noisy = format!("subject=CN=regops test CA\n{CA}\n# trailing\n");
    assert_eq!(CaBundle::parse(noisy.as_bytes()).unwrap(), ca);
    let two = format!("{CA}{CA}");
    assert_eq!(CaBundle::parse(two.as_bytes()).unwrap().count(), 2);

    let key = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBi7Yt6XLZlUxcbNk0ntT9gbnOUmQ/ymFpFkOSgrS4LN\n-----END PRIVATE KEY-----\n";
    let with_key = format!("{CA}{key}");
    let e = CaBundle::parse(with_key.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("other than CERTIFICATE"), "{e}");
    assert!(!e.contains("MC4CAQAw"), "the error echoes the file: {e}");

    assert!(CaBundle::parse(b"not a certificate").is_err());
    assert!(CaBundle::parse(b"").is_err());
    let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let e = CaBundle::parse(garbage.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("does not parse"), "{e}");

    let big = CA.repeat(NODE_CA_LIMIT / CA.len() + 1);
    let e = CaBundle::parse(big.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("at most 256 KiB"), "{e}");
}

#[test]
fn registries_on_one_host_must_agree() {
    let same = hosts(&[
        req("b", "harbor.example.com/team-b", true, None),
        req("a", "harbor.example.com/team-a", true, None),
    ])
    .unwrap();
    assert_eq!(same.len(), 1);
    assert_eq!(same[0].registries, ["a", "b"]);
    let e = hosts(&[
        req("a", "harbor.example.com/team-a", true, None),
        req("b", "harbor.example.com/team-b", false, Some(CA)),
    ])
    .unwrap_err();
    assert!(matches!(e, NodeTrustError::Conflict { .. }), "{e}");
}

/// Registry names are spec text: in a generated comment they cannot start a new line.
#[test]
fn registry_names_cannot_break_out_of_a_comment() {
    let t = hosts(&[req(
        "x\nserver = \"http://evil\"",
        "harbor.local",
        true,
        None,
    )])
    .unwrap();
    let toml = &render(Runtime::Containerd, &t)[0].content;
    assert_eq!(toml.matches("server =").count(), 1, "{toml}");
}

#[test]
fn runtimes_parse_by_name() {
    for r in Runtime::ALL {
        assert_eq!(r.name().parse::<Runtime>(), Ok(r));
    }
    assert!("cri-o".parse::<Runtime>().is_err());
}

/// registries.yaml read with the schema k3s and RKE2 read it with (rancher/wharfie,
/// `pkg/registries`: `Registry{Mirrors map[string]Mirror "mirrors"; Configs
/// map[string]RegistryConfig "configs"}`, `Mirror{Endpoints []string "endpoint"}`,
/// `RegistryConfig{TLS *TLSConfig "tls"}`, `TLSConfig{CAFile string "ca_file"}`): no key it
/// would ignore, and the values the docs give for plain HTTP and a private CA.
#[test]
fn registries_yaml_has_only_the_keys_k3s_reads() {
    use std::collections::BTreeMap;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Registry {
        mirrors: BTreeMap<String, Mirror>,
        configs: BTreeMap<String, Config>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Mirror {
        endpoint: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        tls: Tls,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Tls {
        ca_file: String,
    }
    for runtime in [Runtime::K3s, Runtime::Rke2] {
        let files = render(runtime, &seeds());
        let yaml = files.iter().find(|f| f.rel == "registries.yaml").unwrap();
        let r: Registry = serde_saphyr::from_str(&yaml.content).unwrap();
        assert_eq!(r.mirrors["192.168.0.99"].endpoint, ["http://192.168.0.99"]);
        let ca = &r.configs["harbor.example.com:8443"].tls.ca_file;
        // The CA file it names is one of the rendered files, at that path on the node.
        assert!(files.iter().any(|f| &f.path(runtime) == ca), "{ca}");
    }
}

fn docs(runtime: Runtime, files: &[NodeFile]) -> Vec<StreamDoc> {
    serde_saphyr::from_multiple(&to_yaml(runtime, files)).unwrap()
}

#[test]
fn the_stream_reads_back_as_the_hosts_it_was_rendered_from() {
    let hosts = seeds();
    let back = from_stream(&docs(
        Runtime::Containerd,
        &render(Runtime::Containerd, &hosts),
    ))
    .unwrap();
    assert_eq!(back.len(), 2);
    for (b, h) in back.iter().zip(&hosts) {
        assert_eq!(
            (&b.host, b.plain_http, &b.ca),
            (&h.host, h.plain_http, &h.ca)
        );
    }
    // Rendering what was read gives the same files, byte for byte.
    let again: Vec<(String, String)> = render(Runtime::Containerd, &back)
        .into_iter()
        .map(|f| (f.rel, f.content))
        .collect();
    let first: Vec<(String, String)> = render(Runtime::Containerd, &hosts)
        .into_iter()
        .map(|f| (f.rel, f.content))
        .collect();
    assert_eq!(again, first);
}

/// Whoever can write the ConfigMap (or the stream) plays the attacker: only a host, a scheme
/// and CA certificates may pass to a node.
#[test]
fn the_stream_refuses_anything_regops_does_not_render() {
    let good = docs(Runtime::Containerd, &render(Runtime::Containerd, &seeds()));
    let toml_of = |d: &[StreamDoc]| {
        d.iter()
            .position(|d| d.path.ends_with("8443/hosts.toml"))
            .unwrap()
    };
    type Forge<'a> = Box<dyn Fn(&mut Vec<StreamDoc>) + 'a>;
    let cases: Vec<(&str, Forge<'_>)> = vec![
        (
            "a CA path of its choosing",
            Box::new(|d: &mut Vec<StreamDoc>| {
                let i = toml_of(d);
                d[i].content = d[i]
                    .content
                    .replace("ca = \"ca.crt\"", "ca = \"/etc/shadow\"");
            }),
        ),
        (
            "a mirror",
            Box::new(|d: &mut Vec<StreamDoc>| {
                let i = toml_of(d);
                d[i].content.push_str(
                    "[host.\"https://evil.example\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
                );
            }),
        ),
        (
            "skip_verify",
            Box::new(|d: &mut Vec<StreamDoc>| {
                let i = toml_of(d);
                d[i].content = d[i]
                    .content
                    .replace("  ca = \"ca.crt\"\n", "  skip_verify = true\n");
            }),
        ),
        (
            "a path out of certs.d",
            Box::new(|d: &mut Vec<StreamDoc>| {
                d[0].path = "/etc/containerd/certs.d/../config.toml".into();
            }),
        ),
        (
            "another file name",
            Box::new(|d: &mut Vec<StreamDoc>| {
                d[0].path = "/etc/containerd/certs.d/192.168.0.99/client.key".into();
            }),
        ),
        (
            "a nested path",
            Box::new(|d: &mut Vec<StreamDoc>| {
                d[0].path = "/etc/containerd/certs.d/a/192.168.0.99/hosts.toml".into();
            }),
        ),
        (
            "_default",
            Box::new(|d: &mut Vec<StreamDoc>| {
                d[0].path = "/etc/containerd/certs.d/_default/hosts.toml".into();
            }),
        ),
        (
            "a private key as CA",
            Box::new(|d: &mut Vec<StreamDoc>| {
                let i = d.iter().position(|d| d.path.ends_with("ca.crt")).unwrap();
                d[i].content = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBi7Yt6XLZlUxcbNk0ntT9gbnOUmQ/ymFpFkOSgrS4LN\n-----END PRIVATE KEY-----\n".into();
            }),
        ),
        (
            "a CA without hosts.toml",
            Box::new(|d: &mut Vec<StreamDoc>| {
                d.retain(|d| !d.path.ends_with("8443/hosts.toml"));
            }),
        ),
        (
            "a hosts.toml naming a CA that is missing",
            Box::new(|d: &mut Vec<StreamDoc>| {
                d.retain(|d| !d.path.ends_with("ca.crt"));
            }),
        ),
        (
            "a file twice",
            Box::new(|d: &mut Vec<StreamDoc>| {
                let first = d[0].clone();
                d.push(first);
            }),
        ),
    ];
    for (what, change) in cases {
        let mut d = good.clone();
        change(&mut d);
        assert!(from_stream(&d).is_err(), "{what} was accepted");
    }
    assert!(from_stream(&good).is_ok());
}

/// containerd's config.toml as containerd 1.6/1.7 (version 2) and 2.x (version 3) write it,
/// with the sections docs/hosts.md ("CRI") names.
#[test]
fn containerds_config_path_is_read_for_both_config_versions() {
    let want = "/etc/containerd/certs.d";
    let v2 = |p: &str| {
        format!(
            "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"{p}\"\n"
        )
    };
    assert_eq!(containerd_config_path(&v2(want), want), ConfigPath::Reads);
    assert_eq!(
        containerd_config_path(&v2("/etc/containerd/certs.d:/etc/docker/certs.d"), want),
        ConfigPath::Reads
    );
    assert_eq!(
        containerd_config_path(&v2("/etc/other"), want),
        ConfigPath::Elsewhere("/etc/other".into())
    );
    assert_eq!(containerd_config_path(&v2(""), want), ConfigPath::Unset);
    // Debian's containerd 1.6 ships no config: `containerd config default` has version 2 and
    // an empty config_path.
    assert_eq!(
        containerd_config_path("version = 2\n", want),
        ConfigPath::Unset
    );
    assert_eq!(containerd_config_path("", want), ConfigPath::Unset);
    // containerd 2.x: the default is certs.d.
    assert_eq!(
        containerd_config_path("version = 3\n", want),
        ConfigPath::Reads
    );
    let v3 =
        "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/x\"\n";
    assert_eq!(
        containerd_config_path(v3, want),
        ConfigPath::Elsewhere("/x".into())
    );
    assert!(matches!(
        containerd_config_path("version = [", want),
        ConfigPath::Unknown(_)
    ));
    assert!(matches!(
        containerd_config_path("version = 9\n", want),
        ConfigPath::Unknown(_)
    ));
}

#[test]
fn crio_certs_d_and_drop_in_follow_containers_image_docs() {
    insta::assert_snapshot!(stream(Runtime::Crio));
}

/// The drop-in read with the schema containers/image reads it with
/// (`pkg/sysregistriesv2/system_registries_v2.go`: `V2RegistriesConf{Registries []Registry
/// "registry"}`, `Registry{Endpoint; ...}`, `Endpoint{Location string "location"; Insecure
/// bool "insecure"}`): no key it would ignore, plain HTTP marked insecure, the CA's host not.
#[test]
fn crio_drop_in_reads_as_registries_conf_v2() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Conf {
        registry: Vec<Registry>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Registry {
        location: String,
        insecure: bool,
    }
    let files = render(Runtime::Crio, &seeds());
    let rels: Vec<&str> = files.iter().map(|f| f.rel.as_str()).collect();
    assert_eq!(
        rels,
        [
            "certs.d/harbor.example.com:8443/ca.crt",
            "registries.conf.d/50-regops-node-trust.conf"
        ]
    );
    let conf: Conf = toml::from_str(&files[1].content).unwrap();
    assert_eq!(conf.registry.len(), 1);
    assert_eq!(conf.registry[0].location, "192.168.0.99");
    assert!(conf.registry[0].insecure);
    assert_eq!(
        files[1].path(Runtime::Crio),
        "/etc/containers/registries.conf.d/50-regops-node-trust.conf"
    );
    // The CA alone: no drop-in, nothing made insecure.
    let ca_only: Vec<TrustedHost> = seeds().into_iter().filter(|t| !t.plain_http).collect();
    let files = render(Runtime::Crio, &ca_only);
    assert_eq!(files.len(), 1);
    assert!(files[0].content.starts_with("-----BEGIN CERTIFICATE-----"));
}
