//! The Kafka side of the end-to-end tests: a cluster to talk to and a consumer that reads
//! topics back.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::{Broker, Storage};

/// The cluster a test writes to: `FERRY_TEST_BOOTSTRAP_SERVERS` when set (any Kafka cluster),
/// else a tansu broker of the test's own.
pub struct TestKafka {
    pub broker: Option<Broker>,
    bootstrap: String,
}

impl TestKafka {
    /// A cluster with in-memory storage.
    pub fn start() -> Self {
        match std::env::var("FERRY_TEST_BOOTSTRAP_SERVERS") {
            Ok(servers) if !servers.is_empty() => Self {
                broker: None,
                bootstrap: servers,
            },
            _ => Self::local(Storage::Memory),
        }
    }

    /// A local tansu broker with the given storage (for outage tests, which must stop it).
    pub fn local(storage: Storage) -> Self {
        let binary = ferry_tansu::binary().expect("tansu is installed (cargo xtask setup)");
        let broker = Broker::start(&binary, storage).expect("tansu starts");
        let bootstrap = broker.bootstrap_servers();
        Self {
            broker: Some(broker),
            bootstrap,
        }
    }

    /// `bootstrap_servers` for ferry.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Creates topics (Ferry never does), each with 3 partitions.
    pub fn create_topics(&self, names: &[&str]) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("admin client");
        let topics: Vec<NewTopic> = names
            .iter()
            .map(|n| NewTopic::new(n, 3, TopicReplication::Fixed(1)))
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let results = runtime
            .block_on(admin.create_topics(
                &topics,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            ))
            .expect("create_topics answers");
        for result in results {
            if let Err((topic, code)) = result {
                panic!("cannot create topic {topic}: {code}");
            }
        }
    }
}

/// One record read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp: Option<i64>,
}

impl Record {
    pub fn payload_str(&self) -> &str {
        std::str::from_utf8(&self.payload).expect("UTF-8 payload")
    }
}

/// Reads `topic` from the beginning until `expected` records arrived and then `idle` passed
/// without more (so extra records are seen too), or 60 s passed. Records are counted by
/// reading them: tansu's high watermarks cannot be trusted (see BROKER.md).
pub fn read_topic(bootstrap: &str, topic: &str, expected: usize, idle: Duration) -> Vec<Record> {
    read_topic_with(&[], bootstrap, topic, expected, idle)
}

/// [`read_topic`] with extra client properties (SASL, TLS).
pub fn read_topic_with(
    extra: &[(&str, &str)],
    bootstrap: &str,
    topic: &str,
    expected: usize,
    idle: Duration,
) -> Vec<Record> {
    read_topic_within(extra, bootstrap, topic, expected, idle, Duration::from_secs(60))
}

/// [`read_topic_with`] giving up after `limit` instead of 60 s (large topics).
pub fn read_topic_within(
    extra: &[(&str, &str)],
    bootstrap: &str,
    topic: &str,
    expected: usize,
    idle: Duration,
    limit: Duration,
) -> Vec<Record> {
    read_topic_until(extra, bootstrap, topic, limit, |records, quiet| {
        records.len() >= expected && quiet >= idle
    })
}

/// Reads `topic` from the beginning until `done(records so far, time since the last record)`
/// holds or `limit` passed: for reads where a count cannot tell (duplicates).
pub fn read_topic_until(
    extra: &[(&str, &str)],
    bootstrap: &str,
    topic: &str,
    limit: Duration,
    mut done: impl FnMut(&[Record], Duration) -> bool,
) -> Vec<Record> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("ferry-e2e-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata for the topic");
    let mut assignment = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            assignment
                .add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("partition offset");
        }
    }
    consumer.assign(&assignment).expect("assign");
    let mut records = Vec::new();
    let start = Instant::now();
    let mut last_record = Instant::now();
    while start.elapsed() < limit {
        if done(&records, last_record.elapsed()) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last_record = Instant::now();
                records.push(Record {
                    topic: m.topic().to_owned(),
                    partition: m.partition(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    timestamp: m.timestamp().to_millis(),
                });
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            None => {}
        }
    }
    records
}
