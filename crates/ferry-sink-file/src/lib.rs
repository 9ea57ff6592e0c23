//! # ferry-sink-file
//!
//! Sink `type = "file"`: writes each event, encoded with `encoding.*`, as one line to the file
//! its `path` template names (`/var/log/ferry/{{ app }}-%Y-%m-%d.log`: fields of the event and
//! strftime specifiers of its timestamp), optionally gzip-compressed. Files are opened as the
//! template moves on and closed when idle or when more than `max_open_files` are open.
//!
//! Acknowledgement is group commit: a batch is written to every file it touches, each touched
//! file is fsynced, and only then are the batch's events settled as delivered. An event whose
//! path cannot be rendered (a missing field, a `..` that would leave the template's
//! directories) is rejected, counted and reported; a write that fails is tried again until it
//! works or the shutdown deadline passes.
//!
//! Made with `cargo xtask new-sink file`; the commit after the generated one shows what
//! turning the scaffold into this sink took.
//!
//! ```toml
//! [sinks.archive]
//! type = "file"
//! inputs = ["in"]
//! path = "/var/log/ferry/{{ app }}-%Y-%m-%d.log.gz"
//! compression = "gzip"
//! encoding.codec = "json"
//! ```

mod config;
mod error;
mod open_files;
mod sink;
#[cfg(test)]
mod tests;

pub use config::{Compression, FileSinkConfig};
pub use error::FileSinkError;
