//! The HTTP endpoint (`[api]`) against the real binary: `/metrics` counts what was sent and
//! read back, `/health` follows the broker going away and coming back, and a bad address
//! stops ferry at start with one line naming `api.address`.

use std::collections::HashSet;
use std::io::Write;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ferry_e2e::{
    ConfigDir, Storage, TestKafka, http_get, metric, read_topic, run_with_input, stderr, summary_counter,
    unique, wait_until, wait_with_limit,
};

fn api_address() -> String {
    format!("127.0.0.1:{}", ferry_tansu::free_port().expect("a free port"))
}

fn spawn(config: &ConfigDir, args: &[&str]) -> (Child, ChildStdin) {
    let mut child = config
        .ferry(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferry starts");
    let stdin = child.stdin.take().expect("stdin");
    (child, stdin)
}

/// A sample's value as a float (gauges of seconds, librdkafka's figures).
fn metric_f64(scrape: &str, sample: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The names of a scrape's samples; a histogram's `_bucket`, `_sum` and `_count` go by the
/// histogram's name (as the docs list it).
fn sample_names(scrape: &str) -> Vec<&str> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(|name| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| name.strip_suffix(suffix))
                .find(|stem| scrape.contains(&format!("# TYPE {stem} histogram\n")))
                .unwrap_or(name)
        })
        .collect()
}

/// stdin → sink `kafka` with the endpoint at `address`, for tests that stop the broker; `extra`
/// goes in the sink's table. Idempotence is off only because of a tansu 0.6.0 bug after an
/// outage (see kafka_outages.rs).
fn outage_config(address: &str, brokers: &str, topic: &str, extra: &str) -> ConfigDir {
    ConfigDir::new(&format!(
        r#"
[api]
address = "{address}"

[sources.in]
type = "stdin"

[sinks.kafka]
type = "kafka"
inputs = ["in"]
bootstrap_servers = "{brokers}"
topic = "{topic}"
socket_timeout_ms = 1000
librdkafka_options."enable.idempotence" = "false"
{extra}
"#
    ))
}

/// A sample of sink `kafka` in a scrape.
fn kafka_metric(scrape: &str, name: &str) -> Option<u64> {
    metric(scrape, &format!("{name}{{sink=\"kafka\"}}"))
}

#[test]
fn metrics_count_what_was_sent_and_read_back_and_match_the_final_summary() {
    let kafka = TestKafka::start();
    let base = unique("api");
    let topic = format!("{base}-web");
    kafka.create_topics(&[&topic]);
    let address = api_address();
    let config = ConfigDir::new(&format!(
        r#"
[api]
address = "{address}"

[sources.in]
type = "stdin"
decoding.codec = "json"

[sinks.kafka]
type = "kafka"
inputs = ["in"]
bootstrap_servers = "{brokers}"
topic = "{base}-{{{{ service }}}}"
encoding.codec = "json"
"#,
        brokers = kafka.bootstrap_servers()
    ));
    let (child, mut stdin) = spawn(&config, &[]);
    let (good, bad) = (2000u64, 7u64);
    let mut input = String::new();
    for i in 0..good {
        input.push_str(&format!("{{\"service\":\"web\",\"seq\":{i}}}\n"));
    }
    for i in 0..bad {
        // No `service`: the topic cannot be rendered, so the event is a dead letter.
        input.push_str(&format!("{{\"seq\":{}}}\n", good + i));
    }
    stdin.write_all(input.as_bytes()).unwrap();
    stdin.flush().unwrap();

    // stdin stays open, so ferry is still running while it is scraped.
    let mut scrape = String::new();
    let settled = wait_until(Duration::from_secs(60), || {
        if let Some((200, body)) = http_get(&address, "/metrics") {
            scrape = body;
        }
        kafka_metric(&scrape, "ferry_delivered_events_total") == Some(good)
            && kafka_metric(&scrape, "ferry_rejected_events_total") == Some(bad)
            && kafka_metric(&scrape, "ferry_in_flight_events") == Some(0)
    });
    assert!(settled, "the counters did not settle:\n{scrape}");
    assert_eq!(
        kafka_metric(&scrape, "ferry_received_events_total"),
        Some(good + bad),
        "{scrape}"
    );
    assert_eq!(
        kafka_metric(&scrape, "ferry_dead_lettered_events_total"),
        Some(bad),
        "{scrape}"
    );
    for zero in [
        "ferry_dropped_events_total",
        "ferry_buffer_errors_total",
        "ferry_buffered_events",
    ] {
        assert_eq!(kafka_metric(&scrape, zero), Some(0), "{zero}:\n{scrape}");
    }
    assert_eq!(kafka_metric(&scrape, "ferry_sink_healthy"), Some(1), "{scrape}");
    assert_eq!(
        http_get(&address, "/health"),
        Some((200, r#"{"status":"ok"}"#.to_owned()))
    );
    // The source: every line, every byte (newlines included), nothing undecodable.
    let source = |name: &str| metric(&scrape, &format!("{name}{{source=\"in\"}}"));
    assert_eq!(
        source("ferry_source_received_events_total"),
        Some(good + bad),
        "{scrape}"
    );
    assert_eq!(
        source("ferry_source_received_bytes_total"),
        Some(input.len() as u64),
        "{scrape}"
    );
    for kind in ["undecodable", "split_line", "read"] {
        let sample = format!("ferry_source_errors_total{{source=\"in\",kind=\"{kind}\"}}");
        assert_eq!(metric(&scrape, &sample), Some(0), "{sample}:\n{scrape}");
    }
    // The sink's failures by kind: the events whose topic could not be rendered.
    let errors = |kind: &str| {
        metric(
            &scrape,
            &format!("ferry_sink_errors_total{{sink=\"kafka\",kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(errors("template"), Some(bad), "{scrape}");
    assert_eq!(errors("record"), Some(0), "{scrape}");
    // One latency observation per delivery, and none beyond the last bucket's count.
    assert_eq!(
        kafka_metric(&scrape, "ferry_delivery_latency_seconds_count"),
        Some(good),
        "{scrape}"
    );
    assert_eq!(
        metric(
            &scrape,
            "ferry_delivery_latency_seconds_bucket{le=\"+Inf\",sink=\"kafka\"}"
        ),
        Some(good),
        "{scrape}"
    );
    // Per topic, the template's rendered topic.
    assert_eq!(
        metric(
            &scrape,
            &format!("ferry_kafka_topic_delivered_events_total{{sink=\"kafka\",topic=\"{topic}\"}}")
        ),
        Some(good),
        "{scrape}"
    );
    assert!(!scrape.contains("topic=\"_other\""), "{scrape}");
    // Nothing waits, so no age.
    assert_eq!(
        metric_f64(&scrape, "ferry_buffer_oldest_event_age_seconds{sink=\"kafka\"}"),
        Some(0.0),
        "{scrape}"
    );
    // librdkafka's statistics, after an interval (5 s by default): queue and broker figures.
    let stats = wait_until(Duration::from_secs(20), || {
        if let Some((200, body)) = http_get(&address, "/metrics") {
            scrape = body;
        }
        scrape.contains("ferry_kafka_queue_messages{sink=\"kafka\"}")
    });
    assert!(stats, "no librdkafka statistics:\n{scrape}");
    assert_eq!(
        metric_f64(&scrape, "ferry_kafka_queue_messages{sink=\"kafka\"}"),
        Some(0.0),
        "{scrape}"
    );
    let up: Vec<&str> = scrape
        .lines()
        .filter(|l| l.starts_with("ferry_kafka_broker_up{sink=\"kafka\",broker=") && l.ends_with(" 1.0"))
        .collect();
    assert!(!up.is_empty(), "a broker is up:\n{scrape}");
    for family in [
        "ferry_kafka_broker_rtt_avg_seconds",
        "ferry_kafka_broker_rtt_p99_seconds",
        "ferry_kafka_broker_tx_errors_total",
        "ferry_kafka_broker_rx_errors_total",
        "ferry_kafka_broker_request_timeouts_total",
    ] {
        assert!(
            scrape.contains(&format!("{family}{{sink=\"kafka\",broker=")),
            "{family}:\n{scrape}"
        );
    }

    // Every sample the running binary exposes is documented.
    let docs = std::fs::read_to_string(ferry_e2e::root().join("docs/observability.md")).unwrap();
    let undocumented: Vec<&str> = sample_names(&scrape)
        .into_iter()
        .filter(|name| !docs.contains(&format!("`{name}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "not in docs/observability.md: {undocumented:?}"
    );

    let records = read_topic(
        kafka.bootstrap_servers(),
        &topic,
        good as usize,
        Duration::from_millis(1500),
    );
    let seqs: HashSet<u64> = records
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(r.payload_str()).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        records.len() as u64,
        good,
        "read back exactly what /metrics says was delivered"
    );
    assert_eq!(seqs.len() as u64, good);
    let payload_bytes: usize = records.iter().map(|r| r.payload_str().len()).sum();
    assert_eq!(
        kafka_metric(&scrape, "ferry_sent_bytes_total"),
        Some(payload_bytes as u64),
        "the bytes sent are the payloads read back"
    );

    drop(stdin);
    let output = wait_with_limit(child, Duration::from_secs(60));
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    // One set of counters: the exit summary says what /metrics said.
    assert_eq!(summary_counter(&err, "kafka", "delivered"), Some(good), "{err}");
    assert_eq!(summary_counter(&err, "kafka", "rejected"), Some(bad), "{err}");
    assert_eq!(
        summary_counter(&err, "kafka", "received"),
        Some(good + bad),
        "{err}"
    );
    assert!(
        http_get(&address, "/health").is_none(),
        "the endpoint stops with the run"
    );
}

#[test]
fn health_is_503_naming_the_sink_while_the_broker_is_away_and_200_once_it_is_back() {
    let topic = "api-health";
    let broker_dir = tempfile::tempdir().unwrap();
    let mut kafka = TestKafka::local(Storage::Sqlite(broker_dir.path().to_owned()));
    kafka.create_topics(&[topic]);
    let brokers = kafka.bootstrap_servers().to_owned();
    let address = api_address();
    let config = outage_config(&address, &brokers, topic, "message_timeout_ms = 2000");
    let (child, mut stdin) = spawn(&config, &["--shutdown-timeout", "90"]);
    // A steady trickle of lines for the whole test, so events wait while the broker is away.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let n = sent.load(Ordering::Relaxed);
                let text: String = (n..n + 10).map(|i| format!("health line {i}\n")).collect();
                stdin.write_all(text.as_bytes()).unwrap();
                sent.store(n + 10, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let health = || http_get(&address, "/health");
    assert!(
        wait_until(Duration::from_secs(30), || health()
            .is_some_and(|(s, _)| s == 200)),
        "healthy while the broker is up: {:?}",
        health()
    );

    kafka.broker.as_mut().unwrap().stop();
    let mut seen = None;
    let unhealthy = wait_until(Duration::from_secs(45), || {
        seen = health();
        seen.as_ref().is_some_and(|(s, _)| *s == 503)
    });
    assert!(unhealthy, "503 while the broker is away: {seen:?}");
    let (_, body) = seen.unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "unhealthy", "{body}");
    let reason = json["sinks"]["kafka"]
        .as_str()
        .unwrap_or_else(|| panic!("names the sink: {body}"));
    // Whichever comes first: the stall (events wait, nothing confirmed for 10 s) or the
    // statistics showing no broker up for 10 s.
    assert!(
        reason.contains("no delivery confirmed") || reason.contains("no broker reachable"),
        "{reason}"
    );
    let (_, scrape) = http_get(&address, "/metrics").unwrap();
    assert_eq!(kafka_metric(&scrape, "ferry_sink_healthy"), Some(0), "{scrape}");

    kafka.broker.as_mut().unwrap().restart().unwrap();
    assert!(
        wait_until(Duration::from_secs(90), || health()
            .is_some_and(|(s, _)| s == 200)),
        "200 once the broker is back: {:?}",
        health()
    );
    assert_eq!(health().unwrap().1, r#"{"status":"ok"}"#);

    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let total = sent.load(Ordering::Relaxed);
    let output = wait_with_limit(child, Duration::from_secs(120));
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert_eq!(summary_counter(&err, "kafka", "delivered"), Some(total), "{err}");
    let records = read_topic(&brokers, topic, total as usize, Duration::from_secs(2));
    let got: HashSet<&str> = records.iter().map(|r| r.payload_str()).collect();
    assert_eq!(got.len() as u64, total, "every line arrived");
}

#[test]
fn health_is_503_when_no_broker_is_reachable_even_while_idle_and_200_once_one_is() {
    let topic = "api-idle-health";
    let broker_dir = tempfile::tempdir().unwrap();
    let mut kafka = TestKafka::local(Storage::Sqlite(broker_dir.path().to_owned()));
    kafka.create_topics(&[topic]);
    let brokers = kafka.bootstrap_servers().to_owned();
    let address = api_address();
    // Statistics every second (overriding the 5 s default) so the test waits less.
    let config = outage_config(
        &address,
        &brokers,
        topic,
        "librdkafka_options.\"statistics.interval.ms\" = \"1000\"",
    );
    let (child, mut stdin) = spawn(&config, &[]);
    stdin
        .write_all(b"one line so the producer has talked to the broker\n")
        .unwrap();
    stdin.flush().unwrap();
    let health = || http_get(&address, "/health");
    let mut scrape = String::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            if let Some((200, body)) = http_get(&address, "/metrics") {
                scrape = body;
            }
            kafka_metric(&scrape, "ferry_delivered_events_total") == Some(1)
                && scrape.contains("ferry_kafka_broker_up{sink=\"kafka\"")
        }),
        "delivered, with statistics:\n{scrape}"
    );
    assert_eq!(health().map(|(s, _)| s), Some(200));

    // Idle: nothing waits, yet the sink cannot reach a broker.
    kafka.broker.as_mut().unwrap().stop();
    let mut seen = None;
    let unhealthy = wait_until(Duration::from_secs(40), || {
        seen = health();
        seen.as_ref().is_some_and(|(s, _)| *s == 503)
    });
    assert!(unhealthy, "503 while no broker is reachable: {seen:?}");
    let (_, body) = seen.unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let reason = json["sinks"]["kafka"]
        .as_str()
        .unwrap_or_else(|| panic!("names the sink: {body}"));
    assert!(reason.contains("no broker reachable"), "{reason}");
    let (_, scrape) = http_get(&address, "/metrics").unwrap();
    assert_eq!(
        kafka_metric(&scrape, "ferry_in_flight_events"),
        Some(0),
        "idle:\n{scrape}"
    );
    assert!(
        !scrape
            .lines()
            .any(|l| l.starts_with("ferry_kafka_broker_up{") && l.ends_with(" 1.0")),
        "no broker up:\n{scrape}"
    );

    kafka.broker.as_mut().unwrap().restart().unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || health()
            .is_some_and(|(s, _)| s == 200)),
        "200 once a broker is reachable again: {:?}",
        health()
    );

    drop(stdin);
    let output = wait_with_limit(child, Duration::from_secs(60));
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn a_port_in_use_stops_ferry_at_start_with_one_line_naming_api_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let config = ConfigDir::new(&format!(
        "[api]\naddress = \"{address}\"\n\n[sources.in]\ntype = \"stdin\"\n\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\n"
    ));
    let output = run_with_input(config.ferry(&[]), b"never printed\n", Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("ferry: ")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("api.address") && lines[0].contains(&address) && lines[0].contains("in use"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(output.stdout.is_empty(), "no input was read");
}

#[test]
fn an_invalid_address_is_a_configuration_error_naming_api_address() {
    let config = ConfigDir::new(
        "[api]\naddress = \"localhost\"\n\n[sources.in]\ntype = \"stdin\"\n\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\n",
    );
    let output = run_with_input(config.ferry(&[]), b"never printed\n", Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("key `api.address`") && err.contains("`localhost`"),
        "{err}"
    );
    assert!(output.stdout.is_empty(), "no input was read");
}

#[test]
fn validate_checks_the_address_without_binding_it() {
    // A running ferry holds its port: validating its configuration must still pass.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let config = ConfigDir::new(&format!(
        "[api]\naddress = \"{address}\"\n\n[sources.in]\ntype = \"stdin\"\n\n[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\n"
    ));
    let output = run_with_input(
        config.ferry(&["validate", "--no-healthchecks"]),
        b"",
        Duration::from_secs(30),
    );
    assert!(output.status.success(), "{}", stderr(&output));
}
