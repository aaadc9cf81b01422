//! What a spec may reach. The spec, and every file it names, is written by whoever opens a pull
//! request, so it is untrusted input; the command line, the environment and the operator's own
//! kubeconfig are trusted. This module holds the rules that follow from that boundary, as
//! kustomize's load restrictor does for a kustomization (`LoadRestrictionsRootOnly` unless
//! `--load-restrictor LoadRestrictionsNone`) and Helm's `.Files` does for a chart:
//!
//! - every path a spec names (`file:`, `ageFile:`, `caFile:`, a cluster's `kubeconfig:`)
//!   resolves, symlinks followed, inside the spec's root ([`confine`]), unless the load
//!   restrictor is `none`;
//! - `env:` reads only variables with an allowed prefix (`REGOPS_CRED_` unless widened), and
//!   never the ones regops itself, the cloud SDKs and the CI systems keep keys and tokens in
//!   ([`env_refusal`], [`refused_env_rule`]);
//! - a minted token is sent only to its own cloud's registries ([`minted_host_refusal`]);
//! - a secret manager (`awsSecretsManager:`, `vault:`) is read only for the secrets the
//!   operator allows with `--allow-secret KIND:PATTERN` ([`secret_refusal`]): none by default.
//!
//! [`check`] turns every breach into a located diagnostic before anything is read, decrypted
//! or sent; the readers in the binary apply the same functions again when they read.

use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{Minted, SecretSource, Spec};
use crate::source::Sources;

/// How far the paths a spec names may reach, as kustomize's `--load-restrictor`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoadRestrictor {
    /// Inside the spec's root only (the default).
    #[default]
    RootOnly,
    /// Anywhere regops may read: for a spec whose every author is trusted.
    None,
}

/// The variables a spec may read with `env:` unless `--allow-env` widens it.
pub const DEFAULT_ENV_PREFIX: &str = "REGOPS_CRED_";

/// Variables no spec may read, whatever `--allow-env` says: where regops and the cloud SDKs
/// find keys (the age identity, sops' keys, AWS, Azure and Google credentials and endpoints),
/// the kubeconfig, and the CI's own tokens.
pub const REFUSED_ENV_PREFIXES: &[(&str, &str)] = &[
    ("REGOPS_AGE_KEY", "regops' own age identity"),
    ("SOPS_", "sops' keys"),
    ("AWS_", "AWS credentials and endpoints"),
    ("AZURE_", "Azure credentials and endpoints"),
    ("GOOGLE_", "Google Cloud credentials"),
    ("GCE_METADATA", "the Google metadata server"),
    ("CLOUDSDK_", "gcloud's configuration"),
    ("KUBECONFIG", "the operator's kubeconfig"),
    ("ARM_", "Azure credentials (Terraform's azurerm names)"),
    ("ACTIONS_", "the CI runner's tokens"),
    ("GITHUB_TOKEN", "the CI job's GitHub token"),
    ("CI_JOB_TOKEN", "the CI job's GitLab token"),
    ("VAULT_TOKEN", "a Vault token"),
];

/// Names the CI systems put their own credentials under, refused as [`REFUSED_ENV_PREFIXES`]
/// are: GitLab's job JWTs and registry and deploy passwords, the GitHub CLI's token.
pub const REFUSED_CI_PREFIXES: &[(&str, &str)] = &[
    ("CI_JOB_JWT", "the GitLab job's OIDC token"),
    ("CI_REGISTRY_PASSWORD", "the GitLab job's registry password"),
    ("CI_DEPLOY_PASSWORD", "a GitLab deploy token's password"),
    ("GH_TOKEN", "a GitHub token (the gh CLI's)"),
    (
        "CI_REPOSITORY_URL",
        "the GitLab job's clone URL, which holds its job token",
    ),
    ("SYSTEM_ACCESSTOKEN", "the Azure Pipelines job's token"),
];

/// The CI systems' own namespaces: a name in one of them that holds one of
/// [`CI_SECRET_WORDS`] is one of the CI's credentials (`GITLAB_NOTE_TOKEN`,
/// `RUNNER_TOKEN`, `BUILDKITE_AGENT_ACCESS_TOKEN`, `CIRCLE_OIDC_TOKEN`), whatever follows.
pub const CI_NAMESPACES: &[&str] = &[
    "CI_",
    "GITHUB_",
    "ACTIONS_",
    "GITLAB_",
    "RUNNER_",
    "BUILDKITE_",
    "CIRCLE_",
    "DRONE_",
    "BITBUCKET_",
];

/// The words that mark a CI namespace's variable as a credential.
pub const CI_SECRET_WORDS: &[&str] = &["TOKEN", "JWT", "PASSWORD", "SECRET"];

/// The rule that refuses `name` to every spec whatever `--allow-env` says (`SOPS_*`,
/// `CI_JOB_JWT*`, `GITLAB_*TOKEN*`), and what such variables hold; `None` if no rule does.
pub fn refused_env_rule(name: &str) -> Option<(String, &'static str)> {
    let upper = name.to_ascii_uppercase();
    if let Some((prefix, what)) = REFUSED_ENV_PREFIXES
        .iter()
        .chain(REFUSED_CI_PREFIXES)
        .find(|(p, _)| upper.starts_with(p))
    {
        return Some((format!("{prefix}*"), what));
    }
    let namespace = CI_NAMESPACES.iter().find(|n| upper.starts_with(*n))?;
    let word = CI_SECRET_WORDS.iter().find(|w| upper.contains(*w))?;
    Some((format!("{namespace}*{word}*"), "the CI's own credentials"))
}

/// What the operator allowed beyond the defaults (the command line's `--allow-*` flags).
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Prefixes of the variables `env:` may read, besides [`DEFAULT_ENV_PREFIX`].
    pub allow_env: Vec<String>,
    /// Kubeconfigs a spec names may run `exec`/`auth-provider` plugins and skip TLS checks.
    pub allow_kubeconfig_exec: bool,
    /// Hosts (`host[:port]`) a minted token may be sent to beyond its cloud's registries.
    pub allow_minted_hosts: Vec<String>,
    /// The secrets of the secret managers a spec may read (`--allow-secret`); none when empty.
    pub allow_secrets: Vec<AllowedSecret>,
    /// The Vault role for Kubernetes auth (`--vault-role`), before `VAULT_ROLE`: the
    /// operator's, as the Vault address is.
    pub vault_role: Option<String>,
    /// How `vault:` sources log in to Vault (`--vault-auth`), before `VAULT_AUTH`: the
    /// operator's, as the Vault address is.
    pub vault_auth: Option<VaultAuth>,
}

/// How regops logs in to Vault for `vault:` sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VaultAuth {
    /// `VAULT_TOKEN`, as it is.
    Token,
    /// Kubernetes auth: the pod's service-account token and a role.
    Kubernetes,
    /// JWT/OIDC auth: a JWT from a file the operator names and a role.
    Jwt,
}

impl VaultAuth {
    pub const ALL: [(&'static str, VaultAuth); 3] = [
        ("token", VaultAuth::Token),
        ("kubernetes", VaultAuth::Kubernetes),
        ("jwt", VaultAuth::Jwt),
    ];

    /// `token`, `kubernetes` or `jwt`.
    pub fn from_name(name: &str) -> Option<VaultAuth> {
        VaultAuth::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
    }

    pub fn name(self) -> &'static str {
        match self {
            VaultAuth::Token => "token",
            VaultAuth::Kubernetes => "kubernetes",
            VaultAuth::Jwt => "jwt",
        }
    }
}

/// A kind of secret manager a spec may read from, as `--allow-secret` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// AWS Secrets Manager (`awsSecretsManager:`), by `secretId`.
    Aws,
    /// Google Secret Manager, by `projects/P/secrets/S`.
    Gcp,
    /// Azure Key Vault, by `VAULT/SECRET`.
    Azure,
    /// HashiCorp Vault or OpenBao, by `MOUNT/PATH`.
    Vault,
}

impl SecretKind {
    pub const ALL: [(&'static str, SecretKind); 4] = [
        ("aws", SecretKind::Aws),
        ("gcp", SecretKind::Gcp),
        ("azure", SecretKind::Azure),
        ("vault", SecretKind::Vault),
    ];

    pub fn key(self) -> &'static str {
        match self {
            SecretKind::Aws => "aws",
            SecretKind::Gcp => "gcp",
            SecretKind::Azure => "azure",
            SecretKind::Vault => "vault",
        }
    }
}

/// Why an `--allow-secret` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowedSecretError {
    #[error("`{0}` is not KIND:PATTERN (`aws:registry/*`)")]
    NotKindPattern(String),
    #[error("`{0}` is not one of aws, gcp, azure, vault")]
    UnknownKind(String),
    #[error("`{text}` allows every secret; name the secrets or a prefix (`{kind}:registry/*`)")]
    AllowsEvery { text: String, kind: &'static str },
    #[error("`{0}`: `*` may only end the pattern (a prefix)")]
    StarInside(String),
}

/// One `--allow-secret KIND:PATTERN`: a secret's name, or a prefix ending in `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedSecret {
    pub kind: SecretKind,
    pub pattern: String,
}

impl AllowedSecret {
    /// `KIND:PATTERN` as the operator writes it; the error says what is wrong.
    pub fn parse(text: &str) -> Result<AllowedSecret, AllowedSecretError> {
        let (kind, pattern) = text
            .split_once(':')
            .ok_or_else(|| AllowedSecretError::NotKindPattern(text.to_string()))?;
        let kind = SecretKind::ALL
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, k)| *k)
            .ok_or_else(|| AllowedSecretError::UnknownKind(kind.to_string()))?;
        if pattern.is_empty() || pattern == "*" {
            return Err(AllowedSecretError::AllowsEvery {
                text: text.to_string(),
                kind: kind.key(),
            });
        }
        if pattern[..pattern.len() - 1].contains('*') {
            return Err(AllowedSecretError::StarInside(text.to_string()));
        }
        Ok(AllowedSecret {
            kind,
            pattern: pattern.to_string(),
        })
    }

    /// Whether it allows the secret `name` of `kind`: the same name, or one starting with the
    /// prefix before a final `*`.
    pub fn allows(&self, kind: SecretKind, name: &str) -> bool {
        self.kind == kind
            && match self.pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == self.pattern,
            }
    }
}

/// Why a spec may not read the secret `name` of `kind`, or `None` if the operator allowed it
/// with `--allow-secret`.
pub fn secret_refusal(kind: SecretKind, name: &str, policy: &Policy) -> Option<String> {
    if policy.allow_secrets.iter().any(|a| a.allows(kind, name)) {
        return None;
    }
    let allowed: Vec<&str> = policy
        .allow_secrets
        .iter()
        .filter(|a| a.kind == kind)
        .map(|a| a.pattern.as_str())
        .collect();
    Some(if allowed.is_empty() {
        format!(
            "no {} secret is allowed (the operator allows them with --allow-secret {}:NAME)",
            kind.key(),
            kind.key()
        )
    } else {
        format!(
            "it is not among the {} secrets the operator allows ({})",
            kind.key(),
            allowed.join(", ")
        )
    })
}

/// The secret-manager kind and the name the allowlist judges of a password source.
pub fn secret_of(source: &SecretSource) -> Option<(SecretKind, String, crate::Loc)> {
    match source {
        SecretSource::AwsSecretsManager {
            aws_secrets_manager: a,
        } => Some((SecretKind::Aws, a.secret_id.value.clone(), a.secret_id.loc)),
        SecretSource::Vault { vault } => {
            Some((SecretKind::Vault, vault.allow_name(), vault.path.loc))
        }
        SecretSource::GcpSecretManager {
            gcp_secret_manager: g,
        } => Some((SecretKind::Gcp, g.name.value.clone(), g.name.loc)),
        SecretSource::AzureKeyVault { azure_key_vault: a } => {
            Some((SecretKind::Azure, a.allow_name(), a.secret.loc))
        }
        _ => None,
    }
}

/// A path that reaches outside the spec's root (or into a `.git` directory in it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathRefused {
    /// The path as the spec wrote it.
    pub written: PathBuf,
    /// Why, in words after the path: "leads outside the spec's root".
    pub why: &'static str,
}

impl std::fmt::Display for PathRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Where it leads is not said: that would tell a spec's author which files exist
        // outside the root, and where links there point.
        write!(f, "`{}` {}", self.written.display(), self.why)
    }
}

impl std::error::Error for PathRefused {}

const OUTSIDE: &str = "leads outside the spec's root";
const IN_GIT: &str = "is inside a `.git` directory, where a checkout keeps its credentials (actions/checkout writes the job's token into .git/config)";

/// The help for a refused path: what to do, and what the flag that allows it costs.
pub const PATH_HELP: &str = "keep the files a spec names in its directory (the -f directory, or the -f file's); if every author of this spec is trusted, --load-restrictor none lets it name any file regops can read (which a pull request could then put into a Secret)";

/// `joined` (the spec's `written` path, joined to the directory of the file naming it), with
/// symlinks followed, if it lies inside `root` and not in a `.git` directory there. A path
/// that does not exist yet is judged by its deepest existing ancestor and the rest of it, which
/// may hold only plain names (no `..`, no trailing `/` or `.`); one that exists but cannot be
/// resolved (`link/` on a symlink to a file, a symlink loop, no permission) is refused.
pub fn confine(root: &Path, joined: &Path, written: &Path) -> Result<PathBuf, PathRefused> {
    let refused = |why| PathRefused {
        written: written.to_path_buf(),
        why,
    };
    let root_real = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let resolved = resolve_existing(joined).ok_or_else(|| refused(OUTSIDE))?;
    let inside = resolved
        .strip_prefix(&root_real)
        .map_err(|_| refused(OUTSIDE))?;
    if inside.components().any(|c| is_git_dir_name(c.as_os_str())) {
        return Err(refused(IN_GIT));
    }
    Ok(resolved)
}

/// Whether a file system would take `name` for `.git`: as Git itself judges a path it checks
/// out (`is_hfs_dotgit`, `is_ntfs_dotgit`), in any case (`.GIT` on macOS' and Windows'
/// case-insensitive file systems), with the code points HFS+ ignores (`.g\u{200c}it`), with
/// the trailing dots and spaces NTFS drops (`.git. `), and as NTFS' short name `git~1`.
pub fn is_git_dir_name(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    let folded: String = name.chars().filter(|&c| !hfs_ignored(c)).collect();
    let folded = folded.trim_end_matches(['.', ' ']);
    folded.eq_ignore_ascii_case(".git") || folded.eq_ignore_ascii_case("git~1")
}

/// The code points HFS+ leaves out of a name when it compares names (Git's list).
fn hfs_ignored(c: char) -> bool {
    matches!(
        c,
        '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}'
    )
}

/// `path` with every symlink followed; for a path that does not exist (yet), its deepest
/// existing ancestor resolved and the plain names after it appended. `None` where that cannot
/// be judged safely: the path exists but does not resolve, it ends in `/`, `.` or `..`, or it
/// climbs with `..` out of a directory that is not there.
fn resolve_existing(path: &Path) -> Option<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(real) => return Some(real),
        // ENOTDIR (`file-link/`), ELOOP, EACCES: not a path that is simply not there yet.
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return None,
        Err(_) => {}
    }
    let text = path.as_os_str().as_encoded_bytes();
    if text.ends_with(b"/") || text.ends_with(b"/.") || path.ends_with("..") {
        return None;
    }
    let mut rest = Vec::new();
    let mut cur = path.to_path_buf();
    // Up to a `..` or the root itself: nothing more to walk up through.
    while let Some(name) = cur.file_name().map(|n| n.to_os_string()) {
        rest.push(name);
        if !cur.pop() {
            break;
        }
        let base = if cur.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            cur.clone()
        };
        if let Ok(real) = std::fs::canonicalize(&base) {
            let mut out = real;
            // The first name after the existing ancestor must really not exist: a dangling
            // symlink there would be followed when the path is opened or written.
            let first = rest.last().map(|n| out.join(n));
            if let Some(first) = first
                && !matches!(std::fs::symlink_metadata(&first), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
            {
                return None;
            }
            for part in rest.iter().rev() {
                out.push(part);
            }
            return Some(out);
        }
    }
    None
}

/// Why `name` may not be read by `env:`, or `None` if it may.
pub fn env_refusal(name: &str, policy: &Policy) -> Option<String> {
    if let Some((rule, what)) = refused_env_rule(name) {
        return Some(format!("`{rule}` holds {what}, which no spec may read"));
    }
    let prefixes: Vec<&str> = std::iter::once(DEFAULT_ENV_PREFIX)
        .chain(policy.allow_env.iter().map(String::as_str))
        .filter(|p| !p.is_empty())
        .collect();
    (!prefixes.iter().any(|p| name.starts_with(p))).then(|| {
        let shown: Vec<String> = prefixes.iter().map(|p| format!("{p}*")).collect();
        format!("a spec may read only {}", shown.join(", "))
    })
}

/// The host (and port) of a registry's `server`: what a token is sent to.
pub fn server_host(server: &str) -> &str {
    let s = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    s.split('/').next().unwrap_or(s)
}

/// The registry hosts a cloud's tokens may be sent to, in words, for messages.
pub fn minted_hosts(minted: Minted) -> &'static str {
    match minted {
        Minted::Ecr => {
            "`<account>.dkr.ecr.<region>.amazonaws.com` (`.amazonaws.com.cn` in China), in the credential's region"
        }
        Minted::Gcp => "`*.pkg.dev`, `gcr.io` and `*.gcr.io`",
        Minted::Acr => "`*.azurecr.io`, `*.azurecr.cn` and `*.azurecr.us`",
    }
}

/// Why a token minted by `minted` (for `region`, with ECR) may not be sent to `server`, or
/// `None` if it may: the host must be one of the cloud's registries, or named by
/// `--allow-minted-host`.
pub fn minted_host_refusal(
    minted: Minted,
    region: Option<&str>,
    server: &str,
    policy: &Policy,
) -> Option<String> {
    let host = server_host(server);
    if policy
        .allow_minted_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(host))
    {
        return None;
    }
    let lower = host.to_ascii_lowercase();
    let ok = match minted {
        Minted::Ecr => ecr_host_region(&lower).is_some_and(|r| Some(r) == region),
        Minted::Gcp => {
            lower == "gcr.io"
                || has_subdomain_label(&lower, ".gcr.io")
                || has_subdomain_label(&lower, ".pkg.dev")
        }
        Minted::Acr => [".azurecr.io", ".azurecr.cn", ".azurecr.us"]
            .iter()
            .any(|s| has_subdomain_label(&lower, s)),
    };
    if ok {
        return None;
    }
    let mut why = format!(
        "a token minted from `{}` is sent only to {}, not to `{host}`",
        minted.key(),
        minted_hosts(minted)
    );
    if let (Minted::Ecr, Some(found), Some(want)) = (minted, ecr_host_region(&lower), region)
        && found != want
    {
        why = format!("`{host}` is in region {found}, but the credential mints for {want}");
    }
    Some(why)
}

/// `host` ends with `suffix` (which starts with a dot) and has a name before it.
fn has_subdomain_label(host: &str, suffix: &str) -> bool {
    host.strip_suffix(suffix)
        .is_some_and(|label| !label.is_empty() && !label.contains(':'))
}

/// The region of an ECR registry host: `<12 digits>.dkr.ecr.<region>.amazonaws.com[.cn]`.
/// The region is in the partition the host's domain is: `cn-*` regions under
/// `amazonaws.com.cn`, every other under `amazonaws.com` (a token of one partition is never
/// sent to the other's domain).
pub fn ecr_host_region(host: &str) -> Option<&str> {
    let (rest, china) = match host.strip_suffix(".amazonaws.com.cn") {
        Some(rest) => (rest, true),
        None => (host.strip_suffix(".amazonaws.com")?, false),
    };
    let (account, region) = rest.split_once(".dkr.ecr.")?;
    let region_ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && region.starts_with("cn-") == china;
    (account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()) && region_ok)
        .then_some(region)
}

/// Every breach of the trust boundary in `spec`, located: paths outside the root, variables a
/// spec may not read, minted tokens bound for foreign or plain-HTTP hosts; and a warning for
/// each plain-HTTP registry. Kubeconfigs are checked for plugins where they are read (by the
/// binary, which parses them).
pub fn check(spec: &Spec, sources: &Sources, policy: &Policy) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let path = |diags: &mut Diagnostics, what: &str, p: &crate::Spanned<PathBuf>| {
        if let Err(e) = sources.resolve(p.loc, &p.value) {
            diags.push(
                Diagnostic::error("trust::path", format!("{what}: {e}"))
                    .with_label(p.loc, "outside the spec's root")
                    .with_help(PATH_HELP),
            );
        }
    };
    for (name, cred) in &spec.credentials {
        if let Some((kind, secret, loc)) = secret_of(&cred.password)
            && let Some(why) = secret_refusal(kind, &secret, policy)
        {
            let shown = crate::untrusted::terminal(&secret);
            diags.push(
                Diagnostic::error(
                    "trust::secret",
                    format!("credential `{name}` may not read the {} secret `{shown}`: {why}", kind.key()),
                )
                .with_label(loc, "not allowed by the operator")
                .with_help(format!(
                    "if this spec may read it, run with --allow-secret {}:{shown} (or a prefix: --allow-secret {}:PREFIX*); whoever edits the spec may then send it to any registry the spec names",
                    kind.key(),
                    kind.key()
                )),
            );
        }
        if let Some(sops) = &cred.username_sops {
            path(
                &mut diags,
                &format!("the sops file of `{name}`"),
                &sops.file,
            );
        }
        match &cred.password {
            SecretSource::Sops { sops } => {
                path(
                    &mut diags,
                    &format!("the sops file of `{name}`"),
                    &sops.file,
                );
            }
            SecretSource::File { file } => {
                path(&mut diags, &format!("the password of `{name}`"), file);
            }
            SecretSource::AgeFile { age_file } => {
                path(&mut diags, &format!("the ciphertext of `{name}`"), age_file);
            }
            SecretSource::Env { env } => {
                if let Some(why) = env_refusal(&env.value, policy) {
                    let help = if refused_env_rule(&env.value).is_some() {
                        format!(
                            "put the password in a variable named {DEFAULT_ENV_PREFIX}..., set by the job for this credential alone"
                        )
                    } else {
                        format!(
                            "rename it {DEFAULT_ENV_PREFIX}{}, or pass --allow-env {} (whoever edits the spec may then read every variable starting so)",
                            env.value, env.value
                        )
                    };
                    diags.push(
                        Diagnostic::error(
                            "trust::env",
                            format!("credential `{name}` may not read `${}`: {why}", env.value),
                        )
                        .with_label(env.loc, "not readable by a spec")
                        .with_help(help),
                    );
                }
            }
            _ => {}
        }
    }
    for reg in spec.registries.values() {
        if let Some(ca) = &reg.ca_file {
            path(
                &mut diags,
                &format!("the CA file of registry `{}`", reg.name.value),
                ca,
            );
        }
        let minted = spec
            .credentials
            .get(reg.credential.as_str())
            .and_then(|c| c.minted().map(|m| (m, c)));
        if let Some((minted, cred)) = minted {
            let region = match &cred.password {
                SecretSource::Ecr { ecr } => Some(ecr.region.value.as_str()),
                _ => None,
            };
            let host = server_host(&reg.server.value);
            let allowed = policy
                .allow_minted_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host));
            if let Some(why) = minted_host_refusal(minted, region, &reg.server.value, policy) {
                diags.push(
                    Diagnostic::error(
                        "trust::minted-host",
                        format!(
                            "registry `{}` would receive credential `{}`'s minted token: {why}",
                            reg.name.value, reg.credential.value
                        ),
                    )
                    .with_label(reg.server.loc, "not this cloud's registry")
                    .with_help(format!(
                        "if `{host}` really serves this cloud's registry (a mirror you run), pass --allow-minted-host {host}"
                    )),
                );
            } else if reg.insecure && !(allowed && is_loopback_host(host)) {
                diags.push(
                    Diagnostic::error(
                        "trust::minted-host",
                        format!(
                            "registry `{}` is plain HTTP, and credential `{}`'s minted token would cross the network in clear",
                            reg.name.value, reg.credential.value
                        ),
                    )
                    .with_label(reg.server.loc, "insecure: true")
                    .with_help("cloud registries speak HTTPS: remove `insecure: true`"),
                );
            }
        } else if reg.insecure {
            diags.push(
                Diagnostic::warning(
                    "trust::plain-http",
                    format!(
                        "registry `{}` is plain HTTP: credential `{}` crosses the network in clear to {}",
                        reg.name.value,
                        reg.credential.value,
                        server_host(&reg.server.value)
                    ),
                )
                .with_label(reg.server.loc, "insecure: true")
                .with_help("serve the registry over HTTPS (with `caFile` for a private CA) where you can"),
            );
        }
    }
    for cluster in spec.clusters.values() {
        if let Some(k) = &cluster.kubeconfig {
            if k.value.starts_with("~") && sources.restrictor() == LoadRestrictor::RootOnly {
                diags.push(
                    Diagnostic::error(
                        "trust::path",
                        format!(
                            "the kubeconfig of cluster `{}`: `{}` is in the home directory, outside the spec's root",
                            cluster.name.value,
                            k.value.display()
                        ),
                    )
                    .with_label(k.loc, "outside the spec's root")
                    .with_help("leave `kubeconfig` out and pass the file with --kubeconfig (the operator's kubeconfig holds the contexts), or use --load-restrictor none if every author of this spec is trusted"),
                );
            } else if !k.value.starts_with("~") {
                path(
                    &mut diags,
                    &format!("the kubeconfig of cluster `{}`", cluster.name.value),
                    k,
                );
            }
        }
    }
    diags
}

/// A loopback host (`127.0.0.0/8`, `::1`, `localhost`), with or without a port: the only
/// place a plain-HTTP token endpoint or an `insecure` minted registry is allowed (local fakes
/// in tests).
pub fn is_loopback_host(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') {
                h
            } else {
                host_port
            }
        })
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_need_an_allowed_prefix_and_never_a_key_variable() {
        let strict = Policy::default();
        assert_eq!(env_refusal("REGOPS_CRED_HUB", &strict), None);
        assert!(env_refusal("DOCKERHUB_TOKEN", &strict).is_some());
        for refused in [
            "REGOPS_AGE_KEY",
            "REGOPS_AGE_KEY_FILE",
            "SOPS_AGE_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "aws_secret_access_key",
            "AZURE_CLIENT_SECRET",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "KUBECONFIG",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        ] {
            assert!(env_refusal(refused, &strict).is_some(), "{refused}");
        }
        let wide = Policy {
            allow_env: vec!["DOCKERHUB_".into(), "AWS_".into(), String::new()],
            ..Policy::default()
        };
        assert_eq!(env_refusal("DOCKERHUB_TOKEN", &wide), None);
        // Widening never reaches the refused names, and an empty prefix widens nothing.
        assert!(env_refusal("AWS_SECRET_ACCESS_KEY", &wide).is_some());
        assert!(env_refusal("HOME", &wide).is_some());
    }

    /// The CIs' own credentials stay refused under any prefix `--allow-env` widens to.
    #[test]
    fn ci_credentials_are_refused_whatever_the_prefix() {
        let wide = Policy {
            allow_env: ["CI_", "G", "ACTIONS_", "RUNNER_", "BUILDKITE_", "CIRCLE_"]
                .map(String::from)
                .to_vec(),
            ..Policy::default()
        };
        for (name, rule) in [
            ("CI_JOB_JWT", "CI_JOB_JWT*"),
            ("CI_JOB_JWT_V2", "CI_JOB_JWT*"),
            ("CI_REGISTRY_PASSWORD", "CI_REGISTRY_PASSWORD*"),
            ("CI_DEPLOY_PASSWORD", "CI_DEPLOY_PASSWORD*"),
            ("CI_JOB_TOKEN", "CI_JOB_TOKEN*"),
            ("CI_BUILD_TOKEN", "CI_*TOKEN*"),
            ("GH_TOKEN", "GH_TOKEN*"),
            ("GITHUB_TOKEN", "GITHUB_TOKEN*"),
            ("GITHUB_PAT_TOKEN", "GITHUB_*TOKEN*"),
            ("GITLAB_NOTE_TOKEN", "GITLAB_*TOKEN*"),
            ("GITLAB_TOKEN_FOR_BOT", "GITLAB_*TOKEN*"),
            ("ACTIONS_RUNTIME_TOKEN", "ACTIONS_*"),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_*"),
            ("RUNNER_TOKEN", "RUNNER_*TOKEN*"),
            ("BUILDKITE_AGENT_ACCESS_TOKEN", "BUILDKITE_*TOKEN*"),
            ("CIRCLE_OIDC_TOKEN_V2", "CIRCLE_*TOKEN*"),
        ] {
            let why = env_refusal(name, &wide).unwrap_or_default();
            assert!(why.contains(&format!("`{rule}`")), "{name}: {why}");
        }
        // The rest of those namespaces is what the flag widens to.
        for name in ["CI_COMMIT_SHA", "GITHUB_SHA", "GOPATH", "RUNNER_OS"] {
            assert_eq!(env_refusal(name, &wide), None, "{name}");
        }
    }

    #[test]
    fn minted_tokens_go_only_to_their_cloud() {
        let p = Policy::default();
        let ecr = |server: &str| minted_host_refusal(Minted::Ecr, Some("eu-west-1"), server, &p);
        assert_eq!(ecr("123456789012.dkr.ecr.eu-west-1.amazonaws.com"), None);
        assert_eq!(
            ecr("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team"),
            None
        );
        assert!(ecr("123456789012.dkr.ecr.us-east-1.amazonaws.com").is_some());
        assert!(ecr("evil.example.com").is_some());
        assert!(ecr("123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.com").is_some());
        assert!(ecr("12345.dkr.ecr.eu-west-1.amazonaws.com").is_some());
        // Never across partitions.
        assert!(ecr("123456789012.dkr.ecr.eu-west-1.amazonaws.com.cn").is_some());
        assert!(
            minted_host_refusal(
                Minted::Ecr,
                Some("cn-north-1"),
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com",
                &p
            )
            .is_some()
        );
        assert_eq!(
            minted_host_refusal(
                Minted::Ecr,
                Some("cn-north-1"),
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
                &p
            ),
            None
        );
        let gcp = |server: &str| minted_host_refusal(Minted::Gcp, None, server, &p);
        assert_eq!(gcp("europe-docker.pkg.dev/proj/repo"), None);
        assert_eq!(gcp("gcr.io"), None);
        assert_eq!(gcp("eu.gcr.io"), None);
        assert!(gcp("pkg.dev").is_some());
        assert!(gcp("evilgcr.io").is_some());
        assert!(gcp("gcr.io.evil.com").is_some());
        assert!(gcp("x.pkg.dev:8443").is_some());
        let acr = |server: &str| minted_host_refusal(Minted::Acr, None, server, &p);
        assert_eq!(acr("team.azurecr.io"), None);
        assert_eq!(acr("team.azurecr.cn"), None);
        assert_eq!(acr("team.azurecr.us"), None);
        assert!(acr("azurecr.io").is_some());
        assert!(acr("127.0.0.2:18702").is_some());
        let allowed = Policy {
            allow_minted_hosts: vec!["127.0.0.2:18702".into()],
            ..Policy::default()
        };
        assert_eq!(
            minted_host_refusal(Minted::Acr, None, "127.0.0.2:18702", &allowed),
            None
        );
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "127.0.0.2:18702",
            "localhost:80",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["10.0.0.1", "example.com", "169.254.169.254", "[fe80::1]:80"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn paths_are_confined_to_the_root_with_symlinks_followed() {
        let dir = std::env::temp_dir().join(format!("regops-trust-{}", std::process::id()));
        let root = dir.join("spec");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("sub/token"), "t").unwrap();
        std::fs::write(root.join(".git/config"), "token").unwrap();
        std::fs::write(dir.join("outside"), "o").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("outside"), root.join("link")).unwrap();
            std::os::unix::fs::symlink(dir.join("gone"), root.join("dangling")).unwrap();
        }
        let ok = |p: &str| confine(&root, &root.join(p), Path::new(p));
        assert!(ok("sub/token").is_ok());
        assert!(ok("sub/../sub/token").is_ok());
        assert!(ok("not-yet/there").is_ok(), "a new file inside the root");
        for refused in [
            "../outside",
            "/etc/hostname",
            "missing/../../outside",
            "missing/..",
            ".git/config",
            "sub/../.git/config",
        ] {
            assert!(ok(refused).is_err(), "{refused}");
        }
        #[cfg(unix)]
        for refused in [
            "link",
            "link/",
            "link/.",
            "link//",
            "dangling",
            "dangling/x",
        ] {
            let e = ok(refused).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("`{refused}` leads outside the spec's root")
            );
        }
        assert!(ok(".git/config").unwrap_err().why.contains(".git"));
        // A case-insensitive file system (macOS, Windows) opens `.git/config` for these.
        for name in [".GIT", ".Git", ".git.", ".git ", "GIT~1", ".g\u{200c}it"] {
            assert!(is_git_dir_name(std::ffi::OsStr::new(name)), "{name:?}");
            let written = format!("{name}/config");
            assert!(ok(&written).unwrap_err().why.contains(".git"), "{written}");
        }
        for name in [".github", "git", ".gitignore", "a.git", ".git~1"] {
            assert!(!is_git_dir_name(std::ffi::OsStr::new(name)), "{name:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_secret_is_readable_only_when_the_operator_allows_it() {
        let none = Policy::default();
        assert!(secret_refusal(SecretKind::Aws, "registry/harbor", &none).is_some());
        let p = Policy {
            allow_secrets: vec![
                AllowedSecret::parse("aws:registry/*").unwrap(),
                AllowedSecret::parse("vault:secret/ci/robot").unwrap(),
            ],
            ..Policy::default()
        };
        assert_eq!(secret_refusal(SecretKind::Aws, "registry/harbor", &p), None);
        assert_eq!(
            secret_refusal(SecretKind::Vault, "secret/ci/robot", &p),
            None
        );
        // Another kind, a name beside the prefix, a longer name than the exact one.
        for (kind, name) in [
            (SecretKind::Vault, "registry/harbor"),
            (SecretKind::Aws, "registry"),
            (SecretKind::Aws, "prod/db-password"),
            (SecretKind::Vault, "secret/ci/robot2"),
            (SecretKind::Vault, "secret/ci"),
            (SecretKind::Gcp, "registry/harbor"),
        ] {
            let why = secret_refusal(kind, name, &p);
            assert!(why.is_some(), "{name}");
        }
        assert!(
            secret_refusal(SecretKind::Azure, "x", &p)
                .unwrap()
                .contains("--allow-secret azure:NAME")
        );
    }

    #[test]
    fn allow_secret_refuses_an_unknown_kind_everything_and_a_star_inside() {
        for bad in ["registry/*", "s3:x", "aws:", "aws:*", "aws:a*b", ":x"] {
            assert!(AllowedSecret::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            AllowedSecret::parse("gcp:projects/p/secrets/*").unwrap(),
            AllowedSecret {
                kind: SecretKind::Gcp,
                pattern: "projects/p/secrets/*".into()
            }
        );
    }
}
