//! # ferry-source-demo
//!
//! Source `type = "demo"`: generates realistic log events for demos, tests and benchmarks,
//! without any input. Each event has a `message` line as the program would have written it,
//! plus the structured fields a parser would extract, so templates and encoders have something
//! to work with:
//!
//! - `syslog` lines (`<34>1 2026-11-25T10:00:00Z web-3 sshd 4121 - - Accepted publickey ...`)
//!   with `unit`, `pid`, `severity`, `facility`;
//! - `access` lines in the combined log format with `method`, `path`, `status`, `bytes`,
//!   `client_ip`, `user_id`, `unit = "nginx"`;
//! - `mixed` (default): both, alternating at random.
//!
//! `count` stops the source after that many events (then the pipeline drains and ferry exits);
//! `rate` is events per second (`0` = as fast as possible); `seed` makes the stream
//! reproducible.
//!
//! ```toml
//! [sources.demo]
//! type = "demo"
//! format = "mixed"
//! rate = 100
//! count = 1000
//! ```

mod config;
mod generator;
mod source;

pub use config::{DemoFormat, DemoSourceConfig};
pub use generator::DemoGenerator;
