use ferry_core::{BatchNotifier, BatchStatusReceiver, Value, WhenFull};
use futures::StreamExt;

use super::*;

pub(super) fn config(max_size: u64, when_full: WhenFull) -> BufferConfig {
    BufferConfig {
        kind: ferry_core::BufferType::Disk,
        max_size: Some(max_size),
        when_full,
        sync_interval_ms: 5,
        ..BufferConfig::default()
    }
}

/// Opens a buffer whose counters nobody reads.
fn open_buffer(dir: &Path, max_size: u64, when_full: WhenFull) -> (DiskWriter, DiskReader) {
    open(
        dir,
        &config(max_size, when_full),
        Arc::new(SinkMetrics::default()),
    )
    .unwrap()
}

/// Every id left in the buffer of a reader whose writer is gone.
pub(super) async fn remaining_ids(reader: &mut DiskReader) -> Vec<u64> {
    let mut ids = Vec::new();
    while let Some(batch) = tokio::time::timeout(Duration::from_secs(5), reader.next())
        .await
        .unwrap()
    {
        ids.extend(batch.iter().map(id));
    }
    ids
}

pub(super) fn tracked(ids: std::ops::Range<u64>) -> (Vec<LogEvent>, BatchStatusReceiver) {
    let (notifier, status) = BatchNotifier::new_with_receiver();
    let events = ids
        .map(|i| {
            let mut e = LogEvent::from_message(format!("event {i}"));
            e.fields_mut().insert("id", Value::Integer(i as i64));
            e.attach_notifier(&notifier);
            e
        })
        .collect();
    (events, status)
}

/// Writes one batch per range and waits until each is acknowledged as durable.
pub(super) async fn write_durably(
    writer: &DiskWriter,
    ranges: impl IntoIterator<Item = std::ops::Range<u64>>,
) {
    for range in ranges {
        let (events, status) = tracked(range);
        writer.write(events).await.unwrap();
        assert_eq!(status.await, DeliveryStatus::Delivered);
    }
}

pub(super) fn id(e: &LogEvent) -> u64 {
    match e.fields().get("id") {
        Some(Value::Integer(i)) => *i as u64,
        _ => panic!("no id"),
    }
}

pub(super) async fn next(reader: &mut DiskReader) -> Vec<LogEvent> {
    tokio::time::timeout(Duration::from_secs(5), reader.next())
        .await
        .expect("a batch within 5 s")
        .expect("the stream is open")
}

#[tokio::test]
async fn source_hears_delivered_after_fsync_and_the_buffer_owns_events_until_acked() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(SinkMetrics::default());
    let (writer, mut reader) = open(dir.path(), &config(1 << 30, WhenFull::Block), metrics.clone()).unwrap();
    let (events, status) = tracked(0..10);
    writer.write(events).await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), status)
            .await
            .unwrap(),
        DeliveryStatus::Delivered
    );
    let batch = next(&mut reader).await;
    assert_eq!(
        batch.iter().map(id).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    // Taken by the sink: no longer waiting (as for a memory buffer), but still on disk.
    assert_eq!(metrics.buffered.load(Ordering::Relaxed), 0);
    assert_eq!(reader.shared.events.load(Ordering::Acquire), 10);
    for e in batch {
        e.settle(DeliveryStatus::Delivered);
    }
    // Deleted by the buffer's own thread, a moment later.
    wait_for(|| reader.shared.events.load(Ordering::Acquire) == 0).await;
    assert_eq!(
        reader.shared.store.ledger_totals().unwrap(),
        (0, Totals::default())
    );
}

#[tokio::test]
async fn bytes_and_the_oldest_waiting_record_are_measured_until_taken_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(SinkMetrics::default());
    let (writer, mut reader) = open(dir.path(), &config(1 << 30, WhenFull::Block), metrics.clone()).unwrap();
    let (events, _status) = tracked(0..10);
    writer.write(events).await.unwrap();
    wait_for(|| metrics.buffered.load(Ordering::Relaxed) == 10).await;
    let stored = metrics.buffered_bytes.load(Ordering::Relaxed);
    assert_eq!(stored, reader.shared.bytes.load(Ordering::Acquire));
    assert!(stored > 0);
    let written_at = metrics.oldest_enqueued_us.load(Ordering::Relaxed);
    assert!(written_at > 0 && written_at <= ferry_core::monotonic_us());
    let batch = next(&mut reader).await;
    // Taken: nothing waits any more, though it stays on disk (and in the bytes) until settled.
    assert_eq!(metrics.oldest_enqueued_us.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.buffered_bytes.load(Ordering::Relaxed), stored);
    for e in batch {
        e.settle(DeliveryStatus::Delivered);
    }
    wait_for(|| metrics.buffered_bytes.load(Ordering::Relaxed) == 0).await;
}

#[tokio::test]
async fn records_of_an_earlier_run_count_as_waiting_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (writer, reader) = open_buffer(dir.path(), 1 << 30, WhenFull::Block);
        write_durably(&writer, [0..3, 3..5]).await;
        drop(writer);
        drop(reader);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = Arc::new(SinkMetrics::default());
    let (_writer, mut reader) = open(dir.path(), &config(1 << 30, WhenFull::Block), metrics.clone()).unwrap();
    assert!(metrics.oldest_enqueued_us.load(Ordering::Relaxed) > 0);
    assert!(metrics.buffered_bytes.load(Ordering::Relaxed) > 0);
    let mut taken = next(&mut reader).await.len();
    if taken < 5 {
        // The first of the two records: the second still waits.
        assert!(metrics.oldest_enqueued_us.load(Ordering::Relaxed) > 0);
        taken += next(&mut reader).await.len();
    }
    assert_eq!(taken, 5);
    assert_eq!(metrics.oldest_enqueued_us.load(Ordering::Relaxed), 0);
}

/// Reads `n` events and settles each `Delivered`, as a sink whose destination confirmed them.
async fn settle_delivered(reader: &mut DiskReader, n: usize) {
    let mut settled = 0;
    while settled < n {
        for e in next(reader).await {
            settled += 1;
            e.settle(DeliveryStatus::Delivered);
        }
    }
}

/// Waits up to 5 s for `done`.
pub(super) async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 5 s");
}

#[tokio::test]
async fn a_drained_buffer_reports_no_backlog_in_inspect_or_at_the_next_start() {
    // It used to: the counters were persisted only by a group commit, so the deletions after
    // the last one were never counted (inspect and every later start showed 42,599 events
    // that `ferry buffer check` could not find).
    let dir = tempfile::tempdir().unwrap();
    {
        let (writer, mut reader) = open_buffer(dir.path(), 1 << 30, WhenFull::Block);
        write_durably(&writer, [0..500, 500..1000, 1000..1500]).await;
        settle_delivered(&mut reader, 1500).await;
        wait_for(|| reader.shared.events.load(Ordering::Acquire) == 0).await;
    }
    let store = reopen_store(dir.path(), MIN_SEGMENT_BYTES).await;
    assert_eq!(store.persisted_totals(), Totals::default());
    drop(store);
    let report = inspect(dir.path(), false).unwrap();
    assert_eq!(
        (report.records, report.events, report.bytes),
        (0, 0, 0),
        "{report:?}"
    );
    let metrics = Arc::new(SinkMetrics::default());
    let (_writer, _reader) = open(dir.path(), &config(1 << 30, WhenFull::Block), metrics.clone()).unwrap();
    assert_eq!(metrics.buffered.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn counters_that_disagree_with_the_ledger_are_corrected_when_the_buffer_opens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (writer, _reader) = open_buffer(dir.path(), 1 << 30, WhenFull::Block);
        write_durably(&writer, [0..10, 10..30]).await;
    }
    {
        // What an unclean stop can leave: counters from before the last changes.
        let store = reopen_store(dir.path(), MIN_SEGMENT_BYTES).await;
        store
            .write_totals(Totals {
                bytes: 1,
                events: 42_599,
            })
            .unwrap();
        store.sync(store.persisted_totals(), 30).unwrap();
    }
    assert_eq!(inspect(dir.path(), false).unwrap().events, 30);
    let metrics = Arc::new(SinkMetrics::default());
    let (writer, mut reader) = open(dir.path(), &config(1 << 30, WhenFull::Block), metrics.clone()).unwrap();
    assert_eq!(metrics.buffered.load(Ordering::Relaxed), 30);
    assert_eq!(reader.shared.events.load(Ordering::Acquire), 30);
    drop(writer);
    // Settling more than the persisted counters held never wraps them below zero.
    settle_delivered(&mut reader, 30).await;
    wait_for(|| reader.shared.events.load(Ordering::Acquire) == 0).await;
    assert_eq!(reader.shared.bytes.load(Ordering::Acquire), 0);
    assert_eq!(metrics.buffered.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn unacknowledged_records_survive_a_restart_and_acknowledged_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (writer, mut reader) = open_buffer(dir.path(), 1 << 30, WhenFull::Block);
        write_durably(&writer, [0..5, 5..8, 8..12]).await;
        drop(writer);
        let first = next(&mut reader).await;
        for e in first {
            e.settle(DeliveryStatus::Delivered);
        }
        // The second batch is dropped unsettled (a crash between read and delivery).
        drop(next(&mut reader).await);
        drop(reader);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = Arc::new(SinkMetrics::default());
    let (writer, mut reader) = open(dir.path(), &config(1 << 30, WhenFull::Block), metrics.clone()).unwrap();
    drop(writer);
    let ids = remaining_ids(&mut reader).await;
    assert_eq!(ids, (5..12).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_second_process_gets_a_clear_lock_error() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open_buffer(dir.path(), 1 << 30, WhenFull::Block);
    let err = open(
        dir.path(),
        &config(1 << 30, WhenFull::Block),
        Arc::new(SinkMetrics::default()),
    )
    .unwrap_err();
    assert!(matches!(err, BufferError::Locked { .. }));
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn drop_newest_at_max_size_counts_and_reports_the_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(SinkMetrics::default());
    // Each 300-event record is about 10 KiB: the second one does not fit in 12 KiB.
    let (writer, _reader) = open(
        dir.path(),
        &config(12 * 1024, WhenFull::DropNewest),
        metrics.clone(),
    )
    .unwrap();
    let (first, first_status) = tracked(0..300);
    writer.write(first).await.unwrap();
    assert_eq!(first_status.await, DeliveryStatus::Delivered);
    let (second, second_status) = tracked(300..600);
    writer.write(second).await.unwrap();
    assert_eq!(second_status.await, DeliveryStatus::Errored);
    assert_eq!(metrics.dropped.load(Ordering::Relaxed), 300);
}

/// Writes `ids` into a full buffer and checks that their acknowledgement waits for room.
async fn write_until_blocked(
    writer: &DiskWriter,
    ids: std::ops::Range<u64>,
) -> std::pin::Pin<Box<BatchStatusReceiver>> {
    let (events, status) = tracked(ids);
    writer.write(events).await.unwrap();
    let mut status = Box::pin(status);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut status)
            .await
            .is_err(),
        "blocked while full"
    );
    status
}

#[tokio::test]
async fn a_blocked_writer_resumes_when_the_sink_frees_space() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut reader) = open_buffer(dir.path(), 12 * 1024, WhenFull::Block);
    let (first, _) = tracked(0..300);
    writer.write(first).await.unwrap();
    let second_status = write_until_blocked(&writer, 300..600).await;
    // The first batch may have been stored as several records: acknowledge all of it.
    let mut freed = 0;
    while freed < 300 {
        for e in next(&mut reader).await {
            freed += 1;
            e.settle(DeliveryStatus::Delivered);
        }
    }
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), second_status)
            .await
            .unwrap(),
        DeliveryStatus::Delivered
    );
    let mut second = 0;
    while second < 300 {
        second += next(&mut reader).await.len();
    }
    assert_eq!(second, 300);
}

#[tokio::test]
async fn a_blocked_writer_lets_go_when_the_sink_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, reader) = open_buffer(dir.path(), 12 * 1024, WhenFull::Block);
    write_durably(&writer, std::iter::once(0..300)).await;
    let second_status = write_until_blocked(&writer, 300..600).await;
    drop(reader);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), second_status)
            .await
            .expect("the blocked batch is settled once the sink is gone"),
        DeliveryStatus::Errored
    );
    // Its threads end and release the buffer, which still holds the first batch.
    drop(writer);
    let mut reopened = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if let Ok(buffer) = open(
            dir.path(),
            &config(12 * 1024, WhenFull::Block),
            Arc::new(SinkMetrics::default()),
        ) {
            reopened = Some(buffer);
            break;
        }
    }
    let (writer, mut reader) = reopened.expect("reopens once the old threads are gone");
    drop(writer);
    assert_eq!(remaining_ids(&mut reader).await, (0..300).collect::<Vec<_>>());
}

#[tokio::test]
async fn big_batches_are_split_into_several_records() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut reader) = open_buffer(dir.path(), 1 << 30, WhenFull::Block);
    let (events, status) = tracked(0..50_000);
    writer.write(events).await.unwrap();
    assert_eq!(status.await, DeliveryStatus::Delivered);
    let mut ids = Vec::new();
    let mut records = 0;
    while ids.len() < 50_000 {
        ids.extend(next(&mut reader).await.iter().map(id));
        records += 1;
    }
    assert_eq!(ids, (0..50_000).collect::<Vec<_>>());
    assert!(records > 1, "a 50,000-event batch is split into several records");
}

#[tokio::test]
async fn a_corrupt_record_is_skipped_reported_and_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (writer, _reader) = open_buffer(dir.path(), 1 << 30, WhenFull::Block);
        write_durably(&writer, [0..3, 3..6, 6..9]).await;
        drop(writer);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    {
        // Flip a byte in the middle record's body (once the tasks let go of the buffer).
        let mut store = None;
        for _ in 0..100 {
            if let Ok(s) = Store::open(dir.path(), MIN_SEGMENT_BYTES, Arc::new(RealFs)) {
                store = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let store = store.expect("the buffer is released");
        let (_, location) = store.next_after(Some(0)).unwrap().unwrap();
        let segment = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(store.segment_path(location.segment))
            .unwrap();
        let last = location.offset + u64::from(location.len) - 1;
        let mut byte = [0u8; 1];
        std::os::unix::fs::FileExt::read_exact_at(&segment, &mut byte, last).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&segment, &[byte[0] ^ 0xff], last).unwrap();
        assert_eq!(corrupt_records(&store), 1);
    }
    let report = inspect(dir.path(), true).unwrap();
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    let metrics = Arc::new(SinkMetrics::default());
    let (writer, mut reader) = open(dir.path(), &config(1 << 30, WhenFull::Block), metrics.clone()).unwrap();
    drop(writer);
    let ids = remaining_ids(&mut reader).await;
    assert_eq!(ids, [0, 1, 2, 6, 7, 8]);
    assert_eq!(metrics.rejected.load(Ordering::Relaxed), 3);
}

/// Opens the store of a buffer whose tasks may still be letting go of it.
async fn reopen_store(dir: &Path, segment_bytes: u64) -> Store {
    for _ in 0..100 {
        if let Ok(store) = Store::open(dir, segment_bytes, Arc::new(RealFs)) {
            return store;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the buffer is not released");
}

#[tokio::test]
async fn a_record_whose_segment_file_is_gone_is_skipped_as_delivered() {
    // The state an unclean stop can leave: a drained segment deleted before the ledger's
    // removal of its records reached the disk.
    let dir = tempfile::tempdir().unwrap();
    {
        let (writer, _reader) = open_buffer(dir.path(), 8 << 20, WhenFull::Block);
        write_durably(&writer, (0..40u64).map(|i| i * 3000..(i + 1) * 3000)).await;
    }
    let first_segment = {
        let store = reopen_store(dir.path(), MIN_SEGMENT_BYTES).await;
        let (_, first) = store.first().unwrap().unwrap();
        let path = store.segment_path(first.segment);
        std::fs::remove_file(&path).unwrap();
        // The records that lay in it, by their first event.
        let mut lost = Vec::new();
        let mut cursor = None;
        while let Some((sequence, location)) = store.next_after(cursor).unwrap() {
            cursor = Some(sequence);
            if location.segment == first.segment {
                lost.push(sequence);
            }
        }
        lost
    };
    assert!(!first_segment.is_empty());
    let metrics = Arc::new(SinkMetrics::default());
    let (writer, mut reader) = open(dir.path(), &config(8 << 20, WhenFull::Block), metrics.clone()).unwrap();
    drop(writer);
    let ids = remaining_ids(&mut reader).await;
    let first_kept = ids[0];
    assert!(first_kept > 0, "the records of the deleted segment are skipped");
    assert_eq!(ids, (first_kept..120_000).collect::<Vec<_>>());
    assert_eq!(
        metrics.rejected.load(Ordering::Relaxed),
        0,
        "delivered, not rejected"
    );
}

#[tokio::test]
async fn a_record_that_keeps_failing_to_read_is_kept_and_delivered_once_it_reads_again() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (writer, _reader) = open_buffer(dir.path(), 1 << 30, WhenFull::Block);
        write_durably(&writer, std::iter::once(0..3)).await;
    }
    let (path, moved) = {
        // A directory where the segment was: opening it works, reading fails (EISDIR), an
        // I/O error that is neither "gone" nor "short".
        let store = reopen_store(dir.path(), MIN_SEGMENT_BYTES).await;
        let (_, first) = store.first().unwrap().unwrap();
        let path = store.segment_path(first.segment);
        let moved = dir.path().join("moved-away");
        std::fs::rename(&path, &moved).unwrap();
        std::fs::create_dir(&path).unwrap();
        (path, moved)
    };
    let metrics = Arc::new(SinkMetrics::default());
    let (writer, mut reader) = open(dir.path(), &config(1 << 30, WhenFull::Block), metrics.clone()).unwrap();
    drop(writer);
    // Far longer than the old limit of a few attempts: still kept, not deleted.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), reader.next())
            .await
            .is_err(),
        "nothing is handed out while the record cannot be read"
    );
    assert!(metrics.buffer_errors.load(Ordering::Relaxed) >= 3);
    assert_eq!(metrics.rejected.load(Ordering::Relaxed), 0);
    // The disk recovers.
    std::fs::remove_dir(&path).unwrap();
    std::fs::rename(&moved, &path).unwrap();
    assert_eq!(remaining_ids(&mut reader).await, vec![0, 1, 2]);
    assert_eq!(metrics.rejected.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn sequence_numbers_do_not_repeat_once_the_newest_records_left_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let record = |sequence: u64| {
        let mut bytes = Vec::new();
        record::encode(&[LogEvent::from_message("x")], sequence, &mut bytes);
        bytes
    };
    {
        let store = Store::open(dir.path(), MIN_SEGMENT_BYTES, Arc::new(RealFs)).unwrap();
        store.append(0, record(0), 1).map_err(|(e, _)| e).unwrap();
        store.append(1, record(1), 1).map_err(|(e, _)| e).unwrap();
        store.sync(Totals::default(), 2).unwrap();
        // The newest record is delivered and its removal made durable; the oldest stays.
        assert!(store.remove(1).unwrap().is_some());
        store.sync(Totals::default(), 2).unwrap();
    }
    let store = Store::open(dir.path(), MIN_SEGMENT_BYTES, Arc::new(RealFs)).unwrap();
    assert_eq!(
        store.next_sequence().unwrap(),
        2,
        "number 1 is not handed out again"
    );
}

fn corrupt_records(store: &Store) -> usize {
    let mut cursor = None;
    let mut corrupt = 0;
    while let Some((sequence, location)) = store.next_after(cursor).unwrap() {
        cursor = Some(sequence);
        if record::verify(&store.read(location).unwrap(), sequence, true).is_err() {
            corrupt += 1;
        }
    }
    corrupt
}

#[tokio::test]
async fn drained_segments_are_reused_and_a_backlog_reads_back_across_segments_and_restarts() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let segment_dir = dir.path().join("segments");
    let inodes = || -> Vec<u64> {
        std::fs::read_dir(&segment_dir)
            .unwrap()
            .map(|entry| entry.unwrap().metadata().unwrap().ino())
            .collect()
    };
    // 8 MiB max_size rolls segments at 1 MiB.
    let (writer, mut reader) = open_buffer(dir.path(), 8 << 20, WhenFull::Block);
    // About 4 MiB of events, written before the reader takes any: a backlog on disk.
    write_durably(&writer, (0..40u64).map(|i| i * 3000..(i + 1) * 3000)).await;
    assert!(inodes().len() > 2, "the backlog spans several segments");
    let mut ids = Vec::new();
    while ids.len() < 120_000 {
        for e in next(&mut reader).await {
            ids.push(id(&e));
            e.settle(DeliveryStatus::Delivered);
        }
    }
    assert_eq!(ids, (0..120_000).collect::<Vec<_>>());
    let drained = inodes();
    assert_eq!(
        drained.len(),
        1 + store::SPARE_SEGMENTS,
        "after draining: the segment being written and the spares"
    );
    // A second backlog goes into the spare files first (their old records are still in them)
    // and reads back whole after a restart.
    write_durably(&writer, (40..80u64).map(|i| i * 3000..(i + 1) * 3000)).await;
    let written = inodes();
    assert!(
        drained.iter().all(|inode| written.contains(inode)),
        "spare files were deleted instead of reused"
    );
    drop((writer, reader));
    let mut reopened = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if let Ok(buffer) = open(
            dir.path(),
            &config(8 << 20, WhenFull::Block),
            Arc::new(SinkMetrics::default()),
        ) {
            reopened = Some(buffer);
            break;
        }
    }
    let (writer, mut reader) = reopened.expect("reopens after a restart");
    drop(writer);
    assert_eq!(
        remaining_ids(&mut reader).await,
        (120_000..240_000).collect::<Vec<_>>()
    );
}
