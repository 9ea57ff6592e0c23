//! The write side: a thread that turns batches into records and appends them, and a thread
//! that makes them durable in group commits and then tells their sources. The commit thread
//! also deletes the records the sink settled, so that settling (on librdkafka's delivery-report
//! thread) costs a push onto a queue.
//!
//! Why two threads of their own rather than tokio tasks sending jobs to an I/O thread: every
//! job was a round trip (a tokio worker wakes the I/O thread, which wakes a worker again), and
//! with one record per ~1,700 events those wake-ups were a good share of what the disk buffer
//! cost on a 2-core machine. Now a batch wakes the write thread once, and the commit thread
//! wakes once per `sync_interval_ms`.
//!
//! ## When the disk fails
//! A failed append (`ENOSPC`, `EIO`) or a failed group commit never drops anything and never
//! acknowledges anything: the record is kept and tried again with back-off, the failure is
//! counted (`buffer_errors`) and logged at a rate limit, and meanwhile the write thread takes
//! no input, so backpressure reaches the sources. After a failed fsync the unconfirmed records
//! are written again into a new segment before the next attempt ([`Store::sync`]), since the
//! failed fsync may have lost their pages for good.
//!
//! [`Store::sync`]: super::store::Store::sync

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ferry_core::{DeliveryStatus, EventFinalizer, LogEvent, SinkMetrics, WhenFull};
use tokio::sync::mpsc;

use super::retry::Backoff;
use super::{HOT_RECORDS, HotRecord, Shared, TARGET_RECORD_BYTES, record};

/// Bytes of records kept in memory until their fsync (see [`Store::sync`]) past which the
/// writer waits for a commit: a disk whose fsync hangs rather than fails must not make them
/// grow without bound. Normally one sync interval's worth is far below it.
///
/// [`Store::sync`]: super::store::Store::sync
const MAX_UNCONFIRMED_BYTES: usize = if cfg!(test) { 64 * 1024 } else { 64 * 1024 * 1024 };
/// Failed attempts in a row after which deletions are given up once the buffer is closing.
const GIVE_UP_REMOVALS: u32 = 10;

/// What the write thread has appended and the commit thread has not yet made durable, and the
/// records settled by the sink and not yet deleted.
#[derive(Debug, Default)]
struct Unsynced {
    /// Finalizers of the tracked events among them.
    pending: Vec<EventFinalizer>,
    /// When the first of them was appended; `None` when everything appended is committed.
    since: Option<Instant>,
    /// The sequence number after the last appended record.
    next_sequence: u64,
    /// A writer waits for room: commit now rather than at the end of the interval.
    now: bool,
    /// The write thread has stopped: commit what is left and stop too.
    closed: bool,
    /// Records whose events were all settled, to delete.
    settled: Vec<u64>,
    /// The commit thread has ended: settled records are deleted by whoever settles them.
    stopped: bool,
}

/// The hand-over between the write thread, the sink's settling and the commit thread.
#[derive(Debug, Default)]
pub(super) struct Commits {
    unsynced: Mutex<Unsynced>,
    due: Condvar,
}

impl Commits {
    pub(super) fn new(next_sequence: u64) -> Self {
        Self {
            unsynced: Mutex::new(Unsynced {
                next_sequence,
                ..Unsynced::default()
            }),
            due: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Unsynced> {
        self.unsynced.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that a record was appended (every record, tracked events or not: the commit is
    /// what makes it survive a crash).
    fn appended(&self, finalizers: Vec<EventFinalizer>, next_sequence: u64) {
        let mut unsynced = self.lock();
        unsynced.pending.extend(finalizers);
        unsynced.next_sequence = next_sequence;
        if unsynced.since.is_none() {
            unsynced.since = Some(Instant::now());
            drop(unsynced);
            self.due.notify_one();
        }
    }

    /// Asks for a commit of what is appended without waiting for the interval to end.
    pub(super) fn commit_now(&self) {
        let mut unsynced = self.lock();
        if unsynced.since.is_some() && !unsynced.now {
            unsynced.now = true;
            drop(unsynced);
            self.due.notify_one();
        }
    }

    /// Queues a settled record for deletion; hands it back if the commit thread is gone.
    pub(super) fn settled(&self, sequence: u64) -> Option<Vec<u64>> {
        let mut unsynced = self.lock();
        if unsynced.stopped {
            return Some(vec![sequence]);
        }
        unsynced.settled.push(sequence);
        let first = unsynced.settled.len() == 1;
        drop(unsynced);
        if first {
            self.due.notify_one();
        }
        None
    }

    /// Wakes the commit thread to look again (the sink's end was dropped).
    pub(super) fn wake(&self) {
        let _unsynced = self.lock();
        self.due.notify_one();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.due.notify_one();
    }
}

struct ClosesOnDrop(Arc<Shared>);

impl Drop for ClosesOnDrop {
    fn drop(&mut self) {
        self.0.commits.close();
    }
}

/// When the commit thread ends (also by a panic): tells the reader that nothing more will be
/// written, and deletes whatever was settled but not yet deleted.
struct CommitThreadGone(Arc<Shared>);

impl Drop for CommitThreadGone {
    fn drop(&mut self) {
        let left = {
            let mut unsynced = self.0.commits.lock();
            unsynced.stopped = true;
            std::mem::take(&mut unsynced.settled)
        };
        self.0.remove_settled(left);
        self.0.writer_done.store(true, Ordering::Release);
        self.0.appended.wake();
    }
}

/// The state of the write thread.
pub(super) struct WriteThread {
    pub(super) shared: Arc<Shared>,
    pub(super) when_full: WhenFull,
    pub(super) next_sequence: u64,
    /// Encoded bytes per event in the last record, to size the next ones.
    pub(super) bytes_per_event: usize,
    /// Events not written because the sink went away while the disk failed.
    pub(super) abandoned: u64,
}

impl WriteThread {
    /// Writes every batch that arrives until all writers are gone, then lets the commit thread
    /// finish.
    pub(super) fn run(mut self, mut input: mpsc::Receiver<Vec<LogEvent>>) {
        // Also if this thread panics: the commit thread must not wait for it forever.
        let _closes = ClosesOnDrop(self.shared.clone());
        while let Some(events) = input.blocking_recv() {
            self.write(events);
        }
        if self.abandoned > 0 {
            // These events were never acknowledged: their sources heard "not delivered".
            tracing::error!(
                events = self.abandoned,
                "the disk buffer stopped while its disk was failing; the events it could not write were reported to their sources as not delivered"
            );
        }
    }

    /// Gives up on `n` events the failing disk would not take before the process stops:
    /// their finalizers are dropped (their sources hear "not delivered"), and they are
    /// counted as dropped, so that received + dropped is what the sources offered.
    fn abandon(&mut self, n: u64) {
        self.abandoned += n;
        SinkMetrics::add(&self.shared.metrics.dropped, n);
    }

    /// Writes one batch as records of about `TARGET_RECORD_BYTES`.
    fn write(&mut self, mut events: Vec<LogEvent>) {
        let per_record = (TARGET_RECORD_BYTES / self.bytes_per_event.max(1)).max(1);
        while events.len() > per_record {
            let rest = events.split_off(per_record);
            self.write_record(events);
            events = rest;
        }
        self.write_record(events);
    }

    /// Writes events as one record. Events it does not write (`drop_newest`, or the sink is
    /// gone) have their finalizers settled or dropped, which reports them to their sources as
    /// not delivered.
    fn write_record(&mut self, mut events: Vec<LogEvent>) {
        if events.is_empty() {
            return;
        }
        // Only tracked events wait for the fsync's verdict; collecting the others too (all of
        // them, for stdin) grew and freed a large vector every group commit.
        let finalizers: Vec<EventFinalizer> = events
            .iter_mut()
            .map(LogEvent::take_finalizer)
            .filter(EventFinalizer::is_tracked)
            .collect();
        let n = events.len() as u64;
        let count = events.len() as u32;
        let sequence = self.next_sequence;
        let mut record = self.shared.store.record_buffer();
        record.reserve(events.len() * self.bytes_per_event + 64);
        record::encode(&events, sequence, &mut record);
        let len = record.len() as u64;
        self.bytes_per_event = (record.len() / events.len()).max(1);
        while !self.shared.has_room(len) {
            match self.when_full {
                WhenFull::DropNewest => {
                    SinkMetrics::add(&self.shared.metrics.dropped, n);
                    for mut finalizer in finalizers {
                        finalizer.settle(DeliveryStatus::Errored);
                    }
                    return;
                }
                WhenFull::Block if self.shared.reader_gone.load(Ordering::Acquire) => {
                    // No room will come in this run (the sink is gone, the process stops):
                    // dropping the finalizers reports these events as not delivered, and the
                    // thread can end and release the buffer.
                    SinkMetrics::add(&self.shared.metrics.dropped, n);
                    return;
                }
                WhenFull::Block => {
                    // Never hold back the acknowledgement of what is already written while
                    // waiting for the sink to make room.
                    self.shared.commits.commit_now();
                    self.shared.space.wait(Duration::from_millis(100));
                }
            }
        }
        while self.shared.store.unconfirmed_bytes() > MAX_UNCONFIRMED_BYTES
            && !self.shared.reader_gone.load(Ordering::Acquire)
        {
            // The commit wakes this thread.
            self.shared.commits.commit_now();
            self.shared.space.wait(Duration::from_millis(100));
        }
        let mut backoff = Backoff::default();
        let location = loop {
            if self.shared.faulted.load(Ordering::Acquire) {
                // A group commit failed: take nothing more until one succeeds.
                if self.shared.reader_gone.load(Ordering::Acquire) {
                    self.abandon(n);
                    return;
                }
                self.shared.space.wait(Duration::from_millis(100));
                continue;
            }
            match self.shared.store.append(sequence, record, count) {
                Ok(location) => break location,
                Err((e, returned)) => {
                    record = returned;
                    SinkMetrics::add(&self.shared.metrics.buffer_errors, 1);
                    let wait = backoff.failed();
                    if let Some(held_back) = self.shared.logs.write.allow() {
                        tracing::error!(error = %e, events = n, held_back, retry_in_ms = wait.as_millis() as u64, "cannot write to the disk buffer; input waits and the write is tried again");
                    }
                    if self.shared.reader_gone.load(Ordering::Acquire) {
                        // The process is stopping: these events were never acknowledged, and
                        // dropping their finalizers reports them as not delivered.
                        self.abandon(n);
                        return;
                    }
                    self.shared.space.wait(wait);
                }
            }
        };
        if backoff.failing() {
            let failures = backoff.succeeded();
            tracing::info!(failures, "the disk buffer writes again");
        }
        {
            // Only while the reader keeps up; otherwise it reads this record from disk.
            let mut hot = self.shared.hot.lock().unwrap_or_else(PoisonError::into_inner);
            if hot.len() < HOT_RECORDS {
                hot.push_back(HotRecord {
                    sequence,
                    location,
                    events,
                });
            }
        }
        self.next_sequence += n;
        self.shared.bytes.fetch_add(len, Ordering::AcqRel);
        SinkMetrics::add(&self.shared.metrics.buffered_bytes, len);
        self.shared
            .enqueued
            .written(sequence, ferry_core::monotonic_us(), &self.shared.metrics);
        self.shared.events.fetch_add(n, Ordering::AcqRel);
        SinkMetrics::add(&self.shared.metrics.received, n);
        SinkMetrics::add(&self.shared.metrics.buffered, n);
        self.shared.commits.appended(finalizers, self.next_sequence);
        self.shared.appended.wake();
    }
}

/// The commit thread: fsyncs what was appended `interval` after the first record of it (or at
/// once when asked), then settles its events' finalizers; retries a failed commit with
/// back-off; deletes the records the sink settled. Ends once the write thread has stopped,
/// everything is committed and the sink's end is gone.
pub(super) fn commit_loop(shared: Arc<Shared>, interval: Duration) {
    let _gone = CommitThreadGone(shared.clone());
    let commits = &shared.commits;
    let mut sync_backoff = Backoff::default();
    let mut retry_sync_at: Option<Instant> = None;
    let mut remove_backoff = Backoff::default();
    let mut failed_removals: Vec<u64> = Vec::new();
    let mut retry_removals_at: Option<Instant> = None;
    let mut unsynced = commits.lock();
    loop {
        let removals_due =
            !failed_removals.is_empty() && retry_removals_at.is_none_or(|at| Instant::now() >= at);
        if !unsynced.settled.is_empty() || removals_due {
            let mut batch = std::mem::take(&mut failed_removals);
            batch.append(&mut unsynced.settled);
            drop(unsynced);
            failed_removals = shared.remove_settled(batch);
            // Kept current (sled writes it out within its flush interval), so that a clean
            // stop leaves counters that agree with the ledger.
            let _ = shared.store.write_totals(shared.totals());
            if failed_removals.is_empty() {
                remove_backoff.succeeded();
                retry_removals_at = None;
            } else {
                retry_removals_at = Some(Instant::now() + remove_backoff.failed());
            }
            // On to the commit, not back to the deletions: a steady stream of settling must
            // not hold back the acknowledgements.
            unsynced = commits.lock();
        }
        let now = Instant::now();
        let reader_gone = shared.reader_gone.load(Ordering::Acquire);
        // When to wake up next, at the latest.
        let mut wake_at = retry_removals_at.filter(|_| !failed_removals.is_empty());
        if let Some(since) = unsynced.since {
            let due = if unsynced.now || unsynced.closed {
                now
            } else {
                since + interval
            };
            let due = retry_sync_at.map_or(due, |at| due.max(at));
            if now >= due {
                // Every one of these records was appended before the fsync starts.
                let finalizers = std::mem::take(&mut unsynced.pending);
                let next_sequence = unsynced.next_sequence;
                unsynced.since = None;
                unsynced.now = false;
                drop(unsynced);
                match shared.store.sync(shared.totals(), next_sequence) {
                    Ok(()) => {
                        for mut finalizer in finalizers {
                            finalizer.settle(DeliveryStatus::Delivered);
                        }
                        shared.confirmed_below.fetch_max(next_sequence, Ordering::AcqRel);
                        // A writer may wait for the unconfirmed records to be confirmed.
                        shared.space.wake();
                        retry_sync_at = None;
                        if sync_backoff.failing() {
                            let failures = sync_backoff.succeeded();
                            tracing::info!(
                                failures,
                                "the disk buffer's fsync works again; its events are acknowledged"
                            );
                            shared.faulted.store(false, Ordering::Release);
                            shared.space.wake();
                        }
                        shared.appended.wake();
                        unsynced = commits.lock();
                    }
                    Err(e) => {
                        SinkMetrics::add(&shared.metrics.buffer_errors, 1);
                        shared.faulted.store(true, Ordering::Release);
                        let wait = sync_backoff.failed();
                        retry_sync_at = Some(Instant::now() + wait);
                        if let Some(held_back) = shared.logs.sync.allow() {
                            tracing::error!(error = %e, held_back, retry_in_ms = wait.as_millis() as u64, "disk buffer fsync failed; its latest events are written again and not acknowledged until an fsync succeeds; input waits");
                        }
                        unsynced = commits.lock();
                        if unsynced.closed && reader_gone {
                            // Stopping, and the disk still fails: these events were never
                            // acknowledged; dropping their finalizers reports them as not
                            // delivered.
                            tracing::error!(
                                finalizers = finalizers.len(),
                                "the disk buffer stops with an fsync still failing; its latest events are reported as not delivered"
                            );
                            unsynced.since = None;
                            unsynced.pending.clear();
                            break;
                        }
                        // Not acknowledged: they wait for the next attempt.
                        let mut all = finalizers;
                        all.append(&mut unsynced.pending);
                        unsynced.pending = all;
                        unsynced.since.get_or_insert(since);
                    }
                }
                continue;
            }
            wake_at = Some(wake_at.map_or(due, |at| at.min(due)));
        } else if unsynced.closed {
            // Everything the writer wrote is durable: the reader may finish.
            shared.writer_done.store(true, Ordering::Release);
            shared.appended.wake();
            // Deletions still failing at the end are given up after a while: their records
            // are delivered again after the next start (at-least-once), and the buffer is
            // released.
            if reader_gone && (failed_removals.is_empty() || remove_backoff.failures() >= GIVE_UP_REMOVALS) {
                break;
            }
        }
        if !unsynced.settled.is_empty() {
            // Queued while this thread was busy: their notification came before this wait.
            continue;
        }
        unsynced = match wake_at {
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                commits
                    .due
                    .wait_timeout(unsynced, wait)
                    .map_or_else(|e| e.into_inner().0, |(guard, _)| guard)
            }
            None => commits.due.wait(unsynced).unwrap_or_else(PoisonError::into_inner),
        };
    }
}
