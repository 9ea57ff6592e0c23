//! Producer settings: Ferry's defaults, the sink's options, then `librdkafka_options`.

use std::sync::Arc;

use rdkafka::ClientConfig;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::ThreadedProducer;

use crate::config::KafkaSinkConfig;
use crate::context::{FerryContext, SinkShared};
use crate::tls::TlsError;

/// The producer every part of the sink shares.
pub(crate) type Producer = Arc<ThreadedProducer<FerryContext>>;

/// Ferry's producer defaults, each overridable through `librdkafka_options`:
///
/// | property | value | why |
/// |---|---|---|
/// | `acks` | `all` | a record counts as stored only when every in-sync replica has it |
/// | `enable.idempotence` | `true` | librdkafka's retries neither reorder nor duplicate |
/// | `linger.ms` | `10` | bigger batches at high rates for at most 10 ms of added latency |
/// | `batch.num.messages` | `10000` | |
/// | `queue.buffering.max.messages` | `40000` | the in-flight set: ~40 ms at 1 M events/s, more than linger plus ack latency (as fast as 100,000 in the bench, half the memory) |
/// | `queue.buffering.max.kbytes` | `16384` | bounds the payload memory of that set (16 MiB) |
/// | `client.id` | `ferry` | shows up in broker logs and quotas |
/// | `topic.metadata.propagation.max.ms` | `5000` | how long librdkafka holds records for a topic the cluster has not (yet) shown; after it, such records come back to the sink, which retries them for `unknown_topic_grace_ms` while the other topics flow (librdkafka's 30 s let a missing topic fill its queue and stall every topic) |
/// | `enable.sparse.connections` | `false` | connect to the brokers as soon as the metadata names them: with sparse connections the first request that needed a partition leader waited ~50 ms for its connection, at every start |
pub(crate) const DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("linger.ms", "10"),
    ("batch.num.messages", "10000"),
    ("queue.buffering.max.messages", "40000"),
    ("queue.buffering.max.kbytes", "16384"),
    ("client.id", "ferry"),
    ("topic.metadata.propagation.max.ms", "5000"),
    ("enable.sparse.connections", "false"),
];

/// Why the producer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A `tls.*` file is missing or unreadable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// librdkafka refused a property (unknown name or invalid value).
    #[error("invalid producer setting: {0}")]
    InvalidSetting(String),
}

/// Whether a librdkafka property holds a secret (its value is never shown).
pub(crate) fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password")
        || key.contains("secret")
        || key == "ssl.key.pem"
        || key.contains("sasl.oauthbearer.config")
}

/// The full librdkafka configuration for `config`.
pub(crate) fn client_config(config: &KafkaSinkConfig) -> Result<ClientConfig, ClientError> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &config.bootstrap_servers);
    for (key, value) in DEFAULTS {
        cc.set(*key, *value);
    }
    cc.set("compression.codec", config.compression.librdkafka_name());
    cc.set("message.timeout.ms", config.message_timeout_ms.to_string());
    cc.set("socket.timeout.ms", config.socket_timeout_ms.to_string());
    let protocol = match (config.sasl.enabled, config.tls.enabled) {
        (false, false) => "plaintext",
        (false, true) => "ssl",
        (true, false) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    cc.set("security.protocol", protocol);
    if config.sasl.enabled {
        config.sasl.apply(&mut cc);
    }
    if config.tls.enabled {
        crate::tls::apply(&config.tls, &mut cc)?;
    }
    for (key, value) in &config.librdkafka_options.0 {
        cc.set(key, value);
    }
    Ok(cc)
}

/// Creates the producer; a refused property becomes an error naming it (values of secret
/// properties hidden).
pub(crate) fn create_producer(cc: &ClientConfig, shared: Arc<SinkShared>) -> Result<Producer, ClientError> {
    match ThreadedProducer::from_config_and_context(cc, FerryContext::new(shared)) {
        Ok(producer) => Ok(Arc::new(producer)),
        Err(KafkaError::ClientCreation(message)) => {
            let secret = cc
                .config_map()
                .keys()
                .any(|k| is_secret_property(k) && message.contains(*k));
            let message = if secret {
                hide_quoted_value(&message)
            } else {
                message
            };
            let from_options = if message.contains("librdkafka_options") {
                ""
            } else {
                " (check librdkafka_options)"
            };
            Err(ClientError::InvalidSetting(format!("{message}{from_options}")))
        }
        Err(other) => Err(ClientError::InvalidSetting(other.to_string())),
    }
}

/// `Invalid value "hunter2" for configuration property "sasl.password"` → the value hidden.
fn hide_quoted_value(message: &str) -> String {
    match message
        .strip_prefix("Invalid value \"")
        .and_then(|rest| rest.split_once('"'))
    {
        Some((_, rest)) => format!("Invalid value \"***\"{rest}"),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_hidden() {
        assert!(is_secret_property("sasl.password"));
        assert!(is_secret_property("ssl.keystore.password"));
        assert!(!is_secret_property("linger.ms"));
        assert_eq!(
            hide_quoted_value("Invalid value \"hunter2\" for configuration property \"sasl.password\""),
            "Invalid value \"***\" for configuration property \"sasl.password\""
        );
    }
}
