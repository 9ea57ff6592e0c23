//! The `file` sink end to end: the real binary writes files named by a template, acknowledges
//! only what is fsynced (a file source feeding it loses nothing to `kill -9`), and says which
//! directory it cannot write.

use std::path::Path;
use std::time::Duration;

use ferry_e2e::{
    ConfigDir, Tally, append_lines, numbered_lines, run_with_input, signal, stderr, wait_until,
    wait_with_limit,
};

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Events name their file through a field and their own timestamp: four files, each holding
/// exactly its events in order.
#[test]
fn the_path_template_rolls_over_by_field_and_date() {
    let out = tempfile::tempdir().unwrap();
    let config = ConfigDir::new(&format!(
        r#"
[sources.in]
type = "stdin"
decoding.codec = "json"

[sinks.files]
type = "file"
inputs = ["in"]
path = "{}/{{{{ app }}}}/%Y-%m-%d.log"
encoding.codec = "text"
"#,
        out.path().display()
    ));
    let mut input = String::new();
    let mut expected: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for i in 0..400 {
        let app = ["api", "db"][i % 2];
        let day = ["2026-12-01", "2026-12-02"][(i / 200) % 2];
        let message = format!("{app}-{day}-{i}");
        input.push_str(&format!(
            "{{\"message\":\"{message}\",\"app\":\"{app}\",\"timestamp\":\"{day}T10:00:00Z\"}}\n"
        ));
        expected
            .entry(format!("{app}/{day}.log"))
            .or_default()
            .push(message);
    }
    let output = run_with_input(config.ferry(&["-q"]), input.as_bytes(), Duration::from_secs(60));
    assert!(output.status.success(), "{}", stderr(&output));
    for (file, lines) in &expected {
        assert_eq!(&lines_of(&out.path().join(file)), lines, "{file}");
    }
    let written = walk(out.path());
    assert_eq!(written.len(), 4, "{written:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            found.extend(walk(&entry.path()));
        } else {
            found.push(entry.path().display().to_string());
        }
    }
    found
}

/// A file source feeding the file sink is killed with SIGKILL while lines stream through,
/// then started again: every line reaches the output (what was in flight may come twice),
/// because the source's checkpoint moves only after the sink fsynced.
#[test]
fn kill_9_between_a_file_source_and_the_file_sink_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.log");
    let output = dir.path().join("out.log");
    append_lines(&input, &[]);
    let config = ConfigDir::new(&format!(
        r#"
[sources.tail]
type = "file"
include = ["{}"]
poll_interval_ms = 50

[sinks.files]
type = "file"
inputs = ["tail"]
path = "{}"
"#,
        input.display(),
        output.display()
    ));
    let expected = numbered_lines("k", 0..200_000);
    let writer = {
        let (input, expected) = (input.clone(), expected.clone());
        std::thread::spawn(move || {
            for burst in expected.chunks(2000) {
                append_lines(&input, burst);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let mut first = config.spawn(&["--summary-interval", "0"]);
    assert!(
        wait_until(Duration::from_secs(30), || lines_of(&output).len() > 30_000),
        "nothing reached the output"
    );
    signal(first.id(), "KILL");
    let _ = first.wait();
    let second = config.spawn(&["--summary-interval", "0"]);
    writer.join().unwrap();
    let complete = wait_until(Duration::from_secs(60), || {
        Tally::of(&expected, lines_of(&output).iter().map(String::as_str)).lost == 0
    });
    signal(second.id(), "TERM");
    let result = wait_with_limit(second, Duration::from_secs(60));
    let written = lines_of(&output);
    let tally = Tally::of(&expected, written.iter().map(String::as_str));
    println!("kill -9 file source -> file sink: {tally:?}");
    assert!(complete, "{tally:?}");
    assert_eq!((tally.lost, tally.unexpected), (0, 0), "{tally:?}");
    assert!(result.status.success(), "{}", stderr(&result));
}

/// A directory the sink cannot create: with `--require-healthy`, ferry exits at start with
/// one line naming it.
#[test]
fn an_unwritable_directory_is_one_clear_line_at_start() {
    let dir = tempfile::tempdir().unwrap();
    // A file where a directory should be: refused even to root.
    std::fs::write(dir.path().join("blocker"), "").unwrap();
    let config = ConfigDir::new(&format!(
        r#"
[sources.in]
type = "stdin"

[sinks.files]
type = "file"
inputs = ["in"]
path = "{}/blocker/logs/%Y-%m-%d.log"
"#,
        dir.path().display()
    ));
    let output = run_with_input(
        config.ferry(&["--require-healthy"]),
        b"one\n",
        Duration::from_secs(30),
    );
    let log = stderr(&output);
    assert!(!output.status.success(), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("blocker/logs"))
        .unwrap_or_else(|| panic!("no line names the directory: {log}"));
    assert!(line.contains("cannot write files in"), "{line}");
    assert!(!log.contains("panicked"), "{log}");
}
