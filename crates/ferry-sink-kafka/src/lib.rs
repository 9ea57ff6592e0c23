//! # ferry-sink-kafka
//!
//! Sink `type = "kafka"`: streams events into Apache Kafka through librdkafka (built statically
//! with OpenSSL, SASL/SCRAM, gzip, lz4, snappy and zstd). Cloud logins: SASL OAUTHBEARER through
//! librdkafka's OIDC client (feature `oidc`) or a token file, and Amazon MSK IAM (feature
//! `aws-msk-iam`), both features on by default.
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
//!   gone, leader moved) is counted as a retry and sent again, for as long as the process
//!   lives; it is never counted as delivered and never silently dropped.
//! - **Nothing dropped without a record.** A record that can never be stored (invalid or
//!   unrenderable topic, larger than `message.max.bytes`, invalid, topic authorization denied,
//!   a topic still missing after `unknown_topic_grace_ms`) is written to the dead-letter file
//!   and fsynced before its event is settled `Rejected`; counted in `rejected` and
//!   `dead_lettered`, logged at a rate limit with the cause.
//! - **Isolation.** Failures are classified once (`failure.rs`); a failing topic waits on its
//!   own back-off in the retry queue while the other topics flow, and a record that can never
//!   be sent never holds up the records behind it. The one shared wait is librdkafka's full
//!   queue: backpressure.
//! - **Bounded memory.** librdkafka's queue is bounded by its settings, the retry queue by
//!   `retry_queue_max_events` / `retry_queue_max_bytes`; at the bound no new input is read.
//! - **A dead producer is replaced.** After librdkafka's fatal error, or no delivery report for
//!   `producer_stall_timeout_ms` while records wait, a new producer is built and everything
//!   unconfirmed is sent again through it (duplicates possible).
//! - **Order.** The idempotent producer is on by default, so librdkafka's own retries neither
//!   reorder nor duplicate within a partition; once a topic's record has failed, its newer
//!   records queue behind it. A record whose delivery failed for good at librdkafka's level
//!   (timed out, producer rebuilt, resent alone) is sent after records already handed to
//!   librdkafka, so order per key is not kept across such a failure (docs/sinks/kafka.md).
//! - **Shutdown.** At end of input the sink waits until every event is confirmed; at the
//!   topology's deadline a memory-buffered sink writes what it still holds to the dead-letter
//!   file, a disk-buffered one leaves it in its buffer.

#[cfg(test)]
mod auth_tests;
#[cfg(feature = "aws-msk-iam")]
mod aws_credentials;
mod client;
mod config;
mod context;
mod dead_letters;
mod failure;
mod health;
mod metadata;
#[cfg(feature = "aws-msk-iam")]
mod msk_iam;
mod record;
mod replay;
mod retry;
mod sasl;
#[cfg(test)]
mod sasl_handshake_stub;
mod sink;
mod stats;
#[cfg(test)]
mod tests;
mod tls;
mod token;
mod token_file;
mod topic;

#[cfg(feature = "aws-msk-iam")]
pub use aws_credentials::CredentialsError;
pub use config::{Compression, KafkaSinkConfig, SaslConfig, SaslMechanism, TlsConfig};
#[cfg(feature = "aws-msk-iam")]
pub use msk_iam::MskIamError;
pub use replay::ReplayError;
pub use token::TokenError;
pub use token_file::TokenFileError;

/// The version of librdkafka built into this binary, e.g. `2.12.1`.
pub fn librdkafka_version() -> String {
    rdkafka::util::get_rdkafka_version().1
}
