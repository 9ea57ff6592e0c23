//! The on-disk record: many events packed into one segment entry, versioned and checksummed.
//!
//! ```text
//! record  = 3:u8  count:u32le  crc32(3 count sequence body):u32le  sequence:u64le  body
//!         | 2:u8  count:u32le  crc32(body):u32le  body          (earlier builds; still read)
//! body    = event*                      (count of them)
//! event   = 0:u8 fields                 (an event of fields)
//!         | 1:u8 line:bytes time fields (a JSON line as it arrived, then the appended fields)
//! time    = 0:u8 | 1:u8 secs:i64le nanos:u32le
//! fields  = n:varint (key:bytes value)*
//! value   = tag:u8 payload              (see `Tag`)
//! bytes   = len:varint raw
//! ```
//!
//! Exact for every `Value` (timestamps keep nanoseconds, byte strings need not be UTF-8),
//! compact, and checked: a record whose checksum or structure does not hold is reported as
//! corrupt rather than decoded into garbage. `sequence` is the number of the record's first
//! event, which the ledger entry pointing at the record must agree with: segment files are
//! reused, so a ledger entry that outlived its bytes (power loss before the segment's fsync)
//! can land on an intact record written there before, which is stale, not valid. A version 2
//! record is only taken for one written before this run started (the caller says), since this
//! build writes version 3 only.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use ferry_core::{Fields, LogEvent, RawJsonObject, Value};

/// The record format version this build writes.
pub(crate) const VERSION: u8 = 3;
/// The version before records carried their sequence number: still read, so that a buffer
/// written before an upgrade drains after it.
const VERSION_WITHOUT_SEQUENCE: u8 = 2;
/// Version, count and checksum: the part every version shares.
const HEADER: usize = 1 + 4 + 4;
const SEQUENCE: usize = 8;
/// Nesting deeper than this is refused when reading, so a corrupt record cannot exhaust the
/// stack.
const MAX_DEPTH: usize = 128;
const EVENT_FIELDS: u8 = 0;
const EVENT_RAW_JSON: u8 = 1;

#[repr(u8)]
enum Tag {
    Null = 0,
    Bytes = 1,
    Integer = 2,
    Float = 3,
    False = 4,
    True = 5,
    Timestamp = 6,
    Array = 7,
    Object = 8,
}

/// Why a stored record cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorruptRecord {
    /// Shorter than its header.
    #[error("record of {0} bytes is shorter than its header")]
    Truncated(usize),
    /// Written by another format version.
    #[error(
        "record format version {0} is not supported (this build reads {VERSION_WITHOUT_SEQUENCE} and {VERSION})"
    )]
    Version(u8),
    /// A version 2 record where this run wrote version 3: stale bytes of a reused segment.
    #[error(
        "a version {VERSION_WITHOUT_SEQUENCE} record where this run wrote version {VERSION} (stale bytes of a reused segment)"
    )]
    StaleVersion,
    /// Intact, but not the record the ledger points at: stale bytes of a reused segment.
    #[error(
        "the record here starts at event {found}, the ledger expects {expected} (stale bytes of a reused segment)"
    )]
    Misplaced {
        /// The sequence number the ledger gives.
        expected: u64,
        /// The one the record carries.
        found: u64,
    },
    /// The body does not match its checksum.
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the body as read.
        computed: u32,
    },
    /// The body is malformed although its checksum matched.
    #[error("malformed body: {0}")]
    Malformed(&'static str),
}

/// Appends the record for `events`, the first of which has number `sequence`, to `out`.
pub(crate) fn encode(events: &[LogEvent], sequence: u64, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(VERSION);
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&sequence.to_le_bytes());
    let versioned = start + 5;
    for event in events {
        match event.raw_json() {
            // Kept raw, so that the sink can still copy the line (and nothing expands it here).
            Some(object) => {
                out.push(EVENT_RAW_JSON);
                write_bytes(object.line(), out);
                match object.line_timestamp() {
                    Some(t) => {
                        out.push(1);
                        write_time(&t, out);
                    }
                    None => out.push(0),
                }
                write_fields(object.appended(), out);
            }
            None => {
                out.push(EVENT_FIELDS);
                write_fields(event.fields(), out);
            }
        }
    }
    let crc = checksum(VERSION, &out[start..versioned], &out[start + HEADER..]);
    out[versioned..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// Whether `error` means a record this build cannot judge (written by a newer build): it must
/// be kept for that build, not deleted as corrupt.
pub(crate) fn is_from_a_newer_build(error: &CorruptRecord) -> bool {
    matches!(error, CorruptRecord::Version(v) if *v > VERSION)
}

/// The number of events in a record, from its header alone.
pub(crate) fn count(record: &[u8]) -> Result<u32, CorruptRecord> {
    if record.len() < HEADER {
        return Err(CorruptRecord::Truncated(record.len()));
    }
    Ok(u32::from_le_bytes([record[1], record[2], record[3], record[4]]))
}

/// Version 3 covers version and count too (a flipped version byte must not turn a record into
/// the other format); version 2 covered the body alone.
fn checksum(version: u8, head: &[u8], rest: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    if version != VERSION_WITHOUT_SEQUENCE {
        hasher.update(head);
    }
    hasher.update(rest);
    hasher.finalize()
}

/// Rewrites the checksum of `record` to match its bytes (a no-op on a record too short to
/// have one), so that a fuzzer's bytes reach the body decoder instead of stopping at the
/// checksum.
pub(crate) fn reseal(record: &mut [u8]) {
    if record.len() < HEADER {
        return;
    }
    let crc = checksum(record[0], &record[..5], &record[HEADER..]);
    record[5..HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// Verifies and decodes the record the ledger lists at `sequence`; `accept_version_2` says
/// whether it may predate this run (see the module docs). Strings in the events share
/// `record`'s memory.
pub(crate) fn decode(
    record: &Bytes,
    sequence: u64,
    accept_version_2: bool,
) -> Result<Vec<LogEvent>, CorruptRecord> {
    let (n, body) = verify(record, sequence, accept_version_2)?;
    let mut reader = Reader {
        buf: record,
        pos: body,
        day: None,
    };
    // The count is read from the record, so it only sizes the vector as far as the body could
    // hold that many events (each takes at least two bytes): a damaged count of four billion
    // in a short record costs nothing before the body runs out.
    let fit = (record.len() - body) / 2;
    let mut events = Vec::with_capacity((n as usize).min(fit).min(1 << 16));
    for _ in 0..n {
        events.push(reader.event()?);
    }
    if reader.pos != record.len() {
        return Err(CorruptRecord::Malformed("trailing bytes after the last event"));
    }
    Ok(events)
}

/// Checks version, checksum and (from version 3) that the record is the one the ledger lists
/// at `sequence`; returns the event count and where the body starts.
pub(crate) fn verify(
    record: &[u8],
    sequence: u64,
    accept_version_2: bool,
) -> Result<(u32, usize), CorruptRecord> {
    let n = count(record)?;
    let version = record[0];
    let body = match version {
        VERSION => HEADER + SEQUENCE,
        VERSION_WITHOUT_SEQUENCE => HEADER,
        other => return Err(CorruptRecord::Version(other)),
    };
    if record.len() < body {
        return Err(CorruptRecord::Truncated(record.len()));
    }
    let stored = u32::from_le_bytes([record[5], record[6], record[7], record[8]]);
    let computed = checksum(version, &record[..5], &record[HEADER..]);
    if stored != computed {
        return Err(CorruptRecord::Checksum { stored, computed });
    }
    if version == VERSION_WITHOUT_SEQUENCE && !accept_version_2 {
        return Err(CorruptRecord::StaleVersion);
    }
    if body > HEADER {
        let mut found = [0; SEQUENCE];
        found.copy_from_slice(&record[HEADER..body]);
        let found = u64::from_le_bytes(found);
        if found != sequence {
            return Err(CorruptRecord::Misplaced {
                expected: sequence,
                found,
            });
        }
    }
    Ok((n, body))
}

fn write_time(t: &DateTime<Utc>, out: &mut Vec<u8>) {
    out.extend_from_slice(&t.timestamp().to_le_bytes());
    out.extend_from_slice(&t.timestamp_subsec_nanos().to_le_bytes());
}

fn write_varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    write_varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

fn write_fields(fields: &Fields, out: &mut Vec<u8>) {
    write_varint(fields.len() as u64, out);
    for (key, value) in fields.iter() {
        write_bytes(key.as_bytes(), out);
        write_value(value, out);
    }
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(Tag::Null as u8),
        Value::Bytes(b) => {
            out.push(Tag::Bytes as u8);
            write_bytes(b, out);
        }
        Value::Integer(i) => {
            out.push(Tag::Integer as u8);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            out.push(Tag::Float as u8);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Boolean(false) => out.push(Tag::False as u8),
        Value::Boolean(true) => out.push(Tag::True as u8),
        Value::Timestamp(t) => {
            out.push(Tag::Timestamp as u8);
            write_time(t, out);
        }
        Value::Array(items) => {
            out.push(Tag::Array as u8);
            write_varint(items.len() as u64, out);
            for item in items {
                write_value(item, out);
            }
        }
        Value::Object(fields) => {
            out.push(Tag::Object as u8);
            write_fields(fields, out);
        }
    }
}

struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    /// The day of the last timestamp read (days since 1970, and its date): the events of a
    /// record nearly always share it, and turning a day number into a date was a good part of
    /// decoding one.
    day: Option<(i64, NaiveDate)>,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>, CorruptRecord> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        let end = end.ok_or(CorruptRecord::Malformed("length runs past the end"))?;
        let range = self.pos..end;
        self.pos = end;
        Ok(range)
    }

    fn byte(&mut self) -> Result<u8, CorruptRecord> {
        let range = self.take(1)?;
        Ok(self.buf[range.start])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CorruptRecord> {
        let range = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(&self.buf[range]);
        Ok(out)
    }

    fn varint(&mut self) -> Result<u64, CorruptRecord> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(CorruptRecord::Malformed("varint too long"))
    }

    fn len(&mut self) -> Result<usize, CorruptRecord> {
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.buf.len())
            .ok_or(CorruptRecord::Malformed("length larger than the record"))
    }

    fn bytes(&mut self) -> Result<Bytes, CorruptRecord> {
        let n = self.len()?;
        let range = self.take(n)?;
        Ok(self.buf.slice(range))
    }

    fn time(&mut self) -> Result<DateTime<Utc>, CorruptRecord> {
        const SECONDS_PER_DAY: i64 = 86_400;
        let out_of_range = CorruptRecord::Malformed("timestamp out of range");
        let secs = i64::from_le_bytes(self.array()?);
        let nanos = u32::from_le_bytes(self.array()?);
        let days = secs.div_euclid(SECONDS_PER_DAY);
        let date = match self.day {
            Some((day, date)) if day == days => date,
            _ => {
                // Checked: the seconds come from the record, and the day of one near i64::MIN
                // starts before i64::MIN (found by fuzzing; it panicked in debug builds).
                let midnight = days
                    .checked_mul(SECONDS_PER_DAY)
                    .and_then(|secs| DateTime::from_timestamp(secs, 0))
                    .ok_or(out_of_range.clone())?;
                let date = midnight.date_naive();
                self.day = Some((days, date));
                date
            }
        };
        // The remainder is below 86,400; nanoseconds past 10^9 (a leap second) are checked as
        // `DateTime::from_timestamp` checks them.
        let time =
            NaiveTime::from_num_seconds_from_midnight_opt(secs.rem_euclid(SECONDS_PER_DAY) as u32, nanos)
                .ok_or(out_of_range)?;
        Ok(NaiveDateTime::new(date, time).and_utc())
    }

    fn event(&mut self) -> Result<LogEvent, CorruptRecord> {
        match self.byte()? {
            EVENT_FIELDS => Ok(LogEvent::from_fields(self.fields(0)?)),
            EVENT_RAW_JSON => {
                let line = self.bytes()?;
                let timestamp = match self.byte()? {
                    0 => None,
                    1 => Some(self.time()?),
                    _ => return Err(CorruptRecord::Malformed("unknown time marker")),
                };
                // Usually nothing was appended: one zero byte.
                let appended = if self.buf.get(self.pos) == Some(&0) {
                    self.pos += 1;
                    Fields::new()
                } else {
                    self.fields(0)?
                };
                Ok(LogEvent::from_raw_json(RawJsonObject::from_stored(
                    line, timestamp, appended,
                )))
            }
            _ => Err(CorruptRecord::Malformed("unknown event kind")),
        }
    }

    fn fields(&mut self, depth: usize) -> Result<Fields, CorruptRecord> {
        if depth > MAX_DEPTH {
            return Err(CorruptRecord::Malformed("nesting too deep"));
        }
        let n = self.len()?;
        let mut fields = Fields::with_capacity(n.min(64));
        for _ in 0..n {
            let key = self.bytes()?;
            let key =
                std::str::from_utf8(&key).map_err(|_| CorruptRecord::Malformed("field name is not UTF-8"))?;
            let value = self.value(depth + 1)?;
            fields.push_unchecked(key.into(), value);
        }
        Ok(fields)
    }

    fn value(&mut self, depth: usize) -> Result<Value, CorruptRecord> {
        if depth > MAX_DEPTH {
            return Err(CorruptRecord::Malformed("nesting too deep"));
        }
        let tag = self.byte()?;
        Ok(match tag {
            t if t == Tag::Null as u8 => Value::Null,
            t if t == Tag::Bytes as u8 => Value::Bytes(self.bytes()?),
            t if t == Tag::Integer as u8 => Value::Integer(i64::from_le_bytes(self.array()?)),
            t if t == Tag::Float as u8 => Value::Float(f64::from_le_bytes(self.array()?)),
            t if t == Tag::False as u8 => Value::Boolean(false),
            t if t == Tag::True as u8 => Value::Boolean(true),
            t if t == Tag::Timestamp as u8 => Value::Timestamp(self.time()?),
            t if t == Tag::Array as u8 => {
                let n = self.len()?;
                let mut items = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            t if t == Tag::Object as u8 => Value::Object(self.fields(depth + 1)?),
            _ => return Err(CorruptRecord::Malformed("unknown value tag")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Integer),
            any::<f64>()
                .prop_filter("NaN never equals itself", |f| !f.is_nan())
                .prop_map(Value::Float),
            any::<bool>().prop_map(Value::Boolean),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(|b| Value::Bytes(Bytes::from(b))),
            (0i64..4_000_000_000, 0u32..1_000_000_000)
                .prop_map(|(s, n)| Value::Timestamp(DateTime::from_timestamp(s, n).unwrap())),
        ];
        leaf.prop_recursive(3, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(("[a-z]{0,4}", inner), 0..4)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    fn arb_events() -> impl Strategy<Value = Vec<LogEvent>> {
        proptest::collection::vec(
            proptest::collection::vec(("[a-z_]{1,6}", arb_value()), 0..6)
                .prop_map(|pairs| LogEvent::from_fields(pairs.into_iter().collect())),
            0..8,
        )
    }

    proptest! {
        #[test]
        fn every_value_round_trips(events in arb_events()) {
            let mut buf = Vec::new();
            encode(&events, 7, &mut buf);
            let decoded = decode(&Bytes::from(buf), 7, false).unwrap();
            prop_assert_eq!(decoded, events);
        }

        #[test]
        fn a_record_read_for_another_sequence_is_misplaced(events in arb_events(), sequence in any::<u64>(), other in any::<u64>()) {
            prop_assume!(sequence != other);
            let mut buf = Vec::new();
            encode(&events, sequence, &mut buf);
            prop_assert_eq!(
                decode(&Bytes::from(buf), other, true),
                Err(CorruptRecord::Misplaced { expected: other, found: sequence })
            );
        }

        #[test]
        fn version_2_records_decode_only_when_they_may_predate_the_run(events in arb_events(), sequence in any::<u64>()) {
            // A version 2 record is a version 3 record without the sequence number, and its
            // checksum covers the body alone.
            let mut buf = Vec::new();
            encode(&events, 0, &mut buf);
            buf.drain(HEADER..HEADER + SEQUENCE);
            buf[0] = VERSION_WITHOUT_SEQUENCE;
            let crc = crc32fast::hash(&buf[HEADER..]);
            buf[5..9].copy_from_slice(&crc.to_le_bytes());
            let buf = Bytes::from(buf);
            prop_assert_eq!(decode(&buf, sequence, true).unwrap(), events);
            prop_assert_eq!(decode(&buf, sequence, false), Err(CorruptRecord::StaleVersion));
        }

        #[test]
        fn a_version_3_record_never_reads_as_version_2(events in arb_events()) {
            let mut buf = Vec::new();
            encode(&events, 0, &mut buf);
            buf[0] = VERSION_WITHOUT_SEQUENCE;
            prop_assert!(decode(&Bytes::from(buf), 0, true).is_err());
        }

        #[test]
        fn raw_json_events_round_trip_still_raw(n in 0i64..1000, with_time in any::<bool>(), with_host in any::<bool>()) {
            let ts = if with_time { r#","timestamp":"2026-11-25T10:00:00Z""# } else { "" };
            let line = Bytes::from(format!(r#"{{"n":{n},"s":"a\"b"{ts}}}"#));
            let mut object = RawJsonObject::scan(line).unwrap().object;
            if with_host {
                object.append("host", Value::from("h"));
            }
            let events = vec![LogEvent::from_raw_json(object.clone()), LogEvent::from_message("plain")];
            let mut buf = Vec::new();
            encode(&events, 0, &mut buf);
            let decoded = decode(&Bytes::from(buf), 0, false).unwrap();
            prop_assert_eq!(decoded[0].raw_json(), Some(&object));
            prop_assert!(decoded[1].raw_json().is_none());
            prop_assert_eq!(decoded, events);
        }

        #[test]
        fn timestamps_read_back_as_chrono_builds_them(
            times in proptest::collection::vec((-8_000_000_000_000i64..8_000_000_000_000, 0u32..2_000_000_000), 1..6),
            same_day in any::<bool>(),
        ) {
            // Nearby seconds share the reader's cached day; far apart ones do not. Leap-second
            // nanoseconds are valid only in a minute's last second, as chrono has it.
            let times: Vec<(i64, u32)> = if same_day {
                times.iter().map(|&(s, n)| (times[0].0 - times[0].0.rem_euclid(86_400) + s.rem_euclid(86_400), n)).collect()
            } else {
                times
            };
            let mut buf = Vec::new();
            for &(secs, nanos) in &times {
                buf.extend_from_slice(&secs.to_le_bytes());
                buf.extend_from_slice(&nanos.to_le_bytes());
            }
            let buf = Bytes::from(buf);
            let mut reader = Reader { buf: &buf, pos: 0, day: None };
            for &(secs, nanos) in &times {
                match DateTime::from_timestamp(secs, nanos) {
                    Some(expected) => prop_assert_eq!(reader.time(), Ok(expected)),
                    None => prop_assert!(reader.time().is_err()),
                }
            }
        }

        #[test]
        fn timestamps_at_the_ends_of_i64_are_errors(secs in prop_oneof![
            i64::MIN..i64::MIN + 200_000,
            i64::MAX - 200_000..=i64::MAX,
        ], nanos in any::<u32>()) {
            let mut buf = secs.to_le_bytes().to_vec();
            buf.extend_from_slice(&nanos.to_le_bytes());
            let buf = Bytes::from(buf);
            let mut reader = Reader { buf: &buf, pos: 0, day: None };
            prop_assert!(reader.time().is_err());
        }

        #[test]
        fn any_flipped_byte_is_detected(events in arb_events(), position in any::<proptest::sample::Index>(), flip in 1u8..) {
            let mut buf = Vec::new();
            encode(&events, 0, &mut buf);
            let i = position.index(buf.len());
            buf[i] ^= flip;
            // The checksum covers everything but itself (a flipped checksum no longer matches);
            // a version byte flipped to 2 meets version 2's checksum, which differs.
            prop_assert!(decode(&Bytes::from(buf), 0, true).is_err());
        }

        #[test]
        fn garbage_never_panics(junk in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&Bytes::from(junk), 0, true);
        }
    }
}
