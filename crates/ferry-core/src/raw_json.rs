//! A JSON object line kept as it arrived, expanded into fields only when something asks.
//!
//! In a json → json pipeline most events are never looked at field by field: they are
//! checked, get `host` and `timestamp` when they lack them, and are written out again. Building
//! a field table per event and escaping every string back was most of that pipeline's CPU, so
//! the JSON decoder makes a [`RawJsonObject`] instead: one validating scan of the line that
//! notes only what the event model needs (is it an object, does it have `host`, its
//! `timestamp`), and the fields come from [`RawJsonObject::expand`] on first use. A JSON
//! encoder can then copy the line and append the added fields ([`LogEvent::raw_json`]).
//!
//! [`LogEvent::raw_json`]: crate::LogEvent::raw_json

use std::fmt;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};

use crate::event::{HOST, TIMESTAMP};
use crate::fields::Fields;
use crate::json_object::parse_json_object;
use crate::json_scan::quick_scan;
pub use crate::rfc3339::parse_rfc3339;
use crate::value::Value;

/// One JSON object line plus the fields a decoder added after its own.
#[derive(Clone, Debug, PartialEq)]
pub struct RawJsonObject {
    line: Bytes,
    appended: Fields,
    timestamp: Option<DateTime<Utc>>,
}

/// What the scan of a line found out.
#[derive(Debug)]
pub struct ScannedLine {
    /// The line as a raw object (nothing appended yet).
    pub object: RawJsonObject,
    /// Whether the object has a top-level `host`.
    pub has_host: bool,
    /// Whether the object has a top-level `timestamp` (of any kind).
    pub has_timestamp: bool,
}

impl RawJsonObject {
    /// Checks that `line` is one JSON object (and nothing else) without building its fields.
    /// Errors are serde_json's, as [`parse_json_object`] would report them.
    pub fn scan(line: Bytes) -> Result<ScannedLine, serde_json::Error> {
        if let Some(shape) = quick_scan(&line) {
            let timestamp = shape.timestamp.and_then(parse_rfc3339);
            return Ok(ScannedLine {
                has_host: shape.has_host,
                has_timestamp: shape.has_timestamp,
                object: RawJsonObject {
                    line,
                    appended: Fields::new(),
                    timestamp,
                },
            });
        }
        Self::scan_with_serde(line)
    }

    /// The full check through serde_json: decides every line the quick scan leaves, and words
    /// the errors. Every value is read as [`parse_json_object`] reads it (strings decoded,
    /// numbers converted, nesting limited), though nothing is kept: a line accepted here must
    /// expand into its fields, which skipping values would not promise (a lone `\u` surrogate,
    /// a number beyond f64, nesting past serde_json's limit).
    fn scan_with_serde(line: Bytes) -> Result<ScannedLine, serde_json::Error> {
        let Ok(text) = std::str::from_utf8(&line) else {
            // Rare: let the full parser say where the line breaks (or accept it, if the
            // invalid bytes sit where serde_json does not look).
            return parse_json_object(&line).map(|fields| scanned_from_fields(line, &fields));
        };
        // serde_json skips values without a depth limit but parses them with one (128
        // levels): a line nested deeper would pass this check and then lose its fields when
        // expanded. The full parse decides those, so that the two always agree.
        if nests_deeper_than(&line, 100) {
            return parse_json_object(&line).map(|fields| scanned_from_fields(line, &fields));
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let found = de::Deserializer::deserialize_any(&mut deserializer, TopLevel)?;
        deserializer.end()?;
        Ok(ScannedLine {
            object: RawJsonObject {
                line: line.clone(),
                appended: Fields::new(),
                timestamp: found.timestamp,
            },
            has_host: found.has_host,
            has_timestamp: found.has_timestamp,
        })
    }

    /// Rebuilds an object from its parts, for a buffer restoring what it stored: `line` must
    /// be the line of an object [`RawJsonObject::scan`] made, and `timestamp` its time.
    pub fn from_stored(line: Bytes, timestamp: Option<DateTime<Utc>>, appended: Fields) -> Self {
        Self {
            line,
            appended,
            timestamp,
        }
    }

    /// The time read from the line's own `timestamp` (not an appended one).
    pub fn line_timestamp(&self) -> Option<DateTime<Utc>> {
        self.timestamp
    }

    /// Adds a field after the line's own (the caller knows the line lacks it).
    pub fn append(&mut self, name: &str, value: Value) {
        self.appended.insert(name, value);
    }

    /// The line as it arrived.
    pub fn line(&self) -> &Bytes {
        &self.line
    }

    /// The fields added after the line's own, in order.
    pub fn appended(&self) -> &Fields {
        &self.appended
    }

    /// The event's time: the line's RFC 3339 `timestamp`, or an appended one.
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        self.timestamp.or_else(|| {
            self.appended
                .get(TIMESTAMP)
                .and_then(Value::as_timestamp)
                .copied()
        })
    }

    /// The fields: the line's, with an RFC 3339 `timestamp` string as a timestamp, then the
    /// appended ones. The same fields an eager decoder builds.
    pub fn expand(&self) -> Fields {
        let mut fields = match parse_json_object(&self.line) {
            Ok(fields) => fields,
            // `scan` accepted the line, and the two parsers agree; kept total all the same.
            Err(_) => [(crate::event::MESSAGE, Value::Bytes(self.line.clone()))]
                .into_iter()
                .collect(),
        };
        if let (Some(t), Some(slot)) = (self.timestamp, fields.get_mut(TIMESTAMP)) {
            *slot = Value::Timestamp(t);
        }
        for (name, value) in self.appended.iter() {
            fields.insert(name, value.clone());
        }
        fields
    }
}

fn scanned_from_fields(line: Bytes, fields: &Fields) -> ScannedLine {
    let timestamp = match fields.get(TIMESTAMP) {
        Some(Value::Bytes(text)) => parse_rfc3339(text),
        _ => None,
    };
    ScannedLine {
        object: RawJsonObject {
            line,
            appended: Fields::new(),
            timestamp,
        },
        has_host: fields.contains(HOST),
        has_timestamp: fields.contains(TIMESTAMP),
    }
}

#[derive(Default)]
struct Found {
    has_host: bool,
    has_timestamp: bool,
    timestamp: Option<DateTime<Utc>>,
}

/// Visits the top level: an object whose values are skipped (still validated), except
/// `timestamp`, which is read when it is a string.
struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = Found;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        let mut found = Found::default();
        while let Some(key) = map.next_key_seed(KeyKind)? {
            match key {
                Key::Host => {
                    found.has_host = true;
                    map.next_value_seed(Checked)?;
                }
                Key::Timestamp => {
                    found.has_timestamp = true;
                    // A repeated key: the last value wins, as in the expanded fields.
                    found.timestamp = map.next_value_seed(TimestampValue)?;
                }
                Key::Other => {
                    map.next_value_seed(Checked)?;
                }
            }
        }
        Ok(found)
    }

    // Anything else at the top level is an error, worded as the full parser words it.
    fn visit_seq<A: de::SeqAccess<'de>>(self, _seq: A) -> Result<Found, A::Error> {
        Err(de::Error::custom("expected a JSON object, found array"))
    }
    fn visit_str<E: de::Error>(self, _v: &str) -> Result<Found, E> {
        Err(E::custom("expected a JSON object, found string"))
    }
    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<Found, E> {
        Err(E::custom("expected a JSON object, found boolean"))
    }
    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<Found, E> {
        Err(E::custom("expected a JSON object, found integer"))
    }
    fn visit_u64<E: de::Error>(self, _v: u64) -> Result<Found, E> {
        Err(E::custom("expected a JSON object, found integer"))
    }
    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<Found, E> {
        Err(E::custom("expected a JSON object, found float"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Found, E> {
        Err(E::custom("expected a JSON object, found null"))
    }
}

enum Key {
    Host,
    Timestamp,
    Other,
}

/// Classifies a key without allocating.
struct KeyKind;

impl<'de> DeserializeSeed<'de> for KeyKind {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyKind {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            HOST => Key::Host,
            TIMESTAMP => Key::Timestamp,
            _ => Key::Other,
        })
    }
}

/// A `timestamp` value: its time when it is an RFC 3339 string, otherwise skipped.
struct TimestampValue;

impl<'de> DeserializeSeed<'de> for TimestampValue {
    type Value = Option<DateTime<Utc>>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TimestampValue {
    type Value = Option<DateTime<Utc>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(parse_rfc3339(v.as_bytes()))
    }
    fn visit_bool<E>(self, _v: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _v: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _v: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _v: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Checked.visit_seq(seq).map(|()| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Checked.visit_map(map).map(|()| None)
    }
}

/// Any value, read the way [`parse_json_object`] reads it and then dropped: serde_json's
/// `IgnoredAny` only checks syntax, which accepts lines whose fields cannot be built.
#[derive(Clone, Copy)]
struct Checked;

impl<'de> DeserializeSeed<'de> for Checked {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, _v: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _v: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _v: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _v: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _v: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Checked)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// Whether `line` opens more than `limit` objects or arrays inside one another (brackets in
/// strings are not counted). Only the slow path asks, so a plain loop is enough.
fn nests_deeper_than(line: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in line {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn scan_notes_host_and_timestamp() {
        let scanned = RawJsonObject::scan(line(
            r#"{"timestamp":"2026-11-25T10:00:00+01:00","host":"h","n":{"a":[1]}}"#,
        ))
        .unwrap();
        assert!(scanned.has_host && scanned.has_timestamp);
        assert_eq!(
            scanned.object.timestamp().map(|t| t.to_rfc3339()),
            Some("2026-11-25T09:00:00+00:00".to_owned())
        );
        let scanned = RawJsonObject::scan(line(r#"{"timestamp":"yesterday"}"#)).unwrap();
        assert!(scanned.has_timestamp && !scanned.has_host);
        assert_eq!(scanned.object.timestamp(), None);
    }

    #[test]
    fn scan_refuses_what_the_parser_refuses() {
        for bad in [
            "[1]",
            "12",
            "\"s\"",
            "null",
            "{\"a\":1} x",
            "{\"a\":",
            "not json",
            "",
            "{\"a\":01}",
            // Valid syntax, but no fields can be built from these: refused, or the event
            // would turn into a bare `message` the first time its fields were read.
            r#"{"a":"\uD800"}"#,
            r#"{"timestamp":1,"a":["\uDC00"]}"#,
            r#"{"a":1e999}"#,
            r#"{"timestamp":[-1e400]}"#,
        ] {
            assert!(RawJsonObject::scan(line(bad)).is_err(), "{bad}");
            assert!(parse_json_object(&line(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn nesting_serde_json_cannot_read_is_refused() {
        // serde_json skips values without a depth limit but reads them with one (128).
        for depth in [100, 127, 128, 200] {
            let text = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
            assert_eq!(
                RawJsonObject::scan(line(&text)).is_ok(),
                parse_json_object(&line(&text)).is_ok(),
                "depth {depth}"
            );
        }
    }

    #[test]
    fn a_line_nested_too_deep_to_expand_is_not_an_object() {
        // Skipping accepts any depth, expanding stops at 128 levels: the scan must refuse what
        // expand cannot read, or the event would silently turn into a `message`.
        let deep = format!("{{\"deep\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(RawJsonObject::scan(Bytes::from(deep)).is_err());
        let fine = format!("{{\"ok\":{}1{}}}", "[".repeat(90), "]".repeat(90));
        let scanned = RawJsonObject::scan(Bytes::from(fine)).expect("90 levels are an object");
        assert!(scanned.object.expand().get("ok").is_some());
    }

    #[test]
    fn expand_converts_the_timestamp_and_appends() {
        let mut object = RawJsonObject::scan(line(r#"{"timestamp":"2026-11-25T10:00:00Z","m":"x"}"#))
            .unwrap()
            .object;
        object.append("host", Value::from("me"));
        let fields = object.expand();
        let names: Vec<_> = fields.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["timestamp", "m", "host"]);
        assert!(matches!(fields.get("timestamp"), Some(Value::Timestamp(_))));
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z\"\\\\é\\n]{0,6}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::Array),
                proptest::collection::vec(("[a-z]{1,3}|host|timestamp", inner), 0..3)
                    .prop_map(|pairs| serde_json::Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    /// A top-level object whose values are [`json_value`]s.
    fn json_object() -> impl Strategy<Value = serde_json::Value> {
        proptest::collection::vec(("[a-z]{1,3}|host|timestamp", json_value()), 0..5)
            .prop_map(|pairs| serde_json::Value::Object(pairs.into_iter().collect()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The quick scan never accepts a line serde_json refuses and finds the same host and
        /// timestamp; an undamaged line whose `timestamp` is a plain string it decides itself.
        #[test]
        fn quick_scan_is_sound(
            value in json_object(),
            ts in proptest::option::of(0i64..4_000_000_000),
            pretty in any::<bool>(),
            damage in proptest::option::of((any::<proptest::sample::Index>(), prop_oneof![
                proptest::sample::select(b"\"\\,:{}[]0.e-xu \n\x1f\xff".to_vec()),
                any::<u8>(),
            ])),
            cut in proptest::option::of(any::<proptest::sample::Index>()),
        ) {
            let mut value = value;
            if let (Some(ts), serde_json::Value::Object(map)) = (ts, &mut value) {
                let t = DateTime::from_timestamp(ts, 0).unwrap();
                map.insert("timestamp".into(), t.to_rfc3339().into());
            }
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                serde_json::to_string(&value).unwrap()
            };
            let mut bytes = text.into_bytes();
            if let Some((at, byte)) = damage {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            if let Some(at) = cut {
                bytes.truncate(at.index(bytes.len()));
            }
            let by_serde = RawJsonObject::scan_with_serde(Bytes::from(bytes.clone()));
            match quick_scan(&bytes) {
                Some(shape) => {
                    prop_assert!(by_serde.is_ok(), "quick scan accepted {:?}", String::from_utf8_lossy(&bytes));
                    let by_serde = by_serde.unwrap();
                    prop_assert_eq!(shape.has_host, by_serde.has_host);
                    prop_assert_eq!(shape.has_timestamp, by_serde.has_timestamp);
                    prop_assert_eq!(shape.timestamp.and_then(parse_rfc3339), by_serde.object.timestamp());
                }
                None => {
                    let plain_timestamp = match &value {
                        serde_json::Value::Object(map) => map.get(TIMESTAMP).is_none_or(|t| {
                            t.as_str().is_some_and(|s| !s.contains(['"', '\\', '\n']))
                        }),
                        _ => false,
                    };
                    prop_assert!(
                        damage.is_some() || cut.is_some() || !plain_timestamp,
                        "quick scan gave up on {:?}", String::from_utf8_lossy(&bytes)
                    );
                }
            }
        }

        /// The scan accepts exactly what the full parser accepts, and finds the same host
        /// and timestamp.
        #[test]
        fn scan_agrees_with_the_parser(value in json_value(), ts in proptest::option::of(0i64..4_000_000_000)) {
            let mut value = value;
            if let (Some(ts), serde_json::Value::Object(map)) = (ts, &mut value) {
                let t = DateTime::from_timestamp(ts, 0).unwrap();
                map.insert("timestamp".into(), t.to_rfc3339().into());
            }
            let text = serde_json::to_string(&value).unwrap();
            let parsed = parse_json_object(&line(&text));
            match RawJsonObject::scan(line(&text)) {
                Ok(scanned) => {
                    let fields = parsed.unwrap();
                    prop_assert_eq!(scanned.has_host, fields.contains(HOST));
                    prop_assert_eq!(scanned.has_timestamp, fields.contains(TIMESTAMP));
                    let expected = match fields.get(TIMESTAMP) {
                        Some(Value::Bytes(b)) => parse_rfc3339(b),
                        _ => None,
                    };
                    prop_assert_eq!(scanned.object.timestamp(), expected);
                }
                Err(_) => prop_assert!(parsed.is_err()),
            }
        }
    }
}
