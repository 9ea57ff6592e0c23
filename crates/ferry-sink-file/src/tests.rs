use std::io::Read;

use ferry_core::{BatchNotifier, DeliveryStatus, EventStream, LogEvent, SinkConfig, SinkContext, Value};

use crate::{Compression, FileSinkConfig};

fn config(path: &str, compression: Compression) -> FileSinkConfig {
    FileSinkConfig {
        inputs: vec!["in".into()],
        path: path.parse().expect("template"),
        encoding: Default::default(),
        compression,
        idle_timeout_secs: 30,
        max_open_files: 2,
        buffer: Default::default(),
        healthcheck: true,
    }
}

fn event(message: &str, app: Option<&str>) -> LogEvent {
    let mut event = LogEvent::from_message(message.to_owned());
    if let Some(app) = app {
        event.fields_mut().insert("app", Value::from(app));
    }
    event
}

/// Runs the sink over one batch and returns the batch's verdict.
async fn run(config: &FileSinkConfig, dir: &std::path::Path, events: Vec<LogEvent>) -> DeliveryStatus {
    let (sink, healthcheck) = config
        .build(SinkContext::standalone("out", dir.to_owned()))
        .expect("builds");
    healthcheck.await.expect("healthy");
    let (notifier, status) = BatchNotifier::new_with_receiver();
    let batch: Vec<LogEvent> = events
        .into_iter()
        .map(|mut e| {
            e.attach_notifier(&notifier);
            e
        })
        .collect();
    drop(notifier);
    let input: EventStream = Box::pin(futures::stream::iter(vec![batch]));
    sink.run(input).await.expect("runs");
    status.await
}

#[tokio::test]
async fn events_go_to_the_file_their_fields_name_more_files_than_may_stay_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let template = format!("{}/{{{{ app }}}}/out.log", dir.path().display());
    let events = ["a", "b", "c", "a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, app)| event(&format!("{app}{i}"), Some(app)))
        .collect();
    let status = run(&config(&template, Compression::None), dir.path(), events).await;
    assert_eq!(status, DeliveryStatus::Delivered);
    for (app, lines) in [("a", "a0\na3\n"), ("b", "b1\nb4\n"), ("c", "c2\nc5\n")] {
        let written = std::fs::read_to_string(dir.path().join(app).join("out.log")).expect("written");
        assert_eq!(written, lines);
    }
}

#[tokio::test]
async fn an_event_without_the_field_or_climbing_out_is_rejected_and_the_rest_delivered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let template = format!("{}/{{{{ app }}}}.log", dir.path().display());
    let status = run(
        &config(&template, Compression::None),
        dir.path(),
        vec![
            event("kept", Some("a")),
            event("no app", None),
            event("sneaky", Some("../../x")),
        ],
    )
    .await;
    assert_eq!(status, DeliveryStatus::Rejected);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.log")).expect("written"),
        "kept\n"
    );
}

#[tokio::test]
async fn gzip_files_decompress_to_the_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let template = format!("{}/out.log.gz", dir.path().display());
    let cfg = config(&template, Compression::Gzip);
    run(&cfg, dir.path(), vec![event("one", None), event("two", None)]).await;
    // A second run appends a second gzip member.
    run(&cfg, dir.path(), vec![event("three", None)]).await;
    let bytes = std::fs::read(dir.path().join("out.log.gz")).expect("written");
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .expect("valid gzip");
    assert_eq!(text, "one\ntwo\nthree\n");
}

#[tokio::test]
async fn an_unwritable_directory_fails_the_health_check_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A file where a directory should be: refused even to root.
    std::fs::write(dir.path().join("blocker"), "").expect("file");
    let template = format!("{}/blocker/logs/{{{{ app }}}}.log", dir.path().display());
    let (_sink, healthcheck) = config(&template, Compression::None)
        .build(SinkContext::standalone("out", dir.path().to_owned()))
        .expect("builds");
    let error = healthcheck.await.expect_err("not a directory").to_string();
    assert!(
        error.contains("blocker/logs") && error.contains("cannot write files in"),
        "{error}"
    );
}
