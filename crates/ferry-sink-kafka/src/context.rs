//! What librdkafka's threads tell the sink: delivery reports, errors, logs.
//!
//! Delivery reports run on the producer's polling thread, so this code only settles
//! finalizers, updates counters, and queues failed records for the sink task to send again.

use std::collections::{HashMap, VecDeque};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferry_core::rate_limit::WarnLimiter;
use ferry_core::{DeliveryStatus, EventFinalizer, SinkMetrics};
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::IntoOpaque;

/// An event's acknowledgement handle as librdkafka's delivery opaque: the handle's own
/// pointer travels through librdkafka, so producing a record allocates nothing for it.
pub(crate) struct DeliveryHandle(pub(crate) EventFinalizer);

impl IntoOpaque for DeliveryHandle {
    fn into_ptr(self) -> *mut c_void {
        self.0.into_raw().cast_mut().cast()
    }

    unsafe fn from_ptr(ptr: *mut c_void) -> Self {
        // SAFETY: librdkafka hands each opaque back exactly once (to the delivery report, or
        // with the record when `send` fails), and it was made by `into_ptr`.
        DeliveryHandle(unsafe { EventFinalizer::from_raw(ptr.cast_const().cast()) })
    }
}

/// A record whose delivery failed for a reason that may pass; the sink sends it again.
pub(crate) struct RetryRecord {
    pub(crate) topic: String,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) payload: Vec<u8>,
    pub(crate) headers: Option<OwnedHeaders>,
    pub(crate) timestamp: Option<i64>,
    pub(crate) finalizer: DeliveryHandle,
}

/// Whether a failed delivery may succeed if sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Sending it again cannot help: reject it.
    Permanent,
    /// Timeouts, purges, unreachable or restarting brokers, a topic not (yet) there: send again.
    Transient,
}

/// Classifies an error from `send` or from a delivery report.
pub(crate) fn classify(error: &KafkaError) -> Failure {
    use RDKafkaErrorCode::*;
    match error.rdkafka_error_code() {
        Some(
            MessageSizeTooLarge
            | InvalidMessageSize
            | InvalidMessage
            | InvalidRecord
            | TopicAuthorizationFailed
            | ClusterAuthorizationFailed
            | InvalidArgument,
        ) => Failure::Permanent,
        _ => Failure::Transient,
    }
}

/// State the sink task and librdkafka's threads share.
pub(crate) struct SinkShared {
    pub(crate) id: String,
    pub(crate) metrics: Arc<SinkMetrics>,
    retries: Mutex<VecDeque<RetryRecord>>,
    /// Woken when a record joins the retry queue.
    pub(crate) retry_ready: tokio::sync::Notify,
    /// Woken when a delivery report frees room in librdkafka's queue, if someone waits.
    pub(crate) room: tokio::sync::Notify,
    pub(crate) waiting_for_room: AtomicBool,
    /// The in-flight count at which a waiting sink is woken (see `KafkaSink::wait_for_room`).
    pub(crate) resume_below: AtomicU64,
    /// The last error librdkafka reported, to explain failed health checks.
    last_error: Mutex<Option<String>>,
    error_warnings: WarnLimiter,
    rejection_warnings: WarnLimiter,
    retry_warnings: WarnLimiter,
    unknown_topic_warned: Mutex<HashMap<String, Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks stays consistent even if a holder panicked mid-way.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SinkShared {
    pub(crate) fn new(id: String, metrics: Arc<SinkMetrics>) -> Arc<Self> {
        Arc::new(Self {
            id,
            metrics,
            retries: Mutex::new(VecDeque::new()),
            retry_ready: tokio::sync::Notify::new(),
            room: tokio::sync::Notify::new(),
            waiting_for_room: AtomicBool::new(false),
            resume_below: AtomicU64::new(0),
            last_error: Mutex::new(None),
            error_warnings: WarnLimiter::new(Duration::from_secs(30)),
            rejection_warnings: WarnLimiter::default(),
            retry_warnings: WarnLimiter::new(Duration::from_secs(30)),
            unknown_topic_warned: Mutex::new(HashMap::new()),
        })
    }

    /// Takes every record waiting to be sent again, oldest first.
    pub(crate) fn take_retries(&self) -> VecDeque<RetryRecord> {
        std::mem::take(&mut *lock(&self.retries))
    }

    /// Puts records that could not be sent yet back at the front of the retry queue.
    pub(crate) fn return_retries(&self, mut records: VecDeque<RetryRecord>) {
        let mut queue = lock(&self.retries);
        records.append(&mut queue);
        *queue = records;
    }

    pub(crate) fn has_retries(&self) -> bool {
        !lock(&self.retries).is_empty()
    }

    pub(crate) fn take_last_error(&self) -> Option<String> {
        lock(&self.last_error).take()
    }

    pub(crate) fn clear_last_error(&self) {
        lock(&self.last_error).take();
    }

    /// Settles a record that can never be delivered.
    pub(crate) fn reject(&self, finalizer: &mut EventFinalizer, topic: &str, cause: &dyn std::fmt::Display) {
        finalizer.settle(DeliveryStatus::Rejected);
        SinkMetrics::add(&self.metrics.rejected, 1);
        if let Some(suppressed) = self.rejection_warnings.check() {
            tracing::warn!(sink = %self.id, topic, suppressed, "event rejected: {cause}");
        }
    }

    /// Queues a record to be sent again.
    pub(crate) fn retry(&self, record: RetryRecord, cause: &KafkaError) {
        SinkMetrics::add(&self.metrics.retried, 1);
        let unknown_topic = matches!(
            cause.rdkafka_error_code(),
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic)
        );
        if unknown_topic {
            let mut warned = lock(&self.unknown_topic_warned);
            let due = warned
                .get(&record.topic)
                .is_none_or(|last| last.elapsed() >= Duration::from_secs(60));
            if due {
                warned.insert(record.topic.clone(), Instant::now());
                tracing::warn!(sink = %self.id, topic = %record.topic, "topic does not exist; its events wait and are retried (ferry never creates topics)");
            }
        } else if let Some(suppressed) = self.retry_warnings.check() {
            tracing::warn!(sink = %self.id, topic = %record.topic, suppressed, "delivery failed, will send again: {cause}");
        }
        lock(&self.retries).push_back(record);
        self.retry_ready.notify_one();
    }

    fn record_error(&self, error: &KafkaError, reason: &str) {
        *lock(&self.last_error) = Some(reason.to_owned());
        // AllBrokersDown also fires on idle disconnects; alone it is not worth a warning.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            tracing::debug!(sink = %self.id, "{reason}");
            return;
        }
        if let Some(suppressed) = self.error_warnings.check() {
            tracing::warn!(sink = %self.id, suppressed, "kafka: {reason}");
        }
    }

    fn room_freed(&self) {
        if self.waiting_for_room.load(Ordering::Acquire)
            && self.metrics.in_flight.load(Ordering::Acquire) <= self.resume_below.load(Ordering::Acquire)
        {
            self.room.notify_one();
        }
    }
}

/// The librdkafka context of the sink's producer.
pub(crate) struct FerryContext {
    shared: Arc<SinkShared>,
}

impl FerryContext {
    pub(crate) fn new(shared: Arc<SinkShared>) -> Self {
        Self { shared }
    }
}

impl ClientContext for FerryContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // Failures also reach `error` below, which users see; the log stream is detail.
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::debug!(sink = %self.shared.id, facility, "librdkafka: {message}")
            }
            _ => tracing::trace!(sink = %self.shared.id, facility, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.shared.record_error(&error, reason);
    }
}

impl ProducerContext for FerryContext {
    type DeliveryOpaque = DeliveryHandle;

    fn delivery(&self, result: &DeliveryResult<'_>, mut finalizer: Self::DeliveryOpaque) {
        let shared = &self.shared;
        match result {
            Ok(_) => {
                finalizer.0.settle(DeliveryStatus::Delivered);
                SinkMetrics::add(&shared.metrics.delivered, 1);
                SinkMetrics::sub(&shared.metrics.in_flight, 1);
            }
            Err((error, message)) => match classify(error) {
                Failure::Permanent => {
                    SinkMetrics::sub(&shared.metrics.in_flight, 1);
                    shared.reject(&mut finalizer.0, message.topic(), error);
                }
                Failure::Transient => {
                    // Still ours to deliver: it stays counted in flight until it is.
                    let record = RetryRecord {
                        topic: message.topic().to_owned(),
                        key: message.key().map(<[u8]>::to_vec),
                        payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                        headers: message.headers().map(|h| h.detach()),
                        timestamp: message.timestamp().to_millis(),
                        finalizer,
                    };
                    shared.retry(record, error);
                }
            },
        }
        shared.room_freed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_and_transient_failures() {
        let produce = |code| KafkaError::MessageProduction(code);
        assert_eq!(
            classify(&produce(RDKafkaErrorCode::MessageSizeTooLarge)),
            Failure::Permanent
        );
        assert_eq!(
            classify(&produce(RDKafkaErrorCode::TopicAuthorizationFailed)),
            Failure::Permanent
        );
        assert_eq!(
            classify(&produce(RDKafkaErrorCode::MessageTimedOut)),
            Failure::Transient
        );
        assert_eq!(
            classify(&produce(RDKafkaErrorCode::PurgeQueue)),
            Failure::Transient
        );
        assert_eq!(
            classify(&produce(RDKafkaErrorCode::UnknownTopicOrPartition)),
            Failure::Transient
        );
    }
}
