use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

/// How encoders write timestamp values (`encoding.timestamp_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    /// `2026-11-25T13:04:05.123456Z`: a JSON string (default).
    #[default]
    Rfc3339,
    /// Whole seconds since the Unix epoch: a number.
    Unix,
    /// Milliseconds since the Unix epoch: a number.
    UnixMs,
    /// Seconds since the Unix epoch with a fraction: a number.
    UnixFloat,
}

/// A timestamp rendered for output: text needs quoting in JSON, numbers do not.
pub(crate) enum RenderedTimestamp {
    Text(String),
    Number(String),
}

impl TimestampFormat {
    pub(crate) fn render(self, t: &DateTime<Utc>) -> RenderedTimestamp {
        match self {
            TimestampFormat::Rfc3339 => {
                RenderedTimestamp::Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            }
            TimestampFormat::Unix => RenderedTimestamp::Number(t.timestamp().to_string()),
            TimestampFormat::UnixMs => RenderedTimestamp::Number(t.timestamp_millis().to_string()),
            TimestampFormat::UnixFloat => {
                let secs = t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9;
                let mut buf = ryu::Buffer::new();
                RenderedTimestamp::Number(buf.format(secs).to_owned())
            }
        }
    }
}
