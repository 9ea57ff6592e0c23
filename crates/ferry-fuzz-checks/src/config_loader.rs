//! The config loader on arbitrary text, environment interpolation included.

use std::collections::HashSet;
use std::path::Path;

use ferry_config::{interpolate, load_str};
// Linked so that their `type`s are registered (rustc drops crates no code names).
use ferry_sink_console as _;
use ferry_sink_file as _;
#[cfg(feature = "kafka")]
use ferry_sink_kafka as _;
use ferry_source_demo as _;
use ferry_source_file as _;
use ferry_source_stdin as _;

/// The environment the loader sees: a few set variables (one empty, one whose value looks like
/// a reference, which must not be expanded again), everything else unset.
fn env(name: &str) -> Option<String> {
    Some(
        match name {
            "SET" => "value",
            "EMPTY" => "",
            "BROKERS" => "127.0.0.1:9092",
            "NUMBER" => "5",
            "QUOTE" => "a\"b\nc",
            "REFERENCE" => "${SET}",
            _ => return None,
        }
        .to_owned(),
    )
}

/// Loads `data` (when it is UTF-8) as a configuration file: the loader may refuse it but must
/// not panic, every error must print, and a configuration it accepts must be whole (unique IDs,
/// every sink input naming a source).
pub fn config_loader(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if !text.contains('$')
        && let Ok(expanded) = interpolate(text, env)
    {
        assert_eq!(expanded, text, "text without `$` must come through unchanged");
    }
    match load_str(Path::new("fuzz.toml"), text, &env) {
        Ok(config) => {
            let sources: HashSet<&str> = config.sources.iter().map(|s| s.id.as_str()).collect();
            assert_eq!(
                sources.len(),
                config.sources.len(),
                "duplicate source IDs accepted"
            );
            for sink in &config.sinks {
                assert!(
                    !sources.contains(sink.id.as_str()),
                    "`{}` is both a source and a sink",
                    sink.id
                );
                for input in sink.config.inputs() {
                    assert!(
                        sources.contains(input.as_str()),
                        "sink `{}` reads unknown `{input}`",
                        sink.id
                    );
                }
            }
        }
        Err(errors) => {
            let shown = errors.to_string();
            assert!(!shown.is_empty(), "an error that prints nothing");
            for error in &errors.0 {
                let _ = error.to_string();
            }
        }
    }
}
