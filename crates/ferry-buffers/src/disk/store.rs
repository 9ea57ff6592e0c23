//! Where a disk buffer keeps its bytes: records appended to segment files, and a sled ledger
//! that says which records are live and where each one lies.
//!
//! ```text
//! <dir>/ferry.lock                 our own lock (a clear error for a second process)
//! <dir>/db, conf, blobs/, snap.*   sled: the ledger and the persisted counters
//! <dir>/segments/<first seq>.seg   records, appended one after another; once drained, a
//!                                  segment file is deleted or renamed and written over
//!                                  from its start as a new segment
//! ```
//!
//! The ledger maps the big-endian sequence number of a record's first event to its
//! [`Location`]; it is the one source of truth for what the buffer holds. Segment bytes no
//! ledger entry points at are garbage (a reused file's old records included: each record
//! carries its sequence number, checked against the entry), and a new run never appends to an
//! old segment, so a torn tail left by a crash is never read. Payloads stay out of sled because
//! sled's memory grows with the bytes it stores (measured: ~570 MiB while filling a 1.4 GiB
//! backlog, ~170 MiB when reopening it); a ledger of 24-byte entries keeps sled small whatever
//! the backlog, and segment reads go through the page cache, not the heap.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use fs2::FileExt as _;

use super::fs::{Filesystem, SegmentFile};
use crate::BufferError;

const LOCK_FILE: &str = "ferry.lock";
/// sled 0.34 keeps its log in this file; fsyncing it makes flushed ledger writes durable.
const SLED_DATA_FILE: &str = "db";
const SEGMENT_DIR: &str = "segments";
const SEGMENT_EXTENSION: &str = "seg";
const META_BYTES: &[u8] = b"bytes";
const META_EVENTS: &[u8] = b"events";
/// The sequence number the next record starts at, as of the last sync: numbers never repeat
/// across restarts, even when the newest records were settled and left the ledger (a reused
/// segment may still hold records with the numbers of an earlier run).
const META_NEXT_SEQUENCE: &[u8] = b"next_sequence";
/// Drained segment files kept to be written over by the next segments instead of being deleted
/// and created anew: overwriting a file's cached, allocated pages costs the write path less
/// than a new file's block and page allocation (dd, 150 MiB in 256 KiB writes: 25 ms against
/// 55 ms). Two cover a sink that keeps up (one being drained while one is written); more
/// drained segments than that (a backlog being caught up) are deleted.
pub(crate) const SPARE_SEGMENTS: usize = 2;
/// sled's page cache, counted in on-disk bytes. The ledger holds one small entry per record,
/// so a few MiB cover even a large backlog.
const CACHE_CAPACITY: u64 = 4 * 1024 * 1024;
/// Encoded records kept for reuse once confirmed.
const SPARE_RECORDS: usize = 8;
/// Space held back so that a buffer on a full disk can still be opened and drained: sled
/// writes to its log to open (a snapshot) and to delete ledger entries. Deleted when sled
/// cannot do either; while it is missing, nothing new is written (see [`Store::append`]).
const RESERVE_FILE: &str = "reserve";
const RESERVE_BYTES: usize = 2 * 1024 * 1024;

/// Where one record lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    /// The segment file, named by the sequence number it started at.
    pub(crate) segment: u64,
    /// Byte offset of the record in the segment.
    pub(crate) offset: u64,
    /// Length of the record.
    pub(crate) len: u32,
    /// Events in the record.
    pub(crate) count: u32,
}

impl Location {
    const ENCODED: usize = 24;

    fn encode(&self) -> [u8; Self::ENCODED] {
        let mut out = [0; Self::ENCODED];
        out[..8].copy_from_slice(&self.segment.to_le_bytes());
        out[8..16].copy_from_slice(&self.offset.to_le_bytes());
        out[16..20].copy_from_slice(&self.len.to_le_bytes());
        out[20..].copy_from_slice(&self.count.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; Self::ENCODED] = bytes.try_into().ok()?;
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or_default());
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap_or_default());
        Some(Self {
            segment: u64_at(0),
            offset: u64_at(8),
            len: u32_at(16),
            count: u32_at(20),
        })
    }
}

/// Persisted counters: logical bytes and events of the stored records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) bytes: u64,
    pub(crate) events: u64,
}

/// A record appended since the last successful sync, kept in memory until a sync confirms it:
/// after a failed fsync its bytes are written again elsewhere (the file's lost pages would not
/// come back with a later fsync of the same file).
struct Unconfirmed {
    sequence: u64,
    count: u32,
    bytes: Vec<u8>,
}

/// The segment being appended to, the ones written since the last sync, the records not yet
/// confirmed, and the drained segments kept for reuse.
#[derive(Default)]
struct Appender {
    current: Option<OpenSegment>,
    /// Segments rolled over since the last sync: fsynced by the next one.
    unsynced: Vec<Arc<dyn SegmentFile>>,
    /// A segment file was created or renamed since the last sync: the directory is fsynced
    /// too, so that no durable ledger entry points into a file whose name was lost.
    renamed: bool,
    /// Drained segment files (by their old names) waiting to become the next segments.
    spares: Vec<u64>,
    /// Every record appended since the last successful sync, in order: always a suffix of the
    /// numbering (everything before the first one is durable).
    unconfirmed: Vec<Unconfirmed>,
    /// A sync failed and writing the unconfirmed records again failed too: the next sync
    /// does it first.
    rewrite_due: bool,
    /// Bytes of `unconfirmed`.
    unconfirmed_bytes: usize,
}

struct OpenSegment {
    id: u64,
    file: Arc<dyn SegmentFile>,
    len: u64,
}

/// sled's handles, replaced when sled has to be opened again.
struct Ledger {
    db: sled::Db,
    meta: sled::Tree,
    /// sled's data file, to fsync.
    file: Box<dyn SegmentFile>,
}

pub(crate) struct Store {
    dir: PathBuf,
    fs: Arc<dyn Filesystem>,
    /// `None` only while sled is being opened again.
    ledger: RwLock<Option<Ledger>>,
    /// An operation on the ledger failed: sled 0.34 fails every later write after one failed
    /// write to its log (a global error, reset only by opening it again), so it is reopened
    /// before the next use.
    ledger_broken: AtomicBool,
    /// sled was reopened: entries of unconfirmed records may be lost and are entered again
    /// by the next sync.
    reinsert_due: AtomicBool,
    /// The reserve file is missing (released, or never made).
    reserve_missing: AtomicBool,
    segment_bytes: u64,
    appender: Mutex<Appender>,
    /// Segment files on disk, oldest first.
    segments: Mutex<VecDeque<u64>>,
    /// The segment the reader last opened.
    read_handle: Mutex<Option<(u64, Box<dyn SegmentFile>)>>,
    /// Buffers of confirmed records, for the next ones.
    spare_records: Mutex<Vec<Vec<u8>>>,
    _lock: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BufferError + '_ {
    move |source| BufferError::Io {
        path: path.to_owned(),
        source,
    }
}

fn ledger_error(dir: &Path) -> impl FnOnce(sled::Error) -> BufferError + '_ {
    move |e| BufferError::Open {
        path: dir.to_owned(),
        reason: e.to_string(),
    }
}

fn sync_error(e: impl std::fmt::Display) -> BufferError {
    BufferError::Sync {
        reason: e.to_string(),
    }
}

impl Store {
    /// Opens (or creates) the buffer in `dir`; fails with a clear error if another process
    /// holds it. Segments roll over at `segment_bytes`.
    pub(crate) fn open(dir: &Path, segment_bytes: u64, fs: Arc<dyn Filesystem>) -> Result<Self, BufferError> {
        fs.create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        if lock.try_lock_exclusive().is_err() {
            return Err(BufferError::Locked { path: dir.to_owned() });
        }
        let mut reserve_missing = !dir.join(RESERVE_FILE).exists();
        let ledger = match open_ledger(dir, &*fs) {
            Ok(ledger) => ledger,
            // Most likely a full disk: sled writes a snapshot while it opens.
            Err(e) if release_reserve(dir, &*fs) => {
                tracing::warn!(path = %dir.display(), error = %e, "cannot open the disk buffer's ledger; released its reserved space and trying again");
                reserve_missing = true;
                open_ledger(dir, &*fs)?
            }
            Err(e) => return Err(e),
        };
        let segment_dir = dir.join(SEGMENT_DIR);
        fs.create_dir_all(&segment_dir).map_err(io(&segment_dir))?;
        let segments = list_segments(&*fs, &segment_dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            fs,
            ledger: RwLock::new(Some(ledger)),
            ledger_broken: AtomicBool::new(false),
            reinsert_due: AtomicBool::new(false),
            reserve_missing: AtomicBool::new(reserve_missing),
            segment_bytes: segment_bytes.max(1),
            appender: Mutex::new(Appender::default()),
            segments: Mutex::new(segments),
            read_handle: Mutex::new(None),
            spare_records: Mutex::new(Vec::new()),
            _lock: lock,
        })
    }

    /// Runs `op` on the ledger, opening sled again first if an earlier operation failed.
    fn with_ledger<T>(&self, op: impl FnOnce(&Ledger) -> Result<T, BufferError>) -> Result<T, BufferError> {
        if self.ledger_broken.load(Ordering::Acquire) {
            self.reopen_ledger()?;
        }
        let guard = self.ledger.read().unwrap_or_else(PoisonError::into_inner);
        let Some(ledger) = guard.as_ref() else {
            return Err(sync_error("the ledger is being opened again"));
        };
        let result = op(ledger);
        if result.is_err() {
            self.ledger_broken.store(true, Ordering::Release);
        }
        result
    }

    /// Opens sled again after a failure (see `ledger_broken`), releasing the reserve if even
    /// that fails. What sled had not written to its file is gone: entries of unconfirmed
    /// records are entered again by the next sync; a deletion may come back (its record is
    /// then delivered again after a restart, as at-least-once allows).
    fn reopen_ledger(&self) -> Result<(), BufferError> {
        let mut guard = self.ledger.write().unwrap_or_else(PoisonError::into_inner);
        if !self.ledger_broken.load(Ordering::Acquire) {
            return Ok(());
        }
        // sled's handles must be gone before it is opened again (it locks its file).
        drop(guard.take());
        let ledger = match open_ledger(&self.dir, &*self.fs) {
            Ok(ledger) => ledger,
            Err(e) if self.release_reserve() => {
                tracing::warn!(path = %self.dir.display(), error = %e, "cannot open the disk buffer's ledger again; released its reserved space and trying again");
                open_ledger(&self.dir, &*self.fs)?
            }
            Err(e) => return Err(e),
        };
        *guard = Some(ledger);
        self.ledger_broken.store(false, Ordering::Release);
        self.reinsert_due.store(true, Ordering::Release);
        tracing::warn!(path = %self.dir.display(), "opened the disk buffer's ledger again after a failed write");
        Ok(())
    }

    /// Deletes the reserve file (to make room for sled, when it cannot open or delete);
    /// whether there was one.
    pub(crate) fn release_reserve(&self) -> bool {
        self.reserve_missing.store(true, Ordering::Release);
        release_reserve(&self.dir, &*self.fs)
    }

    /// Makes the reserve file if it is missing. Fails while the disk has no room for it.
    pub(crate) fn ensure_reserve(&self) -> Result<(), BufferError> {
        if !self.reserve_missing.load(Ordering::Acquire) {
            return Ok(());
        }
        // Spare segments hold space the disk needs now.
        let spares = std::mem::take(&mut lock(&self.appender).spares);
        for spare in spares {
            let path = self.segment_path(spare);
            if let Err(e) = self.fs.remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete a drained disk buffer segment");
            }
        }
        let path = self.dir.join(RESERVE_FILE);
        let made = self.fs.create(&path).and_then(|file| {
            const CHUNK: usize = 256 * 1024;
            let zeros = vec![0; CHUNK];
            for i in 0..RESERVE_BYTES / CHUNK {
                file.write_all_at(&zeros, (i * CHUNK) as u64)?;
            }
            file.sync_data()
        });
        if let Err(e) = made {
            let _ = self.fs.remove_file(&path);
            return Err(io(&path)(e));
        }
        self.reserve_missing.store(false, Ordering::Release);
        tracing::info!(path = %path.display(), bytes = RESERVE_BYTES, "the disk buffer's reserved space is in place");
        Ok(())
    }

    /// Deletes segment files no ledger entry points at: everything before the first live
    /// record's segment, and anything at or after `next_sequence` (written by a run that died
    /// before its ledger entries were flushed).
    pub(crate) fn remove_unreferenced_segments(&self, next_sequence: u64) -> Result<(), BufferError> {
        let first_live = self.first()?.map(|(_, location)| location.segment);
        let mut segments = lock(&self.segments);
        segments.retain(|&id| {
            let referenced = first_live.is_some_and(|first| id >= first) && id < next_sequence;
            if !referenced {
                let path = self.segment_path(id);
                if let Err(e) = self.fs.remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete an unused disk buffer segment");
                }
            }
            referenced
        });
        Ok(())
    }

    /// A persisted counter (0 if absent).
    fn meta_counter(&self, key: &[u8]) -> u64 {
        self.with_ledger(|ledger| Ok(ledger.meta.get(key).ok().flatten()))
            .ok()
            .flatten()
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes)
    }

    /// The counters as persisted at the last sync (they may lag the ledger: see
    /// [`Store::ledger_totals`]).
    pub(crate) fn persisted_totals(&self) -> Totals {
        Totals {
            bytes: self.meta_counter(META_BYTES),
            events: self.meta_counter(META_EVENTS),
        }
    }

    /// The records, events and bytes the ledger lists: the truth the counters are checked
    /// against when the buffer opens. One small entry per record (of ~256 KiB), so this is
    /// quick even for a large backlog.
    pub(crate) fn ledger_totals(&self) -> Result<(u64, Totals), BufferError> {
        self.with_ledger(|ledger| {
            let mut records = 0;
            let mut totals = Totals::default();
            for entry in ledger.db.iter() {
                let (_, value) = entry.map_err(ledger_error(&self.dir))?;
                if let Some(location) = Location::decode(&value) {
                    records += 1;
                    totals.bytes += u64::from(location.len);
                    totals.events += u64::from(location.count);
                }
            }
            Ok((records, totals))
        })
    }

    /// The sequence number the next record starts at: after every record in the ledger and
    /// every number handed out before the last sync.
    pub(crate) fn next_sequence(&self) -> Result<u64, BufferError> {
        let last = self.with_ledger(|ledger| ledger.db.last().map_err(ledger_error(&self.dir)))?;
        let after_ledger = last
            .and_then(|(key, value)| Some(key_to_seq(&key) + u64::from(Location::decode(&value)?.count)))
            .unwrap_or(0);
        Ok(after_ledger.max(self.meta_counter(META_NEXT_SEQUENCE)))
    }

    /// The oldest live record.
    pub(crate) fn first(&self) -> Result<Option<(u64, Location)>, BufferError> {
        self.next_after(None)
    }

    /// A buffer to encode the next record into (recycled once a record is confirmed).
    pub(crate) fn record_buffer(&self) -> Vec<u8> {
        let mut buffer = lock(&self.spare_records).pop().unwrap_or_default();
        buffer.clear();
        buffer
    }

    /// Appends a record (its first event has number `sequence`) and enters it in the ledger.
    /// Durable only after the next successful [`Store::sync`], which keeps the bytes until
    /// then. On failure the record is handed back, and nothing of it is in the ledger.
    pub(crate) fn append(
        &self,
        sequence: u64,
        record: Vec<u8>,
        count: u32,
    ) -> Result<Location, (BufferError, Vec<u8>)> {
        // Nothing new while the reserve is missing: the room it needs is the room that lets
        // the buffer open and drain on a full disk.
        if let Err(e) = self.ensure_reserve() {
            return Err((e, record));
        }
        let mut appender = lock(&self.appender);
        match self.write_record(&mut appender, sequence, &record, count) {
            Ok(location) => {
                appender.unconfirmed_bytes += record.len();
                appender.unconfirmed.push(Unconfirmed {
                    sequence,
                    count,
                    bytes: record,
                });
                Ok(location)
            }
            Err(e) => Err((e, record)),
        }
    }

    /// Writes a record at the end of the current segment (rolling over first if it is full)
    /// and points the ledger at it.
    fn write_record(
        &self,
        appender: &mut Appender,
        sequence: u64,
        record: &[u8],
        count: u32,
    ) -> Result<Location, BufferError> {
        let len = u32::try_from(record.len())
            .map_err(|_| sync_error(format!("a record of {} bytes is too large", record.len())))?;
        let roll = appender
            .current
            .as_ref()
            .is_none_or(|segment| segment.len > 0 && segment.len + u64::from(len) > self.segment_bytes);
        if roll {
            self.roll(appender, sequence)?;
        }
        let Some(segment) = appender.current.as_mut() else {
            return Err(sync_error("no segment open for writing"));
        };
        // At the segment's logical end, not the file position: after a failed (partial) write
        // the next attempt lands where its ledger entry will say.
        segment
            .file
            .write_all_at(record, segment.len)
            .map_err(|e| io(&self.segment_path(segment.id))(e))?;
        let location = Location {
            segment: segment.id,
            offset: segment.len,
            len,
            count,
        };
        // Still under the appender's lock, so that segment clean-up never sees a record in a
        // segment without its ledger entry.
        self.with_ledger(|ledger| {
            self.fs.ledger_write().map_err(sync_error)?;
            ledger
                .db
                .insert(sequence.to_be_bytes(), &location.encode())
                .map_err(sync_error)
        })?;
        // Only now: a record whose ledger entry failed is written again at the same place.
        segment.len += u64::from(len);
        Ok(location)
    }

    /// Starts a new segment named `id` (a spare renamed, or a new file).
    fn roll(&self, appender: &mut Appender, id: u64) -> Result<(), BufferError> {
        let path = self.segment_path(id);
        // A file of this name can only be garbage from a run that died before its ledger
        // entries were flushed, or from records written again: replaced by the spare, or
        // truncated. A spare's old records are never taken for new ones: a record carries its
        // sequence number, which must match the ledger entry that leads to it.
        let reused = appender.spares.pop().and_then(|spare| {
            let spare_path = self.segment_path(spare);
            match self.fs.rename(&spare_path, &path) {
                Ok(()) => Some(()),
                Err(e) => {
                    tracing::warn!(path = %spare_path.display(), error = %e, "cannot reuse a drained disk buffer segment; deleting it");
                    let _ = self.fs.remove_file(&spare_path);
                    None
                }
            }
        });
        let file = match reused {
            Some(()) => self.fs.open_rw(&path),
            None => self.fs.create(&path),
        }
        .map_err(io(&path))?;
        appender.renamed = true;
        if let Some(previous) = appender.current.replace(OpenSegment {
            id,
            file: Arc::from(file),
            len: 0,
        }) {
            appender.unsynced.push(previous.file);
        }
        let mut segments = lock(&self.segments);
        if segments.back() != Some(&id) {
            segments.push_back(id);
        }
        Ok(())
    }

    /// After a failed sync: every file written since the last successful one is suspect, so
    /// the unconfirmed records (still in memory) are written again into a new segment and the
    /// ledger pointed at the copies. Segments that start at or after the first unconfirmed
    /// record hold nothing else and are deleted (records settled meanwhile already left the
    /// list, see [`Store::remove`]). The reader never reads an unconfirmed record from
    /// disk, so moving them is safe.
    fn rewrite(&self, appender: &mut Appender) -> Result<(), BufferError> {
        appender.rewrite_due = true;
        appender.current = None;
        appender.unsynced.clear();
        let Some(first) = appender.unconfirmed.first().map(|r| r.sequence) else {
            appender.rewrite_due = false;
            return Ok(());
        };
        {
            let mut segments = lock(&self.segments);
            while let Some(&newest) = segments.back() {
                if newest < first {
                    break;
                }
                let path = self.segment_path(newest);
                match self.fs.remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&path)(e)),
                }
                segments.pop_back();
            }
        }
        let mut records = std::mem::take(&mut appender.unconfirmed);
        let mut result = Ok(());
        let mut kept = Vec::with_capacity(records.len());
        for record in records.drain(..) {
            if result.is_ok() {
                result = self
                    .write_record(appender, record.sequence, &record.bytes, record.count)
                    .map(drop);
            }
            kept.push(record);
        }
        appender.unconfirmed = kept;
        if result.is_ok() {
            appender.rewrite_due = false;
        } else {
            // The half-written new segment is deleted and written again at the next attempt.
            appender.current = None;
            appender.unsynced.clear();
        }
        result
    }

    /// Bytes of the records kept in memory until a sync confirms them.
    pub(crate) fn unconfirmed_bytes(&self) -> usize {
        lock(&self.appender).unconfirmed_bytes
    }

    /// Reads the record at `location` into `record` (replacing what it held).
    pub(crate) fn read_into(&self, location: Location, record: &mut Vec<u8>) -> Result<(), BufferError> {
        let path = self.segment_path(location.segment);
        let mut handle = lock(&self.read_handle);
        if handle.as_ref().is_none_or(|(id, _)| *id != location.segment) {
            *handle = None;
            *handle = Some((location.segment, self.fs.open_read(&path).map_err(io(&path))?));
        }
        let Some((_, file)) = handle.as_ref() else {
            return Err(BufferError::NotABuffer { path });
        };
        // A ledger entry pointing past the end (a corrupt entry, or bytes lost with a crash)
        // must not make us allocate up to 4 GiB first.
        let read = file.len().and_then(|file_len| {
            if location.offset.saturating_add(u64::from(location.len)) > file_len {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            file.read_at(location.offset, location.len as usize, record)
        });
        if read.is_err() {
            // The next attempt opens the file afresh: this handle may be what fails (a file
            // replaced, or a failing device that came back).
            *handle = None;
        }
        read.map_err(io(&path))
    }

    /// Reads the record at `location`.
    pub(crate) fn read(&self, location: Location) -> Result<Vec<u8>, BufferError> {
        let mut record = Vec::new();
        self.read_into(location, &mut record)?;
        Ok(record)
    }

    /// Forgets a settled record, and deletes the segments that no longer hold a live record.
    /// Returns where the record lay, or `None` if the ledger no longer listed it.
    pub(crate) fn remove(&self, sequence: u64) -> Result<Option<Location>, BufferError> {
        let removed = self.with_ledger(|ledger| {
            self.fs.ledger_write().map_err(sync_error)?;
            ledger.db.remove(sequence.to_be_bytes()).map_err(sync_error)
        })?;
        {
            // Delivered before it was confirmed (the sink read it from memory): it must not
            // be written again after a failed sync.
            let mut appender = lock(&self.appender);
            if let Ok(i) = appender
                .unconfirmed
                .binary_search_by_key(&sequence, |r| r.sequence)
            {
                let record = appender.unconfirmed.remove(i);
                appender.unconfirmed_bytes -= record.bytes.len();
            }
        }
        let Some(location) = removed.and_then(|value| Location::decode(&value)) else {
            return Ok(None);
        };
        let oldest = lock(&self.segments).front().copied();
        if oldest == Some(location.segment) {
            self.delete_drained_segments();
        }
        Ok(Some(location))
    }

    fn delete_drained_segments(&self) {
        // The appender's lock first: no record can be appended (or a segment rolled) between
        // reading the first live record and deleting what lies before it.
        let mut appender = lock(&self.appender);
        let writing = appender.current.as_ref().map(|s| s.id);
        let Ok(first) = self.first() else {
            return;
        };
        let first_live = first.map(|(_, location)| location.segment);
        let mut segments = lock(&self.segments);
        while let Some(&oldest) = segments.front() {
            let drained = first_live.is_none_or(|first| oldest < first);
            if !drained || Some(oldest) == writing {
                break;
            }
            segments.pop_front();
            // Kept for reuse, unless the disk is full: then the space is what counts.
            if appender.spares.len() < SPARE_SEGMENTS && !self.reserve_missing.load(Ordering::Acquire) {
                appender.spares.push(oldest);
                continue;
            }
            let path = self.segment_path(oldest);
            if let Err(e) = self.fs.remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete a drained disk buffer segment");
            }
            // An open handle keeps a deleted file's blocks allocated.
            let mut handle = lock(&self.read_handle);
            if handle.as_ref().is_some_and(|(id, _)| *id == oldest) {
                *handle = None;
            }
        }
    }

    /// The first record after the one starting at `after` (or the first of all).
    pub(crate) fn next_after(&self, after: Option<u64>) -> Result<Option<(u64, Location)>, BufferError> {
        let next = self.with_ledger(|ledger| {
            let next = match after {
                Some(seq) => match seq.checked_add(1) {
                    Some(start) => ledger.db.range(start.to_be_bytes()..).next(),
                    None => None,
                },
                None => ledger.db.iter().next(),
            };
            next.transpose().map_err(ledger_error(&self.dir))
        })?;
        Ok(next.map(|(key, value)| {
            // An entry that does not decode points nowhere: reading it reports it as corrupt.
            let location = Location::decode(&value).unwrap_or(Location {
                segment: u64::MAX,
                offset: 0,
                len: 0,
                count: 0,
            });
            (key_to_seq(&key), location)
        }))
    }

    /// The ledger entry of the record starting at `sequence`.
    pub(crate) fn location(&self, sequence: u64) -> Result<Option<Location>, BufferError> {
        let value = self.with_ledger(|ledger| {
            ledger
                .db
                .get(sequence.to_be_bytes())
                .map_err(ledger_error(&self.dir))
        })?;
        Ok(value.and_then(|v| Location::decode(&v)))
    }

    /// Makes everything appended so far durable: fsyncs the segments first, then the ledger
    /// and the counters. Only after this returns `Ok` may sources hear that those events are
    /// safe. (A ledger entry that reaches the disk before its segment bytes, on power loss,
    /// points at bytes that fail their checksum, or, in a reused segment file, at an intact
    /// older record whose sequence number differs from the entry's: either way reported as
    /// corrupt; its events were never acknowledged.) `next_sequence` is kept as the
    /// high-water mark of the numbering.
    ///
    /// If it fails, the records it was to confirm are written again into a new segment (see
    /// [`Store::rewrite`]) before it returns, or at the start of the next call: a later fsync
    /// of the same files would report success for pages the failed one lost.
    pub(crate) fn sync(&self, totals: Totals, next_sequence: u64) -> Result<(), BufferError> {
        // Not under the appender's lock while the disk works: the writer keeps appending.
        let (confirming, files, renamed) = {
            let mut appender = lock(&self.appender);
            if self.reinsert_due.swap(false, Ordering::AcqRel) {
                appender.rewrite_due = true;
            }
            if appender.rewrite_due {
                self.rewrite(&mut appender)?;
            }
            let mut files = std::mem::take(&mut appender.unsynced);
            files.extend(appender.current.as_ref().map(|s| s.file.clone()));
            // Everything appended so far is what this sync confirms.
            let confirming = appender.unconfirmed.last().map_or(0, |r| r.sequence + 1);
            (confirming, files, std::mem::take(&mut appender.renamed))
        };
        let result = self.sync_files(&files, renamed, totals, next_sequence);
        let mut appender = lock(&self.appender);
        match result {
            Ok(()) => {
                let mut spare = lock(&self.spare_records);
                let confirmed = appender.unconfirmed.partition_point(|r| r.sequence < confirming);
                let drained: usize = appender.unconfirmed[..confirmed]
                    .iter()
                    .map(|r| r.bytes.len())
                    .sum();
                appender.unconfirmed_bytes -= drained;
                for record in appender.unconfirmed.drain(..confirmed) {
                    if spare.len() < SPARE_RECORDS {
                        spare.push(record.bytes);
                    }
                }
                Ok(())
            }
            Err(e) => {
                appender.renamed |= renamed;
                if let Err(rewrite) = self.rewrite(&mut appender) {
                    tracing::debug!(error = %rewrite, "writing unconfirmed records again failed; the next sync tries again");
                }
                Err(e)
            }
        }
    }

    fn sync_files(
        &self,
        files: &[Arc<dyn SegmentFile>],
        renamed: bool,
        totals: Totals,
        next_sequence: u64,
    ) -> Result<(), BufferError> {
        for file in files {
            file.sync_data().map_err(sync_error)?;
        }
        if renamed {
            self.fs
                .sync_dir(&self.dir.join(SEGMENT_DIR))
                .map_err(sync_error)?;
        }
        self.write_totals(totals)?;
        self.with_ledger(|ledger| {
            self.fs.ledger_write().map_err(sync_error)?;
            ledger
                .meta
                .insert(META_NEXT_SEQUENCE, &next_sequence.to_be_bytes())
                .map_err(sync_error)?;
            // sled's flush writes its log buffers to the file but does not fsync it.
            ledger.db.flush().map_err(sync_error)?;
            ledger.file.sync_data().map_err(sync_error)
        })
    }

    /// Records the counters in the ledger (durable with the next sync).
    pub(crate) fn write_totals(&self, totals: Totals) -> Result<(), BufferError> {
        self.with_ledger(|ledger| {
            self.fs.ledger_write().map_err(sync_error)?;
            ledger
                .meta
                .insert(META_BYTES, &totals.bytes.to_be_bytes())
                .map_err(sync_error)?;
            ledger
                .meta
                .insert(META_EVENTS, &totals.events.to_be_bytes())
                .map_err(sync_error)?;
            Ok(())
        })
    }

    /// Bytes of the ledger and the segment files (spares included).
    pub(crate) fn size_on_disk(&self) -> u64 {
        let spares = lock(&self.appender).spares.clone();
        let segments: u64 = lock(&self.segments)
            .iter()
            .chain(spares.iter())
            .filter_map(|&id| std::fs::metadata(self.segment_path(id)).ok())
            .map(|m| m.len())
            .sum();
        let ledger = self
            .with_ledger(|ledger| Ok(ledger.db.size_on_disk().unwrap_or(0)))
            .unwrap_or(0);
        ledger + segments
    }

    pub(crate) fn segment_path(&self, id: u64) -> PathBuf {
        self.dir
            .join(SEGMENT_DIR)
            .join(format!("{id:020}.{SEGMENT_EXTENSION}"))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these leaves plain data behind, still consistent enough to
    // keep serving (the ledger on disk is the truth).
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn key_to_seq(key: &[u8]) -> u64 {
    <[u8; 8]>::try_from(key).map_or(0, u64::from_be_bytes)
}

fn list_segments(fs: &dyn Filesystem, dir: &Path) -> Result<VecDeque<u64>, BufferError> {
    let mut ids: Vec<u64> = fs
        .list(dir)
        .map_err(io(dir))?
        .iter()
        .filter_map(|name| {
            let name = name.to_str()?;
            name.strip_suffix(SEGMENT_EXTENSION)?
                .strip_suffix('.')?
                .parse()
                .ok()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids.into())
}

fn open_ledger(dir: &Path, fs: &dyn Filesystem) -> Result<Ledger, BufferError> {
    remove_stray_snapshots(dir);
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_CAPACITY)
        .open()
        .map_err(ledger_error(dir))?;
    let meta = db.open_tree("meta").map_err(ledger_error(dir))?;
    let path = dir.join(SLED_DATA_FILE);
    let file = fs.open_ledger(&path).map_err(io(&path))?;
    Ok(Ledger { db, meta, file })
}

/// Deletes the reserve file in `dir`; whether there was one.
fn release_reserve(dir: &Path, fs: &dyn Filesystem) -> bool {
    let path = dir.join(RESERVE_FILE);
    match fs.remove_file(&path) {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "the disk is full: released the disk buffer's reserved space so that it can open and delete; nothing new is written until the space is back");
            true
        }
        Err(_) => false,
    }
}

/// A kill during sled's open can leave `snap.<lsn>.generating`, which a later open takes for
/// the newest snapshot and then fails on (sled-queue note); it is never needed.
fn remove_stray_snapshots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let path: PathBuf = entry.path();
            tracing::warn!(path = %path.display(), "removing an unfinished sled snapshot left by an interrupted start");
            let _ = std::fs::remove_file(path);
        }
    }
}
