//! The Kafka sink against a real broker (tansu started by the test, or the cluster in
//! `FERRY_TEST_BOOTSTRAP_SERVERS`): content, keys, headers, templates, codecs, compression,
//! rejections.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use ferry_e2e::{ConfigDir, TestKafka, read_topic, run_with_input, stderr, summary_counter, unique};

const IDLE: Duration = Duration::from_millis(1500);

#[test]
fn ten_thousand_json_events_arrive_with_content_keys_headers_and_templated_topics() {
    let kafka = TestKafka::start();
    let base = unique("e2e");
    let services = ["api", "web", "db"];
    let topics: Vec<String> = services.iter().map(|s| format!("{base}-{s}")).collect();
    kafka.create_topics(&topics.iter().map(String::as_str).collect::<Vec<_>>());
    let config = ConfigDir::new(&format!(
        r#"
[sources.in]
type = "stdin"
decoding.codec = "json"

[sinks.kafka]
type = "kafka"
inputs = ["in"]
bootstrap_servers = "{brokers}"
topic = "{base}-{{{{ service }}}}"
key_field = "user_id"
headers_key = "meta"
encoding.codec = "json"
encoding.except_fields = ["host", "meta"]
"#,
        brokers = kafka.bootstrap_servers()
    ));
    let mut input = String::new();
    let mut expected: BTreeMap<String, Vec<(Option<String>, serde_json::Value)>> = BTreeMap::new();
    for i in 0..10_000 {
        let service = services[i % 3];
        // Every fifth event has no user_id: it must arrive without a key.
        let user = (i % 5 != 0).then(|| format!("user-{}", i % 97));
        let mut event = serde_json::json!({
            "message": format!("event {i} with \"quotes\" and unicode é"),
            "timestamp": "2026-11-25T10:00:00.123Z",
            "service": service,
            "seq": i,
            "meta": {"trace": format!("t{i}")},
        });
        if let Some(user) = &user {
            event["user_id"] = serde_json::Value::String(user.clone());
        }
        input.push_str(&event.to_string());
        input.push('\n');
        event.as_object_mut().unwrap().remove("meta");
        expected
            .entry(format!("{base}-{service}"))
            .or_default()
            .push((user, event));
    }
    let output = run_with_input(config.ferry(&[]), input.as_bytes(), Duration::from_secs(120));
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert_eq!(summary_counter(&err, "kafka", "delivered"), Some(10_000), "{err}");

    for topic in &topics {
        let want = &expected[topic];
        let records = read_topic(kafka.bootstrap_servers(), topic, want.len(), IDLE);
        assert_eq!(records.len(), want.len(), "records in {topic}");
        let mut by_seq: BTreeMap<u64, &ferry_e2e::Record> = BTreeMap::new();
        for r in &records {
            let v: serde_json::Value = serde_json::from_str(r.payload_str()).unwrap();
            by_seq.insert(v["seq"].as_u64().unwrap(), r);
        }
        assert_eq!(by_seq.len(), want.len(), "no duplicates in {topic}");
        for (user, event) in want {
            let record = by_seq[&event["seq"].as_u64().unwrap()];
            let got: serde_json::Value = serde_json::from_str(record.payload_str()).unwrap();
            assert_eq!(&got, event);
            assert_eq!(
                record.key.as_deref(),
                user.as_deref().map(str::as_bytes),
                "key of {event}"
            );
            assert_eq!(
                record.headers,
                vec![("trace".to_owned(), format!("t{}", event["seq"]).into_bytes())]
            );
            assert_eq!(record.timestamp, Some(1_795_600_800_123));
        }
    }
}

#[test]
fn every_compression_codec_round_trips_text_lines() {
    let kafka = TestKafka::start();
    let lines: Vec<String> = (0..2000)
        .map(|i| format!("line {i} {}", "x".repeat(i % 200)))
        .collect();
    let input = lines.join("\n") + "\n";
    for compression in ["none", "gzip", "lz4", "snappy", "zstd"] {
        let topic = unique(&format!("e2e-{compression}"));
        kafka.create_topics(&[&topic]);
        // librdkafka's `msg` debug names the codec of every batch it writes: the proof that
        // `compression` reached the wire, which equal payloads alone cannot give.
        let config = ConfigDir::stdin_to_kafka(
            kafka.bootstrap_servers(),
            &topic,
            &format!("compression = \"{compression}\"\nlibrdkafka_options.debug = \"msg\""),
        );
        let mut ferry = config.ferry(&[]);
        ferry.env("RUST_LOG", "info,ferry_sink_kafka::context=trace");
        let output = run_with_input(ferry, input.as_bytes(), Duration::from_secs(60));
        let err = stderr(&output);
        assert!(output.status.success(), "{compression}: {err}");
        let batches: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("Produce MessageSet with"))
            .collect();
        let codec = if compression == "none" {
            "uncompressed"
        } else {
            compression
        };
        assert!(!batches.is_empty(), "{compression}: no batch was logged:\n{err}");
        assert!(
            batches.iter().all(|l| l.contains(&format!(", {codec})"))),
            "{compression}: {batches:#?}"
        );
        let records = read_topic(kafka.bootstrap_servers(), &topic, lines.len(), IDLE);
        let got: HashSet<&str> = records.iter().map(|r| r.payload_str()).collect();
        let want: HashSet<&str> = lines.iter().map(String::as_str).collect();
        assert_eq!(records.len(), lines.len(), "{compression}: record count");
        assert_eq!(got, want, "{compression}: payloads");
        assert!(records.iter().all(|r| r.key.is_none()), "no key_field: no keys");
    }
}

#[test]
fn events_missing_a_template_field_are_rejected_and_the_rest_delivered() {
    let kafka = TestKafka::start();
    let base = unique("e2e-reject");
    kafka.create_topics(&[&format!("{base}-a")]);
    let config = ConfigDir::new(&format!(
        r#"
[sources.in]
type = "stdin"
decoding.codec = "json"

[sinks.kafka]
type = "kafka"
inputs = ["in"]
bootstrap_servers = "{brokers}"
topic = "{base}-{{{{ unit }}}}"
encoding.codec = "logfmt"
encoding.only_fields = ["message", "unit"]
"#,
        brokers = kafka.bootstrap_servers()
    ));
    let input = "{\"message\":\"ok 1\",\"unit\":\"a\"}\n{\"message\":\"no unit\"}\n{\"message\":\"ok 2\",\"unit\":\"a\"}\n";
    let output = run_with_input(config.ferry(&[]), input.as_bytes(), Duration::from_secs(60));
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert_eq!(summary_counter(&err, "kafka", "rejected"), Some(1), "{err}");
    assert_eq!(summary_counter(&err, "kafka", "delivered"), Some(2), "{err}");
    assert!(
        err.contains("missing field `unit`"),
        "the warning names the field: {err}"
    );
    let letters = config.dead_letters("kafka");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, ferry_dead_letter::DeadLetterReason::Template);
    assert_eq!(letters[0].payload, b"message=\"no unit\"");
    let records = read_topic(kafka.bootstrap_servers(), &format!("{base}-a"), 2, IDLE);
    let mut payloads: Vec<&str> = records.iter().map(|r| r.payload_str()).collect();
    payloads.sort();
    assert_eq!(payloads, ["message=\"ok 1\" unit=a", "message=\"ok 2\" unit=a"]);
}

#[test]
fn a_record_over_message_max_bytes_is_rejected_and_the_stream_goes_on() {
    let kafka = TestKafka::start();
    let topic = unique("e2e-big");
    kafka.create_topics(&[&topic]);
    let config = ConfigDir::stdin_to_kafka(
        kafka.bootstrap_servers(),
        &topic,
        "librdkafka_options.\"message.max.bytes\" = \"2000\"",
    );
    let input = format!("small 1\n{}\nsmall 2\n", "x".repeat(5000));
    let output = run_with_input(config.ferry(&[]), input.as_bytes(), Duration::from_secs(60));
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert_eq!(summary_counter(&err, "kafka", "rejected"), Some(1), "{err}");
    assert_eq!(summary_counter(&err, "kafka", "delivered"), Some(2), "{err}");
    assert!(
        err.contains("dead-letter") && err.to_lowercase().contains("too large"),
        "the cause is named: {err}"
    );
    let letters = config.dead_letters("kafka");
    assert_eq!(letters.len(), 1, "the rejected record is kept as a dead letter");
    assert_eq!(letters[0].reason, ferry_dead_letter::DeadLetterReason::TooLarge);
    assert_eq!(
        letters[0].payload,
        "x".repeat(5000).into_bytes(),
        "payload intact"
    );
    let records = read_topic(kafka.bootstrap_servers(), &topic, 2, IDLE);
    let mut payloads: Vec<&str> = records.iter().map(|r| r.payload_str()).collect();
    payloads.sort();
    assert_eq!(payloads, ["small 1", "small 2"]);
}

#[test]
fn healthcheck_topic_is_checked_for_templated_topics() {
    let kafka = TestKafka::start();
    let present = unique("e2e-hc");
    kafka.create_topics(&[&present]);
    let templated = "e2e-hc-{{ unit }}";
    let check = |healthcheck_topic: &str| {
        let config = ConfigDir::stdin_to_kafka(
            kafka.bootstrap_servers(),
            templated,
            &format!("healthcheck_topic = \"{healthcheck_topic}\""),
        );
        run_with_input(config.ferry(&["validate"]), b"", Duration::from_secs(30))
    };
    let ok = check(&present);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let missing = check("no-such-topic");
    assert_eq!(missing.status.code(), Some(1));
    let err = stderr(&missing);
    assert!(err.contains("topic `no-such-topic` does not exist"), "{err}");
}

#[test]
fn unknown_librdkafka_option_is_a_startup_error_naming_it() {
    let config = ConfigDir::new(
        r#"
[sources.in]
type = "stdin"

[sinks.kafka]
type = "kafka"
inputs = ["in"]
bootstrap_servers = "127.0.0.1:1"
topic = "t"
librdkafka_options."linger.mss" = "5"
"#,
    );
    let output = run_with_input(config.ferry(&[]), b"x\n", Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("linger.mss") && err.contains("kafka"), "{err}");
}
