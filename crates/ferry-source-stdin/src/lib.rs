//! # ferry-source-stdin
//!
//! Source `type = "stdin"`: reads standard input and emits one event per line, with
//! `message` (the line without its `\n` or `\r\n`), `host` and `timestamp` (ingestion time).
//! With `decoding.codec = "json"` each line's object becomes the event's fields; a line that is
//! not a JSON object is kept whole as `message`, counted and reported (rate-limited), never
//! dropped.
//!
//! Lines are sliced out of large read buffers without copying. At end of input the last line
//! is emitted even without a trailing newline, and the source completes, which lets the
//! pipeline drain and the process exit.
//!
//! ```toml
//! [sources.in]
//! type = "stdin"
//! decoding.codec = "json"
//! ```

mod config;
mod lines;
mod source;

pub use config::StdinSourceConfig;
pub use lines::LineSplitter;
