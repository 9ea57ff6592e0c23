//! Telling whether a file is still the file a checkpoint describes.
//!
//! `(device, inode)` finds the candidate; two fingerprints confirm it. The *head* is a CRC of
//! the file's first bytes (up to [`HEAD_BYTES`], growing while the file is smaller, so tiny
//! files are identified too). The *marker* is a CRC of the bytes just before the checkpoint's
//! offset. A reused inode, a rewritten or truncated-and-regrown file changes one of them, and
//! the file is then read from its start: a duplicate costs less than a lost line.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

/// How many leading bytes identify a file.
pub const HEAD_BYTES: u64 = 1024;
/// How many bytes before an offset confirm it.
pub const MARKER_BYTES: u64 = 256;

/// A CRC over `len` bytes of a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub len: u32,
    pub crc: u32,
}

impl Fingerprint {
    /// The fingerprint of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            crc: crc32fast::hash(bytes),
        }
    }

    /// The head of `file`, whose size is `size`.
    pub fn head(file: &File, size: u64) -> io::Result<Self> {
        Ok(Self::of(&read_at(file, 0, size.min(HEAD_BYTES))?))
    }

    /// The marker of the bytes before `offset`.
    pub fn marker(file: &File, offset: u64) -> io::Result<Self> {
        let len = offset.min(MARKER_BYTES);
        Ok(Self::of(&read_at(file, offset - len, len)?))
    }

    /// Whether the `len` bytes of `file` from `at` still have this fingerprint.
    pub fn matches(&self, file: &File, at: u64) -> io::Result<bool> {
        let bytes = read_at(file, at, u64::from(self.len))?;
        Ok(bytes.len() == self.len as usize && crc32fast::hash(&bytes) == self.crc)
    }

    /// Whether `file`, of `size` bytes, still holds a head that was taken when the file was
    /// smaller, and if so the grown head (up to [`HEAD_BYTES`]).
    pub fn grown_head(&self, file: &File, size: u64) -> io::Result<Option<Self>> {
        let bytes = read_at(file, 0, size.min(HEAD_BYTES))?;
        let old = self.len as usize;
        if bytes.len() < old || crc32fast::hash(&bytes[..old]) != self.crc {
            return Ok(None);
        }
        Ok(Some(Self::of(&bytes)))
    }
}

/// Why a file cannot resume where its checkpoint says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changed {
    /// Smaller than the checkpoint's offset.
    Shorter,
    /// Its first bytes differ: another file on the same inode, or rewritten.
    Head,
    /// The bytes before the offset differ: truncated and written again.
    Marker,
}

impl std::fmt::Display for Changed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Changed::Shorter => "it is shorter than the checkpoint's offset (truncated)",
            Changed::Head => "its first bytes changed (a new file on a reused inode, or rewritten)",
            Changed::Marker => {
                "the bytes before the checkpoint's offset changed (truncated and written again)"
            }
        })
    }
}

/// Checks that `file` (of `size` bytes) is the one `head` and `marker` describe at `offset`.
pub fn check_resume(
    file: &File,
    size: u64,
    offset: u64,
    head: Fingerprint,
    marker: Fingerprint,
) -> io::Result<Result<(), Changed>> {
    if size < offset {
        return Ok(Err(Changed::Shorter));
    }
    if !head.matches(file, 0)? {
        return Ok(Err(Changed::Head));
    }
    if !marker.matches(file, offset - u64::from(marker.len).min(offset))? {
        return Ok(Err(Changed::Marker));
    }
    Ok(Ok(()))
}

/// Reads up to `len` bytes at `offset` (fewer at end of file).
pub fn read_at(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_with(content: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(content).expect("write");
        let handle = f.reopen().expect("reopen");
        (f, handle)
    }

    #[test]
    fn resume_checks_size_head_and_marker() {
        let (_keep, file) = file_with(b"first line\nsecond line\n");
        let head = Fingerprint::head(&file, 23).expect("head");
        let marker = Fingerprint::marker(&file, 11).expect("marker");
        assert_eq!(check_resume(&file, 23, 11, head, marker).expect("io"), Ok(()));
        assert_eq!(
            check_resume(&file, 5, 11, head, marker).expect("io"),
            Err(Changed::Shorter)
        );
        let (_keep2, other) = file_with(b"other line\nsecond line\n");
        assert_eq!(
            check_resume(&other, 23, 11, head, marker).expect("io"),
            Err(Changed::Head)
        );
    }

    #[test]
    fn a_small_head_grows_only_over_the_same_bytes() {
        let (_keep, small) = file_with(b"ab");
        let head = Fingerprint::head(&small, 2).expect("head");
        let (_keep2, grown) = file_with(b"abcdef");
        assert_eq!(
            head.grown_head(&grown, 6).expect("io"),
            Some(Fingerprint::of(b"abcdef"))
        );
        let (_keep3, other) = file_with(b"xbcdef");
        assert_eq!(head.grown_head(&other, 6).expect("io"), None);
    }
}
