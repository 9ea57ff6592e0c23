//! # ferry-config
//!
//! Turns one or more TOML files into a validated [`Config`], or into every problem found at
//! once ([`ConfigErrors`]), each naming the file, the component, the key and what was expected,
//! with line and column where the file shows them.
//!
//! The format follows the conventions Vector users know:
//!
//! ```toml
//! data_dir = "/var/lib/ferry"      # optional, see `resolve_data_dir`
//!
//! [api]                            # optional: serve /metrics and /health
//! address = "127.0.0.1:8686"
//!
//! [sources.app]
//! type = "stdin"
//!
//! [sinks.kafka]
//! type = "kafka"
//! inputs = ["app"]
//! bootstrap_servers = "${KAFKA_BROKERS:-127.0.0.1:9092}"
//! ```
//!
//! Before parsing, environment variables are substituted ([`interpolate`]): `${VAR}`, `$VAR`,
//! `${VAR:-default}` (default when unset or empty) and `$$` for a literal `$`. A variable that is
//! unset and has no default is an error naming it and its line.
//!
//! Then, before anything starts: unknown component `type`s (the error lists the known ones),
//! unknown or missing `inputs`, duplicate IDs across files, unknown keys and wrong value types
//! (serde with `deny_unknown_fields`), and each component's own `validate`. Values of secret
//! keys (`password`, `key_pass`, anything with "secret") never appear in messages.

mod api;
mod data_dir;
mod error;
mod interpolate;
mod load;
mod locate;

pub use api::{ApiConfig, DEFAULT_API_ADDRESS};
pub use data_dir::{DataDirError, resolve_data_dir};
pub use error::{ConfigError, ConfigErrors};
pub use interpolate::{InterpolationError, interpolate};
pub use load::{Component, Config, load_files, load_str};
pub use locate::locate_key;
