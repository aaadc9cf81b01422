//! Amazon ECR: `GetAuthorizationToken`, signed with SigV4, with credentials from the standard
//! AWS chain, in the SDKs' order:
//! 1. the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`);
//! 2. the shared config and credentials files (`AWS_PROFILE`, `AWS_CONFIG_FILE`,
//!    `AWS_SHARED_CREDENTIALS_FILE`): static keys, `role_arn` with `source_profile`, or
//!    `role_arn` with `web_identity_token_file`;
//! 3. a web identity token file (`AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`: IRSA);
//! 4. the container credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI` with
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`: EKS Pod Identity; or the ECS relative URI);
//! 5. the instance metadata service, version 2 (`AWS_EC2_METADATA_SERVICE_ENDPOINT`;
//!    `AWS_EC2_METADATA_DISABLED=true` skips it).
//!
//! Then `roleArn` is assumed through STS when the spec gives one.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use regops_spec::EcrSource;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::sigv4;
use super::{Env, MintError, Reply, Request};
use crate::inputs::credentials::Login;

/// AWS credentials: a key pair and, for temporary ones, a session token.
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
    /// Where they came from, for messages.
    pub origin: String,
}

const FIND: &str = "find AWS credentials";

/// The endpoint of `service` (`ecr`, `sts`): `AWS_ENDPOINT_URL_<SERVICE>`, else
/// `AWS_ENDPOINT_URL`, else the regional one.
pub fn endpoint(service: &str, region: &str, env: Env<'_>) -> String {
    let specific = format!("AWS_ENDPOINT_URL_{}", service.to_ascii_uppercase());
    env.var(&specific)
        .or_else(|| env.var("AWS_ENDPOINT_URL"))
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| {
            let domain = dns_suffix(region);
            match service {
                "ecr" => format!("https://api.ecr.{region}.{domain}"),
                _ => format!("https://{service}.{region}.{domain}"),
            }
        })
}

/// The DNS suffix of a region's partition: `amazonaws.com.cn` for China (`cn-north-1`,
/// `cn-northwest-1`), `amazonaws.com` for the commercial and GovCloud partitions.
pub fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// One INI file of the shared config: sections of `key = value`.
fn ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            continue;
        }
        if let (Some(sec), Some((k, v))) = (&section, line.split_once('=')) {
            out.entry(sec.clone())
                .or_default()
                .insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    out
}

/// A profile's settings, from the credentials file (`[name]`) over the config file
/// (`[profile name]`, or `[default]`).
fn profile(name: &str, env: Env<'_>) -> Option<BTreeMap<String, String>> {
    let home = super::home(env);
    let path = |var: &str, default: &str| {
        env.var(var)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let read = |p: Option<std::path::PathBuf>| {
        p.and_then(|p| super::read_file(p).ok())
            .map(|t| ini(&t))
            .unwrap_or_default()
    };
    let config = read(path("AWS_CONFIG_FILE", "config"));
    let credentials = read(path("AWS_SHARED_CREDENTIALS_FILE", "credentials"));
    let config_section = if name == "default" {
        config
            .get("default")
            .or_else(|| config.get("profile default"))
    } else {
        config.get(&format!("profile {name}"))
    };
    let mut merged = config_section.cloned().unwrap_or_default();
    let from_credentials = credentials.get(name);
    merged.extend(from_credentials.cloned().unwrap_or_default());
    (config_section.is_some() || from_credentials.is_some()).then_some(merged)
}

fn static_keys(p: &BTreeMap<String, String>, origin: String) -> Option<Credentials> {
    Some(Credentials {
        access_key_id: p.get("aws_access_key_id")?.clone(),
        secret_access_key: SecretString::from(p.get("aws_secret_access_key")?.clone()),
        session_token: p
            .get("aws_session_token")
            .map(|t| SecretString::from(t.clone())),
        origin,
    })
}

/// The credentials of the chain's first source that has any.
// Kept whole (over 80 lines): the chain's five sources, in order, each a few lines.
pub async fn chain(region: &str, env: Env<'_>) -> Result<Credentials, MintError> {
    // 1. The environment.
    if let (Some(id), Some(secret)) = (
        env.var("AWS_ACCESS_KEY_ID"),
        env.var("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Credentials {
            access_key_id: id,
            secret_access_key: SecretString::from(secret),
            session_token: env.var("AWS_SESSION_TOKEN").map(SecretString::from),
            origin: "the environment (AWS_ACCESS_KEY_ID)".into(),
        });
    }
    // 2. The shared config and credentials files.
    let named = env.var("AWS_PROFILE");
    let name = named.clone().unwrap_or_else(|| "default".into());
    match profile(&name, env) {
        Some(p) => {
            let origin = format!("profile `{name}` of the shared AWS config");
            if let Some(role) = p.get("role_arn") {
                if let Some(file) = p.get("web_identity_token_file") {
                    let session = p.get("role_session_name").cloned();
                    return web_identity(region, role, file, session, env).await;
                }
                let source = p.get("source_profile").ok_or_else(|| {
                    MintError::new(
                        FIND,
                        format!("{origin} has `role_arn` but neither `source_profile` nor `web_identity_token_file`"),
                    )
                })?;
                let base = profile(source, env)
                    .and_then(|sp| static_keys(&sp, format!("profile `{source}`")))
                    .ok_or_else(|| {
                        MintError::new(
                            FIND,
                            format!("source profile `{source}` of {origin} has no access keys"),
                        )
                    })?;
                return assume_role(region, role, &base, env).await;
            }
            if let Some(c) = static_keys(&p, origin.clone()) {
                return Ok(c);
            }
            if named.is_some() {
                return Err(MintError::new(
                    FIND,
                    format!("{origin} has no access keys, role or web identity"),
                ));
            }
        }
        None if named.is_some() => {
            return Err(MintError::new(
                FIND,
                format!("AWS_PROFILE is `{name}`, but no such profile is in the shared config"),
            ));
        }
        None => {}
    }
    // 3. A web identity token file (IRSA).
    if let (Some(file), Some(role)) = (
        env.var("AWS_WEB_IDENTITY_TOKEN_FILE"),
        env.var("AWS_ROLE_ARN"),
    ) {
        return web_identity(region, &role, &file, env.var("AWS_ROLE_SESSION_NAME"), env).await;
    }
    // 4. The container credentials endpoint (EKS Pod Identity, ECS).
    let container = env.var("AWS_CONTAINER_CREDENTIALS_FULL_URI").or_else(|| {
        env.var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            .map(|rel| format!("http://169.254.170.2{rel}"))
    });
    if let Some(url) = container {
        return container_credentials(&url, env).await;
    }
    // 5. The instance metadata service.
    if env
        .var("AWS_EC2_METADATA_DISABLED")
        .is_none_or(|v| !v.eq_ignore_ascii_case("true"))
        && let Some(c) = imds(env).await?
    {
        return Ok(c);
    }
    Err(MintError::new(
        FIND,
        "none found: tried the environment (AWS_ACCESS_KEY_ID), the shared config (~/.aws), a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE, as IRSA sets), the container endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI, as EKS Pod Identity sets) and the instance metadata service",
    ))
}

/// A text element of an STS XML answer (`<AccessKeyId>…</AccessKeyId>`), unescaped.
fn xml_text(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = start + body[start..].find(&format!("</{tag}>"))?;
    Some(
        body[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// The credentials of an STS answer, or its error (`Code: Message`), with the clock skew when
/// that is why.
fn sts_credentials(
    step: &str,
    reply: &Reply,
    origin: String,
    now: i64,
) -> Result<Credentials, MintError> {
    let body = String::from_utf8_lossy(&reply.body);
    if !reply.ok() {
        let code = xml_text(&body, "Code").unwrap_or_default();
        let message = xml_text(&body, "Message").unwrap_or_default();
        let mut text = format!("HTTP {}: {code}: {message}", reply.status);
        if let Some(note) = clock_refusal(&code, &message, reply, now) {
            text = format!("{text}; {note}");
        }
        return Err(MintError::new(step, text));
    }
    let get = |t: &str| {
        xml_text(&body, t).ok_or_else(|| MintError::new(step, format!("the answer has no {t}")))
    };
    Ok(Credentials {
        access_key_id: get("AccessKeyId")?,
        secret_access_key: SecretString::from(get("SecretAccessKey")?),
        session_token: Some(SecretString::from(get("SessionToken")?)),
        origin,
    })
}

/// Whether a refusal is about the request's time, and what to say then.
fn clock_refusal(code: &str, message: &str, reply: &Reply, now: i64) -> Option<String> {
    let about_time = matches!(
        code,
        "RequestExpired"
            | "RequestTimeTooSkewed"
            | "SignatureExpired"
            | "InvalidSignatureException"
    ) && (code != "InvalidSignatureException" || message.contains("expired"));
    let note = super::skew_note(reply, now);
    match (about_time, note) {
        (_, Some(n)) => Some(n),
        (true, None) => Some("the request's time was refused: check this machine's clock".into()),
        _ => None,
    }
}

fn session_name(env: Env<'_>) -> String {
    format!("regops-{}", env.now())
}

/// `AssumeRoleWithWebIdentity` with the token in `file` (unsigned, as STS takes it).
async fn web_identity(
    region: &str,
    role: &str,
    file: &str,
    session: Option<String>,
    env: Env<'_>,
) -> Result<Credentials, MintError> {
    let token = super::read_file(file)
        .map_err(|e| MintError::new("read the web identity token", format!("{file}: {e}")))?;
    let url = format!("{}/", endpoint("sts", region, env));
    let session = session.unwrap_or_else(|| session_name(env));
    let body = super::form(&[
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", role),
        ("RoleSessionName", &session),
        ("WebIdentityToken", token.trim()),
    ]);
    let step = format!("assume role {role} with the web identity token (STS)");
    let reply = Request::post(
        &url,
        "application/x-www-form-urlencoded; charset=utf-8",
        body,
        env,
    )
    .send()
    .await
    .map_err(|e| MintError::new(&step, e))?;
    sts_credentials(
        &step,
        &reply,
        format!("web identity token {file} as {role}"),
        env.now(),
    )
}

/// Signs a POST to `url` for `service` with `creds` and sends it.
pub(crate) async fn signed_post(
    url: &str,
    service: &str,
    region: &str,
    creds: &Credentials,
    headers: &[(&'static str, &str)],
    body: Zeroizing<Vec<u8>>,
    env: Env<'_>,
) -> Result<Reply, super::SendError> {
    let bad = |why: String| super::SendError::BadEndpoint {
        url: url.to_string(),
        why,
    };
    let uri: hyper::Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or_else(|| bad("no host".into()))?;
    let amz_date = sigv4::amz_date(env.now());
    let mut signed: Vec<(&str, &str)> = vec![("host", &host), ("x-amz-date", &amz_date)];
    signed.extend(headers.iter().copied());
    let token = creds.session_token.as_ref().map(|t| t.expose_secret());
    if let Some(t) = token {
        signed.push(("x-amz-security-token", t));
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let auth = sigv4::sign(
        "POST",
        path,
        &signed,
        &body,
        (
            &creds.access_key_id,
            creds.secret_access_key.expose_secret(),
        ),
        &sigv4::Scope {
            region,
            service,
            amz_date: &amz_date,
        },
    );
    let mut req = Request {
        method: "POST",
        url,
        headers: Vec::new(),
        body,
        timeout: Duration::from_secs(20),
    };
    for (k, v) in &signed {
        if *k != "host" {
            req = req.header(k, *v);
        }
    }
    req.header("authorization", auth.authorization).send().await
}

/// `AssumeRole` of `role` with `base`, signed.
async fn assume_role(
    region: &str,
    role: &str,
    base: &Credentials,
    env: Env<'_>,
) -> Result<Credentials, MintError> {
    let url = format!("{}/", endpoint("sts", region, env));
    let session = session_name(env);
    let body = super::form(&[
        ("Action", "AssumeRole"),
        ("Version", "2011-06-15"),
        ("RoleArn", role),
        ("RoleSessionName", &session),
    ]);
    let step = format!("assume role {role} (STS AssumeRole, as {})", base.origin);
    let reply = signed_post(
        &url,
        "sts",
        region,
        base,
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        body,
        env,
    )
    .await
    .map_err(|e| MintError::new(&step, e))?;
    sts_credentials(&step, &reply, format!("role {role}"), env.now())
}

/// The container credentials endpoint: `GET` with the authorization token (file), JSON back.
async fn container_credentials(url: &str, env: Env<'_>) -> Result<Credentials, MintError> {
    let step = "get credentials from the container endpoint (EKS Pod Identity)";
    let token = match env.var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(f) => Some(
            super::read_file(&f)
                .map(|t| Zeroizing::new(t.trim().to_string()))
                .map_err(|e| MintError::new(step, format!("{f}: {e}")))?,
        ),
        None => env
            .var("AWS_CONTAINER_AUTHORIZATION_TOKEN")
            .map(Zeroizing::new),
    };
    let mut req = Request::get(url, env);
    if let Some(t) = &token {
        req = req.header("authorization", t.as_str());
    }
    let reply = req.send().await.map_err(|e| MintError::new(step, e))?;
    json_credentials(step, &reply, format!("the container endpoint {url}"))
}

/// Credentials as the container endpoint and IMDS give them: `AccessKeyId`,
/// `SecretAccessKey`, `Token`.
fn json_credentials(step: &str, reply: &Reply, origin: String) -> Result<Credentials, MintError> {
    if !reply.ok() {
        return Err(MintError::new(step, super::oauth_error(reply)));
    }
    let v = reply
        .json()
        .ok_or_else(|| MintError::new(step, "the answer is not JSON"))?;
    let get = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .map(str::to_string)
            .ok_or_else(|| MintError::new(step, format!("the answer has no {k}")))
    };
    Ok(Credentials {
        access_key_id: get("AccessKeyId")?,
        secret_access_key: SecretString::from(get("SecretAccessKey")?),
        session_token: v
            .get("Token")
            .and_then(|t| t.as_str())
            .map(|t| SecretString::from(t.to_string())),
        origin,
    })
}

/// IMDSv2: a session token by `PUT`, then the instance role's credentials. `None` when no
/// metadata service answers (not on EC2).
async fn imds(env: Env<'_>) -> Result<Option<Credentials>, MintError> {
    let base = env
        .var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .unwrap_or_else(|| "http://169.254.169.254".into());
    let base = base.trim_end_matches('/');
    let step = "get credentials from the instance metadata service (IMDSv2)";
    let token_url = format!("{base}/latest/api/token");
    let mut put =
        Request::get(&token_url, env).header("x-aws-ec2-metadata-token-ttl-seconds", "300");
    put.method = "PUT";
    put.timeout = Duration::from_secs(2);
    let Ok(token) = put.send().await else {
        return Ok(None);
    };
    if !token.ok() {
        return Err(MintError::new(
            step,
            format!("token: HTTP {}", token.status),
        ));
    }
    let token = Zeroizing::new(String::from_utf8_lossy(&token.body).to_string());
    let list_url = format!("{base}/latest/meta-data/iam/security-credentials/");
    let ask = |url: String| {
        let t = token.clone();
        async move {
            let mut r = Request::get(&url, env).header("x-aws-ec2-metadata-token", t.as_str());
            r.timeout = Duration::from_secs(5);
            r.send().await
        }
    };
    let roles = ask(list_url).await.map_err(|e| MintError::new(step, e))?;
    if !roles.ok() {
        return Err(MintError::new(
            step,
            format!("the instance has no role (HTTP {})", roles.status),
        ));
    }
    let role = String::from_utf8_lossy(&roles.body)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let reply = ask(format!(
        "{base}/latest/meta-data/iam/security-credentials/{role}"
    ))
    .await
    .map_err(|e| MintError::new(step, e))?;
    json_credentials(step, &reply, format!("instance role {role}")).map(Some)
}

/// An ECR token for `source`, as `AWS`.
pub async fn mint(source: &EcrSource, env: Env<'_>) -> Result<Login, MintError> {
    let region = source.region.value.as_str();
    let mut creds = chain(region, env).await?;
    if let Some(role) = &source.role_arn {
        creds = assume_role(region, &role.value, &creds, env).await?;
    }
    let url = format!("{}/", endpoint("ecr", region, env));
    let body = match &source.registry_id {
        Some(id) => serde_json::json!({ "registryIds": [id.value] }).to_string(),
        None => "{}".into(),
    };
    let step = format!(
        "ECR GetAuthorizationToken in {region} (as {})",
        creds.origin
    );
    let reply = signed_post(
        &url,
        "ecr",
        region,
        &creds,
        &[
            ("content-type", "application/x-amz-json-1.1"),
            (
                "x-amz-target",
                "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
            ),
        ],
        Zeroizing::new(body.into_bytes()),
        env,
    )
    .await
    .map_err(|e| MintError::new(&step, e))?;
    let v = reply.json();
    if !reply.ok() {
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
        let mut text = format!("HTTP {}: {ty}: {message}", reply.status);
        if let Some(note) = clock_refusal(&ty, &message, &reply, env.now()) {
            text = format!("{text}; {note}");
        }
        return Err(MintError::new(step, text));
    }
    let data = v
        .as_ref()
        .and_then(|v| v.pointer("/authorizationData/0"))
        .ok_or_else(|| MintError::new(&step, "the answer has no authorizationData"))?;
    let token = data
        .get("authorizationToken")
        .and_then(|t| t.as_str())
        .ok_or_else(|| MintError::new(&step, "the answer has no authorizationToken"))?;
    let decoded = Zeroizing::new(
        STANDARD
            .decode(token)
            .map_err(|_| MintError::new(&step, "the authorizationToken is not base64"))?,
    );
    let text = std::str::from_utf8(&decoded)
        .map_err(|_| MintError::new(&step, "the authorizationToken is not text"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| MintError::new(&step, "the authorizationToken is not user:password"))?;
    // A float of seconds; `as` saturates (NaN is 0), and the bounds below judge the result.
    let at = data
        .get("expiresAt")
        .and_then(serde_json::Value::as_f64)
        .map(|f| f as i64);
    let expires_at = super::token_expiry(env.now(), at, 12 * 3_600, &step)?;
    Ok(Login {
        username: user.to_string(),
        password: SecretString::from(password.to_string()),
        email: None,
        source_digest: None,
        expires_at: Some(expires_at),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shared_config_profiles_merge_config_and_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let aws = dir.path().join(".aws");
        std::fs::create_dir_all(&aws).unwrap();
        std::fs::write(
            aws.join("config"),
            "[default]\nregion = eu-west-1\n\n[profile ci]\nrole_arn = arn:aws:iam::123456789012:role/ci\nsource_profile = base\n",
        )
        .unwrap();
        std::fs::write(
            aws.join("credentials"),
            "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = s\n",
        )
        .unwrap();
        let home = dir.path().to_string_lossy().to_string();
        let env = move |k: &str| (k == "HOME").then(|| home.clone());
        let ci = profile("ci", Env::vars(&env)).unwrap();
        assert_eq!(ci["source_profile"], "base");
        let base = profile("base", Env::vars(&env)).unwrap();
        assert_eq!(
            static_keys(&base, "b".into()).unwrap().access_key_id,
            "AKIDBASE"
        );
        assert_eq!(
            profile("default", Env::vars(&env)).unwrap()["region"],
            "eu-west-1"
        );
        assert!(profile("nope", Env::vars(&env)).is_none());
    }

    #[test]
    fn endpoints_follow_the_standard_overrides() {
        let env = |k: &str| match k {
            "AWS_ENDPOINT_URL_ECR" => Some("http://127.0.0.1:9/".to_string()),
            "AWS_ENDPOINT_URL" => Some("http://general".to_string()),
            _ => None,
        };
        assert_eq!(
            endpoint("ecr", "cn-north-1", Env::vars(&|_: &str| None)),
            "https://api.ecr.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            endpoint("sts", "cn-northwest-1", Env::vars(&|_: &str| None)),
            "https://sts.cn-northwest-1.amazonaws.com.cn"
        );
        assert_eq!(
            endpoint("ecr", "eu-west-1", Env::vars(&env)),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            endpoint("sts", "eu-west-1", Env::vars(&env)),
            "http://general"
        );
        let none = |_: &str| None;
        assert_eq!(
            endpoint("ecr", "eu-west-1", Env::vars(&none)),
            "https://api.ecr.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            endpoint("sts", "eu-west-1", Env::vars(&none)),
            "https://sts.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn sts_xml_is_read_and_unescaped() {
        let body = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>a&amp;b</SecretAccessKey></Credentials></AssumeRoleResult></AssumeRoleResponse>";
        assert_eq!(xml_text(body, "AccessKeyId").as_deref(), Some("ASIA1"));
        assert_eq!(xml_text(body, "SecretAccessKey").as_deref(), Some("a&b"));
        assert_eq!(xml_text(body, "SessionToken"), None);
    }
}
