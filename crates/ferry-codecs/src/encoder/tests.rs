use bytes::Bytes;
use chrono::{TimeZone, Utc};
use ferry_core::{FieldPath, Fields, LogEvent, Value};
use proptest::prelude::*;

use crate::{Encoder, EncodingCodec, EncodingConfig, FieldFilter, TimestampFormat, parse_json_object};

fn encode(config: &EncodingConfig, event: &LogEvent) -> String {
    let mut out = Vec::new();
    Encoder::new(config).encode(event, &mut out);
    String::from_utf8(out).unwrap()
}

fn paths(list: &[&str]) -> Vec<FieldPath> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

fn sample() -> LogEvent {
    let mut e = LogEvent::from_message("GET /a 200");
    e.fields_mut().insert("host", Value::from("web-1"));
    e.insert_path(&"http.status".parse().unwrap(), Value::from(200));
    e.insert_path(&"http.path".parse().unwrap(), Value::from("/a"));
    e.fields_mut().insert(
        "timestamp",
        Value::from(Utc.with_ymd_and_hms(2026, 11, 25, 1, 2, 3).unwrap()),
    );
    e
}

#[test]
fn text_writes_the_message_or_nothing() {
    let text = EncodingConfig::default();
    assert_eq!(encode(&text, &sample()), "GET /a 200");
    assert_eq!(encode(&text, &LogEvent::default()), "");
    let encoder = Encoder::new(&text);
    assert_eq!(encoder.borrowed_payload(&sample()), Some(&b"GET /a 200"[..]));
}

#[test]
fn json_keeps_field_order_and_nesting() {
    assert_eq!(
        encode(&EncodingConfig::json(), &sample()),
        r#"{"message":"GET /a 200","host":"web-1","http":{"status":200,"path":"/a"},"timestamp":"2026-11-25T01:02:03Z"}"#
    );
}

#[test]
fn json_escapes_quotes_controls_and_invalid_utf8() {
    let mut e = LogEvent::default();
    e.fields_mut().insert("q", Value::from("say \"hi\"\\"));
    e.fields_mut().insert("c", Value::from("a\nb\tc\u{1}"));
    e.fields_mut()
        .insert("raw", Value::Bytes(Bytes::from_static(b"ok\xff\xfe")));
    e.fields_mut().insert("key \"x\"", Value::Float(f64::NAN));
    assert_eq!(
        encode(&EncodingConfig::json(), &e),
        "{\"q\":\"say \\\"hi\\\"\\\\\",\"c\":\"a\\nb\\tc\\u0001\",\"raw\":\"ok\u{fffd}\u{fffd}\",\"key \\\"x\\\"\":null}"
    );
}

#[test]
fn json_of_empty_and_deeply_nested_events() {
    assert_eq!(encode(&EncodingConfig::json(), &LogEvent::default()), "{}");
    let mut value = Value::from(1);
    for _ in 0..200 {
        let mut f = Fields::new();
        f.insert("a", value);
        value = Value::Object(f);
    }
    let mut e = LogEvent::default();
    e.fields_mut().insert("root", value);
    let json = encode(&EncodingConfig::json(), &e);
    assert_eq!(json.matches('{').count(), 201);
    assert!(json.ends_with(&format!("1{}", "}".repeat(201))));
}

#[test]
fn only_and_except_fields_accept_nested_paths() {
    let only = EncodingConfig {
        only_fields: Some(paths(&["message", "http.status"])),
        ..EncodingConfig::json()
    };
    assert_eq!(
        encode(&only, &sample()),
        r#"{"message":"GET /a 200","http":{"status":200}}"#
    );
    let except = EncodingConfig {
        except_fields: Some(paths(&["host", "http.path", "timestamp"])),
        ..EncodingConfig::json()
    };
    assert_eq!(
        encode(&except, &sample()),
        r#"{"message":"GET /a 200","http":{"status":200}}"#
    );
}

#[test]
fn both_filters_or_indexes_are_config_errors() {
    let both = EncodingConfig {
        only_fields: Some(paths(&["a"])),
        except_fields: Some(paths(&["b"])),
        ..EncodingConfig::json()
    };
    assert_eq!(both.validate()[0].key, "encoding.except_fields");
    let index = EncodingConfig {
        only_fields: Some(paths(&["a[0]"])),
        ..EncodingConfig::json()
    };
    assert_eq!(index.validate()[0].key, "encoding.only_fields");
}

#[test]
fn timestamp_formats() {
    let t = Utc.with_ymd_and_hms(2026, 11, 25, 1, 2, 3).unwrap() + chrono::Duration::milliseconds(250);
    let mut e = LogEvent::default();
    e.fields_mut().insert("timestamp", Value::from(t));
    let with = |f| {
        encode(
            &EncodingConfig {
                timestamp_format: f,
                ..EncodingConfig::json()
            },
            &e,
        )
    };
    assert_eq!(
        with(TimestampFormat::Rfc3339),
        r#"{"timestamp":"2026-11-25T01:02:03.250Z"}"#
    );
    assert_eq!(with(TimestampFormat::Unix), r#"{"timestamp":1795568523}"#);
    assert_eq!(with(TimestampFormat::UnixMs), r#"{"timestamp":1795568523250}"#);
    assert_eq!(with(TimestampFormat::UnixFloat), r#"{"timestamp":1795568523.25}"#);
}

#[test]
fn logfmt_flattens_and_quotes() {
    let config = EncodingConfig {
        codec: EncodingCodec::Logfmt,
        ..EncodingConfig::default()
    };
    let mut e = sample();
    e.fields_mut()
        .insert("tags", Value::Array(vec![Value::from("a b"), Value::from(1)]));
    e.fields_mut().insert("empty", Value::from(""));
    assert_eq!(
        encode(&config, &e),
        r#"message="GET /a 200" host=web-1 http.status=200 http.path=/a timestamp=2026-11-25T01:02:03Z tags[0]="a b" tags[1]=1 empty="""#
    );
}

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Integer),
        (-1e12f64..1e12).prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
        ".{0,12}".prop_map(Value::from),
        Just(Value::Null),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("[a-d]{1,2}", inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn arb_fields() -> impl Strategy<Value = Fields> {
    proptest::collection::vec(("[a-e]{1,2}", arb_value()), 0..6).prop_map(|pairs| pairs.into_iter().collect())
}

fn arb_paths() -> impl Strategy<Value = Vec<FieldPath>> {
    proptest::collection::vec("[a-e]{1,2}(\\.[a-d]{1,2}){0,2}", 1..4)
        .prop_map(|v| v.iter().map(|p| p.parse().unwrap()).collect())
}

/// Every leaf path of `fields`, for checking what a filter let through.
fn leaves(fields: &Fields, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in fields.iter() {
        let path = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(nested) if !nested.is_empty() => leaves(nested, &path, out),
            _ => out.push(path),
        }
    }
}

fn covered(path: &str, by: &[FieldPath]) -> bool {
    by.iter().any(|p| {
        let p = p.to_string();
        path == p || path.starts_with(&format!("{p}."))
    })
}

proptest! {
    #[test]
    fn json_encode_then_parse_equals_the_filtered_event(fields in arb_fields(), only in proptest::option::of(arb_paths())) {
        let config = EncodingConfig { only_fields: only.clone(), ..EncodingConfig::json() };
        let event = LogEvent::from_fields(fields.clone());
        let json = encode(&config, &event);
        let parsed = parse_json_object(&Bytes::from(json)).unwrap();
        // The expectation is built from the input alone, leaf by leaf, not by the filter the
        // encoder uses: a filter that let everything through would pass a comparison with
        // itself.
        let mut written = Vec::new();
        leaf_values(&parsed, "", &mut written);
        let mut given = Vec::new();
        leaf_values(&fields, "", &mut given);
        let wanted: Vec<_> = given
            .into_iter()
            .filter(|(path, _)| only.as_deref().is_none_or(|only| covered(path, only)))
            .collect();
        prop_assert_eq!(written, wanted);
    }

    #[test]
    fn only_fields_never_leak_and_except_fields_never_lose(fields in arb_fields(), selection in arb_paths()) {
        let only = FieldFilter::new(Some(&selection), None).apply(&fields);
        let mut kept = Vec::new();
        leaves(&only, "", &mut kept);
        for leaf in &kept {
            prop_assert!(covered(leaf, &selection), "only_fields leaked {leaf}");
        }
        let except = FieldFilter::new(None, Some(&selection)).apply(&fields);
        let mut all = Vec::new();
        leaves(&fields, "", &mut all);
        let mut remaining = Vec::new();
        leaves(&except, "", &mut remaining);
        for leaf in &all {
            if !covered(leaf, &selection) {
                prop_assert!(remaining.contains(leaf), "except_fields lost {leaf}");
            }
        }
        for leaf in &remaining {
            prop_assert!(!covered(leaf, &selection), "except_fields kept {leaf}");
        }
    }

    #[test]
    fn timestamps_round_trip_in_every_format(secs in 0i64..4_000_000_000, millis in 0u32..1000) {
        let t = Utc.timestamp_opt(secs, millis * 1_000_000).unwrap();
        let mut e = LogEvent::default();
        e.fields_mut().insert("timestamp", Value::from(t));
        for format in [TimestampFormat::Rfc3339, TimestampFormat::Unix, TimestampFormat::UnixMs, TimestampFormat::UnixFloat] {
            let json = encode(&EncodingConfig { timestamp_format: format, ..EncodingConfig::json() }, &e);
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            let back = match format {
                TimestampFormat::Rfc3339 => chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap()).unwrap().with_timezone(&Utc),
                TimestampFormat::Unix => Utc.timestamp_opt(v["timestamp"].as_i64().unwrap(), 0).unwrap(),
                TimestampFormat::UnixMs => Utc.timestamp_millis_opt(v["timestamp"].as_i64().unwrap()).unwrap(),
                TimestampFormat::UnixFloat => {
                    let f = v["timestamp"].as_f64().unwrap();
                    Utc.timestamp_millis_opt((f * 1000.0).round() as i64).unwrap()
                }
            };
            let expected = if format == TimestampFormat::Unix { Utc.timestamp_opt(secs, 0).unwrap() } else { t };
            prop_assert_eq!(back, expected, "format {:?}", format);
        }
    }
}

/// Every leaf of `fields` with its value in JSON, in order. Integers stay integers, so an
/// `i64` that went through an `f64` on the way (and lost its low digits) shows.
fn leaf_values(fields: &Fields, prefix: &str, out: &mut Vec<(String, serde_json::Value)>) {
    for (k, v) in fields.iter() {
        let path = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(nested) if !nested.is_empty() => leaf_values(nested, &path, out),
            _ => out.push((path, exact_json(v))),
        }
    }
}

/// A value in serde_json's model, numbers exactly: an integer as an integer, a float as a
/// float (JSON writes `1.0` for a float one, so it reads back as a float).
fn exact_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Integer(i) => serde_json::json!(*i),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(exact_json).collect()),
        Value::Object(f) => {
            serde_json::Value::Object(f.iter().map(|(k, v)| (k.to_string(), exact_json(v))).collect())
        }
        other => to_json(other),
    }
}

fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Bytes(b) => serde_json::Value::String(String::from_utf8_lossy(b).into_owned()),
        Value::Integer(i) => serde_json::json!(*i as f64),
        Value::Float(f) => serde_json::json!(*f),
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::Timestamp(t) => serde_json::Value::String(t.to_rfc3339()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Object(f) => {
            serde_json::Value::Object(f.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
        }
        Value::Null => serde_json::Value::Null,
    }
}

fn json_config() -> EncodingConfig {
    EncodingConfig {
        codec: EncodingCodec::Json,
        ..EncodingConfig::default()
    }
}

/// A JSON event decoded with standard fields, and the same fields as a plain event.
fn raw_and_plain(line: &str) -> (LogEvent, LogEvent) {
    let decoder = crate::Decoder::new(&crate::DecodingConfig {
        codec: crate::DecodingCodec::Json,
    });
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 1, 2, 3).unwrap();
    let (raw, error) = decoder.decode_with_standard_fields(
        Bytes::copy_from_slice(line.as_bytes()),
        &Bytes::from_static(b"me"),
        now,
    );
    assert!(error.is_none(), "{line}");
    assert!(raw.raw_json().is_some());
    let plain = LogEvent::from_fields(raw.fields().clone());
    (raw, plain)
}

#[test]
fn a_raw_json_event_is_copied_with_its_appended_fields() {
    let (raw, plain) = raw_and_plain(r#" {"m":"a\u0041","n":1.50} "#);
    let copied = encode(&json_config(), &raw);
    // The line's own spelling is kept; the appended fields follow.
    assert_eq!(
        copied,
        r#"{"m":"a\u0041","n":1.50,"host":"me","timestamp":"2026-11-25T01:02:03Z"}"#
    );
    let reparsed: serde_json::Value = serde_json::from_str(&copied).unwrap();
    let rebuilt: serde_json::Value = serde_json::from_str(&encode(&json_config(), &plain)).unwrap();
    assert_eq!(reparsed, rebuilt);
    let (raw, _) = raw_and_plain("{ }");
    assert_eq!(
        encode(&json_config(), &raw),
        r#"{ "host":"me","timestamp":"2026-11-25T01:02:03Z"}"#
    );
}

#[test]
fn a_complete_json_line_is_its_own_payload() {
    let encoder = Encoder::new(&json_config());
    let (raw, _) = raw_and_plain(" {\"timestamp\":\"2026-11-25T10:00:00Z\",\"host\":\"h\",\"m\":1}\r");
    let borrowed = encoder.borrowed_payload(&raw).map(<[u8]>::to_vec);
    assert_eq!(borrowed, Some(encode(&json_config(), &raw).into_bytes()));
    // Fields were appended: the payload has to be written.
    let (raw, _) = raw_and_plain(r#"{"m":1}"#);
    assert_eq!(encoder.borrowed_payload(&raw), None);
    let filtered = Encoder::new(&EncodingConfig {
        except_fields: Some(paths(&["m"])),
        ..json_config()
    });
    let (raw, _) = raw_and_plain(r#"{"timestamp":"2026-11-25T10:00:00Z","host":"h","m":1}"#);
    assert_eq!(filtered.borrowed_payload(&raw), None);
}

#[test]
fn filters_or_other_timestamp_formats_encode_raw_events_from_their_fields() {
    let (raw, plain) = raw_and_plain(r#"{"timestamp":"2026-11-25T10:00:00+01:00","host":"h","x":{"y":1}}"#);
    for config in [
        EncodingConfig {
            except_fields: Some(paths(&["x.y"])),
            ..json_config()
        },
        EncodingConfig {
            timestamp_format: TimestampFormat::Unix,
            ..json_config()
        },
    ] {
        assert_eq!(encode(&config, &raw), encode(&config, &plain));
    }
}

#[test]
fn changing_a_raw_event_stops_the_copy() {
    let (mut raw, _) = raw_and_plain(r#"{"a":1}"#);
    raw.fields_mut().insert("b", Value::from(2));
    assert!(raw.raw_json().is_none());
    let out: serde_json::Value = serde_json::from_str(&encode(&json_config(), &raw)).unwrap();
    assert_eq!(out["b"], 2);
}
