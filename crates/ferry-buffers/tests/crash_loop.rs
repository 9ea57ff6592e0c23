//! `kill -9` a disk-buffer writer at random moments, reopen, and check that the recovered
//! buffer holds every event whose durability was acknowledged (and nothing out of order).
//!
//! The writer runs in a child process: this same test binary, re-run with
//! `FERRY_CRASH_DIR` set, executes the ignored `crash_child` test.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::{BatchNotifier, BufferConfig, BufferType, DeliveryStatus, LogEvent, SinkMetrics, Value};
use futures::StreamExt;

fn config() -> BufferConfig {
    BufferConfig {
        kind: BufferType::Disk,
        max_size: Some(1 << 30),
        sync_interval_ms: 20,
        ..BufferConfig::default()
    }
}

fn id(e: &LogEvent) -> i64 {
    match e.fields().get("id") {
        Some(Value::Integer(i)) => *i,
        _ => -1,
    }
}

/// Writes batches of 100 events with increasing ids, printing `durable N` once every event up
/// to N is acknowledged, until killed.
#[test]
#[ignore = "run by crash_loop in a child process"]
fn crash_child() {
    let Some(dir) = std::env::var_os("FERRY_CRASH_DIR") else {
        return;
    };
    let start: i64 = std::env::var("FERRY_CRASH_START").unwrap().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let (writer, _reader) = ferry_buffers::build(
            &config(),
            std::path::Path::new(&dir),
            Arc::new(SinkMetrics::default()),
        )
        .unwrap();
        let mut next = start;
        loop {
            let (notifier, status) = BatchNotifier::new_with_receiver();
            let batch: Vec<LogEvent> = (next..next + 100)
                .map(|i| {
                    let mut e = LogEvent::from_message(format!("crash test event {i}"));
                    e.fields_mut().insert("id", Value::Integer(i));
                    e.attach_notifier(&notifier);
                    e
                })
                .collect();
            drop(notifier);
            writer.write(batch).await.unwrap();
            next += 100;
            assert_eq!(status.await, DeliveryStatus::Delivered);
            println!("durable {}", next - 1);
        }
    });
}

/// Every id stored in the buffer at `dir`, in order.
fn stored_ids(dir: &std::path::Path) -> Vec<i64> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (writer, mut reader) =
            ferry_buffers::build(&config(), dir, Arc::new(SinkMetrics::default())).unwrap();
        drop(writer);
        let mut ids = Vec::new();
        while let Some(batch) = tokio::time::timeout(Duration::from_secs(10), reader.next())
            .await
            .unwrap()
        {
            ids.extend(batch.iter().map(id));
            // Dropped unsettled: the events stay on disk for the next round.
        }
        ids
    })
}

#[test]
fn crash_loop() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acknowledged: i64 = -1;
    let mut next_start = 0;
    for round in 0..6 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("FERRY_CRASH_DIR", dir.path())
            .env("FERRY_CRASH_START", next_start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("durable ") {
                    last = n.trim().parse::<i64>().ok();
                }
            }
            last
        });
        // Kill at a different moment each round, mid-write.
        std::thread::sleep(Duration::from_millis(300 + fastrand::u64(0..700)));
        let _ = Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status();
        let _ = child.wait();
        if let Some(last) = reader.join().unwrap() {
            acknowledged = acknowledged.max(last);
        }
        let ids = stored_ids(dir.path());
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "round {round}: ids out of order"
        );
        let present: std::collections::HashSet<i64> = ids.iter().copied().collect();
        let missing: Vec<i64> = (0..=acknowledged).filter(|i| !present.contains(i)).collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} acknowledged events lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        next_start = ids.last().map_or(0, |last| last + 1).max(acknowledged + 1);
        // Ids the killed writer wrote but never acknowledged may or may not be there; the next
        // round starts after whatever is stored, so ids stay increasing.
    }
    assert!(acknowledged > 0, "the child acknowledged something");
}
