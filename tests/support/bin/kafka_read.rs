//! `kafka-read BOOTSTRAP TOPIC [SHOW]`: reads a topic from the beginning until it has been idle
//! for two seconds, prints the first SHOW records (default 5) with their keys, and the count.
//! Used by `cargo xtask demo` to show what arrived.

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(bootstrap), Some(topic)) = (args.first(), args.get(1)) else {
        eprintln!("usage: kafka-read BOOTSTRAP_SERVERS TOPIC [SHOW]");
        std::process::exit(2);
    };
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
