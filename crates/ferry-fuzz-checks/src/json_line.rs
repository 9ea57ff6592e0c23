//! The JSON line scanners, differential against serde_json.
//!
//! The contract, as the scanners state it, with "serde_json reads the line" meaning
//! `serde_json::from_slice::<serde_json::Value>` gives an object (every value read: strings
//! decoded with their `\u` surrogates paired, numbers within f64's range, at most 128 levels):
//!
//! - The quick scan (`ferry_core::fuzzing::quick_scan`) may give up on any line, but when it
//!   says "one object" the line is UTF-8, serde_json reads it, and the scan's findings are
//!   serde_json's: whether `host` and `timestamp` occur at the top level, and the text of the
//!   last `timestamp` (which must be a string).
//! - `RawJsonObject::scan` accepts a line exactly when serde_json reads it, and reports the
//!   same `host`, `timestamp` and time (the last `timestamp`, when it is an RFC 3339 string).
//! - `parse_json_object` accepts a line exactly when serde_json reads it, with the same fields
//!   (a repeated key keeps its first position and last value; an integer beyond `i64` becomes
//!   a float).
//! - A line `RawJsonObject::scan` accepts expands into those same fields: an event decoded
//!   lazily is the event decoded eagerly (but for an RFC 3339 `timestamp` read as a time).

use bytes::Bytes;
use ferry_core::fuzzing::quick_scan;
use ferry_core::raw_json::parse_rfc3339;
use ferry_core::{Fields, RawJsonObject, TIMESTAMP, Value, parse_json_object};

/// Runs every scanner on `data` and compares each with serde_json.
pub fn json_line(data: &[u8]) {
    let by_serde = match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(serde_json::Value::Object(map)) => Some(map),
        _ => None,
    };
    let last_timestamp = by_serde.as_ref().and_then(|map| map.get(TIMESTAMP));

    if let Some(shape) = quick_scan(data) {
        assert!(
            std::str::from_utf8(data).is_ok(),
            "the quick scan accepted a line that is not UTF-8"
        );
        let map = by_serde
            .as_ref()
            .expect("the quick scan accepted a line serde_json does not read");
        assert_eq!(shape.has_host, map.contains_key("host"), "host");
        assert_eq!(shape.has_timestamp, last_timestamp.is_some(), "has timestamp");
        let last = last_timestamp.map(|t| {
            t.as_str()
                .expect("the quick scan accepted a timestamp that is not a string")
                .as_bytes()
        });
        assert_eq!(shape.timestamp, last, "the last timestamp");
    }

    let scanned = RawJsonObject::scan(Bytes::copy_from_slice(data));
    match (&scanned, &by_serde) {
        (Ok(scanned), Some(map)) => {
            assert_eq!(scanned.has_host, map.contains_key("host"), "host");
            assert_eq!(scanned.has_timestamp, last_timestamp.is_some(), "has timestamp");
            let time = last_timestamp
                .and_then(serde_json::Value::as_str)
                .and_then(|text| parse_rfc3339(text.as_bytes()));
            assert_eq!(scanned.object.timestamp(), time, "the time");
        }
        (Err(_), None) => {}
        (Ok(_), None) => panic!("scan accepted a line serde_json does not read"),
        (Err(e), Some(_)) => panic!("scan refused a line serde_json reads: {e}"),
    }

    let line = Bytes::copy_from_slice(data);
    let parsed = parse_json_object(&line);
    let expected = by_serde.map(fields_of);
    match (&parsed, &expected) {
        (Ok(fields), Some(expected)) => assert_eq!(fields, expected, "parse_json_object's fields"),
        (Err(_), None) => {}
        (Ok(_), None) => panic!("parse_json_object accepted a line serde_json does not read as an object"),
        (Err(e), Some(_)) => panic!("parse_json_object refused an object serde_json reads: {e}"),
    }

    if let (Ok(scanned), Ok(fields)) = (scanned, parsed) {
        let mut expanded = scanned.object.expand();
        if scanned.object.timestamp().is_some() {
            // The one intended difference: an RFC 3339 `timestamp` string is read as a time.
            if let (Some(slot), Some(text)) = (expanded.get_mut(TIMESTAMP), fields.get(TIMESTAMP)) {
                *slot = text.clone();
            }
        }
        assert_eq!(expanded, fields, "the lazily expanded fields");
    }
}

/// serde_json's value as Ferry stores it.
fn value_of(value: serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Boolean(b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::Integer(i),
            (None, Some(f)) => Value::Float(f),
            (None, None) => {
                unreachable!("serde_json numbers are i64, u64 or f64 without arbitrary_precision")
            }
        },
        serde_json::Value::String(s) => Value::Bytes(Bytes::from(s)),
        serde_json::Value::Array(items) => Value::Array(items.into_iter().map(value_of).collect()),
        serde_json::Value::Object(map) => Value::Object(fields_of(map)),
    }
}

fn fields_of(map: serde_json::Map<String, serde_json::Value>) -> Fields {
    let mut fields = Fields::new();
    for (key, value) in map {
        fields.insert(key, value_of(value));
    }
    fields
}
