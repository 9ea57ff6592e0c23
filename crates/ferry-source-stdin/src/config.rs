use ferry_codecs::DecodingConfig;
use ferry_core::{BoxError, ConfigIssue, SourceContext, SourceTask};
use serde::Deserialize;

/// The `[sources.ID]` table of a `stdin` source.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinSourceConfig {
    /// How each line becomes an event (default `bytes`).
    #[serde(default)]
    pub decoding: DecodingConfig,
    /// Lines longer than this many bytes are split into several events (default 1 MiB).
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
}

fn default_max_line_bytes() -> usize {
    1 << 20
}

ferry_core::register_source! {
    name: "stdin",
    description: "Reads standard input, one event per line (decoding: bytes or json).",
    example: "[sources.in]\ntype = \"stdin\"\ndecoding.codec = \"bytes\"\n",
    impl SourceConfig for StdinSourceConfig {
        fn validate(&self) -> Vec<ConfigIssue> {
            if self.max_line_bytes == 0 {
                return vec![ConfigIssue::new("max_line_bytes", "must be at least 1")];
            }
            Vec::new()
        }

        fn build(&self, cx: SourceContext) -> Result<SourceTask, BoxError> {
            Ok(Box::pin(crate::source::run(self.clone(), cx)))
        }
    }
}
