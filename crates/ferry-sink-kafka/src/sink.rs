//! The running sink: reads batches from its buffer and produces them, resends what failed,
//! and at end of input waits until everything is confirmed.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_core::{BoxError, EventStream, LogEvent, SinkMetrics, SinkRunner};
use futures::StreamExt;
use futures::future::BoxFuture;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::Producer as _;
use rdkafka::types::RDKafkaErrorCode;

use crate::client::Producer;
use crate::context::{DeliveryHandle, Failure, RetryRecord, SinkShared, classify};
use crate::record::{RecordBuilder, RecordParts};
use crate::topic::{NotQueued, OutgoingRecord, TopicProducer};

/// The least time between two rounds of resending failed records, so an outage that fails
/// deliveries quickly cannot turn into a busy loop. It doubles while rounds deliver nothing,
/// up to `MAX_RETRY_BACKOFF`, and drops back once something is delivered.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);
/// How long to wait for librdkafka's queue to free room before trying again anyway.
const ROOM_WAIT: Duration = Duration::from_millis(50);
/// How long the end of a run waits for the last delivery reports before looking again anyway.
const LAST_DELIVERY_WAIT: Duration = Duration::from_millis(100);

pub(crate) struct KafkaSink {
    pub(crate) id: String,
    pub(crate) producer: Producer,
    /// Only the sink task produces; the lock is never contended.
    pub(crate) topics: Mutex<TopicProducer>,
    pub(crate) shared: Arc<SinkShared>,
    pub(crate) records: RecordBuilder,
    pub(crate) metrics: Arc<SinkMetrics>,
}

impl SinkRunner for KafkaSink {
    fn run(self: Box<Self>, input: EventStream) -> BoxFuture<'static, Result<(), BoxError>> {
        Box::pin(self.run_loop(input))
    }
}

impl KafkaSink {
    async fn run_loop(self: Box<Self>, mut input: EventStream) -> Result<(), BoxError> {
        let mut buf = Vec::with_capacity(4096);
        let mut input_open = true;
        let mut last_retry_round: Option<Instant> = None;
        let mut backoff = RETRY_BACKOFF;
        let mut delivered_at_last_round = 0;
        loop {
            if self.shared.has_retries() {
                let due = last_retry_round.is_none_or(|t| t.elapsed() >= backoff);
                if due {
                    let delivered = self.metrics.delivered.load(Ordering::Relaxed);
                    backoff = if last_retry_round.is_some() && delivered == delivered_at_last_round {
                        (backoff * 2).min(MAX_RETRY_BACKOFF)
                    } else {
                        RETRY_BACKOFF
                    };
                    delivered_at_last_round = delivered;
                    last_retry_round = Some(Instant::now());
                    self.resend_failed().await;
                }
            }
            let next_round = match (self.shared.has_retries(), last_retry_round) {
                (true, Some(t)) => Some(tokio::time::Instant::from_std(t + backoff)),
                (true, None) => Some(tokio::time::Instant::now()),
                (false, _) => None,
            };
            if !input_open {
                if self.metrics.in_flight.load(Ordering::Acquire) == 0 && !self.shared.has_retries() {
                    break;
                }
                // Woken by the delivery report that settles the last record (polling every
                // 20 ms added 10 ms to every run's exit on average), or when retries are due.
                let deadline = next_round.unwrap_or_else(|| tokio::time::Instant::now() + LAST_DELIVERY_WAIT);
                self.wait_for_last_delivery(deadline).await;
                continue;
            }
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(next_round.unwrap_or_else(tokio::time::Instant::now)), if next_round.is_some() => {}
                () = self.shared.retry_ready.notified(), if next_round.is_none() => {}
                batch = input.next() => match batch {
                    Some(batch) => self.produce_batch(batch, &mut buf).await,
                    None => {
                        input_open = false;
                        tracing::debug!(sink = %self.id, "input ended; waiting for the last deliveries");
                    }
                },
            }
        }
        // Everything is confirmed. What is left only tidies librdkafka's state, and it waits:
        // a flush polls for 100 ms whenever an event (a log line, an error) is still queued,
        // and dropping the last handle joins rdkafka's polling thread, which finishes its
        // current 100 ms poll first. That was 25-200 ms at every exit, where kcat's whole run
        // of one line takes 10 ms. So the run ends now, and the client is flushed and closed
        // on a thread of its own (or is simply gone with the process).
        let producer = self.producer.clone();
        drop(self);
        let close = move || {
            let _ = producer.flush(Duration::from_secs(5));
            drop(producer);
        };
        if let Err(e) = std::thread::Builder::new()
            .name("ferry-kafka-close".into())
            .spawn(close)
        {
            tracing::debug!("closing the Kafka client in line: {e}");
        }
        Ok(())
    }

    async fn produce_batch(&self, batch: Vec<LogEvent>, buf: &mut Vec<u8>) {
        let mut events = batch.into_iter();
        let mut first = true;
        while let Some((event, not_queued)) = self.send_until_refused(&mut events, buf, first) {
            first = false;
            self.send_refused(event, not_queued, buf).await;
        }
    }

    /// Sends records of `events` under one lock of the topics until librdkafka refuses one
    /// (a full queue, a transient error); returns that one. Locking once per record was ~1.5%
    /// of the sink task; a lock guard cannot be held across the waits of the refused path.
    fn send_until_refused(
        &self,
        events: &mut std::vec::IntoIter<LogEvent>,
        buf: &mut Vec<u8>,
        batch_start: bool,
    ) -> Option<(LogEvent, NotQueued)> {
        let mut topics = self
            .topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if batch_start {
            topics.next_batch();
        }
        for mut event in events.by_ref() {
            let mut finalizer = DeliveryHandle(event.take_finalizer());
            let mut parts = match self.records.build(&event, buf) {
                Ok(parts) => parts,
                Err(e) => {
                    self.shared
                        .reject(&mut finalizer.0, self.records.topic_template(), &e);
                    continue;
                }
            };
            let headers = parts.headers.take();
            let outgoing = outgoing(&parts, headers);
            // Counted before `send`: the delivery report may arrive before `send` returns.
            // A record stays counted until it is delivered or rejected, retries included.
            SinkMetrics::add(&self.metrics.in_flight, 1);
            if let Err(not_queued) = topics.send(outgoing, finalizer, true) {
                return Some((event, not_queued));
            }
        }
        None
    }

    /// Sends a record librdkafka refused, waiting as its error asks; rejects it if it can
    /// never be sent.
    async fn send_refused(&self, event: LogEvent, refused: NotQueued, buf: &mut Vec<u8>) {
        let NotQueued {
            error,
            finalizer,
            headers,
        } = refused;
        // Built again: the first build's parts borrowed the buffer the next records reuse.
        let parts = match self.records.build(&event, buf) {
            Ok(parts) => parts,
            Err(e) => {
                // Not reachable (the same event built a moment ago), but never lose a record.
                let mut finalizer = finalizer;
                SinkMetrics::sub(&self.metrics.in_flight, 1);
                self.shared
                    .reject(&mut finalizer.0, self.records.topic_template(), &e);
                return;
            }
        };
        // The headers librdkafka handed back, not the rebuilt ones.
        let outgoing = outgoing(&parts, headers);
        let sent = match self.after_refusal(&error).await {
            Ok(()) => self.produce(outgoing, finalizer, true).await,
            Err(()) => Err((error, finalizer)),
        };
        if let Err((error, mut finalizer)) = sent {
            SinkMetrics::sub(&self.metrics.in_flight, 1);
            self.shared.reject(&mut finalizer.0, &parts.topic, &error);
        }
    }

    /// Waits as a refusal asks before the next try; `Err` if the record can never be sent.
    async fn after_refusal(&self, error: &KafkaError) -> Result<(), ()> {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) {
            self.wait_for_room().await;
            return Ok(());
        }
        match classify(error) {
            Failure::Permanent => Err(()),
            Failure::Transient => {
                tokio::time::sleep(ROOM_WAIT).await;
                Ok(())
            }
        }
    }

    /// Sends the records whose deliveries failed, oldest first. Records that meet a full
    /// queue wait their turn; the rest of the queue is put back for the next round.
    async fn resend_failed(&self) {
        let mut queue: VecDeque<RetryRecord> = self.shared.take_retries();
        tracing::debug!(sink = %self.id, records = queue.len(), "sending failed records again");
        while let Some(record) = queue.pop_front() {
            let RetryRecord {
                topic,
                key,
                payload,
                headers,
                timestamp,
                finalizer,
            } = record;
            let outgoing = OutgoingRecord {
                topic: &topic,
                key: key.as_deref(),
                payload: &payload,
                headers,
                timestamp,
            };
            // Sent again through librdkafka's partitioner, which skips partitions without a
            // leader.
            if let Err((error, mut finalizer)) = self.produce(outgoing, finalizer, false).await {
                SinkMetrics::sub(&self.metrics.in_flight, 1);
                self.shared.reject(&mut finalizer.0, &topic, &error);
            }
            // Deliveries failing again meanwhile go to the shared queue; keep the order we
            // hold ahead of them.
            if !queue.is_empty() && self.shared.has_retries() {
                self.shared.return_retries(std::mem::take(&mut queue));
                break;
            }
        }
    }

    /// Hands one record to librdkafka, waiting while its queue is full. Returns the error and
    /// the finalizer when the record can never be sent.
    async fn produce(
        &self,
        outgoing: OutgoingRecord<'_>,
        finalizer: DeliveryHandle,
        spread: bool,
    ) -> Result<(), (KafkaError, DeliveryHandle)> {
        let mut finalizer = finalizer;
        let mut headers = outgoing.headers;
        loop {
            let record = OutgoingRecord {
                topic: outgoing.topic,
                key: outgoing.key,
                payload: outgoing.payload,
                headers: headers.take(),
                timestamp: outgoing.timestamp,
            };
            let sent = self
                .topics
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .send(record, finalizer, spread);
            let NotQueued {
                error,
                finalizer: returned,
                headers: returned_headers,
            } = match sent {
                Ok(()) => return Ok(()),
                Err(not_queued) => not_queued,
            };
            finalizer = returned;
            headers = returned_headers;
            if self.after_refusal(&error).await.is_err() {
                return Err((error, finalizer));
            }
        }
    }

    /// Waits until delivery reports freed a quarter of librdkafka's full queue (or a short
    /// while). Waking for every freed slot cost a task wake-up and a refused enqueue per
    /// record whenever the broker was the bottleneck: measured, ferry's CPU per event doubled.
    async fn wait_for_room(&self) {
        let in_flight = self.metrics.in_flight.load(Ordering::Acquire);
        self.wake_at_in_flight(in_flight - in_flight / 4);
        let _ = tokio::time::timeout(ROOM_WAIT, self.shared.room.notified()).await;
        self.shared.waiting_for_room.store(false, Ordering::Release);
    }

    /// Waits for the delivery report that settles the last record in flight, or `deadline`;
    /// may return early (the caller looks again).
    async fn wait_for_last_delivery(&self, deadline: tokio::time::Instant) {
        self.wake_at_in_flight(0);
        // A report that came between the caller's look and the flag would not wake us. (The
        // flag and the count are not one atomic step, so a report can still slip through
        // unseen: the deadline bounds that rare wait.)
        if self.metrics.in_flight.load(Ordering::Acquire) > 0 {
            let _ = tokio::time::timeout_at(deadline, self.shared.room.notified()).await;
        }
        self.shared.waiting_for_room.store(false, Ordering::Release);
    }

    /// Asks the delivery-report thread to wake the sink once the in-flight count is at
    /// `target` or below.
    fn wake_at_in_flight(&self, target: u64) {
        self.shared.resume_below.store(target, Ordering::Release);
        self.shared.waiting_for_room.store(true, Ordering::Release);
    }
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
