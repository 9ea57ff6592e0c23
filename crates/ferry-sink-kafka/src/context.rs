//! What librdkafka's threads tell the sink: delivery reports, errors, logs.
//!
//! Delivery reports run on the producer's polling thread, so this code only settles
//! delivered records, updates counters, and hands failed records to the sink task. It never
//! classifies beyond that, never touches the disk and never waits: what a failure means is
//! decided on the sink task ([`crate::failure`]).

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ferry_core::rate_limit::WarnLimiter;
use ferry_core::{DeliveryStatus, EventFinalizer, SinkMetrics};
use rdkafka::client::OAuthToken;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::IntoOpaque;
use rdkafka::{ClientContext, Statistics};

use crate::stats::KafkaStats;
use crate::token::TokenSource;

/// An event's acknowledgement handle as librdkafka's delivery opaque, with what the sink
/// remembers about earlier attempts.
///
/// A first attempt travels as the finalizer's own pointer, so producing a record allocates
/// nothing for it. A record sent again carries its attempt count and whether it must go
/// alone; that travels boxed, marked by the pointer's lowest bit (both the finalizer's
/// `Arc` and the box are aligned to at least 8 bytes, so that bit is free).
pub(crate) struct DeliveryHandle {
    pub(crate) finalizer: EventFinalizer,
    /// Failed deliveries of this record so far.
    pub(crate) attempts: u32,
    /// Send it in a batch of its own (the broker refused a batch it was in as too large).
    pub(crate) alone: bool,
    /// Set when the record is a dead letter on its way to the dead-letter topic: its report
    /// settles it `Rejected`, and if the topic refuses it, it goes to the dead-letter file.
    pub(crate) letter: Option<Box<LetterFacts>>,
    /// The retry round it was sent in: its report takes it back (after handing back a
    /// failure), so the topic's next round waits for this one (see `retry.rs`).
    pub(crate) round: Option<Arc<AtomicUsize>>,
}

/// What a dead letter on its way to the dead-letter topic came from.
pub(crate) struct LetterFacts {
    pub(crate) reason: ferry_dead_letter::DeadLetterReason,
    pub(crate) cause: String,
    /// The topic the record was meant for.
    pub(crate) topic: String,
}

impl DeliveryHandle {
    /// The handle of a first attempt.
    pub(crate) fn new(finalizer: EventFinalizer) -> Self {
        Self {
            finalizer,
            attempts: 0,
            alone: false,
            letter: None,
            round: None,
        }
    }
}

const BOXED: usize = 1;

impl IntoOpaque for DeliveryHandle {
    fn into_ptr(self) -> *mut c_void {
        if self.attempts == 0 && !self.alone && self.letter.is_none() && self.round.is_none() {
            return self.finalizer.into_raw().cast_mut().cast();
        }
        let boxed = Box::into_raw(Box::new(self));
        boxed.map_addr(|a| a | BOXED).cast()
    }

    unsafe fn from_ptr(ptr: *mut c_void) -> Self {
        if ptr.addr() & BOXED == BOXED {
            let boxed = ptr.map_addr(|a| a & !BOXED).cast::<DeliveryHandle>();
            // SAFETY: a marked pointer is a `Box<DeliveryHandle>` made by `into_ptr`, and
            // librdkafka hands each opaque back exactly once.
            return *unsafe { Box::from_raw(boxed) };
        }
        // SAFETY: an unmarked pointer is an `EventFinalizer::into_raw` made by `into_ptr`,
        // handed back exactly once (to the delivery report, or with a refused record).
        DeliveryHandle::new(unsafe { EventFinalizer::from_raw(ptr.cast_const().cast()) })
    }
}

/// A record whose delivery failed, as the delivery report returned it.
pub(crate) struct FailedDelivery {
    pub(crate) record: OwnedRecord,
    pub(crate) error: KafkaError,
}

/// A record the sink holds itself (to send again, or to write as a dead letter).
pub(crate) struct OwnedRecord {
    pub(crate) topic: String,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) payload: Vec<u8>,
    pub(crate) headers: Option<OwnedHeaders>,
    pub(crate) timestamp: Option<i64>,
    pub(crate) handle: DeliveryHandle,
}

impl OwnedRecord {
    /// The memory it holds, for the retry queue's byte bound.
    pub(crate) fn bytes(&self) -> usize {
        self.topic.len() + self.key.as_ref().map_or(0, Vec::len) + self.payload.len() + 64
    }
}

/// State the sink task and librdkafka's threads share.
pub(crate) struct SinkShared {
    pub(crate) id: String,
    pub(crate) metrics: Arc<SinkMetrics>,
    /// Failed deliveries waiting for the sink task, and how many (read without the lock).
    failures: Mutex<Vec<FailedDelivery>>,
    failures_len: AtomicUsize,
    /// Woken when a failed delivery is waiting, or the producer needs attention.
    pub(crate) attention: tokio::sync::Notify,
    /// Woken when a delivery report frees room in librdkafka's queue, if someone waits.
    pub(crate) room: tokio::sync::Notify,
    pub(crate) waiting_for_room: AtomicBool,
    /// The queued count at which a waiting sink is woken (see `KafkaSink::wait_for_room`).
    pub(crate) resume_below: AtomicU64,
    /// Records handed to librdkafka (any producer of this sink) and not yet reported. Counted
    /// before `produce` (a report may come before `produce` returns) and taken back if
    /// librdkafka refuses the record, so it never goes below zero.
    pub(crate) queued: AtomicU64,
    /// Delivery reports of any kind so far: the sink sees a stalled producer by this count
    /// not moving (a counter costs less per record than reading the clock).
    reports: AtomicU64,
    /// The reason of a fatal producer error, until the sink rebuilt the producer.
    fatal: Mutex<Option<String>>,
    fatal_flag: AtomicBool,
    /// Producers built to replace one that failed.
    pub(crate) rebuilds: AtomicU64,
    /// The last error librdkafka reported, to explain failed health checks.
    last_error: Mutex<Option<String>>,
    error_warnings: WarnLimiter,
    /// Makes the OAUTHBEARER tokens when the sink makes them (`sasl.token_file`, MSK IAM).
    pub(crate) token: Option<Arc<TokenSource>>,
    /// librdkafka's statistics and the per-topic counters (`/metrics` reads them too).
    pub(crate) stats: Arc<KafkaStats>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks stays consistent even if a holder panicked mid-way.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SinkShared {
    pub(crate) fn new(id: String, metrics: Arc<SinkMetrics>, token: Option<Arc<TokenSource>>) -> Arc<Self> {
        Arc::new(Self {
            id,
            metrics,
            failures: Mutex::new(Vec::new()),
            failures_len: AtomicUsize::new(0),
            attention: tokio::sync::Notify::new(),
            room: tokio::sync::Notify::new(),
            waiting_for_room: AtomicBool::new(false),
            resume_below: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            reports: AtomicU64::new(0),
            fatal: Mutex::new(None),
            fatal_flag: AtomicBool::new(false),
            rebuilds: AtomicU64::new(0),
            last_error: Mutex::new(None),
            error_warnings: WarnLimiter::new(Duration::from_secs(30)),
            token,
            stats: Arc::default(),
        })
    }

    /// Whether failed deliveries wait for the sink task (no lock taken).
    pub(crate) fn has_failures(&self) -> bool {
        self.failures_len.load(Ordering::Acquire) > 0
    }

    /// Takes every failed delivery reported so far, in report order.
    pub(crate) fn take_failures(&self) -> Vec<FailedDelivery> {
        let mut failures = lock(&self.failures);
        self.failures_len.store(0, Ordering::Release);
        std::mem::take(&mut *failures)
    }

    /// The cause of a fatal producer error, taken once.
    pub(crate) fn take_fatal(&self) -> Option<String> {
        // A load first: this is asked once per batch, and a swap would write every time.
        if !self.fatal_flag.load(Ordering::Acquire) || !self.fatal_flag.swap(false, Ordering::AcqRel) {
            return None;
        }
        lock(&self.fatal).take()
    }

    /// Delivery reports so far.
    pub(crate) fn reports(&self) -> u64 {
        self.reports.load(Ordering::Relaxed)
    }

    /// Counts a record about to be handed to librdkafka.
    pub(crate) fn queue_one(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes back the count of a record librdkafka refused.
    pub(crate) fn unqueue_one(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn take_last_error(&self) -> Option<String> {
        lock(&self.last_error).take()
    }

    /// The last error librdkafka reported, left in place.
    pub(crate) fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    pub(crate) fn clear_last_error(&self) {
        lock(&self.last_error).take();
    }

    fn record_error(&self, error: &KafkaError, reason: &str) {
        *lock(&self.last_error) = Some(reason.to_owned());
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            *lock(&self.fatal) = Some(reason.to_owned());
            self.fatal_flag.store(true, Ordering::Release);
            self.attention.notify_one();
            return;
        }
        // AllBrokersDown also fires on idle disconnects; alone it is not worth a warning.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            tracing::debug!(sink = %self.id, "{reason}");
            return;
        }
        if let Some(suppressed) = self.error_warnings.check() {
            tracing::warn!(sink = %self.id, suppressed, "kafka: {reason}");
        }
    }

    /// Called for every delivery report: one record left librdkafka's queue.
    fn reported(&self) {
        // Every report follows a `queue_one`, so this never goes below zero.
        let queued = self.queued.fetch_sub(1, Ordering::AcqRel) - 1;
        self.reports.fetch_add(1, Ordering::Relaxed);
        if self.waiting_for_room.load(Ordering::Acquire)
            && queued <= self.resume_below.load(Ordering::Acquire)
        {
            self.room.notify_one();
        }
    }

    fn failed(&self, failure: FailedDelivery) {
        let mut failures = lock(&self.failures);
        failures.push(failure);
        self.failures_len.store(failures.len(), Ordering::Release);
        drop(failures);
        self.attention.notify_one();
    }
}

/// The librdkafka context of the sink's producers.
pub(crate) struct FerryContext {
    shared: Arc<SinkShared>,
}

impl FerryContext {
    pub(crate) fn new(shared: Arc<SinkShared>) -> Self {
        Self { shared }
    }
}

impl ClientContext for FerryContext {
    // Only asked when the mechanism is OAUTHBEARER and librdkafka's own OIDC client is not
    // in use; see `generate_oauth_token`.
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

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

    fn stats(&self, statistics: Statistics) {
        self.shared.stats.update(&statistics);
    }

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        // An error goes back to librdkafka, which reports it through `error` above (warned
        // at a rate limit) and asks again 10 s later: no retry loop here.
        match &self.shared.token {
            Some(source) => Ok(source.token()?),
            None => Err("sasl.mechanism OAUTHBEARER set through librdkafka_options needs \
                         sasl.token_file or sasl.token_endpoint_url"
                .into()),
        }
    }
}

impl ProducerContext for FerryContext {
    type DeliveryOpaque = DeliveryHandle;

    fn delivery(&self, result: &DeliveryResult<'_>, mut handle: Self::DeliveryOpaque) {
        let shared = &self.shared;
        // Released only after a failure was handed back: the sink must see it before it
        // starts the topic's next round.
        let round = handle.round.take();
        match result {
            Ok(message) if handle.letter.is_none() => {
                handle.finalizer.settle(DeliveryStatus::Delivered);
                let metrics = &shared.metrics;
                SinkMetrics::add(&metrics.delivered, 1);
                SinkMetrics::sub(&metrics.in_flight, 1);
                SinkMetrics::add(&metrics.sent_bytes, message.payload_len() as u64);
                // librdkafka's own measure, from `produce` to this report: a field read, no
                // clock read. -1 (unknown) counts as 0 so that every delivery is observed.
                // SAFETY: the message is valid for the duration of this callback.
                let micros = unsafe { rdkafka::bindings::rd_kafka_message_latency(message.ptr()) };
                metrics.latency.observe_us(u64::try_from(micros).unwrap_or(0));
                shared.stats.topics.delivered(message.topic());
            }
            Ok(_) => {
                // A dead letter stored in the dead-letter topic: its source hears `Rejected`.
                handle.finalizer.settle(DeliveryStatus::Rejected);
                SinkMetrics::add(&shared.metrics.rejected, 1);
                SinkMetrics::add(&shared.metrics.dead_lettered, 1);
                SinkMetrics::sub(&shared.metrics.in_flight, 1);
            }
            Err((error, message)) => {
                shared.stats.topics.failed(message.topic());
                // Still the sink's to deliver: it stays counted in flight until settled.
                handle.attempts = handle.attempts.saturating_add(1);
                let record = OwnedRecord {
                    topic: message.topic().to_owned(),
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    headers: message.headers().map(|h| h.detach()),
                    timestamp: message.timestamp().to_millis(),
                    handle,
                };
                shared.failed(FailedDelivery {
                    record,
                    error: error.clone(),
                });
            }
        }
        // The round's last report wakes the sink to start the topic's next one.
        if round.is_some_and(|round| round.fetch_sub(1, Ordering::AcqRel) == 1) {
            shared.attention.notify_one();
        }
        shared.reported();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::BatchNotifier;

    #[test]
    fn handles_travel_through_the_opaque_with_their_attempts() {
        let (notifier, _rx) = BatchNotifier::new_with_receiver();
        let first = DeliveryHandle::new(EventFinalizer::new(notifier.clone()));
        let ptr = first.into_ptr();
        assert_eq!(ptr.addr() & BOXED, 0, "a first attempt is the finalizer itself");
        // SAFETY: made by `into_ptr` just above, taken back once.
        let back = unsafe { DeliveryHandle::from_ptr(ptr) };
        assert_eq!((back.attempts, back.alone), (0, false));
        assert!(back.finalizer.is_tracked());

        let retried = DeliveryHandle {
            finalizer: EventFinalizer::new(notifier),
            attempts: 3,
            alone: true,
            letter: None,
            round: None,
        };
        let ptr = retried.into_ptr();
        assert_eq!(ptr.addr() & BOXED, BOXED);
        // SAFETY: as above.
        let back = unsafe { DeliveryHandle::from_ptr(ptr) };
        assert_eq!((back.attempts, back.alone), (3, true));
        assert!(back.finalizer.is_tracked());

        let untracked = DeliveryHandle::new(EventFinalizer::default()).into_ptr();
        assert!(untracked.is_null());
        // SAFETY: as above.
        assert!(
            !unsafe { DeliveryHandle::from_ptr(untracked) }
                .finalizer
                .is_tracked()
        );
    }
}
