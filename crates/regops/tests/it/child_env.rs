//! A kubeconfig's `exec` plugin (the operator's kubeconfig: `aws eks get-token`,
//! `gke-gcloud-auth-plugin`, `kubelogin`) runs with an allowlist of regops' environment: what a
//! program needs to run, its own cloud's variables, what the kubeconfig's `exec.env` sets and
//! `KUBERNETES_EXEC_INFO`; never the CI job's tokens (issue 38). The plugins here dump their
//! environment and answer the test server's token. (Credential helpers: tests/helper.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::path::Path;

use common::{regops, run};

/// What the CI job's environment holds that no plugin needs.
const JOB_SECRETS: &[(&str, &str)] = &[
    ("REGOPS_AGE_KEY", "AGE-SECRET-KEY-1INHERITED"),
    ("SOPS_AGE_KEY", "AGE-SECRET-KEY-1SOPS-INHERITED"),
    ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "oidc-INHERITED"),
    ("GITHUB_TOKEN", "ghs_INHERITED"),
    ("ACTIONS_RUNTIME_TOKEN", "runtime-INHERITED"),
    ("CI_JOB_TOKEN", "glcbt-INHERITED"),
    ("VAULT_TOKEN", "hvs.INHERITED"),
    ("KUBECONFIG_DATA", "apiVersion-INHERITED"),
    ("IDENTITY_HEADER", "msi-header-INHERITED"),
    ("MSI_SECRET", "msi-secret-INHERITED"),
    ("GITLAB_FOO_TOKEN", "glpat-INHERITED"),
];

/// What every plugin gets.
const BASE: &[(&str, &str)] = &[
    ("HOME", "/home/ci"),
    ("USER", "ci"),
    ("LANG", "C.UTF-8"),
    ("LC_ALL", "C.UTF-8"),
    ("TZ", "UTC"),
    ("TMPDIR", "/tmp"),
    ("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
    ("SSL_CERT_DIR", "/etc/ssl/certs"),
    // HTTPS_PROXY would be regops' own way to the cluster too (kube reads it): the helpers'
    // test has it.
    ("HTTP_PROXY", "http://proxy.example:3128"),
    ("http_proxy", "http://proxy.example:3128"),
    ("NO_PROXY", "127.0.0.1,localhost"),
    ("no_proxy", "127.0.0.1,localhost"),
];

/// Each cloud's credentials, in the job's environment.
const CLOUD_VARS: &[(&str, &str)] = &[
    ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/eks-CLOUD"),
    ("AWS_SECRET_ACCESS_KEY", "aws-secret-CLOUD"),
    ("GOOGLE_APPLICATION_CREDENTIALS", "/keys/google-CLOUD.json"),
    ("CLOUDSDK_CONFIG", "/keys/gcloud-CLOUD"),
    ("AZURE_CLIENT_SECRET", "azure-secret-CLOUD"),
];

/// A plugin named `name` in `dir` that writes its environment to `dump` and answers `token`.
fn plugin(dir: &Path, name: &str, dump: &Path, token: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nenv > '{}'\nprintf '%s' '{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}'\n",
            dump.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn an_exec_plugin_gets_the_allowlist_its_cloud_and_its_own_env_only() {
    let server = kube_test_server::TestServer::start(kube_test_server::Config {
        tls: true,
        ..kube_test_server::Config::default()
    })
    .unwrap();
    let token = server.token().unwrap().to_string();
    let ca = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(server.ca_pem().unwrap())
    };
    // (the plugin's file name, the cloud prefixes it keeps)
    for (name, keeps) in [
        ("aws", &["AWS_"][..]),
        ("gke-gcloud-auth-plugin", &["GOOGLE_", "CLOUDSDK_"][..]),
        ("kubelogin", &["AZURE_"][..]),
        ("token-plugin", &[][..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("env");
        let program = plugin(dir.path(), name, &dump, &token);
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: {}
    certificate-authority-data: {ca}
contexts:
- name: ctx
  context: {{ cluster: c, user: u }}
current-context: ctx
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: {}
      args: [eks, get-token]
      interactiveMode: Never
      env:
      - {{ name: FROM_KUBECONFIG, value: set-by-the-kubeconfig }}
      - {{ name: GITHUB_TOKEN, value: the-kubeconfig-own }}
      - {{ name: VAULT_TOKEN }}
",
                server.url(),
                program.display()
            ),
        )
        .unwrap();
        let mut c = regops();
        c.args(["cluster-info", "--kubeconfig"])
            .arg(&kubeconfig)
            .env("PATH", "/usr/bin:/bin");
        for (k, v) in JOB_SECRETS.iter().chain(BASE).chain(CLOUD_VARS) {
            c.env(k, v);
        }
        let r = run(&mut c);
        assert_eq!(r.code, 0, "{name}: {}", r.transcript());
        let env = std::fs::read_to_string(&dump).unwrap();
        let value = |var: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{var}=")))
                .map(str::to_string)
        };
        for (var, _) in JOB_SECRETS.iter().filter(|(k, _)| *k != "GITHUB_TOKEN") {
            assert_eq!(value(var), None, "{var} reached {name}:\n{env}");
        }
        assert!(!env.contains("INHERITED"), "{name}: {env}");
        // What the kubeconfig sets is the kubeconfig's, not the job's; a name without a
        // value (VAULT_TOKEN above) sets nothing, and keeps nothing of the job's.
        assert_eq!(value("GITHUB_TOKEN").as_deref(), Some("the-kubeconfig-own"));
        assert_eq!(
            value("FROM_KUBECONFIG").as_deref(),
            Some("set-by-the-kubeconfig")
        );
        assert!(
            value("KUBERNETES_EXEC_INFO").is_some_and(|v| v.contains("ExecCredential")),
            "{env}"
        );
        assert_eq!(value("PATH").as_deref(), Some("/usr/bin:/bin"));
        for (var, v) in BASE {
            assert_eq!(value(var).as_deref(), Some(*v), "{name} and {var}:\n{env}");
        }
        for (var, v) in CLOUD_VARS {
            let own = keeps.iter().any(|p| var.starts_with(p));
            let got = value(var);
            assert_eq!(got.is_some(), own, "{name} and {var}:\n{env}");
            assert!(got.is_none_or(|g| g == *v));
        }
    }
}
