//! The read side: a thread that hands the sink the stored records in order, from memory while
//! it keeps up with the writer, from the segment files otherwise, and decodes them itself (the
//! tokio workers run the sink, the stage every event waits for).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferry_core::{BatchNotifier, DeliveryStatus, LogEvent, SinkMetrics};
use tokio::sync::mpsc;

use super::store::Location;
use super::{HotRecord, READ_ATTEMPTS, Shared, record};
use crate::BufferError;

/// How long the reader sleeps when it has caught up, at most: it is woken by every append, so
/// this only bounds how late it notices that the sink is gone.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// How long an unreadable record waits before the next attempt.
const RETRY_WAIT: Duration = Duration::from_secs(1);

/// Reads records from `first` on and sends them to the sink until the writer is done and
/// everything is read, or the sink is gone.
pub(super) fn read_loop(shared: Arc<Shared>, out: mpsc::Sender<Vec<LogEvent>>, first: u64) {
    // The record read last, and the sequence number the next one starts at.
    let mut cursor: Option<u64> = None;
    let mut expected: Option<u64> = Some(first);
    // Failed reads of the record after `cursor` in a row (see `READ_ATTEMPTS`).
    let mut failed_reads = 0;
    loop {
        // Read the flag before looking for records: a record written after a `None` answer
        // was written before the flag was set, so it cannot be missed.
        let writer_done = shared.writer_done.load(Ordering::Acquire);
        let (sequence, location, mut events) = match take_hot(&shared, expected) {
            Some(hot) => (hot.sequence, hot.location, hot.events),
            None => match read_next(&shared, cursor, failed_reads + 1 >= READ_ATTEMPTS) {
                ReadNext::Record(sequence, location, events) => (sequence, location, events),
                ReadNext::Skipped(sequence, location) => {
                    failed_reads = 0;
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
                ReadNext::Failed => {
                    failed_reads += 1;
                    std::thread::sleep(RETRY_WAIT);
                    if out.is_closed() {
                        return;
                    }
                    continue;
                }
            },
        };
        failed_reads = 0;
        cursor = Some(sequence);
        expected = sequence.checked_add(u64::from(location.count));
        let settled = shared.clone();
        let notifier =
            BatchNotifier::with_callback(move |status| settled.record_settled(sequence, location, status));
        for event in &mut events {
            event.attach_notifier(&notifier);
        }
        drop(notifier);
        if out.blocking_send(events).is_err() {
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
    Failed,
}

/// Why a record read from disk is not handed to the sink.
enum Unread {
    /// Its segment file is gone: deleted once drained, before the ledger's removal of the
    /// record reached the disk (an unclean stop), so it was delivered. Skipped.
    Gone(String),
    /// Gone or damaged for good (missing bytes, a bad checksum, stale bytes): skipped and
    /// deleted.
    Corrupt(String),
    /// Not readable now (an I/O error: for `READ_ATTEMPTS` seconds) or not by this build (a
    /// newer format: until a newer build reads it): kept and tried again, since deleting it
    /// would lose acknowledged events.
    Retry(String),
}

/// Reads and decodes the record after `cursor`. With `last_attempt`, a record that still
/// cannot be read (an I/O error) is skipped as corrupt rather than tried again: a failing
/// sector must not hold up everything behind it for good.
fn read_next(shared: &Shared, cursor: Option<u64>, last_attempt: bool) -> ReadNext {
    let (sequence, location) = match shared.store.next_after(cursor) {
        Ok(Some(found)) => found,
        Ok(None) => return ReadNext::Nothing,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the disk buffer; trying again in 1 s");
            return ReadNext::Failed;
        }
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
        Err(e) if last_attempt => Err(Unread::Corrupt(format!(
            "{e} (still failing after {READ_ATTEMPTS} attempts)"
        ))),
        Err(e) => Err(Unread::Retry(e.to_string())),
    };
    match decoded {
        Ok(events) => ReadNext::Record(sequence, location, events),
        Err(Unread::Gone(path)) => {
            tracing::warn!(
                sequence,
                path,
                "a record's segment file is gone: it was delivered before an unclean stop (or the file was deleted by hand); skipped"
            );
            shared.record_settled(sequence, location, DeliveryStatus::Delivered);
            ReadNext::Skipped(sequence, location)
        }
        Err(Unread::Retry(e)) => {
            tracing::error!(sequence, error = %e, "cannot read a record of the disk buffer; it is kept and tried again in 1 s");
            ReadNext::Failed
        }
        Err(Unread::Corrupt(e)) => {
            tracing::error!(sequence, error = %e, "corrupt record in the disk buffer: skipped and deleted");
            SinkMetrics::add(&shared.metrics.rejected, u64::from(location.count));
            shared.record_settled(sequence, location, DeliveryStatus::Rejected);
            ReadNext::Skipped(sequence, location)
        }
    }
}
