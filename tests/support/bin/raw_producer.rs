//! `raw-producer BOOTSTRAP TOPIC < lines`: what the `rdkafka` crate does on its own, for
//! `cargo xtask bench`. A minimal producer loop over standard input's lines with the same
//! librdkafka settings as Ferry's defaults and delivery reports polled on a background thread
//! (rdkafka's `ThreadedProducer`, as Ferry does): no events, no codecs, no buffers, no
//! acknowledgements to sources. It sends through rdkafka's `BaseRecord` API (a topic name per
//! message, librdkafka's partitioner), which is what a plain rdkafka user writes. Exits 0 once
//! every line is confirmed; prints the number delivered.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

#[derive(Default)]
struct Counts {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for &'static Counts {}

impl ProducerContext for &'static Counts {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(bootstrap), Some(topic)) = (args.first(), args.get(1)) else {
        eprintln!("usage: raw-producer BOOTSTRAP_SERVERS TOPIC < lines");
        std::process::exit(2);
    };
    let counts: &'static Counts = Box::leak(Box::default());
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "10")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "40000")
        .set("queue.buffering.max.kbytes", "16384");
    let producer: ThreadedProducer<&'static Counts> =
        ThreadedProducer::from_config_and_context(&config, counts).expect("producer");
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; 1 << 20];
    let mut pending = 0usize;
    let mut sent = 0u64;
    loop {
        let n = stdin.read(&mut buf[pending..]).expect("read stdin");
        let end = pending + n;
        let complete = if n == 0 {
            end
        } else {
            buf[..end].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
        };
        for line in buf[..complete].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let mut record: BaseRecord<(), [u8]> = BaseRecord::to(topic).payload(line);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                        // The polling thread frees room as deliveries are confirmed.
                        record = r;
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Err((e, _)) => panic!("send: {e}"),
                }
            }
            sent += 1;
        }
        buf.copy_within(complete..end, 0);
        pending = end - complete;
        if n == 0 {
            break;
        }
    }
    // Wait for the delivery reports in short sleeps: rdkafka's flush polls in 100 ms slices
    // that each run to the end, which would add a fixed delay unrelated to throughput.
    let settled = || counts.delivered.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while settled() < sent && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let delivered = counts.delivered.load(Ordering::Relaxed);
    println!(
        "sent {sent}, delivered {delivered}, failed {}",
        counts.failed.load(Ordering::Relaxed)
    );
    if delivered != sent {
        std::process::exit(1);
    }
}
