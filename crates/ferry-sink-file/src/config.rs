use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use ferry_codecs::{Encoder, EncodingConfig};
use ferry_core::{BoxError, BufferConfig, ConfigIssue, Healthcheck, SinkContext, SinkRunner, Template};
use serde::Deserialize;

use crate::error::FileSinkError;

/// The `[sinks.ID]` table of a `file` sink.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The sources feeding it.
    pub inputs: Vec<String>,
    /// The file each event goes to: a template of the event's fields and time.
    pub path: Template,
    /// How events are written (default `text`).
    #[serde(default)]
    pub encoding: EncodingConfig,
    /// Whether what is written is gzip-compressed.
    #[serde(default)]
    pub compression: Compression,
    /// A file nothing was written to for this long is closed.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// At most this many files are open; the least recently used is closed for another.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    /// The buffer in front of it.
    #[serde(default)]
    pub buffer: BufferConfig,
    /// Whether ferry checks at start that the path's directory can be written.
    #[serde(default = "default_true")]
    pub healthcheck: bool,
}

/// How bytes are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// As encoded.
    #[default]
    None,
    /// One gzip member per batch and file; `gzip -d` and `zcat` read the members as one stream.
    Gzip,
}

fn default_true() -> bool {
    true
}

fn default_idle_timeout_secs() -> u64 {
    30
}

fn default_max_open_files() -> usize {
    64
}

impl FileSinkConfig {
    /// The directory every rendered path lies in: the template's text up to the last `/`
    /// before its first placeholder.
    pub(crate) fn fixed_dir(&self) -> PathBuf {
        let text = self.path.as_str();
        let first_dynamic = [text.find("{{"), text.find('%')].into_iter().flatten().min();
        let fixed = &text[..first_dynamic.unwrap_or(text.len())];
        match fixed.rfind('/') {
            Some(0) => PathBuf::from("/"),
            Some(slash) => PathBuf::from(&fixed[..slash]),
            None => PathBuf::from("."),
        }
    }
}

/// Whether `path` climbs out with `..` (only acceptable when the template itself does).
pub(crate) fn climbs(path: &Path) -> bool {
    path.components().any(|c| c == Component::ParentDir)
}

ferry_core::register_sink! {
    name: "file",
    description: "Writes events to files named by a template (fields, dates), fsynced before acknowledging.",
    example: "[sinks.archive]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"/tmp/ferry/{{ host }}-%Y-%m-%d.log\"\nencoding.codec = \"json\"\n",
    impl SinkConfig for FileSinkConfig {
        fn validate(&self) -> Vec<ConfigIssue> {
            let mut issues = self.buffer.validate();
            issues.extend(self.encoding.validate());
            if self.path.as_str().trim().is_empty() {
                issues.push(ConfigIssue::new("path", "must name a file"));
            }
            if self.path.as_str().ends_with('/') {
                issues.push(ConfigIssue::new("path", "names a directory; it must name a file"));
            }
            if self.idle_timeout_secs == 0 {
                issues.push(ConfigIssue::new("idle_timeout_secs", "must be at least 1"));
            }
            if self.max_open_files == 0 {
                issues.push(ConfigIssue::new("max_open_files", "must be at least 1"));
            }
            issues
        }

        fn build(&self, cx: SinkContext) -> Result<(Box<dyn SinkRunner>, Healthcheck), BoxError> {
            let sink = crate::sink::FileSink {
                id: cx.id.clone(),
                path: self.path.clone(),
                template_climbs: climbs(Path::new(self.path.as_str())),
                encoder: Encoder::new(&self.encoding),
                compression: self.compression,
                idle_timeout: Duration::from_secs(self.idle_timeout_secs),
                max_open_files: self.max_open_files,
                metrics: cx.metrics,
                health: cx.health,
                deadline: cx.deadline,
            };
            let dir = self.fixed_dir();
            let healthcheck = Box::pin(async move {
                tokio::task::spawn_blocking(move || crate::open_files::check_writable(&dir))
                    .await
                    .map_err(|_| FileSinkError::Task)??;
                Ok(())
            });
            Ok((Box::new(sink), healthcheck))
        }
    }
}
