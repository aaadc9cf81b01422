//! The `.dockerconfigjson` document, byte for byte as `kubectl create secret docker-registry`
//! writes it: Go's `encoding/json` output (fields in struct order, map keys sorted, `<`, `>`,
//! `&`, U+2028 and U+2029 escaped), no trailing newline.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::login::Login;

/// Builds the document for `(server, login)` pairs. Returns it as a secret.
pub fn build<'a>(logins: impl IntoIterator<Item = (&'a str, &'a Login)>) -> SecretString {
    let mut entries: Vec<(&str, &Login)> = logins.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Zeroizing::new(String::from("{\"auths\":{"));
    for (i, (server, login)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        go_string(&mut out, server);
        out.push_str(":{");
        let mut first = true;
        let mut field = |out: &mut String, key: &str, value: &str| {
            if value.is_empty() {
                return; // omitempty
            }
            if !first {
                out.push(',');
            }
            first = false;
            go_string(out, key);
            out.push(':');
            go_string(out, value);
        };
        field(&mut out, "username", &login.username);
        field(&mut out, "password", login.password.expose_secret());
        field(&mut out, "email", login.email.as_deref().unwrap_or(""));
        let mut pair = Zeroizing::new(String::with_capacity(
            login.username.len() + 1 + login.password.expose_secret().len(),
        ));
        pair.push_str(&login.username);
        pair.push(':');
        pair.push_str(login.password.expose_secret());
        let auth = Zeroizing::new(STANDARD.encode(pair.as_bytes()));
        field(&mut out, "auth", &auth);
        out.push('}');
    }
    out.push_str("}}");
    SecretString::from(out.as_str().to_owned())
}

/// One entry of a document as found in a cluster (see [`parse`]).
#[derive(serde::Deserialize)]
struct Entry {
    #[serde(default)]
    username: Option<String>,
    #[serde(default, deserialize_with = "secret")]
    password: Option<SecretString>,
    #[serde(default)]
    email: Option<String>,
    /// base64 of `username:password`.
    #[serde(default, deserialize_with = "secret")]
    auth: Option<SecretString>,
}

#[derive(serde::Deserialize)]
struct Document {
    #[serde(default)]
    auths: Option<std::collections::BTreeMap<String, Entry>>,
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    let s: Option<String> = serde::Deserialize::deserialize(d)?;
    Ok(s.map(SecretString::from))
}

/// Why a `.dockerconfigjson` (or `.dockercfg`) document cannot be read: what is wrong and
/// where, never a value from it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    #[error("`.dockercfg` is not a JSON object of logins (line {line}, column {column})")]
    NotLogins { line: usize, column: usize },
    #[error("`.dockerconfigjson` is not JSON of the expected shape (line {line}, column {column})")]
    BadShape { line: usize, column: usize },
    #[error("`.dockerconfigjson` has no `auths`")]
    NoAuths,
    #[error("it holds no login")]
    NoLogin,
    /// A Secret of the type has no document at all.
    #[error("it has no document")]
    Missing,
    #[error("the login for `{server}` {why}")]
    Login { server: String, why: &'static str },
}

/// The logins of a `.dockerconfigjson` document (`{"auths": {server: {…}}}`), or of a legacy
/// `.dockercfg` one (the `auths` map alone) when `legacy`, by server, in the document's order
/// of servers (sorted). A missing username or password is read from `auth` (base64 of
/// `username:password`), as the kubelet reads it. Errors say what is wrong, never a value.
pub fn parse(doc: &SecretString, legacy: bool) -> Result<Vec<(String, Login)>, DocError> {
    // serde_json's message is not kept: it may quote the document (a password).
    let auths: std::collections::BTreeMap<String, Entry> = if legacy {
        serde_json::from_str(doc.expose_secret()).map_err(|e| DocError::NotLogins {
            line: e.line(),
            column: e.column(),
        })?
    } else {
        serde_json::from_str::<Document>(doc.expose_secret())
            .map_err(|e| DocError::BadShape {
                line: e.line(),
                column: e.column(),
            })?
            .auths
            .ok_or(DocError::NoAuths)?
    };
    if auths.is_empty() {
        return Err(DocError::NoLogin);
    }
    let mut out = Vec::with_capacity(auths.len());
    for (server, e) in auths {
        let from_auth = match &e.auth {
            Some(a) if !a.expose_secret().is_empty() => {
                let bytes =
                    Zeroizing::new(STANDARD.decode(a.expose_secret().trim()).map_err(|_| {
                        DocError::Login {
                            server: server.clone(),
                            why: "has an `auth` that is not base64",
                        }
                    })?);
                let text = std::str::from_utf8(&bytes).map_err(|_| DocError::Login {
                    server: server.clone(),
                    why: "has an `auth` that is not text",
                })?;
                let (user, pass) = text.split_once(':').ok_or_else(|| DocError::Login {
                    server: server.clone(),
                    why: "has an `auth` without `user:password`",
                })?;
                Some((user.to_string(), SecretString::from(pass.to_string())))
            }
            _ => None,
        };
        let username = e
            .username
            .filter(|u| !u.is_empty())
            .or_else(|| from_auth.as_ref().map(|(u, _)| u.clone()))
            .ok_or_else(|| DocError::Login {
                server: server.clone(),
                why: "has no username",
            })?;
        let password = e
            .password
            .filter(|p| !p.expose_secret().is_empty())
            .or_else(|| from_auth.map(|(_, p)| p))
            .ok_or_else(|| DocError::Login {
                server: server.clone(),
                why: "has no password",
            })?;
        out.push((
            server,
            Login {
                username,
                password,
                email: e.email.filter(|m| !m.is_empty()),
                source_digest: None,
                expires_at: None,
            },
        ));
    }
    Ok(out)
}

/// Two documents hold the same logins (servers, usernames, passwords, emails), whatever their
/// bytes: field order, an empty `email`, `auth` present or not.
pub fn same_logins(a: &SecretString, b: &SecretString) -> bool {
    match (parse(a, false), parse(b, false)) {
        (Ok(x), Ok(y)) => {
            x.len() == y.len()
                && x.iter().zip(&y).all(|((s1, l1), (s2, l2))| {
                    s1 == s2
                        && l1.username == l2.username
                        && l1.email == l2.email
                        && l1.password.expose_secret() == l2.password.expose_secret()
                })
        }
        _ => false,
    }
}

/// A JSON string as Go's `json.Marshal` writes it.
fn go_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(user: &str, pass: &str, email: Option<&str>) -> Login {
        Login {
            username: user.into(),
            password: SecretString::from(pass.to_string()),
            email: email.map(str::to_string),
            source_digest: None,
            expires_at: None,
        }
    }

    /// The output of `kubectl create secret docker-registry harbor-pull
    /// --docker-server=harbor.example.com --docker-username='robot$ci'
    /// --docker-password='p<&>"\x' --docker-email=a@b.c --dry-run=client -o json`, decoded.
    const KUBECTL_1_32: &str = r#"{"auths":{"harbor.example.com":{"username":"robot$ci","password":"p\u003c\u0026\u003e\"\\x","email":"a@b.c","auth":"cm9ib3QkY2k6cDwmPiJceA=="}}}"#;

    #[test]
    fn parses_what_kubectl_and_consoles_write() {
        let doc = SecretString::from(KUBECTL_1_32.to_string());
        let found = parse(&doc, false).unwrap();
        assert_eq!(found.len(), 1);
        let (server, l) = &found[0];
        assert_eq!(
            (server.as_str(), l.username.as_str()),
            ("harbor.example.com", "robot$ci")
        );
        assert_eq!(l.password.expose_secret(), "p<&>\"\\x");
        assert_eq!(l.email.as_deref(), Some("a@b.c"));
        // Rebuilt, byte for byte.
        assert_eq!(build([(server.as_str(), l)]).expose_secret(), KUBECTL_1_32);
        // Only `auth`, an empty email, other field order: the same logins.
        let console = SecretString::from(
            r#"{"auths":{"harbor.example.com":{"auth":"cm9ib3QkY2k6cDwmPiJceA==","email":"a@b.c"}}}"#.to_string(),
        );
        assert!(same_logins(&console, &doc));
        let other = SecretString::from(
            r#"{"auths":{"harbor.example.com":{"username":"robot$ci","password":"other","email":"a@b.c"}}}"#.to_string(),
        );
        assert!(!same_logins(&other, &doc));
        // Legacy `.dockercfg`: the map alone.
        let legacy = SecretString::from(
            r#"{"quay.io":{"username":"bot","password":"pw","email":"x@y.z"}}"#.to_string(),
        );
        let found = parse(&legacy, true).unwrap();
        assert_eq!(found[0].0, "quay.io");
    }

    #[test]
    fn a_bad_document_is_described_without_its_values() {
        for (doc, want) in [
            ("not json MARKER", "not JSON"),
            (r#"{"auths":{}}"#, "holds no login"),
            (r#"{"other":1}"#, "has no `auths`"),
            (
                r#"{"auths":{"h":{"password":"MARKER"}}}"#,
                "has no username",
            ),
            (r#"{"auths":{"h":{"auth":"!!MARKER"}}}"#, "not base64"),
        ] {
            let Err(e) = parse(&SecretString::from(doc.to_string()), false) else {
                panic!("{doc} parsed");
            };
            let e = e.to_string();
            assert!(e.contains(want) && !e.contains("MARKER"), "{e}");
        }
    }

    #[test]
    fn matches_kubectl_byte_for_byte() {
        let l = login("robot$ci", "p<&>\"\\x", Some("a@b.c"));
        assert_eq!(
            build([("harbor.example.com", &l)]).expose_secret(),
            KUBECTL_1_32
        );
    }

    #[test]
    fn several_servers_are_sorted_and_email_omitted_when_empty() {
        let a = login("u1", "p1", None);
        let b = login("u2", "p2", None);
        let doc = build([("quay.io", &a), ("https://index.docker.io/v1/", &b)]);
        let v: serde_json::Value = serde_json::from_str(doc.expose_secret()).unwrap();
        let keys: Vec<&String> = v["auths"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["https://index.docker.io/v1/", "quay.io"]);
        assert!(!doc.expose_secret().contains("email"));
        assert_eq!(v["auths"]["quay.io"]["auth"], "dTE6cDE=");
    }

    /// The same document as kubectl writes (`kubectl create secret docker-registry`) for an
    /// awkward password.
    #[test]
    #[ignore = "needs kubectl (Debian: kubernetes-client)"]
    fn matches_installed_kubectl() {
        let pass = "a&b<c>\"d\\e\u{2028}f\tü";
        let out = std::process::Command::new("kubectl")
            .args([
                "create",
                "secret",
                "docker-registry",
                "x",
                "--docker-server=reg.local:5000",
                "--docker-username=robot$x",
            ])
            .arg(format!("--docker-password={pass}"))
            .args([
                "--dry-run=client",
                "-o",
                "jsonpath={.data.\\.dockerconfigjson}",
            ])
            .output();
        let out = out.expect(
            "this test needs kubectl (Debian: kubernetes-client): install it, or run the suite \
             without --include-ignored",
        );
        assert!(
            out.status.success(),
            "kubectl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected =
            String::from_utf8(STANDARD.decode(out.stdout.trim_ascii()).unwrap()).unwrap();
        let l = login("robot$x", pass, None);
        assert_eq!(build([("reg.local:5000", &l)]).expose_secret(), expected);
    }
}
