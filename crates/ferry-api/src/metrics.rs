//! `/metrics`: a prometheus-client collector that reads every sink's counters at scrape time.

use std::fmt;
use std::sync::Arc;

use ferry_core::SinkMetricsSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::SinkStatus;

/// The `Content-Type` of what [`render_metrics`] writes.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One metric family read from a sink's counters. Counter names are given without `_total`:
/// the encoder appends it to every counter sample.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    value: fn(&SinkMetricsSnapshot) -> u64,
}

/// Every family, in the order of the summary line. docs/observability.md documents each one
/// (a test checks it).
const FAMILIES: &[Family] = &[
    Family {
        name: "ferry_received_events",
        help: "Events that entered the sink's buffer.",
        kind: MetricType::Counter,
        value: |s| s.received,
    },
    Family {
        name: "ferry_delivered_events",
        help: "Events the destination confirmed.",
        kind: MetricType::Counter,
        value: |s| s.delivered,
    },
    Family {
        name: "ferry_retried_events",
        help: "Failed delivery attempts that were (or will be) sent again.",
        kind: MetricType::Counter,
        value: |s| s.retried,
    },
    Family {
        name: "ferry_rejected_events",
        help: "Events refused for good (template error, too large, invalid, topic missing past its grace).",
        kind: MetricType::Counter,
        value: |s| s.rejected,
    },
    Family {
        name: "ferry_dropped_events",
        help: "Events dropped: by a full drop_newest buffer, meant for a failed sink, or unwritable to a failing disk buffer at exit.",
        kind: MetricType::Counter,
        value: |s| s.dropped,
    },
    Family {
        name: "ferry_dead_lettered_events",
        help: "Events written to the sink's dead-letter destination (a subset of rejected).",
        kind: MetricType::Counter,
        value: |s| s.dead_lettered,
    },
    Family {
        name: "ferry_buffer_errors",
        help: "Failed disk-buffer operations (full disk, I/O error, failed fsync); each is retried.",
        kind: MetricType::Counter,
        value: |s| s.buffer_errors,
    },
    Family {
        name: "ferry_buffered_events",
        help: "Events waiting in the sink's buffer, not yet taken by the sink.",
        kind: MetricType::Gauge,
        value: |s| s.buffered,
    },
    Family {
        name: "ferry_in_flight_events",
        help: "Events the sink took and its destination has not confirmed yet.",
        kind: MetricType::Gauge,
        value: |s| s.in_flight,
    },
];

/// Reads the sinks' counters whenever the registry is encoded.
#[derive(Debug)]
struct SinkCollector {
    sinks: Arc<[SinkStatus]>,
}

impl Collector for SinkCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        // One snapshot per sink, so every family of one scrape shows the same moment as
        // nearly as relaxed atomics allow.
        let snapshots: Vec<(&str, SinkMetricsSnapshot)> = self
            .sinks
            .iter()
            .map(|s| (s.id.as_str(), s.metrics.snapshot()))
            .collect();
        for family in FAMILIES {
            let mut metric = encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            for (id, snapshot) in &snapshots {
                let labels = [("sink", *id)];
                let value = (family.value)(snapshot);
                match family.kind {
                    MetricType::Counter => ConstCounter::new(value).encode(metric.encode_family(&labels)?)?,
                    _ => ConstGauge::new(gauge(value)).encode(metric.encode_family(&labels)?)?,
                }
            }
        }
        let mut metric = encoder.encode_descriptor(
            "ferry_sink_healthy",
            "1 while the sink is healthy (see /health), else 0.",
            None,
            MetricType::Gauge,
        )?;
        for sink in self.sinks.iter() {
            let labels = [("sink", sink.id.as_str())];
            let healthy = i64::from(sink.health.problem().is_none());
            ConstGauge::new(healthy).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The registry the endpoint encodes on every scrape.
pub(crate) fn registry(sinks: Arc<[SinkStatus]>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SinkCollector { sinks }));
    registry
}

/// Encodes `registry` in the OpenMetrics text format Prometheus scrapes.
pub(crate) fn encode(registry: &Registry) -> Result<String, fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

/// The `/metrics` text for `sinks` (what a scrape returns).
pub fn render_metrics(sinks: &[SinkStatus]) -> Result<String, fmt::Error> {
    encode(&registry(sinks.to_vec().into()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use ferry_core::{SinkHealth, SinkMetrics};

    use super::*;

    fn sample() -> Vec<SinkStatus> {
        let metrics = Arc::new(SinkMetrics::default());
        SinkMetrics::add(&metrics.received, 7);
        SinkMetrics::add(&metrics.delivered, 5);
        SinkMetrics::add(&metrics.in_flight, 2);
        let health = Arc::new(SinkHealth::default());
        health.set_unhealthy("no broker");
        vec![SinkStatus {
            id: "kafka".into(),
            metrics,
            health,
        }]
    }

    /// The names of the samples in a scrape (`ferry_received_events_total`, ...).
    fn sample_names(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn counters_and_gauges_carry_the_sink_label_and_the_snapshot_values() {
        let text = render_metrics(&sample()).unwrap();
        assert!(
            text.contains("ferry_received_events_total{sink=\"kafka\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("ferry_delivered_events_total{sink=\"kafka\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("ferry_in_flight_events{sink=\"kafka\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("ferry_sink_healthy{sink=\"kafka\"} 0\n"), "{text}");
        assert!(text.contains("# TYPE ferry_delivered_events counter\n"), "{text}");
        assert!(text.contains("# TYPE ferry_buffered_events gauge\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn every_exposed_metric_is_documented_and_every_documented_one_exposed() {
        let docs_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/observability.md");
        let docs = std::fs::read_to_string(docs_path).expect("docs/observability.md exists");
        let exposed = sample_names(&render_metrics(&sample()).unwrap());
        assert!(exposed.len() >= 10, "{exposed:?}");
        let undocumented: Vec<&String> = exposed
            .iter()
            .filter(|name| !docs.contains(&format!("`{name}`")))
            .collect();
        assert!(
            undocumented.is_empty(),
            "exposed on /metrics but not documented in docs/observability.md: {undocumented:?}"
        );
        // Every metric row of the docs' table names a metric that exists.
        let documented: Vec<&str> = docs
            .lines()
            .filter_map(|l| l.strip_prefix("| `ferry_"))
            .filter_map(|rest| rest.split('`').next())
            .collect();
        let stale: Vec<&&str> = documented
            .iter()
            .filter(|name| !exposed.contains(&format!("ferry_{name}")))
            .collect();
        assert!(stale.is_empty(), "documented but not exposed: {stale:?}");
    }
}
