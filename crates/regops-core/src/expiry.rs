//! Credentials that expire: which the pull secrets use, when each stops working, and the
//! warnings `plan` and `drift` give from `warnBefore` ahead. Pure: the shell passes the time.

use regops_spec::Spec;
use regops_spec::untrusted::Message;

use crate::warning::{Warning, WarningKind};

/// A credential some pull secret uses, with its `expires` (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    pub credential: String,
    /// `expires` as written in the spec, for messages.
    pub written: String,
    pub at: i64,
    pub warn_before: u64,
}

/// The credentials with `expires` that the pull secrets use, by name.
pub fn expiries(spec: &Spec) -> Vec<Expiry> {
    let used = spec.used_credentials();
    spec.credentials
        .values()
        .filter(|c| used.contains(c.name.as_str()))
        .filter_map(|c| {
            Some(Expiry {
                credential: c.name.value.clone(),
                written: c.expires.as_ref()?.value.clone(),
                at: c.expires_at?,
                warn_before: c.warn_before_secs,
            })
        })
        .collect()
}

/// "in 3 days", "in 5 hours", "2 days ago".
fn distance(seconds: i64) -> String {
    let n = seconds.unsigned_abs();
    let (count, unit) = if n >= 2 * 86_400 {
        (n / 86_400, "days")
    } else if n >= 2 * 3_600 {
        (n / 3_600, "hours")
    } else {
        (n.div_ceil(60).max(1), "minutes")
    };
    if seconds >= 0 {
        format!("in {count} {unit}")
    } else {
        format!("{count} {unit} ago")
    }
}

/// What `validate` says of a credential's `expires` at `now`: "expires at 2027-03-01 (in 9
/// days)" or "expired at … (2 days ago)"; `None` without `expires`.
pub fn note(credential: &regops_spec::Credential, now: i64) -> Option<(String, i64)> {
    let (written, at) = (credential.expires.as_ref()?, credential.expires_at?);
    let verb = if at > now { "expires" } else { "expired" };
    Some((
        format!("{verb} at {} ({})", written.value, distance(at - now)),
        at,
    ))
}

/// A warning for each credential in use that has expired, or expires within its
/// `warnBefore`, at `now` (Unix seconds).
pub fn warnings(spec: &Spec, now: i64) -> Vec<Warning> {
    expiries(spec)
        .into_iter()
        .filter_map(|e| {
            let left = e.at - now;
            let subject = format!("credential {}", e.credential);
            if left <= 0 {
                Some(Warning::new(
                    WarningKind::CredentialExpired,
                    subject,
                    Message::own("credential ")
                        .code(&e.credential)
                        .and(" expired at ")
                        .quote(&e.written)
                        .and(format!(
                            " ({}): registries refuse it; renew it and `regops encrypt` the new one",
                            distance(left)
                        )),
                ))
            } else if left.unsigned_abs() <= e.warn_before {
                Some(Warning::new(
                    WarningKind::CredentialExpiring,
                    subject,
                    Message::own("credential ")
                        .code(&e.credential)
                        .and(" expires at ")
                        .quote(&e.written)
                        .and(format!(
                            " ({}): renew it and `regops encrypt` the new one",
                            distance(left)
                        )),
                ))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> Spec {
        let text = format!(
            "apiVersion: regops.dev/v1
kind: RegistryConfig
registries:
  harbor: {{server: harbor.example.com, credential: robot}}
  unused: {{server: quay.io, credential: spare}}
credentials:
  robot: {{username: robot, password: {{env: A}}, expires: \"2027-03-01\"{extra}}}
  spare: {{username: x, password: {{env: B}}, expires: \"2027-01-01\"}}
scopes:
  s: {{namespaces: [web]}}
pullSecrets:
  pull: {{registries: [harbor], scope: s}}
"
        );
        let mut sources = regops_spec::Sources::default();
        sources.add("s.yaml".into(), text, regops_spec::SpecFormat::Yaml);
        regops_spec::load(sources, "t")
            .unwrap_or_else(|e| panic!("{:?}", e.diagnostics))
            .spec
    }

    /// 2027-03-01T00:00:00Z.
    const AT: i64 = 1_803_859_200;

    #[test]
    fn dates_are_midnight_utc_and_only_credentials_in_use_count() {
        let s = spec("");
        let e = expiries(&s);
        assert_eq!(e.len(), 1, "`spare` is in no pull secret: {e:?}");
        assert_eq!((e[0].credential.as_str(), e[0].at), ("robot", AT));
        assert_eq!(e[0].warn_before, 14 * 86_400);
    }

    #[test]
    fn warns_inside_the_window_and_after_expiry_only() {
        let s = spec("");
        let day = 86_400;
        assert!(
            warnings(&s, AT - 15 * day).is_empty(),
            "outside the 14 days"
        );
        let w = warnings(&s, AT - 9 * day);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].kind, WarningKind::CredentialExpiring);
        assert_eq!(
            w[0].message,
            "credential `robot` expires at 2027-03-01 (in 9 days): renew it and `regops encrypt` the new one"
        );
        let w = warnings(&s, AT + 2 * day + 60);
        assert_eq!(w[0].kind, WarningKind::CredentialExpired);
        assert!(
            w[0].message.raw().contains("(2 days ago)"),
            "{:?}",
            w[0].message
        );
        let w = warnings(&s, AT - 3 * 3600);
        assert!(
            w[0].message.raw().contains("(in 3 hours)"),
            "{:?}",
            w[0].message
        );
    }

    #[test]
    fn warn_before_widens_or_narrows_the_window() {
        let wide = spec(", warnBefore: 30d");
        assert_eq!(warnings(&wide, AT - 20 * 86_400).len(), 1);
        let narrow = spec(", warnBefore: 2h");
        assert!(warnings(&narrow, AT - 3 * 3600).is_empty());
        assert_eq!(warnings(&narrow, AT - 3600).len(), 1);
    }
}
