//! Per-sink counters behind the periodic and final summary lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::extra_metrics::ExtraMetrics;
use crate::latency::{LatencyHistogram, LatencySnapshot};

/// The kinds of failure a sink counts in `ferry_sink_errors_total`: a closed set, so the
/// `kind` label stays small. The Kafka sink's are its failure classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkErrorKind {
    /// A topic (or other) template could not be rendered for an event.
    Template,
    /// A failure that may pass (timeout, purge, broker away, leader change): sent again.
    Transient,
    /// The topic does not exist (yet).
    MissingTopic,
    /// The record can never be stored (too large, invalid, not authorised).
    Record,
    /// The broker refused a whole batch as too large.
    BatchTooLarge,
    /// The producer entered a fatal state and was rebuilt.
    Fatal,
    /// An error Ferry does not know.
    Unrecognised,
}

impl SinkErrorKind {
    /// Every kind, in label order.
    pub const ALL: [SinkErrorKind; 7] = [
        SinkErrorKind::Template,
        SinkErrorKind::Transient,
        SinkErrorKind::MissingTopic,
        SinkErrorKind::Record,
        SinkErrorKind::BatchTooLarge,
        SinkErrorKind::Fatal,
        SinkErrorKind::Unrecognised,
    ];

    /// The value of the `kind` label.
    pub fn label(self) -> &'static str {
        match self {
            SinkErrorKind::Template => "template",
            SinkErrorKind::Transient => "transient",
            SinkErrorKind::MissingTopic => "missing_topic",
            SinkErrorKind::Record => "record",
            SinkErrorKind::BatchTooLarge => "batch_too_large",
            SinkErrorKind::Fatal => "fatal",
            SinkErrorKind::Unrecognised => "unrecognised",
        }
    }
}

/// Microseconds since the first call in this process, never 0: buffers store enqueue times
/// in atomics this way (0 meaning "nothing waits").
pub fn monotonic_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

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
    /// Encoded payload bytes of the events the destination confirmed.
    pub sent_bytes: AtomicU64,
    /// Bytes the buffer holds: for a disk buffer, the stored records (waiting or taken and not
    /// yet confirmed); for a memory buffer, the approximate size of the events waiting in it
    /// ([`crate::LogEvent::approximate_size`]).
    pub buffered_bytes: AtomicU64,
    /// When the oldest batch still waiting in the buffer was written to it
    /// ([`monotonic_us`]); 0 while nothing waits.
    pub oldest_enqueued_us: AtomicU64,
    /// Failures by kind, in the order of [`SinkErrorKind::ALL`].
    errors: [AtomicU64; SinkErrorKind::ALL.len()],
    /// Time from the sink handing an event to its destination to the destination confirming
    /// it; one observation per delivered event.
    pub latency: LatencyHistogram,
    /// Metrics only this sink's type has, set once by the sink when it is built.
    pub extra: OnceLock<Arc<dyn ExtraMetrics>>,
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
    /// See [`SinkMetrics::sent_bytes`].
    pub sent_bytes: u64,
    /// See [`SinkMetrics::buffered_bytes`].
    pub buffered_bytes: u64,
    /// See [`SinkMetrics::oldest_enqueued_us`].
    pub oldest_enqueued_us: u64,
    /// Failures by kind, in the order of [`SinkErrorKind::ALL`].
    pub errors: [u64; SinkErrorKind::ALL.len()],
    /// See [`SinkMetrics::latency`].
    pub latency: LatencySnapshot,
}

impl SinkMetricsSnapshot {
    /// The count of one kind of failure.
    pub fn error(&self, kind: SinkErrorKind) -> u64 {
        self.errors[kind as usize]
    }

    /// How long the oldest waiting event has waited, at `now_us` ([`monotonic_us`]).
    pub fn oldest_age_us(&self, now_us: u64) -> u64 {
        if self.oldest_enqueued_us == 0 {
            0
        } else {
            now_us.saturating_sub(self.oldest_enqueued_us)
        }
    }
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

    /// Counts `n` failures of `kind`.
    pub fn add_errors(&self, kind: SinkErrorKind, n: u64) {
        self.errors[kind as usize].fetch_add(n, Ordering::Relaxed);
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
            sent_bytes: r(&self.sent_bytes),
            buffered_bytes: r(&self.buffered_bytes),
            oldest_enqueued_us: r(&self.oldest_enqueued_us),
            errors: std::array::from_fn(|i| r(&self.errors[i])),
            latency: self.latency.snapshot(),
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
