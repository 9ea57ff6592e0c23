//! Tests of the queue and its files together.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::DateTime;
use ferry_core::{BatchNotifier, DeliveryStatus, EventFinalizer};

use crate::*;

fn letter(n: usize, payload_len: usize) -> DeadLetter {
    DeadLetter {
        time: DateTime::from_timestamp_millis(1_800_000_000_000 + n as i64).unwrap(),
        sink: "kafka".into(),
        topic: format!("topic-{n}"),
        reason: DeadLetterReason::UnknownTopic,
        cause: format!("letter {n}"),
        key: Some(vec![0xff, n as u8]),
        payload: vec![b'x'; payload_len],
        headers: vec![("n".into(), Some(n.to_string().into_bytes()))],
        timestamp_ms: Some(n as i64),
    }
}

fn all_letters(dir: &Path) -> Vec<DeadLetter> {
    list_files(dir)
        .unwrap()
        .iter()
        .flat_map(|f| read_file(&f.path).unwrap())
        .map(Result::unwrap)
        .collect()
}

fn file_names(dir: &Path) -> Vec<String> {
    list_files(dir)
        .unwrap()
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Opens the directory again once the previous queue's thread has let go of the lock.
fn reopen(dir: &Path, max_file_bytes: u64) -> DeadLetterQueue {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match DeadLetterQueue::open(dir, "kafka", max_file_bytes) {
            Err(DeadLetterError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            other => return other.unwrap(),
        }
    }
}

#[tokio::test]
async fn letters_are_written_in_order_and_rejected_only_once_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DeadLetterQueue::open(dir.path(), "kafka", DEFAULT_MAX_FILE_BYTES).unwrap();
    assert_eq!(queue.dir(), dir.path());
    assert!(
        file_names(dir.path()).is_empty(),
        "no file before the first letter"
    );
    let mut statuses = Vec::new();
    for n in 0..50 {
        let (notifier, status) = BatchNotifier::new_with_receiver();
        queue.send(letter(n, 10), EventFinalizer::new(notifier)).await;
        statuses.push(status);
    }
    for (n, status) in statuses.into_iter().enumerate() {
        assert_eq!(status.await, DeliveryStatus::Rejected);
        // The verdict arrived, so the letter must already be readable from disk.
        let on_disk = all_letters(dir.path());
        assert!(on_disk.len() > n, "letter {n} settled before it was written");
    }
    assert!(queue.flush(Duration::from_secs(5)).await);
    assert_eq!(queue.written(), 50);
    assert_eq!(queue.pending(), 0);
    assert_eq!(
        all_letters(dir.path()),
        (0..50).map(|n| letter(n, 10)).collect::<Vec<_>>()
    );
    assert_eq!(file_names(dir.path()), ["dead-letters-000001.jsonl"]);
}

#[tokio::test]
async fn files_rotate_past_max_file_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DeadLetterQueue::open(dir.path(), "kafka", MIN_FILE_BYTES).unwrap();
    // About 1.2 KiB per line: three fit in 4 KiB.
    for n in 0..20 {
        queue.send(letter(n, 1000), EventFinalizer::default()).await;
        if n % 7 == 0 {
            // Letters in separate batches as well as together.
            assert!(queue.flush(Duration::from_secs(5)).await);
        }
    }
    assert!(queue.flush(Duration::from_secs(5)).await);
    let files = list_files(dir.path()).unwrap();
    assert!(files.len() >= 6, "{} files", files.len());
    for file in &files {
        assert!(file.bytes <= MIN_FILE_BYTES, "{file:?}");
        assert!(file.bytes > 0, "{file:?}");
    }
    assert_eq!(
        all_letters(dir.path()),
        (0..20).map(|n| letter(n, 1000)).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_line_larger_than_max_file_bytes_gets_a_file_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DeadLetterQueue::open(dir.path(), "kafka", MIN_FILE_BYTES).unwrap();
    queue.send(letter(0, 10), EventFinalizer::default()).await;
    queue.send(letter(1, 10_000), EventFinalizer::default()).await;
    queue.send(letter(2, 10), EventFinalizer::default()).await;
    assert!(queue.flush(Duration::from_secs(5)).await);
    assert_eq!(file_names(dir.path()).len(), 3);
    assert_eq!(all_letters(dir.path()).len(), 3);
}

#[tokio::test]
async fn each_run_starts_a_new_file_after_the_highest() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DeadLetterQueue::open(dir.path(), "kafka", DEFAULT_MAX_FILE_BYTES).unwrap();
    queue.send(letter(0, 10), EventFinalizer::default()).await;
    assert!(queue.flush(Duration::from_secs(5)).await);
    drop(queue);
    // A crashed run that left a torn line behind, with a gap in the numbering.
    let mut torn = letter(1, 10).to_json_line();
    torn.truncate(torn.len() / 2);
    std::fs::write(dir.path().join("dead-letters-000005.jsonl"), &torn).unwrap();

    let queue = reopen(dir.path(), DEFAULT_MAX_FILE_BYTES);
    queue.send(letter(2, 10), EventFinalizer::default()).await;
    assert!(queue.flush(Duration::from_secs(5)).await);
    assert_eq!(
        file_names(dir.path()),
        [
            "dead-letters-000001.jsonl",
            "dead-letters-000005.jsonl",
            "dead-letters-000006.jsonl"
        ]
    );
    let files = list_files(dir.path()).unwrap();
    assert_eq!(
        std::fs::read(&files[1].path).unwrap(),
        torn,
        "the torn file is left as it was"
    );
    let last = read_file(&files[2].path).unwrap();
    assert_eq!(last, vec![Ok(letter(2, 10))]);
    let torn_read = read_file(&files[1].path).unwrap();
    assert!(matches!(&torn_read[..], [Err(LineError { line: 1, .. })]));
}

#[tokio::test]
async fn a_second_queue_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DeadLetterQueue::open(dir.path(), "kafka", DEFAULT_MAX_FILE_BYTES).unwrap();
    match DeadLetterQueue::open(dir.path(), "kafka", DEFAULT_MAX_FILE_BYTES) {
        Err(DeadLetterError::Locked { dir: locked }) => assert_eq!(locked, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(matches!(
        lock_dir(dir.path()),
        Err(DeadLetterError::Locked { .. })
    ));
    drop(queue);
    // The thread lets go of the lock once it has finished.
    drop(reopen(dir.path(), DEFAULT_MAX_FILE_BYTES));
}

#[tokio::test]
async fn open_creates_nested_directories() {
    let dir = tempfile::tempdir().unwrap();
    let nested = default_dir(dir.path(), "kafka");
    let queue = DeadLetterQueue::open(&nested, "kafka", DEFAULT_MAX_FILE_BYTES).unwrap();
    queue.send(letter(0, 1), EventFinalizer::default()).await;
    assert!(queue.flush(Duration::from_secs(5)).await);
    assert_eq!(
        sink_dirs(&root_dir(dir.path())).unwrap(),
        vec![("kafka".to_owned(), nested.clone())]
    );
    assert_eq!(summarize(&nested).unwrap().letters, 1);
}

#[test]
fn blocking_send_works_outside_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DeadLetterQueue::open(dir.path(), "kafka", DEFAULT_MAX_FILE_BYTES).unwrap();
    let (notifier, status) = BatchNotifier::new_with_receiver();
    let sender = queue.clone();
    std::thread::spawn(move || {
        for n in 0..10 {
            sender.blocking_send(letter(n, 5), EventFinalizer::new(notifier.clone()));
        }
    })
    .join()
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(status), DeliveryStatus::Rejected);
    assert!(rt.block_on(queue.flush(Duration::from_secs(5))));
    assert_eq!(queue.written(), 10);
}

#[tokio::test]
async fn a_failing_disk_keeps_the_letter_unsettled_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let sink_dir = dir.path().join("kafka");
    let queue = DeadLetterQueue::open(&sink_dir, "kafka", DEFAULT_MAX_FILE_BYTES).unwrap();
    // The directory vanishes under the writer: creating the file fails until it is back.
    std::fs::remove_dir_all(&sink_dir).unwrap();
    let (notifier, mut status) = BatchNotifier::new_with_receiver();
    queue.send(letter(0, 10), EventFinalizer::new(notifier)).await;

    assert!(
        !queue.flush(Duration::from_millis(300)).await,
        "nothing can be durable yet"
    );
    assert_eq!(queue.pending(), 1);
    assert_eq!(queue.written(), 0);
    assert!(
        tokio::time::timeout(Duration::from_millis(10), &mut status)
            .await
            .is_err(),
        "settled before the letter was written"
    );

    std::fs::create_dir(&sink_dir).unwrap();
    let settled = tokio::time::timeout(Duration::from_secs(10), status).await;
    assert_eq!(settled.unwrap(), DeliveryStatus::Rejected);
    assert!(queue.flush(Duration::from_secs(5)).await);
    assert_eq!(queue.written(), 1);
    assert_eq!(queue.pending(), 0);
    assert_eq!(all_letters(&sink_dir), vec![letter(0, 10)]);
}

#[tokio::test]
async fn flush_on_an_idle_queue_returns_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let queue = DeadLetterQueue::open(dir.path(), "kafka", DEFAULT_MAX_FILE_BYTES).unwrap();
    assert!(queue.flush(Duration::from_secs(5)).await);
    assert!(file_names(dir.path()).is_empty());
}

#[tokio::test]
async fn a_send_dropped_while_waiting_for_room_is_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let sink_dir = dir.path().join("kafka");
    let queue = DeadLetterQueue::open(&sink_dir, "kafka", DEFAULT_MAX_FILE_BYTES).unwrap();
    // Stall the writer so the queue fills up.
    std::fs::remove_dir_all(&sink_dir).unwrap();
    // The writer holds at most one batch (up to 4096 letters) besides the queue.
    for n in 0..3 * QUEUE_CAPACITY {
        if tokio::time::timeout(
            Duration::from_millis(50),
            queue.send(letter(n, 0), EventFinalizer::default()),
        )
        .await
        .is_err()
        {
            // Queue full: this send was abandoned.
            let stalled = queue.pending();
            assert_eq!(stalled, n as u64, "the abandoned letter is not counted");
            std::fs::create_dir(&sink_dir).unwrap();
            assert!(queue.flush(Duration::from_secs(20)).await);
            assert_eq!(queue.pending(), 0);
            assert_eq!(queue.written(), stalled);
            return;
        }
    }
    panic!("the queue never filled");
}
