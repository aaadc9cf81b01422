//! The environment a program regops starts gets: docker credential helpers and kubeconfig
//! `exec`/`auth-provider` plugins get an allowlist of regops' environment, not all of it less
//! a denylist (a CI job's environment holds tokens no list of names can foresee:
//! `GITHUB_TOKEN`, `ACTIONS_RUNTIME_TOKEN`, `CI_JOB_TOKEN`, `VAULT_TOKEN`, `IDENTITY_HEADER`,
//! `MSI_SECRET`, ...). Every child gets what a program needs to run at all ([`BASE`],
//! [`BASE_PREFIXES`]: `PATH`, `HOME`, `USER`, the locale, `TZ`, `TMPDIR`, the CA bundle and the
//! proxies); a program of a cloud also gets that cloud's variables and no other's
//! (`aws eks get-token` and `docker-credential-ecr-login` keep `AWS_*`,
//! `gke-gcloud-auth-plugin` and `docker-credential-gcr` keep `GOOGLE_*` and `CLOUDSDK_*`,
//! `kubelogin` keeps `AZURE_*`), judged by the program's file name. An `exec` plugin also
//! gets what its kubeconfig's `exec.env` sets and `KUBERNETES_EXEC_INFO`, which kube sets.

use std::ffi::OsString;

/// Variables every child gets, by exact name.
pub const BASE: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// Variables every child gets, by prefix (the locale's categories).
pub const BASE_PREFIXES: &[&str] = &["LC_"];

/// Each cloud's variables, and the words in a program's name that mark it as that cloud's.
pub const CLOUDS: &[(&[&str], &[&str])] = &[
    (&["AWS_"], &["aws", "ecr"]),
    (
        &["GOOGLE_", "CLOUDSDK_", "GCE_METADATA"],
        &["gcloud", "gke", "gcr", "google"],
    ),
    (&["AZURE_", "ARM_"], &["azure", "az", "kubelogin", "acr"]),
];

/// What kube sets for an `exec` plugin itself (after regops' list is applied, so it is kept).
pub const EXEC_INFO: &str = "KUBERNETES_EXEC_INFO";

/// Whether `program` (a path or a name) gets `var` from regops' environment.
pub fn passed(program: &str, var: &str) -> bool {
    if BASE.contains(&var) || BASE_PREFIXES.iter().any(|p| var.starts_with(p)) {
        return true;
    }
    let name = std::path::Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let words: Vec<&str> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    CLOUDS.iter().any(|(prefixes, marks)| {
        prefixes.iter().any(|p| var.starts_with(p)) && marks.iter().any(|m| words.contains(m))
    })
}

/// The variables of this process that `program` gets, for a child started with an empty
/// environment (`Command::env_clear`).
pub fn passed_vars(program: &str) -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| k.to_str().is_some_and(|k| passed(program, k)))
        .collect()
}

/// The names of this process' variables that `program` does not get and `keep` does not name:
/// what kube's `drop_env` (and an auth-provider's `cmd-drop-env`) removes, kube offering no
/// way to start a plugin with an empty environment. A name that is not UTF-8 cannot be given
/// to kube, and reaches the plugin (docs/security.md).
pub fn dropped_vars(program: &str, keep: &[&str]) -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| !passed(program, k) && !keep.contains(&k.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_get_the_base_and_their_own_cloud_only() {
        for var in [
            "REGOPS_AGE_KEY",
            "REGOPS_CRED_HUB",
            "SOPS_AGE_KEY",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "ACTIONS_RUNTIME_TOKEN",
            "GITHUB_TOKEN",
            "CI_JOB_TOKEN",
            "VAULT_TOKEN",
            "KUBECONFIG_DATA",
            "IDENTITY_HEADER",
            "MSI_SECRET",
            "GITLAB_FOO_TOKEN",
            "KUBERNETES_EXEC_INFO",
            "ALL_PROXY",
        ] {
            assert!(!passed("aws", var), "{var}");
            assert!(!passed("/usr/bin/docker-credential-pass", var), "{var}");
            assert!(!passed("gke-gcloud-auth-plugin", var), "{var}");
        }
        for var in [
            "PATH",
            "HOME",
            "USER",
            "LANG",
            "LC_ALL",
            "LC_CTYPE",
            "TZ",
            "TMPDIR",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "HTTPS_PROXY",
            "https_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            assert!(passed("/bin/sh", var), "{var}");
            assert!(passed("docker-credential-ecr-login", var), "{var}");
        }
        assert!(passed("/usr/local/bin/aws", "AWS_PROFILE"));
        assert!(passed("docker-credential-ecr-login", "AWS_ROLE_ARN"));
        assert!(!passed(
            "docker-credential-ecr-login",
            "AZURE_CLIENT_SECRET"
        ));
        assert!(passed(
            "gke-gcloud-auth-plugin",
            "GOOGLE_APPLICATION_CREDENTIALS"
        ));
        assert!(passed("docker-credential-gcr", "CLOUDSDK_CONFIG"));
        assert!(!passed("docker-credential-gcr", "AWS_SECRET_ACCESS_KEY"));
        assert!(passed("kubelogin", "AZURE_CLIENT_SECRET"));
        assert!(!passed("kubelogin", "AWS_SECRET_ACCESS_KEY"));
        // A program of no cloud gets none of them.
        assert!(!passed("/bin/sh", "AWS_SECRET_ACCESS_KEY"));
        assert!(!passed(
            "docker-credential-pass",
            "GOOGLE_APPLICATION_CREDENTIALS"
        ));
        // A name that only contains a cloud's word inside another word is not that cloud's.
        assert!(!passed("/tmp/lawsuit", "AWS_SECRET_ACCESS_KEY"));
        // Case matters as the system's does: `Path` is not `PATH`.
        assert!(!passed("/bin/sh", "Path"));
    }
}
