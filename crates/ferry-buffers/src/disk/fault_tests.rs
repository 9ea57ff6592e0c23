//! The disk buffer under a misbehaving disk, through the fault-injecting [`FaultFs`]: a full
//! disk, I/O errors, failed fsyncs and power loss. Each test checks that every event
//! acknowledged to its source is delivered after recovery, that the counters match the ledger,
//! and that the error lines stay rate-limited.

use std::collections::VecDeque;
use std::ops::Range;

use ferry_core::WhenFull;
use futures::StreamExt;
use proptest::prelude::*;

use super::fault_fs::{FaultFs, IO_ERROR, NO_SPACE, Op};
use super::tests::{config, id, next, remaining_ids, tracked, wait_for, write_durably};
use super::*;

fn open_on(dir: &Path, fs: &FaultFs, metrics: Arc<SinkMetrics>) -> (DiskWriter, DiskReader) {
    open_with(
        dir,
        &config(1 << 30, WhenFull::Block),
        metrics,
        Arc::new(fs.clone()),
    )
    .unwrap()
}

/// Waits until the buffer's threads have let go of it.
async fn released(dir: &Path) {
    let path = dir.join("ferry.lock");
    for _ in 0..500 {
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        if fs2::FileExt::try_lock_exclusive(&file).is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the buffer is not released");
}

/// The process dies and the power goes: nothing more reaches the disk, and what was not
/// fsynced is lost.
async fn lose_power<T>(fs: &FaultFs, dir: &Path, buffer: T) {
    fs.crash();
    drop(buffer);
    released(dir).await;
    fs.power_loss();
}

/// Reopens the buffer, checks its counters against its ledger, and reads every event back
/// (unsettled, so they stay).
async fn recover(dir: &Path, fs: &FaultFs) -> Vec<u64> {
    let metrics = Arc::new(SinkMetrics::default());
    let (writer, mut reader) = open_on(dir, fs, metrics.clone());
    drop(writer);
    let (_, totals) = reader.shared.store.ledger_totals().unwrap();
    assert_eq!(reader.shared.totals(), totals, "counters match the ledger");
    assert_eq!(metrics.buffered.load(Ordering::Relaxed), totals.events);
    let ids = remaining_ids(&mut reader).await;
    assert_eq!(ids.len() as u64, totals.events);
    assert_eq!(metrics.buffered.load(Ordering::Relaxed), 0);
    drop(reader);
    released(dir).await;
    ids
}

/// Writes `batches` from a task (as a source would), returning their verdicts in order.
fn write_in_background(
    writer: &DiskWriter,
    batches: Vec<Range<u64>>,
) -> tokio::task::JoinHandle<Vec<BatchStatusReceiverBox>> {
    let writer = writer.clone();
    tokio::spawn(async move {
        let mut statuses = Vec::new();
        for ids in batches {
            let (events, status) = tracked(ids);
            writer.write(events).await.unwrap();
            statuses.push(Box::pin(status));
        }
        statuses
    })
}

type BatchStatusReceiverBox = std::pin::Pin<Box<ferry_core::BatchStatusReceiver>>;

fn batches(ids: Range<u64>, size: u64) -> Vec<Range<u64>> {
    ids.clone()
        .step_by(size as usize)
        .map(|start| start..(start + size).min(ids.end))
        .collect()
}

#[tokio::test]
async fn a_full_disk_on_append_holds_input_back_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::default();
    let metrics = Arc::new(SinkMetrics::default());
    let (writer, mut reader) = open_on(dir.path(), &fs, metrics.clone());
    write_durably(&writer, std::iter::once(0..100)).await;
    fs.fail(Op::Write, NO_SPACE, None);
    let sending = write_in_background(&writer, batches(100..2100, 100));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!sending.is_finished(), "input waits while the disk is full");
    let failures = fs.failures(Op::Write);
    assert!(failures >= 5, "tried again and again: {failures}");
    assert!(metrics.buffer_errors.load(Ordering::Relaxed) >= failures);
    assert_eq!(
        reader.shared.logs.emitted(),
        1,
        "one error line for {failures} failures"
    );
    assert_eq!(
        metrics.received.load(Ordering::Relaxed),
        100,
        "nothing more entered"
    );
    assert_eq!(metrics.dropped.load(Ordering::Relaxed), 0);

    fs.heal();
    let statuses = tokio::time::timeout(Duration::from_secs(10), sending)
        .await
        .expect("input flows again once there is room")
        .unwrap();
    for status in statuses {
        assert_eq!(status.await, DeliveryStatus::Delivered);
    }
    assert_eq!(metrics.received.load(Ordering::Relaxed), 2100);
    let mut ids = Vec::new();
    while ids.len() < 2100 {
        ids.extend(next(&mut reader).await.iter().map(id));
    }
    assert_eq!(ids, (0..2100).collect::<Vec<_>>());
    lose_power(&fs, dir.path(), (writer, reader)).await;
    assert_eq!(recover(dir.path(), &fs).await, (0..2100).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_failed_fsync_is_not_trusted_again_and_what_it_acknowledges_survives_power_loss() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::default();
    let metrics = Arc::new(SinkMetrics::default());
    let (writer, reader) = open_on(dir.path(), &fs, metrics.clone());
    write_durably(&writer, std::iter::once(0..50)).await;
    // The next segment fsync fails and loses its pages: a later fsync of the same file would
    // succeed without writing them.
    fs.fail(Op::Sync, IO_ERROR, Some(1));
    let (events, status) = tracked(50..100);
    writer.write(events).await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), status)
            .await
            .unwrap(),
        DeliveryStatus::Delivered
    );
    assert_eq!(fs.failures(Op::Sync), 1);
    assert_eq!(metrics.buffer_errors.load(Ordering::Relaxed), 1);
    assert_eq!(reader.shared.logs.emitted(), 1);
    write_durably(&writer, std::iter::once(100..150)).await;
    lose_power(&fs, dir.path(), (writer, reader)).await;
    assert_eq!(recover(dir.path(), &fs).await, (0..150).collect::<Vec<_>>());
}

#[tokio::test]
async fn fsync_failing_for_a_while_holds_input_back_and_then_acknowledges_everything() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::default();
    let metrics = Arc::new(SinkMetrics::default());
    let (writer, reader) = open_on(dir.path(), &fs, metrics.clone());
    write_durably(&writer, std::iter::once(0..100)).await;
    fs.fail(Op::Sync, NO_SPACE, None);
    let first = write_in_background(&writer, batches(100..200, 100));
    wait_for(|| fs.failures(Op::Sync) > 0).await;
    let sending = write_in_background(&writer, batches(200..1100, 100));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!sending.is_finished(), "input waits while fsync fails");
    assert!(fs.failures(Op::Sync) >= 5);
    assert_eq!(reader.shared.logs.emitted(), 1);
    fs.heal();
    let mut statuses = first.await.unwrap();
    statuses.extend(
        tokio::time::timeout(Duration::from_secs(10), sending)
            .await
            .unwrap()
            .unwrap(),
    );
    for status in statuses {
        assert_eq!(status.await, DeliveryStatus::Delivered);
    }
    lose_power(&fs, dir.path(), (writer, reader)).await;
    assert_eq!(recover(dir.path(), &fs).await, (0..1100).collect::<Vec<_>>());
}

#[tokio::test]
async fn failed_fsyncs_while_the_sink_reads_from_disk_lose_and_reject_nothing() {
    // A failed fsync moves the unconfirmed records to a new segment while the reader may be
    // reading them at their old place: it must neither skip nor delete one for that.
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::default();
    let metrics = Arc::new(SinkMetrics::default());
    let (writer, mut reader) = open_on(dir.path(), &fs, metrics.clone());
    let sink = tokio::spawn(async move {
        let mut ids = Vec::new();
        while let Some(batch) = reader.next().await {
            ids.extend(batch.iter().map(id));
            for e in batch {
                e.settle(DeliveryStatus::Delivered);
            }
            if ids.len() % 1000 < 50 {
                // Fall behind now and then, so that records are read back from disk.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        ids
    });
    let mut statuses = Vec::new();
    for (i, ids) in batches(0..10_000, 50).into_iter().enumerate() {
        if i % 20 == 0 {
            fs.fail(Op::Sync, IO_ERROR, Some(1));
        }
        let (events, status) = tracked(ids);
        writer.write(events).await.unwrap();
        statuses.push(status);
    }
    for status in statuses {
        let status = tokio::time::timeout(Duration::from_secs(10), status).await;
        assert_eq!(status, Ok(DeliveryStatus::Delivered));
    }
    assert!(fs.failures(Op::Sync) >= 5, "{}", fs.failures(Op::Sync));
    drop(writer);
    let ids = tokio::time::timeout(Duration::from_secs(20), sink)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids, (0..10_000).collect::<Vec<_>>());
    assert_eq!(metrics.rejected.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_record_whose_move_is_half_done_is_neither_skipped_nor_deleted() {
    // The state a failed fsync can leave for a moment (or, if the rewrite fails too, until
    // the disk recovers): a record not yet durable whose ledger entry still points into a
    // segment the rewrite already deleted. Reading it finds no file, which for a durable
    // record would mean "delivered before an unclean stop": skipped. Here it must wait.
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::default();
    let metrics = Arc::new(SinkMetrics::default());
    let (writer, mut reader) = open_on(dir.path(), &fs, metrics.clone());
    // Ten records the sink does not take yet: the in-memory hand-over holds at most four and
    // the reader three, so the last ones are read back from disk.
    write_durably(&writer, batches(0..100, 10)).await;
    fs.fail(Op::Sync, IO_ERROR, None);
    let (events, status) = tracked(100..110);
    writer.write(events).await.unwrap();
    wait_for(|| fs.failures(Op::Sync) >= 1).await;
    // Its first move succeeded; the next one deletes the new copy, then cannot write.
    tokio::time::sleep(Duration::from_millis(50)).await;
    fs.fail(Op::Write, NO_SPACE, None);
    wait_for(|| fs.failures(Op::Write) >= 1).await;
    let mut ids = Vec::new();
    while ids.len() < 100 {
        ids.extend(next(&mut reader).await.iter().map(id));
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), reader.next())
            .await
            .is_err(),
        "the record being moved is not handed out (nor skipped)"
    );
    fs.heal();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), status).await,
        Ok(DeliveryStatus::Delivered)
    );
    ids.extend(next(&mut reader).await.iter().map(id));
    assert_eq!(ids, (0..110).collect::<Vec<_>>());
    assert_eq!(metrics.rejected.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_full_disk_under_the_ledger_delays_writes_and_deletes_but_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::default();
    let metrics = Arc::new(SinkMetrics::default());
    let (writer, mut reader) = open_on(dir.path(), &fs, metrics.clone());
    write_durably(&writer, std::iter::once(0..100)).await;
    let delivered = next(&mut reader).await;
    // Deleting the delivered record fails a few times, then works.
    fs.fail(Op::Ledger, NO_SPACE, Some(3));
    for e in delivered {
        e.settle(DeliveryStatus::Delivered);
    }
    wait_for(|| reader.shared.events.load(Ordering::Acquire) == 0).await;
    assert_eq!(fs.failures(Op::Ledger), 3);
    // Entering a record in the ledger fails a few times.
    fs.fail(Op::Ledger, NO_SPACE, Some(3));
    write_durably(&writer, std::iter::once(100..200)).await;
    // fsyncing the ledger fails a few times.
    fs.fail(Op::LedgerSync, NO_SPACE, Some(3));
    write_durably(&writer, std::iter::once(200..300)).await;
    assert_eq!(fs.failures(Op::Ledger), 6);
    assert_eq!(fs.failures(Op::LedgerSync), 3);
    assert!(reader.shared.logs.emitted() <= 3, "one line per failing place");
    lose_power(&fs, dir.path(), (writer, reader)).await;
    assert_eq!(recover(dir.path(), &fs).await, (100..300).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_read_error_longer_than_any_retry_limit_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::default();
    {
        let (writer, reader) = open_on(dir.path(), &fs, Arc::new(SinkMetrics::default()));
        write_durably(&writer, [0..100, 100..200, 200..300]).await;
        drop((writer, reader));
        released(dir.path()).await;
    }
    fs.fail(Op::Read, IO_ERROR, None);
    let metrics = Arc::new(SinkMetrics::default());
    let (writer, mut reader) = open_on(dir.path(), &fs, metrics.clone());
    drop(writer);
    assert!(
        tokio::time::timeout(Duration::from_millis(2000), reader.next())
            .await
            .is_err(),
        "nothing is handed out while reads fail"
    );
    assert!(fs.failures(Op::Read) >= 10, "{}", fs.failures(Op::Read));
    assert_eq!(metrics.rejected.load(Ordering::Relaxed), 0);
    assert_eq!(reader.shared.logs.emitted(), 1);
    assert_eq!(metrics.buffered.load(Ordering::Relaxed), 300);
    fs.heal();
    assert_eq!(remaining_ids(&mut reader).await, (0..300).collect::<Vec<_>>());
    assert_eq!(metrics.rejected.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn the_power_loss_model_loses_what_was_not_fsynced() {
    // The check on the model itself: without this, a missing fsync would pass every test.
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::default();
    let record = |sequence: u64| {
        let mut bytes = Vec::new();
        record::encode(&[LogEvent::from_message("x")], sequence, &mut bytes);
        bytes
    };
    {
        let store = Store::open(dir.path(), MIN_SEGMENT_BYTES, Arc::new(fs.clone())).unwrap();
        store.append(0, record(0), 1).map_err(|(e, _)| e).unwrap();
        store.sync(Totals { bytes: 1, events: 1 }, 1).unwrap();
        store.append(1, record(1), 1).map_err(|(e, _)| e).unwrap();
        // Dropping the store flushes sled's log to its file; only an fsync makes it durable.
    }
    fs.power_loss();
    let store = Store::open(dir.path(), MIN_SEGMENT_BYTES, Arc::new(fs.clone())).unwrap();
    let (_, first) = store.first().unwrap().unwrap();
    assert!(record::verify(&store.read(first).unwrap(), 0, false).is_ok());
    assert_eq!(
        store.next_after(Some(0)).unwrap(),
        None,
        "the unsynced record is gone"
    );
}

#[tokio::test]
async fn settling_does_no_disk_work_on_the_thread_that_settles() {
    // librdkafka's delivery-report thread settles the Kafka sink's events: deleting records
    // there (under the lock the writer holds while writing) stalled delivery reports.
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::default();
    let (writer, mut reader) = open_on(dir.path(), &fs, Arc::new(SinkMetrics::default()));
    write_durably(&writer, [0..100, 100..200]).await;
    let mut taken = Vec::new();
    while taken.len() < 200 {
        taken.extend(next(&mut reader).await);
    }
    // Even with the ledger failing, settling returns at once: the commit thread retries.
    fs.fail(Op::Ledger, NO_SPACE, Some(2));
    let started = std::time::Instant::now();
    std::thread::Builder::new()
        .name("delivery-report".into())
        .spawn(move || {
            for e in taken {
                e.settle(DeliveryStatus::Delivered);
            }
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(100));
    wait_for(|| reader.shared.events.load(Ordering::Acquire) == 0).await;
    let threads = fs.ledger_threads();
    assert!(
        threads.iter().all(|name| name.starts_with("ferry-disk-")),
        "the ledger was changed on {threads:?}"
    );
}

/// A fault the model test injects: an operation fails this many times.
#[derive(Clone, Copy, Debug)]
struct Fault {
    op: Op,
    errno: i32,
    times: u32,
}

/// One step of the model test.
#[derive(Clone, Debug)]
enum Step {
    Write(u8),
    Read,
    /// Settles `Delivered` the held events whose bit is set (out of order, maybe part of a
    /// record).
    Ack(u32),
    /// Drops unsettled the held events whose bit is set: their records stay for the next start.
    Nack(u32),
    Restart,
    Fault(Fault),
    PowerLoss,
}

fn step() -> impl Strategy<Value = Step> {
    let fault = (
        prop_oneof![
            Just((Op::Write, NO_SPACE)),
            Just((Op::Sync, IO_ERROR)),
            Just((Op::Sync, NO_SPACE)),
            Just((Op::Ledger, NO_SPACE)),
            Just((Op::LedgerSync, IO_ERROR)),
            Just((Op::Read, IO_ERROR)),
        ],
        1u32..4,
    )
        .prop_map(|((op, errno), times)| Step::Fault(Fault { op, errno, times }));
    prop_oneof![
        4 => (1u8..20).prop_map(Step::Write),
        4 => Just(Step::Read),
        4 => any::<u32>().prop_map(Step::Ack),
        1 => any::<u32>().prop_map(Step::Nack),
        1 => Just(Step::Restart),
        2 => fault,
        1 => Just(Step::PowerLoss),
    ]
}

/// A record the model expects in the buffer: the events of one written batch.
#[derive(Debug)]
struct Record {
    ids: Vec<u64>,
    /// Events of it settled `Delivered` in this run.
    delivered: usize,
    /// An event of it was dropped unsettled in this run: it stays for the next start.
    errored: bool,
}

/// The model test's state.
struct Model {
    dir: tempfile::TempDir,
    fs: FaultFs,
    metrics: Arc<SinkMetrics>,
    buffer: Option<(DiskWriter, DiskReader)>,
    /// Records in the buffer, in order.
    records: VecDeque<Record>,
    /// How many of `records` were handed to the sink in this run.
    handed: usize,
    /// Events the sink holds, unsettled.
    held: Vec<LogEvent>,
    /// First ids of records deleted after the sink settled them; a power loss may bring one
    /// back (its deletion was not durable yet), which at-least-once allows.
    deleted: std::collections::HashSet<u64>,
    next_id: u64,
}

impl Model {
    fn open(&mut self) {
        self.metrics = Arc::new(SinkMetrics::default());
        self.buffer = Some(open_on(self.dir.path(), &self.fs, self.metrics.clone()));
        self.handed = 0;
        for record in &mut self.records {
            record.delivered = 0;
            record.errored = false;
        }
    }

    fn reader(&mut self) -> &mut DiskReader {
        &mut self.buffer.as_mut().expect("open").1
    }

    fn record_of(&mut self, id: u64) -> usize {
        self.records
            .iter()
            .position(|r| r.ids.contains(&id))
            .expect("a held event belongs to a record the model has")
    }

    /// Settles (or drops) the held events whose bit is set.
    fn settle(&mut self, mask: u32, delivered: bool) {
        let held = std::mem::take(&mut self.held);
        for (i, event) in held.into_iter().enumerate() {
            if mask & (1 << (i % 32)) == 0 {
                self.held.push(event);
                continue;
            }
            let r = self.record_of(id(&event));
            if delivered {
                event.settle(DeliveryStatus::Delivered);
                self.records[r].delivered += 1;
            } else {
                drop(event);
                self.records[r].errored = true;
            }
            let record = &self.records[r];
            if record.delivered == record.ids.len() && !record.errored {
                self.deleted.insert(record.ids[0]);
                self.records.remove(r);
                self.handed -= 1;
            }
        }
    }

    /// Stops cleanly, checking on the way that the counters track the ledger.
    async fn stop(&mut self) {
        self.held.clear();
        let (writer, reader) = self.buffer.take().expect("open");
        let shared = reader.shared.clone();
        // Deletions happen on the buffer's thread, a moment after the settling.
        wait_for(|| {
            shared
                .store
                .ledger_totals()
                .is_ok_and(|(_, t)| t == shared.totals())
        })
        .await;
        drop(shared);
        drop((writer, reader));
        released(self.dir.path()).await;
    }

    async fn restart(&mut self) {
        self.stop().await;
        self.open();
        let expected: u64 = self.records.iter().map(|r| r.ids.len() as u64).sum();
        assert_eq!(self.metrics.buffered.load(Ordering::Relaxed), expected);
    }

    /// Loses power, then reads back what the buffer holds: every record the model has, in
    /// order, plus perhaps records whose deletion was lost.
    async fn power_loss(&mut self) {
        self.held.clear();
        lose_power(&self.fs, self.dir.path(), self.buffer.take()).await;
        let (writer, mut reader) = open_on(self.dir.path(), &self.fs, Arc::new(SinkMetrics::default()));
        drop(writer);
        let mut found = Vec::new();
        while let Some(batch) = tokio::time::timeout(Duration::from_secs(10), reader.next())
            .await
            .unwrap()
        {
            found.push(batch.iter().map(id).collect::<Vec<_>>());
        }
        drop(reader);
        released(self.dir.path()).await;
        let mut expected = self.records.iter().map(|r| &r.ids).peekable();
        let mut records = VecDeque::new();
        for ids in found {
            if expected.peek() == Some(&&ids) {
                expected.next();
            } else {
                assert!(
                    self.deleted.remove(&ids[0]),
                    "after a power loss: {ids:?} was never written, or is out of order"
                );
            }
            records.push_back(Record {
                ids,
                delivered: 0,
                errored: false,
            });
        }
        assert_eq!(expected.next(), None, "an acknowledged record was lost");
        self.records = records;
        self.open();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Against a simple queue model, on a disk that fails and loses power: every written (and
    /// acknowledged-as-durable) event is read, in order, until the sink settles every event of
    /// its record, however the settling comes (partial, out of order, some dropped); nothing
    /// acknowledged to a source is lost across restarts, faults and power losses; nothing the
    /// sink settled comes back after a clean restart; the counters track the ledger.
    #[test]
    fn behaves_like_a_queue_across_faults_restarts_and_power_loss(steps in proptest::collection::vec(step(), 1..40)) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let mut model = Model {
                dir: tempfile::tempdir().unwrap(),
                fs: FaultFs::default(),
                metrics: Arc::default(),
                buffer: None,
                records: VecDeque::new(),
                handed: 0,
                held: Vec::new(),
                deleted: Default::default(),
                next_id: 0,
            };
            model.open();
            for step in steps {
                match step {
                    Step::Write(n) => {
                        let ids = model.next_id..model.next_id + u64::from(n);
                        model.next_id = ids.end;
                        let (events, status) = tracked(ids.clone());
                        let (writer, _) = model.buffer.as_ref().unwrap();
                        writer.write(events).await.unwrap();
                        let status = tokio::time::timeout(Duration::from_secs(10), status).await;
                        assert_eq!(status, Ok(DeliveryStatus::Delivered));
                        model.records.push_back(Record { ids: ids.collect(), delivered: 0, errored: false });
                    }
                    Step::Read => {
                        if model.handed < model.records.len() {
                            let batch = next(model.reader()).await;
                            let ids: Vec<u64> = batch.iter().map(id).collect();
                            assert_eq!(ids, model.records[model.handed].ids, "read out of order");
                            model.handed += 1;
                            model.held.extend(batch);
                        }
                    }
                    Step::Ack(mask) => model.settle(mask, true),
                    Step::Nack(mask) => model.settle(mask, false),
                    Step::Restart => model.restart().await,
                    Step::Fault(f) => model.fs.fail(f.op, f.errno, Some(f.times)),
                    Step::PowerLoss => model.power_loss().await,
                }
            }
            // Finally everything not settled is still there, in order, and nothing else.
            model.fs.heal();
            model.stop().await;
            let (writer, mut reader) = open_on(model.dir.path(), &model.fs, Arc::new(SinkMetrics::default()));
            drop(writer);
            let remaining = remaining_ids(&mut reader).await;
            let expected: Vec<u64> = model.records.iter().flat_map(|r| r.ids.iter().copied()).collect();
            assert_eq!(remaining, expected);
        });
    }
}
