//! Records waiting to be sent again, one queue per topic, bounded in events and bytes.
//!
//! Each topic waits on its own back-off, so a topic that keeps failing never holds up the
//! others. Within a topic the queue keeps order: while a topic has records waiting here, the
//! sink puts that topic's new records behind them instead of sending them ahead.
//!
//! The queue is owned by the sink task (no lock): librdkafka's threads hand failures over
//! through [`crate::context::SinkShared`].

use std::collections::{HashMap, VecDeque};
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
    records: VecDeque<OwnedRecord>,
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
    fn new(now: Instant) -> Self {
        Self {
            records: VecDeque::new(),
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

    /// Whether the bound is reached: the sink then reads no new input.
    pub(crate) fn is_full(&self) -> bool {
        self.events >= self.max_events || self.bytes >= self.max_bytes
    }

    /// Whether `topic` has records waiting (new ones must queue behind them).
    pub(crate) fn holds(&self, topic: &str) -> bool {
        self.events > 0 && self.topics.get(topic).is_some_and(|t| !t.records.is_empty())
    }

    /// Queues `record` at the back of its topic, to be sent after the topic's back-off.
    pub(crate) fn push(&mut self, record: OwnedRecord, now: Instant) {
        self.events += 1;
        self.bytes += record.bytes();
        let topic = self
            .topics
            .entry(record.topic.clone())
            .or_insert_with(|| TopicRetries::new(now));
        if topic.records.is_empty() && topic.missing_since.is_none() {
            // A topic that had nothing waiting starts its back-off now.
            topic.not_before = now + topic.backoff;
        }
        topic.touched = now;
        topic.records.push_back(record);
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
            .filter(|t| !t.records.is_empty())
            .map(|t| t.not_before)
            .min()
    }

    /// The topics whose records may be sent now.
    pub(crate) fn due_topics(&self, now: Instant) -> Vec<String> {
        self.topics
            .iter()
            .filter(|(_, t)| !t.records.is_empty() && t.not_before <= now)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Takes the first waiting record of `topic`.
    pub(crate) fn pop(&mut self, topic: &str) -> Option<OwnedRecord> {
        let record = self.topics.get_mut(topic)?.records.pop_front()?;
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
        topic.records.push_front(record);
    }

    /// Takes every record of `topic` (for dead letters), oldest first.
    pub(crate) fn take_topic(&mut self, topic: &str) -> Vec<OwnedRecord> {
        let Some(entry) = self.topics.get_mut(topic) else {
            return Vec::new();
        };
        let records: Vec<OwnedRecord> = entry.records.drain(..).collect();
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
                !t.records.is_empty()
                    && t.missing_since
                        .is_some_and(|since| now.duration_since(since) >= grace)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Forgets topics that have had nothing waiting and no news for a while, so per-topic
    /// state does not grow with every topic ever seen.
    pub(crate) fn forget_idle(&mut self, now: Instant) {
        self.topics
            .retain(|_, t| !t.records.is_empty() || now.duration_since(t.touched) < MISSING_TOPIC_MEMORY);
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
