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
//! ## Layout
//! Many events are packed into one checksummed record ([`record`]), appended to a segment
//! file; a sled ledger maps the sequence number of the record's first event to where it lies
//! ([`store`]), so sled sees one small operation per batch, not per event, and the payload
//! bytes never sit in sled's memory. A corrupt record is detected, counted, logged, deleted,
//! and skipped.
//!
//! ## The reader
//! While the sink keeps up, the reader takes the events the writer just stored straight from
//! memory (a few records at most), so the steady state costs one encode and one append per
//! record; a backlog, or the events of an earlier run, are read back from the segments.

mod io_thread;
mod record;
mod record_pool;
mod store;

use std::collections::VecDeque;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use ferry_core::{
    BatchNotifier, BufferConfig, DeliveryStatus, EventFinalizer, LogEvent, SinkMetrics, WhenFull,
};
use futures::Stream;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::BufferError;
use io_thread::IoThread;
pub use record::CorruptRecord;
use record_pool::RecordPool;
use store::{Location, Store, Totals};

/// Batches queued between writers and the disk writer task.
const WRITE_QUEUE: usize = 4;
/// The size a record aims for: large enough that the ledger and the per-record work stay
/// small, small enough that one record is a reasonable batch in flight to the sink.
const TARGET_RECORD_BYTES: usize = 256 * 1024;
/// Reads of a record that fail with an I/O error before it is skipped as corrupt, one second
/// apart: long enough for a transient shortage (file descriptors, memory) to pass.
const READ_ATTEMPTS: u32 = if cfg!(test) { 3 } else { 10 };
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
    /// A record was deleted: room for writers waiting on a full buffer.
    space: Notify,
    /// A record was written: the reader may have more to read.
    appended: Notify,
    writer_done: AtomicBool,
    /// The latest stored records with their events, oldest first (see the module docs).
    hot: Mutex<VecDeque<HotRecord>>,
    /// Buffers for the records the reader reads back.
    records: Arc<RecordPool>,
    /// Records numbered below this were written before this run, maybe by a build that wrote
    /// format version 2 (see [`record`]).
    earlier_runs_below: u64,
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

    /// Called when every copy of a record's events has been settled.
    fn record_settled(&self, sequence: u64, location: Location, status: DeliveryStatus) {
        if status == DeliveryStatus::Errored {
            // Not delivered (the sink stopped before Kafka confirmed): it stays on disk and is
            // read again at the next start.
            return;
        }
        let events = u64::from(location.count);
        let bytes = u64::from(location.len);
        // sled's remove appends to its in-memory log; it does not wait for the disk.
        if let Err(e) = self.store.remove(sequence, location) {
            tracing::error!(error = %e, sequence, "cannot delete a delivered record from the disk buffer; it will be delivered again after a restart");
            return;
        }
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.events.fetch_sub(events, Ordering::AcqRel);
        SinkMetrics::sub(&self.metrics.buffered, events);
        self.space.notify_one();
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
#[derive(Debug)]
pub struct DiskReader {
    rx: mpsc::Receiver<Vec<LogEvent>>,
}

impl Stream for DiskReader {
    type Item = Vec<LogEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Opens the disk buffer in `dir` and starts its writer and reader tasks (must be called
/// inside a tokio runtime).
pub(crate) fn open(
    dir: &Path,
    config: &BufferConfig,
    metrics: Arc<SinkMetrics>,
) -> Result<(DiskWriter, DiskReader), BufferError> {
    let max_size = config.max_size.unwrap_or(u64::MAX);
    let segment_bytes = (max_size / SEGMENTS_PER_MAX_SIZE).clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES);
    let store = Store::open(dir, segment_bytes)?;
    let totals = store.totals();
    let next_sequence = store.next_sequence()?;
    store.remove_unreferenced_segments(next_sequence)?;
    let first_sequence = store.first()?.map(|(first, _)| first);
    if let Some(first) = first_sequence {
        tracing::info!(path = %dir.display(), events = totals.events, bytes = totals.bytes, first, "disk buffer holds events from an earlier run; delivering them first");
    }
    SinkMetrics::add(&metrics.buffered, totals.events);
    let shared = Arc::new(Shared {
        store,
        max_size,
        bytes: AtomicU64::new(totals.bytes),
        events: AtomicU64::new(totals.events),
        metrics,
        space: Notify::new(),
        appended: Notify::new(),
        writer_done: AtomicBool::new(false),
        hot: Mutex::new(VecDeque::with_capacity(HOT_RECORDS)),
        records: Arc::default(),
        earlier_runs_below: next_sequence,
    });
    let (in_tx, in_rx) = mpsc::channel(WRITE_QUEUE);
    let (out_tx, out_rx) = mpsc::channel(READ_AHEAD);
    let thread_error = |e: std::io::Error| BufferError::Io {
        path: dir.to_owned(),
        source: e,
    };
    let writer = WriterTask {
        shared: shared.clone(),
        next_sequence,
        sync_interval: Duration::from_millis(config.sync_interval_ms.max(1)),
        when_full: config.when_full,
        pending: Vec::new(),
        unsynced: false,
        bytes_per_event: 256,
        io: IoThread::spawn("ferry-disk-write").map_err(thread_error)?,
        record_buffer: Vec::new(),
        sync_io: Arc::new(IoThread::spawn("ferry-disk-sync").map_err(thread_error)?),
        sync_task: None,
    };
    tokio::spawn(writer.run(in_rx));
    let read_io = IoThread::spawn("ferry-disk-read").map_err(thread_error)?;
    tokio::spawn(read_loop(
        shared,
        read_io,
        out_tx,
        first_sequence.unwrap_or(next_sequence),
    ));
    Ok((DiskWriter { tx: in_tx }, DiskReader { rx: out_rx }))
}

struct WriterTask {
    shared: Arc<Shared>,
    next_sequence: u64,
    sync_interval: Duration,
    when_full: WhenFull,
    /// Finalizers of events written but not yet fsynced.
    pending: Vec<EventFinalizer>,
    /// Records were written since the last group commit started (tracked events or not: the
    /// commit is what makes them survive a crash).
    unsynced: bool,
    /// Encoded bytes per event in the last record, to size the next ones.
    bytes_per_event: usize,
    io: IoThread,
    /// The last record's buffer, back from the write thread for the next record.
    record_buffer: Vec<u8>,
    /// fsyncs run on their own thread while writing goes on: waiting for them stalled the
    /// writer (and so the sources) for the length of every flush.
    sync_io: Arc<IoThread>,
    /// The group commit in progress, if any (one at a time).
    sync_task: Option<tokio::task::JoinHandle<()>>,
}

impl WriterTask {
    async fn run(mut self, mut input: mpsc::Receiver<Vec<LogEvent>>) {
        let mut sync_at: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(sync_at.unwrap_or_else(Instant::now)), if sync_at.is_some() => {
                    sync_at = if self.start_sync() {
                        None
                    } else {
                        // The previous group commit is still running: look again shortly.
                        Some(Instant::now() + Duration::from_millis(5))
                    };
                }
                batch = input.recv() => match batch {
                    Some(events) => {
                        if self.write(events).await && sync_at.is_none() {
                            sync_at = Some(Instant::now() + self.sync_interval);
                        }
                    }
                    None => break,
                },
            }
        }
        self.sync().await;
        self.shared.writer_done.store(true, Ordering::Release);
        self.shared.appended.notify_one();
    }

    /// Writes one batch as records of about `TARGET_RECORD_BYTES`; returns whether something
    /// was written.
    async fn write(&mut self, mut events: Vec<LogEvent>) -> bool {
        let per_record = (TARGET_RECORD_BYTES / self.bytes_per_event.max(1)).max(1);
        let mut written = false;
        while events.len() > per_record {
            let rest = events.split_off(per_record);
            written |= self.write_record(events).await;
            events = rest;
        }
        written | self.write_record(events).await
    }

    /// Writes events as one record.
    async fn write_record(&mut self, mut events: Vec<LogEvent>) -> bool {
        if events.is_empty() {
            return false;
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
        let mut record = std::mem::take(&mut self.record_buffer);
        record.clear();
        record.reserve(events.len() * self.bytes_per_event + 64);
        // Encoded, checksummed and (when there is room) appended in one visit to the write
        // thread, off the tokio workers that run the sink: each visit costs two thread
        // wake-ups, which showed in profiles at one record per ~1,700 events.
        let shared = self.shared.clone();
        let written = self
            .io
            .run(move || {
                record::encode(&events, sequence, &mut record);
                let appended = shared
                    .has_room(record.len() as u64)
                    .then(|| shared.store.append(sequence, &record, count));
                (events, record, appended)
            })
            .await;
        let Some((events, record, appended)) = written else {
            tracing::error!(
                "the disk buffer's write thread stopped; these events are reported as not delivered"
            );
            return false;
        };
        let len = record.len() as u64;
        self.bytes_per_event = (record.len() / events.len()).max(1);
        let appended = match appended {
            Some(appended) => Some((appended, record)),
            None => {
                // Full: wait for room (or drop), but never hold back the acknowledgement of
                // what is already written.
                while !self.shared.has_room(len) {
                    match self.when_full {
                        WhenFull::DropNewest => {
                            SinkMetrics::add(&self.shared.metrics.dropped, n);
                            for mut finalizer in finalizers {
                                finalizer.settle(DeliveryStatus::Errored);
                            }
                            self.record_buffer = record;
                            return false;
                        }
                        WhenFull::Block => {
                            self.sync().await;
                            let _ = tokio::time::timeout(
                                Duration::from_millis(100),
                                self.shared.space.notified(),
                            )
                            .await;
                        }
                    }
                }
                let shared = self.shared.clone();
                self.io
                    .run(move || {
                        let appended = shared.store.append(sequence, &record, count);
                        (appended, record)
                    })
                    .await
            }
        };
        let location = match appended {
            Some((Ok(location), record)) => {
                self.record_buffer = record;
                location
            }
            Some((Err(e), _)) => {
                tracing::error!(error = %e, "cannot write to the disk buffer; these events are reported as not delivered");
                return false;
            }
            None => {
                tracing::error!(
                    "the disk buffer's write thread stopped; these events are reported as not delivered"
                );
                return false;
            }
        };
        {
            // Only while the reader keeps up; otherwise it reads this record from disk.
            let mut hot = self
                .shared
                .hot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
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
        self.pending.extend(finalizers);
        self.unsynced = true;
        self.shared.appended.notify_one();
        true
    }

    /// Starts a group commit (fsync, then tell the sources of everything written since the
    /// last one) unless one is running; returns false if one was (nothing started).
    fn start_sync(&mut self) -> bool {
        if self.sync_task.as_ref().is_some_and(|task| !task.is_finished()) {
            return false;
        }
        if !self.unsynced {
            return true;
        }
        // Every one of these records was appended (its write returned) before the fsync starts.
        self.unsynced = false;
        let finalizers = std::mem::take(&mut self.pending);
        let shared = self.shared.clone();
        let io = self.sync_io.clone();
        let next_sequence = self.next_sequence;
        self.sync_task = Some(tokio::spawn(commit(shared, io, finalizers, next_sequence)));
        true
    }

    /// A group commit of everything written so far, waited for.
    async fn sync(&mut self) {
        if let Some(running) = self.sync_task.take() {
            let _ = running.await;
        }
        self.start_sync();
        if let Some(running) = self.sync_task.take() {
            let _ = running.await;
        }
    }
}

/// fsyncs the buffer, then tells the sources of `finalizers` whether their events are safe.
async fn commit(shared: Arc<Shared>, io: Arc<IoThread>, finalizers: Vec<EventFinalizer>, next_sequence: u64) {
    let totals = shared.totals();
    let synced = io.run(move || shared.store.sync(totals, next_sequence)).await;
    let status = match synced {
        Some(Ok(())) => DeliveryStatus::Delivered,
        Some(Err(e)) => {
            tracing::error!(error = %e, "disk buffer fsync failed; its latest events are reported as not delivered");
            DeliveryStatus::Errored
        }
        None => {
            tracing::error!(
                "the disk buffer's sync thread stopped; its latest events are reported as not delivered"
            );
            DeliveryStatus::Errored
        }
    };
    for mut finalizer in finalizers {
        finalizer.settle(status);
    }
}

async fn read_loop(shared: Arc<Shared>, io: IoThread, out: mpsc::Sender<Vec<LogEvent>>, first: u64) {
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
            None => match read_next(&shared, &io, cursor, failed_reads + 1 >= READ_ATTEMPTS).await {
                ReadNext::Record(sequence, location, events) => (sequence, location, events),
                ReadNext::Skipped(sequence, location) => {
                    failed_reads = 0;
                    cursor = Some(sequence);
                    expected = sequence.checked_add(u64::from(location.count));
                    continue;
                }
                ReadNext::Nothing => {
                    if writer_done {
                        return;
                    }
                    let _ =
                        tokio::time::timeout(Duration::from_millis(200), shared.appended.notified()).await;
                    continue;
                }
                ReadNext::Failed => {
                    failed_reads += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                ReadNext::Stopped => return,
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
        if out.send(events).await.is_err() {
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
    /// A corrupt record, reported and deleted.
    Skipped(u64, Location),
    Nothing,
    Failed,
    Stopped,
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

/// Reads the record after `cursor` from disk. It is decoded on the read thread too: the tokio
/// workers run the sink, the stage every event waits for. With `last_attempt`, a record that
/// still cannot be read (an I/O error) is skipped as corrupt rather than tried again: a
/// failing sector must not hold up everything behind it for good.
async fn read_next(shared: &Arc<Shared>, io: &IoThread, cursor: Option<u64>, last_attempt: bool) -> ReadNext {
    let lookup = shared.clone();
    let read = io
        .run(move || {
            let Some((sequence, location)) = lookup.store.next_after(cursor)? else {
                return Ok(None);
            };
            let mut buffer = lookup.records.take();
            let decoded = match lookup.store.read_into(location, &mut buffer) {
                Ok(()) => {
                    let predates_run = sequence < lookup.earlier_runs_below;
                    record::decode(&lookup.records.share(buffer), sequence, predates_run).map_err(|e| {
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
                Err(BufferError::Io { path, source })
                    if source.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    Err(Unread::Corrupt(format!("{}: {source}", path.display())))
                }
                Err(e) if last_attempt => Err(Unread::Corrupt(format!(
                    "{e} (still failing after {READ_ATTEMPTS} attempts)"
                ))),
                Err(e) => Err(Unread::Retry(e.to_string())),
            };
            Ok::<_, BufferError>(Some((sequence, location, decoded)))
        })
        .await;
    let (sequence, location, decoded) = match read {
        Some(Ok(Some(found))) => found,
        Some(Ok(None)) => return ReadNext::Nothing,
        Some(Err(e)) => {
            tracing::error!(error = %e, "cannot read the disk buffer; trying again in 1 s");
            return ReadNext::Failed;
        }
        None => return ReadNext::Stopped,
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
    let store = Store::open(dir, MAX_SEGMENT_BYTES)?;
    let totals = store.totals();
    let mut report = BufferReport {
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
mod tests;
