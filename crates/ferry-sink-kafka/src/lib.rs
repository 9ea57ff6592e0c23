//! # ferry-sink-kafka
//!
//! Sink `type = "kafka"`: streams events into Apache Kafka through librdkafka (built statically
//! with OpenSSL, SASL/SCRAM, gzip, lz4, snappy and zstd).
//!
//! ```toml
//! [sinks.kafka]
//! type = "kafka"
//! inputs = ["app"]
//! bootstrap_servers = "10.0.0.1:9092,10.0.0.2:9092"
//! topic = "logs-{{ unit }}-%Y-%m-%d"
//! key_field = "user_id"
//! compression = "zstd"
//! encoding.codec = "json"
//! ```
//!
//! ## Guarantees
//! - **At least once.** An event is settled `Delivered` only when its delivery report says
//!   Kafka stored it. A delivery that failed for a reason that may pass (timeout, purge, broker
//!   gone, unknown topic) is counted as a retry and sent again, for as long as the process
//!   lives; it is never counted as delivered and never silently dropped.
//! - **Permanent rejections** (a topic template naming a missing field, a record larger than
//!   `message.max.bytes`, an invalid record, topic authorization denied) settle the event as
//!   `Rejected`, count it, and log a rate-limited warning naming the cause. The stream goes on.
//! - **Backpressure.** When librdkafka's queue is full the sink waits for delivery reports
//!   to free room, so its buffer fills and the sources wait. It never drops and never spins.
//! - **Order.** The idempotent producer is on by default, so librdkafka's own retries neither
//!   reorder nor duplicate within a partition.
//! - **Shutdown.** At end of input the sink waits until every event is confirmed; the
//!   topology's shutdown deadline bounds the wait and reports what remained.

mod client;
mod config;
mod context;
mod dead_letters;
mod failure;
mod health;
mod metadata;
mod record;
mod replay;
mod retry;
mod sink;
#[cfg(test)]
mod tests;
mod tls;
mod topic;

pub use config::{Compression, KafkaSinkConfig, SaslConfig, SaslMechanism, TlsConfig};
pub use replay::ReplayError;
