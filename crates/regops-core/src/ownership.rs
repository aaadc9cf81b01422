//! How regops marks what it owns, on the objects themselves.
//!
//! - Secrets it owns carry the label `app.kubernetes.io/managed-by: regops` and the annotation
//!   `regops.dev/spec: <spec name>`; it never changes or deletes a Secret without both.
//! - On ServiceAccounts and workloads, the annotation `pull-secrets.regops.dev/<spec>` records
//!   the `imagePullSecrets` entries that spec added (comma-separated), so that regops removes
//!   only those, never an entry someone else added. One key per spec: specs never write each
//!   other's record. A label of the same key (value `true`) marks the object, so that regops
//!   finds it again with a label selector once no binding selects its kind.

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "regops";
pub const SPEC_ANNOTATION: &str = "regops.dev/spec";
pub const SOURCE_COMMIT_ANNOTATION: &str = "regops.dev/source-commit";
/// On a Secret holding minted tokens: when the first of them expires (RFC 3339, UTC).
pub const EXPIRES_AT_ANNOTATION: &str = "regops.dev/expires-at";
/// On a Secret regops writes: where each credential's password came from when it was last
/// applied, as `credential=digest` pairs sorted by credential (`robot=age:1a2b3c4d`). The
/// digest is that of the credential's age ciphertext, which is in git already: it reveals
/// nothing of the password (never a hash of the password, which a weak password would not
/// survive). Only credentials read from ciphertext have one. With it, a plan tells a change of
/// the spec (a rotation) from an edit in the cluster, as `kubectl apply`'s three-way merge does
/// with its last-applied record.
pub const APPLIED_SOURCES_ANNOTATION: &str = "regops.dev/applied-sources";
/// On the node-trust ConfigMap regops keeps: a digest of the data it last applied
/// (`fnv1a64:<hex>`), so that a plan tells a change of the spec from an edit in the cluster.
/// The data is public (CA certificates, runtime configuration); the digest is not a safeguard,
/// only a record.
pub const APPLIED_DIGEST_ANNOTATION: &str = "regops.dev/applied-digest";
pub const ADDED_ANNOTATION_PREFIX: &str = "pull-secrets.regops.dev/";
/// `kubectl apply`'s record of what it last applied: on a Secret, a copy of its data. regops
/// removes it from every Secret it writes, so that a password rotated away by regops does not
/// stay readable there (a Secret made with `kubectl apply` and then adopted keeps it else).
pub const KUBECTL_LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
pub const KUBESPHERE_ANNOTATION: &str = "kubesphere.io/imagepullsecrets";
pub const SECRET_TYPE: &str = "kubernetes.io/dockerconfigjson";

/// The Secret types that hold registry logins: `adopt: true` takes over only these (a legacy
/// `kubernetes.io/dockercfg` is replaced by a `dockerconfigjson`, as its type cannot change).
pub const PULL_SECRET_TYPES: &[&str] = &[SECRET_TYPE, "kubernetes.io/dockercfg"];
pub const SECRET_KEY: &str = ".dockerconfigjson";

/// Whether an object's metadata marks it as owned by regops for `spec`: the managed-by label
/// and the spec annotation, both. regops changes or deletes a Secret only when both are there.
pub fn marks_owned(managed_by: Option<&str>, spec_annotation: Option<&str>, spec: &str) -> bool {
    managed_by == Some(MANAGED_BY_VALUE) && spec_annotation == Some(spec)
}

/// Which GitOps or packaging tool also manages an object, by the marks it leaves: Argo CD's
/// tracking annotation (its default since 3.0) or instance label (label tracking), Helm's
/// managed-by label or release annotation, Flux's kustomize or helm-controller labels.
pub fn gitops_owner(
    labels: &crate::observed::Labels,
    annotations: &crate::observed::Labels,
) -> Option<&'static str> {
    if annotations.get("argocd.argoproj.io/tracking-id").is_some() {
        Some("Argo CD")
    } else if labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some("Helm")
        || annotations.get("meta.helm.sh/release-name").is_some()
    {
        Some("Helm")
    } else if labels.get("kustomize.toolkit.fluxcd.io/name").is_some()
        || labels.get("helm.toolkit.fluxcd.io/name").is_some()
    {
        Some("Flux")
    } else if labels.get("app.kubernetes.io/instance").is_some() {
        Some("Argo CD")
    } else {
        None
    }
}

/// The value of [`APPLIED_SOURCES_ANNOTATION`] for `sources` (credential → digest).
pub fn sources_value(sources: &std::collections::BTreeMap<String, String>) -> String {
    sources
        .iter()
        .map(|(c, d)| format!("{c}={d}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The credentials whose source differs between a recorded value and `sources` (changed,
/// added or gone), sorted.
pub fn sources_changed(
    recorded: &str,
    sources: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let then: std::collections::BTreeMap<&str, &str> = recorded
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let mut out: Vec<String> = sources
        .iter()
        .filter(|(c, d)| then.get(c.as_str()) != Some(&d.as_str()))
        .map(|(c, _)| c.clone())
        .chain(
            then.keys()
                .filter(|c| !sources.contains_key(**c))
                .map(|c| c.to_string()),
        )
        .collect();
    out.sort();
    out.dedup();
    out
}

/// How a record of a value read from a secret manager starts: `sm:<reference>.<value>`.
pub const VALUE_RECORD_PREFIX: &str = "sm:";

/// PBKDF2-HMAC-SHA256 rounds of [`value_record`]'s fingerprint of the value: each guess at a
/// weak password costs as much as 100,000 hashes.
pub const VALUE_RECORD_ROUNDS: u32 = 100_000;

/// The record of a value read from a secret manager, for [`APPLIED_SOURCES_ANNOTATION`]:
/// `sm:<reference>.<value>`, where `<reference>` is 8 hex digits of SHA-256 over the secret the
/// spec names (`reference`: kind, name, field; public, it is in the spec) and `<value>` 12 hex
/// digits of PBKDF2-HMAC-SHA256 over the value, salted with the reference,
/// [`VALUE_RECORD_ROUNDS`] rounds. Never a plain hash of a credential: the annotation shows in
/// `kubectl describe` and in plans, where a fast hash of a weak password would give it away;
/// this one is slow, salted per secret and cut to 48 bits, so many passwords share each value.
/// The same value of the same secret always gives the same record, so a later run tells a
/// value that moved at its source (same reference, another value) from the spec naming
/// another secret (another reference).
pub fn value_record(reference: &str, value: &[u8]) -> String {
    use sha2::Digest;
    let r = sha2::Sha256::digest(reference.as_bytes());
    let salt = [b"regops applied value 1\0".as_slice(), reference.as_bytes()].concat();
    let mut v = zeroize::Zeroizing::new([0u8; 6]);
    pbkdf2_sha256(value, &salt, VALUE_RECORD_ROUNDS, v.as_mut());
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!("{VALUE_RECORD_PREFIX}{}.{}", hex(&r[..4]), hex(v.as_ref()))
}

/// PBKDF2-HMAC-SHA256 (RFC 8018 §5.2) of `value`, `rounds` rounds (at least one), into `out`:
/// ring's, whose SHA-256 is the same assembly in a debug build as in a release, so the tests
/// and debug builds that record values do not spend seconds on each.
fn pbkdf2_sha256(value: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) {
    let rounds = std::num::NonZeroU32::new(rounds).unwrap_or(std::num::NonZeroU32::MIN);
    ring::pbkdf2::derive(ring::pbkdf2::PBKDF2_HMAC_SHA256, rounds, salt, value, out);
}

/// The reference part of a value record (`sm:<reference>.<value>`).
fn value_reference(record: &str) -> Option<&str> {
    let (reference, _) = record.strip_prefix(VALUE_RECORD_PREFIX)?.split_once('.')?;
    Some(reference)
}

/// The credentials whose source differs between a recorded value and `sources` (as
/// [`sources_changed`]), split in two: those the spec changed (another ciphertext, another
/// secret named, a credential added or gone), and those whose value moved at its source (a
/// secret manager's value: the same secret, another value).
pub fn sources_moved(
    recorded: &str,
    sources: &std::collections::BTreeMap<String, String>,
) -> (Vec<String>, Vec<String>) {
    let then: std::collections::BTreeMap<&str, &str> = recorded
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    sources_changed(recorded, sources)
        .into_iter()
        .partition(|c| {
            let was = then.get(c.as_str()).and_then(|r| value_reference(r));
            let is = sources.get(c).and_then(|r| value_reference(r));
            !(was.is_some() && was == is)
        })
}

/// The annotation key recording what `spec` added.
pub fn added_key(spec: &str) -> String {
    format!("{ADDED_ANNOTATION_PREFIX}{spec}")
}

/// Whether regops reads this annotation on a ServiceAccount or workload (or its pod
/// template): its own records and KubeSphere's pull-secret annotation. Others are not kept in
/// the observed model, so memory follows what planning needs.
pub fn is_read_annotation(key: &str) -> bool {
    key.starts_with(ADDED_ANNOTATION_PREFIX)
        || key.starts_with("regops.dev/")
        || key == KUBESPHERE_ANNOTATION
}

/// The marker label's value.
pub const MARKER_VALUE: &str = "true";

/// The entries recorded as added by `spec`.
pub fn added_by(annotations: &crate::observed::Labels, spec: &str) -> Vec<String> {
    annotations
        .get(&added_key(spec))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The record's new value for `names` (`None`: remove the annotation).
pub fn record_value(names: &[String]) -> Option<String> {
    if names.is_empty() {
        None
    } else {
        Some(names.join(","))
    }
}

/// The field manager for Secrets (server-side apply).
pub const SECRET_FIELD_MANAGER: &str = "regops";

/// The field manager for a spec's writes to workloads: one per spec, so that server-side apply
/// never drops another spec's entries.
pub fn workload_field_manager(spec: &str) -> String {
    format!("{SECRET_FIELD_MANAGER}.{spec}")
}

/// The KubeSphere annotation's value after merging, per container: the value KubeSphere's
/// console and regops share (`{"<container>": "<secret>"}`, on the pod template). Containers
/// mapped to one of `released` (entries this spec removes) are dropped; `wanted` is set over
/// the rest; every other container is kept as it is. `None`: no annotation (there was none,
/// and regops wants none). A value that is not a JSON object of strings is replaced only
/// if regops has something to put there, and kept otherwise.
pub fn merge_kubesphere(
    current: Option<&str>,
    wanted: &std::collections::BTreeMap<String, String>,
    released: &[String],
) -> Option<String> {
    let parsed: Option<std::collections::BTreeMap<String, String>> =
        current.and_then(|v| serde_json::from_str(v).ok());
    let Some(mut map) = parsed.or_else(|| current.is_none().then(Default::default)) else {
        // Not a map of strings: someone else's format; regops leaves it unless it must write.
        return if wanted.is_empty() {
            current.map(str::to_string)
        } else {
            serde_json::to_string(wanted).ok()
        };
    };
    map.retain(|_, secret| !released.contains(secret));
    for (container, secret) in wanted {
        map.insert(container.clone(), secret.clone());
    }
    if map.is_empty() && current.is_none() {
        return None;
    }
    // An emptied value stays, as `{}`: removing the key would depend on who else holds it.
    serde_json::to_string(&map).ok()
}

/// The value of [`APPLIED_DIGEST_ANNOTATION`] for a ConfigMap's data: FNV-1a (64 bits) over
/// each key and value, each followed by a NUL. Stable across builds and platforms.
pub fn data_digest<'a>(data: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in data {
        for b in k.bytes().chain([0]).chain(v.bytes()).chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("fnv1a64:{h:016x}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;

    /// The same value of the same secret gives the same record; another value, or the same
    /// value of another secret, another; the value is in it in no readable form.
    #[test]
    fn a_value_record_is_stable_salted_and_hides_the_value() {
        let a = value_record("aws\0eu-west-1\0registry/harbor", b"hunter2");
        assert_eq!(
            a,
            value_record("aws\0eu-west-1\0registry/harbor", b"hunter2")
        );
        assert!(
            a.starts_with("sm:") && a.len() == "sm:".len() + 8 + 1 + 12,
            "{a}"
        );
        let other_value = value_record("aws\0eu-west-1\0registry/harbor", b"hunter3");
        let other_secret = value_record("aws\0eu-west-1\0registry/quay", b"hunter2");
        assert_eq!(a[..12], other_value[..12], "the same reference");
        assert_ne!(a[12..], other_value[12..], "another value");
        assert_ne!(a[..12], other_secret[..12]);
        assert_ne!(a[12..], other_secret[12..], "salted with the reference");
        // Not a plain (unsalted, one-round) hash of the value.
        use sha2::Digest;
        let plain: String = sha2::Sha256::digest(b"hunter2")[..6]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        assert_ne!(a[12..], plain);
        assert!(!a.contains("hunter2"));
    }

    /// PBKDF2-HMAC-SHA256 as RFC 7914, section 11 gives it (`passwd`, salt `salt`, 1 round),
    /// so the rounds are the standard's.
    #[test]
    fn pbkdf2_is_the_standards() {
        let mut out = [0u8; 8];
        pbkdf2_sha256(b"passwd", b"salt", 1, &mut out);
        assert_eq!(out, [0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f]);
    }

    /// A value that moved at its source (the same secret, another value) is told from the
    /// spec's change (another ciphertext, another secret, a credential added or gone).
    #[test]
    fn sources_moved_tells_the_source_from_the_spec() {
        let now = wanted(&[
            ("robot", "age:00000005"),
            ("harbor", "sm:aaaaaaaa.222222222222"),
            ("quay", "sm:cccccccc.333333333333"),
            ("same", "sm:dddddddd.444444444444"),
            ("new", "sm:eeeeeeee.555555555555"),
        ]);
        let recorded = "robot=age:00000099,harbor=sm:aaaaaaaa.111111111111,\
                        quay=sm:bbbbbbbb.333333333333,same=sm:dddddddd.444444444444,gone=age:1";
        let (spec, source) = sources_moved(recorded, &now);
        assert_eq!(spec, ["gone", "new", "quay", "robot"]);
        assert_eq!(source, ["harbor"]);
    }

    fn wanted(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(c, s)| (c.to_string(), s.to_string()))
            .collect()
    }

    #[test]
    fn kubesphere_merge_keeps_containers_others_set() {
        let merged = merge_kubesphere(
            Some(r#"{"sidecar":"console-pull","app":"old"}"#),
            &wanted(&[("app", "regops-pull")]),
            &[],
        );
        assert_eq!(
            merged.as_deref(),
            Some(r#"{"app":"regops-pull","sidecar":"console-pull"}"#)
        );
    }

    #[test]
    fn kubesphere_merge_drops_only_released_secrets() {
        let merged = merge_kubesphere(
            Some(r#"{"sidecar":"console-pull","app":"regops-pull"}"#),
            &BTreeMap::new(),
            &["regops-pull".to_string()],
        );
        assert_eq!(merged.as_deref(), Some(r#"{"sidecar":"console-pull"}"#));
        let gone = merge_kubesphere(
            Some(r#"{"app":"regops-pull"}"#),
            &BTreeMap::new(),
            &["regops-pull".to_string()],
        );
        assert_eq!(gone.as_deref(), Some("{}"));
    }

    #[test]
    fn kubesphere_merge_leaves_a_foreign_value_alone_unless_it_must_write() {
        assert_eq!(
            merge_kubesphere(Some("not json"), &BTreeMap::new(), &[]).as_deref(),
            Some("not json")
        );
        assert_eq!(
            merge_kubesphere(Some("not json"), &wanted(&[("app", "p")]), &[]).as_deref(),
            Some(r#"{"app":"p"}"#)
        );
        assert_eq!(merge_kubesphere(None, &BTreeMap::new(), &[]), None);
    }
}
