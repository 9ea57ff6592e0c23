//! The durable disk buffer (sled underneath).
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
//! Many events are packed into one checksummed record ([`record`]) keyed by the big-endian
//! sequence number of its first event, so sled sees one operation per batch, not per event.
//! A corrupt record is detected, counted, logged, deleted, and skipped.

mod record;
mod store;

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
pub use record::CorruptRecord;
use store::{Store, Totals};

/// Batches queued between writers and the disk writer task.
const WRITE_QUEUE: usize = 4;
/// The size a record aims for. sled stores values over ~128 KiB as separate blob files, and
/// measured memory grew with the backlog when whole 1,000-event batches (~250 KiB) became
/// blobs; records this size stay in sled's log.
const TARGET_RECORD_BYTES: usize = 48 * 1024;
/// Batches read ahead for the sink.
const READ_AHEAD: usize = 2;

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
}

impl Shared {
    fn totals(&self) -> Totals {
        Totals {
            bytes: self.bytes.load(Ordering::Acquire),
            events: self.events.load(Ordering::Acquire),
        }
    }

    /// Called when every copy of a record's events has been settled.
    fn record_settled(&self, sequence: u64, events: u64, bytes: u64, status: DeliveryStatus) {
        if status == DeliveryStatus::Errored {
            // Not delivered (the sink stopped before Kafka confirmed): it stays on disk and is
            // read again at the next start.
            return;
        }
        // sled's remove appends to its in-memory log; it does not wait for the disk.
        if let Err(e) = self.store.remove(sequence) {
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
    let store = Store::open(dir)?;
    let totals = store.totals();
    let next_sequence = store.next_sequence().map_err(|e| BufferError::Open {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    if let Ok(Some(first)) = store.first_sequence() {
        tracing::info!(path = %dir.display(), events = totals.events, bytes = totals.bytes, first, "disk buffer holds events from an earlier run; delivering them first");
    }
    SinkMetrics::add(&metrics.buffered, totals.events);
    let shared = Arc::new(Shared {
        store,
        max_size: config.max_size.unwrap_or(u64::MAX),
        bytes: AtomicU64::new(totals.bytes),
        events: AtomicU64::new(totals.events),
        metrics,
        space: Notify::new(),
        appended: Notify::new(),
        writer_done: AtomicBool::new(false),
    });
    let (in_tx, in_rx) = mpsc::channel(WRITE_QUEUE);
    let (out_tx, out_rx) = mpsc::channel(READ_AHEAD);
    let writer = WriterTask {
        shared: shared.clone(),
        next_sequence,
        sync_interval: Duration::from_millis(config.sync_interval_ms.max(1)),
        when_full: config.when_full,
        pending: Vec::new(),
        bytes_per_event: 256,
    };
    tokio::spawn(writer.run(in_rx));
    tokio::spawn(read_loop(shared, out_tx));
    Ok((DiskWriter { tx: in_tx }, DiskReader { rx: out_rx }))
}

struct WriterTask {
    shared: Arc<Shared>,
    next_sequence: u64,
    sync_interval: Duration,
    when_full: WhenFull,
    /// Finalizers of events written but not yet fsynced.
    pending: Vec<EventFinalizer>,
    /// Encoded bytes per event in the last record, to size the next ones.
    bytes_per_event: usize,
}

impl WriterTask {
    async fn run(mut self, mut input: mpsc::Receiver<Vec<LogEvent>>) {
        let mut sync_at: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(sync_at.unwrap_or_else(Instant::now)), if sync_at.is_some() => {
                    self.sync().await;
                    sync_at = None;
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
        let finalizers: Vec<EventFinalizer> = events.iter_mut().map(LogEvent::take_finalizer).collect();
        let mut record = Vec::with_capacity(events.len() * 128);
        record::encode(&events, &mut record);
        drop(events);
        let n = finalizers.len() as u64;
        let len = record.len() as u64;
        self.bytes_per_event = (record.len() / finalizers.len()).max(1);
        // Wait for room (or drop), but never hold back the acknowledgement of what is written.
        loop {
            let used = self.shared.bytes.load(Ordering::Acquire);
            if used == 0 || used + len <= self.shared.max_size {
                break;
            }
            match self.when_full {
                WhenFull::DropNewest => {
                    SinkMetrics::add(&self.shared.metrics.dropped, n);
                    for mut finalizer in finalizers {
                        finalizer.settle(DeliveryStatus::Errored);
                    }
                    return false;
                }
                WhenFull::Block => {
                    self.sync().await;
                    let _ =
                        tokio::time::timeout(Duration::from_millis(100), self.shared.space.notified()).await;
                }
            }
        }
        let sequence = self.next_sequence;
        let shared = self.shared.clone();
        let inserted = tokio::task::spawn_blocking(move || shared.store.insert(sequence, &record)).await;
        match inserted {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot write to the disk buffer; these events are reported as not delivered");
                return false;
            }
            Err(e) => {
                tracing::error!(error = %e, "disk buffer write task failed");
                return false;
            }
        }
        self.next_sequence += n;
        self.shared.bytes.fetch_add(len, Ordering::AcqRel);
        self.shared.events.fetch_add(n, Ordering::AcqRel);
        SinkMetrics::add(&self.shared.metrics.received, n);
        SinkMetrics::add(&self.shared.metrics.buffered, n);
        self.pending.extend(finalizers);
        self.shared.appended.notify_one();
        true
    }

    /// Group commit: fsync, then tell the sources of everything written since the last one.
    async fn sync(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let shared = self.shared.clone();
        let totals = shared.totals();
        let synced = tokio::task::spawn_blocking(move || shared.store.sync(totals)).await;
        let status = match synced {
            Ok(Ok(())) => DeliveryStatus::Delivered,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "disk buffer fsync failed; its latest events are reported as not delivered");
                DeliveryStatus::Errored
            }
            Err(e) => {
                tracing::error!(error = %e, "disk buffer fsync task failed");
                DeliveryStatus::Errored
            }
        };
        for mut finalizer in self.pending.drain(..) {
            finalizer.settle(status);
        }
    }
}

async fn read_loop(shared: Arc<Shared>, out: mpsc::Sender<Vec<LogEvent>>) {
    let mut cursor: Option<u64> = None;
    loop {
        // Read the flag before looking for records: a record written after a `None` answer
        // was written before the flag was set, so it cannot be missed.
        let writer_done = shared.writer_done.load(Ordering::Acquire);
        let lookup = shared.clone();
        let next = tokio::task::spawn_blocking(move || lookup.store.next_after(cursor)).await;
        let (sequence, value) = match next {
            Ok(Ok(Some(found))) => found,
            Ok(Ok(None)) => {
                if writer_done {
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_millis(200), shared.appended.notified()).await;
                continue;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read the disk buffer; trying again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(_) => return,
        };
        cursor = Some(sequence);
        let len = value.len() as u64;
        let bytes = Bytes::copy_from_slice(&value);
        drop(value);
        let mut events = match record::decode(&bytes) {
            Ok(events) => events,
            Err(e) => {
                let events = u64::from(record::count(&bytes).unwrap_or(0));
                tracing::error!(sequence, error = %e, "corrupt record in the disk buffer: skipped and deleted");
                SinkMetrics::add(&shared.metrics.rejected, events);
                shared.record_settled(sequence, events, len, DeliveryStatus::Rejected);
                continue;
            }
        };
        let n = events.len() as u64;
        let settled = shared.clone();
        let notifier =
            BatchNotifier::with_callback(move |status| settled.record_settled(sequence, n, len, status));
        for event in &mut events {
            event.attach_notifier(&notifier);
        }
        drop(notifier);
        if out.send(events).await.is_err() {
            return;
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
    let store = Store::open(dir)?;
    let totals = store.totals();
    let mut report = BufferReport {
        events: totals.events,
        bytes: totals.bytes,
        size_on_disk: store.size_on_disk(),
        ..BufferReport::default()
    };
    let open_error = |e: sled::Error| BufferError::Open {
        path: dir.to_owned(),
        reason: e.to_string(),
    };
    if let Some((_, first)) = store.next_after(None).map_err(open_error)? {
        report.oldest = record::decode(&Bytes::copy_from_slice(&first))
            .ok()
            .and_then(|events| events.first().and_then(LogEvent::timestamp))
            .map(|t| t.to_rfc3339());
    }
    if verify {
        report.events = 0;
        report.bytes = 0;
        for entry in store.iter() {
            let (sequence, value) = entry.map_err(open_error)?;
            report.records += 1;
            report.bytes += value.len() as u64;
            match record::decode(&Bytes::copy_from_slice(&value)) {
                Ok(events) => report.events += events.len() as u64,
                Err(e) => report.corrupt.push((sequence, e.to_string())),
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
