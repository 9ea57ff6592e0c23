//! The dead-letter record and its JSON line format.
//!
//! One JSON object per line, fields in this order:
//!
//! | field | when |
//! | --- | --- |
//! | `time` | always: when the record became a dead letter, RFC 3339 UTC with milliseconds |
//! | `sink`, `topic`, `reason`, `cause` | always |
//! | `key` / `key_base64` | when the record has a key: a string if its bytes are UTF-8, else base64 |
//! | `payload` / `payload_base64` | always, chosen the same way |
//! | `headers` | when there are any: `[{"key": "...", "value": "..."}]`, `value_base64` for bytes that are not UTF-8, `"value": null` for a header without a value |
//! | `timestamp_ms` | when the record carries its own timestamp |
//!
//! Text stays readable with `jq` or `grep`; any bytes survive the round trip exactly.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::DeadLetterError;

/// Why a record became a dead letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// The topic template could not be rendered for this record (a field it names is missing).
    Template,
    /// The record is larger than the destination accepts (`message.max.bytes`).
    TooLarge,
    /// The rendered topic name is not a valid topic name.
    InvalidTopic,
    /// The destination refused the record as malformed.
    InvalidRecord,
    /// The destination denied writing to the topic.
    TopicAuthorization,
    /// The topic stayed missing past its grace period.
    UnknownTopic,
    /// Every allowed attempt to deliver the record failed.
    RetriesExhausted,
    /// The record was still unconfirmed at the shutdown deadline.
    Shutdown,
    /// The sink failed for good while it held the record.
    SinkFailed,
}

impl DeadLetterReason {
    /// Every reason, in declaration order.
    pub const ALL: [DeadLetterReason; 9] = [
        DeadLetterReason::Template,
        DeadLetterReason::TooLarge,
        DeadLetterReason::InvalidTopic,
        DeadLetterReason::InvalidRecord,
        DeadLetterReason::TopicAuthorization,
        DeadLetterReason::UnknownTopic,
        DeadLetterReason::RetriesExhausted,
        DeadLetterReason::Shutdown,
        DeadLetterReason::SinkFailed,
    ];

    /// The snake_case name, as written in the `reason` field.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Template => "template",
            DeadLetterReason::TooLarge => "too_large",
            DeadLetterReason::InvalidTopic => "invalid_topic",
            DeadLetterReason::InvalidRecord => "invalid_record",
            DeadLetterReason::TopicAuthorization => "topic_authorization",
            DeadLetterReason::UnknownTopic => "unknown_topic",
            DeadLetterReason::RetriesExhausted => "retries_exhausted",
            DeadLetterReason::Shutdown => "shutdown",
            DeadLetterReason::SinkFailed => "sink_failed",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record a sink could never deliver, with what is needed to send it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// When it became a dead letter (stored with millisecond precision).
    pub time: DateTime<Utc>,
    /// The ID of the sink that gave up on it.
    pub sink: String,
    /// The rendered topic, or the template text when it could not be rendered.
    pub topic: String,
    /// Why it became a dead letter.
    pub reason: DeadLetterReason,
    /// One human-readable line: the destination's error or the sink's explanation.
    pub cause: String,
    /// The record's key, if it has one.
    pub key: Option<Vec<u8>>,
    /// The record's payload, byte for byte.
    pub payload: Vec<u8>,
    /// The record's headers in order; a header may have no value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The record's own timestamp, in milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
}

/// Bytes as they are written: a string when they are UTF-8, base64 otherwise.
enum Encoded<'a> {
    Text(&'a str),
    Base64(String),
}

impl<'a> Encoded<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => Encoded::Text(text),
            Err(_) => Encoded::Base64(BASE64.encode(bytes)),
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Encoded::Text(text) => Some(text),
            Encoded::Base64(_) => None,
        }
    }

    fn base64(&self) -> Option<&str> {
        match self {
            Encoded::Text(_) => None,
            Encoded::Base64(b64) => Some(b64),
        }
    }
}

// Field order here is the order on the line (serde writes struct fields as declared).
#[derive(Serialize)]
struct LineOut<'a> {
    time: String,
    sink: &'a str,
    topic: &'a str,
    reason: DeadLetterReason,
    cause: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_base64: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    headers: Vec<HeaderOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_ms: Option<i64>,
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    key: &'a str,
    // `value` is written as null when the header has none, so exactly one of the two appears.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
}

// Unknown fields are ignored rather than refused: a file written by a newer ferry that adds a
// field must still replay with this one.
#[derive(Deserialize)]
struct LineIn {
    time: String,
    sink: String,
    topic: String,
    reason: DeadLetterReason,
    cause: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    key_base64: Option<String>,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    payload_base64: Option<String>,
    #[serde(default)]
    headers: Vec<HeaderIn>,
    #[serde(default)]
    timestamp_ms: Option<i64>,
}

#[derive(Deserialize)]
struct HeaderIn {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    value_base64: Option<String>,
}

fn parse_error(reason: impl Into<String>) -> DeadLetterError {
    DeadLetterError::Parse {
        line: 1,
        reason: reason.into(),
    }
}

/// serde_json's message without its "at line 1 column N" (the caller knows the line), and
/// saying plainly when the line was cut off, as the last line of a crashed run is.
fn json_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let base = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(base, _)| base);
    if e.is_eof() {
        format!("the line is incomplete ({base} at column {})", e.column())
    } else {
        format!("{base} at column {}", e.column())
    }
}

/// Picks the text or base64 form of a field; `None` when neither is present.
fn decode_bytes(
    field: &str,
    text: Option<String>,
    b64: Option<String>,
) -> Result<Option<Vec<u8>>, DeadLetterError> {
    match (text, b64) {
        (Some(_), Some(_)) => Err(parse_error(format!(
            "both `{field}` and `{field}_base64` are present; a letter has one of them"
        ))),
        (Some(text), None) => Ok(Some(text.into_bytes())),
        (None, Some(b64)) => BASE64
            .decode(b64.as_bytes())
            .map(Some)
            .map_err(|e| parse_error(format!("`{field}_base64` is not valid base64: {e}"))),
        (None, None) => Ok(None),
    }
}

impl DeadLetter {
    /// The letter as one line of a dead-letter file, ending in `\n`. `time` is written with
    /// millisecond precision.
    pub fn to_json_line(&self) -> Vec<u8> {
        let key = self.key.as_deref().map(Encoded::new);
        let payload = Encoded::new(&self.payload);
        let headers = self
            .headers
            .iter()
            .map(|(key, value)| match value.as_deref().map(Encoded::new) {
                None => HeaderOut {
                    key,
                    value: Some(None),
                    value_base64: None,
                },
                Some(Encoded::Text(text)) => HeaderOut {
                    key,
                    value: Some(Some(text)),
                    value_base64: None,
                },
                Some(Encoded::Base64(b64)) => HeaderOut {
                    key,
                    value: None,
                    value_base64: Some(b64),
                },
            })
            .collect();
        let line = LineOut {
            time: self.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            sink: &self.sink,
            topic: &self.topic,
            reason: self.reason,
            cause: &self.cause,
            key: key.as_ref().and_then(Encoded::text),
            key_base64: key.as_ref().and_then(Encoded::base64),
            payload: payload.text(),
            payload_base64: payload.base64(),
            headers,
            timestamp_ms: self.timestamp_ms,
        };
        // Cannot fail: every field is a string, an integer or a list of them (no map with
        // non-string keys, no custom serializer), and writing into a Vec does no I/O.
        let mut out = serde_json::to_vec(&line).expect("a dead letter always serializes to JSON");
        out.push(b'\n');
        out
    }

    /// Reads one line written by [`DeadLetter::to_json_line`] (the trailing newline is
    /// optional). The error's `line` is 1; [`crate::read_file`] reports the line's real
    /// number.
    pub fn from_json_line(line: &[u8]) -> Result<Self, DeadLetterError> {
        let raw: LineIn = serde_json::from_slice(line).map_err(|e| parse_error(json_reason(&e)))?;
        let time = DateTime::parse_from_rfc3339(&raw.time)
            .map_err(|e| parse_error(format!("`time` is not an RFC 3339 time ({:?}): {e}", raw.time)))?
            .with_timezone(&Utc);
        let key = decode_bytes("key", raw.key, raw.key_base64)?;
        let payload = decode_bytes("payload", raw.payload, raw.payload_base64)?
            .ok_or_else(|| parse_error("neither `payload` nor `payload_base64` is present"))?;
        let headers = raw
            .headers
            .into_iter()
            .map(|h| {
                let value = decode_bytes("value", h.value, h.value_base64)
                    .map_err(|e| parse_error(format!("header {:?}: {e}", h.key)))?;
                Ok((h.key, value))
            })
            .collect::<Result<_, DeadLetterError>>()?;
        Ok(DeadLetter {
            time,
            sink: raw.sink,
            topic: raw.topic,
            reason: raw.reason,
            cause: raw.cause,
            key,
            payload,
            headers,
            timestamp_ms: raw.timestamp_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn letter() -> DeadLetter {
        DeadLetter {
            time: Utc.with_ymd_and_hms(2026, 12, 3, 8, 0, 0).unwrap(),
            sink: "kafka".into(),
            topic: "logs-nginx".into(),
            reason: DeadLetterReason::UnknownTopic,
            cause: "topic `logs-nginx` does not exist".into(),
            key: Some(b"host-1".to_vec()),
            payload: br#"{"message":"GET / 200"}"#.to_vec(),
            headers: vec![("trace".into(), Some(b"abc".to_vec())), ("empty".into(), None)],
            timestamp_ms: Some(1_796_284_800_000),
        }
    }

    #[test]
    fn text_letter_is_readable_and_ordered() {
        let line = letter().to_json_line();
        assert_eq!(
            String::from_utf8(line.clone()).unwrap(),
            concat!(
                r#"{"time":"2026-12-03T08:00:00.000Z","sink":"kafka","topic":"logs-nginx","#,
                r#""reason":"unknown_topic","cause":"topic `logs-nginx` does not exist","#,
                r#""key":"host-1","payload":"{\"message\":\"GET / 200\"}","#,
                r#""headers":[{"key":"trace","value":"abc"},{"key":"empty","value":null}],"#,
                r#""timestamp_ms":1796284800000}"#,
                "\n"
            )
        );
        assert_eq!(DeadLetter::from_json_line(&line).unwrap(), letter());
    }

    #[test]
    fn optional_fields_are_omitted() {
        let mut l = letter();
        l.key = None;
        l.headers.clear();
        l.timestamp_ms = None;
        l.payload.clear();
        let line = String::from_utf8(l.to_json_line()).unwrap();
        assert!(
            line.ends_with("\"cause\":\"topic `logs-nginx` does not exist\",\"payload\":\"\"}\n"),
            "{line}"
        );
        assert_eq!(DeadLetter::from_json_line(line.as_bytes()).unwrap(), l);
    }

    #[test]
    fn bytes_that_are_not_utf8_use_base64() {
        let mut l = letter();
        l.key = Some(vec![0xff, 0x00]);
        l.payload = vec![0xc3, 0x28, b'a'];
        l.headers = vec![("bin".into(), Some(vec![0x80]))];
        let line = String::from_utf8(l.to_json_line()).unwrap();
        assert!(line.contains(r#""key_base64":"/wA=""#), "{line}");
        assert!(line.contains(r#""payload_base64":"wyhh""#), "{line}");
        assert!(
            line.contains(r#""headers":[{"key":"bin","value_base64":"gA=="}]"#),
            "{line}"
        );
        assert_eq!(DeadLetter::from_json_line(line.as_bytes()).unwrap(), l);
    }

    #[test]
    fn malformed_lines_are_errors() {
        for bad in [
            &b"{\"time\":\"2026-12-03T08:00:00.000Z\",\"sink\":\"k\",\"topic\":\"t\",\"reason\":\"shutdown\",\"cause\":\"c\",\"pay"[..],
            br#"{"time":"2026-12-03T08:00:00.000Z","sink":"k","topic":"t","reason":"shutdown","cause":"c"}"#,
            br#"{"time":"yesterday","sink":"k","topic":"t","reason":"shutdown","cause":"c","payload":""}"#,
            br#"{"time":"2026-12-03T08:00:00Z","sink":"k","topic":"t","reason":"bored","cause":"c","payload":""}"#,
            br#"{"time":"2026-12-03T08:00:00Z","sink":"k","topic":"t","reason":"shutdown","cause":"c","payload":"","payload_base64":""}"#,
            br#"{"time":"2026-12-03T08:00:00Z","sink":"k","topic":"t","reason":"shutdown","cause":"c","payload_base64":"!!"}"#,
            b"",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(DeadLetter::from_json_line(bad), Err(DeadLetterError::Parse { line: 1, .. })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn reason_names_match_serde() {
        for reason in DeadLetterReason::ALL {
            assert_eq!(
                serde_json::to_string(&reason).unwrap(),
                format!("\"{}\"", reason.as_str())
            );
        }
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        // Mix arbitrary bytes with text so both encodings are exercised.
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            ".{0,32}".prop_map(String::into_bytes),
        ]
    }

    prop_compose! {
        fn any_letter()(
            millis in 0i64..4_102_444_800_000,
            sink in ".{0,12}",
            topic in ".{0,12}",
            reason in proptest::sample::select(DeadLetterReason::ALL.to_vec()),
            cause in ".{0,40}",
            key in proptest::option::of(bytes()),
            payload in bytes(),
            headers in proptest::collection::vec((".{0,8}", proptest::option::of(bytes())), 0..4),
            timestamp_ms in proptest::option::of(any::<i64>()),
        ) -> DeadLetter {
            DeadLetter {
                time: Utc.timestamp_millis_opt(millis).unwrap(),
                sink, topic, reason, cause, key, payload, headers, timestamp_ms,
            }
        }
    }

    proptest! {
        #[test]
        fn round_trip_is_exact(letter in any_letter()) {
            let line = letter.to_json_line();
            prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one line, newline last");
            prop_assert_eq!(line.last(), Some(&b'\n'));
            let back = DeadLetter::from_json_line(&line).unwrap();
            prop_assert_eq!(&back, &letter);
            prop_assert_eq!(back.to_json_line(), line);
        }
    }
}
