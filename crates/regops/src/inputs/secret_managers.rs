//! Reading credentials from secret managers: AWS Secrets Manager (`awsSecretsManager:`),
//! Google Secret Manager (`gcpSecretManager:`), Azure Key Vault (`azureKeyVault:`) and
//! HashiCorp Vault / OpenBao KV version 2 (`vault:`). The spec names the secret, never the
//! endpoint: AWS's is the region's (partition-aware, as ECR's in [`crate::inputs::mint::aws`]),
//! Google's is `secretmanager.googleapis.com`, Key Vault's the vault's in the operator's Azure
//! cloud, Vault's is the operator's `VAULT_ADDR`. All are HTTPS unless on loopback,
//! time-limited and size-capped as the minting calls are ([`crate::inputs::mint::Request::send`]).
//! Values live in zeroizing buffers; an error names the secret and the step, never a value or
//! a body.

use std::time::Duration;

use regops_spec::trust::{Policy, VaultAuth};
use regops_spec::{
    AwsSecretsManagerSource, AzureKeyVaultSource, GcpSecretManagerSource, SecretSource, VaultSource,
};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::inputs::mint::{Env, MintError, Reply, Request, aws};

/// Why a value could not be had from what a secret manager answered, or from the operator's
/// settings. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("jsonKey `{0}`: the secret is not a JSON object")]
    NotAnObject(String),
    #[error("jsonKey `{0}`: its value is not a string")]
    NotAString(String),
    #[error("jsonKey `{0}`: the secret has no such key")]
    NoSuchKey(String),
    #[error("VAULT_ADDR is not set: the operator names the Vault regops reads")]
    NoVaultAddr,
    #[error("{0}")]
    PlainHttp(crate::inputs::mint::PlainHttpRefused),
    #[error("VAULT_AUTH is `{0}`, not one of token, kubernetes, jwt")]
    UnknownVaultAuth(String),
    #[error("the answer is not JSON")]
    NotJson,
    #[error("the answer has no {0}")]
    Missing(&'static str),
    #[error("its {0} is not base64")]
    NotBase64(&'static str),
    #[error("its {0} is not text (UTF-8)")]
    NotText(&'static str),
    #[error(
        "the payload's CRC32C checksum does not match its data (the answer was damaged on the way)"
    )]
    Checksum,
}

/// The longest a read from Google Secret Manager, Key Vault or Vault may take, its answer
/// included.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// The Kubernetes service-account token Vault's Kubernetes auth logs in with, where the
/// kubelet mounts it.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The endpoint of AWS Secrets Manager in `region`: `AWS_ENDPOINT_URL_SECRETS_MANAGER` (the
/// SDKs' name for its override), else `AWS_ENDPOINT_URL`, else
/// `https://secretsmanager.<region>.<partition's domain>`.
pub fn aws_endpoint(region: &str, env: Env<'_>) -> String {
    env.var("AWS_ENDPOINT_URL_SECRETS_MANAGER")
        .or_else(|| env.var("AWS_ENDPOINT_URL"))
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| {
            format!(
                "https://secretsmanager.{region}.{}",
                aws::dns_suffix(region)
            )
        })
}

/// The request body of `GetSecretValue`
/// (<https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html>):
/// `SecretId`, and `VersionStage` when given.
pub fn aws_request_body(src: &AwsSecretsManagerSource) -> String {
    let mut body = serde_json::json!({ "SecretId": src.secret_id.value });
    if let Some(stage) = &src.version_stage {
        body["VersionStage"] = serde_json::Value::String(stage.value.clone());
    }
    body.to_string()
}

/// The AWS JSON protocol's error: `HTTP 400: ThrottlingException: Rate exceeded`.
fn aws_error(reply: &Reply) -> String {
    let v = reply.json();
    let field = |k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k))
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let ty = field("__type");
    let ty = ty.rsplit('#').next().unwrap_or_default().to_string();
    let message = [field("message"), field("Message")].concat();
    let mut text = format!("HTTP {}", reply.status);
    for part in [ty.as_str(), message.as_str()] {
        if !part.is_empty() {
            text.push_str(": ");
            text.push_str(&regops_spec::untrusted::terminal(part));
        }
    }
    if ty == "ThrottlingException" || reply.status == 429 {
        text.push_str(" (AWS throttled the request; run again later)");
    }
    text
}

/// `GetSecretValue` of `src`, signed with the AWS identity regops finds: the `SecretString`
/// (or the `SecretBinary` when it is text), then `jsonKey` of it when given.
pub async fn aws_secret(
    src: &AwsSecretsManagerSource,
    env: Env<'_>,
) -> Result<Zeroizing<String>, MintError> {
    let region = src.region.value.as_str();
    let creds = aws::chain(region, env).await?;
    let url = format!("{}/", aws_endpoint(region, env));
    let step = format!(
        "Secrets Manager GetSecretValue in {region} (as {})",
        creds.origin
    );
    let reply = aws::signed_post(
        &url,
        "secretsmanager",
        region,
        &creds,
        &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "secretsmanager.GetSecretValue"),
        ],
        Zeroizing::new(aws_request_body(src).into_bytes()),
        env,
    )
    .await
    .map_err(|e| MintError::new(&step, e))?;
    if !reply.ok() {
        return Err(MintError::new(step, aws_error(&reply)));
    }
    // The parsed tree is not zeroed (serde_json's values cannot be); the body it came from is.
    let v = serde_json::from_slice::<serde_json::Value>(&reply.body)
        .map_err(|_| MintError::new(&step, "the answer is not JSON"))?;
    let value = match (v.get("SecretString"), v.get("SecretBinary")) {
        (Some(serde_json::Value::String(s)), _) => Zeroizing::new(s.clone()),
        (_, Some(serde_json::Value::String(b))) => {
            use base64::Engine;
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|_| MintError::new(&step, "its SecretBinary is not base64"))?,
            );
            Zeroizing::new(
                std::str::from_utf8(&bytes)
                    .map_err(|_| MintError::new(&step, "its SecretBinary is not text"))?
                    .to_string(),
            )
        }
        _ => {
            return Err(MintError::new(
                &step,
                "the answer has neither SecretString nor SecretBinary",
            ));
        }
    };
    with_json_key(value, src.json_key.as_ref(), &step)
}

/// The string at `key` of the JSON object `text`. The error names the key, never the text.
pub fn json_key(text: &str, key: &str) -> Result<Zeroizing<String>, SourceError> {
    let v = serde_json::from_str::<serde_json::Value>(text)
        .map_err(|_| SourceError::NotAnObject(key.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| SourceError::NotAnObject(key.to_string()))?;
    match obj.get(key) {
        Some(serde_json::Value::String(s)) => Ok(Zeroizing::new(s.clone())),
        Some(_) => Err(SourceError::NotAString(key.to_string())),
        None => Err(SourceError::NoSuchKey(key.to_string())),
    }
}

/// `value`, or `jsonKey` of it when the source names one; a failure is `step`'s.
fn with_json_key(
    value: Zeroizing<String>,
    key: Option<&regops_spec::Spanned<String>>,
    step: &str,
) -> Result<Zeroizing<String>, MintError> {
    match key {
        Some(key) => json_key(&value, &key.value).map_err(|e| MintError::new(step, e.to_string())),
        None => Ok(value),
    }
}

/// The endpoint of Google Secret Manager: `CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER`
/// (gcloud's name for its override, `api_endpoint_overrides/secretmanager`), else
/// `https://secretmanager.googleapis.com`.
pub fn gcp_endpoint(env: Env<'_>) -> String {
    env.var("CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER")
        .filter(|u| !u.is_empty())
        .map(|u| {
            let u = u.trim_end_matches('/');
            u.strip_suffix("/v1").unwrap_or(u).to_string()
        })
        .unwrap_or_else(|| "https://secretmanager.googleapis.com".to_string())
}

/// The URL of `projects.secrets.versions.access` for the version `name`
/// (<https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets.versions/access>):
/// `GET https://secretmanager.googleapis.com/v1/{name=projects/*/secrets/*/versions/*}:access`.
/// `name` was held to [`regops_spec::rules::gcp_secret_name`] when the spec was read: path
/// segments of letters, digits, `-` and `_` only.
pub fn gcp_access_url(name: &str, env: Env<'_>) -> String {
    format!("{}/v1/{name}:access", gcp_endpoint(env))
}

/// CRC32C (Castagnoli, RFC 3720 appendix B.4), as Secret Manager's `payload.dataCrc32c`.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

/// The value of a `versions.access` answer (`AccessSecretVersionResponse`): `payload.data`
/// decoded from base64, checked against `payload.dataCrc32c` when the answer has one (an
/// int64, which JSON carries as a string).
pub fn gcp_payload(body: &[u8]) -> Result<Zeroizing<String>, SourceError> {
    use base64::Engine;
    // The parsed tree is not zeroed (serde_json's values cannot be); the body it came from is.
    let v = serde_json::from_slice::<serde_json::Value>(body).map_err(|_| SourceError::NotJson)?;
    let data = v
        .pointer("/payload/data")
        .and_then(|d| d.as_str())
        .ok_or(SourceError::Missing("payload.data"))?;
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| SourceError::NotBase64("payload.data"))?,
    );
    if let Some(sum) = v.pointer("/payload/dataCrc32c") {
        let sum = match sum {
            serde_json::Value::String(s) => s.parse::<u64>().ok(),
            serde_json::Value::Number(n) => n.as_u64(),
            _ => None,
        };
        if sum != Some(u64::from(crc32c(&bytes))) {
            return Err(SourceError::Checksum);
        }
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| SourceError::NotText("payload.data"))?;
    Ok(Zeroizing::new(text.to_string()))
}

/// A cloud's JSON error answer (`{"error": {...}}`) in words: the status, then the two
/// fields `parts` names when present (escaped: they are the service's text), and what a 429
/// means for `who`.
fn error_answer(reply: &Reply, parts: [&str; 2], who: &str) -> String {
    let v = reply.json();
    let field = |k: &str| {
        v.as_ref()
            .and_then(|v| v.pointer(&format!("/error/{k}")))
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let mut text = format!("HTTP {}", reply.status);
    for part in parts.map(field) {
        if !part.is_empty() {
            text.push_str(": ");
            text.push_str(&regops_spec::untrusted::terminal(&part));
        }
    }
    if reply.status == 429 {
        text.push_str(&format!(" ({who} throttled the request; run again later)"));
    }
    text
}

/// Google's error answer (`{"error": {"code", "message", "status"}}`): `HTTP 403:
/// PERMISSION_DENIED: Permission 'secretmanager.versions.access' denied ...`.
fn gcp_error(reply: &Reply) -> String {
    error_answer(reply, ["status", "message"], "Google")
}

/// The secret version `src` of Google Secret Manager, with the token regops mints from
/// Application Default Credentials ([`crate::inputs::mint::gcp::mint`]) as `Authorization: Bearer`,
/// then `jsonKey` of it when given.
pub async fn gcp_secret(
    src: &GcpSecretManagerSource,
    env: Env<'_>,
) -> Result<Zeroizing<String>, MintError> {
    let token = crate::inputs::mint::gcp::mint(env).await?;
    let url = gcp_access_url(&src.name.value, env);
    let step = format!("Secret Manager access of {}", src.name.value);
    let mut req = Request::get(&url, env).header(
        "authorization",
        format!("Bearer {}", token.password.expose_secret()),
    );
    req.timeout = READ_TIMEOUT;
    let reply = req.send().await.map_err(|e| MintError::new(&step, e))?;
    if !reply.ok() {
        return Err(MintError::new(step, gcp_error(&reply)));
    }
    let value = gcp_payload(&reply.body).map_err(|e| MintError::new(&step, e.to_string()))?;
    with_json_key(value, src.json_key.as_ref(), &step)
}

/// An Azure cloud's Key Vault: the DNS suffix of its vaults and the Entra ID scope of its
/// tokens (<https://learn.microsoft.com/en-us/azure/key-vault/general/about-keys-secrets-certificates#dns-suffixes-for-object-identifiers>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyVaultCloud {
    pub suffix: &'static str,
    pub scope: &'static str,
}

/// The Key Vault of the operator's Azure cloud, which the Entra ID authority the operator
/// chose tells (`AZURE_AUTHORITY_HOST`, as for every Entra ID token regops gets):
/// `login.chinacloudapi.cn` is AzureChinaCloud (`vault.azure.cn`),
/// `login.microsoftonline.us` AzureUSGovernment (`vault.usgovcloudapi.net`), any other (the
/// default `login.microsoftonline.com`) the public cloud (`vault.azure.net`).
pub fn key_vault_cloud(env: Env<'_>) -> KeyVaultCloud {
    let authority = env.var("AZURE_AUTHORITY_HOST").unwrap_or_default();
    let host = authority
        .split("://")
        .nth(1)
        .unwrap_or(&authority)
        .split(['/', ':'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "login.chinacloudapi.cn" => KeyVaultCloud {
            suffix: "vault.azure.cn",
            scope: "https://vault.azure.cn/.default",
        },
        "login.microsoftonline.us" => KeyVaultCloud {
            suffix: "vault.usgovcloudapi.net",
            scope: "https://vault.usgovcloudapi.net/.default",
        },
        _ => KeyVaultCloud {
            suffix: "vault.azure.net",
            scope: "https://vault.azure.net/.default",
        },
    }
}

/// The URL of Key Vault's "Get Secret"
/// (<https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/get-secret/get-secret?view=rest-keyvault-secrets-7.4>:
/// `GET {vaultBaseUrl}/secrets/{secret-name}/{secret-version}?api-version=7.4`, no version for
/// the current one). The vault's base is `https://<vault>.<the cloud's suffix>`, or the
/// operator's `REGOPS_AZURE_KEY_VAULT_URL` (a private endpoint, a test's fake) with `{vault}`
/// in it replaced by the vault's name. The names were held to Azure's rules when the spec was
/// read ([`regops_spec::rules::azure_vault_name`]): no `.`, `/`, `@` or `%` in them.
pub fn key_vault_url(src: &AzureKeyVaultSource, env: Env<'_>) -> String {
    let base = match env
        .var("REGOPS_AZURE_KEY_VAULT_URL")
        .filter(|u| !u.is_empty())
    {
        Some(template) => template
            .trim_end_matches('/')
            .replace("{vault}", &src.vault.value),
        None => format!(
            "https://{}.{}",
            src.vault.value,
            key_vault_cloud(env).suffix
        ),
    };
    let version = src
        .version
        .as_ref()
        .map_or(String::new(), |v| format!("/{}", v.value));
    format!(
        "{base}/secrets/{}{version}?api-version=7.4",
        src.secret.value
    )
}

/// Key Vault's error answer (`{"error": {"code", "message"}}`): `HTTP 403: Forbidden: ...`.
fn key_vault_error(reply: &Reply) -> String {
    error_answer(reply, ["code", "message"], "Key Vault")
}

/// The secret `src` of Azure Key Vault, with an Entra ID token of the operator's identity
/// (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, and `AZURE_FEDERATED_TOKEN_FILE` or
/// `AZURE_CLIENT_SECRET`, as for ACR) for the vaults of the operator's cloud, as
/// `Authorization: Bearer`; then `jsonKey` of its value when given.
pub async fn azure_secret(
    src: &AzureKeyVaultSource,
    env: Env<'_>,
) -> Result<Zeroizing<String>, MintError> {
    let cloud = key_vault_cloud(env);
    let (token, _) = crate::inputs::mint::acr::entra_token(None, None, cloud.scope, env).await?;
    let url = key_vault_url(src, env);
    let step = format!(
        "Key Vault get of the secret {} in {}",
        src.secret.value, src.vault.value
    );
    let mut req =
        Request::get(&url, env).header("authorization", format!("Bearer {}", token.as_str()));
    req.timeout = READ_TIMEOUT;
    let reply = req.send().await.map_err(|e| MintError::new(&step, e))?;
    if !reply.ok() {
        return Err(MintError::new(step, key_vault_error(&reply)));
    }
    // The parsed tree is not zeroed (serde_json's values cannot be); the body it came from is.
    let v = serde_json::from_slice::<serde_json::Value>(&reply.body)
        .map_err(|_| MintError::new(&step, SourceError::NotJson.to_string()))?;
    let value = v
        .get("value")
        .and_then(|x| x.as_str())
        .map(|x| Zeroizing::new(x.to_string()))
        .ok_or_else(|| MintError::new(&step, SourceError::Missing("value").to_string()))?;
    with_json_key(value, src.json_key.as_ref(), &step)
}

/// The operator's Vault: `VAULT_ADDR` (https unless loopback), never the spec's.
fn vault_addr(env: Env<'_>) -> Result<String, SourceError> {
    let addr = env
        .var("VAULT_ADDR")
        .filter(|a| !a.is_empty())
        .ok_or(SourceError::NoVaultAddr)?;
    let addr = addr.trim_end_matches('/').to_string();
    crate::inputs::mint::plain_http_check(&addr).map_err(SourceError::PlainHttp)?;
    Ok(addr)
}

/// Vault's error answer: `HTTP 403: permission denied` (its `errors` list).
fn vault_error(reply: &Reply) -> String {
    let errors: Vec<String> = reply
        .json()
        .and_then(|v| {
            v.get("errors")?.as_array().map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str())
                    .map(|e| regops_spec::untrusted::terminal(e).to_string())
                    .collect()
            })
        })
        .unwrap_or_default();
    if errors.is_empty() {
        format!("HTTP {}", reply.status)
    } else {
        format!("HTTP {}: {}", reply.status, errors.join("; "))
    }
}

/// How regops logs in to Vault: `--vault-auth`, else `VAULT_AUTH`, else `VAULT_TOKEN` when
/// it is set and Kubernetes auth when it is not.
fn vault_auth(policy: &Policy, env: Env<'_>) -> Result<VaultAuth, SourceError> {
    if let Some(a) = policy.vault_auth {
        return Ok(a);
    }
    if let Some(name) = env.var("VAULT_AUTH").filter(|a| !a.is_empty()) {
        return VaultAuth::from_name(&name).ok_or(SourceError::UnknownVaultAuth(
            regops_spec::untrusted::terminal(&name).to_string(),
        ));
    }
    Ok(if env.var("VAULT_TOKEN").is_some_and(|t| !t.is_empty()) {
        VaultAuth::Token
    } else {
        VaultAuth::Kubernetes
    })
}

/// A Vault token, by the method [`vault_auth`] chooses:
/// - `token`: `VAULT_TOKEN`;
/// - `kubernetes`: a Kubernetes auth login
///   (<https://developer.hashicorp.com/vault/api-docs/auth/kubernetes#login>: `POST
///   /v1/auth/<mount>/login` with `{"jwt", "role"}`) with the pod's service-account token
///   (`VAULT_K8S_TOKEN_FILE`, else [`SERVICE_ACCOUNT_TOKEN`]) at the auth mount
///   `VAULT_K8S_AUTH_MOUNT` (`kubernetes`);
/// - `jwt`: a JWT/OIDC auth login
///   (<https://developer.hashicorp.com/vault/api-docs/auth/jwt#jwt-login>: `POST
///   /v1/auth/<mount>/login` with `{"role", "jwt"}`) with the JWT in `VAULT_JWT_FILE`, else
///   the pod's service-account token, at the auth mount `VAULT_JWT_AUTH_MOUNT` (`jwt`).
///
/// Both logins take the role from `--vault-role`, else `VAULT_ROLE`.
async fn vault_token(
    addr: &str,
    policy: &Policy,
    env: Env<'_>,
) -> Result<Zeroizing<String>, MintError> {
    let auth =
        vault_auth(policy, env).map_err(|e| MintError::new("find a Vault token", e.to_string()))?;
    let (method, file_var, mount_var, default_mount) = match auth {
        VaultAuth::Token => {
            return env
                .var("VAULT_TOKEN")
                .filter(|t| !t.is_empty())
                .map(Zeroizing::new)
                .ok_or_else(|| {
                    MintError::new(
                        "find a Vault token",
                        "VAULT_TOKEN is not set (--vault-auth token)",
                    )
                });
        }
        VaultAuth::Kubernetes => (
            "Kubernetes auth",
            "VAULT_K8S_TOKEN_FILE",
            "VAULT_K8S_AUTH_MOUNT",
            "kubernetes",
        ),
        VaultAuth::Jwt => ("JWT auth", "VAULT_JWT_FILE", "VAULT_JWT_AUTH_MOUNT", "jwt"),
    };
    let step = format!("log in to Vault with {method}");
    let Some(role) = policy
        .vault_role
        .clone()
        .or_else(|| env.var("VAULT_ROLE"))
        .filter(|r| !r.is_empty())
    else {
        return Err(MintError::new(
            "find a Vault token",
            if auth == VaultAuth::Kubernetes {
                "neither VAULT_TOKEN nor a role for Kubernetes auth (--vault-role, VAULT_ROLE) is set"
            } else {
                "no role for JWT auth (--vault-role, VAULT_ROLE) is set"
            },
        ));
    };
    let file = env
        .var(file_var)
        .unwrap_or_else(|| SERVICE_ACCOUNT_TOKEN.to_string());
    let jwt = crate::inputs::mint::read_file(&file)
        .map_err(|e| MintError::new(&step, format!("the token to log in with, {file}: {e}")))?;
    let mount = env.var(mount_var).unwrap_or_else(|| default_mount.into());
    regops_spec::rules::vault_path(&mount)
        .map_err(|why| MintError::new(&step, format!("{mount_var}: {why}")))?;
    let url = format!("{addr}/v1/auth/{mount}/login");
    let body = Zeroizing::new(
        serde_json::json!({ "jwt": jwt.trim(), "role": role })
            .to_string()
            .into_bytes(),
    );
    let mut req = Request::post(&url, "application/json", body, env);
    req.timeout = READ_TIMEOUT;
    if let Some(ns) = env.var("VAULT_NAMESPACE").filter(|n| !n.is_empty()) {
        req = req.header("x-vault-namespace", ns);
    }
    let reply = req.send().await.map_err(|e| MintError::new(&step, e))?;
    if !reply.ok() {
        return Err(MintError::new(step, vault_error(&reply)));
    }
    let v = reply.json().unwrap_or_default();
    v.pointer("/auth/client_token")
        .and_then(|t| t.as_str())
        .map(|t| Zeroizing::new(t.to_string()))
        .ok_or_else(|| MintError::new(step, "the answer has no auth.client_token"))
}

/// `field` of the KV version 2 secret `src`
/// (<https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2#read-secret-version>:
/// `GET /v1/<mount>/data/<path>` with `X-Vault-Token`, and `X-Vault-Namespace` when
/// `VAULT_NAMESPACE` is set), at the operator's `VAULT_ADDR`.
pub async fn vault_secret(
    src: &VaultSource,
    policy: &Policy,
    env: Env<'_>,
) -> Result<Zeroizing<String>, MintError> {
    let addr = vault_addr(env).map_err(|e| MintError::new("find Vault", e.to_string()))?;
    let token = vault_token(&addr, policy, env).await?;
    let url = format!("{addr}/v1/{}/data/{}", src.mount(), src.path.value);
    let step = format!(
        "read {}/{} from Vault at {addr}",
        src.mount(),
        src.path.value
    );
    let mut req = Request::get(&url, env).header("x-vault-token", token.as_str());
    req.timeout = READ_TIMEOUT;
    if let Some(ns) = env.var("VAULT_NAMESPACE").filter(|n| !n.is_empty()) {
        req = req.header("x-vault-namespace", ns);
    }
    let reply = req.send().await.map_err(|e| MintError::new(&step, e))?;
    if !reply.ok() {
        return Err(MintError::new(step, vault_error(&reply)));
    }
    // The parsed tree is not zeroed (serde_json's values cannot be); the body it came from is.
    let v = serde_json::from_slice::<serde_json::Value>(&reply.body)
        .map_err(|_| MintError::new(&step, "the answer is not JSON"))?;
    let field = &src.field.value;
    let data = v
        .pointer("/data/data")
        .and_then(|d| d.as_object())
        .ok_or_else(|| {
            MintError::new(
                &step,
                "the answer has no data.data (is the mount a KV version 2 engine?)",
            )
        })?;
    match data.get(field) {
        Some(serde_json::Value::String(s)) => Ok(Zeroizing::new(s.clone())),
        Some(_) => Err(MintError::new(
            step,
            format!(
                "field `{}` is not a string",
                regops_spec::untrusted::terminal(field)
            ),
        )),
        None => Err(MintError::new(
            step,
            format!(
                "the secret has no field `{}`",
                regops_spec::untrusted::terminal(field)
            ),
        )),
    }
}

/// What identifies a read, for the run's cache: two credentials naming the same secret read
/// it once.
pub fn cache_key(source: &SecretSource) -> Option<String> {
    match source {
        SecretSource::AwsSecretsManager {
            aws_secrets_manager: a,
        } => Some(format!(
            "aws\0{}\0{}\0{}\0{}",
            a.region.value,
            a.secret_id.value,
            a.version_stage.as_ref().map_or("", |s| s.value.as_str()),
            a.json_key.as_ref().map_or("", |s| s.value.as_str())
        )),
        SecretSource::Vault { vault } => Some(format!(
            "vault\0{}\0{}",
            vault.allow_name(),
            vault.field.value
        )),
        SecretSource::GcpSecretManager {
            gcp_secret_manager: g,
        } => Some(format!(
            "gcp\0{}\0{}",
            g.name.value,
            g.json_key.as_ref().map_or("", |s| s.value.as_str())
        )),
        SecretSource::AzureKeyVault { azure_key_vault: a } => Some(format!(
            "azure\0{}\0{}\0{}",
            a.allow_name(),
            a.version.as_ref().map_or("", |s| s.value.as_str()),
            a.json_key.as_ref().map_or("", |s| s.value.as_str())
        )),
        _ => None,
    }
}

/// Reads `source` from its secret manager, from synchronous code, on a thread of its own with
/// its own runtime (as [`crate::inputs::mint::mint_blocking`]), with the process environment and the
/// operator's `--vault-role` and `--vault-auth`.
pub fn read_blocking(
    source: &SecretSource,
    policy: &Policy,
    ctx: &crate::context::RunContext,
) -> Result<Zeroizing<String>, MintError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| MintError::new("start the async runtime", e.to_string()))?;
            // The token requests on the way take the run's request timeout; the read itself
            // is capped at READ_TIMEOUT.
            let env = Env::process(ctx);
            rt.block_on(async {
                match source {
                    SecretSource::AwsSecretsManager {
                        aws_secrets_manager,
                    } => aws_secret(aws_secrets_manager, env).await,
                    SecretSource::GcpSecretManager { gcp_secret_manager } => {
                        gcp_secret(gcp_secret_manager, env).await
                    }
                    SecretSource::AzureKeyVault { azure_key_vault } => {
                        azure_secret(azure_key_vault, env).await
                    }
                    SecretSource::Vault { vault } => vault_secret(vault, policy, env).await,
                    _ => Err(MintError::new(
                        "read a secret",
                        "its password is not in a secret manager",
                    )),
                }
            })
        })
        .join()
        .unwrap_or_else(|_| {
            Err(MintError::new(
                "read a secret",
                "the reading thread panicked",
            ))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use regops_spec::{Loc, Spanned};

    fn src(id: &str, region: &str, stage: Option<&str>) -> AwsSecretsManagerSource {
        let loc = Loc::default();
        AwsSecretsManagerSource {
            secret_id: Spanned::new(id.into(), loc),
            region: Spanned::new(region.into(), loc),
            version_stage: stage.map(|s| Spanned::new(s.into(), loc)),
            json_key: None,
            loc,
        }
    }

    #[test]
    fn secrets_manager_endpoints_follow_the_partition_and_the_override() {
        let none = |_: &str| None;
        assert_eq!(
            aws_endpoint("eu-west-1", Env::vars(&none)),
            "https://secretsmanager.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            aws_endpoint("cn-north-1", Env::vars(&none)),
            "https://secretsmanager.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            aws_endpoint("us-gov-west-1", Env::vars(&none)),
            "https://secretsmanager.us-gov-west-1.amazonaws.com"
        );
        let env = |k: &str| {
            (k == "AWS_ENDPOINT_URL_SECRETS_MANAGER").then(|| "http://127.0.0.1:9/".to_string())
        };
        assert_eq!(
            aws_endpoint("eu-west-1", Env::vars(&env)),
            "http://127.0.0.1:9"
        );
    }

    #[test]
    fn get_secret_value_asks_for_the_secret_and_its_stage_only() {
        let body: serde_json::Value = serde_json::from_str(&aws_request_body(&src(
            "registry/harbor",
            "eu-west-1",
            None,
        )))
        .unwrap();
        assert_eq!(body, serde_json::json!({"SecretId": "registry/harbor"}));
        let body: serde_json::Value = serde_json::from_str(&aws_request_body(&src(
            "registry/harbor",
            "eu-west-1",
            Some("AWSPREVIOUS"),
        )))
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"SecretId": "registry/harbor", "VersionStage": "AWSPREVIOUS"})
        );
    }

    #[test]
    fn json_key_errors_name_the_key_never_the_value() {
        let text = r#"{"password":"hunter2-MARKER","n":1}"#;
        assert_eq!(
            json_key(text, "password").unwrap().as_str(),
            "hunter2-MARKER"
        );
        for (key, t) in [("nope", text), ("n", text), ("password", "hunter2-MARKER")] {
            let e = json_key(t, key).unwrap_err().to_string();
            assert!(!e.contains("MARKER"), "{e}");
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn vault_is_the_operators_and_https_unless_loopback() {
        let env = |addr: &'static str| move |k: &str| (k == "VAULT_ADDR").then(|| addr.to_string());
        assert_eq!(
            vault_addr(Env::vars(&env("https://vault.example.com:8200/"))).unwrap(),
            "https://vault.example.com:8200"
        );
        assert!(vault_addr(Env::vars(&env("http://127.0.0.1:8200"))).is_ok());
        assert!(vault_addr(Env::vars(&env("http://vault.example.com:8200"))).is_err());
        assert!(vault_addr(Env::vars(&|_: &str| None)).is_err());
    }

    #[test]
    fn crc32c_is_castagnolis() {
        // The check value of RFC 3720 appendix B.4 and of the CRC catalogue's CRC-32/ISCSI.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }

    fn access_answer(data: &[u8], crc: Option<serde_json::Value>) -> Vec<u8> {
        use base64::Engine;
        let mut payload = serde_json::json!({
            "data": base64::engine::general_purpose::STANDARD.encode(data)
        });
        if let Some(c) = crc {
            payload["dataCrc32c"] = c;
        }
        serde_json::json!({
            "name": "projects/123/secrets/registry/versions/4",
            "payload": payload
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_secret_manager_payload_is_checked_against_its_crc32c() {
        let value = "pw-MARKER-é:$\"'\n";
        let sum = u64::from(crc32c(value.as_bytes()));
        // proto3's JSON carries an int64 as a string.
        for crc in [
            None,
            Some(serde_json::json!(sum.to_string())),
            Some(serde_json::json!(sum)),
        ] {
            let got = gcp_payload(&access_answer(value.as_bytes(), crc)).unwrap();
            assert_eq!(got.as_str(), value);
        }
        for crc in [
            serde_json::json!((sum + 1).to_string()),
            serde_json::json!("not a number"),
            serde_json::json!(null),
        ] {
            assert_eq!(
                gcp_payload(&access_answer(value.as_bytes(), Some(crc))),
                Err(SourceError::Checksum)
            );
        }
        assert_eq!(
            gcp_payload(&access_answer(&[0xff, 0xfe], None)),
            Err(SourceError::NotText("payload.data"))
        );
        assert_eq!(
            gcp_payload(br#"{"payload": {"data": "%%%"}}"#),
            Err(SourceError::NotBase64("payload.data"))
        );
        assert_eq!(
            gcp_payload(br#"{"name": "x"}"#),
            Err(SourceError::Missing("payload.data"))
        );
        assert_eq!(gcp_payload(b"pw-MARKER"), Err(SourceError::NotJson));
    }

    #[test]
    fn secret_managers_endpoint_is_googles_unless_the_operator_moves_it() {
        let none = |_: &str| None;
        assert_eq!(
            gcp_access_url(
                "projects/p-123456/secrets/s/versions/latest",
                Env::vars(&none)
            ),
            "https://secretmanager.googleapis.com/v1/projects/p-123456/secrets/s/versions/latest:access"
        );
        // gcloud's override names the service's root, with or without its version.
        for o in ["http://127.0.0.1:9/", "http://127.0.0.1:9/v1/"] {
            let env = move |k: &str| {
                (k == "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER").then(|| o.to_string())
            };
            assert_eq!(
                gcp_access_url("projects/p-123456/secrets/s/versions/2", Env::vars(&env)),
                "http://127.0.0.1:9/v1/projects/p-123456/secrets/s/versions/2:access"
            );
        }
    }

    fn kv(vault: &str, secret: &str, version: Option<&str>) -> AzureKeyVaultSource {
        let loc = Loc::default();
        AzureKeyVaultSource {
            vault: Spanned::new(vault.into(), loc),
            secret: Spanned::new(secret.into(), loc),
            version: version.map(|v| Spanned::new(v.into(), loc)),
            json_key: None,
            loc,
        }
    }

    #[test]
    fn key_vault_follows_the_operators_cloud() {
        let authority =
            |a: &'static str| move |k: &str| (k == "AZURE_AUTHORITY_HOST").then(|| a.to_string());
        let src = kv("myvault", "registry-harbor", None);
        for (a, url, scope) in [
            (
                "https://login.microsoftonline.com/",
                "https://myvault.vault.azure.net/secrets/registry-harbor?api-version=7.4",
                "https://vault.azure.net/.default",
            ),
            (
                "https://login.chinacloudapi.cn/",
                "https://myvault.vault.azure.cn/secrets/registry-harbor?api-version=7.4",
                "https://vault.azure.cn/.default",
            ),
            (
                "https://LOGIN.microsoftonline.us",
                "https://myvault.vault.usgovcloudapi.net/secrets/registry-harbor?api-version=7.4",
                "https://vault.usgovcloudapi.net/.default",
            ),
        ] {
            let env = authority(a);
            assert_eq!(key_vault_url(&src, Env::vars(&env)), url, "{a}");
            assert_eq!(key_vault_cloud(Env::vars(&env)).scope, scope, "{a}");
        }
        let none = |_: &str| None;
        assert_eq!(key_vault_cloud(Env::vars(&none)).suffix, "vault.azure.net");
        let v = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            key_vault_url(&kv("myvault", "s", Some(v)), Env::vars(&none)),
            format!("https://myvault.vault.azure.net/secrets/s/{v}?api-version=7.4")
        );
        let env = |k: &str| {
            (k == "REGOPS_AZURE_KEY_VAULT_URL")
                .then(|| "http://127.0.0.1:9/kv/{vault}/".to_string())
        };
        assert_eq!(
            key_vault_url(&src, Env::vars(&env)),
            "http://127.0.0.1:9/kv/myvault/secrets/registry-harbor?api-version=7.4"
        );
    }

    #[test]
    fn vault_auth_is_the_flags_then_the_environments_then_by_the_token() {
        let p = |a: Option<VaultAuth>| Policy {
            vault_auth: a,
            ..Policy::default()
        };
        let env = |auth: Option<&'static str>, token: bool| {
            move |k: &str| match k {
                "VAULT_AUTH" => auth.map(str::to_string),
                "VAULT_TOKEN" => token.then(|| "hvs.x".to_string()),
                _ => None,
            }
        };
        assert_eq!(
            vault_auth(&p(None), Env::vars(&env(None, true))),
            Ok(VaultAuth::Token)
        );
        assert_eq!(
            vault_auth(&p(None), Env::vars(&env(None, false))),
            Ok(VaultAuth::Kubernetes)
        );
        assert_eq!(
            vault_auth(&p(None), Env::vars(&env(Some("jwt"), true))),
            Ok(VaultAuth::Jwt)
        );
        assert_eq!(
            vault_auth(
                &p(Some(VaultAuth::Kubernetes)),
                Env::vars(&env(Some("jwt"), true))
            ),
            Ok(VaultAuth::Kubernetes)
        );
        assert_eq!(
            vault_auth(&p(None), Env::vars(&env(Some("oidc"), true))),
            Err(SourceError::UnknownVaultAuth("oidc".into()))
        );
    }
}
