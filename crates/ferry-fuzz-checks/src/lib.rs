//! # ferry-fuzz-checks
//!
//! What each of Ferry's fuzz targets checks, in plain functions of `&[u8]`: the libFuzzer
//! targets in `fuzz/` (nightly, `cargo xtask fuzz`) call them, and so does this crate's
//! `replay` test, which runs every saved input under `fuzz/corpus/<target>/` on stable as part
//! of the ordinary test suite. A check panics when the code under test breaks a promise; any
//! input at all may be given, and an input the code rightly refuses is not a failure.
//!
//! | target | code under test | promise checked |
//! |---|---|---|
//! | `config_loader` | `ferry_config::load_str` with `${VAR}` interpolation | no panic; a loaded config's inputs all resolve |
//! | `template` | `ferry_core::Template` parse and render | no panic; rendering is deterministic; errors name a field the template reads |
//! | `json_line` | the JSON line scanners (`RawJsonObject::scan`, its quick scan, `parse_json_object`) | they agree with serde_json (see [`json_line`]) |
//! | `disk_record` | the disk buffer's record decoder | no panic or oversized allocation on any bytes; encode → decode is exact |
//!
//! ```
//! ferry_fuzz_checks::template(b"logs-{{ unit }}-%Y\n{\"unit\":\"nginx\"}");
//! ```

mod config_loader;
mod disk_record;
mod json_line;
mod template;

pub use config_loader::config_loader;
pub use disk_record::disk_record;
pub use json_line::json_line;
pub use template::template;

/// A target's check: panics when the code under test breaks a promise for `data`.
pub type Check = fn(data: &[u8]);

/// Every target's name with its check, in the order `cargo xtask fuzz` runs them.
pub const TARGETS: &[(&str, Check)] = &[
    ("config_loader", config_loader),
    ("template", template),
    ("json_line", json_line),
    ("disk_record", disk_record),
];
