//! Per-sink counters behind the periodic and final summary lines.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters one sink and its buffer update; the topology reads them for its summary lines.
/// Each counter is defined here and nowhere else.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    /// Events that entered the sink's buffer.
    pub received: AtomicU64,
    /// Events the destination confirmed.
    pub delivered: AtomicU64,
    /// Failed attempts that were (or will be) sent again.
    pub retried: AtomicU64,
    /// Events refused for good (template error, too large, invalid).
    pub rejected: AtomicU64,
    /// Events a full `drop_newest` buffer dropped, copies meant for a sink that had failed,
    /// and events a disk buffer could not write before the process stopped (its disk
    /// failing); their sources heard "not delivered".
    pub dropped: AtomicU64,
    /// Events written to the sink's dead-letter destination (a subset of `rejected`).
    pub dead_lettered: AtomicU64,
    /// Events waiting in the buffer right now, not yet taken by the sink (the same for both
    /// buffer types; events the sink took are `in_flight` until confirmed).
    pub buffered: AtomicU64,
    /// Events handed to the destination and not yet confirmed.
    pub in_flight: AtomicU64,
    /// Failed disk operations of a disk buffer (a full disk, an I/O error, a failed fsync);
    /// each one is retried, and nothing acknowledged is lost by it.
    pub buffer_errors: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkMetricsSnapshot {
    /// See [`SinkMetrics::received`].
    pub received: u64,
    /// See [`SinkMetrics::delivered`].
    pub delivered: u64,
    /// See [`SinkMetrics::retried`].
    pub retried: u64,
    /// See [`SinkMetrics::rejected`].
    pub rejected: u64,
    /// See [`SinkMetrics::dropped`].
    pub dropped: u64,
    /// See [`SinkMetrics::dead_lettered`].
    pub dead_lettered: u64,
    /// See [`SinkMetrics::buffered`].
    pub buffered: u64,
    /// See [`SinkMetrics::in_flight`].
    pub in_flight: u64,
    /// See [`SinkMetrics::buffer_errors`].
    pub buffer_errors: u64,
}

impl SinkMetrics {
    /// Adds `n` to `counter` (relaxed: these are statistics, not synchronisation).
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n` from a gauge, stopping at zero: a gauge that wrapped below zero would
    /// show 18 quintillion events.
    pub fn sub(counter: &AtomicU64, n: u64) {
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(n))
        });
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> SinkMetricsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SinkMetricsSnapshot {
            received: r(&self.received),
            delivered: r(&self.delivered),
            retried: r(&self.retried),
            rejected: r(&self.rejected),
            dropped: r(&self.dropped),
            dead_lettered: r(&self.dead_lettered),
            buffered: r(&self.buffered),
            in_flight: r(&self.in_flight),
            buffer_errors: r(&self.buffer_errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_never_wraps_below_zero() {
        let metrics = SinkMetrics::default();
        SinkMetrics::add(&metrics.buffered, 3);
        SinkMetrics::sub(&metrics.buffered, 5);
        assert_eq!(metrics.snapshot().buffered, 0);
    }
}
