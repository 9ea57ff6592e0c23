//! `/metrics`: a prometheus-client collector that reads every sink's counters at scrape time.

use std::fmt;
use std::sync::Arc;

use std::collections::BTreeMap;

use ferry_core::{
    ExtraFamily, ExtraKind, ExtraSample, LATENCY_BUCKETS_US, SinkErrorKind, SinkMetricsSnapshot,
    SourceErrorKind, SourceMetricsSnapshot, monotonic_us,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::{SinkStatus, SourceStatus};

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
        name: "ferry_sent_bytes",
        help: "Encoded payload bytes of the events the destination confirmed.",
        kind: MetricType::Counter,
        value: |s| s.sent_bytes,
    },
    Family {
        name: "ferry_buffered_events",
        help: "Events waiting in the sink's buffer, not yet taken by the sink.",
        kind: MetricType::Gauge,
        value: |s| s.buffered,
    },
    Family {
        name: "ferry_buffered_bytes",
        help: "Bytes a disk buffer holds (records waiting or not yet confirmed); 0 for a memory buffer.",
        kind: MetricType::Gauge,
        value: |s| s.buffered_bytes,
    },
    Family {
        name: "ferry_in_flight_events",
        help: "Events the sink took and its destination has not confirmed yet.",
        kind: MetricType::Gauge,
        value: |s| s.in_flight,
    },
];

/// One metric family read from a source's counters (counter names without `_total`).
struct SourceFamily {
    name: &'static str,
    help: &'static str,
    value: fn(&SourceMetricsSnapshot) -> u64,
}

/// Every per-source counter besides errors by kind.
const SOURCE_FAMILIES: &[SourceFamily] = &[
    SourceFamily {
        name: "ferry_source_received_events",
        help: "Events the source handed to the pipeline.",
        value: |s| s.received_events,
    },
    SourceFamily {
        name: "ferry_source_received_bytes",
        help: "Bytes the source read from its input, line delimiters included.",
        value: |s| s.received_bytes,
    },
];

/// Reads the sources' and sinks' counters whenever the registry is encoded.
#[derive(Debug)]
struct PipelineCollector {
    sinks: Arc<[SinkStatus]>,
    sources: Arc<[SourceStatus]>,
}

impl Collector for PipelineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        self.encode_sources(&mut encoder)?;
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
            "ferry_sink_errors",
            "Failed deliveries and refused events of the sink, by kind.",
            None,
            MetricType::Counter,
        )?;
        for (id, snapshot) in &snapshots {
            for kind in SinkErrorKind::ALL {
                let labels = [("sink", *id), ("kind", kind.label())];
                ConstCounter::new(snapshot.error(kind)).encode(metric.encode_family(&labels)?)?;
            }
        }
        let now = monotonic_us();
        let mut metric = encoder.encode_descriptor(
            "ferry_buffer_oldest_event_age_seconds",
            "How long the oldest event waiting in the sink's buffer has waited (0 when none waits).",
            None,
            MetricType::Gauge,
        )?;
        for (id, snapshot) in &snapshots {
            let age = snapshot.oldest_age_us(now) as f64 / 1e6;
            ConstGauge::new(age).encode(metric.encode_family(&[("sink", *id)])?)?;
        }
        let mut metric = encoder.encode_descriptor(
            "ferry_delivery_latency_seconds",
            "Time from the sink handing an event to its destination to the destination confirming it.",
            None,
            MetricType::Histogram,
        )?;
        for (id, snapshot) in &snapshots {
            let latency = &snapshot.latency;
            let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_US
                .iter()
                .map(|&bound| bound as f64 / 1e6)
                .chain([f64::MAX])
                .zip(latency.buckets)
                .collect();
            metric
                .encode_family(&[("sink", *id)])?
                .encode_histogram::<NoLabelSet>(latency.sum_us as f64 / 1e6, latency.count, &buckets, None)?;
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
        self.encode_extra(&mut encoder)
    }
}

/// One extra family and its samples, each with its sink's ID.
type ExtraSamples<'a> = (ExtraFamily, Vec<(&'a str, ExtraSample)>);

impl PipelineCollector {
    fn encode_sources(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let snapshots: Vec<(&str, SourceMetricsSnapshot)> = self
            .sources
            .iter()
            .map(|s| (s.id.as_str(), s.metrics.snapshot()))
            .collect();
        for family in SOURCE_FAMILIES {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, MetricType::Counter)?;
            for (id, snapshot) in &snapshots {
                let labels = [("source", *id)];
                ConstCounter::new((family.value)(snapshot)).encode(metric.encode_family(&labels)?)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "ferry_source_errors",
            "Trouble a source met while reading, by kind.",
            None,
            MetricType::Counter,
        )?;
        for (id, snapshot) in &snapshots {
            for kind in SourceErrorKind::ALL {
                let labels = [("source", *id), ("kind", kind.label())];
                ConstCounter::new(snapshot.error(kind)).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }

    /// The families only some sink types have, each described once, with every such sink's
    /// samples.
    fn encode_extra(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let mut families: BTreeMap<&'static str, ExtraSamples<'_>> = BTreeMap::new();
        let mut samples = Vec::new();
        for sink in self.sinks.iter() {
            let Some(extra) = sink.metrics.extra.get() else {
                continue;
            };
            let declared = extra.families();
            for family in declared {
                families
                    .entry(family.name)
                    .or_insert_with(|| (*family, Vec::new()));
            }
            samples.clear();
            extra.samples(&mut samples);
            for sample in samples.drain(..) {
                if let Some(family) = declared.get(sample.family)
                    && let Some((_, list)) = families.get_mut(family.name)
                {
                    list.push((sink.id.as_str(), sample));
                }
            }
        }
        for (family, list) in families.values() {
            let kind = match family.kind {
                ExtraKind::Counter => MetricType::Counter,
                ExtraKind::Gauge => MetricType::Gauge,
            };
            let mut metric = encoder.encode_descriptor(family.name, family.help, None, kind)?;
            for (sink, sample) in list {
                let mut labels: Vec<(&str, &str)> = vec![("sink", sink)];
                labels.extend(sample.labels.iter().map(|(k, v)| (*k, v.as_str())));
                match family.kind {
                    // Counts: shown as integers, as the other counters are.
                    ExtraKind::Counter => {
                        ConstCounter::new(sample.value as u64).encode(metric.encode_family(&labels)?)?
                    }
                    ExtraKind::Gauge => {
                        ConstGauge::new(sample.value).encode(metric.encode_family(&labels)?)?
                    }
                }
            }
        }
        Ok(())
    }
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The registry the endpoint encodes on every scrape.
pub(crate) fn registry(sinks: Arc<[SinkStatus]>, sources: Arc<[SourceStatus]>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(PipelineCollector { sinks, sources }));
    registry
}

/// Encodes `registry` in the OpenMetrics text format Prometheus scrapes.
pub(crate) fn encode(registry: &Registry) -> Result<String, fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

/// The `/metrics` text for `sinks` and `sources` (what a scrape returns).
pub fn render_metrics(sinks: &[SinkStatus], sources: &[SourceStatus]) -> Result<String, fmt::Error> {
    encode(&registry(sinks.to_vec().into(), sources.to_vec().into()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use ferry_core::{SinkHealth, SinkMetrics, SourceMetrics};

    use super::*;

    fn sample() -> Vec<SinkStatus> {
        let metrics = Arc::new(SinkMetrics::default());
        SinkMetrics::add(&metrics.received, 7);
        SinkMetrics::add(&metrics.delivered, 5);
        SinkMetrics::add(&metrics.in_flight, 2);
        let health = Arc::new(SinkHealth::default());
        health.set_unhealthy("no broker");
        metrics.latency.observe_us(3_000);
        metrics.latency.observe_us(70_000_000);
        metrics.add_errors(SinkErrorKind::Transient, 4);
        vec![SinkStatus {
            id: "kafka".into(),
            metrics,
            health,
        }]
    }

    fn sources() -> Vec<SourceStatus> {
        let metrics = Arc::new(SourceMetrics::default());
        metrics.add_events(3);
        metrics.add_bytes(45);
        metrics.add_errors(SourceErrorKind::SplitLine, 1);
        vec![SourceStatus {
            id: "logs".into(),
            metrics,
        }]
    }

    fn render() -> String {
        render_metrics(&sample(), &sources()).unwrap()
    }

    /// The names of the samples in a scrape (`ferry_received_events_total`, ...); a
    /// histogram's `_bucket`, `_sum` and `_count` samples go by the histogram's name.
    fn sample_names(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(|name| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .filter_map(|suffix| name.strip_suffix(suffix))
                    .find(|stem| text.contains(&format!("# TYPE {stem} histogram\n")))
                    .unwrap_or(name)
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn counters_and_gauges_carry_the_sink_label_and_the_snapshot_values() {
        let text = render();
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
    fn sources_errors_and_the_latency_histogram_are_exposed() {
        let text = render();
        for line in [
            "ferry_source_received_events_total{source=\"logs\"} 3\n",
            "ferry_source_received_bytes_total{source=\"logs\"} 45\n",
            "ferry_source_errors_total{source=\"logs\",kind=\"split_line\"} 1\n",
            "ferry_source_errors_total{source=\"logs\",kind=\"undecodable\"} 0\n",
            "ferry_sink_errors_total{sink=\"kafka\",kind=\"transient\"} 4\n",
            "ferry_delivery_latency_seconds_count{sink=\"kafka\"} 2\n",
            "ferry_delivery_latency_seconds_sum{sink=\"kafka\"} 70.003\n",
            "ferry_delivery_latency_seconds_bucket{le=\"0.005\",sink=\"kafka\"} 1\n",
            "ferry_delivery_latency_seconds_bucket{le=\"60.0\",sink=\"kafka\"} 1\n",
            "ferry_delivery_latency_seconds_bucket{le=\"+Inf\",sink=\"kafka\"} 2\n",
            "ferry_buffer_oldest_event_age_seconds{sink=\"kafka\"} 0.0\n",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[derive(Debug)]
    struct Extra;

    const EXTRA: &[ExtraFamily] = &[ExtraFamily {
        name: "ferry_test_extra",
        help: "A test family.",
        kind: ExtraKind::Gauge,
    }];

    impl ferry_core::ExtraMetrics for Extra {
        fn families(&self) -> &'static [ExtraFamily] {
            EXTRA
        }

        fn samples(&self, out: &mut Vec<ExtraSample>) {
            out.push(ExtraSample {
                family: 0,
                labels: vec![("broker", "b1".into())],
                value: 0.5,
            });
        }
    }

    #[test]
    fn a_sinks_extra_families_are_described_once_with_its_samples() {
        let sinks = [sample(), sample()].concat();
        for sink in &sinks {
            sink.metrics.extra.set(Arc::new(Extra)).unwrap();
        }
        let text = render_metrics(&sinks, &[]).unwrap();
        assert_eq!(text.matches("# TYPE ferry_test_extra gauge").count(), 1, "{text}");
        assert_eq!(
            text.matches("ferry_test_extra{sink=\"kafka\",broker=\"b1\"} 0.5\n")
                .count(),
            2,
            "{text}"
        );
    }

    #[test]
    fn every_exposed_metric_is_documented_and_every_documented_one_exposed() {
        let docs_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/observability.md");
        let docs = std::fs::read_to_string(docs_path).expect("docs/observability.md exists");
        let exposed = sample_names(&render());
        assert!(exposed.len() >= 10, "{exposed:?}");
        let undocumented: Vec<&String> = exposed
            .iter()
            .filter(|name| !docs.contains(&format!("`{name}`")))
            .collect();
        assert!(
            undocumented.is_empty(),
            "exposed on /metrics but not documented in docs/observability.md: {undocumented:?}"
        );
        // Every metric row of the docs' table names a metric that exists (the Kafka sink's
        // own families are checked by the Kafka sink's tests).
        let documented: Vec<&str> = docs
            .lines()
            .filter_map(|l| l.strip_prefix("| `ferry_"))
            .filter_map(|rest| rest.split('`').next())
            .filter(|name| !name.starts_with("kafka_"))
            .collect();
        let stale: Vec<&&str> = documented
            .iter()
            .filter(|name| !exposed.contains(&format!("ferry_{name}")))
            .collect();
        assert!(stale.is_empty(), "documented but not exposed: {stale:?}");
    }
}
