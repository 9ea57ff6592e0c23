//! The disk buffer's record decoder.

use arbitrary::{Result, Unstructured};
use bytes::Bytes;
use chrono::DateTime;
use ferry_buffers::fuzzing::{decode_record, encode_record, reseal_record};
use ferry_core::{Fields, LogEvent, RawJsonObject, Value};

/// Byte offsets of the version 3 header: version, count, checksum, sequence.
const SEQUENCE_AT: std::ops::Range<usize> = 9..17;

/// Three uses of the same bytes. As a stored record (taking its own sequence number, so that
/// the fuzzer need not guess it) and again with its checksum rewritten to match, so that the
/// bytes reach the body decoder: decoding must end in events or an error, never a panic or an
/// allocation the record's size does not justify (libFuzzer's `-malloc_limit_mb` catches
/// those), and decoded events must encode into a record that decodes into the same encoding.
/// And as the recipe for a batch of events: encoding then decoding gives them back exactly.
pub fn disk_record(data: &[u8]) {
    let sequence = data
        .get(SEQUENCE_AT)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("eight bytes")));
    let _ = decode_record(&Bytes::copy_from_slice(data), sequence, true);

    let mut resealed = data.to_vec();
    reseal_record(&mut resealed);
    if let Ok(events) = decode_record(&Bytes::from(resealed), sequence, true) {
        for event in &events {
            // A stored JSON line is not checked again when read back; expanding one that is
            // not JSON must still give fields.
            let _ = event.fields();
        }
        let encoded = encode_record(&events, sequence);
        let again = decode_record(&Bytes::from(encoded.clone()), sequence, false)
            .unwrap_or_else(|e| panic!("a record this build wrote does not decode: {e}"));
        assert_eq!(
            encode_record(&again, sequence),
            encoded,
            "decode → encode is not stable"
        );
    }

    let mut u = Unstructured::new(data);
    if let Ok((events, sequence)) = events(&mut u).and_then(|e| Ok((e, u.arbitrary::<u64>()?))) {
        let encoded = encode_record(&events, sequence);
        let decoded = decode_record(&Bytes::from(encoded), sequence, false)
            .unwrap_or_else(|e| panic!("a record this build wrote does not decode: {e}"));
        assert_eq!(decoded, events, "encode → decode changed the events");
    }
}

fn events(u: &mut Unstructured) -> Result<Vec<LogEvent>> {
    let n = u.int_in_range(0..=8)?;
    (0..n).map(|_| event(u)).collect()
}

fn event(u: &mut Unstructured) -> Result<LogEvent> {
    if u.ratio(1, 3)? {
        // A JSON line as the JSON decoder keeps it: scanned, perhaps with fields appended.
        let line: &str = u.arbitrary()?;
        if let Ok(scanned) = RawJsonObject::scan(Bytes::copy_from_slice(line.as_bytes())) {
            let mut object = scanned.object;
            if !scanned.has_host && u.arbitrary()? {
                object.append("host", value(u, 0)?);
            }
            return Ok(LogEvent::from_raw_json(object));
        }
    }
    Ok(LogEvent::from_fields(fields(u, 0)?))
}

fn fields(u: &mut Unstructured, depth: usize) -> Result<Fields> {
    let n = u.int_in_range(0..=6)?;
    let mut fields = Fields::new();
    for _ in 0..n {
        let name: String = u.arbitrary()?;
        fields.insert(name, value(u, depth + 1)?);
    }
    Ok(fields)
}

fn value(u: &mut Unstructured, depth: usize) -> Result<Value> {
    let containers = if depth < 6 { 8 } else { 6 };
    Ok(match u.int_in_range(0..=containers)? {
        0 => Value::Null,
        1 => Value::Bytes(Bytes::from(u.arbitrary::<Vec<u8>>()?)),
        2 => Value::Integer(u.arbitrary()?),
        3 => {
            // NaN never equals itself, so it cannot be compared after the round trip.
            let f: f64 = u.arbitrary()?;
            Value::Float(if f.is_nan() { 0.5 } else { f })
        }
        4 => Value::Boolean(u.arbitrary()?),
        5 | 6 => {
            let secs = u.int_in_range(-8_000_000_000_000i64..=8_000_000_000_000)?;
            let nanos = u.int_in_range(0..=1_999_999_999)?;
            DateTime::from_timestamp(secs, nanos).map_or(Value::Null, Value::Timestamp)
        }
        7 => {
            let n = u.int_in_range(0..=4)?;
            Value::Array((0..n).map(|_| value(u, depth + 1)).collect::<Result<_>>()?)
        }
        _ => Value::Object(fields(u, depth + 1)?),
    })
}
