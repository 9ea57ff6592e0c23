//! Per-source counters: what each source read, and what went wrong while reading it.

use std::sync::atomic::{AtomicU64, Ordering};

/// The kinds of trouble a source counts. A closed set, so the `kind` label of
/// `ferry_source_errors_total` stays small and documented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceErrorKind {
    /// A line that should have been a JSON object was not; it was kept whole as `message`.
    Undecodable,
    /// A line longer than `max_line_bytes` was split into several events.
    SplitLine,
    /// Reading the input failed (a file that cannot be opened or read, a failed read of
    /// standard input); the source tries again or, for standard input, stops.
    Read,
    /// Saving a file source's checkpoints failed; it tries again a second later.
    Checkpoint,
}

impl SourceErrorKind {
    /// Every kind, in label order.
    pub const ALL: [SourceErrorKind; 4] = [
        SourceErrorKind::Undecodable,
        SourceErrorKind::SplitLine,
        SourceErrorKind::Read,
        SourceErrorKind::Checkpoint,
    ];

    /// The value of the `kind` label.
    pub fn label(self) -> &'static str {
        match self {
            SourceErrorKind::Undecodable => "undecodable",
            SourceErrorKind::SplitLine => "split_line",
            SourceErrorKind::Read => "read",
            SourceErrorKind::Checkpoint => "checkpoint",
        }
    }
}

/// Counters one source updates; `/metrics` and the source's own stop line read them. Each
/// counter is defined here and nowhere else.
#[derive(Debug, Default)]
pub struct SourceMetrics {
    /// Events the source handed to the pipeline (counted per batch by its `SourceSender`).
    pub received_events: AtomicU64,
    /// Bytes the source read from its input, line delimiters included.
    pub received_bytes: AtomicU64,
    errors: [AtomicU64; SourceErrorKind::ALL.len()],
}

/// A copy of a source's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceMetricsSnapshot {
    /// See [`SourceMetrics::received_events`].
    pub received_events: u64,
    /// See [`SourceMetrics::received_bytes`].
    pub received_bytes: u64,
    /// Errors by kind, in the order of [`SourceErrorKind::ALL`].
    pub errors: [u64; SourceErrorKind::ALL.len()],
}

impl SourceMetricsSnapshot {
    /// The count of one kind of error.
    pub fn error(&self, kind: SourceErrorKind) -> u64 {
        self.errors[kind as usize]
    }
}

impl SourceMetrics {
    /// Counts `n` errors of `kind`.
    pub fn add_errors(&self, kind: SourceErrorKind, n: u64) {
        if n > 0 {
            self.errors[kind as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts `n` bytes read.
    pub fn add_bytes(&self, n: u64) {
        self.received_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` events handed to the pipeline.
    pub fn add_events(&self, n: u64) {
        self.received_events.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> SourceMetricsSnapshot {
        SourceMetricsSnapshot {
            received_events: self.received_events.load(Ordering::Relaxed),
            received_bytes: self.received_bytes.load(Ordering::Relaxed),
            errors: std::array::from_fn(|i| self.errors[i].load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_by_kind() {
        let metrics = SourceMetrics::default();
        metrics.add_errors(SourceErrorKind::SplitLine, 2);
        metrics.add_errors(SourceErrorKind::Undecodable, 0);
        let s = metrics.snapshot();
        assert_eq!(s.error(SourceErrorKind::SplitLine), 2);
        assert_eq!(s.error(SourceErrorKind::Undecodable), 0);
        for (i, kind) in SourceErrorKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "ALL is in declaration order");
        }
    }
}
