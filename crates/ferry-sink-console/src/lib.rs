//! # ferry-sink-console
//!
//! Sink `type = "console"`: writes each event, encoded by its `encoding` table and followed by
//! a newline, to standard output (or `target = "stderr"`). Writes are whole lines: a batch is
//! encoded into one buffer and written at once, so a process stopped mid-run never leaves half
//! a line. Events are settled `Delivered` once their bytes were written and flushed.
//!
//! ```toml
//! [sinks.out]
//! type = "console"
//! inputs = ["in"]
//! encoding.codec = "json"
//! ```

mod config;
mod sink;

pub use config::{ConsoleSinkConfig, ConsoleTarget};
