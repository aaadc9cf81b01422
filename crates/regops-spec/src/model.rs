//! The spec's data model. These types are what the rest of regops reads, and the JSON Schema in
//! `schemas/regops.schema.json` is generated from them (see [`crate::schema`]). Field docs
//! become the schema's descriptions, and so the editor hover text.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;

use crate::kind::WorkloadKind;
use crate::node::{Loc, Spanned};

pub const API_VERSION: &str = "regops.dev/v1";
pub const KIND: &str = "RegistryConfig";

/// The Docker Hub key in a `.dockerconfigjson`, as `kubectl create secret docker-registry` and
/// `docker login` write it.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// A regops spec: the registries, the credentials for them (age-encrypted), the namespaces
/// they are needed in, and what should reference the pull secrets.
#[derive(Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "regops spec")]
pub struct Spec {
    /// Always `regops.dev/v1`.
    #[schemars(extend("const" = "regops.dev/v1"))]
    pub api_version: String,
    /// Always `RegistryConfig`.
    #[schemars(extend("const" = "RegistryConfig"))]
    pub kind: String,
    #[serde(default)]
    pub metadata: Metadata,
    /// Who can decrypt the credentials: age X25519 recipients (`age1...`) and SSH public keys
    /// (`ssh-ed25519 AAAA...`). `regops encrypt` and `regops rekey` encrypt to all of them.
    #[serde(default)]
    pub recipients: Vec<Spanned<String>>,
    /// Container registries, by name.
    #[serde(default)]
    pub registries: BTreeMap<String, Registry>,
    /// Registry logins, by name. Passwords are age-encrypted, or read from the environment or a
    /// file at run time; plaintext passwords are refused.
    #[serde(default)]
    pub credentials: BTreeMap<String, Credential>,
    /// Sets of namespaces, by name.
    #[serde(default)]
    pub scopes: BTreeMap<String, Scope>,
    /// Pull secrets (Secrets of type `kubernetes.io/dockerconfigjson`), by the Secret's name.
    #[serde(default)]
    pub pull_secrets: BTreeMap<String, PullSecret>,
    /// What references the pull secrets: ServiceAccounts and workloads.
    #[serde(default)]
    pub bindings: Vec<Binding>,
    /// The clusters this spec is applied to, by name. Without it, regops works on the one
    /// cluster `--kubeconfig` and `--context` name; with it, `plan`, `apply`, `drift` and
    /// `render` work on every cluster listed (or those `--cluster` names), and scopes may be
    /// limited to some of them with `clusters`.
    #[serde(default)]
    pub clusters: BTreeMap<String, Cluster>,
    /// Workload kinds beyond the built-in ones, by their `kind:` name: custom resources that
    /// keep a pod template, such as an Argo Rollout or an OpenKruise CloneSet. A binding
    /// selects one only when its `kinds` names it.
    #[serde(default)]
    pub workload_kinds: BTreeMap<String, DeclaredKind>,
    /// Opt-in: `regops apply` keeps the node trust rendered from this spec (the `hosts.toml`
    /// and CA files of the registries marked `insecure` or given a `caFile`) in a ConfigMap,
    /// which the `node-trust` component's `regops node-sync` reads on every node. Without it,
    /// apply writes nothing for nodes (`regops render --node-config` still renders). See
    /// docs/node-trust.md.
    pub node_trust: Option<NodeTrust>,
    /// Every name defined, including entries that had errors of their own, so that a broken
    /// entry is reported once and not again by everything that refers to it.
    #[schemars(skip)]
    pub declared: Declared,
}

impl Spec {
    /// The credentials the pull secrets use (through their registries), by name.
    pub fn used_credentials(&self) -> std::collections::BTreeSet<&str> {
        self.pull_secrets
            .values()
            .flat_map(|p| p.registries.iter())
            .filter_map(|r| self.registries.get(r.as_str()))
            .map(|r| r.credential.as_str())
            .collect()
    }
}

#[derive(Clone, Debug, Default)]
pub struct Declared {
    pub registries: std::collections::BTreeSet<String>,
    pub credentials: std::collections::BTreeSet<String>,
    pub scopes: std::collections::BTreeSet<String>,
    pub pull_secrets: std::collections::BTreeSet<String>,
    pub clusters: std::collections::BTreeSet<String>,
}

impl Spec {
    /// The workload kinds this spec can select: the built-in ones, then those it declares.
    pub fn workload_kinds(&self) -> impl Iterator<Item = WorkloadKind> + '_ {
        WorkloadKind::ALL
            .into_iter()
            .chain(self.workload_kinds.values().map(|d| d.kind))
    }
}

/// A workload kind the spec declares: a custom resource with a pod template.
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeclaredKind {
    #[schemars(skip)]
    pub name: Spanned<String>,
    /// The resource's `group/version` (`argoproj.io/v1alpha1`). The group is not empty: a
    /// custom resource is never in the core group.
    pub api_version: Spanned<String>,
    /// The resource's plural name, as in its URL and its CustomResourceDefinition's
    /// `spec.names.plural` (`rollouts`).
    pub resource: Spanned<String>,
    /// Where the object keeps its pod template, as a dot-separated path (`spec.template`).
    pub pod_template: Spanned<String>,
    /// The row of the kind table this declaration added.
    #[schemars(skip)]
    pub kind: WorkloadKind,
}

#[derive(Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The spec's name, stamped on every object regops owns (annotation `regops.dev/spec`), so
    /// that two specs never touch each other's objects. Defaults to the first spec file's stem.
    pub name: Option<Spanned<String>>,
}

/// Where `regops apply` keeps the rendered node trust: a ConfigMap regops owns (labelled and
/// annotated as its Secrets are), and where `regops plan` reads the operator's allowlist.
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeTrust {
    /// The namespace of both ConfigMaps (default `regops-node-trust`, the component's).
    pub namespace: Option<Spanned<String>>,
    /// The ConfigMap apply writes (default `regops-node-trust`): keys `containerd.yaml` (what
    /// node-sync reads), `k3s.yaml`, `rke2.yaml`, `docker.yaml` and `crio.yaml` (for review). CA
    /// certificates only, never a credential.
    pub config_map: Option<Spanned<String>>,
    /// The operator's allowlist ConfigMap, key `allow-hosts` (default
    /// `regops-node-trust-allow`): read by plan, never written, to warn of each host node-sync
    /// will refuse.
    pub allow_list: Option<Spanned<String>>,
    /// Where `nodeTrust` is written.
    #[schemars(skip)]
    pub loc: Loc,
}

impl NodeTrust {
    pub const DEFAULT_NAMESPACE: &'static str = "regops-node-trust";
    pub const DEFAULT_CONFIG_MAP: &'static str = "regops-node-trust";
    pub const DEFAULT_ALLOW_LIST: &'static str = "regops-node-trust-allow";
    /// The allowlist's key: comma-separated `host[:port]`, as node-sync's `--allow-host`.
    pub const ALLOW_KEY: &'static str = "allow-hosts";

    pub fn namespace(&self) -> &str {
        self.namespace
            .as_ref()
            .map_or(Self::DEFAULT_NAMESPACE, |s| s.value.as_str())
    }

    pub fn config_map(&self) -> &str {
        self.config_map
            .as_ref()
            .map_or(Self::DEFAULT_CONFIG_MAP, |s| s.value.as_str())
    }

    pub fn allow_list(&self) -> &str {
        self.allow_list
            .as_ref()
            .map_or(Self::DEFAULT_ALLOW_LIST, |s| s.value.as_str())
    }
}

#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registry {
    #[schemars(skip)]
    pub name: Spanned<String>,
    /// `host[:port]` (optionally with a path prefix). Docker Hub may be written `docker.io`;
    /// it is stored as `https://index.docker.io/v1/`. No scheme: use `insecure` for plain HTTP.
    pub server: Spanned<String>,
    /// The name of the credential in `credentials` used to log in.
    pub credential: Spanned<String>,
    /// The registry speaks plain HTTP (for example Harbor without TLS).
    #[serde(default)]
    pub insecure: bool,
    /// A PEM file of CA certificates to trust for this registry (relative to the spec file,
    /// and inside the spec's directory unless `--load-restrictor none`).
    pub ca_file: Option<Spanned<PathBuf>>,
}

#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credential {
    #[schemars(skip)]
    pub name: Spanned<String>,
    /// The login name (for Harbor robot accounts, `robot$name`), or `{sops: {file, extract}}`
    /// to read it from a file sops encrypted. Required, but for a password from a credential
    /// helper, which gives the login name itself.
    #[schemars(with = "Option<UsernameSchema>")]
    pub username: Option<Spanned<String>>,
    /// `username` when it is read from a sops file (`username` is then `None`).
    #[schemars(skip)]
    pub username_sops: Option<SopsSource>,
    /// The password or token.
    pub password: SecretSource,
    /// Optional e-mail, written into the docker config as `kubectl` does.
    pub email: Option<Spanned<String>>,
    /// When the password stops working (Harbor robot accounts, Docker Hub and GitLab tokens
    /// expire): a date (`2027-03-01`, midnight UTC) or an RFC 3339 time. `plan` and `drift`
    /// warn from `warnBefore` ahead, `validate` reports it, and the drift metrics file has it.
    #[schemars(regex(pattern = r"^\d{4}-\d{2}-\d{2}([T ].+)?$"))]
    pub expires: Option<Spanned<String>>,
    /// How long before `expires` to start warning: `14d` (the default), `72h`, `1h30m` (Go's
    /// duration syntax, plus `d` for days).
    #[schemars(regex(pattern = crate::duration::SCHEMA_PATTERN))]
    pub warn_before: Option<Spanned<String>>,
    /// `expires` as Unix seconds, once validated.
    #[schemars(skip)]
    pub expires_at: Option<i64>,
    /// `warnBefore` in seconds, once validated (14 days when not given).
    #[schemars(skip)]
    pub warn_before_secs: u64,
    /// For a token minted from a cloud identity (`ecr`, `gcp`, `acr`): how long before it
    /// expires a Secret holding it is renewed (`4h`, `20m`, `1h30m`). A third of the token's lifetime
    /// when not given; Secrets with more time left are not touched, nor is the cloud asked.
    #[schemars(regex(pattern = crate::duration::SCHEMA_PATTERN))]
    pub refresh_before: Option<Spanned<String>>,
    /// `refreshBefore` in seconds, once validated (a third of the lifetime when not given).
    #[schemars(skip)]
    pub refresh_before_secs: u64,
    /// For a password read from a secret manager (`awsSecretsManager`, `vault`, ...): how often
    /// `apply --watch` reads it again (`1h`, `15m`); when not given, the controller's
    /// `--secret-refresh` (1h). A value that changed at its source rewrites the Secrets that
    /// hold it. One-shot commands read it once per run whatever this says.
    #[schemars(regex(pattern = crate::duration::SCHEMA_PATTERN))]
    pub refresh_interval: Option<Spanned<String>>,
    /// `refreshInterval` in seconds, once validated; `None` when not given.
    #[schemars(skip)]
    pub refresh_interval_secs: Option<u64>,
}

impl Credential {
    /// Where a minted credential's tokens come from; `None` for a password given in the spec,
    /// the environment, a file or a helper.
    pub fn minted(&self) -> Option<Minted> {
        Minted::of(&self.password)
    }
}

/// A cloud that mints short-lived registry tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Minted {
    Ecr,
    Gcp,
    Acr,
}

impl Minted {
    pub fn of(source: &SecretSource) -> Option<Minted> {
        match source {
            SecretSource::Ecr { .. } => Some(Minted::Ecr),
            SecretSource::Gcp { .. } => Some(Minted::Gcp),
            SecretSource::Acr { .. } => Some(Minted::Acr),
            _ => None,
        }
    }

    /// The user name the registry expects with the token.
    pub fn username(self) -> &'static str {
        match self {
            Minted::Ecr => "AWS",
            Minted::Gcp => "oauth2accesstoken",
            Minted::Acr => ACR_TOKEN_USER,
        }
    }

    /// How long a token lives: ECR's authorization token 12 hours, a Google access token
    /// one hour, an ACR refresh token three hours.
    pub fn lifetime_secs(self) -> u64 {
        match self {
            Minted::Ecr => 12 * 3_600,
            Minted::Gcp => 3_600,
            Minted::Acr => 3 * 3_600,
        }
    }

    /// The spec's key for it.
    pub fn key(self) -> &'static str {
        match self {
            Minted::Ecr => "ecr",
            Minted::Gcp => "gcp",
            Minted::Acr => "acr",
        }
    }
}

/// The user name ACR takes with a refresh token from `/oauth2/exchange`.
pub const ACR_TOKEN_USER: &str = "00000000-0000-0000-0000-000000000000";

/// Amazon ECR: `GetAuthorizationToken`, with the AWS credentials regops finds (environment,
/// shared config, web identity, EKS Pod Identity, instance metadata), as `roleArn` if given.
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EcrSource {
    /// The registry's AWS region (`eu-west-1`).
    pub region: Spanned<String>,
    /// The account whose registry to log in to (12 digits); the caller's own when not given.
    pub registry_id: Option<Spanned<String>>,
    /// A role to assume through STS first (`arn:aws:iam::123456789012:role/puller`).
    pub role_arn: Option<Spanned<String>>,
    #[schemars(skip)]
    pub loc: Loc,
}

/// Google Artifact Registry and GCR: an access token from Application Default Credentials
/// (`GOOGLE_APPLICATION_CREDENTIALS`: a service-account key or an `external_account`
/// configuration; else the metadata server, as on GKE with Workload Identity).
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GcpSource {
    #[schemars(skip)]
    pub loc: Loc,
}

/// Azure Container Registry: an Entra ID token (a client secret from `AZURE_CLIENT_SECRET`, or
/// the workload identity's federated token file), exchanged at the registry's
/// `/oauth2/exchange` for a refresh token.
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcrSource {
    /// The Entra tenant; `AZURE_TENANT_ID` when not given.
    pub tenant_id: Option<Spanned<String>>,
    /// The application (client) id; `AZURE_CLIENT_ID` when not given.
    pub client_id: Option<Spanned<String>>,
    #[schemars(skip)]
    pub loc: Loc,
}

/// A credential's `username` as the schema shows it: a name, or a value read from a sops file.
#[derive(JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum UsernameSchema {
    /// The login name as written.
    Name(String),
    /// Read from a file sops encrypted.
    Sops { sops: Box<SopsSource> },
}

/// A value read from a file sops encrypted (YAML, JSON, dotenv, INI or binary), with the age
/// identities regops finds (those sops finds too: `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`,
/// `~/.config/sops/age/keys.txt`, `SOPS_AGE_SSH_PRIVATE_KEY_FILE`, `SOPS_AGE_KEY_CMD`). Its MAC
/// is checked as sops checks it; files whose data key is not age-encrypted, or that use key
/// groups, are refused.
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SopsSource {
    /// The file's path, relative to the spec file (inside the spec's directory unless
    /// `--load-restrictor none`).
    pub file: Spanned<PathBuf>,
    /// Which value, in sops's `--extract` syntax: `["harbor"]["password"]`, `["robots"][0]`.
    /// Required but for a binary file, whose whole content is the value.
    pub extract: Option<Spanned<String>>,
    /// How sops wrote the file; by default from its name's ending, as sops picks it (`.yaml`
    /// and `.yml`, `.json`, `.env`, `.ini`, else binary).
    #[schemars(extend("enum" = ["yaml", "json", "dotenv", "ini", "binary"]))]
    pub format: Option<Spanned<String>>,
    /// `base64`: the value is base64, as in a Kubernetes Secret's `data`.
    #[schemars(extend("enum" = ["base64"]))]
    pub decode: Option<Spanned<String>>,
    /// The value is a JSON document (a `.dockerconfigjson`): read this key of it, or this path
    /// in `--extract` syntax (`["auths"]["harbor.example.com"]["password"]`). After `decode`.
    pub json_key: Option<Spanned<String>>,
    #[schemars(skip)]
    pub loc: Loc,
}

/// A secret of AWS Secrets Manager. The endpoint is the region's
/// (`secretsmanager.<region>.amazonaws.com`, `.amazonaws.com.cn` in China), never the spec's.
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsSecretsManagerSource {
    /// The secret's name or ARN, as `GetSecretValue`'s `SecretId`; the operator must allow it
    /// with `--allow-secret aws:NAME` (or a prefix: `aws:registry/*`).
    pub secret_id: Spanned<String>,
    /// The AWS region the secret is in (`eu-west-1`, `cn-north-1`, `us-gov-west-1`).
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-\d+$"))]
    pub region: Spanned<String>,
    /// The version's staging label (`AWSCURRENT` when not given).
    pub version_stage: Option<Spanned<String>>,
    /// The secret's `SecretString` is a JSON object: read this key of it.
    pub json_key: Option<Spanned<String>>,
    #[schemars(skip)]
    pub loc: Loc,
}

/// A field of a secret in a Vault or OpenBao KV version 2 engine. The address, namespace and
/// authentication are the operator's (`VAULT_ADDR`, `VAULT_NAMESPACE`, `VAULT_TOKEN` or
/// Kubernetes auth with `--vault-role`), never the spec's.
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VaultSource {
    /// The secret's path in the engine (`registry/harbor`); the operator must allow
    /// `MOUNT/PATH` with `--allow-secret vault:secret/registry/harbor` (or a prefix:
    /// `vault:secret/registry/*`).
    pub path: Spanned<String>,
    /// Which field of the secret's data.
    pub field: Spanned<String>,
    /// The engine's mount (`secret` when not given).
    pub mount: Option<Spanned<String>>,
    #[schemars(skip)]
    pub loc: Loc,
}

impl VaultSource {
    /// The engine's mount: `mount`, else `secret`.
    pub fn mount(&self) -> &str {
        self.mount.as_ref().map_or("secret", |m| m.value.as_str())
    }

    /// `MOUNT/PATH`, as the operator's allowlist names it.
    pub fn allow_name(&self) -> String {
        format!("{}/{}", self.mount(), self.path.value)
    }
}

/// A secret version of Google Secret Manager. The endpoint is Google's
/// (`secretmanager.googleapis.com`), never the spec's; the token the one regops mints from
/// Application Default Credentials.
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GcpSecretManagerSource {
    /// The version's resource name, `projects/PROJECT/secrets/SECRET/versions/VERSION`
    /// (`latest` or a number); the operator must allow it with `--allow-secret gcp:NAME` (or
    /// a prefix: `gcp:projects/my-project/secrets/registry-*`).
    #[schemars(regex(
        pattern = r"^projects/[a-z0-9-]+/secrets/[A-Za-z0-9_-]{1,255}/versions/(latest|[1-9][0-9]*)$"
    ))]
    pub name: Spanned<String>,
    /// The secret's value is a JSON object: read this key of it.
    pub json_key: Option<Spanned<String>>,
    #[schemars(skip)]
    pub loc: Loc,
}

/// A secret of Azure Key Vault. The endpoint is the vault's in the operator's cloud
/// (`<vault>.vault.azure.net`, `.vault.azure.cn`, `.vault.usgovcloudapi.net`), never the spec's;
/// the token an Entra ID token of the operator's identity.
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureKeyVaultSource {
    /// The vault's name (3 to 24 letters, digits and hyphens).
    #[schemars(regex(pattern = r"^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$"))]
    pub vault: Spanned<String>,
    /// The secret's name (1 to 127 letters, digits and hyphens); the operator must allow
    /// `VAULT/SECRET` with `--allow-secret azure:myvault/registry-harbor` (or a prefix:
    /// `azure:myvault/registry-*`).
    #[schemars(regex(pattern = r"^[A-Za-z0-9-]{1,127}$"))]
    pub secret: Spanned<String>,
    /// The secret's version (32 hexadecimal digits); the current one when not given.
    #[schemars(regex(pattern = r"^[0-9A-Fa-f]{32}$"))]
    pub version: Option<Spanned<String>>,
    /// The secret's value is a JSON object: read this key of it.
    pub json_key: Option<Spanned<String>>,
    #[schemars(skip)]
    pub loc: Loc,
}

impl AzureKeyVaultSource {
    /// `VAULT/SECRET`, as the operator's allowlist names it.
    pub fn allow_name(&self) -> String {
        format!("{}/{}", self.vault.value, self.secret.value)
    }
}

/// How long before a credential's `expires` plan and drift warn, when `warnBefore` is not given.
pub const DEFAULT_WARN_BEFORE_SECS: u64 = 14 * 86_400;

/// Where a secret value comes from.
#[derive(Clone, Debug, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum SecretSource {
    /// age ciphertext, ASCII-armored, written by `regops encrypt`.
    Age(#[schemars(regex(pattern = r"^\s*-----BEGIN AGE ENCRYPTED FILE-----"))] Spanned<String>),
    /// ASCII-armored age ciphertext in a file beside the spec.
    AgeFile {
        /// The file's path, relative to the spec file (inside the spec's directory unless
        /// `--load-restrictor none`).
        #[serde(rename = "ageFile")]
        age_file: Spanned<PathBuf>,
    },
    /// Read from an environment variable when regops runs.
    Env {
        /// The variable's name: `REGOPS_CRED_*` (or a prefix given with `--allow-env`); the
        /// variables holding regops' and the clouds' keys are never readable.
        env: Spanned<String>,
    },
    /// Read from a file when regops runs (a mounted Secret, for example); one trailing newline
    /// is dropped.
    File {
        /// The file's path, relative to the spec file (inside the spec's directory unless
        /// `--load-restrictor none`).
        file: Spanned<PathBuf>,
    },
    /// Asked of a docker credential helper when regops runs: `docker-credential-NAME get`
    /// (found on PATH) with the registry's server on its standard input, as docker does. It
    /// gives the login name and the password; the credential serves one registry server.
    Helper {
        /// The helper's name: `ecr-login`, `gcr`, `pass`, `secretservice`, ...
        helper: Spanned<String>,
    },
    /// Read from a file sops encrypted, when regops runs.
    Sops { sops: SopsSource },
    /// Read from AWS Secrets Manager (`GetSecretValue`) when regops runs, with the AWS
    /// identity regops finds; only a secret the operator allows (`--allow-secret aws:...`).
    AwsSecretsManager {
        #[serde(rename = "awsSecretsManager")]
        aws_secrets_manager: AwsSecretsManagerSource,
    },
    /// Read from HashiCorp Vault or OpenBao (KV version 2) when regops runs, at the operator's
    /// `VAULT_ADDR`; only a secret the operator allows (`--allow-secret vault:...`).
    Vault { vault: VaultSource },
    /// Read from Google Secret Manager (`versions.access`) when regops runs, with the Google
    /// token regops mints; only a secret the operator allows (`--allow-secret gcp:...`).
    GcpSecretManager {
        #[serde(rename = "gcpSecretManager")]
        gcp_secret_manager: GcpSecretManagerSource,
    },
    /// Read from Azure Key Vault ("Get Secret") when regops runs, with the operator's Entra ID
    /// identity; only a secret the operator allows (`--allow-secret azure:...`).
    AzureKeyVault {
        #[serde(rename = "azureKeyVault")]
        azure_key_vault: AzureKeyVaultSource,
    },
    /// A token minted from Amazon ECR when a Secret needs a new one.
    Ecr { ecr: EcrSource },
    /// A token minted from Google Cloud when a Secret needs a new one.
    Gcp { gcp: GcpSource },
    /// A token minted from Azure Container Registry when a Secret needs a new one.
    Acr { acr: AcrSource },
}

impl SecretSource {
    pub fn loc(&self) -> Loc {
        match self {
            SecretSource::Age(s) => s.loc,
            SecretSource::AgeFile { age_file: s } | SecretSource::File { file: s } => s.loc,
            SecretSource::Env { env } => env.loc,
            SecretSource::Helper { helper } => helper.loc,
            SecretSource::Sops { sops } => sops.loc,
            SecretSource::AwsSecretsManager {
                aws_secrets_manager,
            } => aws_secrets_manager.loc,
            SecretSource::Vault { vault } => vault.loc,
            SecretSource::GcpSecretManager { gcp_secret_manager } => gcp_secret_manager.loc,
            SecretSource::AzureKeyVault { azure_key_vault } => azure_key_vault.loc,
            SecretSource::Ecr { ecr } => ecr.loc,
            SecretSource::Gcp { gcp } => gcp.loc,
            SecretSource::Acr { acr } => acr.loc,
        }
    }
}

#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scope {
    #[schemars(skip)]
    pub name: Spanned<String>,
    /// Namespaces by name.
    #[serde(default)]
    pub namespaces: Vec<Spanned<String>>,
    /// Namespaces by label.
    pub selector: Option<LabelSelector>,
    /// The namespaces of a Rancher project: `<cluster-id>:<project-id>`, matched against the
    /// namespace annotation `field.cattle.io/projectId`.
    pub rancher_project: Option<Spanned<String>>,
    /// The namespaces of a KubeSphere workspace (label `kubesphere.io/workspace`).
    pub kubesphere_workspace: Option<Spanned<String>>,
    /// Namespaces never in this scope. System namespaces (kube-system, kube-public,
    /// kube-node-lease, cattle-*, kubesphere-*) are excluded unless named in `namespaces`.
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    /// The clusters (of the spec's `clusters`) this scope is on: those named and those whose
    /// labels match. Every cluster when omitted; a scope with `rancherProject` is then on the
    /// clusters whose `rancherId` is the project's cluster id.
    pub clusters: Option<ClusterSelector>,
}

/// A cluster the spec is applied to.
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    #[schemars(skip)]
    pub name: Spanned<String>,
    /// The kubeconfig context that reaches the cluster; the cluster's name when omitted.
    pub context: Option<Spanned<String>>,
    /// The kubeconfig file holding the context, relative to the spec file and inside the
    /// spec's directory (`~/` and other paths outside only with `--load-restrictor none`); its
    /// user may not run a plugin nor its cluster skip TLS checks unless
    /// `--allow-kubeconfig-exec`. When omitted: the operator's `--kubeconfig`, else
    /// `$KUBECONFIG`, else `~/.kube/config`.
    pub kubeconfig: Option<Spanned<PathBuf>>,
    /// Labels that scopes select clusters by (`env: prod`, `region: eu`).
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<String>>,
    /// The cluster's id in Rancher (`c-m-abcd1234`, `local`): a scope's `rancherProject`
    /// must name a project of it.
    pub rancher_id: Option<Spanned<String>>,
}

impl Cluster {
    /// The kubeconfig context: `context`, or the cluster's name.
    pub fn context(&self) -> &str {
        self.context
            .as_ref()
            .map_or(self.name.value.as_str(), |c| c.value.as_str())
    }
}

/// Which clusters a scope is on: those in `names`, and those whose labels match
/// `matchLabels` and `matchExpressions` (when given).
#[derive(Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSelector {
    /// Clusters by name.
    #[serde(default)]
    pub names: Vec<Spanned<String>>,
    /// Clusters by label, as a label selector's `matchLabels`.
    #[serde(default)]
    pub match_labels: BTreeMap<String, Spanned<String>>,
    /// Clusters by label, as a label selector's `matchExpressions`.
    #[serde(default)]
    pub match_expressions: Vec<LabelRequirement>,
    #[schemars(skip)]
    pub loc: Loc,
}

impl ClusterSelector {
    /// Whether it selects `cluster`: by name, or by labels when it has label terms.
    pub fn selects(&self, cluster: &Cluster) -> bool {
        self.names.iter().any(|n| n.value == cluster.name.value)
            || ((!self.match_labels.is_empty() || !self.match_expressions.is_empty())
                && labels_match(&self.match_labels, &self.match_expressions, |k| {
                    cluster.labels.get(k).map(|v| v.value.as_str())
                }))
    }
}

/// Whether labels (looked up with `get`) satisfy `match_labels` and `match_expressions`, as
/// `metav1.LabelSelector` defines: every term must hold.
pub fn labels_match<'a>(
    match_labels: &BTreeMap<String, Spanned<String>>,
    match_expressions: &[LabelRequirement],
    get: impl Fn(&str) -> Option<&'a str>,
) -> bool {
    match_labels
        .iter()
        .all(|(k, v)| get(k) == Some(v.value.as_str()))
        && match_expressions.iter().all(|r| {
            let value = get(r.key.as_str());
            let in_values = value.is_some_and(|v| r.values.iter().any(|x| x.value == v));
            match r.operator.value {
                SelectorOperator::In => in_values,
                SelectorOperator::NotIn => !in_values,
                SelectorOperator::Exists => value.is_some(),
                SelectorOperator::DoesNotExist => value.is_none(),
            }
        })
}

impl LabelSelector {
    /// Whether labels (looked up with `get`) match this selector.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        labels_match(&self.match_labels, &self.match_expressions, get)
    }
}

/// A Kubernetes label selector.
#[derive(Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub match_expressions: Vec<LabelRequirement>,
    #[schemars(skip)]
    pub loc: Loc,
    #[schemars(skip)]
    pub label_keys: BTreeMap<String, Loc>,
}

#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelRequirement {
    pub key: Spanned<String>,
    pub operator: Spanned<SelectorOperator>,
    #[serde(default)]
    pub values: Vec<Spanned<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullSecret {
    #[schemars(skip)]
    pub name: Spanned<String>,
    /// Registries whose logins go into this Secret's `.dockerconfigjson` (one `auths` entry each).
    pub registries: Vec<Spanned<String>>,
    /// The scope whose namespaces get this Secret.
    pub scope: Spanned<String>,
    /// Take over an existing Secret of this name that regops does not own yet.
    #[serde(default)]
    pub adopt: bool,
}

#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Binding {
    /// The pull secret to reference.
    pub pull_secret: Spanned<String>,
    /// ServiceAccounts (in every namespace of the pull secret's scope) whose
    /// `imagePullSecrets` get the secret; pods using them get it at admission.
    #[serde(default)]
    pub service_accounts: Vec<Spanned<String>>,
    /// Workloads whose pod template gets the secret in `imagePullSecrets`.
    pub workloads: Option<WorkloadSelector>,
    /// Also keep KubeSphere's `kubesphere.io/imagepullsecrets` annotation on the selected
    /// workloads in step. Needs `workloads`.
    #[serde(default)]
    pub kubesphere_annotation: bool,
    #[schemars(skip)]
    pub loc: Loc,
}

#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// Workload kinds; when omitted, Deployment, StatefulSet, DaemonSet, Job and CronJob
    /// (a ReplicaSet, or a kind the spec declares in `workloadKinds`, is selected only when
    /// named).
    #[serde(default)]
    pub kinds: Vec<Spanned<WorkloadKind>>,
    /// Workloads by label.
    pub selector: Option<LabelSelector>,
    /// Image patterns (`*` matches any text): a workload is selected when a container or init
    /// container pulls a matching image. Images are normalised as the kubelet does (`nginx` is
    /// `docker.io/library/nginx`). When omitted, workloads that pull from one of the pull
    /// secret's registries are selected.
    #[serde(default)]
    pub images: Vec<Spanned<String>>,
    #[schemars(skip)]
    pub loc: Loc,
}

impl WorkloadSelector {
    /// The kinds this selector selects: those it names, or the kinds selected by default
    /// ([`WorkloadKind::defaults`]) when it names none.
    pub fn selected_kinds(&self) -> Vec<WorkloadKind> {
        if self.kinds.is_empty() {
            WorkloadKind::defaults().collect()
        } else {
            self.kinds.iter().map(|k| k.value).collect()
        }
    }
}

impl SelectorOperator {
    pub const ALL: [SelectorOperator; 4] = [
        SelectorOperator::In,
        SelectorOperator::NotIn,
        SelectorOperator::Exists,
        SelectorOperator::DoesNotExist,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SelectorOperator::In => "In",
            SelectorOperator::NotIn => "NotIn",
            SelectorOperator::Exists => "Exists",
            SelectorOperator::DoesNotExist => "DoesNotExist",
        }
    }
}

/// The whole spec, loaded and validated, with where each file lives (relative paths in the
/// spec are resolved against the file that names them).
#[derive(Clone, Debug)]
pub struct LoadedSpec {
    pub spec: Spec,
    /// The spec's name (from `metadata.name` or the first file's stem).
    pub name: String,
}
