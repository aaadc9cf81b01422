//! The environment a program regops starts gets: docker credential helpers and kubeconfig
//! `exec`/`auth-provider` plugins run without the variables that hold regops' own keys
//! (`REGOPS_*`, sops' `SOPS_*`), without the CI's identity-token request, and without any
//! cloud's credentials but those of the cloud the program is for (`aws eks get-token` keeps
//! `AWS_*`, `gke-gcloud-auth-plugin` keeps `GOOGLE_*` and `CLOUDSDK_*`, `kubelogin` keeps
//! `AZURE_*`), judged by the program's file name.

/// Prefixes every child loses.
const ALWAYS: &[&str] = &["REGOPS_", "SOPS_", "ACTIONS_ID_TOKEN_REQUEST_"];

/// Each cloud's variables, and the words in a program's name that mark it as that cloud's.
const CLOUDS: &[(&[&str], &[&str])] = &[
    (&["AWS_"], &["aws", "ecr"]),
    (
        &["GOOGLE_", "CLOUDSDK_", "GCE_METADATA"],
        &["gcloud", "gke", "gcr", "google"],
    ),
    (&["AZURE_", "ARM_"], &["azure", "az", "kubelogin", "acr"]),
];

/// Whether `var` is withheld from `program` (a path or a name).
pub fn withheld(program: &str, var: &str) -> bool {
    if ALWAYS.iter().any(|p| var.starts_with(p)) {
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
        prefixes.iter().any(|p| var.starts_with(p)) && !marks.iter().any(|m| words.contains(m))
    })
}

/// The names of the variables of this process that `program` does not get.
pub fn withheld_vars(program: &str) -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| withheld(program, k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_always_withheld_and_clouds_kept_only_for_their_own_programs() {
        for var in [
            "REGOPS_AGE_KEY",
            "REGOPS_CRED_HUB",
            "SOPS_AGE_KEY",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        ] {
            assert!(withheld("aws", var), "{var}");
            assert!(withheld("/usr/bin/docker-credential-pass", var), "{var}");
        }
        assert!(!withheld("/usr/local/bin/aws", "AWS_PROFILE"));
        assert!(!withheld("docker-credential-ecr-login", "AWS_ROLE_ARN"));
        assert!(withheld(
            "docker-credential-ecr-login",
            "AZURE_CLIENT_SECRET"
        ));
        assert!(!withheld(
            "gke-gcloud-auth-plugin",
            "GOOGLE_APPLICATION_CREDENTIALS"
        ));
        assert!(!withheld("kubelogin", "AZURE_CLIENT_SECRET"));
        assert!(withheld("kubelogin", "AWS_SECRET_ACCESS_KEY"));
        // A program of no cloud gets none of them; other variables pass.
        assert!(withheld("/bin/sh", "AWS_SECRET_ACCESS_KEY"));
        assert!(withheld(
            "docker-credential-pass",
            "GOOGLE_APPLICATION_CREDENTIALS"
        ));
        assert!(!withheld("/bin/sh", "PATH"));
        assert!(!withheld("docker-credential-pass", "HOME"));
        // A name that only contains a cloud's word inside another word is not that cloud's.
        assert!(withheld("/tmp/lawsuit", "AWS_SECRET_ACCESS_KEY"));
    }
}
