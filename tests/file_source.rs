//! The `file` source end to end: the real binary tails real files into a real broker while
//! the files are rotated, truncated, deleted and the process is killed. Every line is unique
//! (`TAG-NNNNNNN`), so the records read back say exactly what was lost and what came twice.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use ferry_e2e::{
    ConfigDir, Record, Storage, Tally, TestKafka, append_lines, capture_stderr, numbered_lines, read_topic,
    read_topic_within, signal, stderr, unique, wait_for_log, wait_until, wait_with_limit,
};

/// One test's files and pipeline.
struct Tail {
    config: ConfigDir,
    logs: PathBuf,
    /// Every ferry started, killed when the test ends however it ends (a failed assertion
    /// must not leave a ferry tailing into the next test's broker).
    started: std::cell::RefCell<Vec<u32>>,
}

impl Drop for Tail {
    fn drop(&mut self) {
        for pid in self.started.borrow().iter() {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Tail {
    /// A `file` source over `include` (relative to the logs directory) into `topic`; `source`
    /// and `sink` add lines to either table.
    fn new(brokers: &str, topic: &str, include: &[&str], source: &str, sink: &str) -> Self {
        let logs = tempfile::tempdir().unwrap().keep();
        let include: Vec<String> = include
            .iter()
            .map(|p| format!("\"{}\"", logs.join(p).display()))
            .collect();
        // Defaults for these tests, unless the test sets the key itself.
        let with_defaults = |table: &str, defaults: &[&str]| {
            let mut text = table.to_owned();
            for default in defaults {
                let key = default.split(" =").next().unwrap_or_default();
                if !table.lines().any(|l| l.starts_with(&format!("{key} "))) {
                    text.push('\n');
                    text.push_str(default);
                }
            }
            text
        };
        let source = with_defaults(source, &["discovery_interval_ms = 200", "poll_interval_ms = 50"]);
        let sink = with_defaults(sink, &["encoding.codec = \"text\""]);
        let config = ConfigDir::new(&format!(
            r#"
[sources.files]
type = "file"
include = [{include}]
{source}

[sinks.kafka]
type = "kafka"
inputs = ["files"]
bootstrap_servers = "{brokers}"
topic = "{topic}"
healthcheck = false
{sink}
"#,
            include = include.join(", ")
        ));
        Self {
            config,
            logs,
            started: std::cell::RefCell::new(Vec::new()),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.logs.join(name)
    }

    fn start(&self) -> Child {
        let child = self.config.spawn(&["--summary-interval", "0"]);
        self.started.borrow_mut().push(child.id());
        child
    }

    fn checkpoint_file(&self) -> PathBuf {
        self.config.dir.path().join("data/checkpoints/files/checkpoints")
    }

    /// The offset the saved checkpoint holds for `file` (0 if none).
    fn checkpoint_offset(&self, file: &Path) -> u64 {
        let Ok(text) = fs::read_to_string(self.checkpoint_file()) else {
            return 0;
        };
        let Some((_, body)) = text.split_once('\n') else {
            return 0;
        };
        let body: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        body["files"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["path"].as_str() == Some(&file.display().to_string()))
            .and_then(|f| f["offset"].as_u64())
            .unwrap_or(0)
    }
}

fn read_all(brokers: &str, topic: &str, expected: usize) -> Vec<Record> {
    read_topic(brokers, topic, expected, Duration::from_secs(2))
}

fn stop(child: Child) -> String {
    signal(child.id(), "TERM");
    let output = wait_with_limit(child, Duration::from_secs(60));
    let log = stderr(&output);
    assert!(output.status.success(), "ferry failed: {log}");
    log
}

fn kafka_with(topic: &str) -> TestKafka {
    let kafka = TestKafka::start();
    kafka.create_topics(&[topic]);
    kafka
}

#[test]
fn several_files_arrive_once_with_path_and_offset_and_a_restart_resumes() {
    let topic = unique("file-basic");
    let kafka = kafka_with(&topic);
    let brokers = kafka.bootstrap_servers();
    let tail = Tail::new(brokers, &topic, &["*.log"], "", "encoding.codec = \"json\"");
    let mut expected = Vec::new();
    for name in ["a", "b", "c"] {
        let before = numbered_lines(name, 0..1000);
        append_lines(&tail.path(&format!("{name}.log")), &before);
        expected.extend(before);
    }
    fs::write(tail.path("skipped.txt"), "not matched\n").unwrap();
    let child = tail.start();
    std::thread::sleep(Duration::from_millis(500));
    for name in ["a", "b", "c"] {
        let after = numbered_lines(name, 1000..1500);
        append_lines(&tail.path(&format!("{name}.log")), &after);
        expected.extend(after);
    }
    let records = read_all(brokers, &topic, expected.len());
    let messages: Vec<Record> = records
        .iter()
        .map(|r| {
            let event: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            let message = event["message"].as_str().unwrap().to_owned();
            let (name, n) = message.split_once('-').unwrap();
            let n: u64 = n.parse().unwrap();
            assert_eq!(
                event["file"].as_str(),
                Some(tail.path(&format!("{name}.log")).to_str().unwrap()),
                "{event}"
            );
            // Every line of these files is 10 bytes long with its newline.
            assert_eq!(event["offset"].as_u64(), Some(n * 10), "{event}");
            assert!(
                event["host"].is_string() && event["timestamp"].is_string(),
                "{event}"
            );
            Record {
                payload: message.into_bytes(),
                ..r.clone()
            }
        })
        .collect();
    assert_eq!(
        Tally::of_records(&expected, &messages),
        Tally::exactly_once(expected.len())
    );
    stop(child);

    // Lines written while ferry is stopped are sent after the restart, and only they.
    let mut more = Vec::new();
    for name in ["a", "b", "c"] {
        let after = numbered_lines(name, 1500..1700);
        append_lines(&tail.path(&format!("{name}.log")), &after);
        more.extend(after);
    }
    expected.extend(more);
    let child = tail.start();
    let records = read_all(brokers, &topic, expected.len());
    let messages: Vec<Record> = records
        .iter()
        .map(|r| {
            let event: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            Record {
                payload: event["message"].as_str().unwrap().as_bytes().to_vec(),
                ..r.clone()
            }
        })
        .collect();
    assert_eq!(
        Tally::of_records(&expected, &messages),
        Tally::exactly_once(expected.len())
    );
    stop(child);
}

/// logrotate's default: rename, then create a new file under the old name. Only `app.log` is
/// matched, so every rotated file's tail is read through the handle ferry keeps open.
#[test]
fn rename_rotation_mid_run_loses_nothing_and_sends_nothing_twice() {
    let topic = unique("file-rotate");
    let kafka = kafka_with(&topic);
    let brokers = kafka.bootstrap_servers();
    let tail = Tail::new(brokers, &topic, &["app.log"], "rotate_wait_ms = 1000", "");
    let app = tail.path("app.log");
    append_lines(&app, &[]);
    let child = tail.start();
    std::thread::sleep(Duration::from_millis(500));
    let mut expected = Vec::new();
    for rotation in 0..5 {
        for burst in 0..10 {
            let start = rotation * 2000 + burst * 200;
            let batch = numbered_lines("r", start..start + 200);
            append_lines(&app, &batch);
            expected.extend(batch);
            std::thread::sleep(Duration::from_millis(30));
        }
        fs::rename(&app, tail.path(&format!("app.log.{rotation}"))).unwrap();
        // The writer keeps its old handle a moment after the rename, as applications do.
        let late = numbered_lines("late", rotation * 10..rotation * 10 + 10);
        append_lines(&tail.path(&format!("app.log.{rotation}")), &late);
        expected.extend(late);
        append_lines(&app, &[]);
    }
    let records = read_all(brokers, &topic, expected.len());
    assert_eq!(
        Tally::of_records(&expected, &records),
        Tally::exactly_once(expected.len())
    );
    stop(child);
}

/// A file created and rotated away between two discovery passes: matched under its rotated
/// name too, it is new there and read from its start.
#[test]
fn a_file_created_and_rotated_between_two_discovery_passes_is_read_whole() {
    let topic = unique("file-between");
    let kafka = kafka_with(&topic);
    let brokers = kafka.bootstrap_servers();
    let tail = Tail::new(brokers, &topic, &["app.log*"], "discovery_interval_ms = 3000", "");
    let child = tail.start();
    // The first discovery ran at start, on an empty directory.
    std::thread::sleep(Duration::from_millis(800));
    let app = tail.path("app.log");
    let first = numbered_lines("first", 0..300);
    append_lines(&app, &first);
    fs::rename(&app, tail.path("app.log.1")).unwrap();
    let second = numbered_lines("second", 0..300);
    append_lines(&app, &second);
    let expected: Vec<String> = first.into_iter().chain(second).collect();
    let records = read_all(brokers, &topic, expected.len());
    assert_eq!(
        Tally::of_records(&expected, &records),
        Tally::exactly_once(expected.len())
    );
    stop(child);
}

/// copytruncate, then a truncation immediately written past the old read position: ferry
/// notices both and reads the new content from its start, once.
#[test]
fn copytruncate_and_truncate_then_regrow_are_read_again_from_the_start() {
    let topic = unique("file-truncate");
    let kafka = kafka_with(&topic);
    let brokers = kafka.bootstrap_servers();
    let tail = Tail::new(brokers, &topic, &["app.log"], "", "");
    let app = tail.path("app.log");
    let mut expected = numbered_lines("a", 0..1000);
    append_lines(&app, &expected);
    let child = tail.start();
    assert_eq!(read_all(brokers, &topic, 1000).len(), 1000);

    // copytruncate: copy away (not matched), truncate in place, the writer goes on.
    fs::copy(&app, tail.path("app.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&app)
        .unwrap()
        .set_len(0)
        .unwrap();
    let after = numbered_lines("b", 0..100);
    append_lines(&app, &after);
    expected.extend(after);
    assert_eq!(read_all(brokers, &topic, expected.len()).len(), expected.len());

    // Truncated and at once written well past where ferry had read.
    let file = OpenOptions::new().write(true).open(&app).unwrap();
    file.set_len(0).unwrap();
    drop(file);
    let regrown = numbered_lines("c", 0..3000);
    append_lines(&app, &regrown);
    expected.extend(regrown);
    let records = read_all(brokers, &topic, expected.len());
    assert_eq!(
        Tally::of_records(&expected, &records),
        Tally::exactly_once(expected.len())
    );
    stop(child);
}

#[test]
fn a_file_deleted_while_being_read_is_read_to_its_end() {
    let topic = unique("file-deleted");
    let kafka = kafka_with(&topic);
    let brokers = kafka.bootstrap_servers();
    // A small in-flight allowance keeps most of the file unread when it is deleted.
    let tail = Tail::new(
        brokers,
        &topic,
        &["*.log"],
        "max_line_bytes = 4096\nmax_unacked_bytes = 65536\nrotate_wait_ms = 500",
        "",
    );
    let doomed = tail.path("doomed.log");
    let expected = numbered_lines("d", 0..200_000);
    append_lines(&doomed, &expected);
    let child = tail.start();
    assert!(
        wait_until(Duration::from_secs(20), || tail.checkpoint_offset(&doomed) > 0),
        "ferry never started on the file"
    );
    fs::remove_file(&doomed).unwrap();
    let records = read_topic_within(
        &[],
        brokers,
        &topic,
        expected.len(),
        Duration::from_secs(2),
        Duration::from_secs(120),
    );
    assert_eq!(
        Tally::of_records(&expected, &records),
        Tally::exactly_once(expected.len())
    );
    stop(child);
}

/// Two files whose first 2 KiB are identical are two files, before and after a restart.
#[test]
fn files_with_identical_first_lines_are_told_apart() {
    let topic = unique("file-twins");
    let kafka = kafka_with(&topic);
    let brokers = kafka.bootstrap_servers();
    let tail = Tail::new(brokers, &topic, &["*.log"], "", "");
    let header: Vec<String> = (0..100)
        .map(|i| format!("# the same header line {i:03}"))
        .collect();
    let mut expected = Vec::new();
    for name in ["one", "two"] {
        append_lines(&tail.path(&format!("{name}.log")), &header);
        let own = numbered_lines(name, 0..100);
        append_lines(&tail.path(&format!("{name}.log")), &own);
        expected.extend(own);
    }
    expected.extend(header.iter().cloned());
    let child = tail.start();
    let records = read_all(brokers, &topic, 400);
    let headers_seen = records
        .iter()
        .filter(|r| r.payload_str().starts_with('#'))
        .count();
    assert_eq!(headers_seen, 200, "each file's header is sent once");
    stop(child);
    let mut more = Vec::new();
    for name in ["one", "two"] {
        let own = numbered_lines(name, 100..200);
        append_lines(&tail.path(&format!("{name}.log")), &own);
        more.extend(own);
    }
    let child = tail.start();
    let records = read_all(brokers, &topic, 600);
    let headers_seen = records
        .iter()
        .filter(|r| r.payload_str().starts_with('#'))
        .count();
    assert_eq!(headers_seen, 200, "no header was sent again after the restart");
    expected.extend(more);
    let mut unique_lines = expected.clone();
    unique_lines.retain(|l| !l.starts_with('#'));
    let own: Vec<Record> = records
        .into_iter()
        .filter(|r| !r.payload_str().starts_with('#'))
        .collect();
    assert_eq!(
        Tally::of_records(&unique_lines, &own),
        Tally::exactly_once(unique_lines.len())
    );
    stop(child);
}

/// While ferry is stopped, the file is deleted and a new one takes the same inode: the
/// checkpoint's fingerprints tell, and the new file is read from its start.
#[test]
fn a_reused_inode_is_a_new_file() {
    let topic = unique("file-inode");
    let kafka = kafka_with(&topic);
    let brokers = kafka.bootstrap_servers();
    let tail = Tail::new(brokers, &topic, &["app.log"], "", "");
    let app = tail.path("app.log");
    let old = numbered_lines("old", 0..500);
    append_lines(&app, &old);
    let child = tail.start();
    assert_eq!(read_all(brokers, &topic, 500).len(), 500);
    stop(child);
    let old_inode = fs::metadata(&app).unwrap().ino();
    // File systems hand a freed inode out again soon; keep trying until this one is reused.
    let mut reused = false;
    for attempt in 0..200 {
        fs::remove_file(&app).unwrap();
        fs::write(
            &app,
            format!("{}\n", numbered_lines(&format!("new{attempt}"), 0..1)[0]),
        )
        .unwrap();
        if fs::metadata(&app).unwrap().ino() == old_inode {
            reused = true;
            break;
        }
    }
    let fresh = numbered_lines("fresh", 0..100);
    let first_line = fs::read_to_string(&app).unwrap().trim_end().to_owned();
    append_lines(&app, &fresh);
    let child = tail.start();
    let mut expected = old;
    expected.push(first_line);
    expected.extend(fresh);
    let records = read_all(brokers, &topic, expected.len());
    assert_eq!(
        Tally::of_records(&expected, &records),
        Tally::exactly_once(expected.len()),
        "inode reused: {reused}"
    );
    stop(child);
}

#[test]
fn a_partial_last_line_at_kill_9_arrives_whole_after_the_restart() {
    let topic = unique("file-partial");
    let kafka = kafka_with(&topic);
    let brokers = kafka.bootstrap_servers();
    let tail = Tail::new(brokers, &topic, &["app.log"], "", "");
    let app = tail.path("app.log");
    fs::write(&app, "first\nsecond\nthe last li").unwrap();
    let mut child = tail.start();
    assert_eq!(read_all(brokers, &topic, 2).len(), 2);
    // Let a checkpoint be saved, then die without a chance to save another.
    std::thread::sleep(Duration::from_millis(1500));
    signal(child.id(), "KILL");
    let _ = child.wait();
    append_lines(&app, &["ne, finished".to_owned()]);
    let child = tail.start();
    let expected = ["first", "second", "the last line, finished"].map(String::from);
    let records = read_all(brokers, &topic, 3);
    assert_eq!(Tally::of_records(&expected, &records), Tally::exactly_once(3));
    stop(child);
}

#[test]
fn an_overlong_line_is_split_and_reported() {
    let topic = unique("file-long");
    let kafka = kafka_with(&topic);
    let brokers = kafka.bootstrap_servers();
    let tail = Tail::new(brokers, &topic, &["app.log"], "max_line_bytes = 100", "");
    let long = "x".repeat(250);
    fs::write(tail.path("app.log"), format!("short\n{long}\nafter\n")).unwrap();
    let child = tail.start();
    let records = read_all(brokers, &topic, 5);
    // Records of several partitions come back interleaved: compare the sizes as a set.
    let mut sizes: Vec<usize> = records.iter().map(|r| r.payload.len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [5, 5, 50, 100, 100]);
    let log = stop(child);
    assert!(log.contains("longer than max_line_bytes"), "{log}");
    assert!(
        log.contains("split_lines=1"),
        "the stop line counts the split line: {log}"
    );
}

#[test]
fn a_corrupt_checkpoint_falls_back_to_the_previous_generation_or_stops_ferry() {
    let topic = unique("file-corrupt");
    let kafka = kafka_with(&topic);
    let brokers = kafka.bootstrap_servers();
    let tail = Tail::new(brokers, &topic, &["app.log"], "", "");
    let app = tail.path("app.log");
    let mut expected = numbered_lines("a", 0..100);
    append_lines(&app, &expected);
    let child = tail.start();
    read_all(brokers, &topic, 100);
    stop(child);
    let current = tail.checkpoint_file();
    let previous = current.with_extension("prev");
    assert!(current.is_file() && previous.is_file());

    // A torn current file: ferry says so and resumes from the previous generation, which is
    // older, so lines may come again but none is lost.
    let text = fs::read(&current).unwrap();
    fs::write(&current, &text[..text.len() / 2]).unwrap();
    let more = numbered_lines("b", 0..50);
    append_lines(&app, &more);
    expected.extend(more);
    let mut child = tail.start();
    let log = capture_stderr(&mut child);
    let records = read_all(brokers, &topic, expected.len());
    let tally = Tally::of_records(&expected, &records);
    assert_eq!((tally.lost, tally.unexpected), (0, 0), "{tally:?}");
    assert!(
        wait_for_log(&log, "checkpoint file is corrupt", Duration::from_secs(5)),
        "{}",
        log.lock().unwrap()
    );
    signal(child.id(), "TERM");
    let _ = child.wait();

    // Both generations unusable: ferry refuses to guess, and says where to look.
    fs::write(&current, b"garbage").unwrap();
    fs::write(&previous, vec![0u8; 100]).unwrap();
    let output = wait_with_limit(tail.start(), Duration::from_secs(30));
    let log = stderr(&output);
    assert!(!output.status.success(), "{log}");
    assert!(
        log.contains(&current.display().to_string()) && log.contains("will not guess"),
        "{log}"
    );
}

/// Kafka is away for longer than `message_timeout_ms`: the lines wait, nothing moves the
/// checkpoint, and every line arrives once the broker is back.
#[test]
fn kafka_down_longer_than_the_message_timeout_loses_no_line() {
    let topic = "file-outage";
    let dir = tempfile::tempdir().unwrap();
    let mut kafka = TestKafka::local(Storage::Sqlite(dir.path().to_owned()));
    kafka.create_topics(&[topic]);
    let brokers = kafka.bootstrap_servers().to_owned();
    let tail = Tail::new(
        &brokers,
        topic,
        &["*.log"],
        "",
        "message_timeout_ms = 2000\nsocket_timeout_ms = 1000\nlibrdkafka_options.\"enable.idempotence\" = \"false\"",
    );
    let mut expected = numbered_lines("before", 0..1000);
    append_lines(&tail.path("app.log"), &expected);
    let child = tail.start();
    assert_eq!(read_all(&brokers, topic, 1000).len(), 1000);
    kafka.broker.as_mut().unwrap().stop();
    let during = numbered_lines("during", 0..5000);
    append_lines(&tail.path("app.log"), &during);
    expected.extend(during);
    std::thread::sleep(Duration::from_secs(6));
    kafka.broker.as_mut().unwrap().restart().unwrap();
    let records = read_topic_within(
        &[],
        &brokers,
        topic,
        expected.len(),
        Duration::from_secs(3),
        Duration::from_secs(90),
    );
    let tally = Tally::of_records(&expected, &records);
    assert_eq!((tally.lost, tally.unexpected), (0, 0), "{tally:?}");
    stop(child);
}

/// `kill -9` while a file is being written and read, then a restart: no line is lost, and
/// every line sent twice lies after the checkpoint saved before the kill (it was in flight).
fn killed_mid_file(buffer: &str) {
    let topic = unique("file-kill");
    let kafka = kafka_with(&topic);
    let brokers = kafka.bootstrap_servers();
    let tail = Tail::new(
        brokers,
        &topic,
        &["app.log"],
        "max_line_bytes = 4096\nmax_unacked_bytes = 1048576",
        buffer,
    );
    let app = tail.path("app.log");
    let expected = numbered_lines("k", 0..300_000);
    append_lines(&app, &[]);
    let mut child = tail.start();
    // The writer appends for about 3 s, so the kill lands while lines are in flight.
    let writer = {
        let (app, expected) = (app.clone(), expected.clone());
        std::thread::spawn(move || {
            for burst in expected.chunks(1000) {
                append_lines(&app, burst);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let line_bytes = 10;
    assert!(
        wait_until(Duration::from_secs(30), || tail.checkpoint_offset(&app)
            > 50_000 * line_bytes),
        "ferry made no progress"
    );
    let saved = tail.checkpoint_offset(&app);
    signal(child.id(), "KILL");
    let _ = child.wait();
    let child = tail.start();
    writer.join().unwrap();
    let written = fs::metadata(&app).unwrap().len();
    let records = read_topic_within(
        &[],
        brokers,
        &topic,
        expected.len(),
        Duration::from_secs(2),
        Duration::from_secs(120),
    );
    let tally = Tally::of_records(&expected, &records);
    println!(
        "kill -9 mid-file ({buffer:?}): {tally:?}; checkpoint before the kill at line {} of {}",
        saved / line_bytes,
        written / line_bytes
    );
    assert!(saved < written, "the kill came after everything was read");
    assert_eq!((tally.lost, tally.unexpected), (0, 0), "{tally:?}");
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for record in &records {
        *counts.entry(record.payload_str()).or_default() += 1;
    }
    let first_duplicate = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(line, _)| line[2..].parse::<u64>().unwrap())
        .min();
    if let Some(first) = first_duplicate {
        assert!(
            first * line_bytes >= saved,
            "line {first} came twice but was before the checkpoint at byte {saved}"
        );
    }
    stop(child);
}

#[test]
fn kill_9_mid_file_with_a_memory_buffer_loses_nothing() {
    killed_mid_file("");
}

#[test]
fn kill_9_mid_file_with_a_disk_buffer_loses_nothing() {
    killed_mid_file("buffer.type = \"disk\"\nbuffer.max_size = 268435456");
}

#[test]
fn a_million_lines_across_ten_files_arrive_once() {
    let topic = unique("file-million");
    let kafka = kafka_with(&topic);
    let brokers = kafka.bootstrap_servers();
    let tail = Tail::new(brokers, &topic, &["*.log"], "", "");
    let mut expected = Vec::with_capacity(1_000_000);
    for file in 0..10 {
        let batch = numbered_lines(&format!("m{file}"), 0..100_000);
        append_lines(&tail.path(&format!("{file}.log")), &batch);
        expected.extend(batch);
    }
    let child = tail.start();
    let records = read_topic_within(
        &[],
        brokers,
        &topic,
        expected.len(),
        Duration::from_secs(2),
        Duration::from_secs(240),
    );
    assert_eq!(
        Tally::of_records(&expected, &records),
        Tally::exactly_once(expected.len())
    );
    stop(child);
}

/// A thousand small files with room for only a hundred open at once: idle files are closed
/// to make room and opened again when they grow.
#[test]
fn a_thousand_small_files_share_a_hundred_open_slots() {
    let topic = unique("file-many");
    let kafka = kafka_with(&topic);
    let brokers = kafka.bootstrap_servers();
    let tail = Tail::new(brokers, &topic, &["*.log"], "max_open_files = 100", "");
    let mut expected = Vec::new();
    for file in 0..1000 {
        let batch = numbered_lines(&format!("s{file:04}"), 0..5);
        append_lines(&tail.path(&format!("{file:04}.log")), &batch);
        expected.extend(batch);
    }
    let child = tail.start();
    assert_eq!(
        Tally::of_records(&expected, &read_all(brokers, &topic, expected.len())),
        Tally::exactly_once(expected.len())
    );
    for file in (0..1000).step_by(97) {
        let batch = numbered_lines(&format!("s{file:04}"), 5..8);
        append_lines(&tail.path(&format!("{file:04}.log")), &batch);
        expected.extend(batch);
    }
    let records = read_all(brokers, &topic, expected.len());
    assert_eq!(
        Tally::of_records(&expected, &records),
        Tally::exactly_once(expected.len())
    );
    stop(child);
}

/// A file closed to make room (every line read and confirmed) grows and is rotated away
/// before discovery sees it grow: its new lines are still found, beside its old name.
#[test]
fn a_file_closed_for_room_then_grown_and_rotated_away_loses_nothing() {
    let topic = unique("file-closed-rotated");
    let kafka = kafka_with(&topic);
    let brokers = kafka.bootstrap_servers();
    let tail = Tail::new(
        brokers,
        &topic,
        &["*.log"],
        "max_open_files = 2\ndiscovery_interval_ms = 300",
        "",
    );
    let mut expected = numbered_lines("a", 0..10);
    append_lines(&tail.path("a.log"), &expected);
    let child = tail.start();
    assert_eq!(read_all(brokers, &topic, 10).len(), 10);
    // Two more files: a.log, the least recently read, is closed to open the third.
    for name in ["b", "c"] {
        let batch = numbered_lines(name, 0..10);
        append_lines(&tail.path(&format!("{name}.log")), &batch);
        expected.extend(batch);
        std::thread::sleep(Duration::from_millis(700));
    }
    assert_eq!(read_all(brokers, &topic, 30).len(), 30);
    let late = numbered_lines("a", 10..20);
    append_lines(&tail.path("a.log"), &late);
    fs::rename(tail.path("a.log"), tail.path("a.old")).unwrap();
    expected.extend(late);
    let records = read_all(brokers, &topic, expected.len());
    assert_eq!(
        Tally::of_records(&expected, &records),
        Tally::exactly_once(expected.len())
    );
    stop(child);
}

/// A quiet file is rotated away and its writer appends once more before it reopens: the
/// wait before letting go counts from the rotation, not from the file's last line.
#[test]
fn a_quiet_file_rotated_away_still_gets_its_late_lines() {
    let topic = unique("file-quiet-rotated");
    let kafka = kafka_with(&topic);
    let brokers = kafka.bootstrap_servers();
    let tail = Tail::new(brokers, &topic, &["app.log"], "rotate_wait_ms = 2000", "");
    let app = tail.path("app.log");
    let mut expected = numbered_lines("q", 0..5);
    append_lines(&app, &expected);
    let child = tail.start();
    assert_eq!(read_all(brokers, &topic, 5).len(), 5);
    // Quiet for longer than rotate_wait before the rotation.
    std::thread::sleep(Duration::from_millis(2500));
    fs::rename(&app, tail.path("app.log.1")).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let late = numbered_lines("q", 5..8);
    append_lines(&tail.path("app.log.1"), &late);
    expected.extend(late);
    let records = read_all(brokers, &topic, expected.len());
    assert_eq!(
        Tally::of_records(&expected, &records),
        Tally::exactly_once(expected.len())
    );
    stop(child);
}
