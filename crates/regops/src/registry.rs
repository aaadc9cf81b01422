//! Logging in to a registry the way `docker login` does, to prove a credential works:
//! `GET /v2/`, then the Basic or Bearer challenge it answers with (for Bearer: the token
//! endpoint, with `service` and `scope`), and optionally `HEAD` of an image's manifest.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::Empty;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use regops_spec::DOCKER_HUB_SERVER;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::inputs::confined::SpecPath;
use crate::inputs::credentials::Login;

pub use regops_core::report::Verdict;

/// Where a registry's API is: its base URL.
pub fn base_url(server: &str, insecure: bool) -> String {
    if server == DOCKER_HUB_SERVER {
        return "https://registry-1.docker.io".into();
    }
    let host = server.split('/').next().unwrap_or(server);
    format!("{}://{host}", if insecure { "http" } else { "https" })
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `WWW-Authenticate` value into its challenges (RFC 9110 §11.6.1: a header may hold
/// several, as `Basic realm="r", Bearer realm="https://auth",service="registry"`): each a
/// scheme and its `key=value` parameters, values quoted (with `\` escapes, and commas inside)
/// or plain. A token68 credential (`Negotiate abc==`) is skipped. Never fails: what cannot be
/// read is left out.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let bytes = header.as_bytes();
    let mut i = 0;
    let skip = |i: &mut usize, pred: &dyn Fn(u8) -> bool| {
        while *i < bytes.len() && pred(bytes[*i]) {
            *i += 1;
        }
    };
    let is_sep = |b: u8| b == b',' || b.is_ascii_whitespace();
    let is_token_end = |b: u8| b == b'=' || b == b',' || b.is_ascii_whitespace() || b == b'"';
    loop {
        skip(&mut i, &is_sep);
        if i >= bytes.len() {
            return out;
        }
        let start = i;
        skip(&mut i, &|b| !is_token_end(b));
        let token = &header[start..i];
        let mut j = i;
        skip(&mut j, &|b| b.is_ascii_whitespace());
        let is_param = j < bytes.len() && bytes[j] == b'=' && !token.is_empty();
        if !is_param {
            if token.is_empty() {
                // A stray quote or `=`: step over it.
                i += 1;
                continue;
            }
            out.push(Challenge {
                scheme: token.to_string(),
                params: Vec::new(),
            });
            continue;
        }
        // key = value
        i = j + 1;
        skip(&mut i, &|b| b.is_ascii_whitespace());
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            let mut chars = header[i..].char_indices();
            let mut end = header.len() - i;
            while let Some((k, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = k + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            i += end;
        } else {
            let start = i;
            skip(&mut i, &|b| !is_sep(b));
            value = header[start..i].trim_end_matches('=').to_string();
            if header[start..i].ends_with('=') && value.is_empty() {
                continue;
            }
        }
        // Parameters before any scheme are not a challenge: dropped.
        if let Some(c) = out.last_mut() {
            c.params.push((token.to_string(), value));
        }
    }
}

/// The challenge to answer: Bearer when the registry offers it (a token for the scope),
/// else Basic, else the first.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let all = parse_challenges(header);
    let pick = |scheme: &str| {
        all.iter()
            .position(|c| c.scheme.eq_ignore_ascii_case(scheme))
    };
    let at = pick("bearer").or_else(|| pick("basic")).unwrap_or(0);
    all.into_iter().nth(at)
}

/// The token endpoint's URL: the realm, with `service` and `scope` added to any query it has.
pub fn token_url(realm: &str, service: &str, scope: Option<&str>) -> String {
    let mut url = realm.to_string();
    let mut sep = if realm.contains('?') { '&' } else { '?' };
    if realm.ends_with('?') || realm.ends_with('&') {
        sep = '\0';
    }
    let mut add = |k: &str, v: &str| {
        if sep != '\0' {
            url.push(sep);
        }
        url.push_str(k);
        url.push('=');
        url.push_str(&urlencode(v));
        sep = '&';
    };
    add("service", service);
    if let Some(s) = scope {
        add("scope", s);
    }
    url
}

type HttpClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

/// The client a check sends with, and how long each of its requests may take
/// (`--request-timeout`), its answer included.
struct Http {
    client: HttpClient,
    timeout: std::time::Duration,
}

/// Why HTTPS connections could not be set up: the CA file, or the TLS library.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA file {path}: {source}")]
    ReadCa {
        path: String,
        #[source]
        source: crate::inputs::confined::ReadError,
    },
    #[error("CA file {path}: {source}")]
    BadCa {
        path: String,
        #[source]
        source: rustls::Error,
    },
    #[error("CA file {0} holds no certificate")]
    NoCertificate(String),
    #[error("{0}")]
    Config(#[source] rustls::Error),
}

/// Roots: the registry's CA file when given, else the system's.
fn client(ca_file: Option<&SpecPath>) -> Result<HttpClient, TlsError> {
    Ok(Client::builder(TokioExecutor::new()).build(connector(ca_file)?))
}

/// HTTPS (and plain HTTP) connections, trusting `ca_file` when given, else the system's roots.
pub(crate) fn connector(
    ca_file: Option<&SpecPath>,
) -> Result<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    TlsError,
> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = path
                .read_text(crate::inputs::confined::CA_FILE_LIMIT)
                .map_err(|source| TlsError::ReadCa {
                    path: path.display().to_string(),
                    source,
                })?;
            for der in pem_certificates(&pem) {
                roots.add(der.into()).map_err(|source| TlsError::BadCa {
                    path: path.display().to_string(),
                    source,
                })?;
            }
            if roots.is_empty() {
                return Err(TlsError::NoCertificate(path.display().to_string()));
            }
        }
        None => return Ok(https(system_tls()?)),
    }
    Ok(https(tls_with(roots).map_err(TlsError::Config)?))
}

/// A TLS configuration trusting `roots`, on the ring provider.
fn tls_with(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// The TLS configuration trusting the system's roots, read from disk once per process (every
/// registry login and every call a token is minted with would read them again).
fn system_tls() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    static SYSTEM: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, rustls::Error>> =
        std::sync::OnceLock::new();
    SYSTEM
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            tls_with(roots)
        })
        .clone()
        .map_err(TlsError::Config)
}

fn https(
    tls: Arc<rustls::ClientConfig>,
) -> hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector> {
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .build()
}

/// The certificates in a PEM bundle (other sections are skipped).
fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .map(|c| c.as_ref().to_vec())
        .collect()
}

struct Reply {
    status: StatusCode,
    challenge: Option<Challenge>,
    /// Zeroed on drop: a token service's answer holds a token.
    body: Zeroizing<Vec<u8>>,
    /// `Docker-Content-Digest` (distribution-spec): the digest of the manifest a tag names.
    digest: Option<String>,
}

fn classify_error(e: &(dyn std::error::Error + 'static)) -> Verdict {
    let chain = crate::errors::chain(e);
    let text = chain.join(": ");
    if chain.iter().any(|c| {
        c.contains("certificate") || c.contains("InvalidCertificate") || c.contains("UnknownIssuer")
    }) {
        Verdict::TlsError(chain.last().cloned().unwrap_or(text))
    } else {
        Verdict::Unreachable(chain.last().cloned().unwrap_or(text))
    }
}

async fn send(
    client: &Http,
    method: Method,
    url: &str,
    auth: Option<&str>,
    accept: Option<&str>,
) -> Result<Reply, Verdict> {
    let mut req = Request::builder()
        .method(method)
        .uri(url)
        .header("user-agent", concat!("regops/", env!("CARGO_PKG_VERSION")));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| Verdict::Error(e.to_string()))?;
    // One deadline for the request and its answer (--request-timeout).
    let deadline = client.timeout;
    let started = tokio::time::Instant::now();
    let resp = tokio::time::timeout(deadline, client.client.request(req))
        .await
        .map_err(|_| {
            Verdict::Unreachable(format!(
                "no answer from {url} in {} s",
                deadline.as_secs_f32()
            ))
        })?
        .map_err(|e| classify_error(&e))?;
    let status = resp.status();
    // Several WWW-Authenticate headers are one list of challenges.
    let all: Vec<&str> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let challenge = parse_challenge(&all.join(", "));
    // Only a well-formed digest is repeated in a report (the header is the peer's text).
    let digest = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .filter(|d| {
            d.strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .map(str::to_owned);
    // The rest of the same deadline: headers then nothing is as dead as no answer at all.
    let left = deadline.saturating_sub(started.elapsed());
    let body = crate::bounded::body(resp.into_body(), crate::bounded::ANSWER_LIMIT, left)
        .await
        .map_err(|e| Verdict::Error(format!("{url}: {e}")))?;
    Ok(Reply {
        status,
        challenge,
        body,
        digest,
    })
}

fn basic(login: &Login) -> Zeroizing<String> {
    let pair = Zeroizing::new(format!(
        "{}:{}",
        login.username,
        login.password.expose_secret()
    ));
    Zeroizing::new(format!("Basic {}", STANDARD.encode(pair.as_bytes())))
}

/// `name[:tag|@digest]` to the repository path and reference, Docker Hub short names expanded.
fn image_parts(image: &str) -> (String, String) {
    let r = regops_core::image::ImageRef::parse(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    let reference = if let Some((_, d)) = image.split_once('@') {
        d.to_string()
    } else if let Some((_, t)) = last.split_once(':') {
        t.to_string()
    } else {
        "latest".to_string()
    };
    (r.repository, reference)
}

/// Logs in to the registry at `server` and, with `image`, checks the manifest can be pulled.
/// Besides the verdict: notes on where the credentials went (plain HTTP, a token service on
/// another host), for the report. Each request may take `timeout`, its answer included.
pub async fn check(
    server: &str,
    insecure: bool,
    ca_file: Option<&SpecPath>,
    login: &Login,
    image: Option<&str>,
    timeout: std::time::Duration,
) -> (Verdict, Vec<String>) {
    let mut notes = Vec::new();
    if insecure {
        notes.push("plain HTTP: the credential crosses the network in clear".to_string());
    }
    let client = match client(ca_file) {
        Ok(client) => Http { client, timeout },
        Err(e) => return (Verdict::Error(e.to_string()), notes),
    };
    let base = base_url(server, insecure);
    let verdict = match check_with(&client, &base, login, image, &mut notes).await {
        Ok(v) | Err(v) => v,
    };
    // A certificate the roots do not vouch for: say which roots, and what `caFile` is for.
    let verdict = match verdict {
        Verdict::TlsError(d) => Verdict::TlsError(match ca_file {
            Some(p) => format!(
                "{d} (checked against caFile {}: it must hold the CA that signs this registry's certificate)",
                p.display()
            ),
            None => format!(
                "{d} (checked against this machine's CAs; a registry with a CA of its own needs `caFile`)"
            ),
        }),
        v => v,
    };
    (verdict, notes)
}

/// Whether the Bearer `realm` may be given the credentials of the registry at `base`: an
/// `https://` realm always (Docker Hub's is on another host); an `http://` one only for a
/// registry that is plain HTTP itself (never a downgrade from HTTPS). Another host is said in
/// `notes`.
fn realm_allowed(base: &str, realm: &str, notes: &mut Vec<String>) -> Result<(), Verdict> {
    let host_of = |url: &str| {
        url.split_once("://").map(|(_, rest)| {
            rest.split(['/', '?', '#'])
                .next()
                .unwrap_or(rest)
                .to_string()
        })
    };
    let scheme = realm.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("https") => {}
        Some("http") if base.starts_with("http://") => {}
        Some("http") => {
            return Err(Verdict::Refused(format!(
                "the registry is HTTPS but sends logins to the token service {realm} over plain HTTP; the credentials were not sent (a downgrade)"
            )));
        }
        _ => {
            return Err(Verdict::Refused(format!(
                "the token service `{realm}` is not an http(s) URL; the credentials were not sent"
            )));
        }
    }
    let (Some(realm_host), Some(base_host)) = (host_of(realm), host_of(base)) else {
        return Ok(());
    };
    if !realm_host.eq_ignore_ascii_case(&base_host) {
        notes.push(format!("token service on another host: {realm_host}"));
    }
    Ok(())
}

// Kept whole (over 80 lines): the registry login as the protocol runs: ping, challenge, token,
// manifest.
async fn check_with(
    client: &Http,
    base: &str,
    login: &Login,
    image: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<Verdict, Verdict> {
    let v2 = format!("{base}/v2/");
    let first = send(client, Method::GET, &v2, None, None).await?;
    let scope = image.map(|i| format!("repository:{}:pull", image_parts(i).0));
    // The authorization to use: none, Basic, or a Bearer token for the scope.
    let auth: Option<Zeroizing<String>> = if first.status == StatusCode::UNAUTHORIZED {
        let challenge = first
            .challenge
            .ok_or_else(|| Verdict::Error("401 without a WWW-Authenticate challenge".into()))?;
        if challenge.scheme.eq_ignore_ascii_case("basic") {
            let b = basic(login);
            let r = send(client, Method::GET, &v2, Some(&b), None).await?;
            if r.status == StatusCode::UNAUTHORIZED {
                return Ok(Verdict::BadCredentials(format!(
                    "the registry refused user `{}` (Basic)",
                    login.username
                )));
            }
            if !r.status.is_success() {
                return Ok(Verdict::Error(format!("GET /v2/ answered {}", r.status)));
            }
            Some(b)
        } else if challenge.scheme.eq_ignore_ascii_case("bearer") {
            let realm = challenge
                .param("realm")
                .ok_or_else(|| Verdict::Error("Bearer challenge without a realm".into()))?;
            realm_allowed(base, realm, notes)?;
            let url = token_url(
                realm,
                challenge.param("service").unwrap_or(""),
                scope.as_deref(),
            );
            let r = send(client, Method::GET, &url, Some(&basic(login)), None).await?;
            if r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::FORBIDDEN {
                return Ok(Verdict::BadCredentials(format!(
                    "the token service refused user `{}`",
                    login.username
                )));
            }
            if !r.status.is_success() {
                return Ok(Verdict::Error(format!(
                    "the token service answered {}",
                    r.status
                )));
            }
            let v: serde_json::Value = serde_json::from_slice(&r.body)
                .map_err(|_| Verdict::Error("the token service did not answer JSON".into()))?;
            let token = v["token"]
                .as_str()
                .or_else(|| v["access_token"].as_str())
                .ok_or_else(|| Verdict::Error("the token service gave no token".into()))?;
            let bearer = Zeroizing::new(format!("Bearer {token}"));
            let r = send(client, Method::GET, &v2, Some(&bearer), None).await?;
            if !r.status.is_success() {
                return Ok(Verdict::BadCredentials(format!(
                    "the registry refused the token (GET /v2/ answered {})",
                    r.status
                )));
            }
            Some(bearer)
        } else {
            return Ok(Verdict::Error(format!(
                "unsupported challenge `{}`",
                challenge.scheme
            )));
        }
    } else if first.status.is_success() {
        None
    } else {
        return Ok(Verdict::Error(format!(
            "GET /v2/ answered {}",
            first.status
        )));
    };
    let how = match &auth {
        None => "no login needed",
        Some(a) if a.starts_with("Basic") => "Basic",
        Some(_) => "Bearer token",
    };
    let Some(image) = image else {
        return Ok(Verdict::Ok(format!("logged in ({how})")));
    };
    let (repo, reference) = image_parts(image);
    let url = format!("{base}/v2/{repo}/manifests/{reference}");
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
    let r = send(
        client,
        Method::HEAD,
        &url,
        auth.as_deref().map(|s| s.as_str()),
        Some(accept),
    )
    .await?;
    Ok(match r.status {
        s if s.is_success() => Verdict::Ok(match &r.digest {
            Some(d) => format!("logged in ({how}); may pull {repo}:{reference} ({d})"),
            None => format!("logged in ({how}); may pull {repo}:{reference}"),
        }),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Verdict::Denied(format!(
            "logged in ({how}), but may not pull {repo} (insufficient scope)"
        )),
        StatusCode::NOT_FOUND => {
            Verdict::NotFound(format!("logged in ({how}); no manifest {repo}:{reference}"))
        }
        s => Verdict::Error(format!("HEAD of the manifest answered {s}")),
    })
}

/// A query value, percent-encoded as `application/x-www-form-urlencoded`.
fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#).unwrap();
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.param("realm"), Some("https://auth.example.com/token"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        let b = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(
            (b.scheme.as_str(), b.param("realm")),
            ("Basic", Some("Registry Realm"))
        );
    }

    #[test]
    fn several_challenges_in_one_header_and_bearer_is_preferred() {
        let h = r#"Basic realm="Harbor, the registry", Bearer realm="https://h.example.com/service/token",service="harbor-registry""#;
        let all = parse_challenges(h);
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all[0].param("realm"), Some("Harbor, the registry"));
        assert_eq!(all[1].param("service"), Some("harbor-registry"));
        let chosen = parse_challenge(h).unwrap();
        assert_eq!(chosen.scheme, "Bearer");
        // Plain values, a token68 scheme, escapes, stray separators.
        let odd = parse_challenges(r#"Negotiate abc==, ,Basic realm=plain , Bearer realm="a\"b""#);
        let schemes: Vec<&str> = odd.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["Negotiate", "Basic", "Bearer"]);
        assert_eq!(odd[1].param("realm"), Some("plain"));
        assert_eq!(odd[2].param("realm"), Some("a\"b"));
        assert!(parse_challenges("").is_empty());
        assert!(parse_challenges("realm=x").is_empty());
    }

    #[test]
    fn a_realm_with_a_query_keeps_it() {
        assert_eq!(
            token_url(
                "https://auth.example.com/token",
                "reg",
                Some("repository:a/b:pull")
            ),
            "https://auth.example.com/token?service=reg&scope=repository%3Aa%2Fb%3Apull"
        );
        assert_eq!(
            token_url("https://auth.example.com/token?account=x", "reg", None),
            "https://auth.example.com/token?account=x&service=reg"
        );
    }

    #[test]
    fn a_realm_may_not_downgrade_and_another_host_is_noted() {
        let mut notes = Vec::new();
        assert_eq!(
            realm_allowed(
                "https://registry-1.docker.io",
                "https://auth.docker.io/token",
                &mut notes
            ),
            Ok(())
        );
        assert_eq!(notes, ["token service on another host: auth.docker.io"]);
        let mut notes = Vec::new();
        assert!(
            realm_allowed(
                "https://h.example.com",
                "https://h.example.com/service/token",
                &mut notes
            )
            .is_ok()
        );
        assert!(notes.is_empty());
        assert!(matches!(
            realm_allowed(
                "https://h.example.com",
                "http://h.example.com/token",
                &mut notes
            ),
            Err(Verdict::Refused(_))
        ));
        assert!(matches!(
            realm_allowed("https://h.example.com", "file:///etc/passwd", &mut notes),
            Err(Verdict::Refused(_))
        ));
        assert!(realm_allowed("http://lab:5000", "http://lab:5000/token", &mut notes).is_ok());
    }

    #[test]
    fn urls_and_images() {
        assert_eq!(
            base_url("https://index.docker.io/v1/", false),
            "https://registry-1.docker.io"
        );
        assert_eq!(base_url("harbor.lab:8080", true), "http://harbor.lab:8080");
        assert_eq!(base_url("quay.io/myorg", false), "https://quay.io");
        assert_eq!(
            image_parts("nginx"),
            ("library/nginx".to_string(), "latest".to_string())
        );
        assert_eq!(
            image_parts("reg.local:5000/team/app:1.2"),
            ("team/app".to_string(), "1.2".to_string())
        );
        assert_eq!(
            image_parts("reg.local/app@sha256:abc"),
            ("app".to_string(), "sha256:abc".to_string())
        );
    }
}
