//! The read side: a thread that hands the sink the stored records in order, from memory while
//! it keeps up with the writer, from the segment files otherwise, and decodes them itself (the
//! tokio workers run the sink, the stage every event waits for).
//!
//! A record not yet durable (numbered at or above `Shared::confirmed_below`) may be moving to
//! another segment after a failed fsync: if reading it fails or finds other bytes, that says
//! nothing about the record, so the reader waits for the commit and looks again. A read that
//! fails with an I/O error is tried again, with back-off, for as long as it takes:
//! only a record that is there and fails its checks (a checksum mismatch, stale or missing
//! bytes) is corrupt and deleted, since deleting a record that merely could not be read would
//! lose acknowledged events.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferry_core::{BatchNotifier, DeliveryStatus, LogEvent, SinkMetrics};
use tokio::sync::mpsc;

use super::retry::Backoff;
use super::store::Location;
use super::{HotRecord, Shared, record};
use crate::BufferError;

/// How long the reader sleeps when it has caught up, at most: it is woken by every append, so
/// this only bounds how late it notices that the sink is gone.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// Reads records from `first` on and sends them to the sink until the writer is done and
/// everything is read, or the sink is gone.
pub(super) fn read_loop(shared: Arc<Shared>, out: mpsc::Sender<(u64, Vec<LogEvent>)>, first: u64) {
    // The record read last, and the sequence number the next one starts at.
    let mut cursor: Option<u64> = None;
    let mut expected: Option<u64> = Some(first);
    let mut backoff = Backoff::default();
    loop {
        // Read the flag before looking for records: a record written after a `None` answer
        // was written before the flag was set, so it cannot be missed.
        let writer_done = shared.writer_done.load(Ordering::Acquire);
        let (sequence, location, mut events) = match take_hot(&shared, expected) {
            Some(hot) => (hot.sequence, hot.location, hot.events),
            None => match read_next(&shared, cursor) {
                ReadNext::Record(sequence, location, events) => (sequence, location, events),
                ReadNext::Skipped(sequence, location) => {
                    cursor = Some(sequence);
                    expected = sequence.checked_add(u64::from(location.count));
                    continue;
                }
                ReadNext::Nothing => {
                    if writer_done || out.is_closed() {
                        return;
                    }
                    shared.appended.wait(IDLE_WAIT);
                    continue;
                }
                ReadNext::Unconfirmed => {
                    // The sink waits for it: commit now rather than at the end of the
                    // interval (the commit wakes this thread).
                    shared.commits.commit_now();
                    if out.is_closed() {
                        return;
                    }
                    shared.appended.wait(IDLE_WAIT);
                    continue;
                }
                ReadNext::Failed(sequence, e) => {
                    SinkMetrics::add(&shared.metrics.buffer_errors, 1);
                    let wait = backoff.failed();
                    if let Some(held_back) = shared.logs.read.allow() {
                        tracing::error!(sequence, error = %e, held_back, retry_in_ms = wait.as_millis() as u64, "cannot read a record of the disk buffer; it is kept and tried again");
                    }
                    if out.is_closed() {
                        return;
                    }
                    std::thread::sleep(wait);
                    continue;
                }
            },
        };
        if backoff.failing() {
            let failures = backoff.succeeded();
            tracing::info!(failures, sequence, "the disk buffer reads again");
        }
        cursor = Some(sequence);
        expected = sequence.checked_add(u64::from(location.count));
        let settled = shared.clone();
        let notifier = BatchNotifier::with_callback(move |status| settled.record_settled(sequence, status));
        for event in &mut events {
            event.attach_notifier(&notifier);
        }
        drop(notifier);
        if out.blocking_send((sequence, events)).is_err() {
            return;
        }
    }
}

/// The writer's copy of the record starting at `expected`, if it still has it.
fn take_hot(shared: &Shared, expected: Option<u64>) -> Option<HotRecord> {
    let expected = expected?;
    let mut hot = shared
        .hot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Records the reader already took from disk (it looked between the append and the hand-over).
    while hot.front().is_some_and(|r| r.sequence < expected) {
        hot.pop_front();
    }
    if hot.front().is_some_and(|r| r.sequence == expected) {
        hot.pop_front()
    } else {
        None
    }
}

enum ReadNext {
    Record(u64, Location, Vec<LogEvent>),
    /// A record skipped for good (reported, and deleted or settled).
    Skipped(u64, Location),
    Nothing,
    /// The next record is not durable yet and could not be read: look again after the commit.
    Unconfirmed,
    /// Not readable now: tried again.
    Failed(u64, String),
}

/// Why a record read from disk is not handed to the sink.
enum Unread {
    /// Its segment file is gone: deleted once drained, before the ledger's removal of the
    /// record reached the disk (an unclean stop), so it was delivered. Skipped.
    Gone(String),
    /// There, and damaged for good (missing bytes, a bad checksum, stale bytes): skipped and
    /// deleted.
    Corrupt(String),
    /// Not readable now (an I/O error) or not by this build (a newer format: until a newer
    /// build reads it): kept and tried again, since deleting it would lose acknowledged
    /// events.
    Retry(String),
}

/// Reads and decodes the durable record after `cursor`.
fn read_next(shared: &Shared, cursor: Option<u64>) -> ReadNext {
    let (sequence, location) = match shared.store.next_after(cursor) {
        Ok(Some(found)) => found,
        Ok(None) => return ReadNext::Nothing,
        Err(e) => return ReadNext::Failed(cursor.unwrap_or(0), e.to_string()),
    };
    let mut buffer = shared.records.take();
    let decoded = match shared.store.read_into(location, &mut buffer) {
        Ok(()) => {
            let predates_run = sequence < shared.earlier_runs_below;
            record::decode(&shared.records.share(buffer), sequence, predates_run).map_err(|e| {
                if record::is_from_a_newer_build(&e) {
                    Unread::Retry(format!("{e}; written by a newer ferry, which must read it"))
                } else {
                    Unread::Corrupt(e.to_string())
                }
            })
        }
        Err(BufferError::Io { path, source }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(Unread::Gone(path.display().to_string()))
        }
        Err(BufferError::Io { path, source }) if source.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(Unread::Corrupt(format!("{}: {source}", path.display())))
        }
        Err(e) => Err(Unread::Retry(e.to_string())),
    };
    let decoded = match decoded {
        Err(_) if sequence >= shared.confirmed_below.load(Ordering::Acquire) => {
            // Not durable yet, so maybe being written again elsewhere: no verdict before the
            // commit (which wakes this thread).
            return ReadNext::Unconfirmed;
        }
        Err(Unread::Gone(_) | Unread::Corrupt(_)) if !still_listed(shared, sequence, location) => {
            // The record moved or was settled while we read: look again.
            Err(Unread::Retry("the record moved while it was read".into()))
        }
        other => other,
    };
    match decoded {
        Ok(events) => ReadNext::Record(sequence, location, events),
        Err(Unread::Gone(path)) => {
            tracing::warn!(
                sequence,
                path,
                "a record's segment file is gone: it was delivered before an unclean stop (or the file was deleted by hand); skipped"
            );
            SinkMetrics::sub(&shared.metrics.buffered, u64::from(location.count));
            shared.record_settled(sequence, DeliveryStatus::Delivered);
            ReadNext::Skipped(sequence, location)
        }
        Err(Unread::Retry(e)) => ReadNext::Failed(sequence, e),
        Err(Unread::Corrupt(e)) => {
            tracing::error!(sequence, error = %e, "corrupt record in the disk buffer: skipped and deleted");
            SinkMetrics::add(&shared.metrics.rejected, u64::from(location.count));
            SinkMetrics::sub(&shared.metrics.buffered, u64::from(location.count));
            shared.record_settled(sequence, DeliveryStatus::Rejected);
            ReadNext::Skipped(sequence, location)
        }
    }
}

/// Whether the ledger still lists the record at `sequence` where it was read.
fn still_listed(shared: &Shared, sequence: u64, location: Location) -> bool {
    // An error reading the ledger: do not judge the record now.
    matches!(shared.store.location(sequence), Ok(Some(now)) if now == location)
}
