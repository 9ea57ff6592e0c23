use ferry_core::{BoxError, ConfigIssue, SourceContext, SourceTask};
use serde::Deserialize;

/// Which kind of lines the demo source writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DemoFormat {
    /// RFC 5424 syslog lines from a few daemons.
    Syslog,
    /// Web server access lines (combined log format).
    Access,
    /// Both, chosen at random per event.
    #[default]
    Mixed,
}

/// The `[sources.ID]` table of a `demo` source.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSourceConfig {
    /// `syslog`, `access` or `mixed` (default).
    #[serde(default)]
    pub format: DemoFormat,
    /// Events per second; `0` means as fast as the pipeline takes them (default 10).
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Stop after this many events; unset runs until shutdown.
    #[serde(default)]
    pub count: Option<u64>,
    /// Seed of the generator, for a reproducible stream (default: random).
    #[serde(default)]
    pub seed: Option<u64>,
}

fn default_rate() -> f64 {
    10.0
}

ferry_core::register_source! {
    name: "demo",
    description: "Generates realistic syslog and access-log events at a rate, for demos and benchmarks.",
    example: "[sources.demo]\ntype = \"demo\"\nformat = \"mixed\"\nrate = 100\ncount = 1000\n",
    impl SourceConfig for DemoSourceConfig {
        fn validate(&self) -> Vec<ConfigIssue> {
            if !self.rate.is_finite() || self.rate < 0.0 {
                return vec![ConfigIssue::new(
                    "rate",
                    "must be a number of events per second, 0 or more",
                )];
            }
            Vec::new()
        }

        fn build(&self, cx: SourceContext) -> Result<SourceTask, BoxError> {
            Ok(Box::pin(crate::source::run(self.clone(), cx)))
        }
    }
}
