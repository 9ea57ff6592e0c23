use std::sync::Arc;

use ferry_core::SinkMetrics;

/// Logs one structured line per sink with its counters.
pub(crate) fn log_summary(sinks: &[(String, Arc<SinkMetrics>)], final_line: bool) {
    for (id, metrics) in sinks {
        let s = metrics.snapshot();
        let message = if final_line { "final summary" } else { "summary" };
        tracing::info!(
            sink = %id,
            received = s.received,
            delivered = s.delivered,
            retried = s.retried,
            rejected = s.rejected,
            dropped = s.dropped,
            dead_lettered = s.dead_lettered,
            buffered = s.buffered,
            in_flight = s.in_flight,
            buffer_errors = s.buffer_errors,
            "{message}"
        );
    }
}
