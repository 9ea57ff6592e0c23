//! The sink's health: the start-up check (can we get metadata from the brokers, and does the
//! topic exist?) and, while it runs, whether events wait with no delivery confirmed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_core::{BoxError, Healthcheck, SinkHealth, SinkMetrics};
use rdkafka::producer::Producer as _;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::client::Producer;
use crate::config::KafkaSinkConfig;
use crate::context::SinkShared;

/// Why the health check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// No metadata: brokers unreachable, refused the login, or TLS failed.
    #[error("cannot get metadata from {brokers}: {cause}")]
    Unreachable {
        /// The bootstrap servers tried.
        brokers: String,
        /// The most specific reason librdkafka gave.
        cause: String,
    },
    /// The sink cannot make an OAUTHBEARER token (`sasl.token_file`, MSK IAM credentials).
    #[error("cannot authenticate to {brokers}: {cause}")]
    NoToken {
        /// The bootstrap servers.
        brokers: String,
        /// Why: one line naming what was tried, never a secret.
        cause: String,
    },
    /// The topic is not there (Ferry never creates topics).
    #[error("topic `{topic}` does not exist on {brokers} ({cause}); create it, or set healthcheck_topic")]
    MissingTopic {
        /// The topic.
        topic: String,
        /// The bootstrap servers.
        brokers: String,
        /// What the broker said.
        cause: String,
    },
}

/// How long the metadata request may take: under the topology's default check timeout, so
/// the user sees librdkafka's reason rather than a bare timeout.
const METADATA_TIMEOUT: Duration = Duration::from_secs(8);

pub(crate) fn healthcheck(
    config: &KafkaSinkConfig,
    producer: Producer,
    shared: Arc<SinkShared>,
) -> Healthcheck {
    let topic = if config.topic.is_static() {
        Some(config.topic.as_str().to_owned())
    } else {
        config.healthcheck_topic.clone()
    };
    let brokers = config.bootstrap_servers.clone();
    let timeout = METADATA_TIMEOUT.min(Duration::from_millis(config.socket_timeout_ms));
    Box::pin(async move {
        let check = tokio::task::spawn_blocking(move || {
            check(&producer, &shared, topic.as_deref(), &brokers, timeout)
        });
        check
            .await
            .map_err(|e| Box::new(e) as BoxError)?
            .map_err(|e| Box::new(e) as BoxError)
    })
}

fn check(
    producer: &Producer,
    shared: &SinkShared,
    topic: Option<&str>,
    brokers: &str,
    timeout: Duration,
) -> Result<(), HealthError> {
    // Asked first: without a token the metadata request would only time out, and its error
    // would not say why.
    if let Some(source) = &shared.token
        && let Err(e) = source.token()
    {
        return Err(HealthError::NoToken {
            brokers: brokers.to_owned(),
            cause: e.to_string(),
        });
    }
    shared.clear_last_error();
    let metadata =
        producer
            .client()
            .fetch_metadata(topic, timeout)
            .map_err(|e| HealthError::Unreachable {
                brokers: brokers.to_owned(),
                // The error callback knows why (refused, TLS, authentication); the request only
                // knows that it failed.
                cause: shared.take_last_error().unwrap_or_else(|| e.to_string()),
            })?;
    let Some(topic) = topic else { return Ok(()) };
    match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
        Some(t) => Err(HealthError::MissingTopic {
            topic: topic.to_owned(),
            brokers: brokers.to_owned(),
            cause: t
                .error()
                .map(|e| rdkafka::types::RDKafkaErrorCode::from(e).to_string())
                .unwrap_or_else(|| "no partitions".into()),
        }),
        None => Err(HealthError::MissingTopic {
            topic: topic.to_owned(),
            brokers: brokers.to_owned(),
            cause: "not in the metadata".into(),
        }),
    }
}

/// How long events may wait with no delivery confirmed before the sink reports unhealthy.
pub(crate) const UNHEALTHY_AFTER: Duration = Duration::from_secs(10);
/// How often the sink's health is looked at.
const HEALTH_TICK: Duration = Duration::from_secs(1);

/// The sink's health, judged from its counters once a second (see docs/observability.md):
/// unhealthy once events have waited [`UNHEALTHY_AFTER`] with no delivery confirmed; healthy
/// again at the next confirmed delivery, or once nothing waits.
#[derive(Debug)]
pub(crate) struct HealthJudge {
    /// The delivered count when it last moved (or nothing waited), and when.
    progress: (u64, Instant),
}

/// What the judge concluded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Healthy,
    /// Events have waited this long, with no delivery confirmed.
    Stalled {
        quiet: Duration,
        waiting: u64,
    },
    /// Not long enough to tell.
    Unchanged,
}

impl HealthJudge {
    pub(crate) fn new(now: Instant) -> Self {
        Self { progress: (0, now) }
    }

    /// Judges from the `delivered` counter and the events `waiting` (taken by the sink and
    /// not yet confirmed) at `now`.
    pub(crate) fn judge(&mut self, delivered: u64, waiting: u64, now: Instant) -> Verdict {
        if waiting == 0 || delivered != self.progress.0 {
            self.progress = (delivered, now);
            return Verdict::Healthy;
        }
        let quiet = now.saturating_duration_since(self.progress.1);
        if quiet >= UNHEALTHY_AFTER {
            Verdict::Stalled { quiet, waiting }
        } else {
            Verdict::Unchanged
        }
    }
}

/// How long no broker connection has been up, once that is [`UNHEALTHY_AFTER`] or more;
/// `None` while one is up, or when there are no statistics to tell (none came yet, or
/// `statistics.interval.ms` is 0).
pub(crate) fn unreachable_for(
    broker_up_at: Instant,
    statistics_seen: bool,
    now: Instant,
) -> Option<Duration> {
    if !statistics_seen {
        return None;
    }
    let down = now.saturating_duration_since(broker_up_at);
    (down >= UNHEALTHY_AFTER).then_some(down)
}

/// Keeps `health` up to date from the sink's counters, once a second, until the returned
/// guard is dropped. A task of its own rather than the sink loop's tick, because that loop may
/// wait a long time for room in librdkafka's queue while the broker is away, which is when
/// health matters.
pub(crate) fn watch(
    shared: Arc<SinkShared>,
    metrics: Arc<SinkMetrics>,
    health: Arc<SinkHealth>,
) -> DropGuard {
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let mut judge = HealthJudge::new(Instant::now());
        let mut unreachable_reported = false;
        let mut ticker = tokio::time::interval(HEALTH_TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopped.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let delivered = metrics.delivered.load(Ordering::Relaxed);
            let waiting = metrics.in_flight.load(Ordering::Relaxed);
            let now = Instant::now();
            let verdict = judge.judge(delivered, waiting, now);
            let statistics_seen = shared.stats.latest().is_some();
            if let Some(down) = unreachable_for(shared.stats.broker_up_at(), statistics_seen, now) {
                let cause = shared
                    .last_error()
                    .map(|e| format!("; librdkafka's last error: {e}"))
                    .unwrap_or_default();
                health.set_unhealthy(format!(
                    "no broker reachable for {:.0} s{cause}",
                    down.as_secs_f64()
                ));
                unreachable_reported = true;
                continue;
            }
            match verdict {
                Verdict::Healthy => {
                    unreachable_reported = false;
                    health.set_healthy();
                }
                // A broker is back and nothing is stalled (yet): what was reported is over.
                Verdict::Unchanged if unreachable_reported => {
                    unreachable_reported = false;
                    health.set_healthy();
                }
                Verdict::Unchanged => {}
                Verdict::Stalled { quiet, waiting } => {
                    unreachable_reported = false;
                    let cause = shared
                        .last_error()
                        .map(|e| format!("; librdkafka's last error: {e}"))
                        .unwrap_or_default();
                    health.set_unhealthy(format!(
                        "no delivery confirmed for {:.0} s while {waiting} events wait{cause}",
                        quiet.as_secs_f64()
                    ));
                }
            }
        }
    });
    stop.drop_guard()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_only_after_ten_seconds_without_a_broker_up_and_only_with_statistics() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(unreachable_for(start, true, at(9)), None);
        assert_eq!(
            unreachable_for(start, true, at(10)),
            Some(Duration::from_secs(10))
        );
        // No statistics (not yet, or turned off): nothing to tell from.
        assert_eq!(unreachable_for(start, false, at(60)), None);
    }

    #[test]
    fn unhealthy_only_after_events_waited_without_a_delivery_and_healthy_at_the_next() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut judge = HealthJudge::new(start);
        // Nothing waits: healthy however long nothing is delivered.
        assert_eq!(judge.judge(0, 0, at(100)), Verdict::Healthy);
        // Events wait; deliveries keep coming: healthy.
        assert_eq!(judge.judge(5, 10, at(101)), Verdict::Healthy);
        assert_eq!(judge.judge(5, 10, at(105)), Verdict::Unchanged);
        assert_eq!(
            judge.judge(5, 12, at(111)),
            Verdict::Stalled {
                quiet: Duration::from_secs(10),
                waiting: 12
            }
        );
        // One confirmed delivery: healthy again.
        assert_eq!(judge.judge(6, 12, at(112)), Verdict::Healthy);
        assert_eq!(judge.judge(6, 12, at(121)), Verdict::Unchanged);
        // The backlog drained without a delivery (dead letters): healthy.
        assert_eq!(judge.judge(6, 0, at(130)), Verdict::Healthy);
    }
}
