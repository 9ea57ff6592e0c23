//! Bad input through the real `ferry` binary: invalid configurations (the corpus in
//! `tests/fixtures/bad-configs/`), validation that must stay off the network, and input a
//! source cannot make sense of.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferry_e2e::{ConfigDir, ferry_bin, root, stderr};

/// The secret every fixture with a password field uses, directly or through
/// `FERRY_TEST_SECRET`: it must never appear in what ferry prints.
const SECRET: &str = "hunter2-secret";

/// Every `NAME.toml` in `tests/fixtures/bad-configs/`, through `ferry validate`: exit status 1,
/// at most 4 lines, the file, line and key named, every phrase of `NAME.expected` present
/// (its first line is `NAME.toml:LINE:`), no secret and no panic.
#[test]
fn every_bad_config_in_the_corpus_fails_validation_with_a_short_precise_message() {
    let dir = root().join("tests/fixtures/bad-configs");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the corpus directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 40, "the corpus has {} configurations", names.len());
    let state = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    for path in &names {
        let file = path.file_name().and_then(|n| n.to_str()).expect("a UTF-8 name");
        let expected = std::fs::read_to_string(path.with_extension("expected"))
            .unwrap_or_else(|e| panic!("{file} has no .expected beside it: {e}"));
        // Run from the corpus directory with a relative path, so messages name `NAME.toml`
        // the same way on every machine.
        let output = std::process::Command::new(ferry_bin())
            .args(["validate", "--no-healthchecks", "--config", file])
            .current_dir(&dir)
            .env("XDG_STATE_HOME", state.path())
            .env("FERRY_TEST_SECRET", SECRET)
            .env_remove("FERRY_TEST_UNSET_BROKERS")
            .env_remove("RUST_LOG")
            .output()
            .expect("ferry runs");
        let err = stderr(&output);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut problems = Vec::new();
        if output.status.code() != Some(1) {
            problems.push(format!("exit status {:?}, not 1", output.status.code()));
        }
        if lines.is_empty() || lines.len() > 4 {
            problems.push(format!("{} lines, expected 1 to 4", lines.len()));
        }
        let mut phrases = expected.lines().filter(|l| !l.trim().is_empty());
        let location = phrases.next().unwrap_or_default();
        let stem = file.trim_end_matches(".toml");
        let located = location
            .strip_prefix(&format!("{stem}.toml:"))
            .and_then(|rest| rest.strip_suffix(':'))
            .is_some_and(|line| line.parse::<usize>().is_ok());
        if !located {
            problems.push(format!(
                "the first line of {stem}.expected must be `{stem}.toml:LINE:`"
            ));
        }
        for phrase in std::iter::once(location).chain(phrases) {
            if !err.contains(phrase) {
                problems.push(format!("missing {phrase:?}"));
            }
        }
        // The key, or for a problem with a table's name or the file's syntax, the table or
        // the syntax error (which has no key to name).
        let names_key = err.contains("key `") || err.contains("]: ") || err.contains("not valid TOML");
        if !names_key {
            problems.push("names no key".into());
        }
        if err.contains(SECRET) || String::from_utf8_lossy(&output.stdout).contains(SECRET) {
            problems.push("shows the secret".into());
        }
        if err.contains("panicked") {
            problems.push("panicked".into());
        }
        if !problems.is_empty() {
            failures.push(format!("{file}: {}\n{err}", problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `ferry validate --no-healthchecks` on a file copied from elsewhere must not reach the
/// brokers it names: a listener the test owns stands in for them and must hear nothing.
#[test]
fn validate_without_health_checks_makes_no_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener binds");
    listener.set_nonblocking(true).expect("non-blocking");
    let address = listener.local_addr().expect("address").to_string();
    let config = ConfigDir::stdin_to_kafka(&address, "logs", "");
    let output = config
        .ferry(&["validate", "--no-healthchecks"])
        .output()
        .expect("ferry runs");
    assert!(output.status.success(), "{}", stderr(&output));
    // librdkafka connects from a thread of its own a few milliseconds after the client is
    // made; the process has exited by now, but give a slow machine's SYN time to land.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if let Ok((_, peer)) = listener.accept() {
            panic!("validate --no-healthchecks connected to the broker address (from {peer})");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The same file with health checks does connect: the listener is a real witness.
    let output = config
        .ferry(&["validate", "--healthcheck-timeout", "1"])
        .output()
        .expect("ferry runs");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let until = Instant::now() + Duration::from_secs(2);
    let mut connected = false;
    while Instant::now() < until && !connected {
        connected = listener.accept().is_ok();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        connected,
        "with health checks, validate reaches the broker address"
    );
}

/// Every kind of bad line the issue lists, in one input; each entry is (what, bytes).
fn bad_lines() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("an object", b"{\"n\":1}".to_vec()),
        ("not UTF-8", b"\xff\xfe not utf8 \xc3\x28".to_vec()),
        (
            "not UTF-8 inside a JSON string",
            b"{\"bad\":\"\xff\xfe\"}".to_vec(),
        ),
        ("a 10 MB line", vec![b'x'; 10_000_000]),
        ("100k `[`", vec![b'['; 100_000]),
        (
            "an object nested 100k deep",
            [&b"{\"deep\":"[..], &[b'['; 100_000], &[b']'; 100_000], b"}"].concat(),
        ),
        ("an array", b"[1,2,3]".to_vec()),
        ("a number", b"42".to_vec()),
        ("an empty line", Vec::new()),
        ("another empty line", Vec::new()),
        ("a NUL in a string", b"{\"nul\":\"a\\u0000b\"}".to_vec()),
        ("a raw NUL byte", b"raw\0nul".to_vec()),
        ("the last object", b"{\"n\":2}".to_vec()),
    ]
}

/// What the stdin source must emit for `bad_lines()` with the default 1 MiB `max_line_bytes`:
/// the 10 MB line is cut 9 times into 10 events; every other line is one event.
const BAD_LINE_EVENTS: u64 = 13 + 9;
/// Lines that are not JSON objects: all but the three objects (the 10 pieces each count).
const BAD_LINE_UNDECODABLE: u64 = BAD_LINE_EVENTS - 3;

/// The `stdin source reached end of input` line's value of `field`.
fn stop_counter(err: &str, field: &str) -> Option<u64> {
    let line = err
        .lines()
        .find(|l| l.contains("stdin source reached end of input"))?;
    let start = line.find(&format!(" {field}="))? + field.len() + 2;
    line[start..].split_whitespace().next()?.parse().ok()
}

#[test]
fn bad_lines_through_stdin_to_the_console_are_each_counted_and_none_lost() {
    let config = ConfigDir::new(
        "[sources.in]\ntype = \"stdin\"\ndecoding.codec = \"json\"\n\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nencoding.codec = \"json\"\nencoding.except_fields = [\"timestamp\"]\n",
    );
    let mut input = Vec::new();
    for (_, line) in bad_lines() {
        input.extend_from_slice(&line);
        input.push(b'\n');
    }
    let output = ferry_e2e::run_with_input(config.ferry(&[]), &input, Duration::from_secs(60));
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(stop_counter(&err, "events"), Some(BAD_LINE_EVENTS), "{err}");
    assert_eq!(stop_counter(&err, "split_cuts"), Some(9), "{err}");
    assert_eq!(
        stop_counter(&err, "undecodable"),
        Some(BAD_LINE_UNDECODABLE),
        "{err}"
    );
    assert_eq!(
        ferry_e2e::summary_counter(&err, "out", "delivered"),
        Some(BAD_LINE_EVENTS),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {}", &l[..l.len().min(200)])))
        .collect();
    assert_eq!(events.len() as u64, BAD_LINE_EVENTS);
    // The pieces of the long line put back together are the line.
    let pieces: String = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.starts_with('x'))
        .collect();
    assert_eq!(pieces.len(), 10_000_000);
    // Nesting too deep to read is a `message`, whole, not an object that lost its fields.
    assert!(
        events.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("{\"deep\":[[["))),
        "the deep object is kept as message"
    );
    assert_eq!(events[0]["n"], 1);
    assert_eq!(events.last().map(|e| e["n"].clone()), Some(serde_json::json!(2)));
    assert!(events.iter().any(|e| e["nul"] == "a\u{0}b"));
}

#[test]
fn bad_lines_through_stdin_to_kafka_are_delivered_or_dead_lettered_never_lost() {
    let kafka = ferry_e2e::TestKafka::start();
    let base = ferry_e2e::unique("badinput");
    let ok_topic = format!("{base}-ok");
    kafka.create_topics(&[ok_topic.as_str()]);
    // The topic comes from a field: `app` holding a NUL renders a name Kafka refuses, a
    // record with no `app` cannot render one at all; both are rejected for good at once,
    // not retried as a missing topic.
    let config = ConfigDir::stdin_to_kafka(
        kafka.bootstrap_servers(),
        &format!("{base}-{{{{ app }}}}"),
        "encoding.codec = \"json\"\nunknown_topic_grace_ms = 600000\n",
    );
    let text = config.path();
    let with_decoding = std::fs::read_to_string(&text).expect("config").replace(
        "type = \"stdin\"\n",
        "type = \"stdin\"\ndecoding.codec = \"json\"\n",
    );
    std::fs::write(&text, with_decoding).expect("config written");
    let mut input = Vec::new();
    let good = [
        &b"{\"app\":\"ok\",\"n\":1}"[..],
        b"{\"app\":\"ok\",\"bad\":\"\xff\xfe\"}",
        b"{\"app\":\"ok\",\"n\":2}",
    ];
    let nul = b"{\"app\":\"o\\u0000k\",\"n\":3}";
    for line in good.iter().copied().chain([&nul[..]]) {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    // Lines without `app` (every bad line but the objects): no topic to render.
    for (_, line) in bad_lines() {
        input.extend_from_slice(&line);
        input.push(b'\n');
    }
    let output = ferry_e2e::run_with_input(config.ferry(&[]), &input, Duration::from_secs(120));
    let err = stderr(&output);
    assert!(!err.contains("panicked"), "{err}");
    assert!(output.status.success(), "{err}");
    let events = BAD_LINE_EVENTS + 4;
    assert_eq!(stop_counter(&err, "events"), Some(events), "{err}");
    let delivered = ferry_e2e::summary_counter(&err, "kafka", "delivered").expect("summary");
    let dead = ferry_e2e::summary_counter(&err, "kafka", "dead_lettered").expect("summary");
    // The two `ok` objects arrive; everything else is a dead letter, on disk with its reason
    // (the object with invalid UTF-8 in a string is not JSON, so it has no `app`).
    assert_eq!((delivered, dead), (2, events - 2), "{err}");
    let records = ferry_e2e::read_topic(
        kafka.bootstrap_servers(),
        &ok_topic,
        2,
        Duration::from_millis(1500),
    );
    assert_eq!(records.len(), 2);
    let letters = config.dead_letters("kafka");
    assert_eq!(letters.len() as u64, dead);
    let invalid_topic = letters
        .iter()
        .filter(|l| l.cause.contains("topic") && l.topic.contains('\0'))
        .count();
    assert_eq!(
        invalid_topic,
        1,
        "the NUL topic is rejected as an invalid name: {:?}",
        letters.iter().map(|l| (&l.reason, &l.cause)).collect::<Vec<_>>()
    );
    assert!(
        !err.contains("does not exist"),
        "no invalid name is reported as missing: {err}"
    );
}

/// The `file source stopped` line's value of `field`.
fn file_stop_counter(err: &str, field: &str) -> Option<u64> {
    let line = err.lines().find(|l| l.contains("file source stopped"))?;
    let start = line.find(&format!(" {field}="))? + field.len() + 2;
    line[start..].split_whitespace().next()?.parse().ok()
}

#[test]
fn bad_lines_in_a_tailed_file_are_each_counted_and_none_lost() {
    let logs = tempfile::tempdir().expect("temp dir");
    let mut input = Vec::new();
    for (_, line) in bad_lines() {
        input.extend_from_slice(&line);
        input.push(b'\n');
    }
    std::fs::write(logs.path().join("app.log"), &input).expect("log written");
    let config = ConfigDir::new(&format!(
        "[sources.in]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\ndecoding.codec = \"json\"\n\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\nencoding.codec = \"json\"\n",
        logs.path().display()
    ));
    let out_path = config.dir.path().join("stdout.jsonl");
    let out = std::fs::File::create(&out_path).expect("stdout file");
    let child = config
        .ferry(&[])
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ferry starts");
    let pid = child.id();
    let written = || {
        std::fs::read(&out_path)
            .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
            .unwrap_or(0)
    };
    let all_out = ferry_e2e::wait_until(Duration::from_secs(60), || written() >= BAD_LINE_EVENTS);
    ferry_e2e::signal(pid, "TERM");
    let output = ferry_e2e::wait_with_limit(child, Duration::from_secs(60));
    let err = stderr(&output);
    assert!(
        all_out,
        "{} of {BAD_LINE_EVENTS} events written:\n{err}",
        written()
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(output.status.success(), "{err}");
    assert_eq!(file_stop_counter(&err, "lines"), Some(BAD_LINE_EVENTS), "{err}");
    // Like the stdin source, the file source counts each cut: 9 for the 10 MB line.
    assert_eq!(file_stop_counter(&err, "split_lines"), Some(9), "{err}");
    assert_eq!(
        file_stop_counter(&err, "undecodable"),
        Some(BAD_LINE_UNDECODABLE),
        "{err}"
    );
    assert_eq!(
        ferry_e2e::summary_counter(&err, "out", "delivered"),
        Some(BAD_LINE_EVENTS),
        "{err}"
    );
    assert_eq!(written(), BAD_LINE_EVENTS);
}
