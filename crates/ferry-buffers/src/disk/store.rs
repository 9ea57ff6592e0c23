//! The sled database behind a disk buffer: records keyed by the big-endian sequence number of
//! their first event, a `meta` tree with the persisted size counters, a lock file, and the
//! fsync sled itself does not do.

use std::fs::File;
use std::path::{Path, PathBuf};

use fs2::FileExt;
use sled::IVec;

use crate::BufferError;

const LOCK_FILE: &str = "ferry.lock";
/// sled 0.34 keeps its log in this file; fsyncing it makes flushed writes durable.
const SLED_DATA_FILE: &str = "db";
const META_BYTES: &[u8] = b"bytes";
const META_EVENTS: &[u8] = b"events";
/// sled's page cache, counted in on-disk bytes; kept small so memory stays bounded whatever
/// the backlog (records pack many events, so few pages are hot).
const CACHE_CAPACITY: u64 = 16 * 1024 * 1024;

pub(crate) struct Store {
    db: sled::Db,
    meta: sled::Tree,
    data_file: File,
    _lock: File,
}

/// Persisted counters: logical bytes and events of the stored records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) bytes: u64,
    pub(crate) events: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BufferError + '_ {
    move |source| BufferError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Store {
    /// Opens (or creates) the buffer in `dir`; fails with a clear error if another process
    /// holds it.
    pub(crate) fn open(dir: &Path) -> Result<Self, BufferError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
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
        remove_stray_snapshots(dir);
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_CAPACITY)
            .open()
            .map_err(|e| BufferError::Open {
                path: dir.to_owned(),
                reason: e.to_string(),
            })?;
        let meta = db.open_tree("meta").map_err(|e| BufferError::Open {
            path: dir.to_owned(),
            reason: e.to_string(),
        })?;
        let data_path = dir.join(SLED_DATA_FILE);
        let data_file = File::open(&data_path).map_err(io(&data_path))?;
        Ok(Self {
            db,
            meta,
            data_file,
            _lock: lock,
        })
    }

    pub(crate) fn totals(&self) -> Totals {
        let read = |key| {
            self.meta
                .get(key)
                .ok()
                .flatten()
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map_or(0, u64::from_be_bytes)
        };
        Totals {
            bytes: read(META_BYTES),
            events: read(META_EVENTS),
        }
    }

    /// The sequence number the next record starts at.
    pub(crate) fn next_sequence(&self) -> Result<u64, sled::Error> {
        Ok(match self.db.last()? {
            Some((key, value)) => key_to_seq(&key) + u64::from(super::record::count(&value).unwrap_or(1)),
            None => 0,
        })
    }

    pub(crate) fn first_sequence(&self) -> Result<Option<u64>, sled::Error> {
        Ok(self.db.first()?.map(|(key, _)| key_to_seq(&key)))
    }

    pub(crate) fn insert(&self, sequence: u64, record: &[u8]) -> Result<(), sled::Error> {
        self.db.insert(sequence.to_be_bytes(), record)?;
        Ok(())
    }

    pub(crate) fn remove(&self, sequence: u64) -> Result<(), sled::Error> {
        self.db.remove(sequence.to_be_bytes())?;
        Ok(())
    }

    /// The first record after `after` (or the first of all).
    pub(crate) fn next_after(&self, after: Option<u64>) -> Result<Option<(u64, IVec)>, sled::Error> {
        let next = match after {
            Some(seq) => match seq.checked_add(1) {
                Some(start) => self.db.range(start.to_be_bytes()..).next(),
                None => None,
            },
            None => self.db.iter().next(),
        };
        Ok(next.transpose()?.map(|(key, value)| (key_to_seq(&key), value)))
    }

    /// Every record in order, for `ferry buffer inspect/check`.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Result<(u64, IVec), sled::Error>> + '_ {
        self.db.iter().map(|r| r.map(|(k, v)| (key_to_seq(&k), v)))
    }

    /// Persists the counters, writes sled's buffers to the file and fsyncs it. Only after this
    /// returns are the records written before it durable.
    pub(crate) fn sync(&self, totals: Totals) -> Result<(), BufferError> {
        let sled_error = |e: sled::Error| BufferError::Sync {
            reason: e.to_string(),
        };
        self.meta
            .insert(META_BYTES, &totals.bytes.to_be_bytes())
            .map_err(sled_error)?;
        self.meta
            .insert(META_EVENTS, &totals.events.to_be_bytes())
            .map_err(sled_error)?;
        // sled's flush writes its log buffers to the file but does not fsync it.
        self.db.flush().map_err(sled_error)?;
        self.data_file.sync_data().map_err(|e| BufferError::Sync {
            reason: e.to_string(),
        })
    }

    pub(crate) fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

fn key_to_seq(key: &[u8]) -> u64 {
    <[u8; 8]>::try_from(key).map_or(0, u64::from_be_bytes)
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
