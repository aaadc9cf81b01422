//! The work loop's heartbeat: each page read, write and Lease renewal beats it, and the
//! controller's `/healthz` asks how long ago it last beat.

/// When the work loop last made progress, in milliseconds since [`epoch`]: a turn of its loop,
/// a page it read, a write it made, a look at the Lease while standing by ([`beat`]); never
/// the Lease's renewals or the watches, which go on while the loop is stuck. One controller
/// runs per process.
static LAST_PROGRESS_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// The work loop made progress now.
pub fn beat() {
    let ms = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
    LAST_PROGRESS_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
}

/// How long since the work loop last made progress (since the process started, before any).
pub fn since_progress() -> std::time::Duration {
    let now = epoch().elapsed();
    let last = std::time::Duration::from_millis(
        LAST_PROGRESS_MS.load(std::sync::atomic::Ordering::Relaxed),
    );
    now.saturating_sub(last)
}
