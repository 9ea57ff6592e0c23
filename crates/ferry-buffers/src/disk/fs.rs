//! The file operations of a disk buffer, behind a small seam so that tests can make the disk
//! misbehave: fail with `ENOSPC` or `EIO` at a chosen operation, lose the pages of a failed
//! fsync, or lose power (everything not fsynced is gone). Production uses [`RealFs`].
//!
//! sled does its own file I/O; the seam sees the ledger only where the store touches it: a
//! fault point before every ledger change ([`Filesystem::ledger_write`]) and the fsync of
//! sled's data file (a [`SegmentFile`] opened with [`Filesystem::open_ledger`]).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// What a disk buffer does to its directory.
pub(crate) trait Filesystem: Send + Sync + 'static {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates `path` empty (truncating what was there) for reading and writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Opens an existing file for reading and writing.
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Opens an existing file for reading.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Opens sled's data file, only to fsync it.
    fn open_ledger(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        self.open_read(path)
    }
    /// Renames a file.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Deletes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// fsyncs a directory, so that the names created, renamed or deleted in it are durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// The names in a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Called before every change to the ledger: where a test makes sled's writes fail.
    fn ledger_write(&self) -> io::Result<()> {
        Ok(())
    }
}

/// One open file.
pub(crate) trait SegmentFile: Send + Sync {
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Reads `len` bytes at `offset` into `out`, replacing what it held; a short file is an
    /// `UnexpectedEof` error. Callers serialise reads of one handle (the cursor is shared).
    fn read_at(&self, offset: u64, len: usize, out: &mut Vec<u8>) -> io::Result<()>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// Makes the file's data durable.
    fn sync_data(&self) -> io::Result<()>;
}

/// The operating system's files.
#[derive(Debug, Default)]
pub(crate) struct RealFs;

impl Filesystem for RealFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let file = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)?;
        Ok(Box::new(file))
    }

    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(File::options().read(true).write(true).open(path)?))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(File::open(path)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }
}

impl SegmentFile for File {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, buf, offset)
    }

    fn read_at(&self, offset: u64, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
        // `read_to_end` fills the spare capacity without zeroing it first (a memset of every
        // record showed in profiles); `read_exact_at` would need it initialised.
        out.clear();
        out.reserve(len);
        let mut file: &File = self;
        file.seek(SeekFrom::Start(offset))?;
        file.take(len as u64).read_to_end(out)?;
        if out.len() != len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
}
