//! The disk buffer end to end: the real binary, the real broker, `kill -9`.

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use ferry_e2e::{
    ConfigDir, Storage, TestKafka, capture_stderr, read_topic, signal, stderr, summary_counter, wait_for_log,
    wait_with_limit,
};

const EVENTS: usize = 200_000;

#[test]
fn two_hundred_thousand_events_survive_kill_9_while_the_broker_is_down() {
    let storage = tempfile::tempdir().unwrap();
    let mut kafka = TestKafka::local(Storage::Sqlite(storage.path().to_owned()));
    let topic = "disk-buffered";
    kafka.create_topics(&[topic]);
    let brokers = kafka.bootstrap_servers().to_owned();
    kafka.broker.as_mut().unwrap().stop();

    let config = ConfigDir::stdin_to_kafka(
        &brokers,
        topic,
        "healthcheck = false\nbuffer.type = \"disk\"\nbuffer.max_size = 1073741824",
    );

    // Run 1: the broker is down; everything goes to the disk buffer; then kill -9.
    let mut first = config.spawn(&["--summary-interval", "0.5"]);
    let mut stdin = first.stdin.take().unwrap();
    let input: String = (0..EVENTS).map(|i| format!("disk event {i}\n")).collect();
    stdin.write_all(input.as_bytes()).unwrap();
    // stdin stays open: ferry is still running, not draining, when it is killed.
    let log = capture_stderr(&mut first);
    let all_buffered = wait_for_log(&log, &format!("received={EVENTS}"), Duration::from_secs(60));
    assert!(
        all_buffered,
        "ferry did not buffer every event: {}",
        log.lock().unwrap()
    );
    // One sync interval (100 ms) makes the last write durable.
    std::thread::sleep(Duration::from_millis(500));
    signal(first.id(), "KILL");
    let _ = first.wait();
    drop(stdin);

    // Run 2: the broker is back; ferry starts with no new input and delivers the backlog.
    kafka.broker.as_mut().unwrap().restart().unwrap();
    let second = config
        .ferry(&["--shutdown-timeout", "120"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_with_limit(second, Duration::from_secs(180));
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("holds events from an earlier run"), "{err}");
    assert_eq!(
        summary_counter(&err, "kafka", "buffered"),
        Some(0),
        "the backlog drained: {err}"
    );

    let records = read_topic(&brokers, topic, EVENTS, Duration::from_secs(3));
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in &records {
        *counts.entry(r.payload_str()).or_default() += 1;
    }
    let missing = (0..EVENTS)
        .filter(|i| !counts.contains_key(format!("disk event {i}").as_str()))
        .count();
    let duplicates = records.len() - counts.len();
    println!(
        "delivered {} records: {} distinct events, {duplicates} duplicates",
        records.len(),
        counts.len()
    );
    assert_eq!(missing, 0, "events lost");
    assert_eq!(counts.len(), EVENTS);
}

#[test]
fn disk_buffered_events_stay_on_disk_at_the_shutdown_deadline_and_exit_is_0() {
    let port = ferry_tansu::free_port().unwrap();
    let config = ConfigDir::stdin_to_kafka(
        &format!("127.0.0.1:{port}"),
        "t",
        "healthcheck = false\nbuffer.type = \"disk\"\nbuffer.max_size = 10485760",
    );
    let output = ferry_e2e::run_with_input(
        config.ferry(&["--shutdown-timeout", "2"]),
        b"a\nb\nc\n",
        Duration::from_secs(30),
    );
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("stay in the disk buffer"), "{err}");
    // Counted once, though the sink holds them in flight as well.
    assert!(err.contains("unconfirmed=3"), "{err}");

    let data_dir = config.dir.path().join("data");
    let inspect = std::process::Command::new(ferry_e2e::ferry_bin())
        .args(["buffer", "inspect", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        inspect.status.success() && text.contains("sink `kafka`: 3 events"),
        "{text}"
    );
    let check = std::process::Command::new(ferry_e2e::ferry_bin())
        .args(["buffer", "check", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("every record's checksum is valid"));
}
