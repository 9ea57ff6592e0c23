use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ferry_codecs::{Encoder, EncodingConfig};
use ferry_core::{
    BoxError, BufferConfig, ConfigIssue, FieldPath, Healthcheck, ReplayReport, ReplayRequest, Sensitive,
    SinkContext, SinkRunner, Template,
};
use ferry_dead_letter::DeadLetterConfig;
use serde::Deserialize;

/// Compression of record batches (`compression`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// No compression (default).
    #[default]
    None,
    /// gzip (DEFLATE).
    Gzip,
    /// LZ4: fast, modest ratio.
    Lz4,
    /// Snappy.
    Snappy,
    /// Zstandard: good ratio at good speed.
    Zstd,
}

impl Compression {
    /// librdkafka's `compression.codec` value.
    pub fn librdkafka_name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Lz4 => "lz4",
            Compression::Snappy => "snappy",
            Compression::Zstd => "zstd",
        }
    }
}

/// SASL mechanism (`sasl.mechanism`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    /// SCRAM with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// Plain user name and password (use with TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// A bearer token: from an OIDC token endpoint (client credentials) or from a file.
    #[serde(rename = "OAUTHBEARER")]
    OAuthBearer,
    /// Amazon MSK IAM: OAUTHBEARER carrying a SigV4-signed request made from AWS credentials.
    #[serde(rename = "AWS_MSK_IAM")]
    AwsMskIam,
}

impl SaslMechanism {
    /// librdkafka's `sasl.mechanism` value.
    pub fn librdkafka_name(self) -> &'static str {
        match self {
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::Plain => "PLAIN",
            // MSK IAM is OAUTHBEARER on the wire; only the token differs.
            SaslMechanism::OAuthBearer | SaslMechanism::AwsMskIam => "OAUTHBEARER",
        }
    }

    /// Whether the mechanism logs in with `sasl.username` and `sasl.password`.
    pub(crate) fn uses_password(self) -> bool {
        matches!(
            self,
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 | SaslMechanism::Plain
        )
    }
}

/// The `sasl` table. Which keys apply depends on `mechanism`; `validate` names the ones
/// missing or out of place.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// Authenticate with SASL (default false).
    #[serde(default)]
    pub enabled: bool,
    /// `SCRAM-SHA-256`, `SCRAM-SHA-512`, `PLAIN`, `OAUTHBEARER` or `AWS_MSK_IAM`.
    #[serde(default)]
    pub mechanism: Option<SaslMechanism>,
    /// The user name (SCRAM, PLAIN).
    #[serde(default)]
    pub username: Option<String>,
    /// The password (SCRAM, PLAIN; never logged).
    #[serde(default)]
    pub password: Option<Sensitive<String>>,
    /// OAUTHBEARER: the OIDC token endpoint of the client-credentials flow.
    #[serde(default)]
    pub token_endpoint_url: Option<String>,
    /// OAUTHBEARER with `token_endpoint_url`: the client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAUTHBEARER with `token_endpoint_url`: the client secret (never logged).
    #[serde(default)]
    pub client_secret: Option<Sensitive<String>>,
    /// OAUTHBEARER with `token_endpoint_url`: the scope requested (optional).
    #[serde(default)]
    pub scope: Option<String>,
    /// OAUTHBEARER with `token_endpoint_url`: SASL extensions sent with the token
    /// (Confluent Cloud's `logicalCluster`, `identityPoolId`).
    #[serde(default)]
    pub extensions: BTreeMap<String, String>,
    /// OAUTHBEARER: a file holding a JWT, read again whenever it changes (a Kubernetes
    /// projected service account token, a sidecar's output).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// AWS_MSK_IAM: the cluster's AWS region (default: the usual AWS settings,
    /// `AWS_REGION` or the profile's `region`).
    #[serde(default)]
    pub region: Option<String>,
    /// AWS_MSK_IAM: a role to assume with the credentials found.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// AWS_MSK_IAM with `role_arn`: the session name (default `ferry`).
    #[serde(default)]
    pub role_session_name: Option<String>,
}

/// The `tls` table. Files may be given as paths or as inline PEM text.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Connect with TLS (default false).
    #[serde(default)]
    pub enabled: bool,
    /// CA certificate(s) to verify the brokers with: a PEM or DER file, or inline PEM.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Client certificate: a PEM or DER file, a PKCS#12 archive (`.p12`/`.pfx`, holding the
    /// key too), or inline PEM.
    #[serde(default)]
    pub crt_file: Option<String>,
    /// Client private key: a PEM or DER (PKCS#8) file, or inline PEM.
    #[serde(default)]
    pub key_file: Option<String>,
    /// Pass phrase of an encrypted key or of the PKCS#12 archive (never logged).
    #[serde(default)]
    pub key_pass: Option<Sensitive<String>>,
}

/// `librdkafka_options`: raw librdkafka properties applied after everything else. Values of
/// keys naming passwords or secrets are hidden in `Debug`.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct LibrdkafkaOptions(pub BTreeMap<String, String>);

impl fmt::Debug for LibrdkafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if crate::client::is_secret_property(k) {
                    "***"
                } else {
                    v.as_str()
                };
                (k, shown)
            }))
            .finish()
    }
}

pub(crate) const DEFAULT_MESSAGE_TIMEOUT_MS: u64 = 300_000;
pub(crate) const DEFAULT_SOCKET_TIMEOUT_MS: u64 = 60_000;
pub(crate) const DEFAULT_UNKNOWN_TOPIC_GRACE_MS: u64 = 60_000;
pub(crate) const DEFAULT_RETRY_QUEUE_MAX_EVENTS: usize = 100_000;
pub(crate) const DEFAULT_RETRY_QUEUE_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Added to `message_timeout_ms` for the default `producer_stall_timeout_ms`: librdkafka
/// reports every record within its message timeout, so a longer silence means it is stuck.
pub(crate) const STALL_MARGIN_MS: u64 = 60_000;

/// The `[sinks.ID]` table of a `kafka` sink. Option names, types and defaults follow the
/// reference document; `headers_key` and `healthcheck_topic` are additions.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// The sources feeding it.
    pub inputs: Vec<String>,
    /// Comma-separated `host:port` list of brokers to bootstrap from.
    pub bootstrap_servers: String,
    /// The topic, a template rendered per event (`logs-{{ unit }}-%Y-%m-%d`).
    pub topic: Template,
    /// The field whose value becomes the record key. Unset, or absent on an event: no key
    /// (librdkafka's partitioner spreads those records).
    #[serde(default)]
    pub key_field: Option<FieldPath>,
    /// A map field whose entries become record headers.
    #[serde(default)]
    pub headers_key: Option<FieldPath>,
    /// Batch compression (default `none`).
    #[serde(default)]
    pub compression: Compression,
    /// Check the brokers at start (default true).
    #[serde(default = "default_true")]
    pub healthcheck: bool,
    /// Topic whose metadata the health check requests when `topic` is a template (default:
    /// cluster metadata).
    #[serde(default)]
    pub healthcheck_topic: Option<String>,
    /// How long librdkafka may try one delivery (default 300000). A delivery that times out
    /// is counted as a retry and sent again.
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u64,
    /// Timeout of network requests (default 60000).
    #[serde(default = "default_socket_timeout_ms")]
    pub socket_timeout_ms: u64,
    /// How long the records of a topic that does not exist are kept and retried, while the
    /// other topics flow, before they go to the dead-letter destination (default 60000).
    #[serde(default = "default_unknown_topic_grace_ms")]
    pub unknown_topic_grace_ms: u64,
    /// The most records waiting to be sent again (default 100000); at the bound the sink
    /// reads no new input, so backpressure reaches the sources.
    #[serde(default = "default_retry_queue_max_events")]
    pub retry_queue_max_events: usize,
    /// The most payload bytes waiting to be sent again (default 64 MiB); as above.
    #[serde(default = "default_retry_queue_max_bytes")]
    pub retry_queue_max_bytes: u64,
    /// How long records may wait in the producer without any delivery report before the
    /// producer is rebuilt (default `message_timeout_ms` + 60000).
    #[serde(default)]
    pub producer_stall_timeout_ms: Option<u64>,
    /// Where records that can never be delivered go (default: files under
    /// `<data_dir>/dead_letters/<sink id>/`).
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    /// Raw librdkafka properties, applied last (they override Ferry's defaults).
    #[serde(default)]
    pub librdkafka_options: LibrdkafkaOptions,
    /// The payload format (default `text`).
    #[serde(default)]
    pub encoding: EncodingConfig,
    /// The buffer in front of the sink.
    #[serde(default)]
    pub buffer: BufferConfig,
    /// SASL authentication.
    #[serde(default)]
    pub sasl: SaslConfig,
    /// TLS.
    #[serde(default)]
    pub tls: TlsConfig,
}

fn default_true() -> bool {
    true
}

fn default_message_timeout_ms() -> u64 {
    DEFAULT_MESSAGE_TIMEOUT_MS
}

fn default_socket_timeout_ms() -> u64 {
    DEFAULT_SOCKET_TIMEOUT_MS
}

fn default_unknown_topic_grace_ms() -> u64 {
    DEFAULT_UNKNOWN_TOPIC_GRACE_MS
}

fn default_retry_queue_max_events() -> usize {
    DEFAULT_RETRY_QUEUE_MAX_EVENTS
}

fn default_retry_queue_max_bytes() -> u64 {
    DEFAULT_RETRY_QUEUE_MAX_BYTES
}

impl KafkaSinkConfig {
    pub(crate) fn check(&self) -> Vec<ConfigIssue> {
        let mut issues = self.buffer.validate();
        issues.extend(self.encoding.validate());
        if self.bootstrap_servers.split(',').all(|s| s.trim().is_empty()) {
            issues.push(ConfigIssue::new(
                "bootstrap_servers",
                "must list at least one `host:port`",
            ));
        }
        if self.topic.as_str().trim().is_empty() {
            issues.push(ConfigIssue::new("topic", "must not be empty"));
        } else if let Some(why) = topic_template_problem(&self.topic) {
            issues.push(ConfigIssue::new("topic", why));
        }
        if self.message_timeout_ms == 0 {
            issues.push(ConfigIssue::new("message_timeout_ms", "must be at least 1"));
        }
        if self.socket_timeout_ms < 10 {
            issues.push(ConfigIssue::new("socket_timeout_ms", "must be at least 10"));
        }
        if self.retry_queue_max_events == 0 {
            issues.push(ConfigIssue::new("retry_queue_max_events", "must be at least 1"));
        }
        if self.retry_queue_max_bytes < 1024 {
            issues.push(ConfigIssue::new("retry_queue_max_bytes", "must be at least 1024"));
        }
        if self.producer_stall_timeout_ms.is_some_and(|ms| ms < 1000) {
            issues.push(ConfigIssue::new(
                "producer_stall_timeout_ms",
                "must be at least 1000 (it should exceed message_timeout_ms)",
            ));
        }
        issues.extend(self.dead_letter.validate());
        if let Some(topic) = &self.dead_letter.topic
            && !topic.trim().is_empty()
            && let Err(why) = crate::failure::valid_topic_name(topic)
        {
            issues.push(ConfigIssue::new(
                "dead_letter.topic",
                why.replace("the rendered topic", "the topic"),
            ));
        }
        issues.extend(self.sasl.check());
        // librdkafka's own checks of each raw property (name known, value valid) need no
        // client, so they are configuration errors with a line, not failures at start.
        for (key, value) in &self.librdkafka_options.0 {
            let mut one = rdkafka::ClientConfig::new();
            one.set(key, value);
            if let Err(why) = crate::client::check_properties(&one) {
                let why = why.to_string();
                let why = why.strip_prefix("invalid producer setting: ").unwrap_or(&why);
                let why = why.strip_suffix(" (check librdkafka_options)").unwrap_or(why);
                issues.push(ConfigIssue::new(format!("librdkafka_options.\"{key}\""), why));
            }
        }
        let tls = &self.tls;
        // A TLS file that is missing or unreadable is found now, with its line, rather than
        // when the producer is made.
        if tls.enabled
            && let Err(e) = crate::tls::apply(tls, &mut rdkafka::ClientConfig::new())
        {
            issues.push(ConfigIssue::new(e.key(), e.reason()));
        }
        let any_tls = tls.ca_file.is_some() || tls.crt_file.is_some() || tls.key_file.is_some();
        if !tls.enabled && any_tls {
            issues.push(ConfigIssue::new(
                "tls.enabled",
                "is false but tls files are set: set tls.enabled = true to use them",
            ));
        }
        if tls.key_file.is_some() && tls.crt_file.is_none() {
            issues.push(ConfigIssue::new(
                "tls.crt_file",
                "is required when tls.key_file is set",
            ));
        }
        if let Some(crt) = &tls.crt_file
            && tls.key_file.is_none()
            && !crate::tls::looks_like_pkcs12(crt)
        {
            issues.push(ConfigIssue::new(
                "tls.key_file",
                "is required when tls.crt_file is not a PKCS#12 archive (.p12/.pfx)",
            ));
        }
        issues
    }
}

/// Why every topic `topic` can render is a name Kafka refuses, if it is: a static topic is
/// checked whole; a template's literal text (outside `{{ }}` and `%` specifiers) is checked for
/// characters no topic may hold. Without this, the broker's "unknown topic" answer sent the
/// user off to create a topic that can never exist.
fn topic_template_problem(topic: &Template) -> Option<String> {
    let text = topic.as_str();
    if topic.is_static() {
        return crate::failure::valid_topic_name(text).err().map(|why| {
            format!(
                "`{text}` is not a valid Kafka topic name: {}",
                why.replace("the rendered topic", "it")
            )
        });
    }
    let mut literal = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        literal.push_str(&rest[..open]);
        rest = rest[open..].split_once("}}").map_or("", |(_, after)| after);
    }
    literal.push_str(rest);
    let mut chars = literal.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            // A strftime specifier: its output is checked when it is rendered.
            chars.next();
            continue;
        }
        if !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            return Some(format!(
                "`{text}` can never render a valid Kafka topic name: it holds {c:?}, and a topic name may hold only ASCII letters, digits, `.`, `_` and `-`"
            ));
        }
    }
    None
}

ferry_core::register_sink! {
    name: "kafka",
    description: "Streams events into Apache Kafka with at-least-once delivery (librdkafka).",
    example: "[sinks.kafka]\ntype = \"kafka\"\ninputs = [\"in\"]\nbootstrap_servers = \"127.0.0.1:9092\"\ntopic = \"logs-{{ unit }}\"\nkey_field = \"host\"\ncompression = \"zstd\"\nencoding.codec = \"json\"\n",
    impl SinkConfig for KafkaSinkConfig {
        fn validate(&self) -> Vec<ConfigIssue> {
            self.check()
        }

        fn build(&self, cx: SinkContext) -> Result<(Box<dyn SinkRunner>, Healthcheck), BoxError> {
            let (sink, healthcheck) = self.build_sink(cx)?;
            Ok((Box::new(sink), healthcheck))
        }

        fn check_offline(&self, cx: SinkContext) -> Result<(), BoxError> {
            let _ = cx;
            self.check_settings()?;
            Ok(())
        }

        fn replay_dead_letters(&self, request: &ReplayRequest) -> Result<ReplayReport, BoxError> {
            Ok(crate::replay::replay(self, request)?)
        }
    }
}

impl KafkaSinkConfig {
    /// What `build` checks before it makes the producer, with no client made: librdkafka's
    /// client connects to the brokers the moment it exists (and its OIDC login fetches a
    /// token), so validating without health checks must stop short of it. The TLS files are
    /// read, the token source is set up, and every property is given to librdkafka's
    /// configuration object, which refuses unknown names and invalid values.
    pub(crate) fn check_settings(&self) -> Result<(), BoxError> {
        let client_config = crate::client::client_config(self)?;
        crate::token::TokenSource::from_config(&self.sasl)?;
        crate::client::check_properties(&client_config)?;
        Ok(())
    }

    /// The sink itself (the crate's tests reach into it).
    pub(crate) fn build_sink(
        &self,
        cx: SinkContext,
    ) -> Result<(crate::sink::KafkaSink, Healthcheck), BoxError> {
        let client_config = crate::client::client_config(self)?;
        let token = crate::token::TokenSource::from_config(&self.sasl)?;
        let shared = crate::context::SinkShared::new(cx.id.clone(), cx.metrics.clone(), token);
        // Set once per sink: a sink built twice on the same counters (tests) keeps the first.
        let _ = cx.metrics.extra.set(shared.stats.clone());
        let producer = crate::client::create_producer(&client_config, shared.clone())?;
        let healthcheck = crate::health::healthcheck(self, producer.clone(), shared.clone());
        let metadata = crate::metadata::MetadataWatcher::start(producer.clone(), &cx.id)?;
        let stall_timeout_ms = self
            .producer_stall_timeout_ms
            .unwrap_or(self.message_timeout_ms.saturating_add(STALL_MARGIN_MS));
        let sink = crate::sink::KafkaSink {
            id: cx.id,
            topics: crate::topic::TopicProducer::new(producer, metadata),
            client_config,
            shared,
            records: crate::record::RecordBuilder::new(
                self.topic.clone(),
                self.key_field.clone(),
                self.headers_key.clone(),
                Encoder::new(&self.encoding),
            ),
            metrics: cx.metrics,
            health: cx.health,
            resilience: crate::sink::Resilience {
                unknown_topic_grace: Duration::from_millis(self.unknown_topic_grace_ms),
                retry_max_events: self.retry_queue_max_events,
                retry_max_bytes: usize::try_from(self.retry_queue_max_bytes).unwrap_or(usize::MAX),
                stall_timeout: Duration::from_millis(stall_timeout_ms),
                dead_letter: self.dead_letter.clone(),
            },
            data_dir: cx.data_dir,
            deadline: cx.deadline,
            durable_buffer: cx.durable_buffer,
        };
        Ok((sink, healthcheck))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic_issue(topic: &str) -> Option<String> {
        let text = format!(
            "inputs = [\"in\"]\nbootstrap_servers = \"127.0.0.1:9092\"\ntopic = {}\n",
            toml::Value::String(topic.to_owned())
        );
        let config: KafkaSinkConfig = toml::from_str(&text).expect("config parses");
        config
            .check()
            .into_iter()
            .find(|issue| issue.key == "topic")
            .map(|issue| issue.message)
    }

    #[test]
    fn a_topic_kafka_would_refuse_is_a_config_error() {
        for bad in [
            "my logs",
            "..",
            ".",
            "logs/app",
            &"x".repeat(250),
            "logs {{ app }}",
        ] {
            let issue = topic_issue(bad).unwrap_or_else(|| panic!("`{bad}` passed"));
            assert!(issue.contains("topic name"), "{bad}: {issue}");
        }
        for good in [
            "logs",
            "logs-{{ app }}-%Y.%m.%d",
            "a.b_c-D9",
            &"x".repeat(249),
            "{{ topic }}",
        ] {
            assert_eq!(topic_issue(good), None, "{good}");
        }
    }
}
