//! One file being tailed: where its lines are, and what of it is safe.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::acks::AckLedger;
use crate::framing::{Cut, Framing, Line};
use crate::identity::{Fingerprint, MARKER_BYTES, read_at};

/// A file's identity on its file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

impl FileKey {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// A file the source follows, open or not.
#[derive(Debug)]
pub struct TrackedFile {
    pub id: u64,
    pub key: FileKey,
    pub path: PathBuf,
    /// The path as the value of the event's file field (shared by every event of the file).
    pub path_value: Bytes,
    /// Whether the last discovery found it under a matched path. A file that is not attached
    /// was rotated away or deleted: it is read to its end, then let go.
    pub attached: bool,
    /// When it was last found detached (its writer may still append for a while).
    detached_since: Option<Instant>,
    pub handle: Option<File>,
    /// The offset of the first byte not yet in an emitted line.
    pub line_offset: u64,
    /// The bytes after `line_offset` that do not make a complete line yet.
    pub partial: Vec<u8>,
    /// The last bytes before `read_pos()`, to notice a file truncated and written again past
    /// where it was read.
    tail: Vec<u8>,
    /// Whether the last read reached the end of the file.
    pub at_eof: bool,
    /// When bytes were last read from it.
    pub last_data: Instant,
    pub head: Fingerprint,
    /// The marker at the offset it was taken at.
    pub marker: (u64, Fingerprint),
    pub ledger: AckLedger,
    /// Whether an errored batch holding back its checkpoint was reported.
    pub errored_reported: bool,
}

/// What one read of a file produced.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    pub cut: Cut,
    /// The bytes read (0 at end of file).
    pub bytes: usize,
    /// Set when the file was found truncated (or rewritten) and is read again from its start.
    pub restarted: Option<&'static str>,
}

impl TrackedFile {
    /// A file to be read from `offset`, whose checkpoint is at `offset` too.
    pub fn new(id: u64, key: FileKey, path: PathBuf, handle: File, offset: u64, head: Fingerprint) -> Self {
        let path_value = path_bytes(&path);
        Self {
            id,
            key,
            path,
            path_value,
            attached: true,
            detached_since: None,
            handle: Some(handle),
            line_offset: offset,
            partial: Vec::new(),
            tail: Vec::new(),
            at_eof: false,
            last_data: Instant::now(),
            head,
            // Taken at the first save: no offset has a marker yet.
            marker: (u64::MAX, Fingerprint::default()),
            ledger: AckLedger::new(offset),
            errored_reported: false,
        }
    }

    /// Where the next read starts.
    pub fn read_pos(&self) -> u64 {
        self.line_offset + self.partial.len() as u64
    }

    /// Found under a matched path.
    pub fn attach(&mut self) {
        self.attached = true;
        self.detached_since = None;
    }

    /// No matched path leads to it any more.
    pub fn detach(&mut self) {
        self.attached = false;
        self.detached_since.get_or_insert_with(Instant::now);
    }

    /// Whether it has been detached, and without new bytes, for at least `wait`.
    pub fn quiet_since_detached(&self, wait: std::time::Duration) -> bool {
        !self.attached
            && self.detached_since.is_some_and(|since| since.elapsed() >= wait)
            && self.last_data.elapsed() >= wait
    }

    /// Takes note of a new path for the same file.
    pub fn renamed(&mut self, path: PathBuf) {
        self.path_value = path_bytes(&path);
        self.path = path;
    }

    /// Reads up to `chunk` new bytes into `buf` and cuts them into `lines`.
    pub fn read(
        &mut self,
        buf: &mut BytesMut,
        chunk: usize,
        framing: &Framing,
        lines: &mut Vec<Line>,
    ) -> io::Result<ReadOutcome> {
        let mut outcome = ReadOutcome::default();
        let Some(handle) = &self.handle else {
            return Ok(outcome);
        };
        // One `fstat` per turn says whether there is anything new (which keeps a thousand idle
        // files cheap) and whether the file shrank.
        let size = handle.metadata()?.len();
        if size < self.read_pos() {
            self.restart();
            outcome.restarted = Some("truncated");
        } else if size == self.read_pos() {
            self.at_eof = true;
            return Ok(outcome);
        } else if !self.tail.is_empty() {
            // Before taking more, check that what came before is unchanged: a file truncated
            // and written past this point (copytruncate while the reader is behind) would
            // otherwise be read from its middle.
            let at = self.read_pos() - self.tail.len() as u64;
            if read_at(handle, at, self.tail.len() as u64)? != self.tail {
                self.restart();
                outcome.restarted = Some("truncated and written again");
            }
        }
        let Some(handle) = &self.handle else {
            return Ok(outcome);
        };
        buf.clear();
        buf.reserve(self.partial.len() + chunk);
        buf.extend_from_slice(&self.partial);
        let read = pread_into_spare(handle, buf, chunk, self.read_pos())?;
        outcome.bytes = read;
        if read == 0 {
            // Whether it shrank is checked on the next turn.
            self.at_eof = true;
            return Ok(outcome);
        }
        // A regular file gives a short read only at its end.
        self.at_eof = read < chunk;
        self.last_data = Instant::now();
        let keep = buf.len().min(MARKER_BYTES as usize);
        self.tail.clear();
        self.tail.extend_from_slice(&buf[buf.len() - keep..]);
        // A small read is copied out so that its lines do not hold the whole read buffer
        // alive while in flight (memory follows what is in flight, not the chunk size).
        let bytes = if buf.len() < chunk / 4 {
            let copy = Bytes::copy_from_slice(buf);
            buf.clear();
            copy
        } else {
            buf.split().freeze()
        };
        outcome.cut = framing.cut(&bytes, self.line_offset, lines);
        self.partial.clear();
        self.partial.extend_from_slice(&bytes[outcome.cut.consumed..]);
        if self.partial.capacity() > 64 * 1024 && self.partial.len() < 1024 {
            self.partial.shrink_to(1024);
        }
        self.line_offset += outcome.cut.consumed as u64;
        Ok(outcome)
    }

    /// The partial last line as a line of its own, for a file that will not grow any more.
    pub fn take_last_line(&mut self, framing: &Framing) -> Option<Line> {
        let rest = Bytes::from(std::mem::take(&mut self.partial));
        let len = rest.len() as u64;
        let line = framing.finish(rest, self.line_offset)?;
        self.line_offset += len;
        Some(line)
    }

    /// Starts over from the first byte: the file was truncated or rewritten. Batches still in
    /// flight are forgotten (their bytes no longer exist in the file).
    pub fn restart(&mut self) {
        self.line_offset = 0;
        self.partial.clear();
        self.tail.clear();
        self.at_eof = false;
        self.ledger.restart_at(0);
        self.head = Fingerprint::default();
        self.marker = (0, Fingerprint::default());
    }

    /// Refreshes the fingerprints a checkpoint stores: the head while it is still growing,
    /// and the marker at the checkpoint's offset.
    pub fn refresh_fingerprints(&mut self) -> io::Result<()> {
        let Some(handle) = &self.handle else {
            return Ok(());
        };
        let committed = self.ledger.committed();
        if u64::from(self.head.len) < crate::identity::HEAD_BYTES
            && self.read_pos() > u64::from(self.head.len)
            && let Some(grown) = self.head.grown_head(handle, self.read_pos())?
        {
            self.head = grown;
        }
        if self.marker.0 != committed {
            self.marker = (committed, Fingerprint::marker(handle, committed)?);
        }
        Ok(())
    }
}

fn path_bytes(path: &Path) -> Bytes {
    Bytes::from(path.as_os_str().as_encoded_bytes().to_vec())
}

/// Reads up to `max` bytes at `offset` into the spare capacity of `buf` without zero-filling
/// it first, and returns how many came.
fn pread_into_spare(file: &File, buf: &mut BytesMut, max: usize, offset: u64) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let spare = buf.spare_capacity_mut();
    let len = spare.len().min(max);
    let offset = libc::off_t::try_from(offset).map_err(|_| io::Error::other("offset beyond off_t"))?;
    loop {
        // SAFETY: pread(2) writes at most `len` bytes into memory this function borrows
        // exclusively through `spare`, and returns how many it wrote.
        let read = unsafe { libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), len, offset) };
        match usize::try_from(read) {
            Ok(read) => {
                // SAFETY: those `read` bytes past the current length were just written.
                unsafe { buf.set_len(buf.len() + read) };
                return Ok(read);
            }
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}
