//! Values from secret managers (`awsSecretsManager:`, `vault:`, every source
//! [`crate::inputs::secret_managers::cache_key`] knows), read again by the controller every
//! `refreshInterval`.
//!
//! One schedule per secret read (by its cache key: two credentials naming the same secret are
//! one read), due every `refreshInterval` of its credentials (the shortest, when they differ),
//! else the controller's `--secret-refresh`, never more often than its `--secret-refresh-min`.
//! A read runs on the blocking pool (it has a runtime of its own, as the one-shot commands'
//! reads do), so the loop goes on handling events while one is in flight; its result comes back
//! to the loop, which alone changes the logins. A read that fails is tried again after a
//! backoff of its own ([`Retries`]: 2 s, doubling, never past the interval), while the Secrets
//! keep the last good value; a value that changed replaces the credentials' password, and the
//! namespaces whose pull secrets hold it are planned again (only their Secrets that hold it
//! differ, so only those are written).
//!
//! The schedule is pure (the caller gives the time); only [`Refresh::start_due`] spawns.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use regops_spec::Spec;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::watches::{RETRY_FIRST, RETRY_MAX, Retries};

/// How often a secret manager's value is read again, by flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intervals {
    /// When a credential has no `refreshInterval` (`--secret-refresh`).
    pub default: Duration,
    /// The shortest interval, whatever a spec says (`--secret-refresh-min`): a spec is
    /// untrusted, and each read is a call the operator's identity makes (and is billed for).
    pub min: Duration,
}

/// One secret, as scheduled.
#[derive(Debug)]
pub struct Entry {
    pub source: regops_spec::SecretSource,
    /// The source kind, as `--allow-secret` and the metrics name it (`aws`, `vault`).
    pub kind: &'static str,
    /// The credentials whose password it is.
    pub credentials: BTreeSet<String>,
    pub interval: Duration,
    /// When it is read next; `None` while a read is in flight.
    pub due: Option<Instant>,
}

/// What a read that ended says, for the loop.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// The value read, for the credentials whose password it is.
    Read {
        kind: &'static str,
        credentials: BTreeSet<String>,
    },
    /// It failed (`why` names the secret and step, never a value); tried again in `retry`.
    Failed {
        kind: &'static str,
        credentials: BTreeSet<String>,
        why: crate::inputs::mint::MintError,
        retry: Duration,
    },
    /// The secret is no longer in the spec (a reload came between).
    Gone,
}

/// A read's result: the cache key and the value with its record for the Secrets
/// ([`regops_core::ownership::value_record`], slow by design: made here, off the loop), or why
/// not.
pub type Done = (String, Read);

/// A read's value and its record, or why there is none.
pub type Read = Result<(Zeroizing<String>, String), crate::inputs::mint::MintError>;

/// The schedule, and the reads in flight.
pub struct Refresh {
    entries: BTreeMap<String, Entry>,
    backoff: Retries,
    in_flight: tokio::task::JoinSet<Done>,
}

/// The secrets `spec` reads from secret managers, by cache key, each with its interval.
pub fn schedule(spec: &Spec, intervals: Intervals) -> BTreeMap<String, Entry> {
    let mut out: BTreeMap<String, Entry> = BTreeMap::new();
    for (name, cred) in &spec.credentials {
        let Some((kind, _, _)) = regops_spec::trust::secret_of(&cred.password) else {
            continue;
        };
        let Some(key) = crate::inputs::secret_managers::cache_key(&cred.password) else {
            continue;
        };
        let interval = cred
            .refresh_interval_secs
            .map_or(intervals.default, Duration::from_secs)
            .max(intervals.min);
        let entry = out.entry(key).or_insert_with(|| Entry {
            source: cred.password.clone(),
            kind: kind.key(),
            credentials: BTreeSet::new(),
            interval,
            due: None,
        });
        entry.credentials.insert(name.clone());
        entry.interval = entry.interval.min(interval);
    }
    out
}

impl Refresh {
    /// The schedule of `spec`, whose values were read at `now` (when the spec was prepared).
    pub fn new(spec: &Spec, intervals: Intervals, now: Instant) -> Refresh {
        let mut entries = schedule(spec, intervals);
        for e in entries.values_mut() {
            e.due = Some(now + e.interval);
        }
        Refresh {
            entries,
            backoff: Retries::new(RETRY_FIRST, RETRY_MAX),
            in_flight: tokio::task::JoinSet::new(),
        }
    }

    /// The source kinds scheduled (for the metrics' series).
    pub fn kinds(&self) -> BTreeSet<&'static str> {
        self.entries.values().map(|e| e.kind).collect()
    }

    /// The credentials whose values are read again.
    pub fn credentials(&self) -> BTreeSet<&str> {
        self.entries
            .values()
            .flat_map(|e| e.credentials.iter().map(String::as_str))
            .collect()
    }

    /// When the next read is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.entries.values().filter_map(|e| e.due).min()
    }

    /// Whether no read is in flight.
    pub fn idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// The keys due at `now`, each marked in flight.
    pub fn take_due(&mut self, now: Instant) -> Vec<String> {
        let mut due = Vec::new();
        for (key, e) in &mut self.entries {
            if e.due.is_some_and(|d| d <= now) {
                e.due = None;
                due.push(key.clone());
            }
        }
        due
    }

    /// Starts a read of each secret due at `now`, on the blocking pool; their results come
    /// from [`Refresh::next_done`].
    pub fn start_due(
        &mut self,
        now: Instant,
        policy: &regops_spec::trust::Policy,
        ctx: &crate::context::RunContext,
    ) -> usize {
        let keys = self.take_due(now);
        for key in &keys {
            let Some(e) = self.entries.get(key) else {
                continue;
            };
            let (key, source, policy, ctx) =
                (key.clone(), e.source.clone(), policy.clone(), ctx.clone());
            self.in_flight.spawn_blocking(move || {
                let got = crate::inputs::secret_managers::read_blocking(&source, &policy, &ctx)
                    .map(|v| {
                        let record = regops_core::ownership::value_record(&key, v.as_bytes());
                        (v, record)
                    });
                (key, got)
            });
        }
        keys.len()
    }

    /// The next read that ended (pending for ever while none is in flight: guard with
    /// [`Refresh::idle`]).
    pub async fn next_done(&mut self) -> Option<Done> {
        // `Err` only if the task itself panicked or was cancelled: `read_blocking` turns a
        // panic of its reading thread into an error, which comes back as a `Done`.
        self.in_flight.join_next().await?.ok()
    }

    /// A read of `key` ended at `now`: the next one is scheduled (after the interval, or
    /// after the backoff when it failed).
    pub fn settle(
        &mut self,
        key: &str,
        ok: Result<(), crate::inputs::mint::MintError>,
        now: Instant,
    ) -> Settled {
        let Some(e) = self.entries.get_mut(key) else {
            return Settled::Gone;
        };
        match ok {
            Ok(()) => {
                self.backoff.succeeded(key);
                e.due = Some(now + e.interval);
                Settled::Read {
                    kind: e.kind,
                    credentials: e.credentials.clone(),
                }
            }
            Err(why) => {
                let retry = self.backoff.failed(key, now).min(e.interval);
                e.due = Some(now + retry);
                Settled::Failed {
                    kind: e.kind,
                    credentials: e.credentials.clone(),
                    why,
                    retry,
                }
            }
        }
    }
}

/// The credentials each pull secret of `spec` logs in with (by the Secret's name).
pub fn credentials_by_pull_secret(spec: &Spec) -> BTreeMap<&str, BTreeSet<&str>> {
    spec.pull_secrets
        .iter()
        .map(|(name, ps)| {
            let creds = ps
                .registries
                .iter()
                .filter_map(|r| spec.registries.get(&r.value))
                .map(|r| r.credential.value.as_str())
                .collect();
            (name.as_str(), creds)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(yaml: &str) -> Spec {
        let mut sources = regops_spec::Sources::default();
        sources.add(
            "t.yaml".into(),
            yaml.into(),
            regops_spec::source::SpecFormat::Yaml,
        );
        match regops_spec::load(sources, "t") {
            Ok(l) => l.spec,
            Err(e) => panic!("{e:?}"),
        }
    }

    const SPEC: &str = "apiVersion: regops.dev/v1
kind: RegistryConfig
metadata: { name: t }
registries:
  harbor: { server: harbor.example.com, credential: harbor }
  mirror: { server: mirror.example.com, credential: mirror }
  quay: { server: quay.example.com, credential: quay }
  plain: { server: plain.example.com, credential: plain }
credentials:
  harbor:
    username: robot
    password: { awsSecretsManager: { secretId: registry/harbor, region: eu-west-1 } }
    refreshInterval: 10m
  mirror:
    username: robot
    password: { awsSecretsManager: { secretId: registry/harbor, region: eu-west-1 } }
  quay:
    username: bot
    password: { vault: { path: registry/quay, field: token } }
    refreshInterval: 5s
  plain: { username: u, password: { env: REGOPS_CRED_X } }
scopes:
  web: { namespaces: [web] }
pullSecrets:
  pull: { registries: [harbor, quay], scope: web }
  other: { registries: [plain], scope: web }
";

    const INTERVALS: Intervals = Intervals {
        default: Duration::from_secs(3_600),
        min: Duration::from_secs(60),
    };

    /// One read per secret, however many credentials name it, at the shortest of their
    /// intervals; the operator's floor wins over a spec's shorter one; a credential with no
    /// secret manager is not scheduled.
    #[test]
    fn one_schedule_per_secret_at_the_shortest_interval_never_under_the_floor() {
        let s = schedule(&spec(SPEC), INTERVALS);
        let got: Vec<(&str, Vec<&str>, u64)> = s
            .values()
            .map(|e| {
                (
                    e.kind,
                    e.credentials.iter().map(String::as_str).collect(),
                    e.interval.as_secs(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("aws", vec!["harbor", "mirror"], 600),
                ("vault", vec!["quay"], 60),
            ]
        );
        let low = Intervals {
            min: Duration::from_secs(1),
            ..INTERVALS
        };
        let s = schedule(&spec(SPEC), low);
        assert_eq!(
            s.values().map(|e| e.interval.as_secs()).collect::<Vec<_>>(),
            [600, 5]
        );
    }

    /// A read that fails is tried again after 2 s, 4 s, ... never later than its interval;
    /// one that succeeds is due a whole interval later, and its backoff starts over.
    #[test]
    fn failures_back_off_up_to_the_interval_and_a_success_waits_the_interval() {
        let low = Intervals {
            min: Duration::from_secs(1),
            ..INTERVALS
        };
        let t = Instant::now();
        let mut r = Refresh::new(&spec(SPEC), low, t);
        let vault = r
            .entries
            .iter()
            .find(|(_, e)| e.kind == "vault")
            .map(|(k, _)| k.clone())
            .unwrap();
        assert_eq!(r.next_due(), Some(t + Duration::from_secs(5)));
        assert!(r.take_due(t + Duration::from_secs(4)).is_empty());
        let t5 = t + Duration::from_secs(5);
        assert_eq!(r.take_due(t5), std::slice::from_ref(&vault));
        assert!(r.take_due(t5).is_empty(), "in flight: not taken twice");
        let mut waits = Vec::new();
        let mut now = t5;
        for _ in 0..4 {
            match r.settle(
                &vault,
                Err(crate::inputs::mint::MintError::new("read", "HTTP 503")),
                now,
            ) {
                Settled::Failed { kind, retry, .. } => {
                    assert_eq!(kind, "vault");
                    waits.push(retry.as_secs());
                    now += retry;
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(r.take_due(now), std::slice::from_ref(&vault));
        }
        assert_eq!(waits, [2, 4, 5, 5], "capped at the 5 s interval");
        let read = r.settle(&vault, Ok(()), now);
        assert_eq!(
            read,
            Settled::Read {
                kind: "vault",
                credentials: ["quay".to_string()].into()
            }
        );
        assert!(r.take_due(now + Duration::from_secs(4)).is_empty());
        assert_eq!(
            r.take_due(now + Duration::from_secs(5)),
            std::slice::from_ref(&vault)
        );
        match r.settle(
            &vault,
            Err(crate::inputs::mint::MintError::new("read", "x")),
            now,
        ) {
            Settled::Failed { retry, .. } => assert_eq!(retry, RETRY_FIRST, "starts over"),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.settle("gone", Ok(()), now), Settled::Gone);
    }

    #[test]
    fn each_pull_secret_names_the_credentials_it_logs_in_with() {
        let s = spec(SPEC);
        let by = credentials_by_pull_secret(&s);
        assert_eq!(
            by.get("pull").unwrap().iter().copied().collect::<Vec<_>>(),
            ["harbor", "quay"]
        );
        assert_eq!(
            by.get("other").unwrap().iter().copied().collect::<Vec<_>>(),
            ["plain"]
        );
    }
}
