//! The one clock regops reads: the monotonic time the Lease, its renewal and the retries'
//! backoff are judged by, the wall-clock time stamped on records and compared with expiry
//! dates, and the sleeps between attempts. (The controller's own schedules take `now` as an
//! argument and run on tokio's clock, which tokio's paused time can drive.) A run gets it in its [`crate::context::RunContext`]; the
//! process's is [`SystemClock`], and in-process tests hand in a [`ManualClock`] that they move
//! on themselves, so a Lease's fifteen seconds pass in no real time.
//!
//! The monotonic time is tokio's [`Instant`], so code judged by [`SystemClock`] also follows
//! tokio's paused time in tests that wait on no real socket or process.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// A sleep handed out by a [`Clock`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

pub trait Clock: Send + Sync {
    /// Now on the monotonic clock (what durations are judged by).
    fn now(&self) -> Instant;
    /// Now on the wall clock, as seconds since the Unix epoch (what is stamped on records
    /// and compared with expiry dates).
    fn unix_secs(&self) -> f64;
    /// Waits `d` on this clock.
    fn sleep(&self, d: Duration) -> Sleep;
}

/// The clock a run is given.
pub type SharedClock = Arc<dyn Clock>;

/// The process's clocks: tokio's monotonic time and the system's wall time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn unix_secs(&self) -> f64 {
        unix_secs_now()
    }

    fn sleep(&self, d: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(d))
    }
}

/// The system's wall clock in seconds since the Unix epoch (0 before it, which no machine
/// running regops is).
fn unix_secs_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The system clock, shared: what every command runs with.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// Whole seconds since the Unix epoch on `clock`, as expiry dates and tokens count them.
pub fn unix_now(clock: &dyn Clock) -> i64 {
    // Truncation intended: a date in whole seconds; f64 holds these exactly until 2^53 s.
    #[allow(clippy::cast_possible_truncation)]
    let secs = clock.unix_secs().floor() as i64;
    secs
}

/// A clock that moves only when told to, or when something sleeps on it: a sleep moves it on
/// by the time slept and returns at once (after yielding, so other tasks run), as if that time
/// had passed with nothing else happening. Shared across threads: the Lease's renewal thread
/// and the test read the same time. Two sleeps at once both move it (their times add up), so
/// a test lets one thing sleep on it at a time: the Lease's tests wait for the renewal thread
/// in real time while it sleeps.
#[cfg(test)]
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    wall: f64,
    advanced_nanos: std::sync::atomic::AtomicU64,
}

#[cfg(test)]
impl ManualClock {
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            base: Instant::now(),
            wall: 1_800_000_000.0,
            advanced_nanos: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Moves the clock on by `d`.
    pub fn advance(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.advanced_nanos
            .fetch_add(nanos, std::sync::atomic::Ordering::SeqCst);
    }

    /// How far the clock has been moved on since it was made.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(
            self.advanced_nanos
                .load(std::sync::atomic::Ordering::SeqCst),
        )
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + self.elapsed()
    }

    fn unix_secs(&self) -> f64 {
        self.wall + self.elapsed().as_secs_f64()
    }

    fn sleep(&self, d: Duration) -> Sleep {
        self.advance(d);
        Box::pin(tokio::task::yield_now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_moves_by_what_is_slept_and_advanced() {
        let clock = ManualClock::new();
        let (t0, w0) = (clock.now(), clock.unix_secs());
        clock.sleep(Duration::from_secs(15)).await;
        clock.advance(Duration::from_millis(500));
        assert_eq!(clock.now() - t0, Duration::from_millis(15_500));
        assert!((clock.unix_secs() - w0 - 15.5).abs() < 1e-6);
        assert_eq!(unix_now(&*clock), 1_800_000_015);
    }

    #[test]
    fn the_system_clock_reads_the_system_time() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let now = unix_now(&SystemClock);
        assert!(now >= i64::try_from(before).unwrap_or(i64::MAX) && now > 1_700_000_000);
    }
}
