//! One retry policy for every request regops sends (LIST pages, writes, the Lease): 429 after
//! its Retry-After, 500/502/503/504, dropped connections and requests slower than
//! `--request-timeout` are retried up to 8 times, after a capped exponential backoff with
//! jitter (from 50–150 ms, doubling, never over 3 s).
//!
//! A cluster never reached is not waited on for long: until a first request has been answered,
//! a failure to connect (refused, unreachable, timed out) is retried for `--connect-timeout`
//! (5 s) at most, then reported, as kubectl fails at once. Once the cluster has answered, an
//! outage gets the full retries; the controller (`apply --watch`) keeps retrying as ever. Each
//! retry is said on a terminal (and at `-v` elsewhere).

use std::future::Future;
use std::time::Duration;

use crate::cluster::Connection;

/// Whether a failed request is worth repeating, and after how long at the least.
fn transient(e: &kube::Error) -> Option<Option<Duration>> {
    match e {
        kube::Error::Api(s) if matches!(s.code, 429 | 500 | 502 | 503 | 504) => {
            Some(s.details.as_ref().and_then(|d| {
                (d.retry_after_seconds > 0)
                    .then(|| Duration::from_secs(u64::from(d.retry_after_seconds)))
            }))
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => Some(None),
        _ => None,
    }
}

const ATTEMPTS: u32 = 8;

/// Whether `e` is a failure to reach the server at all (nothing was sent).
fn is_connect_error(e: &kube::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(c) = err.downcast_ref::<hyper_util::client::legacy::Error>()
            && c.is_connect()
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::AddrNotAvailable
            )
        {
            return true;
        }
        cur = err.source();
    }
    false
}

tokio::task_local! {
    /// The Lease the requests of this task are made under ([`fenced`]).
    static FENCE: crate::cluster::lock::Held;
}

/// Runs `f` with every request it sends through [`retry`] checked against `held` first:
/// once the Lease's renew deadline has passed (another process may be writing), no attempt
/// is sent, the first or a repeat, and the request fails as "not sent". Without this a write
/// that began while the Lease was held could be repeated for minutes after it was lost.
pub async fn fenced<F: Future>(held: Option<crate::cluster::lock::Held>, f: F) -> F::Output {
    match held {
        Some(h) => FENCE.scope(h, f).await,
        None => f.await,
    }
}

/// Whether this task's Lease ([`fenced`]) is lost.
fn fence_lost() -> bool {
    FENCE
        .try_with(crate::cluster::lock::Held::lost)
        .unwrap_or(false)
}

/// The error of a request not sent because the Lease is lost.
fn not_sent() -> kube::Error {
    kube::Error::Service(Box::new(std::io::Error::other(
        "not sent: the lock was lost (another process may be writing)",
    )))
}

/// How long to wait before a retry: the backoff, or longer where the server asked (429's
/// Retry-After), but never longer than `cap` (the request timeout).
fn wait_before_retry(at_least: Option<Duration>, backoff: Duration, cap: Duration) -> Duration {
    at_least.map_or(backoff, |d| d.min(cap).max(backoff))
}

fn jitter(attempt: u32) -> f64 {
    // Not for security: spreads retries of concurrent writers apart.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut x = u64::from(nanos) ^ (u64::from(attempt) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    0.5 + (x % 1000) as f64 / 1000.0
}

/// Runs `op` until it succeeds, fails for good, or has failed `ATTEMPTS` times: 429 (after
/// Retry-After), 5xx, connection errors and timeouts are retried after a capped exponential
/// backoff with jitter (100 ms doubling to 3 s). The request timeout, the connect budget and
/// the clock the backoff is waited on are `conn`'s run's.
pub async fn retry<T, F, Fut>(conn: &Connection, mut op: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let ctx = &conn.ctx;
    let request_timeout = ctx.request_timeout;
    let mut attempt = 0;
    let started = ctx.clock.now();
    loop {
        if fence_lost() {
            return Err(not_sent());
        }
        // Under a Lease, an attempt is given no longer than the Lease has left: one still out
        // when the renew deadline passes is abandoned rather than waited for.
        let limit = FENCE
            .try_with(crate::cluster::lock::Held::remaining)
            .map_or(request_timeout, |left| left.min(request_timeout));
        // The request itself is timed on the real clock: it waits on a real socket.
        let err = match tokio::time::timeout(limit, op()).await {
            Ok(Ok(v)) => {
                conn.mark_reached();
                return Ok(v);
            }
            Ok(Err(e)) => e,
            Err(_) => kube::Error::Service(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request timed out",
            ))),
        };
        attempt += 1;
        let Some(at_least) = transient(&err) else {
            return Err(err);
        };
        if attempt >= ATTEMPTS {
            return Err(err);
        }
        let backoff = Duration::from_millis(100u64 << attempt.min(5))
            .mul_f64(jitter(attempt))
            .min(Duration::from_secs(3));
        // A server's Retry-After is honoured up to the request timeout: a hostile one asking
        // for 4,000,000,000 s must not hold a run for its whole --list-timeout.
        let wait = wait_before_retry(at_least, backoff, request_timeout);
        // A cluster never reached: give up once the connect budget is spent.
        if !conn.reached()
            && is_connect_error(&err)
            && ctx
                .connect_budget
                .is_some_and(|b| ctx.clock.now().saturating_duration_since(started) + wait > b)
        {
            return Err(err);
        }
        crate::cluster::request_log::retrying(|| {
            format!(
                "{}; retrying in {} ms (attempt {}/{ATTEMPTS})",
                crate::errors::describe_transient(&err),
                wait.as_millis(),
                attempt + 1,
            )
        });
        ctx.clock.sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    fn unavailable() -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("unavailable", "ServiceUnavailable").with_code(503),
        ))
    }

    /// A write that failed while the Lease was held is not sent again once it is lost: the
    /// fence is checked before every attempt, not only before the first.
    #[tokio::test]
    async fn a_fenced_request_is_not_repeated_once_the_lease_is_lost() {
        let lost = Arc::new(AtomicBool::new(false));
        let held = crate::cluster::lock::Held::for_test(lost.clone());
        let sent = Arc::new(AtomicU32::new(0));
        let conn = Connection::for_test(crate::context::RunContext::default());
        let r: Result<(), kube::Error> = fenced(
            Some(held),
            retry(&conn, || {
                let (sent, lost) = (sent.clone(), lost.clone());
                async move {
                    sent.fetch_add(1, Ordering::SeqCst);
                    // The Lease is lost while the first attempt is out.
                    lost.store(true, Ordering::SeqCst);
                    Err(unavailable())
                }
            }),
        )
        .await;
        assert_eq!(sent.load(Ordering::SeqCst), 1, "sent again after the loss");
        let e = r.unwrap_err();
        assert!(e.to_string().contains("the lock was lost"), "{e}");
    }

    /// Without a fence (reads, commands that take no Lease), a transient failure is retried.
    #[tokio::test]
    async fn without_a_fence_a_transient_failure_is_retried() {
        let sent = Arc::new(AtomicU32::new(0));
        let conn = Connection::for_test(crate::context::RunContext::default());
        let r: Result<(), kube::Error> = fenced(
            None,
            retry(&conn, || {
                let sent = sent.clone();
                async move {
                    if sent.fetch_add(1, Ordering::SeqCst) == 0 {
                        Err(unavailable())
                    } else {
                        Ok(())
                    }
                }
            }),
        )
        .await;
        assert!(r.is_ok());
        assert_eq!(sent.load(Ordering::SeqCst), 2);
    }

    fn refused() -> kube::Error {
        kube::Error::Service(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )))
    }

    /// Sends `refused` until `retry` gives up; how many attempts it made, and how far the
    /// run's clock moved meanwhile (all of it the backoff: the clock moves only when slept on).
    async fn attempts_until_given_up(conn: &Connection) -> (u32, Duration) {
        let clock = crate::clock::ManualClock::new();
        let conn = Connection {
            ctx: crate::context::RunContext {
                clock: clock.clone(),
                ..conn.ctx.clone()
            },
            ..conn.clone()
        };
        let sent = Arc::new(AtomicU32::new(0));
        let r: Result<(), kube::Error> = retry(&conn, || {
            let sent = sent.clone();
            async move {
                sent.fetch_add(1, Ordering::SeqCst);
                Err(refused())
            }
        })
        .await;
        assert!(is_connect_error(&r.unwrap_err()));
        (sent.load(Ordering::SeqCst), clock.elapsed())
    }

    /// A cluster never reached is given up once `--connect-timeout` has passed on the run's
    /// clock (kubectl fails at once); one that has answered, or the controller's (no budget),
    /// gets every attempt. The clock is the test's, so the seconds of backoff take none.
    #[tokio::test]
    async fn a_cluster_never_reached_is_retried_for_the_connect_budget_on_the_runs_clock() {
        let ctx = crate::context::RunContext {
            connect_budget: Some(Duration::from_secs(2)),
            ..crate::context::RunContext::default()
        };
        let (attempts, waited) = attempts_until_given_up(&Connection::for_test(ctx.clone())).await;
        assert!(waited <= Duration::from_secs(2), "waited {waited:?}");
        assert!((2..ATTEMPTS).contains(&attempts), "{attempts} attempts");

        let reached = Connection::for_test(ctx.clone());
        reached.mark_reached();
        let (attempts, waited) = attempts_until_given_up(&reached).await;
        assert_eq!(attempts, ATTEMPTS);
        assert!(waited > Duration::from_secs(2), "waited {waited:?}");

        let controller = crate::context::RunContext {
            connect_budget: None,
            ..ctx
        };
        let (attempts, _) = attempts_until_given_up(&Connection::for_test(controller)).await;
        assert_eq!(attempts, ATTEMPTS);
    }

    /// A 429 asking to wait 4,000,000,000 s is waited on for the request timeout at most
    /// (issue 38: a hostile server held a run for its whole --list-timeout); a short one, and
    /// the backoff, as they are.
    #[test]
    fn a_huge_retry_after_is_capped_at_the_request_timeout() {
        let (backoff, timeout) = (Duration::from_millis(200), Duration::from_secs(30));
        let huge = Some(Duration::from_secs(4_000_000_000));
        assert_eq!(wait_before_retry(huge, backoff, timeout), timeout);
        assert_eq!(
            wait_before_retry(Some(Duration::from_secs(2)), backoff, timeout),
            Duration::from_secs(2)
        );
        assert_eq!(wait_before_retry(None, backoff, timeout), backoff);
    }
}
