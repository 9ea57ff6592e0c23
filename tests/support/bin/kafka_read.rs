//! `kafka-read BOOTSTRAP TOPIC [SHOW]`: reads a topic from the beginning until it has been idle
//! for two seconds, prints the first SHOW records (default 5) with their keys, and the count.
//! Used by `cargo xtask demo` to show what arrived.
//!
//! `kafka-read BOOTSTRAP TOPIC --until N`: reads the topic from the beginning as records arrive
//! and prints `count C` whenever the count changed (at most every 100 ms; `count 0` once the
//! partitions are assigned), exiting when C reaches N. Used by `cargo xtask bench --input
//! file`, whose contenders tail files and never exit on their own: the run ends when the topic
//! holds every line. It never gives up by itself; the caller decides when a count has stalled.

use std::io::Write as _;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(bootstrap), Some(topic)) = (args.first(), args.get(1)) else {
        eprintln!("usage: kafka-read BOOTSTRAP_SERVERS TOPIC [SHOW | --until N]");
        std::process::exit(2);
    };
    if args.get(2).map(String::as_str) == Some("--until") {
        let Some(target) = args.get(3).and_then(|n| n.parse::<u64>().ok()) else {
            eprintln!("kafka-read: --until takes a record count");
            std::process::exit(2);
        };
        if let Err(e) = follow(bootstrap, topic, target) {
            eprintln!("kafka-read: following {topic}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let show: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let records = ferry_e2e::read_topic(bootstrap, topic, 1, Duration::from_secs(2));
    for record in records.iter().take(show) {
        let key = record
            .key
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        println!(
            "  [{topic} p{} key={key}] {}",
            record.partition,
            String::from_utf8_lossy(&record.payload)
        );
    }
    println!("  {topic}: {} records", records.len());
}

/// Counts the topic's records as they arrive until there are `target` of them. Records are
/// counted by reading them, since tansu's high watermarks are not record counts (BROKER.md).
fn follow(bootstrap: &str, topic: &str, target: u64) -> Result<(), Box<dyn std::error::Error>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("ferry-bench-follow-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // tansu 0.6.0 holds every fetch for the full wait even when it has records to return
        // (checked: 200,000 records took 2.4 s to read with the default 500 ms, 0.24 s with
        // 10 ms), which would make the count lag the topic by up to half a second.
        .set("fetch.wait.max.ms", "10")
        .set("max.partition.fetch.bytes", "8388608")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut assignment = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            assignment.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    if assignment.count() == 0 {
        return Err(format!("topic {topic} has no partitions").into());
    }
    consumer.assign(&assignment)?;
    let mut stdout = std::io::stdout();
    let mut count: u64 = 0;
    writeln!(stdout, "count 0")?;
    stdout.flush()?;
    let mut printed = 0;
    let mut last_print = Instant::now();
    while count < target {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(_)) => count += 1,
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
        // A line per record would cost the machine the contenders are measured on.
        if count != printed && (count >= target || last_print.elapsed() >= Duration::from_millis(100)) {
            // A closed pipe means the bench gave up on this run: nothing left to report to.
            writeln!(stdout, "count {count}")?;
            stdout.flush()?;
            printed = count;
            last_print = Instant::now();
        }
    }
    Ok(())
}
