//! Event → Kafka record: topic, key, payload, headers, timestamp.

use std::borrow::Cow;

use ferry_codecs::Encoder;
use ferry_core::{FieldPath, LogEvent, Template, TemplateError, Value};
use rdkafka::message::{Header, OwnedHeaders};

/// The parts of one record, borrowing from the event where it can.
pub(crate) struct RecordParts<'a> {
    pub(crate) topic: Cow<'a, str>,
    pub(crate) key: Option<Cow<'a, [u8]>>,
    pub(crate) payload: &'a [u8],
    pub(crate) headers: Option<OwnedHeaders>,
    pub(crate) timestamp: Option<i64>,
}

/// A record's parts owned, for records that leave the fast path.
pub(crate) struct OwnedParts {
    pub(crate) topic: String,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) payload: Vec<u8>,
    pub(crate) timestamp: Option<i64>,
}

/// Builds records as the sink's options say.
pub(crate) struct RecordBuilder {
    topic: Template,
    key_field: Option<FieldPath>,
    headers_key: Option<FieldPath>,
    encoder: Encoder,
}

impl RecordBuilder {
    pub(crate) fn new(
        topic: Template,
        key_field: Option<FieldPath>,
        headers_key: Option<FieldPath>,
        encoder: Encoder,
    ) -> Self {
        Self {
            topic,
            key_field,
            headers_key,
            encoder,
        }
    }

    /// What a dead letter keeps of an event whose record could not be built (its topic
    /// template did not render): the template as its topic, and the payload and key as they
    /// would have been sent.
    pub(crate) fn unbuilt(&self, event: &LogEvent) -> OwnedParts {
        let key = self
            .key_field
            .as_ref()
            .and_then(|path| event.get_path(path))
            .and_then(value_bytes)
            .map(Cow::into_owned);
        let mut payload = Vec::new();
        match self.encoder.borrowed_payload(event) {
            Some(bytes) => payload.extend_from_slice(bytes),
            None => self.encoder.encode(event, &mut payload),
        }
        OwnedParts {
            topic: self.topic.as_str().to_owned(),
            key,
            payload,
            timestamp: event.timestamp().map(|t| t.timestamp_millis()),
        }
    }

    /// The record for `event`; `buf` holds an encoded payload when the event's own bytes
    /// cannot be used as they are.
    pub(crate) fn build<'a>(
        &'a self,
        event: &'a LogEvent,
        buf: &'a mut Vec<u8>,
    ) -> Result<RecordParts<'a>, TemplateError> {
        let topic = self.topic.render(event)?;
        let key = self
            .key_field
            .as_ref()
            .and_then(|path| event.get_path(path))
            .and_then(value_bytes);
        let payload = match self.encoder.borrowed_payload(event) {
            Some(bytes) => bytes,
            None => {
                buf.clear();
                self.encoder.encode(event, buf);
                buf.as_slice()
            }
        };
        let headers = self
            .headers_key
            .as_ref()
            .and_then(|path| match event.get_path(path) {
                Some(Value::Object(fields)) if !fields.is_empty() => {
                    let mut headers = OwnedHeaders::new_with_capacity(fields.len());
                    for (name, value) in fields.iter() {
                        let bytes = value_bytes(value);
                        headers = headers.insert(Header {
                            key: name,
                            value: bytes.as_deref(),
                        });
                    }
                    Some(headers)
                }
                _ => None,
            });
        let timestamp = event.timestamp().map(|t| t.timestamp_millis());
        Ok(RecordParts {
            topic,
            key,
            payload,
            headers,
            timestamp,
        })
    }
}

/// A value as record bytes: strings as they are, other scalars as text; null is no value.
fn value_bytes(value: &Value) -> Option<Cow<'_, [u8]>> {
    match value {
        Value::Bytes(b) => Some(Cow::Borrowed(b.as_ref())),
        Value::Null => None,
        other => Some(Cow::Owned(other.to_display_string().into_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_codecs::EncodingConfig;
    use ferry_core::Fields;

    fn builder(topic: &str, key: Option<&str>, headers: Option<&str>) -> RecordBuilder {
        RecordBuilder::new(
            topic.parse().unwrap(),
            key.map(|k| k.parse().unwrap()),
            headers.map(|h| h.parse().unwrap()),
            Encoder::new(&EncodingConfig::default()),
        )
    }

    #[test]
    fn key_from_field_or_none_when_absent() {
        let b = builder("t-{{unit}}", Some("user.id"), None);
        let mut e = LogEvent::from_message("m");
        e.insert_path(&"unit".parse().unwrap(), Value::from("nginx"));
        e.insert_path(&"user.id".parse().unwrap(), Value::from(42));
        let mut buf = Vec::new();
        let r = b.build(&e, &mut buf).unwrap();
        assert_eq!(r.topic, "t-nginx");
        assert_eq!(r.key.as_deref(), Some(&b"42"[..]));
        assert_eq!(r.payload, b"m");
        let mut buf = Vec::new();
        let e = {
            let mut e = LogEvent::from_message("m");
            e.insert_path(&"unit".parse().unwrap(), Value::from("x"));
            e
        };
        assert!(b.build(&e, &mut buf).unwrap().key.is_none());
    }

    #[test]
    fn missing_topic_field_is_an_error() {
        let b = builder("t-{{unit}}", None, None);
        let mut buf = Vec::new();
        let err = b.build(&LogEvent::from_message("m"), &mut buf).err().unwrap();
        assert!(err.to_string().contains("unit"));
    }

    #[test]
    fn headers_from_a_map_field() {
        let b = builder("t", None, Some("h"));
        let mut e = LogEvent::from_message("m");
        let mut h = Fields::new();
        h.insert("trace", Value::from("abc"));
        h.insert("n", Value::from(1));
        e.fields_mut().insert("h", Value::Object(h));
        let mut buf = Vec::new();
        let r = b.build(&e, &mut buf).unwrap();
        let headers = r.headers.unwrap();
        use rdkafka::message::Headers;
        assert_eq!(headers.count(), 2);
        assert_eq!(headers.get(0).key, "trace");
        assert_eq!(headers.get(1).value, Some(&b"1"[..]));
    }
}
