use bytes::Bytes;
use chrono::{DateTime, Utc};
use ferry_core::{Fields, LogEvent, RawJsonObject, TIMESTAMP, Value};
use serde::Deserialize;

/// How a source turns each line into an event (`decoding.codec`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodingCodec {
    /// The line becomes the `message` field, unchanged (default).
    #[default]
    Bytes,
    /// The line is a JSON object whose fields become the event's.
    Json,
}

/// A source's `decoding` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodingConfig {
    /// `bytes` (default) or `json`.
    #[serde(default)]
    pub codec: DecodingCodec,
}

/// A line that the `json` decoder could not read; the source still emits it, as `message`.
#[derive(Debug, thiserror::Error)]
#[error("line is not a JSON object ({source}); kept as `message`")]
pub struct DecodeError {
    /// What the JSON parser said.
    #[source]
    pub source: serde_json::Error,
}

/// Turns lines into events.
#[derive(Clone, Copy, Debug, Default)]
pub struct Decoder {
    codec: DecodingCodec,
}

impl Decoder {
    /// The decoder for a source's `decoding` table.
    pub fn new(config: &DecodingConfig) -> Self {
        Self { codec: config.codec }
    }

    /// Decodes one line (without its line terminator).
    ///
    /// Never loses the line: when JSON decoding fails the event holds the raw line as
    /// `message`, and the error is returned beside it for the source to count and report.
    /// A decoded `timestamp` string in RFC 3339 becomes a timestamp value; the caller adds
    /// `host` and the ingestion `timestamp` when they are absent.
    pub fn decode(&self, line: Bytes) -> (LogEvent, Option<DecodeError>) {
        match self.codec {
            DecodingCodec::Bytes => (LogEvent::from_message(line), None),
            // The line is checked now and expanded into fields only if something reads them
            // (see `ferry_core::raw_json`).
            DecodingCodec::Json => match RawJsonObject::scan(line.clone()) {
                Ok(scanned) => (LogEvent::from_raw_json(scanned.object), None),
                Err(source) => (LogEvent::from_message(line), Some(DecodeError { source })),
            },
        }
    }
}

impl Decoder {
    /// Decodes one line into an event with the standard fields a source guarantees: `host`
    /// and the ingestion `timestamp` when the decoded event has none (decoded fields win).
    ///
    /// The `bytes` path builds the three fields directly: this runs once per input line.
    pub fn decode_with_standard_fields(
        &self,
        line: Bytes,
        host: &Bytes,
        now: DateTime<Utc>,
    ) -> (LogEvent, Option<DecodeError>) {
        match self.codec {
            DecodingCodec::Bytes => {
                let mut fields = Fields::with_capacity(3);
                fields.push_unchecked(ferry_core::MESSAGE.into(), Value::Bytes(line));
                fields.push_unchecked(ferry_core::HOST.into(), Value::Bytes(host.clone()));
                fields.push_unchecked(TIMESTAMP.into(), Value::Timestamp(now));
                (LogEvent::from_fields(fields), None)
            }
            DecodingCodec::Json => match RawJsonObject::scan(line.clone()) {
                Ok(mut scanned) => {
                    if !scanned.has_host {
                        scanned
                            .object
                            .append(ferry_core::HOST, Value::Bytes(host.clone()));
                    }
                    if !scanned.has_timestamp {
                        scanned.object.append(TIMESTAMP, Value::Timestamp(now));
                    }
                    (LogEvent::from_raw_json(scanned.object), None)
                }
                Err(source) => {
                    let mut event = LogEvent::from_message(line);
                    add_standard_fields(&mut event, host, now);
                    (event, Some(DecodeError { source }))
                }
            },
        }
    }
}

/// Fills in the standard fields a source guarantees: `host` and the ingestion `timestamp`
/// when the decoded event has none (decoded fields win).
pub fn add_standard_fields(event: &mut LogEvent, host: &Bytes, now: DateTime<Utc>) {
    let fields = event.fields_mut();
    if !fields.contains(ferry_core::HOST) {
        fields.insert(ferry_core::HOST, Value::Bytes(host.clone()));
    }
    if !fields.contains(TIMESTAMP) {
        fields.insert(TIMESTAMP, Value::Timestamp(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_timestamp_in_rfc3339_becomes_a_timestamp() {
        let d = Decoder::new(&DecodingConfig {
            codec: DecodingCodec::Json,
        });
        let (e, err) = d.decode(Bytes::from_static(
            br#"{"timestamp":"2026-11-25T10:00:00+01:00","m":1}"#,
        ));
        assert!(err.is_none());
        assert_eq!(e.timestamp().unwrap().to_rfc3339(), "2026-11-25T09:00:00+00:00");
        let (e, _) = d.decode(Bytes::from_static(br#"{"timestamp":"yesterday"}"#));
        assert_eq!(e.fields().get(TIMESTAMP), Some(&Value::from("yesterday")));
    }

    #[test]
    fn invalid_json_keeps_the_line_as_message() {
        let d = Decoder::new(&DecodingConfig {
            codec: DecodingCodec::Json,
        });
        let (e, err) = d.decode(Bytes::from_static(b"{not json"));
        assert!(err.is_some());
        assert_eq!(e.message().map(|b| &b[..]), Some(&b"{not json"[..]));
    }

    #[test]
    fn both_paths_add_the_same_standard_fields() {
        let now = Utc::now();
        let host = Bytes::from_static(b"me");
        let bytes = Decoder::new(&DecodingConfig::default());
        let (fast, _) = bytes.decode_with_standard_fields(Bytes::from_static(b"line"), &host, now);
        let (mut slow, _) = bytes.decode(Bytes::from_static(b"line"));
        add_standard_fields(&mut slow, &host, now);
        assert_eq!(fast, slow);
    }

    #[test]
    fn standard_fields_do_not_override_decoded_ones() {
        let d = Decoder::new(&DecodingConfig {
            codec: DecodingCodec::Json,
        });
        let (mut e, _) = d.decode(Bytes::from_static(br#"{"host":"web-7"}"#));
        add_standard_fields(&mut e, &Bytes::from_static(b"me"), Utc::now());
        assert_eq!(e.fields().get("host"), Some(&Value::from("web-7")));
        assert!(e.timestamp().is_some());
    }
}
