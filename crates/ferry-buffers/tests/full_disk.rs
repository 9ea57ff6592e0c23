//! A disk buffer on a real filesystem that fills up: a small tmpfs this test mounts (skipped,
//! with a message saying so, where mounting is not permitted). Fill it with the sink away,
//! stop, start again on the full disk, drain, and check that every acknowledged event is read
//! back, that the buffer kept counting, and that the error lines stayed rate-limited.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferry_core::{BatchNotifier, BufferConfig, BufferType, DeliveryStatus, LogEvent, SinkMetrics, Value};
use futures::StreamExt;

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path, size: &str) -> Result<Mount, String> {
    let output = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(Mount(at.to_owned()))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// Counts the ERROR lines logged (the only test in this binary, so a global subscriber).
struct ErrorLines;

impl tracing::Subscriber for ErrorLines {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            ERRORS.fetch_add(1, Ordering::Relaxed);
        }
        if std::env::var_os("FERRY_TEST_LOG").is_some() {
            eprintln!("{} {:?}", event.metadata().level(), event);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

static ERRORS: AtomicU64 = AtomicU64::new(0);

fn config() -> BufferConfig {
    BufferConfig {
        kind: BufferType::Disk,
        // Far more than the volume: the disk fills before the buffer does.
        max_size: Some(1 << 30),
        sync_interval_ms: 20,
        ..BufferConfig::default()
    }
}

fn id(e: &LogEvent) -> u64 {
    match e.fields().get("id") {
        Some(Value::Integer(i)) => *i as u64,
        _ => panic!("no id"),
    }
}

const BATCH: u64 = 500;

/// Events with these ids (and `text`), tracked by one notifier, and its verdict.
fn tracked(ids: std::ops::Range<u64>, text: &str) -> (Vec<LogEvent>, ferry_core::BatchStatusReceiver) {
    let (notifier, status) = BatchNotifier::new_with_receiver();
    let events = ids
        .map(|i| {
            let mut e = LogEvent::from_message(format!("event {i} {text}"));
            e.fields_mut().insert("id", Value::Integer(i as i64));
            e.attach_notifier(&notifier);
            e
        })
        .collect();
    (events, status)
}

#[test]
fn a_full_tmpfs_loses_nothing_acknowledged_and_the_buffer_opens_and_drains() {
    let root = tempfile::tempdir().unwrap();
    let _mount = match mount_tmpfs(root.path(), "12m") {
        Ok(mount) => mount,
        Err(why) => {
            println!("SKIPPED a_full_tmpfs_loses_nothing_acknowledged: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    tracing::subscriber::set_global_default(ErrorLines).unwrap();
    let dir = root.path().join("buffer");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let padding = "x".repeat(200);
    // Run 1: the sink is away; write until the disk is full and input stops.
    let metrics = Arc::new(SinkMetrics::default());
    let acknowledged = rt.block_on(async {
        let (writer, reader) = ferry_buffers::build(&config(), &dir, metrics.clone()).unwrap();
        let acknowledged = Arc::new(AtomicU64::new(0));
        let mut next = 0u64;
        let mut waiting = Vec::new();
        loop {
            let (batch, status) = tracked(next..next + BATCH, &padding);
            if tokio::time::timeout(Duration::from_secs(3), writer.write(batch))
                .await
                .is_err()
            {
                break; // backpressure: the disk is full
            }
            let end = next + BATCH;
            let acked = acknowledged.clone();
            waiting.push(tokio::spawn(async move {
                if status.await == DeliveryStatus::Delivered {
                    acked.fetch_max(end, Ordering::Relaxed);
                }
            }));
            next = end;
            assert!(next < 10_000_000, "the disk never filled");
        }
        let errors = metrics.buffer_errors.load(Ordering::Relaxed);
        println!(
            "run 1: {next} events sent, buffer_errors = {errors}, error lines = {}",
            ERRORS.load(Ordering::Relaxed)
        );
        assert!(errors > 0, "the full disk was counted");
        drop((writer, reader));
        // Every event offered is counted once: written (received), or given up at shutdown
        // because the disk would not take it (dropped, its source told so).
        let counted = || metrics.received.load(Ordering::Relaxed) + metrics.dropped.load(Ordering::Relaxed);
        for _ in 0..100 {
            if counted() == next {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(counted(), next, "received + dropped = offered");
        tokio::time::sleep(Duration::from_millis(500)).await;
        for w in waiting {
            let _ = tokio::time::timeout(Duration::from_secs(1), w).await;
        }
        acknowledged.load(Ordering::Relaxed)
    });
    println!("run 1: acknowledged up to {acknowledged}");
    assert!(acknowledged > 0);
    // Run 2: start again on the full disk, and drain.
    let metrics = Arc::new(SinkMetrics::default());
    let ids = rt.block_on(async {
        let mut opened = None;
        for _ in 0..100 {
            match ferry_buffers::build(&config(), &dir, metrics.clone()) {
                Ok(buffer) => {
                    opened = Some(buffer);
                    break;
                }
                Err(ferry_buffers::BufferError::Locked { .. }) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the buffer on a full disk does not open: {e}"),
            }
        }
        let (writer, mut reader) = opened.expect("the first run let go");
        // The sink is back: drain, and once there is room again new input is taken.
        let (more, status) = tracked(10_000_000..10_000_000 + BATCH, "after the drain");
        writer.write(more).await.unwrap();
        drop(writer);
        if std::env::var_os("FERRY_TEST_LOG").is_some() {
            let d = dir.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(8));
                let _ = Command::new("ls").arg("-laR").arg(&d).status();
                let _ = Command::new("df").arg(d.parent().unwrap()).status();
            });
        }
        let mut ids = Vec::new();
        while let Some(batch) = tokio::time::timeout(Duration::from_secs(20), reader.next())
            .await
            .expect("the backlog drains")
        {
            for e in batch {
                ids.push(id(&e));
                e.settle(DeliveryStatus::Delivered);
            }
        }
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), status)
                .await
                .unwrap(),
            DeliveryStatus::Delivered,
            "new input is acknowledged once the drain made room"
        );
        assert_eq!(metrics.buffered.load(Ordering::Relaxed), 0);
        ids
    });
    println!("run 2: read back {} events", ids.len());
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order, once");
    let missing = (0..acknowledged)
        .filter(|i| ids.binary_search(i).is_err())
        .count();
    assert_eq!(missing, 0, "acknowledged events lost");
    let after: Vec<u64> = ids.iter().copied().filter(|&i| i >= 10_000_000).collect();
    assert_eq!(after, (10_000_000..10_000_000 + BATCH).collect::<Vec<_>>());
    let lines = ERRORS.load(Ordering::Relaxed);
    assert!(lines <= 10, "{lines} error lines: not rate-limited");
}
