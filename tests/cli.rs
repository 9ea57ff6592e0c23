//! The `ferry` binary end to end, without a broker: stdin → console, signals, validate, list.

use std::process::Stdio;
use std::time::Duration;

use ferry_e2e::{ConfigDir, ferry_bin, run_with_input, signal, stderr, summary_counter, wait_with_limit};

const STDIN_TO_CONSOLE: &str = r#"
[sources.in]
type = "stdin"

[sinks.out]
type = "console"
inputs = ["in"]
"#;

#[test]
fn stdin_lines_reach_the_console_in_order_and_ferry_exits_zero() {
    let config = ConfigDir::new(STDIN_TO_CONSOLE);
    let input: String =
        (0..5000).map(|i| format!("line {i}\n")).collect::<String>() + "last line without newline";
    let output = run_with_input(config.ferry(&[]), input.as_bytes(), Duration::from_secs(30));
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let expected: String =
        (0..5000).map(|i| format!("line {i}\n")).collect::<String>() + "last line without newline\n";
    assert_eq!(stdout, expected);
    assert_eq!(
        summary_counter(&stderr(&output), "out", "delivered"),
        Some(5001),
        "{}",
        stderr(&output)
    );
}

#[test]
fn json_decoding_and_encoding_round_trip_with_standard_fields() {
    let config = ConfigDir::new(
        r#"
[sources.in]
type = "stdin"
decoding.codec = "json"

[sinks.out]
type = "console"
inputs = ["in"]
encoding.codec = "json"
encoding.except_fields = ["host"]
"#,
    );
    let input =
        b"{\"message\":\"hi\",\"timestamp\":\"2026-11-25T10:00:00Z\",\"n\":{\"a\":[1,2]}}\nnot json\n";
    let output = run_with_input(config.ferry(&[]), input, Duration::from_secs(30));
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0],
        serde_json::json!({"message": "hi", "timestamp": "2026-11-25T10:00:00Z", "n": {"a": [1, 2]}})
    );
    assert_eq!(lines[1]["message"], "not json");
    assert!(lines[1]["timestamp"].is_string() && lines[1].get("host").is_none());
    assert!(
        stderr(&output).contains("not a JSON object"),
        "the bad line is reported"
    );
}

#[test]
fn sigterm_mid_run_exits_cleanly_with_only_whole_lines() {
    let config = ConfigDir::new(
        r#"
[sources.gen]
type = "demo"
rate = 0

[sinks.out]
type = "console"
inputs = ["gen"]
encoding.codec = "json"
"#,
    );
    let child = config
        .ferry(&[])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    signal(child.id(), "TERM");
    let output = wait_with_limit(child, Duration::from_secs(30));
    let err = stderr(&output);
    assert!(output.status.success(), "exit {:?}: {err}", output.status);
    assert!(err.contains("shutting down"), "{err}");
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert!(stdout.ends_with('\n'), "the last line is whole");
    let lines = stdout.lines().count() as u64;
    assert!(lines > 0);
    for line in stdout.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("half-written line {line:?}: {e}"));
    }
    assert_eq!(summary_counter(&err, "out", "delivered"), Some(lines), "{err}");
}

#[test]
fn validate_accepts_a_good_file_and_rejects_a_bad_one_with_the_key() {
    let good = ConfigDir::new(STDIN_TO_CONSOLE);
    let output = good.ferry(&["validate"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("configuration is valid"));

    let bad = ConfigDir::new(
        "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\", \"nope\"]\nencoding.codec = \"yaml\"\n",
    );
    let output = bad.ferry(&["validate", "--no-healthchecks"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("ferry.toml:")
            && err.contains("`encoding.codec`")
            && err.contains("unknown input `nope`"),
        "{err}"
    );
}

#[test]
fn disk_buffers_larger_than_their_volume_are_refused_naming_the_keys() {
    let config = ConfigDir::new(
        "[sources.in]\ntype = \"stdin\"\n[sinks.a]\ntype = \"console\"\ninputs = [\"in\"]\nbuffer.type = \"disk\"\nbuffer.max_size = 800000000000000000\n[sinks.b]\ntype = \"console\"\ninputs = [\"in\"]\nbuffer.type = \"disk\"\nbuffer.max_size = 800000000000000000\n",
    );
    let output = config.ferry(&["validate", "--no-healthchecks"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("sinks.a.buffer.max_size = 800000000000000000")
            && err.contains("sinks.b.buffer.max_size")
            && err.contains("the volume has"),
        "{err}"
    );
}

#[test]
fn bad_config_fails_the_run_before_reading_input() {
    let bad =
        ConfigDir::new("[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"consol\"\ninputs = [\"in\"]\n");
    let output = run_with_input(bad.ferry(&[]), b"never read\n", Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("unknown sink type `consol`"));
    assert!(output.stdout.is_empty());
}

#[test]
fn list_shows_every_linked_component() {
    let output = std::process::Command::new(ferry_bin())
        .arg("list")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    // Each component on a line of its own under its kind, `kafka` (the flagship) included:
    // a substring anywhere would be found in a description too.
    let entries = |kind: &str| -> Vec<String> {
        stdout
            .split(&format!("{kind}:\n"))
            .nth(1)
            .unwrap_or_default()
            .lines()
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    };
    let sources = entries("sources");
    let sinks = entries("sinks");
    for name in ["stdin", "demo", "file"] {
        assert!(sources.iter().any(|s| s == name), "source {name} in:\n{stdout}");
    }
    for name in ["console", "kafka", "file"] {
        assert!(sinks.iter().any(|s| s == name), "sink {name} in:\n{stdout}");
    }
}

#[test]
fn help_teaches_and_version_prints() {
    let help = std::process::Command::new(ferry_bin())
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success(), "--help exits 0");
    let text = String::from_utf8(help.stdout).unwrap();
    assert!(text.contains("--require-healthy") && text.contains("Examples:") && text.contains("validate"));
    let version = std::process::Command::new(ferry_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success(), "--version exits 0");
    let text = String::from_utf8(version.stdout).unwrap();
    assert!(
        text.starts_with(&format!("ferry {} (librdkafka ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
}

#[test]
fn missing_config_file_is_one_readable_line() {
    let output = std::process::Command::new(ferry_bin())
        .args(["--config", "/nonexistent/ferry.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("/nonexistent/ferry.toml") && err.contains("cannot read"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn a_second_signal_exits_at_once_with_130() {
    // A sink that can never deliver (nothing listens), so the drain after the first signal
    // would wait for the whole shutdown timeout.
    let port = ferry_tansu::free_port().unwrap();
    let config = ConfigDir::new(&format!(
        r#"
[sources.gen]
type = "demo"
rate = 100

[sinks.kafka]
type = "kafka"
inputs = ["gen"]
bootstrap_servers = "127.0.0.1:{port}"
topic = "t"
healthcheck = false
"#
    ));
    let child = config
        .ferry(&["--shutdown-timeout", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    signal(child.id(), "TERM");
    std::thread::sleep(Duration::from_millis(500));
    signal(child.id(), "INT");
    let output = wait_with_limit(child, Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert!(stderr(&output).contains("second signal"));
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let config = ConfigDir::new(STDIN_TO_CONSOLE);
    let output = run_with_input(
        config.ferry(&["--log-format", "json"]),
        b"x\n",
        Duration::from_secs(30),
    );
    assert!(output.status.success());
    let err = stderr(&output);
    let summary = err
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}"))
        })
        .find(|v| v["message"] == "final summary")
        .expect("a final summary line");
    assert_eq!(summary["sink"], "out");
    assert_eq!(summary["delivered"], 1);
}
