use std::path::PathBuf;

use ferry_codecs::{Encoder, EncodingConfig};
use ferry_core::{BoxError, BufferConfig, ConfigIssue, Healthcheck, SinkContext, SinkRunner};
use serde::Deserialize;

/// The `[sinks.ID]` table of a `file` sink.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The sources feeding it.
    pub inputs: Vec<String>,
    /// The file events are appended to.
    pub path: PathBuf,
    /// How events are written (default `text`).
    #[serde(default)]
    pub encoding: EncodingConfig,
    /// The buffer in front of it.
    #[serde(default)]
    pub buffer: BufferConfig,
    /// Whether the start-up check that `path` can be opened runs.
    #[serde(default = "default_true")]
    pub healthcheck: bool,
}

fn default_true() -> bool {
    true
}

ferry_core::register_sink! {
    name: "file",
    description: "Appends encoded events to a file, one per line, fsynced before acknowledging.",
    example: "[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"/tmp/ferry-file.log\"\n",
    impl SinkConfig for FileSinkConfig {
        fn validate(&self) -> Vec<ConfigIssue> {
            let mut issues = self.buffer.validate();
            issues.extend(self.encoding.validate());
            if self.path.as_os_str().is_empty() {
                issues.push(ConfigIssue::new("path", "must name a file"));
            }
            issues
        }

        fn build(&self, cx: SinkContext) -> Result<(Box<dyn SinkRunner>, Healthcheck), BoxError> {
            let sink = crate::sink::FileSink {
                path: self.path.clone(),
                encoder: Encoder::new(&self.encoding),
                metrics: cx.metrics,
                deadline: cx.deadline,
            };
            let path = self.path.clone();
            let healthcheck = Box::pin(async move {
                tokio::task::spawn_blocking(move || crate::sink::open_for_append(&path).map(drop))
                    .await
                    .map_err(|_| crate::FileError::Task)??;
                Ok(())
            });
            Ok((Box::new(sink), healthcheck))
        }
    }
}
