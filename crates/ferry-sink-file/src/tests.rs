use ferry_core::{BatchNotifier, DeliveryStatus, EventStream, LogEvent, SinkConfig, SinkContext};

use crate::FileSinkConfig;

fn config(path: &std::path::Path) -> FileSinkConfig {
    FileSinkConfig {
        inputs: vec!["in".into()],
        path: path.to_owned(),
        encoding: Default::default(),
        buffer: Default::default(),
        healthcheck: true,
    }
}

#[tokio::test]
async fn events_are_acknowledged_only_once_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("out.log");
    let cx = SinkContext::standalone("out", dir.path().to_owned());
    let metrics = cx.metrics.clone();
    let (sink, healthcheck) = config(&path).build(cx).expect("builds");
    healthcheck.await.expect("the file can be opened");
    let (notifier, status) = BatchNotifier::new_with_receiver();
    let batch: Vec<LogEvent> = ["one", "two", "three"]
        .into_iter()
        .map(|m| {
            let mut event = LogEvent::from_message(m);
            event.attach_notifier(&notifier);
            event
        })
        .collect();
    drop(notifier);
    let input: EventStream = Box::pin(futures::stream::iter(vec![batch]));
    sink.run(input).await.expect("runs");
    assert_eq!(status.await, DeliveryStatus::Delivered);
    assert_eq!(
        std::fs::read_to_string(&path).expect("written"),
        "one\ntwo\nthree\n"
    );
    assert_eq!(metrics.snapshot().delivered, 3);
}

#[tokio::test]
async fn an_unwritable_path_fails_the_health_check_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("missing-dir").join("out.log");
    let (_sink, healthcheck) = config(&path)
        .build(SinkContext::standalone("out", dir.path().to_owned()))
        .expect("builds");
    let error = healthcheck.await.expect_err("no such directory").to_string();
    assert!(error.contains("missing-dir"), "{error}");
}
