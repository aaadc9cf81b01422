//! A run's context: the clock, and how long and how far regops waits on what it talks to. It is
//! made once, from the command's options, at the start of a run, and handed down: to each
//! connection to a cluster ([`crate::cluster::Connection`]), to minting and to the registry
//! login. Nothing below the command reads a flag or a process-wide setting for these, so two
//! runs in one process (the tests, a fleet) keep their own.

use std::time::Duration;

use crate::clock::SharedClock;

/// How far one LIST may go: its pages, its items, its time (`--max-list-pages`,
/// `--max-list-items`, `--list-timeout`). A server that never ends a LIST (a fresh `continue`
/// token on every page) or that sends more than it was asked for meets one of them, and the
/// read fails with an error naming the limit and its flag, instead of growing until it is
/// killed. The item cap also bounds each of the controller's watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListLimits {
    pub pages: u64,
    pub items: u64,
    pub time: Duration,
}

impl ListLimits {
    /// Far above what a real cluster needs: docs/scale.md's largest cluster (10,000 namespaces,
    /// 50,000 Deployments) has its largest LIST at 100 pages of 500 and its whole read in
    /// about a second. 1,000 pages of 500 is 500,000 objects of one kind, more than three times
    /// Kubernetes' tested limit of 150,000 pods in a cluster; the item cap is the same 500,000
    /// (full pages meet both at once), so that a server sending pages larger than asked stops
    /// there too, at a few hundred MB of memory. Ten minutes is 600 times that whole read.
    pub const DEFAULT: ListLimits = ListLimits {
        pages: 1_000,
        items: 500_000,
        time: Duration::from_secs(600),
    };
}

/// What one run waits on, and by which clock.
#[derive(Clone)]
pub struct RunContext {
    pub clock: SharedClock,
    /// How long one request may take before it is abandoned and retried
    /// (`--request-timeout`): to the cluster, to a registry, to a cloud's token endpoint.
    pub request_timeout: Duration,
    /// How long a cluster never reached is retried (`--connect-timeout`); `None`: as long as
    /// the retries go (the controller).
    pub connect_budget: Option<Duration>,
    /// The limits on each LIST and watch.
    pub list_limits: ListLimits,
}

impl RunContext {
    /// `--request-timeout`'s default.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    /// `--connect-timeout`'s default.
    pub const DEFAULT_CONNECT_BUDGET: Duration = Duration::from_secs(5);

    /// The defaults the flags have, on `clock`.
    pub fn new(clock: SharedClock) -> RunContext {
        RunContext {
            clock,
            request_timeout: RunContext::DEFAULT_REQUEST_TIMEOUT,
            connect_budget: Some(RunContext::DEFAULT_CONNECT_BUDGET),
            list_limits: ListLimits::DEFAULT,
        }
    }

    /// Whole seconds since the Unix epoch on this run's clock.
    pub fn unix_now(&self) -> i64 {
        crate::clock::unix_now(&*self.clock)
    }
}

impl Default for RunContext {
    fn default() -> RunContext {
        RunContext::new(crate::clock::system())
    }
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("request_timeout", &self.request_timeout)
            .field("connect_budget", &self.connect_budget)
            .field("list_limits", &self.list_limits)
            .finish_non_exhaustive()
    }
}
