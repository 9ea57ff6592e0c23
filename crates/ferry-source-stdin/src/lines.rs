//! Splitting a byte stream into lines without copying them.

use bytes::{Bytes, BytesMut};

/// Accumulates reads and hands out complete lines as slices of shared buffers (public for the
/// crate's micro-benchmark).
#[derive(Debug)]
pub struct LineSplitter {
    pending: BytesMut,
    max_line_bytes: usize,
}

impl LineSplitter {
    /// A splitter that cuts lines longer than `max_line_bytes` into pieces.
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            pending: BytesMut::new(),
            max_line_bytes,
        }
    }

    /// Cuts later lines at `max_line_bytes` instead (a reloaded configuration).
    pub fn set_max_line_bytes(&mut self, max_line_bytes: usize) {
        self.max_line_bytes = max_line_bytes;
    }

    /// The buffer to read into: at least `min_free` bytes of spare room after what is pending.
    pub fn spare(&mut self, min_free: usize) -> &mut BytesMut {
        self.pending.reserve(min_free);
        &mut self.pending
    }

    /// Takes every complete line out of the pending bytes. Returns how many cuts were made in
    /// lines longer than `max_line_bytes` (a line of 2.5 times the limit is cut twice).
    pub fn drain_lines(&mut self, out: &mut Vec<Bytes>) -> usize {
        let mut oversized = 0;
        if let Some(last) = memchr::memrchr(b'\n', &self.pending) {
            let chunk = self.pending.split_to(last + 1).freeze();
            oversized += split_complete(&chunk, self.max_line_bytes, out);
        }
        // A line with no end in sight is cut so memory stays bounded.
        while self.pending.len() > self.max_line_bytes {
            out.push(self.pending.split_to(self.max_line_bytes).freeze());
            oversized += 1;
        }
        oversized
    }

    /// At end of input: the last line, if it had no newline.
    pub fn finish(&mut self) -> Option<Bytes> {
        if self.pending.is_empty() {
            return None;
        }
        let mut rest = self.pending.split().freeze();
        if rest.ends_with(b"\r") {
            rest.truncate(rest.len() - 1);
        }
        Some(rest)
    }
}

/// Splits a chunk that ends with `\n` into its lines (without `\n` or `\r\n`), cutting a line
/// longer than `max_line_bytes` into pieces as [`LineSplitter::drain_lines`] cuts one whose end
/// has not arrived yet: whether a long line is cut must not depend on how the reads fell.
/// Returns how many cuts it made.
fn split_complete(chunk: &Bytes, max_line_bytes: usize, out: &mut Vec<Bytes>) -> usize {
    let mut oversized = 0;
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', chunk) {
        let line_end = if end > start && chunk[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        while line_end - start > max_line_bytes {
            out.push(chunk.slice(start..start + max_line_bytes));
            start += max_line_bytes;
            oversized += 1;
        }
        out.push(chunk.slice(start..line_end));
        start = end + 1;
    }
    oversized
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(splitter: &mut LineSplitter, data: &[u8], out: &mut Vec<Bytes>) -> usize {
        splitter.spare(data.len()).extend_from_slice(data);
        splitter.drain_lines(out)
    }

    #[test]
    fn lines_across_reads_and_crlf() {
        let mut s = LineSplitter::new(1024);
        let mut out = Vec::new();
        feed(&mut s, b"one\r\ntw", &mut out);
        feed(&mut s, b"o\n\nthree", &mut out);
        out.extend(s.finish());
        assert_eq!(out, [&b"one"[..], b"two", b"", b"three"]);
    }

    #[test]
    fn overlong_lines_are_cut_not_buffered_forever() {
        let mut s = LineSplitter::new(4);
        let mut out = Vec::new();
        assert_eq!(feed(&mut s, b"abcdefghij", &mut out), 2);
        out.extend(s.finish());
        assert_eq!(out, [&b"abcd"[..], b"efgh", b"ij"]);
    }

    #[test]
    fn an_overlong_line_read_whole_is_cut_the_same_way() {
        let mut s = LineSplitter::new(4);
        let mut out = Vec::new();
        assert_eq!(feed(&mut s, b"abcdefghij\nok\nabcd\n", &mut out), 2);
        assert_eq!(out, [&b"abcd"[..], b"efgh", b"ij", b"ok", b"abcd"]);
    }
}
