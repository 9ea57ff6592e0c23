//! Whether a sink delivers right now, as the `/health` endpoint reports it.

use std::sync::{Mutex, MutexGuard};

/// A sink's health: healthy, or unhealthy with a reason a user can act on.
///
/// The sink updates it from its own periodic checks and error callbacks, never per event;
/// readers (the HTTP endpoint) take a copy. A sink that never updates it stays healthy.
#[derive(Debug, Default)]
pub struct SinkHealth {
    problem: Mutex<Option<String>>,
}

impl SinkHealth {
    fn lock(&self) -> MutexGuard<'_, Option<String>> {
        // A plain value: it stays consistent even if a holder panicked.
        self.problem
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks the sink healthy.
    pub fn set_healthy(&self) {
        let mut problem = self.lock();
        if problem.is_some() {
            *problem = None;
        }
    }

    /// Marks the sink unhealthy, saying why.
    pub fn set_unhealthy(&self, reason: impl Into<String>) {
        *self.lock() = Some(reason.into());
    }

    /// `None` while healthy, else why not.
    pub fn problem(&self) -> Option<String> {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_until_told_otherwise_and_again_once_cleared() {
        let health = SinkHealth::default();
        assert_eq!(health.problem(), None);
        health.set_unhealthy("no broker");
        assert_eq!(health.problem().as_deref(), Some("no broker"));
        health.set_healthy();
        assert_eq!(health.problem(), None);
    }
}
