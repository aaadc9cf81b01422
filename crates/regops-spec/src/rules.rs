//! Kubernetes naming rules and registry server syntax. Each check returns what is wrong in
//! words a user can act on, or `Ok`.

use std::borrow::Cow;

use crate::model::DOCKER_HUB_SERVER;

/// Why a value broke one of these rules: the rule that failed and what is wrong, said as the
/// rest of a sentence about the value ("must not be empty"), so the spec's reader can say
/// "invalid namespace `X`: it must not be empty" against the value's place in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{why}")]
pub struct RuleError {
    /// The rule that failed, by its function's name (`dns1123_label`).
    pub rule: &'static str,
    /// What is wrong, in words a user can act on.
    pub why: Cow<'static, str>,
}

/// `rule` failed: `why`.
pub(crate) fn broke(rule: &'static str, why: impl Into<Cow<'static, str>>) -> RuleError {
    RuleError {
        rule,
        why: why.into(),
    }
}

impl RuleError {
    /// This error as a part of a value that `rule` checks: `prefix` says which part
    /// ("has a group that"), and the part's own reason follows.
    pub fn within(self, rule: &'static str, prefix: &str) -> RuleError {
        broke(rule, format!("{prefix} {}", self.why))
    }
}

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label: what Namespace names must be (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63).
pub fn dns1123_label(s: &str) -> Result<(), RuleError> {
    if s.is_empty() {
        return Err(broke("dns1123_label", "must not be empty"));
    }
    if s.len() > 63 {
        return Err(broke(
            "dns1123_label",
            format!("must be at most 63 characters (is {})", s.len()),
        ));
    }
    if !s.chars().all(|c| is_alnum_lower(c) || c == '-') {
        return Err(broke(
            "dns1123_label",
            "must consist of lower-case letters, digits and '-'",
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(broke(
            "dns1123_label",
            "must start and end with a letter or digit",
        ));
    }
    Ok(())
}

/// RFC 1035 label: what a CustomResourceDefinition's plural and version names must be
/// (`[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63; apiextensions-apiserver's
/// `ValidateCustomResourceDefinitionNames` and `ValidateCustomResourceDefinitionVersion` use
/// `IsDNS1035Label`).
pub fn dns1035_label(s: &str) -> Result<(), RuleError> {
    dns1123_label(s)?;
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(broke(
            "dns1035_label",
            "must start with a lower-case letter",
        ));
    }
    Ok(())
}

/// A custom resource's kind name as a spec declares it: what `kind:` says (`Rollout`), an
/// upper-case letter then letters and digits. apiextensions-apiserver asks that its lower case
/// be an RFC 1035 label (`ValidateCustomResourceDefinitionNames`); kinds are CamelCase by
/// convention, and every built-in kind is.
pub fn kind_name(s: &str) -> Result<(), RuleError> {
    if !s.starts_with(|c: char| c.is_ascii_uppercase()) {
        return Err(broke(
            "kind_name",
            "must start with an upper-case letter (kinds are CamelCase: `Rollout`)",
        ));
    }
    if s.len() > 63 {
        return Err(broke(
            "kind_name",
            format!("must be at most 63 characters (is {})", s.len()),
        ));
    }
    if !s.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(broke("kind_name", "must consist of letters and digits"));
    }
    Ok(())
}

/// A custom resource's `group/version` (`argoproj.io/v1alpha1`): a group with at least one
/// dot, as apiextensions-apiserver requires of a CustomResourceDefinition's `spec.group`
/// ("should be a domain with at least one dot", `ValidateCustomResourceDefinitionSpec`), and
/// an RFC 1035 version.
pub fn group_version(s: &str) -> Result<(), RuleError> {
    let Some((group, version)) = s.split_once('/') else {
        return Err(broke(
            "group_version",
            "must be `group/version` (`argoproj.io/v1alpha1`): a custom resource is never in the core group",
        ));
    };
    if group.is_empty() {
        return Err(broke(
            "group_version",
            "has an empty group: a custom resource is never in the core group",
        ));
    }
    dns1123_subdomain(group).map_err(|e| e.within("group_version", "has a group that"))?;
    if !group.contains('.') {
        return Err(broke(
            "group_version",
            "has a group without a dot: a CustomResourceDefinition's group is a domain (`argoproj.io`)",
        ));
    }
    // Kubernetes' own groups (`networking.k8s.io`, `rbac.authorization.k8s.io`) are not custom
    // resources: kube-apiserver serves them itself, and a CustomResourceDefinition in them
    // needs the `api-approved.kubernetes.io` annotation (apiextensions-apiserver,
    // `ValidateCustomResourceDefinition`, protected groups). A spec must not point regops'
    // writes at those objects.
    if ["k8s.io", "kubernetes.io"]
        .iter()
        .any(|own| group == *own || group.ends_with(&format!(".{own}")))
    {
        return Err(broke(
            "group_version",
            format!(
                "names the group `{group}`, one of Kubernetes' own APIs: a declared workload kind is a custom resource"
            ),
        ));
    }
    dns1035_label(version).map_err(|e| e.within("group_version", "has a version that"))
}

/// The path of a field, as dot-separated JSON field names (`spec.template`).
pub fn field_path(s: &str) -> Result<(), RuleError> {
    if s.is_empty() {
        return Err(broke("field_path", "must not be empty"));
    }
    let segments: Vec<&str> = s.split('.').collect();
    if segments.len() > 16 {
        return Err(broke(
            "field_path",
            format!("must have at most 16 fields (has {})", segments.len()),
        ));
    }
    if segments.iter().any(|p| p.is_empty()) {
        return Err(broke(
            "field_path",
            "must be field names separated by single dots (`spec.template`)",
        ));
    }
    if !segments.iter().all(|p| {
        p.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }) {
        return Err(broke(
            "field_path",
            "must consist of field names of letters, digits, '_' and '-', separated by dots",
        ));
    }
    if segments[0] == "metadata" {
        return Err(broke(
            "field_path",
            "must not be under `metadata`: a pod template is in the object's spec",
        ));
    }
    Ok(())
}

/// RFC 1123 subdomain: what Secret and ServiceAccount names must be (dot-separated labels, at
/// most 253).
pub fn dns1123_subdomain(s: &str) -> Result<(), RuleError> {
    if s.is_empty() {
        return Err(broke("dns1123_subdomain", "must not be empty"));
    }
    if s.len() > 253 {
        return Err(broke(
            "dns1123_subdomain",
            format!("must be at most 253 characters (is {})", s.len()),
        ));
    }
    if !s.chars().all(|c| is_alnum_lower(c) || c == '-' || c == '.') {
        return Err(broke(
            "dns1123_subdomain",
            "must consist of lower-case letters, digits, '-' and '.'",
        ));
    }
    for part in s.split('.') {
        if part.is_empty() || part.starts_with('-') || part.ends_with('-') {
            return Err(broke(
                "dns1123_subdomain",
                "each '.'-separated part must start and end with a letter or digit",
            ));
        }
    }
    Ok(())
}

/// A label value: at most 63 characters, `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?` or empty.
pub fn label_value(s: &str) -> Result<(), RuleError> {
    if s.len() > 63 {
        return Err(broke(
            "label_value",
            format!("must be at most 63 characters (is {})", s.len()),
        ));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(broke(
            "label_value",
            "must consist of letters, digits, '-', '_' and '.'",
        ));
    }
    if let (Some(f), Some(l)) = (s.chars().next(), s.chars().last())
        && !(f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric())
    {
        return Err(broke(
            "label_value",
            "must start and end with a letter or digit",
        ));
    }
    Ok(())
}

/// A name used only inside the spec (registry, credential, scope): a non-empty label value.
pub fn spec_name(s: &str) -> Result<(), RuleError> {
    if s.is_empty() {
        return Err(broke("spec_name", "must not be empty"));
    }
    label_value(s)
}

/// A label key: optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
pub fn label_key(s: &str) -> Result<(), RuleError> {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        dns1123_subdomain(p).map_err(|e| e.within("label_key", &format!("prefix `{p}`")))?;
    }
    if name.is_empty() {
        return Err(broke("label_key", "name part must not be empty"));
    }
    label_value(name).map_err(|e| e.within("label_key", "name part"))
}

/// Why a registry server was refused, with a fix where there is one.
#[derive(Debug, PartialEq, Eq)]
pub struct ServerError {
    pub message: String,
    pub help: Option<String>,
}

/// Normalises a registry server to the key it gets in `.dockerconfigjson`: Docker Hub in any
/// of its spellings becomes `https://index.docker.io/v1/`; anything else must be
/// `host[:port][/path]`, lower-case, without a scheme.
pub fn normalize_server(raw: &str) -> Result<String, ServerError> {
    let s = raw.trim();
    let err = |message: String, help: Option<String>| Err(ServerError { message, help });
    let hub_forms = [
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "registry.hub.docker.com",
    ];
    let bare = s.trim_start_matches("https://").trim_end_matches('/');
    let bare = bare.strip_suffix("/v1").unwrap_or(bare);
    if hub_forms.contains(&bare) {
        return Ok(DOCKER_HUB_SERVER.to_string());
    }
    if s.is_empty() {
        return err(
            "the registry server is empty".into(),
            Some("write host[:port], e.g. harbor.example.com".into()),
        );
    }
    if let Some((scheme, rest)) = s.split_once("://") {
        let help = if scheme == "http" {
            format!("write `{rest}` and set `insecure: true` for a plain-HTTP registry")
        } else {
            format!("write `{}`", rest.trim_end_matches('/'))
        };
        return err(
            format!("`{s}` has a scheme; a registry server is host[:port]"),
            Some(help),
        );
    }
    let (hostport, path) = match s.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let (host, port) = split_host_port(hostport).map_err(|m| ServerError {
        message: m.why.into_owned(),
        help: None,
    })?;
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return err(format!("`{port}` is not a port number (1-65535)"), None),
        }
    }
    if host.chars().any(|c| c.is_ascii_uppercase()) {
        return err(
            format!("registry host `{host}` has upper-case letters"),
            Some(format!("write `{}`", s.to_ascii_lowercase())),
        );
    }
    if !(host.starts_with('[') && host.ends_with(']'))
        && host.parse::<std::net::Ipv4Addr>().is_err()
    {
        dns1123_subdomain(host).map_err(|e| ServerError {
            message: format!("registry host `{host}` is not a valid DNS name: it {e}"),
            help: None,
        })?;
    }
    if let Some(path) = path {
        let path = path.trim_end_matches('/');
        if path.is_empty()
            || !path.split('/').all(|seg| {
                !seg.is_empty()
                    && seg
                        .chars()
                        .all(|c| is_alnum_lower(c) || matches!(c, '-' | '_' | '.'))
            })
        {
            return err(
                format!(
                    "`{s}` has an invalid path; a registry server is host[:port] or host[:port]/path"
                ),
                None,
            );
        }
        return Ok(format!("{hostport}/{path}"));
    }
    Ok(hostport.to_string())
}

fn split_host_port(s: &str) -> Result<(&str, Option<&str>), RuleError> {
    if s.starts_with('[') {
        let end = s.find(']').ok_or_else(|| {
            broke(
                "split_host_port",
                format!("`{s}` has an unclosed IPv6 bracket"),
            )
        })?;
        let (host, rest) = s.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(p) => Ok((host, Some(p))),
            None if rest.is_empty() => Ok((host, None)),
            None => Err(broke(
                "split_host_port",
                format!("`{s}` is not host[:port]"),
            )),
        };
    }
    match s.split_once(':') {
        Some((h, p)) => Ok((h, Some(p))),
        None => Ok((s, None)),
    }
}

/// A credential's `expires`: a date (`2027-03-01`, taken as midnight UTC) or an RFC 3339 time
/// (`2027-03-01T12:00:00Z`, `2027-03-01T12:00:00+02:00`), as Unix seconds.
pub fn expiry(s: &str) -> Result<i64, RuleError> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_second());
    }
    let date: jiff::civil::Date = s
        .parse()
        .map_err(|_| broke("expiry", "is not a date (YYYY-MM-DD) or an RFC 3339 time"))?;
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_second())
        .map_err(|e| broke("expiry", format!("is out of range: {e}")))
}

/// An AWS region: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`.
pub fn aws_region(s: &str) -> Result<(), RuleError> {
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok();
    if ok {
        Ok(())
    } else {
        Err(broke(
            "aws_region",
            "is not an AWS region (like `eu-west-1`)",
        ))
    }
}

/// An AWS account id: twelve digits.
pub fn aws_account(s: &str) -> Result<(), RuleError> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(broke("aws_account", "is not twelve digits"))
    }
}

/// An IAM role ARN: `arn:<partition>:iam::<account>:role/<path/name>`.
pub fn aws_role_arn(s: &str) -> Result<(), RuleError> {
    let bad = || {
        broke(
            "aws_role_arn",
            "is not an IAM role ARN (`arn:aws:iam::123456789012:role/NAME`)",
        )
    };
    let rest = s.strip_prefix("arn:").ok_or_else(bad)?;
    let (partition, rest) = rest.split_once(':').ok_or_else(bad)?;
    let rest = rest.strip_prefix("iam::").ok_or_else(bad)?;
    let (account, role) = rest.split_once(':').ok_or_else(bad)?;
    let name = role.strip_prefix("role/").ok_or_else(bad)?;
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c));
    if partition.starts_with("aws") && aws_account(account).is_ok() && name_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// A UUID in its usual text form (an Entra client or tenant id).
pub fn uuid(s: &str) -> Result<(), RuleError> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    if groups.len() == 5
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        Ok(())
    } else {
        Err(broke("uuid", "is not a UUID"))
    }
}

/// An Entra tenant: its id (a UUID) or a domain (`contoso.onmicrosoft.com`).
pub fn entra_tenant(s: &str) -> Result<(), RuleError> {
    if uuid(s).is_ok()
        || (s.contains('.')
            && s.split('.')
                .all(|l| dns1123_label(&l.to_ascii_lowercase()).is_ok()))
    {
        Ok(())
    } else {
        Err(broke(
            "entra_tenant",
            "is not a tenant id (a UUID) or domain",
        ))
    }
}

/// Unix seconds as an RFC 3339 time in UTC (`2026-12-04T16:00:00Z`), as regops writes a
/// minted token's expiry on its Secret.
pub fn format_timestamp(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).map_or_else(|_| secs.to_string(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_error_names_the_rule_that_failed_and_says_why() {
        let e = dns1123_label("Web").unwrap_err();
        assert_eq!(e.rule, "dns1123_label");
        assert_eq!(
            e.to_string(),
            "must consist of lower-case letters, digits and '-'"
        );
        // A part's failure is said within the whole's rule, with the part's reason kept.
        let e = group_version("argoproj.io/V1").unwrap_err();
        assert_eq!(e.rule, "group_version");
        assert_eq!(
            e.to_string(),
            "has a version that must consist of lower-case letters, digits and '-'"
        );
        let e = label_key("Example.com/app").unwrap_err();
        assert_eq!(e.rule, "label_key");
        assert_eq!(
            e.to_string(),
            "prefix `Example.com` must consist of lower-case letters, digits, '-' and '.'"
        );
        let e = expiry("soon").unwrap_err();
        assert_eq!(e.rule, "expiry");
    }

    #[test]
    fn cloud_names() {
        for ok in ["us-east-1", "eu-central-2", "us-gov-west-1", "cn-north-1"] {
            assert_eq!(aws_region(ok), Ok(()), "{ok}");
        }
        for bad in ["us-east", "US-EAST-1", "us--1", "useast1", "us-east-1a", ""] {
            assert!(aws_region(bad).is_err(), "{bad}");
        }
        assert!(aws_account("123456789012").is_ok());
        assert!(aws_account("12345678901").is_err());
        assert!(aws_role_arn("arn:aws:iam::123456789012:role/ci/puller").is_ok());
        assert!(aws_role_arn("arn:aws-cn:iam::123456789012:role/p").is_ok());
        for bad in [
            "arn:aws:iam::123456789012:user/p",
            "arn:aws:iam::1234:role/p",
            "arn:aws:sts::123456789012:role/p",
            "arn:aws:iam::123456789012:role/",
            "role/p",
        ] {
            assert!(aws_role_arn(bad).is_err(), "{bad}");
        }
        assert!(uuid("8f4a1e02-5b1c-4a8e-9d3f-0c2b7e6a9d11").is_ok());
        assert!(uuid("8f4a1e02-5b1c-4a8e-9d3f-0c2b7e6a9d1").is_err());
        assert!(entra_tenant("contoso.onmicrosoft.com").is_ok());
        assert!(entra_tenant("contoso").is_err());
    }

    #[test]
    fn docker_hub_spellings_normalise() {
        for s in [
            "docker.io",
            "index.docker.io",
            "https://index.docker.io/v1/",
            "registry-1.docker.io",
            "index.docker.io/v1",
        ] {
            assert_eq!(normalize_server(s).unwrap(), DOCKER_HUB_SERVER, "{s}");
        }
    }

    #[test]
    fn servers() {
        assert_eq!(
            normalize_server("harbor.example.com").unwrap(),
            "harbor.example.com"
        );
        assert_eq!(
            normalize_server("harbor.local:8080").unwrap(),
            "harbor.local:8080"
        );
        assert_eq!(
            normalize_server("127.0.0.1:5000").unwrap(),
            "127.0.0.1:5000"
        );
        assert_eq!(normalize_server("[::1]:5000").unwrap(), "[::1]:5000");
        assert_eq!(normalize_server("quay.io/myorg/").unwrap(), "quay.io/myorg");
        let e = normalize_server("http://harbor.local").unwrap_err();
        assert!(e.help.unwrap().contains("insecure: true"));
        assert!(normalize_server("harbor.local:99999").is_err());
        assert!(
            normalize_server("Harbor.local")
                .unwrap_err()
                .help
                .unwrap()
                .contains("harbor.local")
        );
        assert!(normalize_server("har_bor.local").is_err());
        assert!(normalize_server("").is_err());
    }

    #[test]
    fn kubernetes_names() {
        assert!(dns1123_label("team-a").is_ok());
        assert!(dns1123_label("Team").is_err());
        assert!(dns1123_label("-a").is_err());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
        assert!(dns1123_subdomain("harbor-pull.v2").is_ok());
        assert!(dns1123_subdomain("a..b").is_err());
        assert!(dns1123_subdomain("under_score").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("A_b.c").is_ok());
        assert!(label_value("_a").is_err());
        assert!(label_key("kubesphere.io/workspace").is_ok());
        assert!(label_key("team").is_ok());
        assert!(label_key("Bad_Prefix/x").is_err());
        assert!(label_key("a/").is_err());
    }

    #[test]
    fn expiry_dates_are_midnight_utc_and_times_rfc_3339() {
        assert_eq!(expiry("2027-03-01"), Ok(1_803_859_200));
        assert_eq!(expiry("2027-03-01T00:00:00Z"), Ok(1_803_859_200));
        assert_eq!(expiry("2027-03-01T02:00:00+02:00"), Ok(1_803_859_200));
        assert!(expiry("2027-02-30").is_err());
        assert!(expiry("next spring").is_err());
    }

    /// A spec's `workloadKinds:` becomes URL paths and write bodies: what it may name is
    /// checked so that none reaches outside a custom resource's collection.
    #[test]
    fn a_declared_kind_cannot_reach_outside_a_custom_resource() {
        for bad in [
            "v1",
            "/v1",
            "apps/v1",
            "argoproj.io/v1/../../api",
            "argoproj.io/../v1",
            "networking.k8s.io/v1",
            "rbac.authorization.k8s.io/v1",
            "k8s.io/v1",
            "apiextensions.k8s.io/v1",
            "x.kubernetes.io/v1",
            "Argoproj.io/v1alpha1",
            "argoproj.io/V1",
            "argoproj.io/v1?watch=true",
        ] {
            assert!(group_version(bad).is_err(), "{bad}");
        }
        assert!(group_version("argoproj.io/v1alpha1").is_ok());
        assert!(group_version("apps.kruise.io/v1alpha1").is_ok());
        for bad in [
            "",
            "../secrets",
            "secrets/x",
            "Rollouts",
            "roll outs",
            "rollouts?x=1",
            "1rollouts",
        ] {
            assert!(dns1035_label(bad).is_err(), "{bad}");
        }
        for bad in [
            "",
            ".spec",
            "spec.",
            "spec..template",
            "metadata.annotations",
            "spec/template",
            "spec.template\n",
        ] {
            assert!(field_path(bad).is_err(), "{bad}");
        }
        assert!(field_path("spec.template").is_ok());
        for bad in ["rollout", "Roll-out", "Roll.out", ""] {
            assert!(kind_name(bad).is_err(), "{bad}");
        }
    }
}

/// The formats sops writes, by its names for them (`--input-type`).
pub const SOPS_FORMATS: [&str; 5] = ["yaml", "json", "dotenv", "ini", "binary"];

/// The format sops picks for a file by its name's ending (`FormatForPath` in sops's
/// `cmd/sops/formats/formats.go`): `.yaml`/`.yml`, `.json`, `.env`, `.ini`, else binary.
pub fn sops_format_for_path(path: &std::path::Path) -> &'static str {
    let name = path.to_string_lossy();
    if name.ends_with(".yaml") || name.ends_with(".yml") {
        "yaml"
    } else if name.ends_with(".json") {
        "json"
    } else if name.ends_with(".env") {
        "dotenv"
    } else if name.ends_with(".ini") {
        "ini"
    } else {
        "binary"
    }
}

/// A step of a path into a sops file: a mapping key or a list index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SopsStep {
    Key(String),
    Index(usize),
}

/// A path in sops's `--extract` syntax, as `parseTreePath` (sops's `cmd/sops/main.go`) reads
/// it: `[`-separated components each ending in `]`; a component starting with a quote is a key
/// (its first and last characters dropped), any other an index.
pub fn sops_path(text: &str) -> Result<Vec<SopsStep>, &'static str> {
    let mut steps = Vec::new();
    for component in text.split('[') {
        if component.is_empty() {
            continue;
        }
        let inner = component
            .strip_suffix(']')
            .ok_or("a component does not end with `]`")?;
        if inner.starts_with('"') || inner.starts_with('\'') {
            if inner.len() < 2 {
                return Err("a key has no closing quote");
            }
            steps.push(SopsStep::Key(inner[1..inner.len() - 1].to_string()));
        } else {
            let i = inner
                .parse::<usize>()
                .map_err(|_| "a component is neither a quoted key nor an index")?;
            steps.push(SopsStep::Index(i));
        }
    }
    Ok(steps)
}

/// A path in Vault (a KV secret's, or an engine's mount): segments of letters, digits, `-`,
/// `_`, `.` and `@` joined by single `/`, none `.` or `..`. What regops puts in the URL
/// path `/v1/<mount>/data/<path>` untouched.
pub fn vault_path(text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("it is empty");
    }
    for seg in text.split('/') {
        if seg.is_empty() {
            return Err("it has an empty segment (a leading, trailing or double `/`)");
        }
        if seg == "." || seg == ".." {
            return Err("it has a `.` or `..` segment");
        }
        if !seg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        {
            return Err(
                "a segment holds a character other than letters, digits, `-`, `_`, `.` and `@`",
            );
        }
    }
    Ok(())
}

/// A Google Secret Manager secret version's resource name,
/// `projects/PROJECT/secrets/SECRET/versions/VERSION`, as
/// <https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets.versions/access>
/// names it: PROJECT a project id (6 to 30 lowercase letters, digits and hyphens, starting with
/// a letter, not ending with a hyphen,
/// <https://cloud.google.com/resource-manager/reference/rest/v1/projects>) or a project number;
/// SECRET 1 to 255 letters, digits, `-` and `_`
/// (<https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets/create>);
/// VERSION a version number or `latest`. What regops puts in the URL path
/// `/v1/<name>:access` untouched.
pub fn gcp_secret_name(text: &str) -> Result<(), &'static str> {
    let parts: Vec<&str> = text.split('/').collect();
    let [projects, project, secrets, secret, versions, version] = parts[..] else {
        return Err("it is not `projects/PROJECT/secrets/SECRET/versions/VERSION`");
    };
    if projects != "projects" || secrets != "secrets" || versions != "versions" {
        return Err("it is not `projects/PROJECT/secrets/SECRET/versions/VERSION`");
    }
    let project_id = (6..=30).contains(&project.len())
        && project.starts_with(|c: char| c.is_ascii_lowercase())
        && !project.ends_with('-')
        && project
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let project_number = is_number(project);
    if !(project_id || project_number) {
        return Err(
            "PROJECT is neither a project id (6 to 30 lowercase letters, digits and `-`, starting with a letter) nor a project number",
        );
    }
    if secret.is_empty()
        || secret.len() > 255
        || !secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("SECRET is not 1 to 255 letters, digits, `-` and `_`");
    }
    if version != "latest" && !is_number(version) {
        return Err("VERSION is neither a version number nor `latest`");
    }
    Ok(())
}

/// A positive decimal number without leading zeros, at most 19 digits.
fn is_number(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 19
        && !text.starts_with('0')
        && text.chars().all(|c| c.is_ascii_digit())
}

/// An Azure Key Vault's name, as
/// <https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/resource-name-rules#microsoftkeyvault>
/// gives it: 3 to 24 letters, digits and hyphens, starting with a letter, ending with a
/// letter or digit, no two hyphens in a row. It becomes the host `<name>.vault.azure.net`.
pub fn azure_vault_name(text: &str) -> Result<(), &'static str> {
    if !(3..=24).contains(&text.len())
        || !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err("it is not 3 to 24 letters, digits and `-`");
    }
    if !text.starts_with(|c: char| c.is_ascii_alphabetic()) || text.ends_with('-') {
        return Err("it does not start with a letter and end with a letter or digit");
    }
    if text.contains("--") {
        return Err("it has two hyphens in a row");
    }
    Ok(())
}

/// An Azure Key Vault secret's name: 1 to 127 letters, digits and hyphens
/// (<https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/resource-name-rules#microsoftkeyvault>,
/// `vaults/secrets`).
pub fn azure_secret_name(text: &str) -> Result<(), &'static str> {
    if text.is_empty()
        || text.len() > 127
        || !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err("it is not 1 to 127 letters, digits and `-`");
    }
    Ok(())
}

/// An Azure Key Vault secret's version: the 32 hexadecimal digits Key Vault gives each one.
pub fn azure_secret_version(text: &str) -> Result<(), &'static str> {
    if text.len() != 32 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("it is not the 32 hexadecimal digits of a Key Vault version");
    }
    Ok(())
}

#[cfg(test)]
mod secret_manager_tests {
    use super::*;

    #[test]
    fn vault_paths_are_plain_segments() {
        for ok in ["registry/harbor", "secret", "team-a/robot_1.v2", "kv@x"] {
            assert_eq!(vault_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "/x", "x/", "a//b", "a/../b", "..", "a/./b", "a?b", "a#b", "a%2e", "a b", "a\\b",
        ] {
            assert!(vault_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gcp_secret_names_are_a_version_of_a_secret_of_a_project() {
        for ok in [
            "projects/my-project/secrets/registry-harbor/versions/latest",
            "projects/123456789012/secrets/a_b-C9/versions/3",
            "projects/abcdef/secrets/s/versions/1",
        ] {
            assert_eq!(gcp_secret_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "projects/my-project/secrets/registry",
            "projects/my-project/secrets/registry/versions",
            "projects/my-project/secrets/registry/versions/latest/x",
            "projects/my-project/secrets/../versions/latest",
            "projects/../secrets/s/versions/latest",
            "projects/my-project/secrets/s/versions/..",
            "projects/my-project/secrets/s/versions/./latest",
            "projects/my-project/secrets/s%2F..%2Fx/versions/latest",
            "projects/my-project/secrets/s@evil.com/versions/latest",
            "projects/my-project/secrets/s/versions/latest?alt=media",
            "projects/my-project/secrets/s/versions/latest#x",
            "projects/My-Project/secrets/s/versions/latest",
            "projects/short/secrets/s/versions/latest",
            "projects/my-project-/secrets/s/versions/latest",
            "projects/1my-project/secrets/s/versions/latest",
            "projects/evil.com:x/secrets/s/versions/latest",
            "projects/my-project/secrets/s.x/versions/latest",
            "projects/my-project/secrets/s/versions/0",
            "projects/my-project/secrets/s/versions/-1",
            "projects/my-project/secrets/s/versions/LATEST",
            "Projects/my-project/secrets/s/versions/latest",
            "projects/my-project/keys/s/versions/latest",
            "/projects/my-project/secrets/s/versions/latest",
        ] {
            assert!(gcp_secret_name(bad).is_err(), "{bad}");
        }
        let long = format!("projects/my-project/secrets/{}/versions/1", "a".repeat(256));
        assert!(gcp_secret_name(&long).is_err());
    }

    #[test]
    fn azure_names_follow_key_vaults_rules() {
        for ok in ["myvault", "my-vault-01", "abc", &"a".repeat(24)] {
            assert_eq!(azure_vault_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(25),
            "1vault",
            "vault-",
            "my--vault",
            "my_vault",
            "my.vault",
            "evil.com",
            "vault@evil",
            "vault%2F",
            "..",
            "",
        ] {
            assert!(azure_vault_name(bad).is_err(), "{bad}");
        }
        for ok in ["registry-harbor", "a", "0", &"a".repeat(127)] {
            assert_eq!(azure_secret_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            &"a".repeat(128),
            "registry/harbor",
            "../x",
            "a.b",
            "a_b",
            "a%2Fb",
            "a@b",
            "a?b",
        ] {
            assert!(azure_secret_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            azure_secret_version("0123456789abcdef0123456789ABCDEF"),
            Ok(())
        );
        for bad in ["", "latest", "0123456789abcdef0123456789abcde", "../../x"] {
            assert!(azure_secret_version(bad).is_err(), "{bad}");
        }
    }
}
