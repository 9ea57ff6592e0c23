//! The dead-letter queue: a bounded channel into a thread that appends letters to numbered
//! files, fsyncs them, and only then settles their finalizers `Rejected`.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferry_core::rate_limit::WarnLimiter;
use ferry_core::{DeliveryStatus, EventFinalizer};
use tokio::sync::{mpsc, oneshot};

use crate::error::io;
use crate::reader::{DirLock, file_name, list_files, lock_dir};
use crate::{DeadLetter, DeadLetterError, DeadLetterReason};

/// Letters the queue holds before `send` waits.
pub const QUEUE_CAPACITY: usize = 4096;
/// The most letters the writer takes for one write and fsync.
const MAX_BATCH_LETTERS: usize = 4096;
/// The most encoded bytes the writer takes for one write and fsync (at least one letter).
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

enum Queued {
    Letter(Box<DeadLetter>, EventFinalizer),
    /// Answered once every letter queued before it is durable.
    Flush(oneshot::Sender<()>),
}

#[derive(Debug)]
struct Counters {
    written: AtomicU64,
    pending: AtomicU64,
}

/// Writes dead letters to files in one directory on a thread of its own. Clone the handle for
/// every task that produces letters; the thread ends once every handle is dropped and every
/// queued letter is written.
///
/// A letter's finalizer is settled [`DeliveryStatus::Rejected`] only after its line is written
/// and fsynced, so a source never hears about a rejection that left no record. When the disk
/// fails (full, I/O error) the thread keeps the letters and retries; the queue then fills and
/// [`DeadLetterQueue::send`] waits, which is how the failure reaches the sink as backpressure
/// instead of as lost letters.
#[derive(Clone, Debug)]
pub struct DeadLetterQueue {
    tx: mpsc::Sender<Queued>,
    counters: Arc<Counters>,
    dir: Arc<Path>,
}

impl DeadLetterQueue {
    /// Creates `dir` if needed, takes its lock (`<dir>/ferry-dead-letter.lock`;
    /// [`DeadLetterError::Locked`] if another process or queue holds it) and starts the writer
    /// thread `ferry-dead-<sink_id>`. The first file is created with the first letter,
    /// numbered after the highest file already there: a run never appends to an earlier run's
    /// file, so the torn last line of a crash stays at the end of that run's file.
    /// `max_file_bytes` below [`crate::MIN_FILE_BYTES`] is raised to it.
    pub fn open(dir: &Path, sink_id: &str, max_file_bytes: u64) -> Result<Self, DeadLetterError> {
        create_dir_durably(dir)?;
        let lock = lock_dir(dir)?;
        // Listed under the lock: nobody else creates files here from now on.
        let next_number = list_files(dir)?
            .last()
            .and_then(|f| f.path.file_name()?.to_str().and_then(crate::reader::file_number))
            .map_or(1, |n| n + 1);
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let counters = Arc::new(Counters {
            written: AtomicU64::new(0),
            pending: AtomicU64::new(0),
        });
        let writer = Writer {
            _lock: lock,
            dir: dir.to_owned(),
            sink: sink_id.to_owned(),
            max_file_bytes: max_file_bytes.max(crate::MIN_FILE_BYTES),
            next_number,
            current: None,
            counters: counters.clone(),
            written_warnings: WarnLimiter::default(),
            error_warnings: WarnLimiter::new(Duration::from_secs(30)),
        };
        std::thread::Builder::new()
            .name(format!("ferry-dead-{sink_id}"))
            .spawn(move || writer.run(rx))
            .map_err(io(dir))?;
        Ok(Self {
            tx,
            counters,
            dir: dir.into(),
        })
    }

    /// Queues one letter, waiting while the queue is full. Its finalizer is settled
    /// `Rejected` once the line is written and fsynced.
    ///
    /// Dropping the future while it waits for room leaves the letter unqueued; its finalizer
    /// is dropped with it and records `Errored`, never `Rejected`.
    pub async fn send(&self, letter: DeadLetter, finalizer: EventFinalizer) {
        let reservation = PendingReservation::new(&self.counters);
        let sent = self.tx.send(Queued::Letter(Box::new(letter), finalizer)).await;
        self.settle_reservation(reservation, sent.is_ok());
    }

    /// The same as [`DeadLetterQueue::send`] from a thread outside the async runtime: blocks
    /// while the queue is full. Must not be called from an async task.
    pub fn blocking_send(&self, letter: DeadLetter, finalizer: EventFinalizer) {
        let reservation = PendingReservation::new(&self.counters);
        let sent = self.tx.blocking_send(Queued::Letter(Box::new(letter), finalizer));
        self.settle_reservation(reservation, sent.is_ok());
    }

    fn settle_reservation(&self, reservation: PendingReservation<'_>, queued: bool) {
        if queued {
            // From here the writer owns the count and takes it back once the letter is written.
            reservation.keep();
        } else {
            // The writer thread is gone, which only a panic in it can cause while a handle
            // lives. The letter's finalizer was dropped with it, settling `Errored`: the
            // source learns the record was not delivered, and nothing claims it was recorded.
            drop(reservation);
            tracing::error!(dir = %self.dir.display(), "the dead-letter writer has stopped; a letter was not written");
        }
    }

    /// Letters written and fsynced so far by this queue.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Letters queued (or waiting for room in the queue) and not yet written.
    pub fn pending(&self) -> u64 {
        self.counters.pending.load(Ordering::Relaxed)
    }

    /// Waits until every letter queued before the call is written and fsynced, or `timeout`
    /// passes; true when everything was written. Cancel-safe: dropping the future only stops
    /// the waiting.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (done_tx, done_rx) = oneshot::channel();
        let wait = async {
            // The marker queues behind every letter already sent, and the writer answers it
            // only after the batch holding those letters is durable.
            if self.tx.send(Queued::Flush(done_tx)).await.is_err() {
                return false;
            }
            done_rx.await.is_ok()
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// One letter counted in `pending` before it is queued (so `pending` never runs below what the
/// writer takes back), and uncounted again unless it reaches the queue, also when a `send`
/// future is dropped while waiting for room.
struct PendingReservation<'a> {
    counters: &'a Counters,
}

impl<'a> PendingReservation<'a> {
    fn new(counters: &'a Counters) -> Self {
        counters.pending.fetch_add(1, Ordering::Relaxed);
        Self { counters }
    }

    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for PendingReservation<'_> {
    fn drop(&mut self) {
        self.counters.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Creates `dir` and makes each new directory entry durable (fsyncing its parent), so files
/// fsynced in it later cannot vanish with a directory the crash forgot.
fn create_dir_durably(dir: &Path) -> Result<(), DeadLetterError> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() {
        missing.push(at);
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent,
            _ => break,
        }
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), DeadLetterError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// The file being appended to.
struct OpenFile {
    file: File,
    path: PathBuf,
    bytes: u64,
}

/// A letter encoded and waiting for its batch to become durable.
struct Pending {
    line: Vec<u8>,
    finalizer: EventFinalizer,
}

/// What the warning after a batch names: the batch's first letter stands for the others.
struct BatchSample {
    reason: DeadLetterReason,
    topic: String,
    cause: String,
}

/// The writer thread's state.
struct Writer {
    // Held until the thread ends, after the last letter is written.
    _lock: DirLock,
    dir: PathBuf,
    sink: String,
    max_file_bytes: u64,
    next_number: u64,
    current: Option<OpenFile>,
    counters: Arc<Counters>,
    written_warnings: WarnLimiter,
    error_warnings: WarnLimiter,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Queued>) {
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        // `None` once every handle is dropped and the queue is empty.
        while let Some(first) = rx.blocking_recv() {
            let mut sample = None;
            let mut bytes = 0;
            let mut item = Some(first);
            while let Some(queued) = item.take() {
                match queued {
                    Queued::Letter(letter, finalizer) => {
                        if sample.is_none() {
                            sample = Some(BatchSample {
                                reason: letter.reason,
                                topic: letter.topic.clone(),
                                cause: letter.cause.clone(),
                            });
                        }
                        let line = letter.to_json_line();
                        bytes += line.len();
                        batch.push(Pending { line, finalizer });
                    }
                    Queued::Flush(done) => flushes.push(done),
                }
                if batch.len() < MAX_BATCH_LETTERS && bytes < MAX_BATCH_BYTES {
                    item = rx.try_recv().ok();
                }
            }
            if let Some(sample) = sample {
                let path = self.write_durably(&batch);
                let letters = batch.len() as u64;
                // Counted first, so a source that hears `Rejected` finds its letter in `written`.
                self.counters.written.fetch_add(letters, Ordering::Relaxed);
                self.counters.pending.fetch_sub(letters, Ordering::Relaxed);
                // Durable: now, and only now, the sources may hear `Rejected`.
                for mut pending in batch.drain(..) {
                    pending.finalizer.settle(DeliveryStatus::Rejected);
                }
                if let Some(suppressed) = self.written_warnings.check() {
                    let BatchSample { reason, topic, cause } = sample;
                    tracing::warn!(
                        sink = %self.sink,
                        reason = reason.as_str(),
                        topic = %topic,
                        letters,
                        file = %path.display(),
                        suppressed,
                        "records written to the dead-letter file: {cause}"
                    );
                }
            }
            for done in flushes.drain(..) {
                // The flusher may have timed out and left; nothing to tell then.
                let _ = done.send(());
            }
        }
        if let Some(open) = self.current.take() {
            tracing::debug!(sink = %self.sink, file = %open.path.display(), "dead-letter writer done");
        }
    }

    /// Appends the batch and fsyncs it, retrying on a new file with backoff until it works;
    /// returns the file that holds the batch's last line.
    ///
    /// Invariant: nothing is settled before this returns, and it returns only once every line
    /// of the batch is durable, so a failing disk delays rejections but never loses a letter.
    fn write_durably(&mut self, batch: &[Pending]) -> PathBuf {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.try_write(batch) {
                Ok(path) => return path,
                Err(error) => {
                    if let Some(suppressed) = self.error_warnings.check() {
                        tracing::error!(
                            sink = %self.sink,
                            dir = %self.dir.display(),
                            letters = batch.len(),
                            suppressed,
                            "cannot write dead letters, keeping them and retrying in {backoff:?} on a new file: {error}"
                        );
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One attempt at [`Writer::write_durably`]. On failure the current file is abandoned:
    /// after a failed fsync the kernel may have dropped the dirty pages and cleared the error,
    /// so a later fsync on the same handle could succeed without the data ever reaching disk.
    fn try_write(&mut self, batch: &[Pending]) -> Result<PathBuf, DeadLetterError> {
        // Where each file touched by this attempt started, to take back a partial write.
        let mut touched: Vec<(PathBuf, u64)> = Vec::new();
        let result = self.append(batch, &mut touched);
        if result.is_err() {
            self.current = None;
            for (path, start) in touched {
                undo_partial_write(&path, start);
            }
        }
        result
    }

    fn append(
        &mut self,
        batch: &[Pending],
        touched: &mut Vec<(PathBuf, u64)>,
    ) -> Result<PathBuf, DeadLetterError> {
        for pending in batch {
            let len = pending.line.len() as u64;
            let full = self
                .current
                .as_ref()
                .is_some_and(|f| f.bytes > 0 && f.bytes + len > self.max_file_bytes);
            if full {
                // Rotating: what went to the old file in this batch must be durable before the
                // batch can be settled, and the old handle is not kept.
                if let Some(old) = self.current.take() {
                    old.file.sync_data().map_err(io(&old.path))?;
                }
            }
            let open = match self.current.take() {
                Some(open) => open,
                None => self.create_file()?,
            };
            let open = self.current.insert(open);
            if touched.last().is_none_or(|(path, _)| *path != open.path) {
                touched.push((open.path.clone(), open.bytes));
            }
            open.file.write_all(&pending.line).map_err(io(&open.path))?;
            open.bytes += len;
        }
        match &self.current {
            Some(open) => {
                open.file.sync_data().map_err(io(&open.path))?;
                Ok(open.path.clone())
            }
            // An empty batch: nothing was written, nothing to make durable.
            None => Ok(self.dir.clone()),
        }
    }

    /// Creates the next numbered file and makes its name durable.
    fn create_file(&mut self) -> Result<OpenFile, DeadLetterError> {
        loop {
            let path = self.dir.join(file_name(self.next_number));
            self.next_number += 1;
            // `create_new`: never append to a file this run did not create. A name taken
            // although we hold the lock (a file copied in by hand) is skipped.
            match OpenOptions::new().append(true).create_new(true).open(&path) {
                Ok(file) => {
                    sync_dir(&self.dir)?;
                    return Ok(OpenFile { file, path, bytes: 0 });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(&path)(e)),
            }
        }
    }
}

/// Best effort after a failed attempt: cut what the attempt appended, so the retry on a new
/// file does not leave the same letters twice on disk (a replay would send them twice). If
/// this fails too, the duplicates stay: at-least-once, never lost.
fn undo_partial_write(path: &Path, start: u64) {
    let undone = if start == 0 {
        fs::remove_file(path)
    } else {
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(start).and_then(|()| f.sync_data()))
    };
    if let Err(e) = undone {
        tracing::debug!(file = %path.display(), "could not take back a partial dead-letter write: {e}");
    }
}
