//! The spec is untrusted input: each test plays a pull request's author against a CI job that
//! holds the age identity (`REGOPS_AGE_KEY`), cloud credentials and a kubeconfig, and asserts
//! the door stays shut — nothing run, nothing read, nothing sent — and that the flag the error
//! names opens it for a spec whose authors are all trusted.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::io::Read as _;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{regops, run};

/// What the CI job holds: an age identity and cloud keys, all of which an attacker wants.
const AGE_KEY: &str = "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSUZE4W9";
const AWS_KEY: &str = "aws-secret-MARKER";

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// A spec with one pull secret whose credential's password is `password`, and `extra` at the
/// end (a `clusters:` section).
fn spec(password: &str, extra: &str) -> String {
    format!(
        "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: {{ name: attack }}
registries:
  r: {{ server: r.example.com, credential: c }}
credentials:
  c: {{ username: u, password: {password} }}
scopes:
  s: {{ namespaces: [web] }}
pullSecrets:
  pull: {{ registries: [r], scope: s }}
{extra}"
    )
}

/// regops with the CI job's secrets in its environment.
fn in_ci() -> std::process::Command {
    let mut c = regops();
    c.env("REGOPS_AGE_KEY", AGE_KEY)
        .env("AWS_SECRET_ACCESS_KEY", AWS_KEY)
        .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
        .env("PATH", "/usr/bin:/bin");
    c
}

/// Whether stderr says `text`, whatever miette's wrapping did to spaces.
fn says(r: &common::Run, text: &str) -> bool {
    let squash = |s: &str| s.split_whitespace().collect::<String>().replace('│', "");
    squash(&r.stderr).contains(&squash(text))
}

fn assert_no_secret(r: &common::Run) {
    for s in [AGE_KEY, AWS_KEY, "OUTSIDE-MARKER", "GIT-TOKEN-MARKER"] {
        assert!(
            !r.stdout.contains(s) && !r.stderr.contains(s),
            "{s} leaked:\n{}",
            r.transcript()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A kubeconfig named by the spec runs a program.

/// A kubeconfig for `server` whose user is `user` (YAML under `user:`) and whose cluster has
/// `cluster_extra`.
fn kubeconfig(server: &kube_test_server::TestServer, user: &str, cluster_extra: &str) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(server.ca_pem().unwrap());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: {}
    certificate-authority-data: {ca}
{cluster_extra}contexts:
- name: evil
  context: {{ cluster: c, user: u }}
current-context: evil
users:
- name: u
  user:
{user}",
        server.url()
    )
}

#[test]
fn a_kubeconfig_the_spec_names_runs_no_program_reads_no_file_and_skips_no_tls_check() {
    let server = kube_test_server::TestServer::start(kube_test_server::Config {
        tls: true,
        ..kube_test_server::Config::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let token = server.token().unwrap();
    let credential = format!(
        "{{\\\"apiVersion\\\":\\\"client.authentication.k8s.io/v1beta1\\\",\\\"kind\\\":\\\"ExecCredential\\\",\\\"status\\\":{{\\\"token\\\":\\\"{token}\\\"}}}}"
    );
    let script = format!("env > {}; printf '%s' \"{credential}\"", marker.display());
    let exec = format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: /bin/sh\n      args: [\"-c\", {script:?}]\n      interactiveMode: Never\n"
    );
    let provider = format!(
        "    auth-provider:\n      name: gcp\n      config:\n        cmd-path: /bin/sh\n        cmd-args: \"-c env>{}\"\n",
        marker.display()
    );
    let token_file = "    tokenFile: /etc/hostname\n".to_string();
    let plain_token = format!("    token: {token}\n");
    let cases: [(&str, String, &str, &str); 4] = [
        ("exec", exec.clone(), "", "runs a program (exec: `/bin/sh`)"),
        (
            "auth-provider",
            provider,
            "",
            "uses the `gcp` auth-provider",
        ),
        (
            "insecure",
            plain_token,
            "    insecure-skip-tls-verify: true\n",
            "skips TLS verification",
        ),
        (
            "tokenFile",
            token_file,
            "",
            "its tokenFile `/etc/hostname` leads outside the spec's root",
        ),
    ];
    let spec_path = write(
        dir.path(),
        "regops.yaml",
        &spec(
            "{ env: REGOPS_CRED_C }",
            "clusters:\n  evil: { kubeconfig: evil.kubeconfig, context: evil }\n",
        ),
    );
    for (what, user, cluster_extra, why) in &cases {
        write(
            dir.path(),
            "evil.kubeconfig",
            &kubeconfig(&server, user, cluster_extra),
        );
        let r = run(in_ci()
            .args(["plan", "--kubeconfig", "/dev/null", "-f"])
            .arg(&spec_path)
            .env("REGOPS_CRED_C", "pw"));
        assert_eq!(r.code, 1, "{what}: {}", r.transcript());
        let err = r.flat_stderr();
        assert!(
            says(&r, "the kubeconfig of cluster `evil` may not be used") && says(&r, why),
            "{what}: {err}"
        );
        assert!(
            says(&r, "--allow-kubeconfig-exec") || *what == "tokenFile",
            "{err}"
        );
        assert!(!marker.exists(), "{what}: the plugin ran");
        assert!(server.log().is_empty(), "{what}: the cluster was contacted");
        assert_no_secret(&r);
    }

    // Allowed by the operator, the plugin runs, without the job's keys in its environment.
    write(
        dir.path(),
        "evil.kubeconfig",
        &kubeconfig(&server, &exec, ""),
    );
    let r = run(in_ci()
        .args(["plan", "--allow-kubeconfig-exec", "-f"])
        .arg(&spec_path)
        .env("REGOPS_CRED_C", "pw"));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(!server.log().is_empty(), "planned with the plugin's token");
    let env = std::fs::read_to_string(&marker).unwrap();
    assert!(env.contains("PATH="), "{env}");
    for name in ["REGOPS_AGE_KEY", "REGOPS_CRED_C", "AWS_SECRET_ACCESS_KEY"] {
        assert!(!env.contains(name), "{name} reached the plugin:\n{env}");
    }
}

/// A kubeconfig the spec names may not point at a plain-HTTP server, loopback included: its
/// token would cross in clear, and whatever answers there plays the cluster. The test server
/// serves TLS; the flag that lets it skip TLS checks lets it use plain HTTP too.
#[test]
fn a_kubeconfig_the_spec_names_may_not_speak_plain_http() {
    let server = kube_test_server::TestServer::start(kube_test_server::Config::default()).unwrap();
    assert!(server.url().starts_with("http://"), "{}", server.url());
    let dir = tempfile::tempdir().unwrap();
    let spec_path = write(
        dir.path(),
        "regops.yaml",
        &spec(
            "{ env: REGOPS_CRED_C }",
            "clusters:\n  evil: { kubeconfig: evil.kubeconfig, context: kube-test-server }\n",
        ),
    );
    for scheme in ["http://", "HTTP://"] {
        let text = server
            .kubeconfig()
            .replace("http://", scheme)
            .replace("user:\n    {}\n", "user:\n    token: TOKEN-MARKER\n");
        write(dir.path(), "evil.kubeconfig", &text);
        let r = run(in_ci()
            .args(["plan", "--kubeconfig", "/dev/null", "-f"])
            .arg(&spec_path)
            .env("REGOPS_CRED_C", "pw"));
        assert_eq!(r.code, 1, "{scheme}: {}", r.transcript());
        assert!(
            says(&r, "the kubeconfig of cluster `evil` may not be used")
                && says(&r, "is served over plain HTTP")
                && says(&r, "--allow-kubeconfig-exec"),
            "{}",
            r.stderr
        );
        assert!(server.log().is_empty(), "the cluster was contacted");
        assert!(!r.stderr.contains("TOKEN-MARKER"), "{}", r.stderr);
        assert_no_secret(&r);
    }
    // Allowed by the operator, it is used.
    let r = run(in_ci()
        .args(["plan", "--allow-kubeconfig-exec", "-f"])
        .arg(&spec_path)
        .env("REGOPS_CRED_C", "pw"));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(!server.log().is_empty(), "planned over plain HTTP");
}

#[test]
fn a_kubeconfig_outside_the_root_or_in_home_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    write(
        dir.path(),
        "stolen.kubeconfig",
        "apiVersion: v1\nkind: Config\n",
    );
    for (path, why) in [
        ("../stolen.kubeconfig", "outside the spec's root"),
        ("~/.kube/config", "is in the home directory"),
    ] {
        let s = write(
            &root,
            "regops.yaml",
            &spec(
                "{ env: REGOPS_CRED_C }",
                &format!("clusters:\n  evil: {{ kubeconfig: \"{path}\" }}\n"),
            ),
        );
        let r = run(in_ci().args(["plan", "-f"]).arg(&s));
        assert_eq!(r.code, 1, "{}", r.transcript());
        assert!(
            says(&r, why) && says(&r, "--load-restrictor none"),
            "{}",
            r.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The spec reads a file or a variable into a Secret.

#[test]
fn files_outside_the_root_directly_through_dots_or_a_symlink_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    write(dir.path(), "outside.txt", "OUTSIDE-MARKER");
    write(&root, "inside.txt", "inside-password");
    std::os::unix::fs::symlink(dir.path().join("outside.txt"), root.join("link.txt")).unwrap();
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::os::unix::fs::symlink(dir.path(), root.join("sub/up")).unwrap();
    let render = |password: &str, extra: &[&str]| {
        let s = write(&root, "regops.yaml", &spec(password, ""));
        run(in_ci()
            .args(["render", "--show-secrets", "-f"])
            .arg(&s)
            .args(extra))
    };
    std::os::unix::fs::symlink("/proc/self/environ", root.join("envlink")).unwrap();
    for password in [
        "{ file: /etc/hostname }",
        "{ file: ../outside.txt }",
        "{ file: link.txt }",
        "{ file: \"link.txt/\" }",
        "{ file: \"link.txt/.\" }",
        "{ file: \"link.txt//\" }",
        "{ file: \"envlink/\" }",
        "{ file: sub/up/outside.txt }",
        "{ file: sub/../../outside.txt }",
        "{ ageFile: ../outside.txt }",
        "{ ageFile: \"link.txt/\" }",
    ] {
        let r = render(password, &[]);
        assert_eq!(r.code, 1, "{password}: {}", r.transcript());
        assert!(r.stdout.is_empty(), "{password}: rendered {}", r.stdout);
        assert!(
            says(&r, "outside the spec's root") && says(&r, "--load-restrictor none"),
            "{password}: {}",
            r.stderr
        );
        assert_no_secret(&r);
    }
    // Inside the root, as before.
    let r = render("{ file: inside.txt }", &[]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    // The operator can widen it; the file is then read as it was before.
    let r = render("{ file: ../outside.txt }", &["--load-restrictor", "none"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stdout.contains(".dockerconfigjson"));
}

#[test]
fn a_ca_file_outside_the_root_is_refused_and_one_that_never_ends_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(
        dir.path(),
        "regops.yaml",
        "apiVersion: regops.dev/v1
kind: RegistryConfig
registries:
  r: { server: \"127.0.0.1:1\", credential: c, caFile: /dev/zero }
credentials:
  c: { username: u, password: { env: REGOPS_CRED_C } }
",
    );
    let r = run(in_ci()
        .args(["validate", "-f"])
        .arg(&s)
        .env("REGOPS_CRED_C", "pw"));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(
            &r,
            "the CA file of registry `r`: `/dev/zero` leads outside the spec's root"
        ),
        "{}",
        r.stderr
    );
    // Widened, /dev/zero is still not read: it is not a regular file.
    let r = run(in_ci()
        .args(["validate", "--load-restrictor", "none", "-f"])
        .arg(&s)
        .env("REGOPS_CRED_C", "pw"));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.stdout
            .contains("cannot read CA file /dev/zero: it is not a regular file"),
        "{}",
        r.transcript()
    );
}

#[test]
fn a_spec_directory_file_that_links_outside_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs");
    write(
        dir.path(),
        "kubeconfig.yaml",
        "apiVersion: v1\nusers:\n- name: admin\n  user: { token: OUTSIDE-MARKER }\n",
    );
    write(&specs, "a.yaml", &spec("{ env: REGOPS_CRED_C }", ""));
    std::os::unix::fs::symlink(dir.path().join("kubeconfig.yaml"), specs.join("b.yaml")).unwrap();
    let r = run(in_ci().args(["check", "--no-decrypt", "-f"]).arg(&specs));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(&r, "spec file `b.yaml` leads outside the spec's root"),
        "{}",
        r.stderr
    );
    assert_no_secret(&r);
}

/// The `-f` path itself is the pull request's: a `regops.yaml` or a `specs/` committed as a
/// symlink out of the checkout is not read (nor quoted in a diagnostic).
#[test]
fn a_spec_file_or_directory_that_is_a_symlink_out_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    write(
        &home,
        "credentials.yaml",
        "aws_secret_access_key: OUTSIDE-MARKER\n",
    );
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::os::unix::fs::symlink(home.join("credentials.yaml"), repo.join("regops.yaml")).unwrap();
    std::os::unix::fs::symlink(&home, repo.join("specs")).unwrap();
    for f in ["regops.yaml", "specs"] {
        let r = run(in_ci()
            .current_dir(&repo)
            .args(["check", "--no-decrypt", "-f", f]));
        assert_eq!(r.code, 1, "{f}: {}", r.transcript());
        assert!(
            says(
                &r,
                &format!("spec file `{f}` leads outside the spec's root")
            ),
            "{f}: {}",
            r.stderr
        );
        assert_no_secret(&r);
    }
    // A link inside the directory (a ConfigMap mount's `..data/regops.yaml`) is followed.
    write(
        &repo,
        "..data/regops.yaml",
        &spec("{ env: REGOPS_CRED_C }", ""),
    );
    std::fs::remove_file(repo.join("regops.yaml")).unwrap();
    std::os::unix::fs::symlink("..data/regops.yaml", repo.join("regops.yaml")).unwrap();
    let r = run(in_ci()
        .current_dir(&repo)
        .args(["check", "--no-decrypt", "-f", "regops.yaml"]));
    assert_eq!(r.code, 0, "{}", r.transcript());
}

/// Inside the root but written by the CI, not the pull request: actions/checkout keeps the
/// job's token in `.git/config`.
#[test]
fn files_in_a_git_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        ".git/config",
        "[http \"https://github.com/\"]\n\textraheader = AUTHORIZATION: basic GIT-TOKEN-MARKER\n",
    );
    let s = write(
        dir.path(),
        "regops.yaml",
        &spec("{ file: .git/config }", ""),
    );
    let r = run(in_ci().args(["render", "--show-secrets", "-f"]).arg(&s));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(&r, "`.git/config` is inside a `.git` directory"),
        "{}",
        r.stderr
    );
    assert_no_secret(&r);
}

#[test]
fn env_reads_only_allowed_variables_and_never_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let render = |password: &str, extra: &[&str]| {
        let s = write(dir.path(), "regops.yaml", &spec(password, ""));
        run(in_ci()
            .args(["render", "--show-secrets", "-f"])
            .arg(&s)
            .args(extra)
            .env("DOCKERHUB_TOKEN", "hub-token")
            .env("KUBECONFIG", "/home/ci/.kube/config"))
    };
    for (var, extra) in [
        ("REGOPS_AGE_KEY", &[][..]),
        ("REGOPS_AGE_KEY", &["--allow-env", "REGOPS_"][..]),
        ("AWS_SECRET_ACCESS_KEY", &["--allow-env", "AWS_"][..]),
        ("KUBECONFIG", &["--allow-env", "KUBE"][..]),
        ("GITHUB_TOKEN", &["--allow-env", "GITHUB_"][..]),
        ("ARM_CLIENT_SECRET", &["--allow-env", "ARM_"][..]),
        ("DOCKERHUB_TOKEN", &[][..]),
    ] {
        let r = render(&format!("{{ env: {var} }}"), extra);
        assert_eq!(r.code, 1, "{var} {extra:?}: {}", r.transcript());
        assert!(r.stdout.is_empty());
        assert!(
            says(&r, &format!("credential `c` may not read `${var}`")),
            "{}",
            r.stderr
        );
        assert_no_secret(&r);
    }
    let r = render("{ env: DOCKERHUB_TOKEN }", &[]);
    assert!(
        says(&r, "--allow-env DOCKERHUB_TOKEN"),
        "the error names the flag: {}",
        r.stderr
    );
    let r = render("{ env: DOCKERHUB_TOKEN }", &["--allow-env", "DOCKERHUB_"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
}

/// A CI's own credentials stay out of reach whatever prefix `--allow-env` widens to: GitLab's
/// job JWT under `CI_`, the gh CLI's and a GitLab bot's token under `G`, and so on.
#[test]
fn allow_env_never_reaches_the_ci_s_own_credentials() {
    let dir = tempfile::tempdir().unwrap();
    for (var, prefix, rule) in [
        ("CI_JOB_JWT", "CI_", "CI_JOB_JWT*"),
        ("CI_JOB_JWT_V2", "CI_", "CI_JOB_JWT*"),
        ("CI_REGISTRY_PASSWORD", "CI_", "CI_REGISTRY_PASSWORD*"),
        ("CI_DEPLOY_PASSWORD", "CI_", "CI_DEPLOY_PASSWORD*"),
        ("GH_TOKEN", "G", "GH_TOKEN*"),
        ("GITLAB_NOTE_TOKEN", "G", "GITLAB_*TOKEN*"),
        ("RUNNER_TOKEN", "RUNNER_", "RUNNER_*TOKEN*"),
        (
            "BUILDKITE_AGENT_ACCESS_TOKEN",
            "BUILDKITE_",
            "BUILDKITE_*TOKEN*",
        ),
        ("CIRCLE_OIDC_TOKEN", "C", "CIRCLE_*TOKEN*"),
        ("CI_REPOSITORY_URL", "CI_", "CI_REPOSITORY_URL*"),
        ("SYSTEM_ACCESSTOKEN", "S", "SYSTEM_ACCESSTOKEN*"),
        ("DRONE_NETRC_PASSWORD", "D", "DRONE_*PASSWORD*"),
    ] {
        let s = write(
            dir.path(),
            "regops.yaml",
            &spec(&format!("{{ env: {var} }}"), ""),
        );
        let r = run(in_ci()
            .args(["render", "--show-secrets", "--allow-env", prefix, "-f"])
            .arg(&s)
            .env(var, "CI-SECRET-MARKER"));
        assert_eq!(r.code, 1, "{var} under {prefix}: {}", r.transcript());
        assert!(
            says(
                &r,
                &format!("credential `c` may not read `${var}`: `{rule}` holds")
            ) && says(&r, "which no spec may read"),
            "{var}: {}",
            r.stderr
        );
        assert!(
            !r.stdout.contains("CI-SECRET-MARKER") && !r.stderr.contains("CI-SECRET-MARKER"),
            "{}",
            r.transcript()
        );
    }
    // A readable variable that carries a refused one's value (a copy, or GitLab's clone URL
    // holding the job token under another name) is refused, naming the one it carries.
    let s = write(
        dir.path(),
        "regops.yaml",
        &spec("{ env: CI_MIRROR_URL }", ""),
    );
    let r = run(in_ci()
        .args(["render", "--show-secrets", "--allow-env", "CI_", "-f"])
        .arg(&s)
        .env("CI_JOB_TOKEN", "glcbt-JOBTOKEN-MARKER")
        .env(
            "CI_MIRROR_URL",
            "https://gitlab-ci-token:glcbt-JOBTOKEN-MARKER@gitlab.example.com/g/p.git",
        ));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(&r, "it holds the value of `$CI_JOB_TOKEN`"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("JOBTOKEN-MARKER") && !r.stderr.contains("JOBTOKEN-MARKER"));
    // What the prefix is for still reads.
    let s = write(dir.path(), "regops.yaml", &spec("{ env: CI_HUB_PULL }", ""));
    let r = run(in_ci()
        .args(["render", "--allow-env", "CI_", "-f"])
        .arg(&s)
        .env("CI_HUB_PULL", "pw"));
    assert_eq!(r.code, 0, "{}", r.transcript());
}

// ---------------------------------------------------------------------------------------------
// 3. Minted tokens go to a host the spec picks.

/// A listener on 127.0.0.2 that counts the connections it gets (and answers none).
struct Attacker {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Attacker {
    fn start() -> Attacker {
        let listener = TcpListener::bind("127.0.0.2:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                seen.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut s) = stream {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf);
                }
            }
        });
        Attacker { port, connections }
    }

    fn addr(&self) -> String {
        format!("127.0.0.2:{}", self.port)
    }
}

#[test]
fn minted_tokens_are_sent_only_to_their_clouds_registries() {
    let attacker = Attacker::start();
    let dir = tempfile::tempdir().unwrap();
    let token_file = write(dir.path(), "federated", "federated-token");
    let state = write(
        dir.path(),
        "state.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: { name: web }\n",
    );
    let url = format!("http://{}", attacker.addr());
    for (password, server) in [
        (
            "{ acr: { tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47 } }",
            format!("\"{}\", insecure: true", attacker.addr()),
        ),
        ("{ acr: {} }", "evil.example.com".to_string()),
        ("{ gcp: {} }", format!("\"{}\"", attacker.addr())),
        ("{ gcp: {} }", "gcr.io.evil.example.com".to_string()),
        (
            "{ ecr: { region: eu-west-1 } }",
            format!("\"{}\"", attacker.addr()),
        ),
        (
            "{ ecr: { region: eu-west-1 } }",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example.com".to_string(),
        ),
    ] {
        let s = write(
            dir.path(),
            "regops.yaml",
            &format!(
                "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: {{ name: attack }}
registries:
  r: {{ server: {server}, credential: c }}
credentials:
  c: {{ password: {password} }}
scopes:
  s: {{ namespaces: [web] }}
pullSecrets:
  pull: {{ registries: [r], scope: s }}
"
            ),
        );
        for args in [
            &["validate"][..],
            &["render", "--show-secrets"][..],
            &["plan", "--live-state", state.to_str().unwrap()][..],
        ] {
            let r = run(in_ci()
                .args(args)
                .arg("-f")
                .arg(&s)
                .env("AZURE_AUTHORITY_HOST", &url)
                .env("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47")
                .env("AZURE_CLIENT_ID", "8f4a1e02-5b1c-4a8e-9d3f-0c2b7e6a9d11")
                .env("AZURE_FEDERATED_TOKEN_FILE", &token_file)
                .env("AWS_ENDPOINT_URL", &url)
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("GCE_METADATA_HOST", attacker.addr()));
            assert_eq!(
                r.code,
                1,
                "{password} {server} {args:?}: {}",
                r.transcript()
            );
            assert!(
                says(&r, "would receive credential `c`'s minted token")
                    && says(&r, "--allow-minted-host"),
                "{args:?}: {}",
                r.stderr
            );
            assert_no_secret(&r);
        }
    }
    assert_eq!(
        attacker.connections.load(Ordering::SeqCst),
        0,
        "the attacker's listener was contacted"
    );
}

#[test]
fn a_minted_credential_on_a_plain_http_registry_is_refused_even_on_an_allowed_host() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(
        dir.path(),
        "regops.yaml",
        "apiVersion: regops.dev/v1
kind: RegistryConfig
registries:
  r: { server: myregistry.azurecr.io, credential: c, insecure: true }
  mirror: { server: \"mirror.example.com\", credential: m, insecure: true }
credentials:
  c: { password: { acr: {} } }
  m: { password: { acr: {} } }
",
    );
    let r = run(in_ci()
        .args([
            "check",
            "--no-decrypt",
            "--allow-minted-host",
            "mirror.example.com",
            "-f",
        ])
        .arg(&s));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        says(
            &r,
            "registry `r` is plain HTTP, and credential `c`'s minted token would cross the network in clear"
        ) && says(&r, "registry `mirror` is plain HTTP, and credential `m`'s"),
        "{}",
        r.stderr
    );
}

#[test]
fn cloud_registries_of_every_partition_pass_the_checks() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(
        dir.path(),
        "regops.yaml",
        "apiVersion: regops.dev/v1
kind: RegistryConfig
registries:
  ecr: { server: 123456789012.dkr.ecr.eu-west-1.amazonaws.com, credential: aws }
  ecr-cn: { server: 123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn, credential: aws-cn }
  gar: { server: europe-docker.pkg.dev/project/repo, credential: google }
  gcr: { server: eu.gcr.io, credential: google }
  acr: { server: team.azurecr.io, credential: azure }
  acr-cn: { server: team.azurecr.cn, credential: azure-cn }
credentials:
  aws: { password: { ecr: { region: eu-west-1 } } }
  aws-cn: { password: { ecr: { region: cn-north-1 } } }
  google: { password: { gcp: {} } }
  azure: { password: { acr: {} } }
  azure-cn: { password: { acr: {} } }
",
    );
    let r = run(in_ci().args(["check", "--no-decrypt", "-f"]).arg(&s));
    assert_eq!(r.code, 0, "{}", r.transcript());
}

// ---------------------------------------------------------------------------------------------
// Plain-HTTP registries are said, in check and plan.

#[test]
fn a_plain_http_registry_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(
        dir.path(),
        "regops.yaml",
        &spec("{ env: REGOPS_CRED_C }", "").replace(
            "{ server: r.example.com, credential: c }",
            "{ server: \"harbor.lab:8080\", credential: c, insecure: true }",
        ),
    );
    let state = write(
        dir.path(),
        "state.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: { name: web }\n",
    );
    for args in [
        &["check", "--no-decrypt"][..],
        &["plan", "--live-state", state.to_str().unwrap()][..],
    ] {
        let r = run(in_ci()
            .args(args)
            .arg("-f")
            .arg(&s)
            .env("REGOPS_CRED_C", "pw"));
        assert!(r.code == 0 || r.code == 2, "{}", r.transcript());
        assert!(
            says(
                &r,
                "registry `r` is plain HTTP: credential `c` crosses the network in clear to harbor.lab:8080"
            ),
            "{args:?}: {}",
            r.stderr
        );
    }
}
