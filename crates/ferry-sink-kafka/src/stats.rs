//! The Kafka sink's own metrics: librdkafka's statistics (queue depth, per-broker state,
//! round-trip time, request errors), read from its statistics callback every
//! `statistics.interval.ms`, and delivered / failed counters per topic, bounded in number.
//! `/metrics` reads them through [`ExtraMetrics`] at scrape time.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use ferry_core::{ExtraFamily, ExtraKind, ExtraMetrics, ExtraSample};
use rdkafka::Statistics;

/// Distinct topics counted by name; the deliveries of any further topic are counted under
/// [`OTHER_TOPICS`]. A template such as `logs-{{ host }}` can render a topic per host, and
/// every label value is a time series Prometheus keeps.
pub(crate) const TOPIC_CAP: usize = 100;
/// The `topic` label value of the topics beyond [`TOPIC_CAP`].
pub(crate) const OTHER_TOPICS: &str = "_other";

/// One topic's counters.
#[derive(Debug, Default)]
struct TopicSlot {
    name: OnceLock<String>,
    delivered: AtomicU64,
    failed: AtomicU64,
}

/// Per-topic counters: a fixed table filled as topics appear. Finding a topic costs an atomic
/// load and a string comparison when it is the last one seen (the usual case: one topic, or
/// batches of one topic); a scan of the table otherwise. Only adding a topic takes a lock.
#[derive(Debug)]
pub(crate) struct TopicCounters {
    /// `TOPIC_CAP` named slots, then the `_other` slot.
    slots: Box<[TopicSlot]>,
    len: AtomicUsize,
    hint: AtomicUsize,
    adding: Mutex<()>,
}

impl Default for TopicCounters {
    fn default() -> Self {
        let slots: Box<[TopicSlot]> = (0..=TOPIC_CAP).map(|_| TopicSlot::default()).collect();
        let _ = slots[TOPIC_CAP].name.set(OTHER_TOPICS.to_owned());
        Self {
            slots,
            len: AtomicUsize::new(0),
            hint: AtomicUsize::new(0),
            adding: Mutex::new(()),
        }
    }
}

impl TopicCounters {
    fn named(&self, index: usize, topic: &str) -> bool {
        self.slots[index].name.get().is_some_and(|name| name == topic)
    }

    fn slot(&self, topic: &str) -> &TopicSlot {
        let hint = self.hint.load(Ordering::Relaxed);
        if hint < self.len.load(Ordering::Acquire) && self.named(hint, topic) {
            return &self.slots[hint];
        }
        let len = self.len.load(Ordering::Acquire);
        if let Some(i) = (0..len).find(|&i| self.named(i, topic)) {
            self.hint.store(i, Ordering::Relaxed);
            return &self.slots[i];
        }
        let _adding = self.adding.lock().unwrap_or_else(|p| p.into_inner());
        // Another thread may have added it meanwhile.
        let len = self.len.load(Ordering::Acquire);
        if let Some(i) = (0..len).find(|&i| self.named(i, topic)) {
            return &self.slots[i];
        }
        if len == TOPIC_CAP {
            return &self.slots[TOPIC_CAP];
        }
        let _ = self.slots[len].name.set(topic.to_owned());
        self.len.store(len + 1, Ordering::Release);
        self.hint.store(len, Ordering::Relaxed);
        &self.slots[len]
    }

    /// Counts one record of `topic` confirmed.
    pub(crate) fn delivered(&self, topic: &str) {
        self.slot(topic).delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one failed delivery attempt of a record of `topic`.
    pub(crate) fn failed(&self, topic: &str) {
        self.slot(topic).failed.fetch_add(1, Ordering::Relaxed);
    }

    /// (topic, delivered, failed) of every topic seen, `_other` last if it was used.
    pub(crate) fn counts(&self) -> Vec<(&str, u64, u64)> {
        let len = self.len.load(Ordering::Acquire);
        self.slots[..len]
            .iter()
            .chain(std::iter::once(&self.slots[TOPIC_CAP]))
            .filter_map(|slot| {
                let delivered = slot.delivered.load(Ordering::Relaxed);
                let failed = slot.failed.load(Ordering::Relaxed);
                let name = slot.name.get()?;
                (name != OTHER_TOPICS || delivered + failed > 0 || len == TOPIC_CAP).then_some((
                    name.as_str(),
                    delivered,
                    failed,
                ))
            })
            .collect()
    }
}

/// What Ferry keeps of one broker from the last statistics.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BrokerView {
    /// `host:port/id` (`/bootstrap` for a bootstrap server), as librdkafka names it.
    pub(crate) name: String,
    /// The connection is up.
    pub(crate) up: bool,
    pub(crate) rtt_avg_us: i64,
    pub(crate) rtt_p99_us: i64,
    pub(crate) tx_errors: u64,
    pub(crate) rx_errors: u64,
    pub(crate) request_timeouts: u64,
}

/// What Ferry keeps of the last statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct StatsView {
    pub(crate) queue_messages: u64,
    pub(crate) queue_bytes: u64,
    pub(crate) brokers: Vec<BrokerView>,
}

impl StatsView {
    pub(crate) fn from_statistics(stats: &Statistics) -> Self {
        let mut brokers: Vec<BrokerView> = stats
            .brokers
            .values()
            // librdkafka's internal and logical brokers are not connections.
            .filter(|b| b.source == "configured" || b.source == "learned")
            .map(|b| BrokerView {
                name: b.name.clone(),
                up: b.state == "UP" || b.state == "UPDATE",
                rtt_avg_us: b.rtt.as_ref().map_or(0, |w| w.avg),
                rtt_p99_us: b.rtt.as_ref().map_or(0, |w| w.p99),
                tx_errors: b.txerrs,
                rx_errors: b.rxerrs,
                request_timeouts: b.req_timeouts,
            })
            .collect();
        brokers.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            queue_messages: stats.msg_cnt,
            queue_bytes: stats.msg_size,
            brokers,
        }
    }

    /// Whether any broker connection is up.
    pub(crate) fn any_broker_up(&self) -> bool {
        self.brokers.iter().any(|b| b.up)
    }
}

/// The sink's statistics and topic counters, shared by librdkafka's threads (which write
/// them) and `/metrics` and the health watcher (which read them).
#[derive(Debug)]
pub(crate) struct KafkaStats {
    pub(crate) topics: TopicCounters,
    latest: Mutex<Option<(StatsView, Instant)>>,
    /// When statistics last showed a broker connection up (or when the sink started).
    broker_up_at: Mutex<Instant>,
}

impl Default for KafkaStats {
    fn default() -> Self {
        Self {
            topics: TopicCounters::default(),
            latest: Mutex::new(None),
            broker_up_at: Mutex::new(Instant::now()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl KafkaStats {
    /// Takes in a statistics report (every `statistics.interval.ms`).
    pub(crate) fn update(&self, stats: &Statistics) {
        let view = StatsView::from_statistics(stats);
        let now = Instant::now();
        if view.any_broker_up() {
            *lock(&self.broker_up_at) = now;
        }
        *lock(&self.latest) = Some((view, now));
    }

    /// The last statistics and when they came; `None` until the first report (or when
    /// `statistics.interval.ms` is 0).
    pub(crate) fn latest(&self) -> Option<(StatsView, Instant)> {
        lock(&self.latest).clone()
    }

    /// When a broker connection was last seen up (the sink's start if never).
    pub(crate) fn broker_up_at(&self) -> Instant {
        *lock(&self.broker_up_at)
    }
}

/// The families of [`KafkaStats`], in the order of [`family`] indices below.
pub(crate) const FAMILIES: &[ExtraFamily] = &[
    ExtraFamily {
        name: "ferry_kafka_queue_messages",
        help: "Records in librdkafka's producer queue (statistics msg_cnt).",
        kind: ExtraKind::Gauge,
    },
    ExtraFamily {
        name: "ferry_kafka_queue_bytes",
        help: "Bytes of the records in librdkafka's producer queue (statistics msg_size).",
        kind: ExtraKind::Gauge,
    },
    ExtraFamily {
        name: "ferry_kafka_broker_up",
        help: "1 while the connection to the broker is up, else 0.",
        kind: ExtraKind::Gauge,
    },
    ExtraFamily {
        name: "ferry_kafka_broker_rtt_avg_seconds",
        help: "Average round-trip time of requests to the broker over the last statistics interval.",
        kind: ExtraKind::Gauge,
    },
    ExtraFamily {
        name: "ferry_kafka_broker_rtt_p99_seconds",
        help: "99th percentile of the round-trip time of requests to the broker over the last statistics interval.",
        kind: ExtraKind::Gauge,
    },
    ExtraFamily {
        name: "ferry_kafka_broker_tx_errors",
        help: "Transmission errors towards the broker (librdkafka txerrs).",
        kind: ExtraKind::Counter,
    },
    ExtraFamily {
        name: "ferry_kafka_broker_rx_errors",
        help: "Receive errors from the broker (librdkafka rxerrs).",
        kind: ExtraKind::Counter,
    },
    ExtraFamily {
        name: "ferry_kafka_broker_request_timeouts",
        help: "Requests to the broker that timed out (librdkafka req_timeouts).",
        kind: ExtraKind::Counter,
    },
    ExtraFamily {
        name: "ferry_kafka_topic_delivered_events",
        help: "Records the broker confirmed, by topic (topics beyond the cap count as _other).",
        kind: ExtraKind::Counter,
    },
    ExtraFamily {
        name: "ferry_kafka_topic_failed_events",
        help: "Failed delivery attempts reported by librdkafka, by topic (topics beyond the cap count as _other).",
        kind: ExtraKind::Counter,
    },
];

impl ExtraMetrics for KafkaStats {
    fn families(&self) -> &'static [ExtraFamily] {
        FAMILIES
    }

    fn samples(&self, out: &mut Vec<ExtraSample>) {
        let mut push = |family: usize, labels: Vec<(&'static str, String)>, value: f64| {
            out.push(ExtraSample {
                family,
                labels,
                value,
            });
        };
        if let Some((view, _)) = self.latest() {
            push(0, Vec::new(), view.queue_messages as f64);
            push(1, Vec::new(), view.queue_bytes as f64);
            for b in &view.brokers {
                let label = || vec![("broker", b.name.clone())];
                push(2, label(), f64::from(u8::from(b.up)));
                push(3, label(), b.rtt_avg_us as f64 / 1e6);
                push(4, label(), b.rtt_p99_us as f64 / 1e6);
                push(5, label(), b.tx_errors as f64);
                push(6, label(), b.rx_errors as f64);
                push(7, label(), b.request_timeouts as f64);
            }
        }
        for (topic, delivered, failed) in self.topics.counts() {
            push(8, vec![("topic", topic.to_owned())], delivered as f64);
            push(9, vec![("topic", topic.to_owned())], failed as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_beyond_the_cap_are_folded_into_other() {
        let counters = TopicCounters::default();
        for i in 0..TOPIC_CAP + 5 {
            counters.delivered(&format!("t{i}"));
        }
        counters.delivered("t0");
        counters.failed(&format!("t{}", TOPIC_CAP + 1));
        let counts = counters.counts();
        assert_eq!(counts.len(), TOPIC_CAP + 1);
        assert_eq!(counts[0], ("t0", 2, 0));
        assert_eq!(
            counts[TOPIC_CAP - 1],
            (format!("t{}", TOPIC_CAP - 1).as_str(), 1, 0)
        );
        assert_eq!(counts[TOPIC_CAP], (OTHER_TOPICS, 5, 1));
    }

    #[test]
    fn other_shows_only_once_used() {
        let counters = TopicCounters::default();
        counters.delivered("logs");
        counters.delivered("logs");
        counters.failed("audit");
        assert_eq!(counters.counts(), vec![("logs", 2, 0), ("audit", 0, 1)]);
    }

    #[test]
    fn statistics_become_queue_and_broker_figures() {
        let json = r#"{"name":"ferry#producer-1","client_id":"ferry","type":"producer","ts":1,"time":1,"age":1,
            "replyq":0,"msg_cnt":7,"msg_size":700,"msg_max":40000,"msg_size_max":1,"tx":1,"tx_bytes":1,"rx":1,
            "rx_bytes":1,"txmsgs":1,"txmsg_bytes":1,"rxmsgs":0,"rxmsg_bytes":0,"simple_cnt":0,"metadata_cache_cnt":1,
            "brokers":{
              "127.0.0.1:9092/1":{"name":"127.0.0.1:9092/1","nodeid":1,"nodename":"127.0.0.1:9092","source":"learned",
                "state":"UP","stateage":1,"outbuf_cnt":0,"outbuf_msg_cnt":0,"waitresp_cnt":0,"waitresp_msg_cnt":0,
                "tx":1,"txbytes":1,"txerrs":2,"txretries":0,"txidle":0,"req_timeouts":3,"rx":1,"rxbytes":1,"rxerrs":4,
                "rxcorriderrs":0,"rxpartial":0,"rxidle":0,"req":{},"zbuf_grow":0,"buf_grow":0,
                "rtt":{"min":1,"max":1,"avg":1500,"sum":1,"stddev":0,"p50":1,"p75":1,"p90":1,"p95":1,"p99":2500,"p99_99":1,"outofrange":0,"hdrsize":1,"cnt":1},
                "toppars":{}},
              "GroupCoordinator":{"name":"GroupCoordinator","nodeid":-1,"nodename":"","source":"logical",
                "state":"INIT","stateage":1,"outbuf_cnt":0,"outbuf_msg_cnt":0,"waitresp_cnt":0,"waitresp_msg_cnt":0,
                "tx":0,"txbytes":0,"txerrs":0,"txretries":0,"txidle":0,"req_timeouts":0,"rx":0,"rxbytes":0,"rxerrs":0,
                "rxcorriderrs":0,"rxpartial":0,"rxidle":0,"req":{},"zbuf_grow":0,"buf_grow":0,"toppars":{}}},
            "topics":{}}"#;
        let stats: Statistics = serde_json::from_str(json).unwrap();
        let view = StatsView::from_statistics(&stats);
        assert_eq!((view.queue_messages, view.queue_bytes), (7, 700));
        assert_eq!(
            view.brokers,
            vec![BrokerView {
                name: "127.0.0.1:9092/1".into(),
                up: true,
                rtt_avg_us: 1500,
                rtt_p99_us: 2500,
                tx_errors: 2,
                rx_errors: 4,
                request_timeouts: 3,
            }]
        );
        assert!(view.any_broker_up());
        let kafka = KafkaStats::default();
        kafka.update(&stats);
        kafka.topics.delivered("logs");
        let mut samples = Vec::new();
        kafka.samples(&mut samples);
        let by = |family: usize| samples.iter().find(|s| s.family == family).unwrap().value;
        assert_eq!(by(0), 7.0);
        assert_eq!(by(3), 0.0015);
        assert_eq!(by(8), 1.0);
    }

    #[test]
    fn every_family_is_documented_and_every_documented_kafka_family_exists() {
        let docs = include_str!("../../../docs/observability.md");
        for family in FAMILIES {
            let name = match family.kind {
                ExtraKind::Counter => format!("`{}_total`", family.name),
                ExtraKind::Gauge => format!("`{}`", family.name),
            };
            assert!(
                docs.contains(&name),
                "{name} is not documented in docs/observability.md"
            );
        }
        for row in docs.lines().filter_map(|l| l.strip_prefix("| `ferry_kafka_")) {
            let name = format!("ferry_kafka_{}", row.split('`').next().unwrap());
            let stem = name.strip_suffix("_total").unwrap_or(&name);
            assert!(
                FAMILIES.iter().any(|f| f.name == stem),
                "{name} is documented but the Kafka sink does not expose it"
            );
        }
    }
}
