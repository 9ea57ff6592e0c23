use ferry_codecs::{Encoder, EncodingConfig};
use ferry_core::{BoxError, BufferConfig, ConfigIssue, Healthcheck, SinkContext, SinkRunner};
use serde::Deserialize;

/// Which stream the console sink writes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleTarget {
    /// Standard output (default).
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

/// The `[sinks.ID]` table of a `console` sink.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSinkConfig {
    /// The sources feeding it.
    pub inputs: Vec<String>,
    /// `stdout` (default) or `stderr`.
    #[serde(default)]
    pub target: ConsoleTarget,
    /// How events are written (default `text`).
    #[serde(default)]
    pub encoding: EncodingConfig,
    /// The buffer in front of it.
    #[serde(default)]
    pub buffer: BufferConfig,
    /// Accepted for symmetry with other sinks; the console is always healthy.
    #[serde(default = "default_true")]
    pub healthcheck: bool,
}

fn default_true() -> bool {
    true
}

ferry_core::register_sink! {
    name: "console",
    description: "Writes encoded events to standard output or standard error, one per line.",
    example: "[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nencoding.codec = \"json\"\n",
    impl SinkConfig for ConsoleSinkConfig {
        fn validate(&self) -> Vec<ConfigIssue> {
            let mut issues = self.buffer.validate();
            issues.extend(self.encoding.validate());
            issues
        }

        fn build(&self, cx: SinkContext) -> Result<(Box<dyn SinkRunner>, Healthcheck), BoxError> {
            let sink = crate::sink::ConsoleSink {
                target: self.target,
                encoder: Encoder::new(&self.encoding),
                metrics: cx.metrics,
            };
            Ok((Box::new(sink), Box::pin(async { Ok(()) })))
        }
    }
}
