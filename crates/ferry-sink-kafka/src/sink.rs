//! The running sink: reads batches from its buffer and produces them, routes every failure
//! by its class ([`crate::failure`]), rebuilds a dead producer, and at the end waits until
//! everything is confirmed or, at the shutdown deadline, written to dead letters.
//!
//! The one wait that holds up every record is librdkafka's full queue, which is the
//! backpressure the sink is meant to pass on. Everything else that fails leaves the fast path
//! at once: into the per-topic [`RetryQueue`], or to the dead-letter file.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_core::rate_limit::WarnLimiter;
use ferry_core::{BoxError, EventStream, LogEvent, SinkErrorKind, SinkHealth, SinkMetrics, SinkRunner};
use ferry_dead_letter::{DeadLetterConfig, DeadLetterQueue, DeadLetterReason};
use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt as _};
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, Producer as _, PurgeConfig};
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

use crate::client::Producer;
use crate::context::{DeliveryHandle, OwnedRecord, SinkShared};
use crate::dead_letters::DeadLetters;
use crate::failure::{FailureClass, UNRECOGNISED_ATTEMPTS, classify, error_kind};
use crate::record::{RecordBuilder, RecordParts};
use crate::retry::{RetryQueue, RoundEnd};
use crate::topic::{NotQueued, OutgoingRecord, TopicProducer};

/// How long to wait for librdkafka's queue to free room before looking again anyway.
const ROOM_WAIT: Duration = Duration::from_millis(50);
/// How long the end of a run waits for the last delivery reports before looking again anyway.
const LAST_DELIVERY_WAIT: Duration = Duration::from_millis(100);
/// How often the sink looks after its producer and its missing topics while nothing else
/// wakes it.
const TICK: Duration = Duration::from_secs(1);
/// The least time between two producer rebuilds, so a producer that dies at birth does not
/// turn into a busy loop; it doubles with each rebuild up to `MAX_REBUILD_INTERVAL`, and
/// starts over once a producer has lasted `REBUILD_FORGOTTEN`.
const MIN_REBUILD_INTERVAL: Duration = Duration::from_secs(5);
const MAX_REBUILD_INTERVAL: Duration = Duration::from_secs(300);
const REBUILD_FORGOTTEN: Duration = Duration::from_secs(600);
/// How long, at the shutdown deadline, purged records may take to come back from librdkafka.
const PURGE_WAIT: Duration = Duration::from_secs(2);
/// How long, at the shutdown deadline, the dead-letter file may take to become durable.
const DEAD_LETTER_FLUSH: Duration = Duration::from_secs(5);

/// The sink's settings that shape its failure handling.
pub(crate) struct Resilience {
    pub(crate) unknown_topic_grace: Duration,
    pub(crate) retry_max_events: usize,
    pub(crate) retry_max_bytes: usize,
    pub(crate) stall_timeout: Duration,
    pub(crate) dead_letter: DeadLetterConfig,
}

pub(crate) struct KafkaSink {
    pub(crate) id: String,
    pub(crate) topics: TopicProducer,
    /// The producer configuration, to build a new producer after a fatal error.
    pub(crate) client_config: ClientConfig,
    pub(crate) shared: Arc<SinkShared>,
    pub(crate) records: RecordBuilder,
    pub(crate) metrics: Arc<SinkMetrics>,
    pub(crate) health: Arc<SinkHealth>,
    pub(crate) resilience: Resilience,
    pub(crate) data_dir: std::path::PathBuf,
    pub(crate) deadline: CancellationToken,
    pub(crate) durable_buffer: bool,
}

impl SinkRunner for KafkaSink {
    fn run(self: Box<Self>, input: EventStream) -> BoxFuture<'static, Result<(), BoxError>> {
        Box::pin(async move {
            let dir = self.resilience.dead_letter.dir(&self.data_dir, &self.id);
            let queue = DeadLetterQueue::open(&dir, &self.id, self.resilience.dead_letter.max_file_bytes)
                .map_err(|e| Box::new(e) as BoxError)?;
            let dead_letters = DeadLetters::new(queue, self.id.clone(), self.metrics.clone());
            let retries = RetryQueue::new(self.resilience.retry_max_events, self.resilience.retry_max_bytes);
            // A task of its own, since the sink's loop can wait a long time on a full queue;
            // it ends when this guard is dropped, however the run ends.
            let _health =
                crate::health::watch(self.shared.clone(), self.metrics.clone(), self.health.clone());
            let running = RunningSink {
                sink: *self,
                retries,
                dead_letters,
                alone: None,
                last_rebuild: None,
                rebuild_interval: MIN_REBUILD_INTERVAL,
                last_reports: (0, Instant::now()),
                retry_warnings: WarnLimiter::new(Duration::from_secs(30)),
            };
            running.run(input).await
        })
    }
}

/// The sink with what it builds up while it runs.
struct RunningSink {
    sink: KafkaSink,
    retries: RetryQueue,
    dead_letters: DeadLetters,
    /// A producer that sends every record in a batch of its own, made on first need.
    alone: Option<Producer>,
    last_rebuild: Option<Instant>,
    /// The least time before the next rebuild (see `MIN_REBUILD_INTERVAL`).
    rebuild_interval: Duration,
    /// The delivery-report count when it last changed, and when (to see a stalled producer).
    last_reports: (u64, Instant),
    retry_warnings: WarnLimiter,
}

impl RunningSink {
    async fn run(mut self, mut input: EventStream) -> Result<(), BoxError> {
        let mut buf = Vec::with_capacity(4096);
        let mut input_open = true;
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deadline = self.sink.deadline.clone();
        let shared = self.sink.shared.clone();
        loop {
            self.look_after().await;
            if !input_open && self.everything_settled() {
                break;
            }
            let next_due = self.retries.next_due().map(tokio::time::Instant::from_std);
            let read = input_open && !self.retries.is_full();
            if !input_open {
                // Woken by the delivery report that settles the last record.
                self.wake_at_queued(0);
            }
            tokio::select! {
                biased;
                () = deadline.cancelled() => {
                    self.at_deadline(&mut input).await;
                    break;
                }
                () = shared.attention.notified() => {}
                () = tokio::time::sleep_until(next_due.unwrap_or_else(tokio::time::Instant::now)), if next_due.is_some() => {}
                _ = ticker.tick() => {}
                () = shared.room.notified(), if !input_open => {}
                () = tokio::time::sleep(LAST_DELIVERY_WAIT), if !input_open => {}
                batch = input.next(), if read => match batch {
                    Some(batch) => self.produce_batch(batch, &mut buf).await,
                    None => {
                        input_open = false;
                        tracing::debug!(sink = %self.sink.id, "input ended; waiting for the last deliveries");
                    }
                },
            }
            shared.waiting_for_room.store(false, Ordering::Release);
        }
        let flushed = self.dead_letters.flush(DEAD_LETTER_FLUSH).await;
        if !flushed {
            tracing::error!(sink = %self.sink.id, dir = %self.dead_letters.dir().display(), "dead letters were not all written within {} s", DEAD_LETTER_FLUSH.as_secs());
        }
        let rebuilds = self.sink.shared.rebuilds.load(Ordering::Relaxed);
        if rebuilds > 0 {
            tracing::info!(sink = %self.sink.id, rebuilds, "the producer was rebuilt during this run");
        }
        self.close();
        Ok(())
    }

    /// Whether every record the sink took has been settled.
    fn everything_settled(&self) -> bool {
        self.sink.shared.queued.load(Ordering::Acquire) == 0
            && self.retries.is_empty()
            && !self.sink.shared.has_failures()
    }

    /// Everything that is not a new batch: failed deliveries, a dead producer, topics past
    /// their grace, and the records due to be sent again.
    async fn look_after(&mut self) {
        if self.sink.shared.has_failures() {
            self.route_pending_failures().await;
        }
        // The error event of a fatal error carries the underlying code, not `Fatal`: ask the
        // client itself (an atomic read while it is healthy).
        let fatal = self.sink.shared.take_fatal().or_else(|| {
            self.sink
                .topics
                .producer()
                .client()
                .fatal_error()
                .map(|(code, reason)| format!("{reason} ({code})"))
        });
        if let Some(cause) = fatal {
            self.rebuild(&format!("fatal error: {cause}"));
        }
        self.check_stall();
        self.check_missing_topics().await;
        if !self.retries.is_idle() {
            self.resend_due().await;
        }
    }

    async fn produce_batch(&mut self, batch: Vec<LogEvent>, buf: &mut Vec<u8>) {
        self.sink.topics.next_batch();
        let room = RoomWait {
            deadline: self.sink.deadline.clone(),
            stall_timeout: self.sink.resilience.stall_timeout,
        };
        let mut events = batch.into_iter();
        while let Some(mut event) = events.next() {
            // Failures reported meanwhile are queued first, so that their topics' new records
            // go behind them (an atomic load per record while all is well).
            if self.sink.shared.has_failures() {
                self.route_pending_failures().await;
            }
            // Counted before `send`: the delivery report may arrive before `send` returns.
            // A record stays counted until it is delivered or written as a dead letter.
            SinkMetrics::add(&self.sink.metrics.in_flight, 1);
            let handle = DeliveryHandle::new(event.take_finalizer());
            let mut parts = match self.sink.records.build(&event, buf) {
                Ok(parts) => parts,
                Err(e) => {
                    self.sink.metrics.add_errors(SinkErrorKind::Template, 1);
                    let record = self.unbuilt(&event, handle);
                    self.dead_letter(record, DeadLetterReason::Template, &e.to_string())
                        .await;
                    continue;
                }
            };
            let headers = parts.headers.take();
            // A topic with records waiting to be sent again takes new ones behind them, so
            // newer records of a topic do not overtake the ones being sent again.
            if self.retries.holds(&parts.topic) {
                let record = owned(&parts, headers, handle);
                self.retries.push_waiting(record, Instant::now());
                continue;
            }
            match send_waiting_for_room(
                &mut self.sink.topics,
                &self.sink.shared,
                &parts,
                headers,
                handle,
                &room,
            )
            .await
            {
                Sent::Queued => {}
                Sent::Refused(NotQueued {
                    error,
                    finalizer,
                    headers,
                }) => {
                    let record = owned(&parts, headers, finalizer);
                    self.route_failure(record, &error, true).await;
                }
                Sent::FailuresFirst(NotQueued {
                    finalizer, headers, ..
                }) => {
                    // Records failed while this one waited for room: it goes behind them.
                    let record = owned(&parts, headers, finalizer);
                    self.retries.push_waiting(record, Instant::now());
                }
                Sent::GaveUp(NotQueued {
                    finalizer, headers, ..
                }) => {
                    // The deadline passed, or the producer went quiet with its queue full:
                    // this record and the rest of the batch wait in the retry queue while the
                    // loop sees to the deadline or rebuilds the producer.
                    let record = owned(&parts, headers, finalizer);
                    self.retries.push_waiting(record, Instant::now());
                    self.park(events, buf).await;
                    return;
                }
            }
        }
    }

    /// Gives every failure reported so far its treatment, in report order.
    async fn route_pending_failures(&mut self) {
        for failure in self.sink.shared.take_failures() {
            self.route_failure(failure.record, &failure.error, false).await;
        }
    }

    /// Puts `events` in the retry queue unsent (their topics' order kept).
    async fn park(&mut self, events: impl Iterator<Item = LogEvent>, buf: &mut Vec<u8>) {
        for mut event in events {
            SinkMetrics::add(&self.sink.metrics.in_flight, 1);
            let handle = DeliveryHandle::new(event.take_finalizer());
            match self.sink.records.build(&event, buf) {
                Ok(mut parts) => {
                    let headers = parts.headers.take();
                    let record = owned(&parts, headers, handle);
                    self.retries.push_waiting(record, Instant::now());
                }
                Err(e) => {
                    self.sink.metrics.add_errors(SinkErrorKind::Template, 1);
                    let record = self.unbuilt(&event, handle);
                    self.dead_letter(record, DeadLetterReason::Template, &e.to_string())
                        .await;
                }
            }
        }
    }

    /// The record a dead letter keeps of an event whose record could not be built.
    fn unbuilt(&self, event: &LogEvent, handle: DeliveryHandle) -> OwnedRecord {
        let parts = self.sink.records.unbuilt(event);
        OwnedRecord {
            topic: parts.topic,
            key: parts.key,
            payload: parts.payload,
            headers: None,
            timestamp: parts.timestamp,
            handle,
        }
    }

    /// Writes `record` as a dead letter: to the dead-letter topic when one is configured (the
    /// file if the topic refuses it), else to the file.
    async fn dead_letter(&mut self, record: OwnedRecord, reason: DeadLetterReason, cause: &str) {
        let Some(topic) = self.sink.resilience.dead_letter.topic.clone() else {
            self.dead_letters.send(record, reason, cause).await;
            return;
        };
        let letter = crate::dead_letters::to_topic(record, &topic, &self.sink.id, reason, cause);
        if let Err(refused) = self.send_owned(letter) {
            let (record, error) = *refused;
            self.letter_refused(record, &error).await;
        }
    }

    /// A dead letter the dead-letter topic refused goes to the file, as it was.
    async fn letter_refused(&mut self, mut record: OwnedRecord, error: &KafkaError) {
        let Some(facts) = record.handle.letter.take() else {
            return;
        };
        let record = crate::dead_letters::from_topic(record, facts.topic);
        let cause = format!("{} (the dead-letter topic refused it too: {error})", facts.cause);
        self.dead_letters.send(record, facts.reason, &cause).await;
    }

    /// Gives a failed record the treatment its failure class calls for.
    async fn route_failure(&mut self, mut record: OwnedRecord, error: &KafkaError, at_enqueue: bool) {
        let class = classify(error, at_enqueue);
        self.sink.metrics.add_errors(error_kind(class), 1);
        if record.handle.letter.is_some() {
            self.letter_refused(record, error).await;
            return;
        }
        if at_enqueue {
            record.handle.attempts = record.handle.attempts.saturating_add(1);
        }
        let now = Instant::now();
        match class {
            FailureClass::Transient | FailureClass::Fatal => {
                if matches!(
                    error.rdkafka_error_code(),
                    Some(RDKafkaErrorCode::NotLeaderForPartition | RDKafkaErrorCode::LeaderNotAvailable)
                ) {
                    self.sink.topics.metadata().refresh_soon(&record.topic);
                }
                if let Some(suppressed) = self.retry_warnings.check() {
                    tracing::warn!(sink = %self.sink.id, topic = %record.topic, suppressed, "delivery failed, will send again: {error}");
                }
                self.retry(record, now, at_enqueue);
            }
            FailureClass::Unrecognised if record.handle.attempts < UNRECOGNISED_ATTEMPTS => {
                if let Some(suppressed) = self.retry_warnings.check() {
                    tracing::warn!(sink = %self.sink.id, topic = %record.topic, suppressed, attempts = record.handle.attempts, "delivery failed with an unexpected error, will send again a few times: {error}");
                }
                self.retry(record, now, at_enqueue);
            }
            FailureClass::Unrecognised => {
                let cause = format!("{error} (after {} attempts)", record.handle.attempts);
                self.dead_letter(record, DeadLetterReason::RetriesExhausted, &cause)
                    .await;
            }
            FailureClass::MissingTopic => {
                if self.sink.topics.metadata().layout(&record.topic).is_some() {
                    // The cluster shows the topic: a passing hiccup (a topic being created or
                    // moved), not a missing topic.
                    self.sink.topics.metadata().refresh_soon(&record.topic);
                    self.retry(record, now, at_enqueue);
                    return;
                }
                let since = self.retries.mark_missing(&record.topic, now);
                self.sink.topics.metadata().refresh_soon(&record.topic);
                if now.duration_since(since) >= self.sink.resilience.unknown_topic_grace {
                    let cause = self.missing_cause(since, now);
                    self.dead_letter(record, DeadLetterReason::UnknownTopic, &cause)
                        .await;
                    return;
                }
                if self.retries.warn_missing_due(&record.topic, now) {
                    tracing::warn!(sink = %self.sink.id, topic = %record.topic, grace_s = self.sink.resilience.unknown_topic_grace.as_secs_f64(), "topic does not exist; its records wait (other topics flow on) and become dead letters if it is still missing after the grace (ferry never creates topics)");
                }
                self.retry(record, now, at_enqueue);
            }
            FailureClass::Permanent(reason) => {
                self.dead_letter(record, reason, &error.to_string()).await;
            }
            FailureClass::BatchTooLarge if !record.handle.alone => {
                // The broker refused a batch; the record may be fine alone.
                record.handle.alone = true;
                tracing::debug!(sink = %self.sink.id, topic = %record.topic, "the broker refused a batch as too large; its records are sent again one by one");
                self.retry(record, now, at_enqueue);
            }
            FailureClass::BatchTooLarge => {
                let cause = format!("{error} (refused even in a batch of its own)");
                self.dead_letter(record, DeadLetterReason::TooLarge, &cause).await;
            }
        }
    }

    /// Queues a record to be sent again. One refused at enqueue was never sent, so it goes
    /// behind the topic's records whose deliveries failed (those were sent before it).
    fn retry(&mut self, record: OwnedRecord, now: Instant, at_enqueue: bool) {
        SinkMetrics::add(&self.sink.metrics.retried, 1);
        if at_enqueue {
            self.retries.push_waiting(record, now);
        } else {
            self.retries.push(record, now);
        }
    }

    fn missing_cause(&self, since: Instant, now: Instant) -> String {
        format!(
            "the topic did not exist for {:.0} s (unknown_topic_grace_ms = {})",
            now.duration_since(since).as_secs_f64(),
            self.sink.resilience.unknown_topic_grace.as_millis()
        )
    }

    /// Topics that came back are sent to again; those past their grace go to dead letters.
    async fn check_missing_topics(&mut self) {
        let now = Instant::now();
        for topic in self.retries.missing_topics() {
            if self.sink.topics.metadata().layout(&topic).is_some() {
                // The metadata shows it now: its records go at the next round.
                self.retries.clear_missing(&topic);
                self.retries.end_round(&topic, RoundEnd::Drained, now);
            }
        }
        let grace = self.sink.resilience.unknown_topic_grace;
        for topic in self.retries.missing_past(grace, now) {
            let since = self.retries.missing_since(&topic).unwrap_or(now);
            let cause = self.missing_cause(since, now);
            let records = self.retries.take_topic(&topic);
            tracing::warn!(sink = %self.sink.id, topic = %topic, records = records.len(), dir = %self.dead_letters.dir().display(), "topic still missing after its grace: its records go to the dead-letter file");
            for record in records {
                self.dead_letter(record, DeadLetterReason::UnknownTopic, &cause)
                    .await;
            }
        }
        self.retries.forget_idle(now);
    }

    /// Sends the records of every topic whose back-off has passed, oldest first.
    async fn resend_due(&mut self) {
        let now = Instant::now();
        let due = self.retries.due_topics(now);
        if !due.is_empty() {
            tracing::debug!(sink = %self.sink.id, topics = due.len(), records = self.retries.len(), "sending failed records again");
        }
        for topic in due {
            let end = loop {
                let Some(record) = self.retries.pop(&topic) else {
                    break RoundEnd::Drained;
                };
                let (mut record, error) = match self.send_owned(record) {
                    Ok(()) => continue,
                    Err(refused) => *refused,
                };
                if error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) {
                    // Everything waits for room; this topic's round goes on a little later
                    // (not at once: that would spin while the queue stays full).
                    self.retries.unpop(record, now);
                    self.retries.postpone(&topic, now + ROOM_WAIT);
                    return;
                }
                record.handle.attempts = record.handle.attempts.saturating_add(1);
                let class = classify(&error, true);
                let routed = match class {
                    FailureClass::MissingTopic | FailureClass::Transient | FailureClass::Fatal => false,
                    FailureClass::Unrecognised => record.handle.attempts >= UNRECOGNISED_ATTEMPTS,
                    FailureClass::Permanent(_) | FailureClass::BatchTooLarge => true,
                };
                if !routed {
                    // Those that go on to `route_failure` are counted there.
                    self.sink.metrics.add_errors(error_kind(class), 1);
                }
                match class {
                    FailureClass::MissingTopic => {
                        self.retries.unpop(record, now);
                        self.retries.mark_missing(&topic, now);
                        break RoundEnd::Missing;
                    }
                    FailureClass::Transient | FailureClass::Fatal => {
                        self.retries.unpop(record, now);
                        break RoundEnd::Failed;
                    }
                    FailureClass::Unrecognised if record.handle.attempts < UNRECOGNISED_ATTEMPTS => {
                        self.retries.unpop(record, now);
                        break RoundEnd::Failed;
                    }
                    _ => {
                        // Already counted as an attempt above.
                        record.handle.attempts = record.handle.attempts.saturating_sub(1);
                        self.route_failure(record, &error, true).await;
                    }
                }
            };
            self.retries.end_round(&topic, end, now);
        }
    }

    /// Hands an owned record to librdkafka; gives it back with the error if refused.
    fn send_owned(&mut self, mut record: OwnedRecord) -> Result<(), Box<(OwnedRecord, KafkaError)>> {
        // Counted in its topic's round before it can be reported; taken back if refused.
        let round = self.retries.round(&record.topic, Instant::now());
        round.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        record.handle.round = Some(round.clone());
        let sent = self.send_to_librdkafka(record);
        if let Err(refused) = sent {
            let (mut record, error) = *refused;
            record.handle.round = None;
            round.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            return Err(Box::new((record, error)));
        }
        Ok(())
    }

    fn send_to_librdkafka(&mut self, record: OwnedRecord) -> Result<(), Box<(OwnedRecord, KafkaError)>> {
        if record.handle.alone {
            return self.send_alone(record);
        }
        let OwnedRecord {
            topic,
            key,
            payload,
            headers,
            timestamp,
            handle,
        } = record;
        let outgoing = OutgoingRecord {
            topic: &topic,
            key: key.as_deref(),
            payload: &payload,
            headers,
            timestamp,
        };
        // Keyless records go to a partition with a leader, as new ones do (librdkafka's own
        // partitioner tries a leaderless one again one time in nine with three partitions).
        self.sink.shared.queue_one();
        match self.sink.topics.send(outgoing, handle, true) {
            Ok(()) => Ok(()),
            Err(NotQueued {
                error,
                finalizer,
                headers,
            }) => {
                self.sink.shared.unqueue_one();
                Err(Box::new((
                    OwnedRecord {
                        topic,
                        key,
                        payload,
                        headers,
                        timestamp,
                        handle: finalizer,
                    },
                    error,
                )))
            }
        }
    }

    /// Sends a record through the producer that puts every record in a batch of its own.
    fn send_alone(&mut self, record: OwnedRecord) -> Result<(), Box<(OwnedRecord, KafkaError)>> {
        let producer = match self.alone_producer() {
            Ok(producer) => producer,
            Err(e) => return Err(Box::new((record, e))),
        };
        let OwnedRecord {
            topic,
            key,
            payload,
            headers,
            timestamp,
            handle,
        } = record;
        let mut base = BaseRecord::with_opaque_to(&topic, handle).payload(&payload[..]);
        if let Some(key) = &key {
            base = base.key(&key[..]);
        }
        if let Some(timestamp) = timestamp {
            base = base.timestamp(timestamp);
        }
        if let Some(headers) = headers {
            base = base.headers(headers);
        }
        self.sink.shared.queue_one();
        match producer.send(base) {
            Ok(()) => Ok(()),
            Err((error, mut base)) => {
                self.sink.shared.unqueue_one();
                let headers = base.headers.take();
                let handle = base.delivery_opaque;
                Err(Box::new((
                    OwnedRecord {
                        topic: topic.clone(),
                        key,
                        payload,
                        headers,
                        timestamp,
                        handle,
                    },
                    error,
                )))
            }
        }
    }

    fn alone_producer(&mut self) -> Result<Producer, KafkaError> {
        if let Some(producer) = &self.alone {
            return Ok(producer.clone());
        }
        let mut config = self.sink.client_config.clone();
        config.set("batch.num.messages", "1").set("linger.ms", "0");
        let producer = crate::client::create_producer(&config, self.sink.shared.clone())
            .map_err(|e| KafkaError::ClientCreation(e.to_string()))?;
        self.alone = Some(producer.clone());
        Ok(producer)
    }

    /// Rebuilds the producer when it has gone quiet: records wait in librdkafka but no
    /// delivery report (not even a timeout) came for longer than librdkafka's own timeout
    /// allows.
    fn check_stall(&mut self) {
        let queued = self.sink.shared.queued.load(Ordering::Acquire);
        let reports = self.sink.shared.reports();
        let now = Instant::now();
        if queued == 0 || reports != self.last_reports.0 {
            self.last_reports = (reports, now);
            return;
        }
        let quiet = now.duration_since(self.last_reports.1);
        if quiet >= self.sink.resilience.stall_timeout {
            let cause = format!(
                "no delivery report for {:.0} s while {queued} records wait (producer_stall_timeout_ms = {})",
                quiet.as_secs_f64(),
                self.sink.resilience.stall_timeout.as_millis()
            );
            self.last_reports = (reports, now);
            self.rebuild(&cause);
        }
    }

    /// Replaces the producer with a new one; the old one's records come back as purged and
    /// are sent again through the new one.
    fn rebuild(&mut self, cause: &str) {
        if let Some(at) = self.last_rebuild {
            let since = at.elapsed();
            if since < self.rebuild_interval {
                return;
            }
            self.rebuild_interval = if since >= REBUILD_FORGOTTEN {
                MIN_REBUILD_INTERVAL
            } else {
                (self.rebuild_interval * 2).min(MAX_REBUILD_INTERVAL)
            };
        }
        self.last_rebuild = Some(Instant::now());
        let new = match crate::client::create_producer(&self.sink.client_config, self.sink.shared.clone()) {
            Ok(producer) => producer,
            Err(e) => {
                tracing::error!(sink = %self.sink.id, "the Kafka producer failed ({cause}) and a new one cannot be built: {e}; trying again");
                return;
            }
        };
        let rebuilds = self.sink.shared.rebuilds.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(sink = %self.sink.id, rebuilds, "the Kafka producer failed ({cause}): built a new one; every unconfirmed record is sent again (some may arrive twice)");
        let old = self.sink.topics.replace_producer(new);
        let old_alone = self.alone.take();
        let retire = move || {
            for producer in std::iter::once(old).chain(old_alone) {
                producer.purge(PurgeConfig::default().queue().inflight());
                // Delivery reports of the purged records hand them back to the sink.
                let _ = producer.flush(Duration::from_secs(10));
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("ferry-kafka-retire".into())
            .spawn(retire)
        {
            tracing::error!(sink = %self.sink.id, "cannot start the thread retiring the old producer: {e}");
        }
    }

    /// The shutdown deadline passed. A disk-buffered sink leaves what is unconfirmed to its
    /// buffer; a memory-buffered one writes it to the dead-letter file.
    async fn at_deadline(&mut self, input: &mut EventStream) {
        let producers: Vec<Producer> = std::iter::once(self.sink.topics.producer().clone())
            .chain(self.alone.clone())
            .collect();
        for producer in &producers {
            producer.purge(PurgeConfig::default().queue().inflight().non_blocking());
        }
        if self.sink.durable_buffer {
            // Unsettled records tell the disk buffer to keep their events for the next start.
            return;
        }
        let started = Instant::now();
        while self.sink.shared.queued.load(Ordering::Acquire) > 0 && started.elapsed() < PURGE_WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (letters_on_the_way, failures): (Vec<_>, Vec<_>) = self
            .sink
            .shared
            .take_failures()
            .into_iter()
            .partition(|f| f.record.handle.letter.is_some());
        let mut records: Vec<OwnedRecord> = letters_on_the_way.into_iter().map(|f| f.record).collect();
        records.extend(self.retries.take_all());
        let mut letters = records.len() + failures.len();
        let cause = "the shutdown deadline passed before Kafka confirmed it";
        for mut record in records {
            match record.handle.letter.take() {
                // Already a dead letter, purged on its way to the dead-letter topic.
                Some(facts) => {
                    let record = crate::dead_letters::from_topic(record, facts.topic);
                    self.dead_letters.send(record, facts.reason, &facts.cause).await;
                }
                None => {
                    self.dead_letters
                        .send(record, DeadLetterReason::Shutdown, cause)
                        .await;
                }
            }
        }
        for failure in failures {
            // A record that had failed for good keeps its own reason.
            let (reason, why) = match classify(&failure.error, false) {
                FailureClass::Permanent(reason) => (reason, failure.error.to_string()),
                _ => (DeadLetterReason::Shutdown, cause.to_owned()),
            };
            self.dead_letters.send(failure.record, reason, &why).await;
        }
        // What is still in the buffer: sources have stopped, so this ends.
        while let Some(Some(batch)) = input.next().now_or_never() {
            for mut event in batch {
                SinkMetrics::add(&self.sink.metrics.in_flight, 1);
                let handle = DeliveryHandle::new(event.take_finalizer());
                let mut buf = Vec::new();
                let record = match self.sink.records.build(&event, &mut buf) {
                    Ok(mut parts) => {
                        let headers = parts.headers.take();
                        owned(&parts, headers, handle)
                    }
                    Err(_) => self.unbuilt(&event, handle),
                };
                letters += 1;
                self.dead_letters
                    .send(record, DeadLetterReason::Shutdown, cause)
                    .await;
            }
        }
        let unreported = self.sink.shared.queued.load(Ordering::Acquire);
        if letters > 0 || unreported > 0 {
            tracing::error!(
                sink = %self.sink.id,
                dead_lettered = letters,
                unreported,
                dir = %self.dead_letters.dir().display(),
                "shutdown deadline passed: unconfirmed events were written to the dead-letter file (`ferry dead-letter replay` sends them again)"
            );
        }
    }

    /// Asks the delivery-report thread to wake the sink once librdkafka holds `target`
    /// records or fewer.
    fn wake_at_queued(&self, target: u64) {
        let shared = &self.sink.shared;
        shared.resume_below.store(target, Ordering::Release);
        shared.waiting_for_room.store(true, Ordering::Release);
    }

    /// The run is over: flush and close the clients off the exit path.
    ///
    /// A flush polls for 100 ms whenever an event (a log line, an error) is still queued, and
    /// dropping the last handle joins rdkafka's polling thread, which finishes its current
    /// 100 ms poll first. That was 25-200 ms at every exit, where kcat's whole run of one line
    /// takes 10 ms. So the run ends now, and the clients are flushed and closed on a thread
    /// of their own (or are simply gone with the process).
    fn close(self) {
        let producers: Vec<Producer> = std::iter::once(self.sink.topics.producer().clone())
            .chain(self.alone.clone())
            .collect();
        drop(self);
        let close = move || {
            for producer in producers {
                let _ = producer.flush(Duration::from_secs(5));
                drop(producer);
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("ferry-kafka-close".into())
            .spawn(close)
        {
            tracing::debug!("closing the Kafka client in line: {e}");
        }
    }
}

/// What the wait for room must not outlast.
struct RoomWait {
    deadline: CancellationToken,
    stall_timeout: Duration,
}

/// How [`send_waiting_for_room`] ended.
enum Sent {
    /// librdkafka took the record.
    Queued,
    /// librdkafka refused it for a reason other than a full queue.
    Refused(NotQueued),
    /// Deliveries failed while it waited for room: they must be queued before it.
    FailuresFirst(NotQueued),
    /// The queue stayed full past the deadline, or with no delivery report for the stall
    /// timeout: the caller sees to that first.
    GaveUp(NotQueued),
}

/// Sends one built record, waiting while librdkafka's queue is full, but not past the
/// deadline or a producer that has gone quiet.
async fn send_waiting_for_room(
    topics: &mut TopicProducer,
    shared: &SinkShared,
    parts: &RecordParts<'_>,
    headers: Option<OwnedHeaders>,
    handle: DeliveryHandle,
    room: &RoomWait,
) -> Sent {
    let mut headers = headers;
    let mut handle = handle;
    let mut reports = (shared.reports(), Instant::now());
    loop {
        shared.queue_one();
        let refused = match topics.send(outgoing(parts, headers), handle, true) {
            Ok(()) => return Sent::Queued,
            Err(refused) => refused,
        };
        shared.unqueue_one();
        if refused.error.rdkafka_error_code() != Some(RDKafkaErrorCode::QueueFull) {
            return Sent::Refused(refused);
        }
        let now_reports = shared.reports();
        if now_reports != reports.0 {
            reports = (now_reports, Instant::now());
        }
        if room.deadline.is_cancelled() || reports.1.elapsed() >= room.stall_timeout {
            return Sent::GaveUp(refused);
        }
        if shared.has_failures() {
            return Sent::FailuresFirst(refused);
        }
        headers = refused.headers;
        handle = refused.finalizer;
        wait_for_room(shared).await;
    }
}

/// Waits until delivery reports freed a quarter of librdkafka's full queue (or a short
/// while). Waking for every freed slot cost a task wake-up and a refused enqueue per record
/// whenever the broker was the bottleneck: measured, ferry's CPU per event doubled.
async fn wait_for_room(shared: &SinkShared) {
    let queued = shared.queued.load(Ordering::Acquire);
    shared.resume_below.store(queued - queued / 4, Ordering::Release);
    shared.waiting_for_room.store(true, Ordering::Release);
    let _ = tokio::time::timeout(ROOM_WAIT, shared.room.notified()).await;
    shared.waiting_for_room.store(false, Ordering::Release);
}

/// The record to hand librdkafka for built `parts`, with `headers` (taken from the parts, or
/// handed back by a refused send).
fn outgoing<'a>(parts: &'a RecordParts<'_>, headers: Option<OwnedHeaders>) -> OutgoingRecord<'a> {
    OutgoingRecord {
        topic: &parts.topic,
        key: parts.key.as_deref(),
        payload: parts.payload,
        headers,
        timestamp: parts.timestamp,
    }
}

/// Built `parts` as a record the sink holds itself.
fn owned(parts: &RecordParts<'_>, headers: Option<OwnedHeaders>, handle: DeliveryHandle) -> OwnedRecord {
    OwnedRecord {
        topic: parts.topic.clone().into_owned(),
        key: parts.key.as_ref().map(|k| k.to_vec()),
        payload: parts.payload.to_vec(),
        headers,
        timestamp: parts.timestamp,
        handle,
    }
}
