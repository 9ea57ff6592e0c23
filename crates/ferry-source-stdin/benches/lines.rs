//! Micro-benchmark of the stdin source's first stage: cutting what was read into lines (slices
//! of the read buffer, no copies). `cargo bench -p ferry-source-stdin`; figures are recorded in
//! docs/benchmarks.md.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferry_source_stdin::LineSplitter;

/// What one read of standard input brings: 256 KiB of ~160-byte JSON lines.
fn read_chunk() -> Vec<u8> {
    let mut chunk = Vec::with_capacity(256 * 1024 + 256);
    let mut seq = 0u64;
    while chunk.len() < 256 * 1024 {
        chunk.extend_from_slice(
            format!(
                r#"{{"timestamp":"2026-11-25T10:00:00.001Z","host":"web-2","level":"info","method":"GET","path":"/api/v1/orders","status":500,"bytes":3283,"user_id":"user-75","seq":{seq}}}"#
            )
            .as_bytes(),
        );
        chunk.push(b'\n');
        seq += 1;
    }
    chunk
}

fn split(c: &mut Criterion) {
    let chunk = read_chunk();
    let lines_per_chunk = chunk.iter().filter(|&&b| b == b'\n').count();
    let mut group = c.benchmark_group("lines");
    group.throughput(Throughput::Elements(lines_per_chunk as u64));
    let mut splitter = LineSplitter::new(1 << 20);
    let mut lines = Vec::with_capacity(lines_per_chunk);
    group.bench_function("split_256KiB_read", |b| {
        b.iter(|| {
            splitter.spare(chunk.len()).extend_from_slice(black_box(&chunk));
            splitter.drain_lines(&mut lines);
            black_box(&lines);
            lines.clear();
        })
    });
    group.finish();
}

criterion_group!(benches, split);
criterion_main!(benches);
