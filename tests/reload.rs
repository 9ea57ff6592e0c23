//! SIGHUP reloads the configuration against the real binary and broker: the running pipeline
//! drains and the new one starts in the same process, so no line is lost or sent twice; a
//! configuration that does not load is refused and the running one goes on.

use std::io::Write;
use std::time::Duration;

use ferry_e2e::{
    ConfigDir, Record, Storage, Tally, TestKafka, append_lines, capture_stderr, numbered_lines, read_topic,
    signal, unique, wait_for_log, wait_with_limit,
};

const RELOADED: &str = "reload: the new configuration is running";
const REFUSED: &str = "SIGHUP: the configuration was not reloaded";

fn kafka_table(brokers: &str, topic: &str, extra: &str) -> String {
    format!(
        "[sinks.kafka]\ntype = \"kafka\"\ninputs = [\"in\"]\nbootstrap_servers = \"{brokers}\"\ntopic = \"{topic}\"\n{extra}\n"
    )
}

/// Every record of both topics: the lines before the reload went to one, after it to the other.
fn read_both(kafka: &TestKafka, before: &str, after: &str, total: usize) -> (Vec<Record>, Vec<Record>) {
    let first = read_topic(kafka.bootstrap_servers(), before, 1, Duration::from_secs(3));
    let second = read_topic(
        kafka.bootstrap_servers(),
        after,
        total.saturating_sub(first.len()),
        Duration::from_secs(3),
    );
    (first, second)
}

#[test]
fn sighup_switches_stdin_to_a_new_topic_without_losing_or_repeating_a_line() {
    let kafka = TestKafka::start();
    let (before, after) = (unique("reload-a"), unique("reload-b"));
    kafka.create_topics(&[&before, &after]);
    let brokers = kafka.bootstrap_servers().to_owned();
    let config = ConfigDir::new(&format!(
        "[sources.in]\ntype = \"stdin\"\n\n{}",
        kafka_table(&brokers, &before, "")
    ));
    let mut child = config.spawn(&[]);
    let log = capture_stderr(&mut child);
    let mut stdin = child.stdin.take().expect("stdin");
    let lines = numbered_lines("hup", 0..30_000);
    let mut chunks = lines.chunks(1_000);
    let mut feed = |n: usize| {
        for chunk in chunks.by_ref().take(n) {
            stdin
                .write_all((chunk.join("\n") + "\n").as_bytes())
                .expect("feed ferry");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    feed(10);

    // A valid new configuration: the pipeline drains and the new one writes to `after`.
    std::fs::write(
        config.path(),
        format!(
            "data_dir = \"{}\"\n[sources.in]\ntype = \"stdin\"\n\n{}",
            config.dir.path().join("data").display(),
            kafka_table(&brokers, &after, "")
        ),
    )
    .expect("rewrite the configuration");
    signal(child.id(), "HUP");
    assert!(
        wait_for_log(&log, RELOADED, Duration::from_secs(30)),
        "no reload:\n{}",
        log.lock().unwrap()
    );
    feed(10);

    // A broken one is refused and the running pipeline goes on.
    let good = std::fs::read_to_string(config.path()).expect("read the configuration");
    std::fs::write(config.path(), format!("{good}\n[sinks.kafka.oops\n")).expect("break it");
    signal(child.id(), "HUP");
    assert!(
        wait_for_log(&log, REFUSED, Duration::from_secs(10)),
        "the broken configuration was not refused:\n{}",
        log.lock().unwrap()
    );
    feed(10);
    drop(stdin);

    let status = wait_with_limit(child, Duration::from_secs(60)).status;
    let log = log.lock().unwrap().clone();
    assert!(status.success(), "ferry failed: {status}\n{log}");
    assert_eq!(log.matches(RELOADED).count(), 1, "{log}");
    let (first, second) = read_both(&kafka, &before, &after, lines.len());
    assert!(
        !first.is_empty() && !second.is_empty(),
        "both topics get lines: {} before, {} after",
        first.len(),
        second.len()
    );
    let all: Vec<Record> = first.into_iter().chain(second).collect();
    assert_eq!(
        Tally::of_records(&lines, &all),
        Tally::exactly_once(lines.len()),
        "{log}"
    );
}

#[test]
fn sighup_with_a_file_source_and_a_disk_buffer_resumes_from_the_checkpoint() {
    let kafka = TestKafka::local(Storage::Memory);
    let (before, after) = (unique("reload-file-a"), unique("reload-file-b"));
    kafka.create_topics(&[&before, &after]);
    let brokers = kafka.bootstrap_servers().to_owned();
    let logs = tempfile::tempdir().expect("temp dir");
    let file = logs.path().join("app.log");
    let text = |topic: &str| {
        format!(
            "[sources.in]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\npoll_interval_ms = 50\n\n{}",
            logs.path().display(),
            kafka_table(
                &brokers,
                topic,
                "buffer.type = \"disk\"\nbuffer.max_size = 268435488\nencoding.codec = \"text\""
            )
        )
    };
    let config = ConfigDir::new(&text(&before));
    let lines = numbered_lines("hupfile", 0..40_000);
    append_lines(&file, &lines[..10_000]);
    let mut child = config.spawn(&[]);
    let log = capture_stderr(&mut child);
    std::thread::sleep(Duration::from_millis(500));
    append_lines(&file, &lines[10_000..20_000]);

    let data_dir = format!("data_dir = \"{}\"\n", config.dir.path().join("data").display());
    std::fs::write(config.path(), data_dir + &text(&after)).expect("rewrite the configuration");
    signal(child.id(), "HUP");
    // Lines written while the pipeline is switching are read by the new one.
    append_lines(&file, &lines[20_000..30_000]);
    assert!(
        wait_for_log(&log, RELOADED, Duration::from_secs(30)),
        "no reload:\n{}",
        log.lock().unwrap()
    );
    append_lines(&file, &lines[30_000..]);

    let (first, second) = {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (first, second) = read_both(&kafka, &before, &after, lines.len());
            if first.len() + second.len() >= lines.len() || std::time::Instant::now() > deadline {
                break (first, second);
            }
        }
    };
    signal(child.id(), "TERM");
    let status = wait_with_limit(child, Duration::from_secs(60)).status;
    let log = log.lock().unwrap().clone();
    assert!(status.success(), "ferry failed: {status}\n{log}");
    assert!(!second.is_empty(), "the new topic gets lines\n{log}");
    let all: Vec<Record> = first.into_iter().chain(second).collect();
    assert_eq!(
        Tally::of_records(&lines, &all),
        Tally::exactly_once(lines.len()),
        "{log}"
    );
}
