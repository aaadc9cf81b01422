//! Google Artifact Registry and GCR: an OAuth 2.0 access token (scope `cloud-platform`) from
//! Application Default Credentials, as Google's libraries find them:
//! 1. `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's well-known file
//!    (`~/.config/gcloud/application_default_credentials.json`), holding
//!    - a service-account key: a JWT signed with its key (RS256) for a token at `token_uri`;
//!    - an `external_account` (workload identity federation): the subject token from its
//!      `credential_source` (a file or URL) exchanged at `token_url`, then, with
//!      `service_account_impersonation_url`, a token of that service account;
//!    - an `authorized_user` (gcloud's user login): its refresh token at the token endpoint;
//! 2. else the metadata server (`GCE_METADATA_HOST`, else `metadata.google.internal`), as on
//!    GKE with Workload Identity.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use zeroize::Zeroizing;

use super::{Env, MintError, Reply, Request};
use crate::inputs::credentials::Login;

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
pub const USERNAME: &str = "oauth2accesstoken";

/// A token from `{access_token, expires_in}`.
fn token_answer(step: &str, reply: &Reply, env: Env<'_>) -> Result<Login, MintError> {
    if !reply.ok() {
        return Err(MintError::new(step, super::oauth_error(reply)));
    }
    let token = Zeroizing::new(super::json_field(reply, "access_token", step)?);
    let now = env.now();
    let at = reply
        .json()
        .and_then(|v| v.get("expires_in")?.as_i64())
        .map(|lifetime| now.saturating_add(lifetime));
    Ok(login(&token, super::token_expiry(now, at, 3_600, step)?))
}

fn login(token: &str, expires_at: i64) -> Login {
    let mut l = Login::new(USERNAME, SecretString::from(token.to_string()));
    l.expires_at = Some(expires_at);
    l
}

/// An access token from Application Default Credentials.
pub async fn mint(env: Env<'_>) -> Result<Login, MintError> {
    let explicit = env.var("GOOGLE_APPLICATION_CREDENTIALS");
    let well_known = super::home(env)
        .map(|h| h.join(".config/gcloud/application_default_credentials.json"))
        .filter(|p| p.exists());
    let path = explicit
        .clone()
        .map(std::path::PathBuf::from)
        .or(well_known);
    let Some(path) = path else {
        return metadata(env).await;
    };
    let step = format!("read the credentials file {}", path.display());
    let text = super::read_file(&path).map_err(|e| MintError::new(&step, e))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| MintError::new(&step, format!("not JSON: line {}", e.line())))?;
    match v.get("type").and_then(Value::as_str) {
        Some("service_account") => service_account(&v, env).await,
        Some("external_account") => external_account(&v, env).await,
        Some("authorized_user") => authorized_user(&v, env).await,
        other => Err(MintError::new(
            step,
            format!(
                "its type is {}, not service_account, external_account or authorized_user",
                other.map_or("missing".to_string(), |t| format!("`{t}`"))
            ),
        )),
    }
}

fn field<'v>(v: &'v Value, k: &str, step: &str) -> Result<&'v str, MintError> {
    v.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| MintError::new(step, format!("the credentials file has no `{k}`")))
}

/// A service-account key: a signed JWT exchanged at `token_uri` (RFC 7523).
async fn service_account(v: &Value, env: Env<'_>) -> Result<Login, MintError> {
    let step = "sign a JWT with the service-account key";
    let email = field(v, "client_email", step)?;
    let pem = Zeroizing::new(field(v, "private_key", step)?.to_string());
    let token_uri = v
        .get("token_uri")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_TOKEN_URI);
    let now = env.now();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": email, "scope": SCOPE, "aud": token_uri, "iat": now, "exp": now + 3_600,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let der = {
        use rustls_pki_types::PrivatePkcs8KeyDer;
        use rustls_pki_types::pem::PemObject;
        PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| MintError::new(step, "private_key is not a PKCS#8 PEM key"))?
    };
    let key = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
        .map_err(|e| MintError::new(step, format!("private_key is not an RSA key: {e}")))?;
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| MintError::new(step, "signing failed"))?;
    let jwt = Zeroizing::new(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)));
    let step = format!("get a token for {email} from {token_uri}");
    let body = super::form(&[
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", &jwt),
    ]);
    let reply = super::post_form(token_uri, &step, body, env).await?;
    token_answer(&step, &reply, env)
}

/// gcloud's user login: the refresh token at the token endpoint.
async fn authorized_user(v: &Value, env: Env<'_>) -> Result<Login, MintError> {
    let step = "refresh gcloud's user login";
    let body = super::form(&[
        ("grant_type", "refresh_token"),
        ("client_id", field(v, "client_id", step)?),
        ("client_secret", field(v, "client_secret", step)?),
        ("refresh_token", field(v, "refresh_token", step)?),
    ]);
    let uri = v
        .get("token_uri")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_TOKEN_URI);
    let reply = super::post_form(uri, step, body, env).await?;
    token_answer(step, &reply, env)
}

/// The subject token of an `external_account`: from a file or URL, as text or a JSON field.
async fn subject_token(source: &Value, env: Env<'_>) -> Result<Zeroizing<String>, MintError> {
    let step = "read the external account's subject token";
    let raw = if let Some(file) = source.get("file").and_then(Value::as_str) {
        super::read_file(file).map_err(|e| MintError::new(step, format!("{file}: {e}")))?
    } else if let Some(url) = source.get("url").and_then(Value::as_str) {
        let mut req = Request::get(url, env);
        if let Some(h) = source.get("headers").and_then(Value::as_object) {
            for (k, v) in h {
                if let Some(v) = v.as_str() {
                    req = req.header(k.as_str(), v);
                }
            }
        }
        let reply = req.send().await.map_err(|e| MintError::new(step, e))?;
        if !reply.ok() {
            return Err(MintError::new(
                step,
                format!("{url}: HTTP {}", reply.status),
            ));
        }
        Zeroizing::new(String::from_utf8_lossy(&reply.body).to_string())
    } else {
        return Err(MintError::new(
            step,
            "credential_source has neither `file` nor `url` (executable sources are not run)",
        ));
    };
    let format = source.get("format");
    if format.and_then(|f| f.get("type")).and_then(Value::as_str) == Some("json") {
        let name = format
            .and_then(|f| f.get("subject_token_field_name"))
            .and_then(Value::as_str)
            .unwrap_or("access_token");
        let v: Value = serde_json::from_str(&raw)
            .map_err(|_| MintError::new(step, "the subject token source is not JSON"))?;
        let t = v
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| MintError::new(step, format!("the JSON has no `{name}`")))?;
        return Ok(Zeroizing::new(t.to_string()));
    }
    Ok(Zeroizing::new(raw.trim().to_string()))
}

/// Workload identity federation: STS token exchange (RFC 8693), then impersonation if asked.
async fn external_account(v: &Value, env: Env<'_>) -> Result<Login, MintError> {
    let step = "exchange the external account's token";
    let source = v
        .get("credential_source")
        .ok_or_else(|| MintError::new(step, "the credentials file has no `credential_source`"))?;
    let subject = subject_token(source, env).await?;
    let token_url = v
        .get("token_url")
        .and_then(Value::as_str)
        .unwrap_or("https://sts.googleapis.com/v1/token");
    let body = super::form(&[
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("audience", field(v, "audience", step)?),
        ("scope", SCOPE),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("subject_token", &subject),
        ("subject_token_type", field(v, "subject_token_type", step)?),
    ]);
    let step = format!("exchange the external account's token at {token_url}");
    let reply = super::post_form(token_url, &step, body, env).await?;
    let federated = token_answer(&step, &reply, env)?;
    let Some(url) = v
        .get("service_account_impersonation_url")
        .and_then(Value::as_str)
    else {
        return Ok(federated);
    };
    let step = format!("impersonate the service account ({url})");
    let body = serde_json::json!({ "scope": [SCOPE], "lifetime": "3600s" }).to_string();
    let reply = Request::post(
        url,
        "application/json",
        Zeroizing::new(body.into_bytes()),
        env,
    )
    .header(
        "authorization",
        format!("Bearer {}", federated.password.expose_secret()),
    )
    .send()
    .await
    .map_err(|e| MintError::new(&step, e))?;
    if !reply.ok() {
        return Err(MintError::new(step, super::oauth_error(&reply)));
    }
    let v = reply
        .json()
        .ok_or_else(|| MintError::new(&step, "the answer is not JSON"))?;
    let token = v
        .get("accessToken")
        .and_then(Value::as_str)
        .ok_or_else(|| MintError::new(&step, "the answer has no accessToken"))?;
    let at = v
        .get("expireTime")
        .and_then(Value::as_str)
        .and_then(|t| regops_spec::rules::expiry(t).ok());
    Ok(login(
        token,
        super::token_expiry(env.now(), at, 3_600, &step)?,
    ))
}

/// The metadata server's token for the default service account (GKE Workload Identity).
async fn metadata(env: Env<'_>) -> Result<Login, MintError> {
    let host = env
        .var("GCE_METADATA_HOST")
        .unwrap_or_else(|| "metadata.google.internal".into());
    let url = format!(
        "http://{host}/computeMetadata/v1/instance/service-accounts/default/token?scopes={SCOPE}"
    );
    let step =
        format!("get a token from the metadata server ({host}; no GOOGLE_APPLICATION_CREDENTIALS)");
    let mut req = Request::get(&url, env).header("metadata-flavor", "Google");
    req.timeout = std::time::Duration::from_secs(5);
    let reply = req.send().await.map_err(|e| MintError::new(&step, e))?;
    token_answer(&step, &reply, env)
}
