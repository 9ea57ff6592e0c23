//! Cutting a file's bytes into lines that remember where they start.

use bytes::Bytes;

/// One line (without its `\n`) and the file offset of its first byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub offset: u64,
    pub bytes: Bytes,
}

/// How lines are cut.
#[derive(Clone, Copy, Debug)]
pub struct Framing {
    /// Longer lines are cut into pieces of this many bytes.
    pub max_line_bytes: usize,
    /// Whether a `\r` before the `\n` is removed.
    pub strip_carriage_return: bool,
}

/// What [`Framing::cut`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cut {
    /// Bytes of `chunk` taken into lines; the rest is a partial line to keep.
    pub consumed: usize,
    /// Lines that were longer than `max_line_bytes` and were split.
    pub oversized: usize,
}

impl Framing {
    /// Takes every complete line out of `chunk`, which starts at file offset `base`. A partial
    /// line at the end is left (not consumed) unless it is already longer than
    /// `max_line_bytes`: then whole pieces of it are cut, so what is kept never exceeds one.
    pub fn cut(&self, chunk: &Bytes, base: u64, out: &mut Vec<Line>) -> Cut {
        let mut cut = Cut::default();
        let mut start = 0;
        for newline in memchr::memchr_iter(b'\n', chunk) {
            let mut end = newline;
            if self.strip_carriage_return && end > start && chunk[end - 1] == b'\r' {
                end -= 1;
            }
            if end - start > self.max_line_bytes {
                cut.oversized += 1;
                start = self.pieces(chunk, base, start, end, out);
            }
            out.push(Line {
                offset: base + start as u64,
                bytes: chunk.slice(start..end),
            });
            start = newline + 1;
        }
        if chunk.len() - start > self.max_line_bytes {
            cut.oversized += 1;
            start = self.pieces(chunk, base, start, chunk.len(), out);
        }
        cut.consumed = start;
        cut
    }

    /// Emits full pieces of `chunk[start..end]` while more than one piece is left; returns
    /// where the rest starts.
    fn pieces(&self, chunk: &Bytes, base: u64, mut start: usize, end: usize, out: &mut Vec<Line>) -> usize {
        while end - start > self.max_line_bytes {
            out.push(Line {
                offset: base + start as u64,
                bytes: chunk.slice(start..start + self.max_line_bytes),
            });
            start += self.max_line_bytes;
        }
        start
    }

    /// The last line of a file that will not grow any more, even without its `\n`.
    pub fn finish(&self, rest: Bytes, offset: u64) -> Option<Line> {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = rest;
        if self.strip_carriage_return && bytes.ends_with(b"\r") {
            bytes.truncate(bytes.len() - 1);
        }
        Some(Line { offset, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(max: usize, data: &'static [u8], base: u64) -> (Vec<(u64, &'static [u8])>, Cut) {
        let framing = Framing {
            max_line_bytes: max,
            strip_carriage_return: true,
        };
        let mut out = Vec::new();
        let chunk = Bytes::from_static(data);
        let cut = framing.cut(&chunk, base, &mut out);
        let lines = out
            .into_iter()
            .map(|l| {
                let start = usize::try_from(l.offset - base).expect("small");
                (l.offset, &data[start..start + l.bytes.len()])
            })
            .collect();
        (lines, cut)
    }

    #[test]
    fn lines_keep_their_offsets_and_lose_crlf() {
        let (lines, c) = cut(100, b"ab\r\n\ncd\nef", 1000);
        assert_eq!(lines, [(1000, &b"ab"[..]), (1004, b""), (1005, b"cd")]);
        assert_eq!(
            c,
            Cut {
                consumed: 8,
                oversized: 0
            }
        );
    }

    #[test]
    fn overlong_lines_are_split_complete_or_not() {
        let (lines, c) = cut(3, b"abcdefgh\nxy", 0);
        assert_eq!(lines, [(0, &b"abc"[..]), (3, b"def"), (6, b"gh")]);
        assert_eq!(
            c,
            Cut {
                consumed: 9,
                oversized: 1
            }
        );
        // An unfinished line that reached the limit is cut, its short rest kept.
        let (lines, c) = cut(3, b"abcdefg", 0);
        assert_eq!(lines, [(0, &b"abc"[..]), (3, b"def")]);
        assert_eq!(
            c,
            Cut {
                consumed: 6,
                oversized: 1
            }
        );
        let (lines, c) = cut(3, b"abc", 0);
        assert!(lines.is_empty());
        assert_eq!(c.consumed, 0);
    }
}
