//! What `packaging/` ships, against the real binary: the service configuration (the one the
//! systemd unit, the container image and the Kubernetes example run) is valid, serves `/health`
//! on the address its variables name, and stops on SIGTERM the way docs/deployment.md says.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ferry_e2e::{capture_stderr, ferry_bin, http_get, metric, root, signal, wait_until, wait_with_limit};

fn service_config() -> PathBuf {
    root().join("packaging/ferry.toml")
}

/// `ferry ARGS` with none of the variables the service configuration reads set by the caller's
/// environment, so that each test sees the file's defaults unless it sets them.
fn ferry(args: &[&str]) -> Command {
    let mut cmd = Command::new(ferry_bin());
    cmd.args(args);
    for name in [
        "RUST_LOG",
        "FERRY_CONFIG",
        "FERRY_DATA_DIR",
        "FERRY_API_ADDRESS",
        "FERRY_TOPIC",
        "KAFKA_BOOTSTRAP_SERVERS",
    ] {
        cmd.env_remove(name);
    }
    cmd
}

#[test]
fn the_service_configuration_is_valid() {
    let data = tempfile::tempdir().unwrap();
    let output = ferry(&["validate", "--no-healthchecks", "--config"])
        .arg(service_config())
        .env("FERRY_DATA_DIR", data.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("configuration is valid: 1 source, 1 sink"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn version_names_the_librdkafka_built_in() {
    let output = ferry(&["--version"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected = format!("ferry {} (librdkafka 2.", env!("CARGO_PKG_VERSION"));
    assert!(
        output.status.success() && stdout.starts_with(&expected),
        "{stdout}"
    );
}

/// What a supervisor sees with the broker away: `/health` answers on FERRY_API_ADDRESS,
/// SIGTERM ends the run with status 0 within the shutdown deadline, and the events Kafka never
/// confirmed are still in the disk buffer under FERRY_DATA_DIR for the next start.
#[test]
fn the_service_configuration_stops_on_sigterm_keeping_unconfirmed_events_on_disk() {
    let data = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", ferry_tansu::free_port().unwrap());
    let mut child = ferry(&[
        "--healthcheck-timeout",
        "1",
        "--shutdown-timeout",
        "2",
        "--config",
    ])
    .arg(service_config())
    .env("FERRY_DATA_DIR", data.path())
    .env("FERRY_API_ADDRESS", &address)
    // Nothing listens on port 1: every event stays unconfirmed.
    .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let log = capture_stderr(&mut child);
    let log_text = || log.lock().map(|l| l.clone()).unwrap_or_default();

    // The demo source writes one event a second once the start-up health check gave up.
    let received = || {
        http_get(&address, "/metrics")
            .and_then(|(_, scrape)| metric(&scrape, "ferry_received_events_total{sink=\"kafka\"}"))
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(20), || received() >= 2),
        "{}",
        log_text()
    );
    let health = http_get(&address, "/health");
    assert!(
        matches!(&health, Some((200 | 503, _))),
        "{health:?}\n{}",
        log_text()
    );

    signal(child.id(), "TERM");
    let output = wait_with_limit(child, Duration::from_secs(20));
    assert!(output.status.success(), "{:?}\n{}", output.status, log_text());
    assert!(
        log_text().contains("these events stay in the disk buffer"),
        "{}",
        log_text()
    );

    let inspect = ferry(&["buffer", "inspect", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&inspect.stdout);
    let events: u64 = report
        .strip_prefix("sink `kafka`: ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(inspect.status.success() && events >= 2, "{report}");
}
