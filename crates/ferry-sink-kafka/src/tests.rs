//! The sink against librdkafka's mock cluster, for the faults one real broker cannot stage:
//! a fatal producer error, a partition without a leader, a batch refused as too large,
//! request errors that librdkafka retries itself, and rendered topic names Kafka refuses (the
//! mock cluster takes any name, so only the sink refuses them). (Everything a real broker can
//! stage is tested against tansu in the workspace's `tests/`.)

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_core::{
    BatchNotifier, DeliveryStatus, EventStream, LogEvent, SinkContext, SinkMetrics, SinkRunner,
};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, Producer as _};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::KafkaSinkConfig;
use crate::context::SinkShared;

/// What the sink's metadata watcher knows about a topic.
type LayoutProbe = Box<dyn Fn(&str) -> Option<crate::metadata::TopicLayout> + Send + Sync>;

struct Running {
    tx: mpsc::Sender<Vec<LogEvent>>,
    task: tokio::task::JoinHandle<Result<(), ferry_core::BoxError>>,
    metrics: Arc<SinkMetrics>,
    shared: Arc<SinkShared>,
    producer: crate::client::Producer,
    layout: LayoutProbe,
    _data_dir: tempfile::TempDir,
}

fn start(bootstrap: &str, topic: &str, extra: &str) -> Running {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let timeout = if extra.contains("message_timeout_ms") {
        ""
    } else {
        "message_timeout_ms = 10000"
    };
    let text = format!(
        "inputs = [\"in\"]\nbootstrap_servers = \"{bootstrap}\"\ntopic = \"{topic}\"\n{timeout}\n{extra}\n"
    );
    let config: KafkaSinkConfig = toml::from_str(&text).expect("config parses");
    assert!(config.check().is_empty(), "{:?}", config.check());
    let metrics = Arc::new(SinkMetrics::default());
    let data_dir = tempfile::tempdir().expect("temp dir");
    let cx = SinkContext {
        id: "kafka".into(),
        metrics: metrics.clone(),
        health: Arc::new(ferry_core::SinkHealth::default()),
        data_dir: data_dir.path().to_owned(),
        deadline: CancellationToken::new(),
        durable_buffer: false,
    };
    let (sink, _healthcheck) = config.build_sink(cx).expect("sink builds");
    let shared = sink.shared.clone();
    let producer = sink.topics.producer().clone();
    let layout = Box::new(sink.topics.metadata().probe());
    let (tx, rx) = mpsc::channel::<Vec<LogEvent>>(4);
    let input: EventStream = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|batch| (batch, rx))
    }));
    let task = tokio::spawn(Box::new(sink).run(input));
    Running {
        tx,
        task,
        metrics,
        shared,
        producer,
        layout,
        _data_dir: data_dir,
    }
}

/// `n` events `key-i seq` (keys cycle through `keys`), tracked by one notifier per batch.
async fn send(
    running: &Running,
    from: usize,
    n: usize,
    keys: usize,
    statuses: &mut Vec<ferry_core::BatchStatusReceiver>,
) {
    let mut i = from;
    while i < from + n {
        let end = (i + 500).min(from + n);
        let (notifier, status) = BatchNotifier::new_with_receiver();
        let batch = (i..end)
            .map(|seq| {
                let mut event = LogEvent::from_message(format!("k{} {seq}", seq % keys.max(1)));
                event.insert_path(&"key".parse().unwrap(), format!("k{}", seq % keys.max(1)).into());
                event.attach_notifier(&notifier);
                event
            })
            .collect();
        drop(notifier);
        statuses.push(status);
        running.tx.send(batch).await.expect("sink reads");
        i = end;
    }
}

async fn finish(running: Running, statuses: Vec<ferry_core::BatchStatusReceiver>) -> Vec<DeliveryStatus> {
    drop(running.tx);
    tokio::time::timeout(Duration::from_secs(60), running.task)
        .await
        .expect("the sink ends")
        .expect("the sink task")
        .expect("the sink ran");
    let mut out = Vec::new();
    for status in statuses {
        out.push(status.await);
    }
    out
}

/// Every record of `topic`, as (key, payload), read until `expected` arrived and 1 s passed.
fn read_back(bootstrap: &str, topic: &str, expected: usize) -> Vec<(String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "ferry-sink-kafka-tests")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut assignment = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            assignment
                .add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("offset");
        }
    }
    consumer.assign(&assignment).expect("assign");
    let mut records = Vec::new();
    let started = Instant::now();
    let mut last = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if records.len() >= expected && last.elapsed() > Duration::from_secs(1) {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            last = Instant::now();
            let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
            records.push((text(m.key()), text(m.payload())));
        }
    }
    records
}

fn cluster(topic: &str, partitions: i32) -> MockCluster<'static, DefaultProducerContext> {
    let cluster = MockCluster::new(3).expect("mock cluster");
    cluster.create_topic(topic, partitions, 1).expect("topic");
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_producer_error_rebuilds_the_producer_and_nothing_is_lost() {
    let cluster = cluster("fatal", 3);
    let bootstrap = cluster.bootstrap_servers();
    let running = start(&bootstrap, "fatal", "key_field = \"key\"");
    let mut statuses = Vec::new();
    send(&running, 0, 2000, 10, &mut statuses).await;
    let reason = std::ffi::CString::new("injected by the test").unwrap();
    // SAFETY: a live client; librdkafka's test hook raises a fatal error as the idempotent
    // producer would.
    unsafe {
        rdkafka::bindings::rd_kafka_test_fatal_error(
            running.producer.client().native_ptr(),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
            reason.as_ptr(),
        );
    }
    send(&running, 2000, 2000, 10, &mut statuses).await;
    let shared = running.shared.clone();
    let metrics = running.metrics.clone();
    let statuses = finish(running, statuses).await;
    assert!(
        statuses.iter().all(|s| *s == DeliveryStatus::Delivered),
        "{statuses:?}"
    );
    assert!(
        shared.rebuilds.load(Ordering::Relaxed) >= 1,
        "the producer was rebuilt"
    );
    assert_eq!(metrics.delivered.load(Ordering::Relaxed), 4000);
    assert_eq!(metrics.dead_lettered.load(Ordering::Relaxed), 0);
    let records = read_back(&bootstrap, "fatal", 4000);
    let distinct: std::collections::HashSet<&String> = records.iter().map(|(_, p)| p).collect();
    assert_eq!(distinct.len(), 4000, "every event arrived (duplicates allowed)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_as_too_large_is_sent_again_record_by_record() {
    let cluster = cluster("big-batch", 1);
    let bootstrap = cluster.bootstrap_servers();
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let running = start(
        &bootstrap,
        "big-batch",
        "librdkafka_options.\"linger.ms\" = \"200\"",
    );
    let mut statuses = Vec::new();
    send(&running, 0, 300, 1, &mut statuses).await;
    let metrics = running.metrics.clone();
    let statuses = finish(running, statuses).await;
    assert!(
        statuses.iter().all(|s| *s == DeliveryStatus::Delivered),
        "{statuses:?}"
    );
    assert_eq!(
        metrics.dead_lettered.load(Ordering::Relaxed),
        0,
        "no valid record is rejected"
    );
    assert!(
        metrics.retried.load(Ordering::Relaxed) > 0,
        "the refused batch was sent again"
    );
    let records = read_back(&bootstrap, "big-batch", 300);
    let distinct: std::collections::HashSet<&String> = records.iter().map(|(_, p)| p).collect();
    assert_eq!(distinct.len(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_batches_skip_a_partition_without_a_leader() {
    let cluster = cluster("leaderless", 3);
    let bootstrap = cluster.bootstrap_servers();
    cluster
        .partition_leader("leaderless", 1, None)
        .expect("leader removed");
    // A timeout shorter than the test: a record stuck on the leaderless partition would be
    // reported failed and retried.
    let running = start(&bootstrap, "leaderless", "message_timeout_ms = 3000");
    let mut statuses = Vec::new();
    // The first records go out before the sink knows the layout (librdkafka's partitioner
    // chooses, and may choose the leaderless partition); wait until it knows.
    send(&running, 0, 10, 1, &mut statuses).await;
    let started = Instant::now();
    while (running.layout)("leaderless").is_none() && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        (running.layout)("leaderless").map(|l| l.with_leader),
        Some(vec![0, 2]),
        "the watcher sees which partitions have a leader"
    );
    // The first batch is settled once each of its records was delivered, sent again if it
    // had gone to the leaderless partition: from then on nothing of it is retried.
    let first = statuses.remove(0);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(30), first).await,
        Ok(DeliveryStatus::Delivered)
    );
    let retried_before = running.metrics.retried.load(Ordering::Relaxed);
    for round in 0..20 {
        send(&running, 10 + round * 100, 100, 1, &mut statuses).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = running.metrics.clone();
    let statuses = finish(running, statuses).await;
    assert!(statuses.iter().all(|s| *s == DeliveryStatus::Delivered));
    assert_eq!(metrics.delivered.load(Ordering::Relaxed), 2010);
    assert_eq!(
        metrics.retried.load(Ordering::Relaxed),
        retried_before,
        "no record went to the partition without a leader"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_per_key_survives_request_errors() {
    let cluster = cluster("ordered", 3);
    let bootstrap = cluster.bootstrap_servers();
    use RDKafkaRespErr::*;
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        ],
    );
    let running = start(&bootstrap, "ordered", "key_field = \"key\"");
    let mut statuses = Vec::new();
    send(&running, 0, 5000, 7, &mut statuses).await;
    let statuses = finish(running, statuses).await;
    assert!(statuses.iter().all(|s| *s == DeliveryStatus::Delivered));
    let records = read_back(&bootstrap, "ordered", 5000);
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for (key, payload) in &records {
        let seq: i64 = payload.split(' ').nth(1).unwrap().parse().unwrap();
        seen.insert(seq);
        let previous = last.insert(key.clone(), seq).unwrap_or(-1);
        assert!(seq > previous, "key {key}: {seq} after {previous}");
    }
    assert_eq!(seen.len(), 5000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_that_goes_quiet_is_rebuilt_and_nothing_is_lost() {
    let cluster = cluster("quiet", 1);
    let bootstrap = cluster.bootstrap_servers();
    let running = start(
        &bootstrap,
        "quiet",
        "message_timeout_ms = 60000\nproducer_stall_timeout_ms = 2000",
    );
    let mut statuses = Vec::new();
    send(&running, 0, 100, 1, &mut statuses).await;
    // Answers slower than the stall timeout: records wait and no report comes.
    for broker in 1..=3 {
        cluster
            .broker_round_trip_time(broker, Duration::from_secs(8))
            .expect("delay");
    }
    send(&running, 100, 500, 1, &mut statuses).await;
    let started = Instant::now();
    while running.shared.rebuilds.load(Ordering::Relaxed) == 0 && started.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for broker in 1..=3 {
        cluster
            .broker_round_trip_time(broker, Duration::ZERO)
            .expect("no delay");
    }
    let shared = running.shared.clone();
    let statuses = finish(running, statuses).await;
    assert!(
        shared.rebuilds.load(Ordering::Relaxed) >= 1,
        "the quiet producer was rebuilt"
    );
    assert!(
        statuses.iter().all(|s| *s == DeliveryStatus::Delivered),
        "{statuses:?}"
    );
    let records = read_back(&bootstrap, "quiet", 600);
    let distinct: std::collections::HashSet<&String> = records.iter().map(|(_, p)| p).collect();
    assert_eq!(distinct.len(), 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_topics_kafka_refuses_are_rejected_at_once_and_the_rest_of_the_batch_flows() {
    let cluster = cluster("t-ok", 1);
    let bootstrap = cluster.bootstrap_servers();
    // A long grace: were an invalid name taken for a missing topic, the batch would wait.
    let running = start(&bootstrap, "t-{{ app }}", "unknown_topic_grace_ms = 600000");
    // (`t-..` would be a valid name: only `.` and `..` themselves are refused.)
    let apps = ["ok", "o k", "o\0k", "ok", "a/b", &"x".repeat(300), "ok"];
    let mut statuses = Vec::new();
    let mut batch = Vec::new();
    for (i, app) in apps.iter().enumerate() {
        let mut event = LogEvent::from_message(format!("event {i}"));
        event.insert_path(&"app".parse().unwrap(), (*app).into());
        // One notifier per event, so each event's verdict can be read.
        let (notifier, status) = BatchNotifier::new_with_receiver();
        event.attach_notifier(&notifier);
        statuses.push(status);
        batch.push(event);
    }
    running.tx.send(batch).await.expect("sink reads");
    let metrics = running.metrics.clone();
    let started = Instant::now();
    let statuses = finish(running, statuses).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "no record waited for a grace: {:?}",
        started.elapsed()
    );
    let expected: Vec<DeliveryStatus> = apps
        .iter()
        .map(|app| {
            if *app == "ok" {
                DeliveryStatus::Delivered
            } else {
                DeliveryStatus::Rejected
            }
        })
        .collect();
    assert_eq!(statuses, expected);
    assert_eq!(metrics.delivered.load(Ordering::Relaxed), 3);
    assert_eq!(metrics.dead_lettered.load(Ordering::Relaxed), 4);
    assert_eq!(read_back(&bootstrap, "t-ok", 3).len(), 3);
}
