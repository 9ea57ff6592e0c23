use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::fields::Fields;

/// One field value of a log event.
///
/// Strings and raw bytes share one variant: text is kept as bytes so that sources can slice the
/// buffers they read without copying, and codecs decide how to present bytes that are not valid
/// UTF-8 (they substitute U+FFFD).
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// Text (usually UTF-8) or raw bytes.
    Bytes(Bytes),
    /// A signed 64-bit integer.
    Integer(i64),
    /// A 64-bit float.
    Float(f64),
    /// A boolean.
    Boolean(bool),
    /// A point in time, always UTC.
    Timestamp(DateTime<Utc>),
    /// An ordered list of values.
    Array(Vec<Value>),
    /// A nested map of fields.
    Object(Fields),
    /// An explicit null.
    #[default]
    Null,
}

impl Value {
    /// About how many bytes the value's data takes (text and raw bytes by their length,
    /// scalars as 8): what the memory buffer reports as `ferry_buffered_bytes`. Not the
    /// allocation size, which no caller needs.
    pub fn approximate_size(&self) -> usize {
        match self {
            Value::Bytes(bytes) => bytes.len(),
            Value::Integer(_) | Value::Float(_) | Value::Timestamp(_) => 8,
            Value::Boolean(_) | Value::Null => 1,
            Value::Array(values) => values.iter().map(Value::approximate_size).sum(),
            Value::Object(fields) => fields.approximate_size(),
        }
    }

    /// The bytes of a `Bytes` value.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The nested fields of an `Object` value.
    pub fn as_object(&self) -> Option<&Fields> {
        match self {
            Value::Object(f) => Some(f),
            _ => None,
        }
    }

    /// The timestamp of a `Timestamp` value.
    pub fn as_timestamp(&self) -> Option<&DateTime<Utc>> {
        match self {
            Value::Timestamp(t) => Some(t),
            _ => None,
        }
    }

    /// A short name of the variant, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Bytes(_) => "string",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Boolean(_) => "boolean",
            Value::Timestamp(_) => "timestamp",
            Value::Array(_) => "array",
            Value::Object(_) => "map",
            Value::Null => "null",
        }
    }

    /// Appends the value as plain text, the way templates and record keys show it: strings
    /// as-is (invalid UTF-8 replaced), timestamps in RFC 3339, containers as JSON-like text.
    pub fn write_display(&self, out: &mut String) {
        use std::fmt::Write;
        match self {
            Value::Bytes(b) => out.push_str(&String::from_utf8_lossy(b)),
            Value::Integer(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => {
                let _ = write!(out, "{f}");
            }
            Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Timestamp(t) => {
                let _ = write!(out, "{}", t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_display(out);
                }
                out.push(']');
            }
            Value::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_display(out);
                }
                out.push('}');
            }
            Value::Null => {}
        }
    }

    /// The value as plain text (see [`Value::write_display`]).
    pub fn to_display_string(&self) -> String {
        let mut s = String::new();
        self.write_display(&mut s);
        s
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Bytes(Bytes::from(s))
    }
}

impl From<Bytes> for Value {
    fn from(b: Bytes) -> Self {
        Value::Bytes(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Integer(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl From<DateTime<Utc>> for Value {
    fn from(t: DateTime<Utc>) -> Self {
        Value::Timestamp(t)
    }
}

impl From<Fields> for Value {
    fn from(f: Fields) -> Self {
        Value::Object(f)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::Array(v)
    }
}
