//! Micro-benchmarks of the buffer stage: batches of JSON events written into a memory or a
//! disk buffer and read back, each event then settled `Delivered` as the Kafka sink does (which
//! lets the disk buffer delete its records). Each round clones the batches it writes (part of
//! the time). The disk figures include the segment appends,
//! the group commits' fsyncs and the ledger. `cargo bench -p ferry-buffers`; figures are
//! recorded in docs/benchmarks.md.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferry_core::{BufferConfig, BufferType, DeliveryStatus, LogEvent, RawJsonObject, SinkMetrics};
use futures::StreamExt;

const BATCHES: usize = 20;
const EVENTS_PER_BATCH: usize = 1_000;

/// A batch of the raw JSON events the json decoder makes from the end-to-end input.
fn batch() -> Vec<LogEvent> {
    (0..EVENTS_PER_BATCH)
        .map(|seq| {
            let line = format!(
                r#"{{"timestamp":"2026-11-25T10:00:00.001Z","host":"web-2","level":"info","method":"GET","path":"/api/v1/orders","status":500,"bytes":3283,"user_id":"user-75","seq":{seq}}}"#
            );
            let scanned = RawJsonObject::scan(Bytes::from(line)).expect("a JSON object line");
            LogEvent::from_raw_json(scanned.object)
        })
        .collect()
}

fn round_trip(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let events = batch();
    let mut group = c.benchmark_group("buffer_round_trip");
    group.throughput(Throughput::Elements((BATCHES * EVENTS_PER_BATCH) as u64));
    group.sample_size(20);
    for (kind, kind_name) in [(BufferType::Memory, "memory"), (BufferType::Disk, "disk")] {
        let config = BufferConfig {
            kind,
            max_events: BATCHES * EVENTS_PER_BATCH,
            max_size: Some(1 << 30),
            ..BufferConfig::default()
        };
        let (writer, mut reader) = runtime
            .block_on(async { ferry_buffers::build(&config, dir.path(), Arc::new(SinkMetrics::default())) })
            .expect("a buffer");
        let name = format!("{kind_name}_{BATCHES}x{EVENTS_PER_BATCH}");
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    for _ in 0..BATCHES {
                        writer.write(events.clone()).await.expect("the buffer is open");
                    }
                    for _ in 0..BATCHES {
                        let read = reader.next().await.expect("the batch just written");
                        for mut event in read {
                            event.take_finalizer().settle(DeliveryStatus::Delivered);
                        }
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
