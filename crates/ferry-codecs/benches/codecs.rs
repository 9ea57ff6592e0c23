//! Micro-benchmarks of the codec hot path: decoding a ~150-byte JSON log line, and encoding
//! the decoded event as JSON, logfmt and text. `cargo bench -p ferry-codecs`; figures are
//! recorded in docs/benchmarks.md.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferry_codecs::{Decoder, DecodingCodec, DecodingConfig, Encoder, EncodingCodec, EncodingConfig};

/// A typical access-log event as a JSON line (about 150 bytes, as in the end-to-end benchmark).
const LINE: &[u8] = br#"{"timestamp":"2026-11-25T10:00:00.123Z","host":"web-3","level":"info","method":"GET","path":"/api/v1/orders","status":200,"bytes":5120,"user_id":"user-42"}"#;

fn decode(c: &mut Criterion) {
    let line = Bytes::from_static(LINE);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    let json = Decoder::new(&DecodingConfig {
        codec: DecodingCodec::Json,
    });
    group.bench_function("json", |b| {
        b.iter(|| black_box(json.decode(black_box(line.clone()))))
    });
    let bytes = Decoder::new(&DecodingConfig::default());
    group.bench_function("bytes", |b| {
        b.iter(|| black_box(bytes.decode(black_box(line.clone()))))
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let (event, _) = Decoder::new(&DecodingConfig {
        codec: DecodingCodec::Json,
    })
    .decode(Bytes::from_static(LINE));
    let mut message_event = ferry_core::LogEvent::from_message(Bytes::from_static(LINE));
    message_event
        .fields_mut()
        .insert("host", ferry_core::Value::from("web-3"));
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(512);
    for (name, codec, event) in [
        ("json", EncodingCodec::Json, &event),
        ("logfmt", EncodingCodec::Logfmt, &event),
        ("text", EncodingCodec::Text, &message_event),
    ] {
        let encoder = Encoder::new(&EncodingConfig {
            codec,
            ..EncodingConfig::default()
        });
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                encoder.encode(black_box(event), &mut out);
                black_box(out.len())
            })
        });
    }
    let filtered = Encoder::new(&EncodingConfig {
        except_fields: Some(vec!["host".parse().unwrap(), "user_id".parse().unwrap()]),
        ..EncodingConfig::json()
    });
    group.bench_function("json_except_fields", |b| {
        b.iter(|| {
            out.clear();
            filtered.encode(black_box(&event), &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

fn round_trip(c: &mut Criterion) {
    let decoder = Decoder::new(&DecodingConfig {
        codec: DecodingCodec::Json,
    });
    let encoder = Encoder::new(&EncodingConfig::json());
    let line = Bytes::from_static(LINE);
    let mut out = Vec::with_capacity(512);
    let mut group = c.benchmark_group("round_trip");
    group.throughput(Throughput::Elements(1));
    group.bench_function("json_decode_encode", |b| {
        b.iter(|| {
            let (event, _) = decoder.decode(line.clone());
            out.clear();
            encoder.encode(&event, &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, decode, encode, round_trip);
criterion_main!(benches);
