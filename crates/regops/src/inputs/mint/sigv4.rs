//! AWS Signature Version 4: the canonical request, the string to sign, the derived key and the
//! `Authorization` header, for the two calls regops makes (STS and ECR). Also the check a
//! service makes of a signed request, which the test endpoints use. Pure but for nothing: the
//! caller passes the time.

use ring::{digest, hmac};

/// What signing produced, each step kept for tests against AWS's published vectors.
#[derive(Debug)]
pub struct Signed {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub authorization: String,
}

/// The request's scope: `<date>/<region>/<service>/aws4_request`.
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
    /// `YYYYMMDDTHHMMSSZ`, as in the `x-amz-date` header.
    pub amz_date: &'a str,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

/// RFC 3986 percent-encoding of all but the unreserved characters, as SigV4 wants it.
fn uri_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The path with `.` and `..` segments resolved and empty segments dropped, each segment
/// encoded once; a trailing slash is kept.
fn canonical_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::from("/");
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        uri_encode(seg, &mut out);
    }
    if path.len() > 1 && path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// The query's parameters, each encoded, sorted by name and then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| {
            let (mut ek, mut ev) = (String::new(), String::new());
            uri_encode(&k, &mut ek);
            uri_encode(&v, &mut ev);
            (ek, ev)
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Header values trimmed, inner runs of spaces made one; names lower-cased; several of one
/// name joined with `,`. Sorted by name.
fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut by_name: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, value) in headers {
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        by_name
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value);
    }
    let mut canonical = String::new();
    for (name, values) in &by_name {
        canonical.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let signed = by_name.keys().cloned().collect::<Vec<_>>().join(";");
    (canonical, signed)
}

fn hmac(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// Signs a request: `path_and_query` as sent, every header in `headers` signed (they must
/// include `host` and `x-amz-date`, and `x-amz-security-token` with temporary credentials).
pub fn sign(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    (access_key, secret_key): (&str, &str),
    scope: &Scope<'_>,
) -> Signed {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let (canonical_headers, signed_headers) = canonical_headers(headers);
    let canonical_request = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        canonical_path(path),
        canonical_query(query),
        sha256_hex(body)
    );
    let date = scope.amz_date.get(..8).unwrap_or(scope.amz_date);
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{credential_scope}\n{}",
        scope.amz_date,
        sha256_hex(canonical_request.as_bytes())
    );
    let secret = zeroize::Zeroizing::new(format!("AWS4{secret_key}"));
    let k_date = hmac(secret.as_bytes(), date.as_bytes());
    let k_region = hmac(k_date.as_ref(), scope.region.as_bytes());
    let k_service = hmac(k_region.as_ref(), scope.service.as_bytes());
    let k_signing = hmac(k_service.as_ref(), b"aws4_request");
    let signature = hex(hmac(k_signing.as_ref(), string_to_sign.as_bytes()).as_ref());
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}"
    );
    Signed {
        canonical_request,
        string_to_sign,
        authorization,
    }
}

/// `YYYYMMDDTHHMMSSZ` for Unix seconds.
pub fn amz_date(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// Why a service refuses a signed request (the verifying side, which only the tests' fake
/// AWS services use: nothing in the binary calls it, so the linker leaves it out).
#[doc(hidden)]
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No or a malformed `Authorization` header, or no `x-amz-date`.
    Malformed(&'static str),
    /// The access key is not known.
    UnknownKey,
    /// The request was signed more than five minutes away from the service's clock.
    Skewed,
    /// The signature is not the one the service computes.
    Mismatch,
}

#[doc(hidden)]
/// Checks a request as an AWS service does: the access key is known (`secret_for`), the
/// `x-amz-date` is within five minutes of `now`, and the signature over the signed headers
/// matches. `headers` are the request's, as received.
pub fn verify(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    secret_for: &dyn Fn(&str) -> Option<String>,
    now: i64,
) -> Result<(), Refusal> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let auth = get("authorization").ok_or(Refusal::Malformed("no Authorization header"))?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or(Refusal::Malformed("not AWS4-HMAC-SHA256"))?;
    let mut credential = None;
    let mut signed_headers = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        }
    }
    let credential = credential.ok_or(Refusal::Malformed("no Credential"))?;
    let signed_headers = signed_headers.ok_or(Refusal::Malformed("no SignedHeaders"))?;
    let mut parts = credential.split('/');
    let (Some(key), Some(_date), Some(region), Some(service)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed("bad Credential"));
    };
    let amz = get("x-amz-date").ok_or(Refusal::Malformed("no x-amz-date"))?;
    let signed_at = jiff::fmt::strtime::parse("%Y%m%dT%H%M%SZ", amz)
        .and_then(|t| t.to_datetime())
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC))
        .map(|z| z.timestamp().as_second())
        .map_err(|_| Refusal::Malformed("bad x-amz-date"))?;
    if (signed_at - now).abs() > 300 {
        return Err(Refusal::Skewed);
    }
    let secret = secret_for(key).ok_or(Refusal::UnknownKey)?;
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"host") || !names.contains(&"x-amz-date") {
        return Err(Refusal::Malformed("host and x-amz-date must be signed"));
    }
    let chosen: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(n, _)| names.iter().any(|s| n.eq_ignore_ascii_case(s)))
        .copied()
        .collect();
    let expected = sign(
        method,
        path_and_query,
        &chosen,
        body,
        (key, &secret),
        &Scope {
            region,
            service,
            amz_date: amz,
        },
    );
    if expected.authorization == auth {
        Ok(())
    } else {
        Err(Refusal::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    //! AWS's published Signature Version 4 test suite (`aws-sig-v4-test-suite`): each case's
    //! request, and the canonical request, string to sign and `Authorization` header AWS
    //! gives for it, with the suite's example key.
    use super::*;

    const KEY: (&str, &str) = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    const DATE: &str = "20150830T123600Z";
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    struct Case {
        name: &'static str,
        method: &'static str,
        path: &'static str,
        extra: &'static [(&'static str, &'static str)],
        body: &'static str,
        canonical: String,
        signature: &'static str,
    }

    fn run(c: &Case) {
        let mut headers = vec![("host", "example.amazonaws.com"), ("x-amz-date", DATE)];
        headers.extend_from_slice(c.extra);
        let signed = sign(
            c.method,
            c.path,
            &headers,
            c.body.as_bytes(),
            KEY,
            &Scope {
                region: "us-east-1",
                service: "service",
                amz_date: DATE,
            },
        );
        assert_eq!(signed.canonical_request, c.canonical, "{}", c.name);
        assert!(
            signed
                .authorization
                .ends_with(&format!("Signature={}", c.signature)),
            "{}: {}",
            c.name,
            signed.authorization
        );
        assert!(signed.authorization.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders="
        ));
    }

    fn plain(method: &str, path: &str, query: &str) -> String {
        format!(
            "{method}\n{path}\n{query}\nhost:example.amazonaws.com\nx-amz-date:{DATE}\n\nhost;x-amz-date\n{EMPTY}"
        )
    }

    // Kept whole (over 80 lines): a table of AWS's cases, one entry each.
    #[test]
    fn the_aws_sigv4_test_suite() {
        const TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
        let cases = [
            Case {
                name: "get-vanilla",
                method: "GET",
                path: "/",
                extra: &[],
                body: "",
                canonical: plain("GET", "/", ""),
                signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            },
            Case {
                name: "get-vanilla-query-order-key-case",
                method: "GET",
                path: "/?Param2=value2&Param1=value1",
                extra: &[],
                body: "",
                canonical: plain("GET", "/", "Param1=value1&Param2=value2"),
                signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            },
            Case {
                name: "get-vanilla-query-order-value",
                method: "GET",
                path: "/?Param1=value2&Param1=value1",
                extra: &[],
                body: "",
                canonical: plain("GET", "/", "Param1=value1&Param1=value2"),
                signature: "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
            },
            Case {
                name: "get-vanilla-utf8-query",
                method: "GET",
                path: "/?\u{1234}=bar",
                extra: &[],
                body: "",
                canonical: plain("GET", "/", "%E1%88%B4=bar"),
                signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
            },
            Case {
                name: "get-utf8",
                method: "GET",
                path: "/\u{1234}",
                extra: &[],
                body: "",
                canonical: plain("GET", "/%E1%88%B4", ""),
                signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
            },
            Case {
                name: "normalize-path/get-space",
                method: "GET",
                path: "/example space/",
                extra: &[],
                body: "",
                canonical: plain("GET", "/example%20space/", ""),
                signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
            },
            Case {
                name: "normalize-path/get-slashes",
                method: "GET",
                path: "//example//",
                extra: &[],
                body: "",
                canonical: plain("GET", "/example/", ""),
                signature: "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
            },
            Case {
                name: "normalize-path/get-relative-relative",
                method: "GET",
                path: "/example1/example2/../..",
                extra: &[],
                body: "",
                canonical: plain("GET", "/", ""),
                signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            },
            Case {
                name: "get-header-value-trim",
                method: "GET",
                path: "/",
                extra: &[("my-header1", " value1"), ("my-header2", " \"a   b   c\"")],
                body: "",
                canonical: format!(
                    "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:{DATE}\n\nhost;my-header1;my-header2;x-amz-date\n{EMPTY}"
                ),
                signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
            },
            Case {
                name: "post-vanilla",
                method: "POST",
                path: "/",
                extra: &[],
                body: "",
                canonical: plain("POST", "/", ""),
                signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            },
            Case {
                name: "post-header-key-sort",
                method: "POST",
                path: "/",
                extra: &[("my-header1", "value1")],
                body: "",
                canonical: format!(
                    "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nx-amz-date:{DATE}\n\nhost;my-header1;x-amz-date\n{EMPTY}"
                ),
                signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
            },
            Case {
                name: "post-sts-token/post-sts-header-before",
                method: "POST",
                path: "/",
                extra: &[("x-amz-security-token", TOKEN)],
                body: "",
                canonical: format!(
                    "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:{DATE}\nx-amz-security-token:{TOKEN}\n\nhost;x-amz-date;x-amz-security-token\n{EMPTY}"
                ),
                signature: "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
            },
            Case {
                name: "post-x-www-form-urlencoded",
                method: "POST",
                path: "/",
                extra: &[("content-type", "application/x-www-form-urlencoded")],
                body: "Param1=value1",
                canonical: format!(
                    "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-date:{DATE}\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
                ),
                signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
            },
            Case {
                name: "post-x-www-form-urlencoded-parameters",
                method: "POST",
                path: "/",
                extra: &[(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf8",
                )],
                body: "Param1=value1",
                canonical: format!(
                    "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf8\nhost:example.amazonaws.com\nx-amz-date:{DATE}\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
                ),
                signature: "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
            },
        ];
        for c in &cases {
            run(c);
        }
    }

    #[test]
    fn the_string_to_sign_of_get_vanilla_is_aws_s() {
        let s = sign(
            "GET",
            "/",
            &[("host", "example.amazonaws.com"), ("x-amz-date", DATE)],
            b"",
            KEY,
            &Scope {
                region: "us-east-1",
                service: "service",
                amz_date: DATE,
            },
        );
        assert_eq!(
            s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
    }

    #[test]
    fn verify_accepts_what_sign_signs_and_refuses_tampering_skew_and_unknown_keys() {
        let now = 1_440_938_160; // 2015-08-30T12:36:00Z
        assert_eq!(amz_date(now), DATE);
        let signed = sign(
            "POST",
            "/",
            &[("host", "example.amazonaws.com"), ("x-amz-date", DATE)],
            b"{}",
            KEY,
            &Scope {
                region: "us-east-1",
                service: "ecr",
                amz_date: DATE,
            },
        );
        let headers = [
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", DATE),
            ("Authorization", signed.authorization.as_str()),
            ("User-Agent", "not signed"),
        ];
        let secret = |k: &str| (k == KEY.0).then(|| KEY.1.to_string());
        assert_eq!(verify("POST", "/", &headers, b"{}", &secret, now), Ok(()));
        assert_eq!(
            verify("POST", "/", &headers, b"{\"x\":1}", &secret, now),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify("POST", "/", &headers, b"{}", &secret, now + 301),
            Err(Refusal::Skewed)
        );
        assert_eq!(
            verify("POST", "/", &headers, b"{}", &|_| None, now),
            Err(Refusal::UnknownKey)
        );
        assert!(matches!(
            verify("POST", "/", &headers[..2], b"{}", &secret, now),
            Err(Refusal::Malformed(_))
        ));
    }
}
