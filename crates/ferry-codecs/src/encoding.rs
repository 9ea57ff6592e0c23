use ferry_core::{ConfigIssue, FieldPath, PathSegment};
use serde::Deserialize;

use crate::timestamp::TimestampFormat;

/// The payload format of a sink's records (`encoding.codec`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncodingCodec {
    /// The `message` field only (empty when absent): lines pass through unchanged.
    #[default]
    Text,
    /// The whole event as one JSON object.
    Json,
    /// The whole event as `key=value` pairs; nested fields flattened to `a.b=...`.
    Logfmt,
}

/// A sink's `encoding` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodingConfig {
    /// `text` (default), `json` or `logfmt`.
    #[serde(default)]
    pub codec: EncodingCodec,
    /// Write only these fields (nested paths allowed). Exclusive with `except_fields`.
    #[serde(default)]
    pub only_fields: Option<Vec<FieldPath>>,
    /// Write every field but these (nested paths allowed). Exclusive with `only_fields`.
    #[serde(default)]
    pub except_fields: Option<Vec<FieldPath>>,
    /// How timestamps are written (default `rfc3339`).
    #[serde(default)]
    pub timestamp_format: TimestampFormat,
}

impl EncodingConfig {
    /// The default `json` encoding.
    pub fn json() -> Self {
        Self {
            codec: EncodingCodec::Json,
            ..Self::default()
        }
    }

    /// Problems with the table, keyed relative to the sink (`encoding.only_fields`).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.only_fields.is_some() && self.except_fields.is_some() {
            issues.push(ConfigIssue::new(
                "encoding.except_fields",
                "cannot be set together with encoding.only_fields: keep one of them",
            ));
        }
        for (key, paths) in [
            ("encoding.only_fields", &self.only_fields),
            ("encoding.except_fields", &self.except_fields),
        ] {
            for path in paths.iter().flatten() {
                if path.segments().iter().any(|s| matches!(s, PathSegment::Index(_))) {
                    issues.push(ConfigIssue::new(
                        key,
                        format!("`{path}`: array indexes cannot be filtered, name whole fields"),
                    ));
                }
            }
        }
        issues
    }
}
