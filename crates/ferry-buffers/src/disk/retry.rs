//! How the disk buffer's threads wait out a failing disk: exponential back-off between
//! attempts, and error lines at a rate limit (a full disk fails every attempt; one line per
//! attempt buried the log in hundreds of lines a second).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferry_core::rate_limit::WarnLimiter;

/// The first wait after a failure.
const FIRST_WAIT: Duration = Duration::from_millis(10);
/// The longest wait between attempts (short in tests, which wait for recovery).
const LONGEST_WAIT: Duration = if cfg!(test) {
    Duration::from_millis(100)
} else {
    Duration::from_secs(5)
};

/// Waits that double from [`FIRST_WAIT`] to [`LONGEST_WAIT`] while attempts keep failing.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Records a failure; returns how long to wait before the next attempt.
    pub(crate) fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        FIRST_WAIT
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(LONGEST_WAIT)
    }

    /// Records a success; returns how many attempts had failed before it.
    pub(crate) fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }

    /// Whether the last attempt failed.
    pub(crate) fn failing(&self) -> bool {
        self.failures > 0
    }

    /// Failed attempts in a row.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

/// One place's error lines, through the project's [`WarnLimiter`] (one line per 10 s, saying
/// how many were held back), counting the lines let through for the tests.
#[derive(Debug, Default)]
pub(crate) struct RateLimited {
    limiter: WarnLimiter,
    /// Lines let through, for tests.
    emitted: AtomicU64,
}

impl RateLimited {
    /// `Some(held back since the last line)` if a line may be logged now.
    pub(crate) fn allow(&self) -> Option<u64> {
        let allowed = self.limiter.check();
        if allowed.is_some() {
            self.emitted.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    /// Lines let through so far.
    #[cfg(test)]
    pub(crate) fn emitted(&self) -> u64 {
        self.emitted.load(Ordering::Relaxed)
    }
}

/// The rate-limited error lines of one disk buffer, one per place that can fail.
#[derive(Debug, Default)]
pub(crate) struct FaultLogs {
    /// Appending a record.
    pub(crate) write: RateLimited,
    /// A group commit (fsync of segments and ledger).
    pub(crate) sync: RateLimited,
    /// Reading a record back.
    pub(crate) read: RateLimited,
    /// Deleting a settled record.
    pub(crate) remove: RateLimited,
}

impl FaultLogs {
    /// Error lines let through so far, all sites together.
    #[cfg(test)]
    pub(crate) fn emitted(&self) -> u64 {
        self.write.emitted() + self.sync.emitted() + self.read.emitted() + self.remove.emitted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_longest_and_reset_on_success() {
        let mut backoff = Backoff::default();
        assert_eq!(backoff.failed(), FIRST_WAIT);
        assert_eq!(backoff.failed(), FIRST_WAIT * 2);
        for _ in 0..100 {
            assert!(backoff.failed() <= LONGEST_WAIT);
        }
        assert_eq!(backoff.failed(), LONGEST_WAIT);
        assert_eq!(backoff.succeeded(), 103);
        assert!(!backoff.failing());
        assert_eq!(backoff.failed(), FIRST_WAIT);
    }

    #[test]
    fn many_failures_make_one_line() {
        let limited = RateLimited::default();
        assert_eq!(limited.allow(), Some(0));
        for _ in 0..500 {
            assert_eq!(limited.allow(), None);
        }
        assert_eq!(limited.emitted(), 1);
    }
}
