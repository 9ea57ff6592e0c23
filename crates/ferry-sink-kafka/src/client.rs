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
/// | `statistics.interval.ms` | `5000` | librdkafka's statistics (queue depth, broker states, round-trip times) feed `/metrics` and the broker-reachability part of `/health`: one JSON report every 5 s, parsed off the event path; `0` turns them off |
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
    ("statistics.interval.ms", "5000"),
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
    // rdkafka caps librdkafka's log level to what the `log` crate enables (nothing, under
    // tracing) right after it makes the client, which silenced `librdkafka_options.debug`.
    // Asking for debug contexts means asking to see them (at trace level: `-vv`).
    if config.librdkafka_options.0.contains_key("debug") {
        cc.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    Ok(cc)
}

/// Gives every property to a librdkafka configuration object without making a client (no
/// connection, no thread): an unknown name or an invalid value is refused as
/// [`create_producer`] would refuse it. Checks that need the whole client (settings that
/// contradict each other) are left to it.
pub(crate) fn check_properties(cc: &ClientConfig) -> Result<(), ClientError> {
    match cc.create_native_config() {
        Ok(_) => Ok(()),
        Err(KafkaError::ClientConfig(_, message, key, _)) => {
            let message = if is_secret_property(&key) {
                hide_quoted_value(&message)
            } else {
                message
            };
            Err(ClientError::InvalidSetting(format!(
                "{message} (check librdkafka_options)"
            )))
        }
        Err(other) => Err(ClientError::InvalidSetting(other.to_string())),
    }
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

#[cfg(test)]
mod promised_defaults {
    //! The settings Ferry promises in its docs, asserted on what librdkafka ends up using.

    use std::ffi::{CStr, CString};

    use rdkafka::bindings as rdsys;
    use rdkafka::producer::{BaseProducer, Producer as _};

    use super::*;
    use crate::config::Compression;

    fn sink_config(extra: &str) -> KafkaSinkConfig {
        let text =
            format!("inputs = [\"in\"]\nbootstrap_servers = \"127.0.0.1:9\"\ntopic = \"t\"\n{extra}\n");
        toml::from_str(&text).expect("config parses")
    }

    /// The value librdkafka's client uses for `name` after it was made (it adjusts some
    /// settings to others, as `max.in.flight` to idempotence).
    fn effective(producer: &BaseProducer, name: &str) -> String {
        let name = CString::new(name).expect("no NUL");
        let mut buf = vec![0u8; 512];
        let mut size = buf.len();
        // SAFETY: a live client; librdkafka writes at most `size` bytes, NUL-terminated.
        let res = unsafe {
            let conf = rdsys::rd_kafka_conf(producer.client().native_ptr());
            rdsys::rd_kafka_conf_get(conf, name.as_ptr(), buf.as_mut_ptr().cast(), &mut size)
        };
        assert_eq!(res, rdsys::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK, "{name:?}");
        CStr::from_bytes_until_nul(&buf)
            .expect("NUL-terminated")
            .to_string_lossy()
            .into_owned()
    }

    fn made(cc: &ClientConfig) -> BaseProducer {
        let mut cc = cc.clone();
        // librdkafka's in-process mock cluster: the client is real, nothing leaves the process.
        cc.set("test.mock.num.brokers", "1");
        cc.create().expect("the producer is made")
    }

    #[test]
    fn idempotence_acks_all_and_per_partition_order_are_the_defaults() {
        let cc = client_config(&sink_config("")).expect("client config");
        let producer = made(&cc);
        assert_eq!(effective(&producer, "enable.idempotence"), "true");
        assert_eq!(effective(&producer, "acks"), "-1", "acks=all");
        // Order within a partition, even across retries, needs idempotence and at most five
        // requests in flight per connection (librdkafka keeps sequence numbers in order then).
        let in_flight: u32 = effective(&producer, "max.in.flight.requests.per.connection")
            .parse()
            .expect("a number");
        assert!(in_flight <= 5, "max.in.flight = {in_flight}");
        assert_eq!(effective(&producer, "linger.ms"), "10");
        assert_eq!(effective(&producer, "client.id"), "ferry");
    }

    #[test]
    fn librdkafka_options_override_the_defaults() {
        let cc = client_config(&sink_config(
            "librdkafka_options = { \"enable.idempotence\" = \"false\", acks = \"1\" }",
        ))
        .expect("client config");
        let producer = made(&cc);
        assert_eq!(effective(&producer, "enable.idempotence"), "false");
        assert_eq!(effective(&producer, "acks"), "1");
    }

    #[test]
    fn every_compression_setting_reaches_librdkafka() {
        for (name, codec) in [
            ("none", Compression::None),
            ("gzip", Compression::Gzip),
            ("lz4", Compression::Lz4),
            ("snappy", Compression::Snappy),
            ("zstd", Compression::Zstd),
        ] {
            let config = sink_config(&format!("compression = \"{name}\""));
            assert_eq!(config.compression, codec);
            let producer = made(&client_config(&config).expect("client config"));
            assert_eq!(effective(&producer, "compression.codec"), name, "{name}");
        }
    }
}
