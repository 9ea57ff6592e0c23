//! Micro-benchmarks of the event model's share of the hot path: checking a JSON line
//! (`RawJsonObject::scan`, which the JSON decoder runs per line), reading its RFC 3339
//! timestamp, and the acknowledgement bookkeeping every event carries.
//! `cargo bench -p ferry-core`; figures are recorded in docs/benchmarks.md.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferry_core::raw_json::parse_rfc3339;
use ferry_core::{BatchNotifier, DeliveryStatus, EventFinalizer, RawJsonObject};

/// A line of the end-to-end benchmark's input (about 160 bytes).
const LINE: &[u8] = br#"{"timestamp":"2026-11-25T10:00:00.001Z","host":"web-2","level":"info","method":"GET","path":"/api/v1/orders","status":500,"bytes":3283,"user_id":"user-75","seq":1}"#;

/// The same kind of line with escapes and non-ASCII text in a string.
const ESCAPED_LINE: &[u8] = "{\"timestamp\":\"2026-11-25T10:00:00.001Z\",\"host\":\"web-2\",\"message\":\"GET \\\"/caf\u{e9}\\\" \\u00e9\\t200\",\"status\":200}".as_bytes();

fn json_scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_scan");
    group.throughput(Throughput::Elements(1));
    for (name, line) in [("plain", LINE), ("escaped", ESCAPED_LINE)] {
        let line = Bytes::from_static(line);
        group.bench_function(name, |b| {
            b.iter(|| black_box(RawJsonObject::scan(black_box(line.clone()))))
        });
    }
    group.finish();
}

fn rfc3339(c: &mut Criterion) {
    let mut group = c.benchmark_group("rfc3339");
    group.throughput(Throughput::Elements(1));
    for (name, text) in [
        ("utc_millis", "2026-11-25T10:00:00.001Z"),
        ("offset", "2026-11-25T10:00:00+01:00"),
        ("lower_case_t", "2026-11-25t10:00:00z"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(parse_rfc3339(black_box(text.as_bytes()))))
        });
    }
    group.finish();
}

/// One source batch of 1,000 events: a notifier, a finalizer per event, each settled
/// `Delivered` (as the Kafka sink's delivery reports do), and the source's verdict.
fn acknowledgements(c: &mut Criterion) {
    const EVENTS: u64 = 1_000;
    let mut group = c.benchmark_group("acknowledgements");
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("batch_of_1000", |b| {
        b.iter_batched(
            BatchNotifier::new_with_receiver,
            |(notifier, receiver)| {
                let mut finalizers: Vec<EventFinalizer> = (0..EVENTS)
                    .map(|_| EventFinalizer::new(notifier.clone()))
                    .collect();
                drop(notifier);
                for finalizer in &mut finalizers {
                    finalizer.settle(DeliveryStatus::Delivered);
                }
                drop(finalizers);
                black_box(receiver)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, json_scan, rfc3339, acknowledgements);
criterion_main!(benches);
