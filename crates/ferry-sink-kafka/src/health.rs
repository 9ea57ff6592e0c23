//! The start-up check: can we get metadata from the brokers, and does the topic exist?

use std::sync::Arc;
use std::time::Duration;

use ferry_core::{BoxError, Healthcheck};
use rdkafka::producer::Producer as _;

use crate::client::Producer;
use crate::config::KafkaSinkConfig;
use crate::context::SinkShared;

/// Why the health check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// No metadata: brokers unreachable, refused the login, or TLS failed.
    #[error("cannot get metadata from {brokers}: {cause}")]
    Unreachable {
        /// The bootstrap servers tried.
        brokers: String,
        /// The most specific reason librdkafka gave.
        cause: String,
    },
    /// The topic is not there (Ferry never creates topics).
    #[error("topic `{topic}` does not exist on {brokers} ({cause}); create it, or set healthcheck_topic")]
    MissingTopic {
        /// The topic.
        topic: String,
        /// The bootstrap servers.
        brokers: String,
        /// What the broker said.
        cause: String,
    },
}

/// How long the metadata request may take: under the topology's default check timeout, so
/// the user sees librdkafka's reason rather than a bare timeout.
const METADATA_TIMEOUT: Duration = Duration::from_secs(8);

pub(crate) fn healthcheck(
    config: &KafkaSinkConfig,
    producer: Producer,
    shared: Arc<SinkShared>,
) -> Healthcheck {
    let topic = if config.topic.is_static() {
        Some(config.topic.as_str().to_owned())
    } else {
        config.healthcheck_topic.clone()
    };
    let brokers = config.bootstrap_servers.clone();
    let timeout = METADATA_TIMEOUT.min(Duration::from_millis(config.socket_timeout_ms));
    Box::pin(async move {
        let check = tokio::task::spawn_blocking(move || {
            check(&producer, &shared, topic.as_deref(), &brokers, timeout)
        });
        check
            .await
            .map_err(|e| Box::new(e) as BoxError)?
            .map_err(|e| Box::new(e) as BoxError)
    })
}

fn check(
    producer: &Producer,
    shared: &SinkShared,
    topic: Option<&str>,
    brokers: &str,
    timeout: Duration,
) -> Result<(), HealthError> {
    shared.clear_last_error();
    let metadata =
        producer
            .client()
            .fetch_metadata(topic, timeout)
            .map_err(|e| HealthError::Unreachable {
                brokers: brokers.to_owned(),
                // The error callback knows why (refused, TLS, authentication); the request only
                // knows that it failed.
                cause: shared.take_last_error().unwrap_or_else(|| e.to_string()),
            })?;
    let Some(topic) = topic else { return Ok(()) };
    match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
        Some(t) => Err(HealthError::MissingTopic {
            topic: topic.to_owned(),
            brokers: brokers.to_owned(),
            cause: t
                .error()
                .map(|e| rdkafka::types::RDKafkaErrorCode::from(e).to_string())
                .unwrap_or_else(|| "no partitions".into()),
        }),
        None => Err(HealthError::MissingTopic {
            topic: topic.to_owned(),
            brokers: brokers.to_owned(),
            cause: "not in the metadata".into(),
        }),
    }
}
