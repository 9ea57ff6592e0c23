//! Rate-limited warnings: per-event problems (an undecodable line, a rejected record) are
//! counted every time but logged at most once per interval, with the number suppressed since.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Decides when a recurring warning may be logged again.
#[derive(Debug)]
pub struct WarnLimiter {
    interval: Duration,
    state: Mutex<LimiterState>,
}

#[derive(Debug)]
struct LimiterState {
    last: Option<Instant>,
    suppressed: u64,
}

impl WarnLimiter {
    /// A limiter allowing one warning per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(LimiterState {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when the caller should log now, `n` being how many occurrences were
    /// suppressed since the last logged one; `None` when it should stay quiet.
    pub fn check(&self) -> Option<u64> {
        let now = Instant::now();
        let mut state = match self.state.lock() {
            Ok(state) => state,
            // A panic elsewhere while holding this lock only disturbed statistics.
            Err(poisoned) => poisoned.into_inner(),
        };
        match state.last {
            Some(last) if now.duration_since(last) < self.interval => {
                state.suppressed += 1;
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.suppressed))
            }
        }
    }
}

impl Default for WarnLimiter {
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_first_then_counts_suppressed() {
        let limiter = WarnLimiter::new(Duration::from_secs(3600));
        assert_eq!(limiter.check(), Some(0));
        assert_eq!(limiter.check(), None);
        assert_eq!(limiter.check(), None);
        let zero = WarnLimiter::new(Duration::ZERO);
        assert_eq!(zero.check(), Some(0));
        assert_eq!(zero.check(), Some(0));
    }
}
