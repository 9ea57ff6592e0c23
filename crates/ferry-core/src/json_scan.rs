//! The quick check of a JSON object line: a plain byte loop for the lines logs are made of.
//!
//! [`RawJsonObject::scan`] must tell whether a line is exactly one JSON object and note its
//! top-level `host` and `timestamp`. Through serde_json's deserializer (a visitor that skips
//! every value) that was about 60% of the stdin thread of a json → json pipeline (`perf`, 1 M
//! lines), most of it in the generic peek/visit machinery rather than in looking at bytes.
//! [`quick_scan`] does the same check with one cursor over the line, a string's end found in a
//! mask of the next 64 bytes (`stoppers`), and a UTF-8 check only for lines that have non-ASCII
//! bytes.
//!
//! It may give up: an error of any kind, an escaped top-level key, a `timestamp` that is not an
//! escape-free string, nesting deeper than [`MAX_DEPTH`], a number with an exponent or a very
//! long integer part (which might exceed f64's range), or a lone UTF-16 surrogate in a `\u`
//! escape return `None`, and the caller asks serde_json, which decides and words the error. So
//! the only promise is soundness: when this says yes, serde_json reads the line into fields
//! (as [`RawJsonObject::expand`] does) and finds the same things (property-tested, including on
//! randomly damaged lines, and fuzzed: the `json_line` target). A line accepted here whose
//! fields serde_json could not build would turn into a bare `message` the first time anything
//! read its fields.
//!
//! [`RawJsonObject::expand`]: crate::RawJsonObject::expand
//!
//! [`RawJsonObject::scan`]: crate::RawJsonObject::scan

use crate::event::{HOST, TIMESTAMP};

mod stoppers;

/// Deeper nesting goes to serde_json (its own limit is 128 levels).
pub(crate) const MAX_DEPTH: u32 = 64;

/// Longer integer parts go to serde_json: from 309 digits a number may exceed `f64::MAX`.
const MAX_INTEGER_DIGITS: usize = 300;

/// What the quick scan found in a valid line.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct LineShape<'a> {
    pub(crate) has_host: bool,
    pub(crate) has_timestamp: bool,
    /// The text of the last top-level `timestamp` (always a string without escapes: any other
    /// `timestamp` makes the scan give up).
    pub(crate) timestamp: Option<&'a [u8]>,
}

/// Checks that `line` is one JSON object and nothing else; `None` when it is not, or when this
/// scan leaves the answer to serde_json.
pub(crate) fn quick_scan(line: &[u8]) -> Option<LineShape<'_>> {
    let mut cursor = Cursor::new(line);
    cursor.expect_token(b'{')?;
    let mut shape = LineShape::default();
    if !cursor.closes_at_once(b'}')? {
        loop {
            cursor.expect_token(b'"')?;
            let key_start = cursor.pos;
            if cursor.string()? == Escapes::Some {
                // serde_json unescapes top-level keys (and checks `\u` pairs): its call.
                return None;
            }
            let key = line.get(key_start..cursor.pos - 1)?;
            cursor.expect_token(b':')?;
            if key == TIMESTAMP.as_bytes() {
                // serde_json reads this value as a whole (numbers by value): only the common
                // case is decided here.
                cursor.expect_token(b'"')?;
                let start = cursor.pos;
                if cursor.string()? == Escapes::Some {
                    return None;
                }
                shape.has_timestamp = true;
                shape.timestamp = Some(line.get(start..cursor.pos - 1)?);
            } else {
                shape.has_host |= key == HOST.as_bytes();
                cursor.value(1)?;
            }
            if !cursor.comma_or_close(b'}')? {
                break;
            }
        }
    }
    cursor.skip_whitespace();
    if cursor.pos != line.len() {
        return None;
    }
    if cursor.non_ascii && std::str::from_utf8(line).is_err() {
        return None;
    }
    Some(shape)
}

#[derive(Debug, PartialEq, Eq)]
enum Escapes {
    None,
    Some,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Where the classified window starts; its bits are in `window`.
    window_start: usize,
    /// Bit `i`: byte `window_start + i` is a [`stoppers::is_stopper`] (set past the end).
    window: u64,
    /// A byte ≥ 0x80 was seen inside a string: the line needs a UTF-8 check.
    non_ascii: bool,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            window_start: 0,
            window: stoppers::stoppers(bytes),
            non_ascii: false,
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The byte at the cursor after any whitespace (not consumed). Compact JSON has no
    /// whitespace between tokens: one look at one byte.
    #[inline(always)]
    fn peek_token(&mut self) -> Option<u8> {
        match self.peek()? {
            b' ' | b'\n' | b'\t' | b'\r' => {
                self.skip_whitespace();
                self.peek()
            }
            byte => Some(byte),
        }
    }

    /// Moves past `byte` after any whitespace, if it is there.
    #[inline(always)]
    fn expect_token(&mut self, byte: u8) -> Option<()> {
        (self.peek_token()? == byte).then(|| self.pos += 1)
    }

    /// Moves past `close` if it is the next token (an empty object or array).
    #[inline(always)]
    fn closes_at_once(&mut self, close: u8) -> Option<bool> {
        let closes = self.peek_token()? == close;
        if closes {
            self.pos += 1;
        }
        Some(closes)
    }

    /// After a member or an element: moves past a `,` (`true`: another follows) or past
    /// `close` (`false`: the container ends); anything else is not JSON.
    #[inline(always)]
    fn comma_or_close(&mut self, close: u8) -> Option<bool> {
        match self.peek_token()? {
            b',' => {
                self.pos += 1;
                Some(true)
            }
            byte if byte == close => {
                self.pos += 1;
                Some(false)
            }
            _ => None,
        }
    }

    #[inline]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Moves to the next byte a string cannot simply contain and returns it (`None` at the
    /// end of the line).
    #[inline(always)]
    fn next_string_stopper(&mut self) -> Option<u8> {
        loop {
            let offset = self.pos.wrapping_sub(self.window_start);
            if offset < stoppers::WINDOW {
                let ahead = self.window >> offset;
                if ahead != 0 {
                    self.pos += ahead.trailing_zeros() as usize;
                    return self.peek();
                }
                self.pos = self.window_start + stoppers::WINDOW;
            }
            let rest = self.bytes.get(self.pos..).filter(|rest| !rest.is_empty())?;
            self.window_start = self.pos;
            self.window = stoppers::stoppers(rest);
        }
    }

    /// Moves past the rest of a string whose opening quote has been read.
    #[inline(always)]
    fn string(&mut self) -> Option<Escapes> {
        // Most strings end at the first byte that stops the scan.
        if self.next_string_stopper()? == b'"' {
            self.pos += 1;
            return Some(Escapes::None);
        }
        self.string_with_escapes()
    }

    /// The rest of a string that has an escape, a non-ASCII byte or an error at the cursor.
    #[inline(never)]
    fn string_with_escapes(&mut self) -> Option<Escapes> {
        let mut escapes = Escapes::None;
        loop {
            match self.next_string_stopper()? {
                b'"' => {
                    self.pos += 1;
                    return Some(escapes);
                }
                b'\\' => {
                    escapes = Escapes::Some;
                    self.pos += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 1,
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    }
                }
                0x80.. => {
                    self.non_ascii = true;
                    self.pos += 1;
                }
                // A control character: not allowed unescaped.
                _ => return None,
            }
        }
    }

    /// Moves past a `\u` escape whose `u` is at the cursor. A surrogate must be the first half
    /// of a pair written as two escapes, as serde_json demands when it reads a string (and
    /// `expand` reads every string): a lone one gives up, so serde_json decides and words it.
    fn unicode_escape(&mut self) -> Option<()> {
        let first = self.hex4(self.pos + 1)?;
        self.pos += 5;
        match first {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.pos..self.pos + 2)? != b"\\u" {
                    return None;
                }
                if !(0xDC00..=0xDFFF).contains(&self.hex4(self.pos + 2)?) {
                    return None;
                }
                self.pos += 6;
                Some(())
            }
            0xDC00..=0xDFFF => None,
            _ => Some(()),
        }
    }

    /// The four hex digits at `at` as a number.
    fn hex4(&self, at: usize) -> Option<u16> {
        let hex = self.bytes.get(at..at + 4)?;
        hex.iter()
            .try_fold(0u16, |n, &b| Some(n << 4 | (b as char).to_digit(16)? as u16))
    }

    /// Moves past one value starting at the cursor, `depth` containers deep.
    #[inline(always)]
    fn value(&mut self, depth: u32) -> Option<()> {
        // Strings and numbers are most values: handled in line, the rest by a call.
        match self.peek_token()? {
            b'"' => {
                self.pos += 1;
                self.string()?;
            }
            b'-' | b'0'..=b'9' => self.number()?,
            _ => self.container_or_literal(depth)?,
        }
        Some(())
    }

    #[inline(never)]
    fn container_or_literal(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'{' => self.container(depth + 1, b'}', Self::member),
            b'[' => self.container(depth + 1, b']', Self::value),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => None,
        }
    }

    /// Moves past an object or array whose opening byte is at the cursor, `depth` containers
    /// deep; `each` reads one member or element.
    fn container(
        &mut self,
        depth: u32,
        close: u8,
        each: impl Fn(&mut Self, u32) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        if self.closes_at_once(close)? {
            return Some(());
        }
        loop {
            each(self, depth)?;
            if !self.comma_or_close(close)? {
                return Some(());
            }
        }
    }

    /// One `"key": value` member of a nested object.
    fn member(&mut self, depth: u32) -> Option<()> {
        self.expect_token(b'"')?;
        self.string()?;
        self.expect_token(b':')?;
        self.value(depth)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// Skips digits and says how many there were.
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// JSON's number syntax: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    #[inline(always)]
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return None;
                }
            }
            b'1'..=b'9' => {
                // serde_json refuses a number whose magnitude is beyond f64's (above 10^308),
                // which needs more than 308 digits: left to it.
                if self.digits() > MAX_INTEGER_DIGITS {
                    return None;
                }
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            // An exponent can take a number out of f64's range, which serde_json refuses when it
            // reads the value (as `expand` does): rare in logs, so left to it.
            return None;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(line: &str) -> Option<LineShape<'_>> {
        quick_scan(line.as_bytes())
    }

    #[test]
    fn finds_host_and_the_last_timestamp() {
        let found = shape(r#" {"timestamp":"a", "host" : 1, "timestamp":"2026-11-25T10:00:00Z"} "#).unwrap();
        assert!(found.has_host && found.has_timestamp);
        assert_eq!(found.timestamp, Some(&b"2026-11-25T10:00:00Z"[..]));
        let found = shape(r#"{"a":{"host":1,"timestamp":2},"b":[]}"#).unwrap();
        assert_eq!(found, LineShape::default());
    }

    #[test]
    fn accepts_the_values_json_has() {
        for line in [
            "{}",
            r#"{"a":[1,-0,0.5,-1.25,true,false,null,"x",{},[]]}"#,
            r#"{"s":"tab\t quote\" slash\/ \\ \u00e9 \uD83D\uDE00 é ü 日本"}"#,
            "{\"long\":\"a string of more than eight bytes, crossing words\"}\r",
        ] {
            assert!(shape(line).is_some(), "{line}");
            assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "{line}");
        }
    }

    #[test]
    fn gives_up_on_what_is_not_json_or_not_common() {
        for line in [
            "",
            "[]",
            "{",
            r#"{"a":1,}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":1e}"#,
            r#"{"a":tru}"#,
            r#"{"a":"x\q"}"#,
            r#"{"a":"x\u12G4"}"#,
            "{\"a\":\"raw\ttab\"}",
            r#"{"a":1} {}"#,
            r#"{"ho\u0073t":1}"#,
            r#"{"timestamp":1}"#,
            r#"{"timestamp":"2026\u002d11"}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            // serde_json's call: it refuses these when it reads the values.
            r#"{"a":"\uD800"}"#,
            r#"{"a":"\uD800\n"}"#,
            r#"{"a":"\uD800\u0041"}"#,
            r#"{"a":"\uDC00\uD800"}"#,
            r#"{"a":{"\uDFFF":1}}"#,
            r#"{"a":1e999}"#,
            r#"{"a":2E-3}"#,
        ] {
            assert_eq!(shape(line), None, "{line}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(70), "]".repeat(70));
        assert_eq!(shape(&deep), None);
        let long = format!("{{\"a\":{}}}", "9".repeat(400));
        assert_eq!(shape(&long), None);
        assert_eq!(quick_scan(b"{\"a\":\"\xff\"}"), None);
    }
}
