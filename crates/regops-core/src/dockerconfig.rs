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
        }
    }

    /// The output of `kubectl create secret docker-registry harbor-pull
    /// --docker-server=harbor.example.com --docker-username='robot$ci'
    /// --docker-password='p<&>"\x' --docker-email=a@b.c --dry-run=client -o json`, decoded.
    const KUBECTL_1_32: &str = r#"{"auths":{"harbor.example.com":{"username":"robot$ci","password":"p\u003c\u0026\u003e\"\\x","email":"a@b.c","auth":"cm9ib3QkY2k6cDwmPiJceA=="}}}"#;

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

    /// When kubectl is installed, compare with what it writes for an awkward password.
    #[test]
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
        // Skipped where kubectl is missing, except in CI (REGOPS_REQUIRE_TOOLS), where a
        // missing or failing kubectl fails the test instead of passing it silently.
        let required = std::env::var_os("REGOPS_REQUIRE_TOOLS").is_some();
        let Ok(out) = out else {
            assert!(
                !required,
                "kubectl is required (REGOPS_REQUIRE_TOOLS) but not installed"
            );
            return;
        };
        if !out.status.success() {
            assert!(
                !required,
                "kubectl failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        let expected =
            String::from_utf8(STANDARD.decode(out.stdout.trim_ascii()).unwrap()).unwrap();
        let l = login("robot$x", pass, None);
        assert_eq!(build([("reg.local:5000", &l)]).expose_secret(), expected);
    }
}
