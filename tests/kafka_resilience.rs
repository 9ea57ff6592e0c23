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
