//! Durable, checksummed checkpoints with the previous generation kept.
//!
//! One file per source, `checkpoints`, holding a header line with a CRC-32 of the body and a
//! JSON body. Saving writes `checkpoints.tmp`, fsyncs it, moves the current file to
//! `checkpoints.prev`, renames the new one into place and fsyncs the directory: a crash at any
//! point leaves a complete current file, or a complete previous one. Loading never guesses:
//! a corrupt current file falls back to the previous generation (older offsets, so lines are
//! sent again rather than lost); if that is corrupt too, the source refuses to start and says
//! which files to look at.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use fs2::FileExt;
use serde::{Deserialize, Serialize};

use crate::identity::Fingerprint;

const CURRENT: &str = "checkpoints";
const PREVIOUS: &str = "checkpoints.prev";
const TEMP: &str = "checkpoints.tmp";
const LOCK: &str = "lock";
const MAGIC: &str = "ferry-file-checkpoints v1";

/// Where one file was, and how far its lines are safe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    pub dev: u64,
    pub ino: u64,
    /// Where the file was last seen (to find it again after a rotation while stopped).
    pub path: String,
    /// Every line before this byte offset is safe.
    pub offset: u64,
    pub head: Fingerprint,
    /// The bytes before `offset`.
    pub marker: Fingerprint,
}

#[derive(Serialize, Deserialize)]
struct Body {
    files: Vec<FileCheckpoint>,
}

/// What went wrong with a source's checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// Another process runs this source with the same data directory.
    #[error(
        "{dir} is in use by another ferry process (two processes tailing the same files with one set of checkpoints would each send every line)"
    )]
    Locked { dir: PathBuf },
    /// Neither generation can be trusted.
    #[error(
        "checkpoint file {current} is corrupt ({reason}) and no usable previous generation exists ({previous}); ferry will not guess where to resume: restore the files, or move them away to start this source afresh (read_from then applies)"
    )]
    Corrupt {
        current: PathBuf,
        reason: String,
        previous: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The checkpoint files of one source, locked for this process.
#[derive(Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
    _lock: File,
}

/// What was found at start.
#[derive(Debug, Default)]
pub struct Loaded {
    pub files: Vec<FileCheckpoint>,
    /// Whether any checkpoint existed: `read_from` applies only on a first start.
    pub existed: bool,
}

impl CheckpointStore {
    /// Creates or opens `dir`, locks it, and loads what it holds.
    pub fn open(dir: &Path) -> Result<(Self, Loaded), CheckpointError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        if lock.try_lock_exclusive().is_err() {
            return Err(CheckpointError::Locked { dir: dir.to_owned() });
        }
        let store = Self {
            dir: dir.to_owned(),
            _lock: lock,
        };
        let loaded = store.load()?;
        Ok((store, loaded))
    }

    fn load(&self) -> Result<Loaded, CheckpointError> {
        let current = self.dir.join(CURRENT);
        let previous = self.dir.join(PREVIOUS);
        let reason = match read_generation(&current)? {
            Some(Ok(files)) => return Ok(Loaded { files, existed: true }),
            Some(Err(reason)) => reason,
            None => {
                // A crash between the two renames of a save leaves only the previous one.
                return match read_generation(&previous)? {
                    Some(Ok(files)) => {
                        tracing::info!(path = %previous.display(), "resuming from the previous checkpoint generation (the last save was interrupted)");
                        Ok(Loaded { files, existed: true })
                    }
                    Some(Err(reason)) => Err(CheckpointError::Corrupt {
                        current,
                        reason: "missing".into(),
                        previous: format!("{} is corrupt: {reason}", previous.display()),
                    }),
                    None => Ok(Loaded::default()),
                };
            }
        };
        match read_generation(&previous)? {
            Some(Ok(files)) => {
                tracing::warn!(path = %current.display(), %reason, previous = %previous.display(), "checkpoint file is corrupt; resuming from the previous generation, so lines read since then are sent again");
                Ok(Loaded { files, existed: true })
            }
            Some(Err(previous_reason)) => Err(CheckpointError::Corrupt {
                current,
                reason,
                previous: format!("{} is corrupt too: {previous_reason}", previous.display()),
            }),
            None => Err(CheckpointError::Corrupt {
                current,
                reason,
                previous: format!("{} does not exist", previous.display()),
            }),
        }
    }

    /// Saves `files` as the current generation, durably.
    pub fn save(&self, files: &[FileCheckpoint]) -> Result<(), CheckpointError> {
        let body = serde_json::to_vec(&Body {
            files: files.to_vec(),
        })
        .map_err(|e| CheckpointError::Io {
            path: self.dir.join(TEMP),
            source: io::Error::other(e),
        })?;
        let temp = self.dir.join(TEMP);
        let current = self.dir.join(CURRENT);
        let previous = self.dir.join(PREVIOUS);
        {
            let mut file = File::create(&temp).map_err(io_error(&temp))?;
            let header = format!(
                "{MAGIC} crc32={:08x} len={}\n",
                crc32fast::hash(&body),
                body.len()
            );
            file.write_all(header.as_bytes()).map_err(io_error(&temp))?;
            file.write_all(&body).map_err(io_error(&temp))?;
            file.sync_all().map_err(io_error(&temp))?;
        }
        match fs::rename(&current, &previous) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&current)(e)),
        }
        fs::rename(&temp, &current).map_err(io_error(&current))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(&self.dir))
    }
}

/// `None` when the file does not exist; `Some(Err(reason))` when it cannot be trusted.
fn read_generation(path: &Path) -> Result<Option<Result<Vec<FileCheckpoint>, String>>, CheckpointError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    Ok(Some(parse(&bytes)))
}

fn parse(bytes: &[u8]) -> Result<Vec<FileCheckpoint>, String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    let newline = memchr::memchr(b'\n', bytes).ok_or("no header line")?;
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| "the header is not text")?;
    let rest = header
        .strip_prefix(MAGIC)
        .ok_or_else(|| format!("the header does not start with `{MAGIC}`"))?;
    let mut crc = None;
    let mut len = None;
    for part in rest.split_whitespace() {
        if let Some(v) = part.strip_prefix("crc32=") {
            crc = u32::from_str_radix(v, 16).ok();
        } else if let Some(v) = part.strip_prefix("len=") {
            len = v.parse::<usize>().ok();
        }
    }
    let (Some(crc), Some(len)) = (crc, len) else {
        return Err("the header lacks its crc32 or len".into());
    };
    let body = &bytes[newline + 1..];
    if body.len() != len {
        return Err(format!(
            "the body has {} bytes, the header says {len} (torn write)",
            body.len()
        ));
    }
    if crc32fast::hash(body) != crc {
        return Err("the body's checksum does not match".into());
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| b.files)
        .map_err(|e| format!("the body is not valid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: u64) -> FileCheckpoint {
        FileCheckpoint {
            dev: 1,
            ino: 2,
            path: "/var/log/app.log".into(),
            offset,
            head: Fingerprint { len: 3, crc: 4 },
            marker: Fingerprint { len: 5, crc: 6 },
        }
    }

    #[test]
    fn saves_load_back_and_keep_the_previous_generation() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, loaded) = CheckpointStore::open(dir.path()).expect("open");
        assert!(!loaded.existed);
        store.save(&[entry(10)]).expect("save");
        store.save(&[entry(20)]).expect("save");
        drop(store);
        let (_store, loaded) = CheckpointStore::open(dir.path()).expect("open");
        assert_eq!(loaded.files, [entry(20)]);
        assert_eq!(
            parse(&fs::read(dir.path().join(PREVIOUS)).expect("prev")),
            Ok(vec![entry(10)])
        );
    }

    #[test]
    fn a_second_process_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let _first = CheckpointStore::open(dir.path()).expect("open");
        assert!(matches!(
            CheckpointStore::open(dir.path()),
            Err(CheckpointError::Locked { .. })
        ));
    }

    #[test]
    fn corruption_falls_back_to_the_previous_generation_or_refuses() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, _) = CheckpointStore::open(dir.path()).expect("open");
        store.save(&[entry(10)]).expect("save");
        store.save(&[entry(20)]).expect("save");
        drop(store);
        let current = dir.path().join(CURRENT);
        let mut bytes = fs::read(&current).expect("read");
        let last = bytes.len() - 3;
        bytes[last] ^= 0x20;
        fs::write(&current, &bytes).expect("corrupt");
        let (store, loaded) = CheckpointStore::open(dir.path()).expect("falls back");
        assert_eq!(loaded.files, [entry(10)]);
        drop(store);
        // Zeroed, as after a power loss on some file systems.
        fs::write(dir.path().join(PREVIOUS), vec![0u8; 64]).expect("zero");
        let err = CheckpointStore::open(dir.path()).expect_err("both corrupt");
        let text = err.to_string();
        assert!(
            text.contains("corrupt") && text.contains("will not guess"),
            "{text}"
        );
    }

    #[test]
    fn torn_writes_are_detected() {
        let body = br#"{"files":[]}"#;
        let header = format!("{MAGIC} crc32={:08x} len={}\n", crc32fast::hash(body), body.len());
        let mut whole = header.into_bytes();
        whole.extend_from_slice(body);
        assert_eq!(parse(&whole), Ok(vec![]));
        assert!(parse(&whole[..whole.len() - 2]).is_err());
        assert!(parse(b"").is_err());
    }
}
