//! # ferry-source-file
//!
//! Source `type = "file"`: tails the files that `include` globs match (minus `exclude`) and
//! emits one event per line, with `message`, `host`, `timestamp`, the file's path (`file`)
//! and the line's byte offset (`offset`). `decoding.codec = "json"` works as on stdin.
//!
//! The guarantee: a file's checkpoint moves past a line only once that line and every earlier
//! line of the same file are safe (Kafka confirmed them, or a disk buffer fsynced them, or they
//! were rejected into the dead-letter destination). A crash or `kill -9` therefore costs
//! duplicates of what was in flight, never a line.
//!
//! How it is put together, one idea per module:
//! - [`tailer`]: the single reading loop (discovery, fair reads, verdicts, checkpoints);
//! - [`tracked`]: one followed file and its read position;
//! - [`acks`]: the per-file low-water mark that verdicts move;
//! - [`identity`]: `(device, inode)` plus head and marker fingerprints, which tell a rotated,
//!   truncated or reused file from the one a checkpoint describes;
//! - [`checkpoint`]: durable, checksummed checkpoint files with a previous generation;
//! - [`framing`]: lines with their offsets, over-long lines split.
//!
//! ```toml
//! [sources.app]
//! type = "file"
//! include = ["/var/log/app/*.log"]
//! exclude = ["/var/log/app/debug.log"]
//! read_from = "beginning"
//! decoding.codec = "json"
//! ```

pub mod acks;
pub mod checkpoint;
mod config;
pub mod framing;
pub mod identity;
mod source;
mod tailer;
pub mod tracked;

pub use config::{FileSourceConfig, ReadFrom};
