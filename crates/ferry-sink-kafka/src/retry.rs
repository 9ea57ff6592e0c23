//! Records waiting to be sent again, one queue per topic, bounded in events and bytes.
//!
//! Each topic waits on its own back-off, so a topic that keeps failing never holds up the
//! others. Within a topic the queue keeps order:
//! - while a topic has records here, or records of its last round are still unconfirmed, the
//!   sink puts that topic's new records behind them (`waiting`) instead of sending them;
//! - a record whose delivery report failed was sent before every record in `waiting` (nothing
//!   new goes out directly meanwhile), so it joins `failed`, which is sent first;
//! - a topic sends its next round only once every record of the last one was reported.
//!
//! The queue is owned by the sink task (no lock): librdkafka's threads hand failures over
//! through [`crate::context::SinkShared`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::context::OwnedRecord;

/// The first wait before a topic's records are sent again; it doubles while attempts keep
/// failing, up to [`MAX_BACKOFF`], and starts over once one is accepted.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(500);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a missing topic is tried again: often enough that a topic created during its
/// grace is noticed promptly.
pub(crate) const MISSING_TOPIC_BACKOFF: Duration = Duration::from_secs(2);
/// A topic with nothing waiting forgets that it was missing after this long.
const MISSING_TOPIC_MEMORY: Duration = Duration::from_secs(600);

/// What is known about a topic whose records failed.
#[derive(Debug)]
struct TopicRetries {
    /// Records whose delivery failed, in the order they were sent: sent again first.
    failed: VecDeque<OwnedRecord>,
    /// Records that were never sent (they came while the topic was failing), in input order.
    waiting: VecDeque<OwnedRecord>,
    /// Records of the last round handed to librdkafka and not yet reported.
    in_flight: Arc<AtomicUsize>,
    /// A round was started and not yet seen finished (see `RetryQueue::open_rounds`).
    round_open: bool,
    /// Not sent again before this.
    not_before: Instant,
    backoff: Duration,
    /// Since when the topic has been found missing, while it is.
    missing_since: Option<Instant>,
    /// When the missing topic was last warned about.
    warned_at: Option<Instant>,
    /// When this topic last had records or news.
    touched: Instant,
}

impl std::fmt::Debug for OwnedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedRecord")
            .field("topic", &self.topic)
            .field("payload_len", &self.payload.len())
            .field("attempts", &self.handle.attempts)
            .finish()
    }
}

impl TopicRetries {
    fn has_records(&self) -> bool {
        !self.failed.is_empty() || !self.waiting.is_empty()
    }

    fn round_in_flight(&self) -> bool {
        self.round_open && self.in_flight.load(Ordering::Acquire) > 0
    }

    fn new(now: Instant) -> Self {
        Self {
            failed: VecDeque::new(),
            waiting: VecDeque::new(),
            in_flight: Arc::new(AtomicUsize::new(0)),
            round_open: false,
            not_before: now,
            backoff: FIRST_BACKOFF,
            missing_since: None,
            warned_at: None,
            touched: now,
        }
    }
}

/// The sink's records waiting to be sent again (see the module docs).
#[derive(Debug)]
pub(crate) struct RetryQueue {
    topics: HashMap<String, TopicRetries>,
    events: usize,
    bytes: usize,
    /// Topics with a round started and not yet seen finished: while there are none and no
    /// records wait, `holds` answers without a lookup (the fast path's case).
    open_rounds: usize,
    max_events: usize,
    max_bytes: usize,
}

/// How a topic's retry round ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoundEnd {
    /// Every record was handed to librdkafka: the topic works again.
    Drained,
    /// A record met a failure that may pass: wait the (doubled) back-off.
    Failed,
    /// The topic is missing.
    Missing,
}

impl RetryQueue {
    pub(crate) fn new(max_events: usize, max_bytes: usize) -> Self {
        Self {
            topics: HashMap::new(),
            events: 0,
            bytes: 0,
            open_rounds: 0,
            max_events,
            max_bytes,
        }
    }

    /// Records waiting.
    pub(crate) fn len(&self) -> usize {
        self.events
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// Whether nothing waits and no round is open: nothing to look after.
    pub(crate) fn is_idle(&self) -> bool {
        self.events == 0 && self.open_rounds == 0
    }

    /// Whether the bound is reached: the sink then reads no new input.
    pub(crate) fn is_full(&self) -> bool {
        self.events >= self.max_events || self.bytes >= self.max_bytes
    }

    /// Whether `topic`'s new records must queue behind others: it has records here, or its
    /// last round is not fully reported yet.
    pub(crate) fn holds(&self, topic: &str) -> bool {
        !self.is_idle()
            && self
                .topics
                .get(topic)
                .is_some_and(|t| t.has_records() || t.round_in_flight())
    }

    /// Queues a record whose delivery failed (it goes before the topic's never-sent ones), to
    /// be sent after the topic's back-off.
    pub(crate) fn push(&mut self, record: OwnedRecord, now: Instant) {
        self.push_to(record, now, true);
    }

    /// Queues a record that was never sent, behind everything of its topic.
    pub(crate) fn push_waiting(&mut self, record: OwnedRecord, now: Instant) {
        self.push_to(record, now, false);
    }

    fn push_to(&mut self, record: OwnedRecord, now: Instant, failed: bool) {
        self.events += 1;
        self.bytes += record.bytes();
        let topic = self
            .topics
            .entry(record.topic.clone())
            .or_insert_with(|| TopicRetries::new(now));
        if !topic.has_records() && topic.missing_since.is_none() {
            // A topic that had nothing waiting starts its back-off now if a delivery failed;
            // records that only queue behind others may go as soon as their turn comes.
            topic.not_before = if failed { now + topic.backoff } else { now };
        }
        topic.touched = now;
        if failed {
            topic.failed.push_back(record);
        } else {
            topic.waiting.push_back(record);
        }
    }

    /// The counter of `topic`'s current round, opening it: each record sent in it counts one
    /// and carries a clone, and its delivery report (after handing back a failure) takes it
    /// back. The topic's next round waits until it is zero.
    pub(crate) fn round(&mut self, topic: &str, now: Instant) -> Arc<AtomicUsize> {
        let entry = self
            .topics
            .entry(topic.to_owned())
            .or_insert_with(|| TopicRetries::new(now));
        if !entry.round_open {
            entry.round_open = true;
            self.open_rounds += 1;
        }
        entry.in_flight.clone()
    }

    /// Closes the rounds whose records have all been reported.
    fn close_finished_rounds(&mut self) {
        if self.open_rounds == 0 {
            return;
        }
        for entry in self.topics.values_mut() {
            if entry.round_open && entry.in_flight.load(Ordering::Acquire) == 0 {
                entry.round_open = false;
                self.open_rounds -= 1;
            }
        }
    }

    /// Marks `topic` missing (from now, unless it already was); returns since when.
    pub(crate) fn mark_missing(&mut self, topic: &str, now: Instant) -> Instant {
        let entry = self
            .topics
            .entry(topic.to_owned())
            .or_insert_with(|| TopicRetries::new(now));
        entry.touched = now;
        if entry.missing_since.is_none() {
            entry.not_before = now + MISSING_TOPIC_BACKOFF;
        }
        *entry.missing_since.get_or_insert(now)
    }

    /// Forgets that `topic` was missing (the metadata shows it now).
    pub(crate) fn clear_missing(&mut self, topic: &str) {
        if let Some(entry) = self.topics.get_mut(topic) {
            entry.missing_since = None;
            entry.warned_at = None;
        }
    }

    /// Since when `topic` has been missing, if it is.
    pub(crate) fn missing_since(&self, topic: &str) -> Option<Instant> {
        self.topics.get(topic).and_then(|t| t.missing_since)
    }

    /// Whether a warning about missing `topic` is due (at most one a minute), and records it.
    pub(crate) fn warn_missing_due(&mut self, topic: &str, now: Instant) -> bool {
        let Some(entry) = self.topics.get_mut(topic) else {
            return false;
        };
        let due = entry
            .warned_at
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60));
        if due {
            entry.warned_at = Some(now);
        }
        due
    }

    /// The earliest time a topic's records may be sent again.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.topics
            .values()
            .filter(|t| t.has_records() && !t.round_in_flight())
            .map(|t| t.not_before)
            .min()
    }

    /// The topics whose records may be sent now (closing the rounds that finished).
    pub(crate) fn due_topics(&mut self, now: Instant) -> Vec<String> {
        self.close_finished_rounds();
        self.topics
            .iter()
            .filter(|(_, t)| t.has_records() && !t.round_in_flight() && t.not_before <= now)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Takes the first waiting record of `topic`.
    pub(crate) fn pop(&mut self, topic: &str) -> Option<OwnedRecord> {
        let entry = self.topics.get_mut(topic)?;
        let record = entry.failed.pop_front().or_else(|| entry.waiting.pop_front())?;
        self.events -= 1;
        self.bytes = self.bytes.saturating_sub(record.bytes());
        Some(record)
    }

    /// Puts a record that could not be sent back at the front of its topic.
    pub(crate) fn unpop(&mut self, record: OwnedRecord, now: Instant) {
        self.events += 1;
        self.bytes += record.bytes();
        let topic = self
            .topics
            .entry(record.topic.clone())
            .or_insert_with(|| TopicRetries::new(now));
        topic.failed.push_front(record);
    }

    /// Takes every record of `topic` (for dead letters), oldest first.
    pub(crate) fn take_topic(&mut self, topic: &str) -> Vec<OwnedRecord> {
        let Some(entry) = self.topics.get_mut(topic) else {
            return Vec::new();
        };
        let mut records: Vec<OwnedRecord> = entry.failed.drain(..).collect();
        records.extend(entry.waiting.drain(..));
        self.events -= records.len();
        self.bytes = self
            .bytes
            .saturating_sub(records.iter().map(OwnedRecord::bytes).sum());
        records
    }

    /// Takes every record of every topic.
    pub(crate) fn take_all(&mut self) -> Vec<OwnedRecord> {
        let topics: Vec<String> = self.topics.keys().cloned().collect();
        topics.iter().flat_map(|t| self.take_topic(t)).collect()
    }

    /// Records how a topic's round ended and sets its next attempt.
    pub(crate) fn end_round(&mut self, topic: &str, end: RoundEnd, now: Instant) {
        let Some(entry) = self.topics.get_mut(topic) else {
            return;
        };
        entry.touched = now;
        match end {
            // A missing topic stays missing until the metadata shows it (`clear_missing`):
            // librdkafka may take a record for a topic it has not looked up yet.
            RoundEnd::Drained => {
                entry.backoff = FIRST_BACKOFF;
                entry.not_before = now;
            }
            RoundEnd::Failed => {
                entry.not_before = now + entry.backoff;
                entry.backoff = (entry.backoff * 2).min(MAX_BACKOFF);
            }
            RoundEnd::Missing => {
                entry.missing_since.get_or_insert(now);
                entry.not_before = now + MISSING_TOPIC_BACKOFF;
            }
        }
    }

    /// Sends nothing of `topic` before `until` (librdkafka's queue is full).
    pub(crate) fn postpone(&mut self, topic: &str, until: Instant) {
        if let Some(entry) = self.topics.get_mut(topic) {
            entry.not_before = entry.not_before.max(until);
        }
    }

    /// Every topic marked missing.
    pub(crate) fn missing_topics(&self) -> Vec<String> {
        self.topics
            .iter()
            .filter(|(_, t)| t.missing_since.is_some())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Topics missing for longer than `grace` that still have records waiting.
    pub(crate) fn missing_past(&self, grace: Duration, now: Instant) -> Vec<String> {
        self.topics
            .iter()
            .filter(|(_, t)| {
                t.has_records()
                    && t.missing_since
                        .is_some_and(|since| now.duration_since(since) >= grace)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Forgets topics that have had nothing waiting and no news for a while, so per-topic
    /// state does not grow with every topic ever seen.
    pub(crate) fn forget_idle(&mut self, now: Instant) {
        self.topics.retain(|_, t| {
            t.has_records() || t.round_open || now.duration_since(t.touched) < MISSING_TOPIC_MEMORY
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::DeliveryHandle;
    use ferry_core::EventFinalizer;

    fn record(topic: &str, payload: &str) -> OwnedRecord {
        OwnedRecord {
            topic: topic.into(),
            key: None,
            payload: payload.as_bytes().to_vec(),
            headers: None,
            timestamp: None,
            handle: DeliveryHandle::new(EventFinalizer::default()),
        }
    }

    #[test]
    fn topics_wait_on_their_own_back_off_and_keep_their_order() {
        let now = Instant::now();
        let mut q = RetryQueue::new(100, 1 << 20);
        q.push(record("a", "1"), now);
        q.push(record("a", "2"), now);
        q.push(record("b", "3"), now);
        assert!(q.holds("a") && q.holds("b") && !q.holds("c"));
        assert!(q.due_topics(now).is_empty(), "nothing is due before its back-off");
        let later = now + FIRST_BACKOFF;
        let mut due = q.due_topics(later);
        due.sort();
        assert_eq!(due, ["a", "b"]);
        let first = q.pop("a").unwrap();
        assert_eq!(first.payload, b"1");
        q.unpop(first, later);
        q.end_round("a", RoundEnd::Failed, later);
        assert_eq!(q.due_topics(later), ["b"], "a failing topic waits, others go");
        assert_eq!(q.pop("a").unwrap().payload, b"1", "order kept through unpop");
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn failed_records_go_before_never_sent_ones_and_rounds_go_one_at_a_time() {
        let now = Instant::now();
        let mut q = RetryQueue::new(100, 1 << 20);
        q.push_waiting(record("a", "new"), now);
        q.push(record("a", "failed"), now);
        assert!(q.holds("a"));
        let due = now + FIRST_BACKOFF;
        assert_eq!(q.due_topics(due), ["a"]);
        let round = q.round("a", due);
        round.fetch_add(1, Ordering::AcqRel);
        assert_eq!(
            q.pop("a").unwrap().payload,
            b"failed",
            "sent before it, so sent again first"
        );
        assert_eq!(q.pop("a").unwrap().payload, b"new");
        assert!(q.is_empty() && !q.is_idle());
        assert!(q.holds("a"), "new records wait while the round is unconfirmed");
        q.push(record("a", "failed again"), due);
        assert!(
            q.due_topics(due + MAX_BACKOFF).is_empty(),
            "no second round before the first is reported"
        );
        round.fetch_sub(1, Ordering::AcqRel);
        assert_eq!(q.due_topics(due + MAX_BACKOFF), ["a"]);
        q.pop("a");
        assert!(q.is_idle() && !q.holds("a"));
    }

    #[test]
    fn the_back_off_doubles_from_half_a_second_to_thirty_and_starts_over_after_success() {
        // The documented schedule: 0.5 s, 1, 2, 4, 8, 16, then 30 s at most.
        let start = Instant::now();
        let mut q = RetryQueue::new(100, 1 << 20);
        q.push(record("a", "1"), start);
        let mut now = start + FIRST_BACKOFF;
        let mut waits = Vec::new();
        for _ in 0..8 {
            assert_eq!(q.due_topics(now), ["a"]);
            q.end_round("a", RoundEnd::Failed, now);
            let wait = q.next_due().expect("a is waiting") - now;
            assert!(q.due_topics(now + wait - Duration::from_millis(1)).is_empty());
            waits.push(wait.as_millis());
            now += wait;
        }
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        q.end_round("a", RoundEnd::Drained, now);
        q.end_round("a", RoundEnd::Failed, now);
        assert_eq!(q.next_due().map(|due| (due - now).as_millis()), Some(500));
    }

    #[test]
    fn bounds_in_events_and_bytes() {
        let now = Instant::now();
        let mut q = RetryQueue::new(2, 1 << 20);
        q.push(record("a", "1"), now);
        assert!(!q.is_full());
        q.push(record("a", "2"), now);
        assert!(q.is_full());
        q.pop("a");
        assert!(!q.is_full());
        let mut q = RetryQueue::new(100, 100);
        q.push(record("a", &"x".repeat(200)), now);
        assert!(q.is_full());
        assert_eq!(q.take_all().len(), 1);
        assert!(q.is_empty() && !q.is_full());
    }

    #[test]
    fn missing_topics_pass_their_grace() {
        let now = Instant::now();
        let mut q = RetryQueue::new(100, 1 << 20);
        q.push(record("gone", "1"), now);
        q.mark_missing("gone", now);
        assert!(q.warn_missing_due("gone", now));
        assert!(!q.warn_missing_due("gone", now + Duration::from_secs(1)));
        assert!(
            q.missing_past(Duration::from_secs(10), now + Duration::from_secs(5))
                .is_empty()
        );
        assert_eq!(
            q.missing_past(Duration::from_secs(10), now + Duration::from_secs(10)),
            ["gone"]
        );
        assert_eq!(q.take_topic("gone").len(), 1);
        q.forget_idle(now + MISSING_TOPIC_MEMORY);
        assert!(q.missing_since("gone").is_none());
    }
}
