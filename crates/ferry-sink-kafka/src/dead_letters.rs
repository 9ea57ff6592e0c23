//! Where the records the sink gives up on go: the dead-letter file of `ferry-dead-letter`.
//!
//! A record becomes a dead letter only here, and it is counted here: it leaves the sink's
//! in-flight set, joins `rejected` and `dead_lettered`, and its source hears `Rejected` once
//! the dead-letter file holds it durably.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ferry_core::rate_limit::WarnLimiter;
use ferry_core::{EventFinalizer, SinkMetrics};
use ferry_dead_letter::{DeadLetter, DeadLetterQueue, DeadLetterReason};
use rdkafka::message::{Headers, OwnedHeaders};

use crate::context::OwnedRecord;

/// The sink's dead-letter destination.
pub(crate) struct DeadLetters {
    queue: DeadLetterQueue,
    sink: String,
    metrics: Arc<SinkMetrics>,
    warnings: WarnLimiter,
}

impl DeadLetters {
    pub(crate) fn new(queue: DeadLetterQueue, sink: String, metrics: Arc<SinkMetrics>) -> Self {
        Self {
            queue,
            sink,
            metrics,
            warnings: WarnLimiter::new(Duration::from_secs(10)),
        }
    }

    /// The directory the letters go to.
    pub(crate) fn dir(&self) -> &Path {
        self.queue.dir()
    }

    /// Writes `record` as a dead letter (waiting while the writer is behind).
    pub(crate) async fn send(&self, record: OwnedRecord, reason: DeadLetterReason, cause: &str) {
        let OwnedRecord {
            topic,
            key,
            payload,
            headers,
            timestamp,
            handle,
        } = record;
        let letter = DeadLetter {
            time: Utc::now(),
            sink: self.sink.clone(),
            topic,
            reason,
            cause: cause.to_owned(),
            key,
            payload,
            headers: headers.as_ref().map(header_pairs).unwrap_or_default(),
            timestamp_ms: timestamp,
        };
        self.send_letter(letter, handle.finalizer).await;
    }

    /// Writes an already built letter.
    pub(crate) async fn send_letter(&self, letter: DeadLetter, finalizer: EventFinalizer) {
        if let Some(suppressed) = self.warnings.check() {
            tracing::warn!(
                sink = %self.sink,
                topic = %letter.topic,
                reason = letter.reason.as_str(),
                suppressed,
                dir = %self.queue.dir().display(),
                "record written to the dead-letter file: {}",
                letter.cause
            );
        }
        SinkMetrics::sub(&self.metrics.in_flight, 1);
        SinkMetrics::add(&self.metrics.rejected, 1);
        SinkMetrics::add(&self.metrics.dead_lettered, 1);
        self.queue.send(letter, finalizer).await;
    }

    /// Waits until every letter sent so far is durable, at most `timeout`.
    pub(crate) async fn flush(&self, timeout: Duration) -> bool {
        self.queue.flush(timeout).await
    }
}

/// Header names the dead-letter topic's records carry besides the record's own.
pub(crate) const HEADER_PREFIX: &str = "ferry.dead_letter.";

/// `record` as a record for the dead-letter topic: key and payload as they were, the record's
/// own headers followed by `ferry.dead_letter.{reason,cause,topic,sink,time}`.
pub(crate) fn to_topic(
    mut record: OwnedRecord,
    dead_letter_topic: &str,
    sink: &str,
    reason: DeadLetterReason,
    cause: &str,
) -> OwnedRecord {
    let time = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut headers = record.headers.take().unwrap_or_default();
    for (name, value) in [
        ("reason", reason.as_str()),
        ("cause", cause),
        ("topic", record.topic.as_str()),
        ("sink", sink),
        ("time", time.as_str()),
    ] {
        let key = format!("{HEADER_PREFIX}{name}");
        headers = headers.insert(rdkafka::message::Header {
            key: &key,
            value: Some(value),
        });
    }
    let original = std::mem::replace(&mut record.topic, dead_letter_topic.to_owned());
    record.headers = Some(headers);
    record.handle.letter = Some(Box::new(crate::context::LetterFacts {
        reason,
        cause: cause.to_owned(),
        topic: original,
    }));
    record
}

/// A record the dead-letter topic refused, as it was before [`to_topic`].
pub(crate) fn from_topic(mut record: OwnedRecord, original_topic: String) -> OwnedRecord {
    record.topic = original_topic;
    record.headers = record.headers.take().and_then(|headers| {
        let kept: Vec<_> = headers
            .iter()
            .filter(|h| !h.key.starts_with(HEADER_PREFIX))
            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect();
        (!kept.is_empty()).then(|| {
            kept.iter()
                .fold(OwnedHeaders::new_with_capacity(kept.len()), |h, (key, value)| {
                    h.insert(rdkafka::message::Header {
                        key,
                        value: value.as_deref(),
                    })
                })
        })
    });
    record
}

/// Headers as the dead letter keeps them.
fn header_pairs(headers: &OwnedHeaders) -> Vec<(String, Option<Vec<u8>>)> {
    headers
        .iter()
        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
        .collect()
}
