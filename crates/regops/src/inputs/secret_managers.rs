//! Reading credentials from secret managers: AWS Secrets Manager (`awsSecretsManager:`) and
//! HashiCorp Vault / OpenBao KV version 2 (`vault:`). The spec names the secret, never the
//! endpoint: AWS's is the region's (partition-aware, as ECR's in [`crate::inputs::mint::aws`]), Vault's
//! is the operator's `VAULT_ADDR`. Both are HTTPS unless on loopback, time-limited and
//! size-capped as the minting calls are ([`crate::inputs::mint::Request::send`]). Values live in
//! zeroizing buffers; an error names the secret and the step, never a value or a body.

use std::time::Duration;

use regops_spec::{AwsSecretsManagerSource, SecretSource, VaultSource};
use zeroize::Zeroizing;

use crate::inputs::mint::{Env, MintError, Reply, Request, aws};

/// The Kubernetes service-account token Vault's Kubernetes auth logs in with, where the
/// kubelet mounts it.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The endpoint of AWS Secrets Manager in `region`: `AWS_ENDPOINT_URL_SECRETS_MANAGER` (the
/// SDKs' name for its override), else `AWS_ENDPOINT_URL`, else
/// `https://secretsmanager.<region>.<partition's domain>`.
pub fn aws_endpoint(region: &str, env: Env<'_>) -> String {
    env("AWS_ENDPOINT_URL_SECRETS_MANAGER")
        .or_else(|| env("AWS_ENDPOINT_URL"))
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
    match &src.json_key {
        Some(key) => json_key(&value, &key.value).map_err(|e| MintError::new(step, e)),
        None => Ok(value),
    }
}

/// The string at `key` of the JSON object `text`. The error names the key, never the text.
pub fn json_key(text: &str, key: &str) -> Result<Zeroizing<String>, String> {
    let v = serde_json::from_str::<serde_json::Value>(text)
        .map_err(|_| format!("jsonKey `{key}`: the secret is not a JSON object"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format!("jsonKey `{key}`: the secret is not a JSON object"))?;
    match obj.get(key) {
        Some(serde_json::Value::String(s)) => Ok(Zeroizing::new(s.clone())),
        Some(_) => Err(format!("jsonKey `{key}`: its value is not a string")),
        None => Err(format!("jsonKey `{key}`: the secret has no such key")),
    }
}

/// The operator's Vault: `VAULT_ADDR` (https unless loopback), never the spec's.
fn vault_addr(env: Env<'_>) -> Result<String, String> {
    let addr = env("VAULT_ADDR")
        .filter(|a| !a.is_empty())
        .ok_or("VAULT_ADDR is not set: the operator names the Vault regops reads")?;
    let addr = addr.trim_end_matches('/').to_string();
    crate::inputs::mint::plain_http_check(&addr)?;
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

/// A Vault token: `VAULT_TOKEN`, else a Kubernetes auth login
/// (<https://developer.hashicorp.com/vault/api-docs/auth/kubernetes#login>: `POST
/// /v1/auth/<mount>/login` with `{"jwt", "role"}`) with the pod's service-account token
/// (`VAULT_K8S_TOKEN_FILE`, else [`SERVICE_ACCOUNT_TOKEN`]) and the role in `VAULT_ROLE`, at
/// the auth mount `VAULT_K8S_AUTH_MOUNT` (`kubernetes`). `role` (`--vault-role`) comes before
/// `VAULT_ROLE`.
async fn vault_token(
    addr: &str,
    role: Option<&str>,
    env: Env<'_>,
) -> Result<Zeroizing<String>, MintError> {
    if let Some(t) = env("VAULT_TOKEN").filter(|t| !t.is_empty()) {
        return Ok(Zeroizing::new(t));
    }
    let step = "log in to Vault with Kubernetes auth";
    let Some(role) = role
        .map(str::to_string)
        .or_else(|| env("VAULT_ROLE"))
        .filter(|r| !r.is_empty())
    else {
        return Err(MintError::new(
            "find a Vault token",
            "neither VAULT_TOKEN nor a role for Kubernetes auth (--vault-role, VAULT_ROLE) is set",
        ));
    };
    let file = env("VAULT_K8S_TOKEN_FILE").unwrap_or_else(|| SERVICE_ACCOUNT_TOKEN.to_string());
    let jwt = crate::inputs::mint::read_file(&file)
        .map_err(|e| MintError::new(step, format!("the service-account token {file}: {e}")))?;
    let mount = env("VAULT_K8S_AUTH_MOUNT").unwrap_or_else(|| "kubernetes".into());
    regops_spec::rules::vault_path(&mount)
        .map_err(|why| MintError::new(step, format!("VAULT_K8S_AUTH_MOUNT: {why}")))?;
    let url = format!("{addr}/v1/auth/{mount}/login");
    let body = Zeroizing::new(
        serde_json::json!({ "jwt": jwt.trim(), "role": role })
            .to_string()
            .into_bytes(),
    );
    let mut req = Request::post(&url, "application/json", body);
    req.timeout = Duration::from_secs(20);
    if let Some(ns) = env("VAULT_NAMESPACE").filter(|n| !n.is_empty()) {
        req = req.header("x-vault-namespace", ns);
    }
    let reply = req.send().await.map_err(|e| MintError::new(step, e))?;
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
    role: Option<&str>,
    env: Env<'_>,
) -> Result<Zeroizing<String>, MintError> {
    let addr = vault_addr(env).map_err(|e| MintError::new("find Vault", e))?;
    let token = vault_token(&addr, role, env).await?;
    let url = format!("{addr}/v1/{}/data/{}", src.mount(), src.path.value);
    let step = format!(
        "read {}/{} from Vault at {addr}",
        src.mount(),
        src.path.value
    );
    let mut req = Request::get(&url).header("x-vault-token", token.as_str());
    req.timeout = Duration::from_secs(20);
    if let Some(ns) = env("VAULT_NAMESPACE").filter(|n| !n.is_empty()) {
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
        _ => None,
    }
}

/// Reads `source` from its secret manager, from synchronous code, on a thread of its own with
/// its own runtime (as [`crate::inputs::mint::mint_blocking`]), with the process environment and the
/// operator's `--vault-role`.
pub fn read_blocking(
    source: &SecretSource,
    vault_role: Option<&str>,
) -> Result<Zeroizing<String>, MintError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| MintError::new("start the async runtime", e.to_string()))?;
            let env = |k: &str| std::env::var(k).ok();
            rt.block_on(async {
                match source {
                    SecretSource::AwsSecretsManager {
                        aws_secrets_manager,
                    } => aws_secret(aws_secrets_manager, &env).await,
                    SecretSource::Vault { vault } => vault_secret(vault, vault_role, &env).await,
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
            aws_endpoint("eu-west-1", &none),
            "https://secretsmanager.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            aws_endpoint("cn-north-1", &none),
            "https://secretsmanager.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            aws_endpoint("us-gov-west-1", &none),
            "https://secretsmanager.us-gov-west-1.amazonaws.com"
        );
        let env = |k: &str| {
            (k == "AWS_ENDPOINT_URL_SECRETS_MANAGER").then(|| "http://127.0.0.1:9/".to_string())
        };
        assert_eq!(aws_endpoint("eu-west-1", &env), "http://127.0.0.1:9");
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
            let e = json_key(t, key).unwrap_err();
            assert!(!e.contains("MARKER"), "{e}");
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn vault_is_the_operators_and_https_unless_loopback() {
        let env = |addr: &'static str| move |k: &str| (k == "VAULT_ADDR").then(|| addr.to_string());
        assert_eq!(
            vault_addr(&env("https://vault.example.com:8200/")).unwrap(),
            "https://vault.example.com:8200"
        );
        assert!(vault_addr(&env("http://127.0.0.1:8200")).is_ok());
        assert!(vault_addr(&env("http://vault.example.com:8200")).is_err());
        assert!(vault_addr(&|_: &str| None).is_err());
    }
}
