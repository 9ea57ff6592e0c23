//! No single bad record, topic or sink stalls the rest: each scenario checks what arrived in
//! Kafka and what is in the dead-letter file (sent = delivered + dead-lettered, nothing
//! missing), against a real broker.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use ferry_dead_letter::DeadLetterReason;
use ferry_e2e::{
    ConfigDir, TestKafka, read_topic, run_with_input, stderr, summary_counter, unique, wait_with_limit,
};

const IDLE: Duration = Duration::from_millis(1500);

fn json_to_kafka(brokers: &str, topic: &str, extra: &str) -> ConfigDir {
    ConfigDir::new(&format!(
        r#"
[sources.in]
type = "stdin"
decoding.codec = "json"

[sinks.kafka]
type = "kafka"
inputs = ["in"]
bootstrap_servers = "{brokers}"
topic = "{topic}"
encoding.codec = "json"
encoding.only_fields = ["message", "svc"]
{extra}
"#
    ))
}

fn messages(records: &[ferry_e2e::Record]) -> HashSet<String> {
    records
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.payload).expect("JSON payload");
            v["message"].as_str().expect("message").to_owned()
        })
        .collect()
}

#[test]
fn a_nul_byte_in_a_templated_topic_is_one_dead_letter_and_every_other_event_arrives() {
    let kafka = TestKafka::start();
    let base = unique("res-nul");
    let good = format!("{base}-a");
    kafka.create_topics(&[&good]);
    let config = json_to_kafka(kafka.bootstrap_servers(), &format!("{base}-{{{{svc}}}}"), "");
    let mut input = String::new();
    for i in 0..3000 {
        let svc = if i == 1500 { "a\\u0000b" } else { "a" };
        input.push_str(&format!("{{\"message\":\"m{i}\",\"svc\":\"{svc}\"}}\n"));
    }
    let output = run_with_input(config.ferry(&[]), input.as_bytes(), Duration::from_secs(60));
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert_eq!(summary_counter(&err, "kafka", "delivered"), Some(2999), "{err}");
    assert_eq!(summary_counter(&err, "kafka", "dead_lettered"), Some(1), "{err}");
    let letters = config.dead_letters("kafka");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, DeadLetterReason::InvalidTopic);
    assert_eq!(letters[0].topic, format!("{base}-a\0b"));
    assert!(String::from_utf8_lossy(&letters[0].payload).contains("\"m1500\""));
    let arrived = messages(&read_topic(kafka.bootstrap_servers(), &good, 2999, IDLE));
    let expected: HashSet<String> = (0..3000)
        .filter(|&i| i != 1500)
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(arrived, expected);
}

#[test]
fn a_missing_topic_among_three_holds_up_neither_the_others_nor_the_input() {
    let kafka = TestKafka::start();
    let base = unique("res-missing");
    kafka.create_topics(&[&format!("{base}-a"), &format!("{base}-b")]);
    let config = json_to_kafka(
        kafka.bootstrap_servers(),
        &format!("{base}-{{{{svc}}}}"),
        "unknown_topic_grace_ms = 3000",
    );
    let services = ["a", "b", "gone"];
    let n = 30_000;
    let mut input = String::new();
    for i in 0..n {
        input.push_str(&format!(
            "{{\"message\":\"m{i}\",\"svc\":\"{}\"}}\n",
            services[i % 3]
        ));
    }
    let output = run_with_input(config.ferry(&[]), input.as_bytes(), Duration::from_secs(120));
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert_eq!(
        summary_counter(&err, "kafka", "received"),
        Some(n as u64),
        "all input read: {err}"
    );
    assert_eq!(summary_counter(&err, "kafka", "delivered"), Some(20_000), "{err}");
    assert_eq!(
        summary_counter(&err, "kafka", "dead_lettered"),
        Some(10_000),
        "{err}"
    );
    assert!(err.contains("topic does not exist"), "{err}");
    for (svc, offset) in [("a", 0), ("b", 1)] {
        let arrived = messages(&read_topic(
            kafka.bootstrap_servers(),
            &format!("{base}-{svc}"),
            10_000,
            IDLE,
        ));
        let expected: HashSet<String> = (offset..n).step_by(3).map(|i| format!("m{i}")).collect();
        assert_eq!(arrived.len(), 10_000, "{svc}");
        assert_eq!(arrived, expected, "{svc}");
    }
    let letters = config.dead_letters("kafka");
    assert_eq!(letters.len(), 10_000);
    assert!(letters.iter().all(|l| l.reason == DeadLetterReason::UnknownTopic));
    assert!(letters.iter().all(|l| l.topic == format!("{base}-gone")));
    let dead: HashSet<String> = letters
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(&l.payload).unwrap();
            v["message"].as_str().unwrap().to_owned()
        })
        .collect();
    let expected: HashSet<String> = (2..n).step_by(3).map(|i| format!("m{i}")).collect();
    assert_eq!(dead, expected, "the payloads are kept intact");
}

#[test]
fn a_topic_created_during_its_grace_receives_every_record() {
    let kafka = TestKafka::start();
    let topic = unique("res-late");
    let config = ConfigDir::stdin_to_kafka(
        kafka.bootstrap_servers(),
        &topic,
        "healthcheck = false\nunknown_topic_grace_ms = 60000",
    );
    let mut child = config
        .ferry(&[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let lines: Vec<String> = (0..500).map(|i| format!("late {i}")).collect();
    stdin.write_all((lines.join("\n") + "\n").as_bytes()).unwrap();
    // Longer than librdkafka's wait for a topic it has not seen (5 s): the records have come
    // back to the sink and wait in its retry queue.
    std::thread::sleep(Duration::from_secs(8));
    kafka.create_topics(&[&topic]);
    drop(stdin);
    let output = wait_with_limit(child, Duration::from_secs(90));
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert_eq!(summary_counter(&err, "kafka", "delivered"), Some(500), "{err}");
    assert_eq!(summary_counter(&err, "kafka", "dead_lettered"), Some(0), "{err}");
    let records = read_topic(kafka.bootstrap_servers(), &topic, 500, IDLE);
    let arrived: HashSet<&str> = records.iter().map(|r| r.payload_str()).collect();
    assert_eq!(arrived.len(), 500);
}

#[test]
fn a_console_sink_on_a_closed_pipe_beside_kafka_ends_the_run_promptly_and_non_zero() {
    let kafka = TestKafka::start();
    let topic = unique("res-pipe");
    kafka.create_topics(&[&topic]);
    let config = ConfigDir::new(&format!(
        r#"
[sources.in]
type = "stdin"

[sinks.console]
type = "console"
inputs = ["in"]

[sinks.kafka]
type = "kafka"
inputs = ["in"]
bootstrap_servers = "{}"
topic = "{topic}"
"#,
        kafka.bootstrap_servers()
    ));
    let mut child = config
        .ferry(&[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -c 100`: read a little of standard output, then close it.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..200_000 {
            if writeln!(stdin, "line {i}").is_err() {
                break; // ferry stopped reading: expected
            }
        }
    });
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let output = wait_with_limit(child, Duration::from_secs(60));
    let _ = writer.join();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("sink `console` failed") || err.contains("sink=console"),
        "the failed sink is named: {err}"
    );
    assert!(err.to_lowercase().contains("broken pipe"), "and the cause: {err}");
    // What Kafka confirmed is what the summary says it delivered.
    let delivered = summary_counter(&err, "kafka", "delivered").expect("kafka's summary");
    let received = summary_counter(&err, "kafka", "received").expect("kafka's summary");
    assert_eq!(
        delivered, received,
        "the kafka sink delivered everything it took: {err}"
    );
    let records = read_topic(kafka.bootstrap_servers(), &topic, delivered as usize, IDLE);
    assert_eq!(records.len() as u64, delivered);
}

#[test]
fn dead_letters_of_a_missing_topic_are_replayed_once_it_exists() {
    let kafka = TestKafka::start();
    let topic = unique("res-replay");
    let config = ConfigDir::stdin_to_kafka(
        kafka.bootstrap_servers(),
        &topic,
        "healthcheck = false\nunknown_topic_grace_ms = 1000\nkey_field = \"message\"",
    );
    let lines: Vec<String> = (0..100).map(|i| format!("replayed {i}")).collect();
    let output = run_with_input(
        config.ferry(&[]),
        (lines.join("\n") + "\n").as_bytes(),
        Duration::from_secs(60),
    );
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert_eq!(
        summary_counter(&err, "kafka", "dead_lettered"),
        Some(100),
        "{err}"
    );
    assert_eq!(config.dead_letters("kafka").len(), 100);

    let data_dir = config.dir.path().join("data");
    let list = std::process::Command::new(ferry_e2e::ferry_bin())
        .args(["dead-letter", "list", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{listed}");
    assert!(
        listed.contains("100 letters") && listed.contains("unknown_topic 100"),
        "{listed}"
    );

    // Before the topic exists a replay fails again and keeps every letter.
    let again = config.ferry(&["dead-letter", "replay"]).output().unwrap();
    assert_eq!(
        again.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    assert_eq!(config.dead_letters("kafka").len(), 100);

    kafka.create_topics(&[&topic]);
    let replay = config.ferry(&["dead-letter", "replay"]).output().unwrap();
    let out = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(out.contains("100 delivered"), "{out}");
    assert!(
        config.dead_letters("kafka").is_empty(),
        "replayed files are removed"
    );
    let records = read_topic(kafka.bootstrap_servers(), &topic, 100, IDLE);
    let arrived: HashSet<&str> = records.iter().map(|r| r.payload_str()).collect();
    assert_eq!(arrived, lines.iter().map(String::as_str).collect());
    assert!(
        records
            .iter()
            .all(|r| r.key.as_deref() == Some(r.payload.as_slice())),
        "keys are replayed too"
    );
}

/// Peak resident memory of a running process, from /proc.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The bound the docs state for a retry backlog with these settings.
const BACKLOG_RSS_BOUND_KIB: u64 = 128 * 1024;

#[test]
fn a_retry_backlog_during_an_outage_stays_bounded_and_backpressure_reaches_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let mut kafka = TestKafka::local(ferry_e2e::Storage::Sqlite(dir.path().to_owned()));
    let topic = "backlog";
    kafka.create_topics(&[topic]);
    let brokers = kafka.bootstrap_servers().to_owned();
    kafka.broker.as_mut().unwrap().stop();
    // Idempotence off only because of tansu 0.6.0's bug after producer re-initialisation.
    let config = ConfigDir::stdin_to_kafka(
        &brokers,
        topic,
        "healthcheck = false\nmessage_timeout_ms = 2000\nretry_queue_max_events = 20000\nlibrdkafka_options.\"enable.idempotence\" = \"false\"",
    );
    let mut child = config
        .ferry(&["--shutdown-timeout", "120"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let total: usize = 300_000;
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut stdin = child.stdin.take().unwrap();
    let counter = written.clone();
    let writer = std::thread::spawn(move || {
        let pad = "x".repeat(120);
        for chunk in 0..total / 1000 {
            let text: String = (0..1000)
                .map(|i| format!("backlog {:07} {pad}\n", chunk * 1000 + i))
                .collect();
            stdin.write_all(text.as_bytes()).unwrap();
            counter.fetch_add(1000, std::sync::atomic::Ordering::Relaxed);
        }
    });
    // Long enough for several message timeouts: deliveries fail and pile up as retries.
    let mut peak = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(250));
        peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
    }
    let taken = written.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        taken < total / 2,
        "input is not read while the backlog is at its bound ({taken} of {total} lines taken)"
    );
    kafka.broker.as_mut().unwrap().restart().unwrap();
    writer.join().unwrap();
    let output = wait_with_limit(child, Duration::from_secs(180));
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(peak > 0, "peak RSS was read");
    assert!(
        peak < BACKLOG_RSS_BOUND_KIB,
        "peak RSS {peak} KiB during the outage, bound {BACKLOG_RSS_BOUND_KIB} KiB"
    );
    assert_eq!(
        summary_counter(&err, "kafka", "delivered"),
        Some(total as u64),
        "{err}"
    );
    let records = read_topic(&brokers, topic, total, Duration::from_secs(3));
    let got: HashSet<&[u8]> = records.iter().map(|r| &r.payload[..15]).collect();
    assert_eq!(got.len(), total, "every line arrived");
    eprintln!("peak RSS during the outage: {peak} KiB; lines taken while Kafka was down: {taken}");
}

#[test]
fn dead_letters_go_to_a_dead_letter_topic_and_to_the_file_when_it_refuses() {
    let kafka = TestKafka::start();
    let base = unique("res-dlq");
    let good = format!("{base}-a");
    let dlq = format!("{base}-dead");
    kafka.create_topics(&[&good, &dlq]);
    let input = "{\"message\":\"ok\",\"svc\":\"a\"}\n{\"message\":\"bad\",\"svc\":\"a b\"}\n{\"message\":\"no svc\"}\n";
    let run = |dead_letter_topic: &str| {
        let config = json_to_kafka(
            kafka.bootstrap_servers(),
            &format!("{base}-{{{{svc}}}}"),
            &format!("dead_letter.topic = \"{dead_letter_topic}\""),
        );
        let output = run_with_input(config.ferry(&[]), input.as_bytes(), Duration::from_secs(60));
        let err = stderr(&output);
        assert!(output.status.success(), "{err}");
        assert_eq!(summary_counter(&err, "kafka", "delivered"), Some(1), "{err}");
        assert_eq!(summary_counter(&err, "kafka", "dead_lettered"), Some(2), "{err}");
        config
    };

    let config = run(&dlq);
    assert!(config.dead_letters("kafka").is_empty(), "the topic took them");
    let records = read_topic(kafka.bootstrap_servers(), &dlq, 2, IDLE);
    assert_eq!(records.len(), 2);
    let header = |r: &ferry_e2e::Record, name: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k == &format!("ferry.dead_letter.{name}"))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let mut reasons: Vec<String> = records.iter().filter_map(|r| header(r, "reason")).collect();
    reasons.sort();
    assert_eq!(reasons, ["invalid_topic", "template"]);
    let invalid = records
        .iter()
        .find(|r| header(r, "reason").as_deref() == Some("invalid_topic"))
        .unwrap();
    assert_eq!(header(invalid, "topic"), Some(format!("{base}-a b")));
    assert!(invalid.payload_str().contains("\"bad\""), "payload intact");

    // A dead-letter topic that does not exist: the letters go to the file instead.
    let config = run(&format!("{base}-missing"));
    let letters = config.dead_letters("kafka");
    assert_eq!(letters.len(), 2, "the file took what the topic refused");
    assert!(
        letters
            .iter()
            .all(|l| l.cause.contains("dead-letter topic refused it"))
    );
    assert!(letters.iter().any(|l| l.topic == format!("{base}-a b")));
}
