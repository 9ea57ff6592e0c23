//! The write side: a thread that turns batches into records and appends them, and a thread
//! that makes them durable in group commits and then tells their sources.
//!
//! Why two threads of their own rather than tokio tasks sending jobs to an I/O thread: every
//! job was a round trip (a tokio worker wakes the I/O thread, which wakes a worker again), and
//! with one record per ~1,700 events those wake-ups were a good share of what the disk buffer
//! cost on a 2-core machine. Now a batch wakes the write thread once, and the commit thread
//! wakes once per `sync_interval_ms`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ferry_core::{DeliveryStatus, EventFinalizer, LogEvent, SinkMetrics, WhenFull};
use tokio::sync::mpsc;

use super::{HOT_RECORDS, HotRecord, Shared, TARGET_RECORD_BYTES, record};

/// What the write thread has appended and the commit thread has not yet made durable.
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
}

/// The hand-over between the write thread and the commit thread.
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
    fn commit_now(&self) {
        let mut unsynced = self.lock();
        if unsynced.since.is_some() && !unsynced.now {
            unsynced.now = true;
            drop(unsynced);
            self.due.notify_one();
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.due.notify_one();
    }
}

struct ClosesOnDrop(Arc<Commits>);

impl Drop for ClosesOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Tells the reader that nothing more will be written, when the commit thread ends (also by a
/// panic: the reader must not wait for it forever).
struct WriterDone(Arc<Shared>);

impl Drop for WriterDone {
    fn drop(&mut self) {
        self.0.writer_done.store(true, Ordering::Release);
        self.0.appended.wake();
    }
}

/// The state of the write thread.
pub(super) struct WriteThread {
    pub(super) shared: Arc<Shared>,
    pub(super) commits: Arc<Commits>,
    pub(super) when_full: WhenFull,
    pub(super) next_sequence: u64,
    /// Encoded bytes per event in the last record, to size the next ones.
    pub(super) bytes_per_event: usize,
    /// The record being built, kept for the next one.
    pub(super) record: Vec<u8>,
}

impl WriteThread {
    /// Writes every batch that arrives until all writers are gone, then lets the commit thread
    /// finish.
    pub(super) fn run(mut self, mut input: mpsc::Receiver<Vec<LogEvent>>) {
        // Also if this thread panics: the commit thread must not wait for it forever.
        let _closes = ClosesOnDrop(self.commits.clone());
        while let Some(events) = input.blocking_recv() {
            self.write(events);
        }
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

    /// Writes events as one record. Events it cannot write have their finalizers dropped,
    /// which reports them to their sources as not delivered.
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
        self.record.clear();
        self.record.reserve(events.len() * self.bytes_per_event + 64);
        record::encode(&events, sequence, &mut self.record);
        let len = self.record.len() as u64;
        self.bytes_per_event = (self.record.len() / events.len()).max(1);
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
                    return;
                }
                WhenFull::Block => {
                    // Never hold back the acknowledgement of what is already written while
                    // waiting for the sink to make room.
                    self.commits.commit_now();
                    self.shared.space.wait(Duration::from_millis(100));
                }
            }
        }
        let location = match self.shared.store.append(sequence, &self.record, count) {
            Ok(location) => location,
            Err(e) => {
                tracing::error!(error = %e, "cannot write to the disk buffer; these events are reported as not delivered");
                return;
            }
        };
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
        self.shared.events.fetch_add(n, Ordering::AcqRel);
        SinkMetrics::add(&self.shared.metrics.received, n);
        SinkMetrics::add(&self.shared.metrics.buffered, n);
        self.commits.appended(finalizers, self.next_sequence);
        self.shared.appended.wake();
    }
}

/// The commit thread: fsyncs what was appended `interval` after the first record of it (or at
/// once when asked), then settles its events' finalizers; after the write thread stopped, a
/// last commit, and the reader is told that nothing more will come.
pub(super) fn commit_loop(shared: Arc<Shared>, commits: Arc<Commits>, interval: Duration) {
    let _done = WriterDone(shared.clone());
    let mut unsynced = commits.lock();
    loop {
        let Some(since) = unsynced.since else {
            if unsynced.closed {
                break;
            }
            unsynced = commits.due.wait(unsynced).unwrap_or_else(PoisonError::into_inner);
            continue;
        };
        let due = since + interval;
        let now = Instant::now();
        if now < due && !unsynced.now && !unsynced.closed {
            unsynced = commits
                .due
                .wait_timeout(unsynced, due - now)
                .map_or_else(|e| e.into_inner().0, |(guard, _)| guard);
            continue;
        }
        // Every one of these records was appended before the fsync starts.
        let finalizers = std::mem::take(&mut unsynced.pending);
        let next_sequence = unsynced.next_sequence;
        unsynced.since = None;
        unsynced.now = false;
        drop(unsynced);
        commit(&shared, finalizers, next_sequence);
        unsynced = commits.lock();
    }
}

/// fsyncs the buffer, then tells the sources of `finalizers` whether their events are safe.
fn commit(shared: &Shared, finalizers: Vec<EventFinalizer>, next_sequence: u64) {
    let status = match shared.store.sync(shared.totals(), next_sequence) {
        Ok(()) => DeliveryStatus::Delivered,
        Err(e) => {
            tracing::error!(error = %e, "disk buffer fsync failed; its latest events are reported as not delivered");
            DeliveryStatus::Errored
        }
    };
    for mut finalizer in finalizers {
        finalizer.settle(status);
    }
}
