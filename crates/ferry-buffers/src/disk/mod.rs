//! The durable disk buffer: segment files of records, and a sled ledger of where they lie.
//!
//! ## What is safe when
//! - A source hears `Delivered` for an event once the record holding it is written **and
//!   fsynced** (group commit every `buffer.sync_interval_ms`, default 100 ms). From then on the
//!   buffer owns the event: it stays on disk until the sink settles it `Delivered` (Kafka
//!   confirmed) or `Rejected` (Kafka can never take it), and is read again after a restart.
//! - `kill -9` loses nothing that was acknowledged; it can lose (unacknowledged) events written
//!   in the last sync interval. A power loss likewise, given a disk that honours fsync.
//! - After a restart, every record not yet confirmed by Kafka is delivered again; events that
//!   were in flight to Kafka when the process died may be delivered twice.
//!
//! ## When the disk fails
//! A full disk, an I/O error or a failed fsync never drops what the buffer accepted and never
//! acknowledges what is not durable: the write side holds input back and retries with
//! back-off, counting each failure in `SinkMetrics::buffer_errors` and logging at a rate limit
//! (`writer.rs`); records a failed fsync may have lost are written again into a new segment
//! (`store.rs`); a record that cannot be read is retried, never deleted (`reader.rs`); a reserve
//! file lets a buffer on a full disk open and drain, and sled is reopened after a failed write
//! (it refuses every later one). All file I/O goes through a small seam (`fs.rs`) so that the
//! tests inject these faults and simulate power loss.
//!
//! ## Layout
//! Many events are packed into one checksummed record ([`record`]), appended to a segment
//! file; a sled ledger maps the sequence number of the record's first event to where it lies
//! ([`store`]), so sled sees one small operation per batch, not per event, and the payload
//! bytes never sit in sled's memory. A corrupt record is detected, counted, logged, deleted,
//! and skipped.
//!
//! ## Threads
//! Three threads of its own per buffer: the write thread encodes and appends records
//! ([`writer`]), the commit thread fsyncs them in groups, acknowledges their events and deletes
//! the records the sink settled (settling itself only queues them, so librdkafka's
//! delivery-report thread does no disk work), and the read thread reads and decodes records for
//! the sink ([`reader`]). While the sink keeps up, the
//! reader takes the events the writer just stored straight from memory (a few records at most),
//! so the steady state costs one encode and one append per record; a backlog, or the events of
//! an earlier run, are read back from the segments.
//!
//! Why long-lived threads and not tokio's `spawn_blocking`: its pool hands each call to
//! whichever thread is free and starts new ones under load, and every thread that allocates a
//! record gets its own allocator arena (glibc) or heap (mimalloc) that keeps freed memory for
//! itself. Measured with 256 KiB records, that cost tens to hundreds of MiB of resident memory
//! and made it vary from run to run.

#[cfg(test)]
mod fault_fs;
mod fs;
mod reader;
pub(crate) mod record;
mod record_pool;
mod retry;
mod store;
mod wakeup;
mod writer;

use std::collections::VecDeque;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use ferry_core::{BufferConfig, DeliveryStatus, LogEvent, SinkMetrics};
use futures::Stream;
use tokio::sync::mpsc;

use crate::BufferError;
use fs::{Filesystem, RealFs};
pub use record::CorruptRecord;
use record_pool::RecordPool;
use retry::FaultLogs;
use store::{Location, Store, Totals};
use wakeup::Wakeup;
use writer::{Commits, WriteThread};

/// Batches queued between the writers and the write thread.
const WRITE_QUEUE: usize = 4;
/// The size a record aims for: large enough that the ledger and the per-record work stay
/// small, small enough that one record is a reasonable batch in flight to the sink.
const TARGET_RECORD_BYTES: usize = 256 * 1024;
/// Batches read ahead for the sink.
const READ_AHEAD: usize = 2;
/// Records the writer hands the reader from memory while it keeps up (see the module docs).
const HOT_RECORDS: usize = 4;
/// Segment files roll over at `max_size / SEGMENTS_PER_MAX_SIZE`, within these bounds. A
/// segment is freed whole once drained, and up to two drained ones are kept to be written over
/// ([`store`]), so the files may hold a few segments beyond `max_size` (the oldest one's
/// drained part, the spares, the old tail of a reused one). Small enough that a modest backlog
/// already drains segments the writer can reuse.
const SEGMENTS_PER_MAX_SIZE: u64 = 8;
const MIN_SEGMENT_BYTES: u64 = 1024 * 1024;
const MAX_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// A stored record whose events are still in memory, for the reader.
struct HotRecord {
    sequence: u64,
    location: Location,
    events: Vec<LogEvent>,
}

struct Shared {
    store: Store,
    max_size: u64,
    /// Logical bytes and events of the stored records.
    bytes: AtomicU64,
    events: AtomicU64,
    metrics: Arc<SinkMetrics>,
    /// A record was deleted, or a failed sync recovered: the write thread may go on.
    space: Wakeup,
    /// A record was written or confirmed, or the writer is done: the read thread may have
    /// more to do.
    appended: Wakeup,
    writer_done: AtomicBool,
    /// The sink's end was dropped: nothing will be delivered, or make room, in this run.
    reader_gone: AtomicBool,
    /// The hand-over to the commit thread: appended records to confirm, settled records to
    /// delete.
    commits: Commits,
    /// Records numbered below this are durable; the reader reads nothing at or above it from
    /// disk (a failed sync may still move those records to another segment).
    confirmed_below: AtomicU64,
    /// The last sync failed: the writer takes no input until one succeeds (backpressure).
    faulted: AtomicBool,
    logs: FaultLogs,
    /// The latest stored records with their events, oldest first (see the module docs).
    hot: Mutex<VecDeque<HotRecord>>,
    /// Buffers for the records the reader reads back.
    records: Arc<RecordPool>,
    /// Records numbered below this were written before this run, maybe by a build that wrote
    /// format version 2 (see [`record`]).
    earlier_runs_below: u64,
    /// When the records not yet taken by the sink were written.
    enqueued: EnqueueTimes,
}

/// When each record not yet taken by the sink was written, by the sequence number it starts
/// at, so that the oldest waiting event's age can be read at scrape time
/// (`SinkMetrics::oldest_enqueued_us`). One lock per record (records pack many events).
/// Records from an earlier run count from when this run opened the buffer.
#[derive(Default)]
struct EnqueueTimes {
    times: Mutex<VecDeque<(u64, u64)>>,
}

impl EnqueueTimes {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, u64)>> {
        self.times.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A record starting at `sequence` was written at `at_us`.
    fn written(&self, sequence: u64, at_us: u64, metrics: &SinkMetrics) {
        let mut times = self.lock();
        times.push_back((sequence, at_us));
        if times.len() == 1 {
            metrics.oldest_enqueued_us.store(at_us, Ordering::Relaxed);
        }
    }

    /// The sink took every record numbered below `end` (skipped ones too).
    fn taken(&self, end: u64, metrics: &SinkMetrics) {
        let mut times = self.lock();
        while times.front().is_some_and(|&(first, _)| first < end) {
            times.pop_front();
        }
        let oldest = times.front().map_or(0, |&(_, at)| at);
        metrics.oldest_enqueued_us.store(oldest, Ordering::Relaxed);
    }
}

impl Shared {
    fn totals(&self) -> Totals {
        Totals {
            bytes: self.bytes.load(Ordering::Acquire),
            events: self.events.load(Ordering::Acquire),
        }
    }

    /// Whether a record of `len` bytes fits (an empty buffer takes any record, so that one
    /// larger than `max_size` cannot block forever).
    fn has_room(&self, len: u64) -> bool {
        let used = self.bytes.load(Ordering::Acquire);
        used == 0 || used + len <= self.max_size
    }

    /// Called when every copy of a record's events has been settled, on whatever thread
    /// settled the last one (librdkafka's delivery-report thread, for the Kafka sink): it only
    /// queues the record for the commit thread, which deletes it. No disk work, and no lock the
    /// write path holds while it writes.
    fn record_settled(&self, sequence: u64, status: DeliveryStatus) {
        if status == DeliveryStatus::Errored {
            // Not delivered (the sink stopped before Kafka confirmed): it stays on disk and is
            // read again at the next start.
            return;
        }
        if let Some(inline) = self.commits.settled(sequence) {
            // The commit thread is gone (the buffer is shutting down): delete it here.
            self.remove_settled(inline);
        }
    }

    /// Deletes settled records from the ledger; returns those that could not be deleted, to
    /// be tried again.
    fn remove_settled(&self, sequences: Vec<u64>) -> Vec<u64> {
        let mut failed = Vec::new();
        let mut removed = false;
        for sequence in sequences {
            if !failed.is_empty() {
                failed.push(sequence);
                continue;
            }
            match self.store.remove(sequence) {
                Ok(Some(location)) => {
                    // By what the ledger held, so that a record settled twice (or moved by a
                    // failed sync) is never subtracted twice.
                    SinkMetrics::sub(&self.bytes, u64::from(location.len));
                    SinkMetrics::sub(&self.metrics.buffered_bytes, u64::from(location.len));
                    SinkMetrics::sub(&self.events, u64::from(location.count));
                    removed = true;
                }
                Ok(None) => {}
                Err(e) => {
                    SinkMetrics::add(&self.metrics.buffer_errors, 1);
                    // Deleting is what frees the disk: the reserve is kept for this.
                    self.store.release_reserve();
                    if let Some(held_back) = self.logs.remove.allow() {
                        tracing::error!(error = %e, sequence, held_back, "cannot delete a delivered record from the disk buffer; trying again");
                    }
                    failed.push(sequence);
                }
            }
        }
        if removed {
            self.space.wake();
        }
        failed
    }
}

/// Writes into a disk buffer.
#[derive(Clone, Debug)]
pub struct DiskWriter {
    tx: mpsc::Sender<Vec<LogEvent>>,
}

impl DiskWriter {
    /// Queues `events` for the disk; they are acknowledged to their sources once fsynced.
    pub async fn write(&self, events: Vec<LogEvent>) -> Result<(), ferry_core::SendClosed> {
        self.tx.send(events).await.map_err(|_| ferry_core::SendClosed)
    }
}

/// Reads a disk buffer in order; ends when every writer is gone and everything written has
/// been handed out.
pub struct DiskReader {
    /// Each record's events with the sequence number it starts at.
    rx: mpsc::Receiver<(u64, Vec<LogEvent>)>,
    /// Told when this is dropped, so that the threads stop at once.
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DiskReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskReader").finish_non_exhaustive()
    }
}

impl Drop for DiskReader {
    fn drop(&mut self) {
        self.rx.close();
        self.shared.reader_gone.store(true, Ordering::Release);
        self.shared.metrics.oldest_enqueued_us.store(0, Ordering::Relaxed);
        // The read thread may sleep until the next append, the write thread until a record is
        // deleted: neither comes now.
        self.shared.appended.wake();
        self.shared.space.wake();
        self.shared.commits.wake();
    }
}

impl Stream for DiskReader {
    type Item = Vec<LogEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some((sequence, batch))) = &polled {
            // Taken by the sink: no longer waiting in the buffer (still on disk until the sink
            // settles it, counted by the sink as in flight), as for a memory buffer.
            SinkMetrics::sub(&self.shared.metrics.buffered, batch.len() as u64);
            let end = sequence.saturating_add(batch.len() as u64);
            self.shared.enqueued.taken(end, &self.shared.metrics);
        }
        polled.map(|record| record.map(|(_, batch)| batch))
    }
}

/// Opens the disk buffer in `dir` and starts its threads.
pub(crate) fn open(
    dir: &Path,
    config: &BufferConfig,
    metrics: Arc<SinkMetrics>,
) -> Result<(DiskWriter, DiskReader), BufferError> {
    open_with(dir, config, metrics, Arc::new(RealFs))
}

/// [`open`] on the given files (tests inject faults through them).
fn open_with(
    dir: &Path,
    config: &BufferConfig,
    metrics: Arc<SinkMetrics>,
    fs: Arc<dyn Filesystem>,
) -> Result<(DiskWriter, DiskReader), BufferError> {
    let max_size = config.max_size.unwrap_or(u64::MAX);
    let segment_bytes = (max_size / SEGMENTS_PER_MAX_SIZE).clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES);
    let store = Store::open(dir, segment_bytes, fs)?;
    // The ledger is the truth; the persisted counters lag it after an unclean stop (records
    // deleted after the last sync), and counters taken from them went wrong by that much.
    let (_, totals) = store.ledger_totals()?;
    let persisted = store.persisted_totals();
    if persisted != totals {
        tracing::warn!(
            path = %dir.display(),
            events = totals.events,
            bytes = totals.bytes,
            persisted_events = persisted.events,
            persisted_bytes = persisted.bytes,
            "the disk buffer's counters disagreed with its ledger (an unclean stop); using the ledger's"
        );
    }
    let next_sequence = store.next_sequence()?;
    store.remove_unreferenced_segments(next_sequence)?;
    if let Err(e) = store.ensure_reserve() {
        tracing::warn!(path = %dir.display(), error = %e, "no room on the disk for the disk buffer's reserved space; nothing new is written until there is (the backlog is delivered)");
    }
    let first_sequence = store.first()?.map(|(first, _)| first);
    if let Some(first) = first_sequence {
        tracing::info!(path = %dir.display(), events = totals.events, bytes = totals.bytes, first, "disk buffer holds events from an earlier run; delivering them first");
    }
    SinkMetrics::add(&metrics.buffered, totals.events);
    SinkMetrics::add(&metrics.buffered_bytes, totals.bytes);
    let enqueued = EnqueueTimes::default();
    if totals.events > 0 {
        // Records from an earlier run: their age counts from now, until the last of them
        // (numbered below `next_sequence`) is taken.
        enqueued.written(
            next_sequence.saturating_sub(1),
            ferry_core::monotonic_us(),
            &metrics,
        );
    }
    let shared = Arc::new(Shared {
        store,
        max_size,
        bytes: AtomicU64::new(totals.bytes),
        events: AtomicU64::new(totals.events),
        metrics,
        space: Wakeup::default(),
        appended: Wakeup::default(),
        writer_done: AtomicBool::new(false),
        reader_gone: AtomicBool::new(false),
        commits: Commits::new(next_sequence),
        confirmed_below: AtomicU64::new(next_sequence),
        faulted: AtomicBool::new(false),
        logs: FaultLogs::default(),
        hot: Mutex::new(VecDeque::with_capacity(HOT_RECORDS)),
        records: Arc::default(),
        earlier_runs_below: next_sequence,
        enqueued,
    });
    let (in_tx, in_rx) = mpsc::channel(WRITE_QUEUE);
    let (out_tx, out_rx) = mpsc::channel(READ_AHEAD);
    let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(body)
            .map(|handle| handle.thread().clone())
            .map_err(|e| BufferError::Io {
                path: dir.to_owned(),
                source: e,
            })
    };
    // If a later spawn fails, the threads already started stop by themselves: their channel
    // ends are dropped with this call's.
    let interval = Duration::from_millis(config.sync_interval_ms.max(1));
    let commit_shared = shared.clone();
    spawn(
        "ferry-disk-sync",
        Box::new(move || writer::commit_loop(commit_shared, interval)),
    )?;
    let read_shared = shared.clone();
    let first = first_sequence.unwrap_or(next_sequence);
    let reader_thread = spawn(
        "ferry-disk-read",
        Box::new(move || reader::read_loop(read_shared, out_tx, first)),
    )?;
    shared.appended.register(reader_thread);
    let write_thread = WriteThread {
        shared: shared.clone(),
        when_full: config.when_full,
        next_sequence,
        bytes_per_event: 256,
        abandoned: 0,
    };
    let writer_thread = spawn("ferry-disk-write", Box::new(move || write_thread.run(in_rx)))?;
    shared.space.register(writer_thread);
    Ok((DiskWriter { tx: in_tx }, DiskReader { rx: out_rx, shared }))
}

/// What `ferry buffer inspect` and `ferry buffer check` report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BufferReport {
    /// Records stored.
    pub records: u64,
    /// Events in them.
    pub events: u64,
    /// Logical bytes of the records.
    pub bytes: u64,
    /// Size of the database files.
    pub size_on_disk: u64,
    /// The oldest event's timestamp, if the first record could be read and had one.
    pub oldest: Option<String>,
    /// Records that failed verification: (sequence, why).
    pub corrupt: Vec<(u64, String)>,
}

/// Reads a buffer directory without changing it. With `verify`, every record's checksum is
/// checked (reading the whole buffer); otherwise only the counters and the first record are
/// read.
pub fn inspect(dir: &Path, verify: bool) -> Result<BufferReport, BufferError> {
    if !dir.join("db").exists() {
        return Err(BufferError::NotABuffer { path: dir.to_owned() });
    }
    let store = Store::open(dir, MAX_SEGMENT_BYTES, Arc::new(RealFs))?;
    // From the ledger, not the persisted counters: those lag it after an unclean stop (a
    // drained buffer used to report its last synced backlog forever).
    let (records, totals) = store.ledger_totals()?;
    let mut report = BufferReport {
        records,
        events: totals.events,
        bytes: totals.bytes,
        size_on_disk: store.size_on_disk(),
        ..BufferReport::default()
    };
    if let Some((sequence, first)) = store.first()? {
        report.oldest = store
            .read(first)
            .ok()
            .and_then(|bytes| record::decode(&Bytes::from(bytes), sequence, true).ok())
            .and_then(|events| events.first().and_then(LogEvent::timestamp))
            .map(|t| t.to_rfc3339());
    }
    if verify {
        report.records = 0;
        report.events = 0;
        report.bytes = 0;
        let mut cursor = None;
        while let Some((sequence, location)) = store.next_after(cursor)? {
            cursor = Some(sequence);
            report.records += 1;
            report.bytes += u64::from(location.len);
            let checked = store.read(location).map_err(|e| e.to_string()).and_then(|bytes| {
                record::decode(&Bytes::from(bytes), sequence, true).map_err(|e| e.to_string())
            });
            match checked {
                Ok(events) => report.events += events.len() as u64,
                Err(e) => report.corrupt.push((sequence, e)),
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod tests;
