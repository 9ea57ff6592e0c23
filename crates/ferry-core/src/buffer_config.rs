//! The `buffer.*` table every sink accepts. The types live here, beside the component
//! contract, so that sinks can declare them and the topology can read them; the buffers
//! themselves are in `ferry-buffers`.

use serde::Deserialize;

/// Where a sink's buffer keeps waiting events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferType {
    /// In memory: fast, lost when the process dies.
    #[default]
    Memory,
    /// On disk: survives restarts and crashes.
    Disk,
}

/// What a full buffer does with a new event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// The source waits until there is room (backpressure): nothing is lost.
    #[default]
    Block,
    /// The new event is dropped, counted, and its source told it was not delivered.
    DropNewest,
}

/// The default `buffer.max_events`.
pub const DEFAULT_MAX_EVENTS: usize = 500;

/// A sink's `buffer` table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// `memory` (default) or `disk`.
    #[serde(rename = "type", default)]
    pub kind: BufferType,
    /// The most events a memory buffer holds waiting for the sink (default 500).
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// The most bytes a disk buffer may use; required for `type = "disk"`.
    #[serde(default)]
    pub max_size: Option<u64>,
    /// `block` (default) or `drop_newest`.
    #[serde(default)]
    pub when_full: WhenFull,
    /// Disk buffers: how often written events are fsynced and acknowledged to their sources
    /// (group commit), in milliseconds (default 100).
    #[serde(default = "default_sync_interval_ms")]
    pub sync_interval_ms: u64,
}

fn default_max_events() -> usize {
    DEFAULT_MAX_EVENTS
}

/// The default `buffer.sync_interval_ms`.
pub const DEFAULT_SYNC_INTERVAL_MS: u64 = 100;

/// The smallest `buffer.max_size` accepted: below this a disk buffer could not hold even a
/// few batches.
pub const MIN_DISK_MAX_SIZE: u64 = 1 << 20;

fn default_sync_interval_ms() -> u64 {
    DEFAULT_SYNC_INTERVAL_MS
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            kind: BufferType::Memory,
            max_events: DEFAULT_MAX_EVENTS,
            max_size: None,
            when_full: WhenFull::Block,
            sync_interval_ms: DEFAULT_SYNC_INTERVAL_MS,
        }
    }
}

impl BufferConfig {
    /// Problems a sink reports for its `buffer` table, keyed relative to the sink.
    pub fn validate(&self) -> Vec<crate::component::ConfigIssue> {
        use crate::component::ConfigIssue;
        let mut issues = Vec::new();
        if self.max_events == 0 {
            issues.push(ConfigIssue::new("buffer.max_events", "must be at least 1"));
        }
        if self.kind == BufferType::Disk {
            match self.max_size {
                None => issues.push(ConfigIssue::new(
                    "buffer.max_size",
                    "is required when buffer.type = \"disk\" (bytes, e.g. 268435456 for 256 MiB)",
                )),
                Some(size) if size < MIN_DISK_MAX_SIZE => issues.push(ConfigIssue::new(
                    "buffer.max_size",
                    format!("{size} bytes is too small for a disk buffer; use at least {MIN_DISK_MAX_SIZE} (1 MiB)"),
                )),
                Some(_) => {}
            }
            if self.sync_interval_ms == 0 || self.sync_interval_ms > 60_000 {
                issues.push(ConfigIssue::new(
                    "buffer.sync_interval_ms",
                    "must be between 1 and 60000",
                ));
            }
        }
        issues
    }
}
