//! The `dead_letter` table of a sink.

use std::path::{Path, PathBuf};

use ferry_core::ConfigIssue;

/// The smallest `max_file_bytes` accepted: smaller files would hold a letter or two each.
pub const MIN_FILE_BYTES: u64 = 4096;

/// `max_file_bytes` when it is not set: 64 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The `dead_letter` table of a sink:
///
/// ```toml
/// [sinks.kafka.dead_letter]
/// path = "/var/lib/ferry/dead_letters/kafka"   # default: <data_dir>/dead_letters/<sink id>
/// max_file_bytes = 67108864                    # start a new file past this size
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// The directory holding the sink's dead-letter files; default
    /// `<data_dir>/dead_letters/<sink id>`. A relative path is taken from the working
    /// directory, like every other path in the configuration.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A file past this size is closed and the next letters go to a new one; at least
    /// [`MIN_FILE_BYTES`], default [`DEFAULT_MAX_FILE_BYTES`].
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// A Kafka topic to write dead letters to instead of files. The Kafka sink reads it; this
    /// crate only carries it.
    #[serde(default)]
    pub topic: Option<String>,
}

fn default_max_file_bytes() -> u64 {
    DEFAULT_MAX_FILE_BYTES
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        Self {
            path: None,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            topic: None,
        }
    }
}

impl DeadLetterConfig {
    /// Every problem with the values; keys are relative to the sink (`dead_letter.max_file_bytes`).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.max_file_bytes < MIN_FILE_BYTES {
            issues.push(ConfigIssue::new(
                "dead_letter.max_file_bytes",
                format!(
                    "must be at least {MIN_FILE_BYTES} bytes (got {}); the default is {DEFAULT_MAX_FILE_BYTES} (64 MiB)",
                    self.max_file_bytes
                ),
            ));
        }
        if self.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            issues.push(ConfigIssue::new(
                "dead_letter.path",
                "must not be empty; leave it out for <data_dir>/dead_letters/<sink id>",
            ));
        }
        if self.topic.as_deref().is_some_and(|t| t.trim().is_empty()) {
            issues.push(ConfigIssue::new(
                "dead_letter.topic",
                "must not be empty; leave it out to write dead letters to files",
            ));
        }
        issues
    }

    /// The directory for `sink_id`'s dead-letter files: `path`, or the default under `data_dir`.
    pub fn dir(&self, data_dir: &Path, sink_id: &str) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| default_dir(data_dir, sink_id))
    }
}

/// The directory holding every sink's default dead-letter directory: `<data_dir>/dead_letters`.
pub fn root_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("dead_letters")
}

/// A sink's default dead-letter directory: `<data_dir>/dead_letters/<sink_id>`.
pub fn default_dir(data_dir: &Path, sink_id: &str) -> PathBuf {
    root_dir(data_dir).join(sink_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_parsing() {
        let empty: DeadLetterConfig = toml_like("{}");
        assert_eq!(empty, DeadLetterConfig::default());
        assert_eq!(empty.max_file_bytes, 64 * 1024 * 1024);
        assert!(empty.validate().is_empty());
        assert_eq!(
            empty.dir(Path::new("/data"), "kafka"),
            PathBuf::from("/data/dead_letters/kafka")
        );
        let set: DeadLetterConfig = toml_like(r#"{"path": "/dl", "max_file_bytes": 8192, "topic": "dead"}"#);
        assert_eq!(set.dir(Path::new("/data"), "kafka"), PathBuf::from("/dl"));
        assert_eq!(set.topic.as_deref(), Some("dead"));
        assert!(set.validate().is_empty());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(serde_json::from_str::<DeadLetterConfig>(r#"{"max_bytes": 1}"#).is_err());
    }

    #[test]
    fn validation_names_the_key() {
        let config = DeadLetterConfig {
            path: Some(PathBuf::new()),
            max_file_bytes: 100,
            topic: Some(" ".into()),
        };
        let keys: Vec<_> = config.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "dead_letter.max_file_bytes",
                "dead_letter.path",
                "dead_letter.topic"
            ]
        );
    }

    // The crate does not depend on `toml`; serde treats a JSON object the same way.
    fn toml_like(json: &str) -> DeadLetterConfig {
        serde_json::from_str(json).unwrap()
    }
}
