use ferry_core::{Fields, LogEvent, MESSAGE, RawJsonObject, Value};

use crate::encoding::{EncodingCodec, EncodingConfig};
use crate::filter::{Decision, FieldFilter, Scope};
use crate::json_escape::{write_json_bytes, write_json_str};
use crate::timestamp::{RenderedTimestamp, TimestampFormat};

/// Turns events into record payloads, as one sink's `encoding` table says.
#[derive(Clone, Debug)]
pub struct Encoder {
    codec: EncodingCodec,
    filter: FieldFilter,
    timestamp_format: TimestampFormat,
}

impl Encoder {
    /// The encoder for a validated `encoding` table.
    pub fn new(config: &EncodingConfig) -> Self {
        Self {
            codec: config.codec,
            filter: FieldFilter::new(config.only_fields.as_deref(), config.except_fields.as_deref()),
            timestamp_format: config.timestamp_format,
        }
    }

    /// The codec this encoder writes.
    pub fn codec(&self) -> EncodingCodec {
        self.codec
    }

    /// The payload as a slice of the event itself, when it is one, so a sink can pass it on
    /// without copying: the `message` for the `text` codec, the line for a JSON line nothing
    /// was added to. `None` when the payload must be built with [`Encoder::encode`].
    pub fn borrowed_payload<'a>(&self, event: &'a LogEvent) -> Option<&'a [u8]> {
        match self.codec {
            EncodingCodec::Text if matches!(self.filter, FieldFilter::All) => {
                match event.fields().get(MESSAGE) {
                    Some(Value::Bytes(b)) => Some(b),
                    None | Some(Value::Null) => Some(&[]),
                    Some(_) => None,
                }
            }
            // What `write_raw_json` would write: the line, trimmed (it ends with `}`, or
            // `write_raw_json` writes the fields instead).
            EncodingCodec::Json => self
                .passthrough(event)
                .filter(|object| object.appended().is_empty())
                .map(|object| object.line().trim_ascii())
                .filter(|line| line.ends_with(b"}")),
            _ => None,
        }
    }

    /// Appends `event`'s payload to `out`.
    pub fn encode(&self, event: &LogEvent, out: &mut Vec<u8>) {
        match self.codec {
            EncodingCodec::Text => self.write_text(event, out),
            EncodingCodec::Json => match self.passthrough(event) {
                Some(object) => self.write_raw_json(object, out),
                None => self.write_json_fields(event.fields(), self.filter.scope(), out),
            },
            EncodingCodec::Logfmt => {
                let mut prefix = String::new();
                let mut first = true;
                self.write_logfmt_fields(event.fields(), self.filter.scope(), &mut prefix, &mut first, out);
            }
        }
    }

    /// The JSON line an event still is, when this encoder would write the same object: no
    /// field filters, and RFC 3339 timestamps (the line's own `timestamp` is RFC 3339 already,
    /// or it is not the event's time and stays the string it was).
    fn passthrough<'a>(&self, event: &'a LogEvent) -> Option<&'a RawJsonObject> {
        let plain =
            matches!(self.filter, FieldFilter::All) && self.timestamp_format == TimestampFormat::Rfc3339;
        if plain { event.raw_json() } else { None }
    }

    /// The line as it arrived (its own spelling of numbers, escapes and timestamps kept), then
    /// the fields the decoder appended.
    fn write_raw_json(&self, object: &RawJsonObject, out: &mut Vec<u8>) {
        let line = object.line().trim_ascii();
        // The decoder accepted the line as one object, so it ends with `}`.
        let Some(body) = line.strip_suffix(b"}") else {
            self.write_json_fields(&object.expand(), self.filter.scope(), out);
            return;
        };
        out.extend_from_slice(body);
        let mut first = body.trim_ascii_end().ends_with(b"{");
        for (name, value) in object.appended().iter() {
            if !first {
                out.push(b',');
            }
            first = false;
            write_json_str(name, out);
            out.push(b':');
            self.write_json_value(value, out);
        }
        out.push(b'}');
    }

    fn write_text(&self, event: &LogEvent, out: &mut Vec<u8>) {
        let Some(message) = event.fields().get(MESSAGE) else {
            return;
        };
        if matches!(self.filter.scope().decide(MESSAGE, message), Decision::Skip) {
            return;
        }
        match message {
            Value::Bytes(b) => out.extend_from_slice(b),
            Value::Null => {}
            Value::Timestamp(t) => match self.timestamp_format.render(t) {
                RenderedTimestamp::Text(s) | RenderedTimestamp::Number(s) => {
                    out.extend_from_slice(s.as_bytes())
                }
            },
            other => out.extend_from_slice(other.to_display_string().as_bytes()),
        }
    }

    fn write_json_fields(&self, fields: &Fields, scope: Scope<'_>, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        for (name, value) in fields.iter() {
            let inner = match scope.decide(name, value) {
                Decision::Skip => continue,
                Decision::Whole => None,
                Decision::Descend(inner) => Some(inner),
            };
            if !first {
                out.push(b',');
            }
            first = false;
            write_json_str(name, out);
            out.push(b':');
            match (inner, value) {
                (Some(inner), Value::Object(nested)) => self.write_json_fields(nested, inner, out),
                _ => self.write_json_value(value, out),
            }
        }
        out.push(b'}');
    }

    fn write_json_value(&self, value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Bytes(b) => write_json_bytes(b, out),
            Value::Integer(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            Value::Float(f) if f.is_finite() => {
                out.extend_from_slice(ryu::Buffer::new().format_finite(*f).as_bytes())
            }
            // JSON has no NaN or infinity.
            Value::Float(_) | Value::Null => out.extend_from_slice(b"null"),
            Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Timestamp(t) => self.timestamp_format.write_json(t, out),
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.write_json_value(item, out);
                }
                out.push(b']');
            }
            Value::Object(fields) => self.write_json_fields(fields, Scope::All, out),
        }
    }

    fn write_logfmt_fields(
        &self,
        fields: &Fields,
        scope: Scope<'_>,
        prefix: &mut String,
        first: &mut bool,
        out: &mut Vec<u8>,
    ) {
        for (name, value) in fields.iter() {
            let inner = match scope.decide(name, value) {
                Decision::Skip => continue,
                Decision::Whole => Scope::All,
                Decision::Descend(inner) => inner,
            };
            let mark = prefix.len();
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(name);
            self.write_logfmt_value(value, inner, prefix, first, out);
            prefix.truncate(mark);
        }
    }

    fn write_logfmt_value(
        &self,
        value: &Value,
        scope: Scope<'_>,
        key: &mut String,
        first: &mut bool,
        out: &mut Vec<u8>,
    ) {
        match value {
            Value::Object(fields) => self.write_logfmt_fields(fields, scope, key, first, out),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let mark = key.len();
                    key.push('[');
                    key.push_str(itoa::Buffer::new().format(i));
                    key.push(']');
                    self.write_logfmt_value(item, Scope::All, key, first, out);
                    key.truncate(mark);
                }
            }
            scalar => {
                if !std::mem::take(first) {
                    out.push(b' ');
                }
                write_logfmt_text(key, out);
                out.push(b'=');
                let text = match scalar {
                    Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                    Value::Timestamp(t) => match self.timestamp_format.render(t) {
                        RenderedTimestamp::Text(s) | RenderedTimestamp::Number(s) => s,
                    },
                    Value::Null => return,
                    other => other.to_display_string(),
                };
                write_logfmt_text(&text, out);
            }
        }
    }
}

/// Writes a logfmt key or value, quoting it when it is empty or holds a space, `=`, a quote
/// or a control character.
fn write_logfmt_text(s: &str, out: &mut Vec<u8>) {
    let needs_quotes = s.is_empty()
        || s.bytes()
            .any(|b| b <= b' ' || b == b'=' || b == b'"' || b == 0x7f);
    if !needs_quotes {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests;
