use std::time::Duration;

use ferry_codecs::DecodingConfig;
use ferry_core::{BoxError, ConfigIssue, SourceContext, SourceTask};
use serde::Deserialize;

use crate::checkpoint::CheckpointStore;

/// The `[sources.ID]` table of a `file` source.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Glob patterns of the files to tail (`*`, `?`, `[...]`, `**`).
    pub include: Vec<String>,
    /// Glob patterns of files to leave alone, even when `include` matches them.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Where to start in a file that has no checkpoint and is found at the first discovery
    /// after a start without checkpoints. Files that appear later are always read from their
    /// beginning (their first lines were written after Ferry started).
    #[serde(default)]
    pub read_from: ReadFrom,
    /// How often the globs are matched again to find new, rotated and deleted files.
    #[serde(default = "default_discovery_interval_ms")]
    pub discovery_interval_ms: u64,
    /// How long the reader sleeps when no file had anything new.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Lines longer than this many bytes are split into several events.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Whether a `\r` before a line's `\n` is removed.
    #[serde(default = "default_true")]
    pub strip_carriage_return: bool,
    /// How each line becomes an event (default `bytes`).
    #[serde(default)]
    pub decoding: DecodingConfig,
    /// The field that receives the file's path (empty: none).
    #[serde(default = "default_file_key")]
    pub file_key: String,
    /// The field that receives the line's byte offset in its file (empty: none).
    #[serde(default = "default_offset_key")]
    pub offset_key: String,
    /// At most this many files are open at once; more wait for a free slot.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    /// Reading pauses while this many bytes of lines are read but not yet safe.
    #[serde(default = "default_max_unacked_bytes")]
    pub max_unacked_bytes: u64,
    /// A file no longer reachable under a matched path (rotated away, deleted) is closed once
    /// it was read to its end and nothing was appended to it for this long.
    #[serde(default = "default_rotate_wait_ms")]
    pub rotate_wait_ms: u64,
}

/// Where a never-seen file is first read from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// Its first byte.
    #[default]
    Beginning,
    /// Its current end: only lines written from now on.
    End,
}

/// Longer waits are surely mistakes (and would overflow a deadline).
const MAX_INTERVAL_MS: u64 = 86_400_000;

fn default_discovery_interval_ms() -> u64 {
    1000
}
fn default_poll_interval_ms() -> u64 {
    250
}
fn default_max_line_bytes() -> usize {
    1 << 20
}
fn default_true() -> bool {
    true
}
fn default_file_key() -> String {
    "file".into()
}
fn default_offset_key() -> String {
    "offset".into()
}
fn default_max_open_files() -> usize {
    1024
}
fn default_max_unacked_bytes() -> u64 {
    32 << 20
}
fn default_rotate_wait_ms() -> u64 {
    5000
}

impl FileSourceConfig {
    pub(crate) fn discovery_interval(&self) -> Duration {
        Duration::from_millis(self.discovery_interval_ms)
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub(crate) fn rotate_wait(&self) -> Duration {
        Duration::from_millis(self.rotate_wait_ms)
    }
}

ferry_core::register_source! {
    name: "file",
    description: "Tails files matched by globs; checkpoints move only with acknowledgements.",
    example: "[sources.logs]\ntype = \"file\"\ninclude = [\"/var/log/app/*.log\"]\nread_from = \"beginning\"\n",
    impl SourceConfig for FileSourceConfig {
        fn validate(&self) -> Vec<ConfigIssue> {
            let mut issues = Vec::new();
            if self.include.is_empty() {
                issues.push(ConfigIssue::new("include", "must list at least one glob pattern"));
            }
            for (key, patterns) in [("include", &self.include), ("exclude", &self.exclude)] {
                for (i, pattern) in patterns.iter().enumerate() {
                    if let Err(e) = glob::Pattern::new(pattern) {
                        issues.push(ConfigIssue::new(
                            format!("{key}[{i}]"),
                            format!("`{pattern}` is not a valid glob pattern: {e}"),
                        ));
                    }
                }
            }
            for (key, value) in [
                ("discovery_interval_ms", self.discovery_interval_ms),
                ("poll_interval_ms", self.poll_interval_ms),
                ("max_open_files", self.max_open_files as u64),
            ] {
                if value == 0 {
                    issues.push(ConfigIssue::new(key, "must be at least 1"));
                }
            }
            for (key, value) in [
                ("discovery_interval_ms", self.discovery_interval_ms),
                ("poll_interval_ms", self.poll_interval_ms),
                ("rotate_wait_ms", self.rotate_wait_ms),
            ] {
                if value > MAX_INTERVAL_MS {
                    issues.push(ConfigIssue::new(key, format!("must be at most {MAX_INTERVAL_MS} (one day)")));
                }
            }
            if self.max_line_bytes == 0 {
                issues.push(ConfigIssue::new("max_line_bytes", "must be at least 1"));
            }
            if self.max_unacked_bytes < self.max_line_bytes as u64 {
                issues.push(ConfigIssue::new(
                    "max_unacked_bytes",
                    format!(
                        "must be at least max_line_bytes ({}), or no line could ever be read",
                        self.max_line_bytes
                    ),
                ));
            }
            issues
        }

        fn build(&self, cx: SourceContext) -> Result<SourceTask, BoxError> {
            let dir = cx.data_dir.join("checkpoints").join(&cx.id);
            let (store, loaded) = CheckpointStore::open(&dir)?;
            Ok(Box::pin(crate::source::run(self.clone(), store, loaded, cx)))
        }
    }
}
