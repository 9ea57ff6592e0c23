//! JSON → [`Value`] without copying strings: string values are slices of the line they were
//! read from (`Bytes::slice_ref`), so decoding allocates only for the field table, nested
//! containers and strings that contained escapes.

use std::fmt;

use crate::fields::Fields;
use crate::value::Value;
use bytes::Bytes;
use compact_str::CompactString;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Parses `line` as one JSON object into fields; anything else (an array, a number, invalid
/// JSON, trailing garbage) is an error.
pub fn parse_json_object(line: &Bytes) -> Result<Fields, serde_json::Error> {
    // Validating the whole line once lets serde_json skip its per-string UTF-8 checks; a line
    // that is not UTF-8 goes through the byte reader, which reports where it breaks.
    let value = match std::str::from_utf8(line) {
        Ok(text) => {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            let value = ValueSeed { source: line }.deserialize(&mut deserializer)?;
            deserializer.end()?;
            value
        }
        Err(_) => {
            let mut deserializer = serde_json::Deserializer::from_slice(line);
            let value = ValueSeed { source: line }.deserialize(&mut deserializer)?;
            deserializer.end()?;
            value
        }
    };
    match value {
        Value::Object(fields) => Ok(fields),
        other => Err(de::Error::custom(format_args!(
            "expected a JSON object, found {}",
            other.kind_name()
        ))),
    }
}

#[derive(Clone, Copy)]
struct ValueSeed<'s> {
    source: &'s Bytes,
}

impl ValueSeed<'_> {
    fn bytes_of(&self, s: &str) -> Bytes {
        let range = self.source.as_ptr_range();
        let ptr = s.as_ptr();
        // serde_json hands out borrowed strings from the input; check rather than trust, since
        // `slice_ref` panics on a foreign slice.
        if !s.is_empty() && range.contains(&ptr) && ptr.wrapping_add(s.len()) <= range.end {
            self.source.slice_ref(s.as_bytes())
        } else {
            Bytes::copy_from_slice(s.as_bytes())
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Boolean(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        // Integers beyond i64 keep their magnitude as a float rather than wrapping.
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Integer))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value, E> {
        Ok(Value::Bytes(self.bytes_of(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::copy_from_slice(v.as_bytes())))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::from(v)))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Fields::with_capacity(map.size_hint().unwrap_or(8));
        // One bit per (length, first byte, last byte) class of the keys seen so far: a key whose
        // bit is clear cannot repeat an earlier key, so the linear duplicate scan runs only on
        // a class collision instead of for every key.
        let mut seen: u64 = 0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value_seed(self)?;
            let bit = 1u64 << (key_class(&key) % 64);
            if seen & bit == 0 {
                seen |= bit;
                fields.push_unchecked(key, value);
            } else {
                // A repeated key keeps its first position and its last value, like most parsers.
                fields.insert(key, value);
            }
        }
        Ok(Value::Object(fields))
    }
}

fn key_class(key: &str) -> u32 {
    let bytes = key.as_bytes();
    let first = bytes.first().copied().unwrap_or(0) as u32;
    let last = bytes.last().copied().unwrap_or(0) as u32;
    (bytes.len() as u32).wrapping_mul(31) ^ first.wrapping_mul(7) ^ last
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = CompactString;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = CompactString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(CompactString::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_slices_of_the_line() {
        let line = Bytes::from_static(br#"{"message":"hello","n":{"a":[1,2.5,true,null]}}"#);
        let fields = parse_json_object(&line).unwrap();
        let Some(Value::Bytes(message)) = fields.get("message") else {
            panic!()
        };
        assert_eq!(&message[..], b"hello");
        let line_range = line.as_ptr_range();
        assert!(line_range.contains(&message.as_ptr()), "the string was copied");
        let Some(Value::Object(n)) = fields.get("n") else {
            panic!()
        };
        assert_eq!(
            n.get("a"),
            Some(&Value::Array(vec![
                Value::Integer(1),
                Value::Float(2.5),
                Value::Boolean(true),
                Value::Null
            ]))
        );
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let line = Bytes::from_static(br#"{"m":"a\"b\u00e9\n"}"#);
        let fields = parse_json_object(&line).unwrap();
        assert_eq!(fields.get("m"), Some(&Value::from("a\"b\u{e9}\n")));
    }

    #[test]
    fn non_objects_and_garbage_are_errors() {
        for bad in [&b"[1]"[..], b"12", b"{\"a\":1} x", b"{\"a\":", b"not json", b""] {
            assert!(
                parse_json_object(&Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn repeated_keys_keep_first_position_and_last_value() {
        let fields = parse_json_object(&Bytes::from_static(
            br#"{"a":1,"b":2,"a":3,"ab":4,"ba":5,"ab":6}"#,
        ))
        .unwrap();
        let pairs: Vec<_> = fields.iter().map(|(k, v)| (k.to_owned(), v.clone())).collect();
        assert_eq!(
            pairs,
            [
                ("a".to_owned(), Value::Integer(3)),
                ("b".to_owned(), Value::Integer(2)),
                ("ab".to_owned(), Value::Integer(6)),
                ("ba".to_owned(), Value::Integer(5)),
            ]
        );
    }

    #[test]
    fn huge_unsigned_integers_become_floats() {
        let fields = parse_json_object(&Bytes::from_static(b"{\"n\":18446744073709551615}")).unwrap();
        assert_eq!(fields.get("n"), Some(&Value::Float(18446744073709551615.0)));
    }
}
