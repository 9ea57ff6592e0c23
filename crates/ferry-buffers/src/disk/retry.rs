//! How the disk buffer's threads wait out a failing disk: exponential back-off between
//! attempts, and error lines at a rate limit (a full disk fails every attempt; one line per
//! attempt buried the log in hundreds of lines a second).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The first wait after a failure.
const FIRST_WAIT: Duration = Duration::from_millis(10);
/// The longest wait between attempts (short in tests, which wait for recovery).
const LONGEST_WAIT: Duration = if cfg!(test) {
    Duration::from_millis(100)
} else {
    Duration::from_secs(5)
};
/// At most one error line per site in this interval.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(10);

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

/// Lets one error line through per [`LOG_INTERVAL`] and counts the rest.
#[derive(Debug, Default)]
pub(crate) struct RateLimited {
    /// When the last line was let through, and the lines held back since.
    state: Mutex<(Option<Instant>, u64)>,
    /// Lines let through, for tests.
    emitted: AtomicU64,
}

impl RateLimited {
    /// `Some(held back since the last line)` if a line may be logged now.
    pub(crate) fn allow(&self) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if state
            .0
            .is_some_and(|last| now.duration_since(last) < LOG_INTERVAL)
        {
            state.1 += 1;
            return None;
        }
        let held_back = std::mem::take(&mut state.1);
        state.0 = Some(now);
        self.emitted.fetch_add(1, Ordering::Relaxed);
        Some(held_back)
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
    fn one_line_per_interval_and_the_rest_are_counted() {
        let limited = RateLimited::default();
        assert_eq!(limited.allow(), Some(0));
        for _ in 0..500 {
            assert_eq!(limited.allow(), None);
        }
        assert_eq!(limited.emitted(), 1);
        limited.state.lock().unwrap().0 = Some(Instant::now() - LOG_INTERVAL);
        assert_eq!(
            limited.allow(),
            Some(500),
            "the next line says how many were held back"
        );
    }
}
