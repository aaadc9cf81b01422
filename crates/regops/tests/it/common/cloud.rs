//! Local stand-ins for the cloud endpoints regops mints tokens from, on one HTTP port that
//! the standard overrides point at (`AWS_ENDPOINT_URL_ECR`, `AWS_ENDPOINT_URL_STS`,
//! `GCE_METADATA_HOST`, a key file's `token_uri`, `AZURE_AUTHORITY_HOST`, the ACR registry):
//! - ECR `GetAuthorizationToken` and STS `AssumeRole` check the SigV4 signature as AWS does
//!   (the key is known, `x-amz-date` within five minutes of the fake's clock, the signature
//!   over the signed headers matches) and refuse as AWS does otherwise;
//! - STS `AssumeRoleWithWebIdentity` checks the web identity token;
//! - Google's token endpoint checks the service-account JWT's RS256 signature;
//! - the GCE metadata server wants `Metadata-Flavor: Google`;
//! - Entra's token endpoint checks the client secret or federated assertion, and ACR's
//!   `/oauth2/exchange` the Entra token it was given.
//!
//! - Secrets Manager `GetSecretValue` checks the SigV4 signature as ECR's does, and the
//!   request as the API reference defines it
//!   (<https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html>:
//!   `POST /`, `X-Amz-Target: secretsmanager.GetSecretValue`,
//!   `Content-Type: application/x-amz-json-1.1`, a JSON body of `SecretId` and optional
//!   `VersionStage`), and can throttle, deny or answer 12 MB;
//! - Vault's KV version 2 read (`GET /v1/<mount>/data/<path>`,
//!   <https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2#read-secret-version>)
//!   wants `X-Vault-Token` (and `X-Vault-Namespace` when one is set), and its Kubernetes
//!   login (`POST /v1/auth/kubernetes/login` with `{"jwt", "role"}`,
//!   <https://developer.hashicorp.com/vault/api-docs/auth/kubernetes#login>) checks both, as
//!   its JWT/OIDC login does (`POST /v1/auth/jwt/login` with `{"role", "jwt"}`,
//!   <https://developer.hashicorp.com/vault/api-docs/auth/jwt#jwt-login>);
//! - Google Secret Manager's `projects.secrets.versions.access`
//!   (<https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets.versions/access>:
//!   `GET /v1/{name=projects/*/secrets/*/versions/*}:access`, no body, `Authorization: Bearer`
//!   with a token the fake Google minted) answers `{"name", "payload": {"data",
//!   "dataCrc32c"}}`, and can throttle (429 `RESOURCE_EXHAUSTED`), damage the checksum or
//!   answer 12 MB;
//! - Azure Key Vault's "Get Secret"
//!   (<https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/get-secret/get-secret?view=rest-keyvault-secrets-7.4>:
//!   `GET {vaultBaseUrl}/secrets/{secret-name}/{secret-version}?api-version=7.4`, no body,
//!   `Authorization: Bearer` with an Entra ID token for `https://vault.azure.net/.default`), at
//!   `/kv/<vault>` (`REGOPS_AZURE_KEY_VAULT_URL=<fake>/kv/{vault}`), answers `{"value", "id",
//!   "attributes"}` and can throttle (429 `Throttled`) or answer 12 MB.
//!
//! Every token it hands out holds `MARKER`, for the no-leak checks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

pub const ACCESS_KEY: &str = "AKIDREGOPSTEST";
pub const SECRET_KEY: &str = "regops-test-secret-MARKER";
pub const WEB_IDENTITY_TOKEN: &str = "web-identity-jwt-MARKER";
pub const AZURE_SECRET: &str = "azure-client-secret-MARKER";
pub const AZURE_FEDERATED: &str = "azure-federated-jwt-MARKER";
pub const ROLE: &str = "arn:aws:iam::123456789012:role/puller";
pub const POD_IDENTITY_TOKEN: &str = "pod-identity-token-MARKER";
pub const GOOGLE_SUBJECT_TOKEN: &str = "oidc-subject-token-MARKER";
pub const VAULT_TOKEN: &str = "hvs.vault-token-MARKER";
pub const VAULT_SA_JWT: &str = "k8s-service-account-jwt-MARKER";
pub const VAULT_ROLE: &str = "regops";
const VAULT_LOGIN_TOKEN: &str = "hvs.login-token-MARKER";
pub const VAULT_OIDC_JWT: &str = "ci-oidc-jwt-MARKER";
pub const VAULT_JWT_ROLE: &str = "regops-ci";
const VAULT_JWT_LOGIN_TOKEN: &str = "hvs.jwt-login-token-MARKER";
/// The Entra ID token the fake gives for Key Vault's scope.
const KEY_VAULT_TOKEN: &str = "entra-key-vault-token-MARKER";
pub const KEY_VAULT_SCOPE: &str = "https://vault.azure.net/.default";
const TEMP_KEY: &str = "ASIATEMPREGOPS";
const TEMP_SECRET: &str = "temp-secret-MARKER";
const TEMP_SESSION: &str = "temp-session-MARKER";

#[derive(Default)]
pub struct State {
    /// Calls by endpoint (`ecr`, `sts:AssumeRole`, `gcp:metadata`, `entra`, `acr`, ...).
    pub calls: BTreeMap<String, usize>,
    /// ECR refuses with AccessDeniedException.
    pub deny_ecr: bool,
    /// ECR answers only after this long (a hung endpoint).
    pub hang_ecr: Option<std::time::Duration>,
    /// The fake's clock is this many seconds ahead of the machine's.
    pub clock_ahead: i64,
    /// Seconds an ECR token lives (12 hours by default).
    pub ecr_lifetime: Option<i64>,
    /// Tokens handed out so far (each one different).
    pub serial: usize,
    /// The Google service account's RSA public key (DER), to check JWTs with.
    pub google_public_key: Option<Vec<u8>>,
    /// What ACR's exchange was last asked for (`service`).
    pub acr_service: Option<String>,
    /// The access keys ECR calls were signed with.
    pub ecr_signed_by: Vec<String>,
    /// Secrets Manager's secrets: `SecretId` to `SecretString`.
    pub aws_secrets: BTreeMap<String, String>,
    /// Secrets Manager answers `ThrottlingException`.
    pub throttle_secrets: bool,
    /// Secrets Manager answers a 12 MB body.
    pub huge_secret: bool,
    /// Secrets Manager answers only after this long (a read in flight, for the controller).
    pub hang_secrets: Option<std::time::Duration>,
    /// Entra ID answers a token request only after this long.
    pub hang_entra: Option<std::time::Duration>,
    /// The `GetSecretValue` bodies received, as JSON.
    pub secret_requests: Vec<serde_json::Value>,
    /// Vault's KV v2 secrets: `<mount>/<path>` to their data.
    pub vault_secrets: BTreeMap<String, serde_json::Value>,
    /// The namespace Vault wants in `X-Vault-Namespace`, if any.
    pub vault_namespace: Option<String>,
    /// Google Secret Manager's versions: resource name (`projects/P/secrets/S/versions/V`) to
    /// their data.
    pub gcp_secrets: BTreeMap<String, String>,
    /// Secret Manager answers a `dataCrc32c` that does not match the data.
    pub gcp_bad_crc: bool,
    /// Key Vault's secrets: `VAULT/SECRET` (and `VAULT/SECRET/VERSION`) to their values.
    pub key_vault_secrets: BTreeMap<String, String>,
    /// Google Secret Manager and Key Vault answer 429.
    pub throttle_gcp_azure: bool,
    /// The scopes Entra ID tokens were asked for.
    pub entra_scopes: Vec<String>,
}

pub struct Cloud {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    _thread: std::thread::JoinHandle<()>,
}

impl Cloud {
    pub fn start() -> Cloud {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = shared.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| {
                            let state = state.clone();
                            async move {
                                Ok::<_, std::convert::Infallible>(handle(req, &state, addr).await)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        });
        Cloud {
            addr,
            state,
            _thread: thread,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self, what: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(what)
            .copied()
            .unwrap_or(0)
    }

    pub fn total_calls(&self) -> usize {
        self.state.lock().unwrap().calls.values().sum()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

type Resp = hyper::Response<Full<Bytes>>;

fn reply(status: u16, content_type: &str, body: String, clock: i64) -> Resp {
    let date = jiff::Timestamp::from_second(clock)
        .unwrap()
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("date", date)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn sts_xml(action: &str) -> String {
    format!(
        "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{action}Result><Credentials><AccessKeyId>{TEMP_KEY}</AccessKeyId><SecretAccessKey>{TEMP_SECRET}</SecretAccessKey><SessionToken>{TEMP_SESSION}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></{action}Result></{action}Response>"
    )
}

fn sts_error(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>1</RequestId></ErrorResponse>"
    )
}

/// Checks a SigV4-signed request as AWS does; the refusal as AWS words it.
fn check_signature(
    parts: &hyper::http::request::Parts,
    body: &[u8],
    clock: i64,
) -> Result<String, (&'static str, String)> {
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let secret = |k: &str| match k {
        ACCESS_KEY => Some(SECRET_KEY.to_string()),
        TEMP_KEY => Some(TEMP_SECRET.to_string()),
        _ => None,
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let key = parts
        .headers
        .get("authorization")
        .and_then(|a| a.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .unwrap_or("")
        .to_string();
    if key == TEMP_KEY
        && parts
            .headers
            .get("x-amz-security-token")
            .and_then(|t| t.to_str().ok())
            != Some(TEMP_SESSION)
    {
        return Err((
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".into(),
        ));
    }
    use regops::inputs::mint::sigv4::{Refusal, verify};
    match verify(parts.method.as_str(), path, &refs, body, &secret, clock) {
        Ok(()) => Ok(key),
        Err(Refusal::Skewed) => Err((
            "InvalidSignatureException",
            "Signature expired: the request's time is now earlier than 5 min before the service's"
                .into(),
        )),
        Err(Refusal::UnknownKey) => Err((
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".into(),
        )),
        Err(Refusal::Mismatch) => Err((
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.".into(),
        )),
        Err(Refusal::Malformed(why)) => Err(("IncompleteSignatureException", why.into())),
    }
}

// Kept whole (over 80 lines): one arm per endpoint of the fake clouds.
async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    state: &Mutex<State>,
    addr: SocketAddr,
) -> Resp {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let clock = now() + state.lock().unwrap().clock_ahead;
    let count = |what: &str| {
        *state
            .lock()
            .unwrap()
            .calls
            .entry(what.to_string())
            .or_default() += 1;
    };
    let next = || {
        let mut s = state.lock().unwrap();
        s.serial += 1;
        s.serial
    };
    let path = parts.uri.path().to_string();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .unwrap_or("")
        .to_string();
    // ECR
    if target == "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" {
        count("ecr");
        let hang = state.lock().unwrap().hang_ecr;
        if let Some(d) = hang {
            tokio::time::sleep(d).await;
        }
        let json_err = |code: &str, msg: &str, status: u16| {
            reply(
                status,
                "application/x-amz-json-1.1",
                serde_json::json!({"__type": code, "message": msg}).to_string(),
                clock,
            )
        };
        let key = match check_signature(&parts, &body, clock) {
            Ok(k) => k,
            Err((code, msg)) => return json_err(code, &msg, 403),
        };
        state.lock().unwrap().ecr_signed_by.push(key);
        if state.lock().unwrap().deny_ecr {
            return json_err(
                "AccessDeniedException",
                "User: arn:aws:sts::123456789012:assumed-role/puller is not authorized to perform: ecr:GetAuthorizationToken",
                400,
            );
        }
        let n = next();
        let lifetime = state.lock().unwrap().ecr_lifetime.unwrap_or(12 * 3_600);
        let token = STANDARD.encode(format!("AWS:ecr-token-{n}-MARKER"));
        return reply(
            200,
            "application/x-amz-json-1.1",
            serde_json::json!({"authorizationData": [{
                "authorizationToken": token,
                "expiresAt": (clock + lifetime) as f64,
                "proxyEndpoint": "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"
            }]})
            .to_string(),
            clock,
        );
    }
    // Secrets Manager
    if target == "secretsmanager.GetSecretValue" {
        count("secretsmanager");
        let hang = state.lock().unwrap().hang_secrets;
        if let Some(d) = hang {
            tokio::time::sleep(d).await;
        }
        let json_err = |code: &str, msg: &str, status: u16| {
            reply(
                status,
                "application/x-amz-json-1.1",
                serde_json::json!({"__type": code, "message": msg}).to_string(),
                clock,
            )
        };
        if let Err((code, msg)) = check_signature(&parts, &body, clock) {
            return json_err(code, &msg, 403);
        }
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        if parts.method != hyper::Method::POST
            || path != "/"
            || content_type != Some("application/x-amz-json-1.1")
        {
            return json_err("InvalidRequestException", "not the JSON 1.1 protocol", 400);
        }
        let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return json_err("InvalidParameterException", "the body is not JSON", 400);
        };
        state.lock().unwrap().secret_requests.push(req.clone());
        let known = ["SecretId", "VersionStage", "VersionId"];
        let fields_ok = req
            .as_object()
            .is_some_and(|o| o.keys().all(|k| known.contains(&k.as_str())));
        let Some(id) = req
            .get("SecretId")
            .and_then(|i| i.as_str())
            .filter(|_| fields_ok)
        else {
            return json_err("InvalidParameterException", "SecretId is required", 400);
        };
        if state.lock().unwrap().throttle_secrets {
            return json_err("ThrottlingException", "Rate exceeded", 400);
        }
        if state.lock().unwrap().huge_secret {
            let big = "A".repeat(12 << 20);
            return reply(
                200,
                "application/x-amz-json-1.1",
                serde_json::json!({"Name": id, "SecretString": big}).to_string(),
                clock,
            );
        }
        let stage = req
            .get("VersionStage")
            .and_then(|v| v.as_str())
            .unwrap_or("AWSCURRENT");
        let secret = state.lock().unwrap().aws_secrets.get(id).cloned();
        return match secret {
            Some(value) if stage == "AWSCURRENT" => reply(
                200,
                "application/x-amz-json-1.1",
                serde_json::json!({
                    "ARN": format!("arn:aws:secretsmanager:eu-west-1:123456789012:secret:{id}-AbCdEf"),
                    "Name": id,
                    "SecretString": value,
                    "VersionId": "EXAMPLE1-90ab-cdef-fedc-ba987SECRET1",
                    "VersionStages": ["AWSCURRENT"],
                    "CreatedDate": 1.523477145713E9
                })
                .to_string(),
                clock,
            ),
            _ => json_err(
                "ResourceNotFoundException",
                "Secrets Manager can't find the specified secret.",
                400,
            ),
        };
    }
    // Google Secret Manager
    if let Some(name) = path
        .strip_prefix("/v1/projects/")
        .and_then(|r| r.strip_suffix(":access"))
    {
        count("gcp:secretmanager");
        let error = |code: u16, status: &str, message: &str| {
            reply(
                code,
                "application/json",
                serde_json::json!({"error": {"code": code, "message": message, "status": status}})
                    .to_string(),
                clock,
            )
        };
        let bearer = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !(bearer.starts_with("gcp-token-") || bearer.starts_with("gcp-federated-")) {
            return error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            );
        }
        if parts.method != hyper::Method::GET || !body.is_empty() || parts.uri.query().is_some() {
            return error(400, "INVALID_ARGUMENT", "Invalid request.");
        }
        let name = format!("projects/{name}");
        let (throttle, huge, bad_crc) = {
            let s = state.lock().unwrap();
            (s.throttle_gcp_azure, s.huge_secret, s.gcp_bad_crc)
        };
        if throttle {
            return error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Access requests' and limit 'Access requests per minute'",
            );
        }
        let data = if huge {
            Some("A".repeat(12 << 20))
        } else {
            state.lock().unwrap().gcp_secrets.get(&name).cloned()
        };
        let Some(data) = data else {
            return error(
                404,
                "NOT_FOUND",
                &format!("Secret Version [{name}] not found."),
            );
        };
        let mut crc = regops::inputs::secret_managers::crc32c(data.as_bytes());
        if bad_crc {
            crc ^= 1;
        }
        return reply(
            200,
            "application/json",
            serde_json::json!({
                "name": name.replace("/versions/latest", "/versions/3"),
                "payload": {"data": STANDARD.encode(&data), "dataCrc32c": crc.to_string()}
            })
            .to_string(),
            clock,
        );
    }
    // Azure Key Vault
    if let Some(rest) = path.strip_prefix("/kv/") {
        count("keyvault");
        let error = |code: u16, what: &str, message: &str| {
            reply(
                code,
                "application/json",
                serde_json::json!({"error": {"code": what, "message": message}}).to_string(),
                clock,
            )
        };
        let bearer = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if bearer != Some(&format!("Bearer {KEY_VAULT_TOKEN}")) {
            return error(
                401,
                "Unauthorized",
                "AKV10022: Invalid audience. Expected https://vault.azure.net.",
            );
        }
        if parts.method != hyper::Method::GET
            || !body.is_empty()
            || parts.uri.query() != Some("api-version=7.4")
        {
            return error(
                400,
                "BadParameter",
                "The request is not a Get Secret of api-version 7.4.",
            );
        }
        let segs: Vec<&str> = rest.split('/').collect();
        let key = match segs[..] {
            [vault, "secrets", name] | [vault, "secrets", name, ""] => format!("{vault}/{name}"),
            [vault, "secrets", name, version] => format!("{vault}/{name}/{version}"),
            _ => return error(404, "NotFound", "No route."),
        };
        let (throttle, huge) = {
            let s = state.lock().unwrap();
            (s.throttle_gcp_azure, s.huge_secret)
        };
        if throttle {
            return error(
                429,
                "Throttled",
                "Request was not processed because too many requests were received.",
            );
        }
        let value = if huge {
            Some("A".repeat(12 << 20))
        } else {
            state.lock().unwrap().key_vault_secrets.get(&key).cloned()
        };
        let Some(value) = value else {
            return error(
                404,
                "SecretNotFound",
                "A secret with (name/id) was not found in this key vault.",
            );
        };
        return reply(
            200,
            "application/json",
            serde_json::json!({
                "value": value,
                "id": format!("https://{}.vault.azure.net/secrets/{}/4387e9f3d6e14c459867679a90fd0f79", segs[0], segs[2]),
                "attributes": {"enabled": true, "created": 1_493_938_410, "updated": 1_493_938_410, "recoveryLevel": "Recoverable+Purgeable"}
            })
            .to_string(),
            clock,
        );
    }
    // Vault
    // (`/v1/credentials` is the container credentials endpoint, below.)
    if let Some(rest) = path
        .strip_prefix("/v1/")
        .filter(|r| *r == "auth/kubernetes/login" || *r == "auth/jwt/login" || r.contains("/data/"))
    {
        let want_ns = state.lock().unwrap().vault_namespace.clone();
        let ns = parts
            .headers
            .get("x-vault-namespace")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let errors = |status: u16, msg: &str| {
            reply(
                status,
                "application/json",
                serde_json::json!({"errors": [msg]}).to_string(),
                clock,
            )
        };
        if ns != want_ns {
            return errors(403, "permission denied");
        }
        if rest == "auth/kubernetes/login" {
            count("vault:login");
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if parts.method != hyper::Method::POST
                || req.get("jwt").and_then(|j| j.as_str()) != Some(VAULT_SA_JWT)
                || req.get("role").and_then(|r| r.as_str()) != Some(VAULT_ROLE)
            {
                return errors(400, "invalid role name or service account token");
            }
            return reply(
                200,
                "application/json",
                serde_json::json!({"auth": {"client_token": VAULT_LOGIN_TOKEN, "lease_duration": 3600, "renewable": true}}).to_string(),
                clock,
            );
        }
        if rest == "auth/jwt/login" {
            count("vault:jwt-login");
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if parts.method != hyper::Method::POST
                || req.get("jwt").and_then(|j| j.as_str()) != Some(VAULT_OIDC_JWT)
                || req.get("role").and_then(|r| r.as_str()) != Some(VAULT_JWT_ROLE)
            {
                return errors(400, "error validating token: invalid audience (aud) claim");
            }
            return reply(
                200,
                "application/json",
                serde_json::json!({"auth": {"client_token": VAULT_JWT_LOGIN_TOKEN, "lease_duration": 3600, "renewable": true}}).to_string(),
                clock,
            );
        }
        count("vault:read");
        let token = parts
            .headers
            .get("x-vault-token")
            .and_then(|v| v.to_str().ok());
        if parts.method != hyper::Method::GET
            || !matches!(
                token,
                Some(VAULT_TOKEN | VAULT_LOGIN_TOKEN | VAULT_JWT_LOGIN_TOKEN)
            )
        {
            return errors(403, "permission denied");
        }
        let Some((mount, secret)) = rest.split_once("/data/") else {
            return errors(404, "no handler for route");
        };
        let data = state
            .lock()
            .unwrap()
            .vault_secrets
            .get(&format!("{mount}/{secret}"))
            .cloned();
        return match data {
            Some(data) => reply(
                200,
                "application/json",
                serde_json::json!({"data": {"data": data, "metadata": {"version": 1}}}).to_string(),
                clock,
            ),
            None => errors(404, ""),
        };
    }
    // STS
    if parts.method == hyper::Method::POST && path == "/" {
        let f = form(&body);
        match f.get("Action").map(String::as_str) {
            Some("AssumeRoleWithWebIdentity") => {
                count("sts:AssumeRoleWithWebIdentity");
                if f.get("WebIdentityToken").map(String::as_str) != Some(WEB_IDENTITY_TOKEN) {
                    return reply(
                        400,
                        "text/xml",
                        sts_error(
                            "InvalidIdentityToken",
                            "Couldn't retrieve verification key from your identity provider",
                        ),
                        clock,
                    );
                }
                if f.get("RoleArn").map(String::as_str) != Some(ROLE) {
                    return reply(
                        403,
                        "text/xml",
                        sts_error(
                            "AccessDenied",
                            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
                        ),
                        clock,
                    );
                }
                return reply(200, "text/xml", sts_xml("AssumeRoleWithWebIdentity"), clock);
            }
            Some("AssumeRole") => {
                count("sts:AssumeRole");
                if let Err((code, msg)) = check_signature(&parts, &body, clock) {
                    return reply(403, "text/xml", sts_error(code, &msg), clock);
                }
                if f.get("RoleArn").map(String::as_str) != Some(ROLE) {
                    return reply(
                        403,
                        "text/xml",
                        sts_error(
                            "AccessDenied",
                            "User is not authorized to perform: sts:AssumeRole",
                        ),
                        clock,
                    );
                }
                return reply(200, "text/xml", sts_xml("AssumeRole"), clock);
            }
            _ => {}
        }
    }
    // EKS Pod Identity's container credentials endpoint
    if path == "/v1/credentials" {
        count("pod-identity");
        if parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            != Some(POD_IDENTITY_TOKEN)
        {
            return reply(
                401,
                "application/json",
                serde_json::json!({"error": "unauthorized"}).to_string(),
                clock,
            );
        }
        return reply(
            200,
            "application/json",
            serde_json::json!({
            "AccessKeyId": TEMP_KEY, "SecretAccessKey": TEMP_SECRET, "Token": TEMP_SESSION,
            "AccountId": "123456789012", "Expiration": "2099-01-01T00:00:00Z"})
            .to_string(),
            clock,
        );
    }
    // IMDSv2
    if path == "/latest/api/token" {
        count("imds:token");
        if parts.method != hyper::Method::PUT
            || parts
                .headers
                .get("x-aws-ec2-metadata-token-ttl-seconds")
                .is_none()
        {
            return reply(400, "text/plain", "".into(), clock);
        }
        return reply(200, "text/plain", "imds-session-MARKER".into(), clock);
    }
    if let Some(role) = path.strip_prefix("/latest/meta-data/iam/security-credentials/") {
        count("imds:credentials");
        if parts
            .headers
            .get("x-aws-ec2-metadata-token")
            .and_then(|v| v.to_str().ok())
            != Some("imds-session-MARKER")
        {
            return reply(401, "text/plain", "".into(), clock);
        }
        if role.is_empty() {
            return reply(200, "text/plain", "puller-instance".into(), clock);
        }
        return reply(
            200,
            "application/json",
            serde_json::json!({
            "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": TEMP_KEY,
            "SecretAccessKey": TEMP_SECRET, "Token": TEMP_SESSION})
            .to_string(),
            clock,
        );
    }
    // Google's STS (workload identity federation, RFC 8693)
    if path == "/google/sts" {
        count("gcp:sts");
        let f = form(&body);
        if f.get("subject_token").map(String::as_str) != Some(GOOGLE_SUBJECT_TOKEN)
            || f.get("grant_type").map(String::as_str)
                != Some("urn:ietf:params:oauth:grant-type:token-exchange")
        {
            return reply(400, "application/json", serde_json::json!({"error": "invalid_grant", "error_description": "The provided subject token is invalid."}).to_string(), clock);
        }
        let n = next();
        return reply(200, "application/json", serde_json::json!({"access_token": format!("gcp-federated-{n}-MARKER"), "expires_in": 3600, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}).to_string(), clock);
    }
    // GCE metadata server
    if path == "/computeMetadata/v1/instance/service-accounts/default/token" {
        count("gcp:metadata");
        if parts
            .headers
            .get("metadata-flavor")
            .and_then(|v| v.to_str().ok())
            != Some("Google")
        {
            return reply(
                403,
                "text/plain",
                "Missing Metadata-Flavor:Google header.".into(),
                clock,
            );
        }
        let n = next();
        return reply(
            200,
            "application/json",
            serde_json::json!({"access_token": format!("gcp-token-{n}-MARKER"), "expires_in": 3599, "token_type": "Bearer"}).to_string(),
            clock,
        );
    }
    // Google's token endpoint (service-account JWT bearer, RFC 7523)
    if path == "/google/token" {
        count("gcp:token");
        let f = form(&body);
        let jwt = f.get("assertion").cloned().unwrap_or_default();
        let parts3: Vec<&str> = jwt.split('.').collect();
        let key = state.lock().unwrap().google_public_key.clone();
        let valid = parts3.len() == 3
            && key.is_some_and(|k| {
                let sig = URL_SAFE_NO_PAD.decode(parts3[2]).unwrap_or_default();
                ring::signature::UnparsedPublicKey::new(
                    &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                    k,
                )
                .verify(format!("{}.{}", parts3[0], parts3[1]).as_bytes(), &sig)
                .is_ok()
            });
        let claims: serde_json::Value = parts3
            .get(1)
            .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
            .and_then(|c| serde_json::from_slice(&c).ok())
            .unwrap_or_default();
        let aud_ok = claims["aud"].as_str() == Some(&format!("http://{addr}/google/token"));
        if !valid
            || !aud_ok
            || f.get("grant_type").map(String::as_str)
                != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        {
            return reply(400, "application/json", serde_json::json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}).to_string(), clock);
        }
        let n = next();
        return reply(
            200,
            "application/json",
            serde_json::json!({"access_token": format!("gcp-token-{n}-MARKER"), "expires_in": 3599}).to_string(),
            clock,
        );
    }
    // Entra ID
    if path.ends_with("/oauth2/v2.0/token") {
        count("entra");
        let hang = state.lock().unwrap().hang_entra;
        if let Some(d) = hang {
            tokio::time::sleep(d).await;
        }
        let f = form(&body);
        let ok = f.get("client_secret").map(String::as_str) == Some(AZURE_SECRET)
            || f.get("client_assertion").map(String::as_str) == Some(AZURE_FEDERATED);
        if !ok {
            return reply(401, "application/json", serde_json::json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}).to_string(), clock);
        }
        let scope = f.get("scope").cloned().unwrap_or_default();
        state.lock().unwrap().entra_scopes.push(scope.clone());
        // A token for the audience it was asked for: Key Vault's is not the registry's.
        let token = if scope == KEY_VAULT_SCOPE {
            KEY_VAULT_TOKEN
        } else {
            "entra-token-MARKER"
        };
        return reply(
            200,
            "application/json",
            serde_json::json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})
                .to_string(),
            clock,
        );
    }
    // ACR's exchange
    if path == "/oauth2/exchange" {
        count("acr");
        let f = form(&body);
        state.lock().unwrap().acr_service = f.get("service").cloned();
        if f.get("access_token").map(String::as_str) != Some("entra-token-MARKER")
            || f.get("grant_type").map(String::as_str) != Some("access_token")
        {
            return reply(
                401,
                "application/json",
                serde_json::json!({"errors": [{"code": "UNAUTHORIZED"}]}).to_string(),
                clock,
            );
        }
        let n = next();
        let payload = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"exp": clock + 3 * 3_600, "grant_type": "refresh_token", "n": n})
                .to_string(),
        );
        return reply(200, "application/json", serde_json::json!({"refresh_token": format!("eyJhbGciOiJSUzI1NiJ9.{payload}.sig-MARKER")}).to_string(), clock);
    }
    reply(
        404,
        "text/plain",
        format!("no fake for {} {path}", parts.method),
        clock,
    )
}
