//! What `packaging/` ships, against the real binary: the service configuration (the one the
//! systemd unit and the container image run) and the DaemonSet's are valid; the service one
//! tails files, serves `/health` on the address its variables name and stops on SIGTERM the
//! way docs/deployment.md says; the DaemonSet's reads every pod's log but ferry's own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferry_e2e::{capture_stderr, ferry_bin, http_get, metric, root, signal, wait_until, wait_with_limit};

fn service_config() -> PathBuf {
    root().join("packaging/ferry.toml")
}

fn kubernetes_config() -> PathBuf {
    root().join("packaging/kubernetes/ferry.toml")
}

/// `ferry ARGS` with none of the variables the configurations read set by the caller's
/// environment, so that each test sees the files' defaults unless it sets them.
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

fn validate(config: &Path) {
    let data = tempfile::tempdir().unwrap();
    let output = ferry(&["validate", "--no-healthchecks", "--config"])
        .arg(config)
        .env("FERRY_DATA_DIR", data.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("configuration is valid: 1 source, 1 sink"),
        "{}: {stdout}{}",
        config.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `shipped` with every `"PREFIX` replaced by `"DIR/`, written next to `dir` as `ferry.toml`.
fn pointed_at(shipped: &Path, prefix: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(shipped).unwrap();
    let quoted = format!("\"{prefix}");
    assert!(text.contains(&quoted), "{} has no {quoted}", shipped.display());
    let config = dir.parent().unwrap().join("ferry.toml");
    std::fs::write(&config, text.replace(&quoted, &format!("\"{}/", dir.display()))).unwrap();
    config
}

/// `ferry --config CONFIG` with the data directory and endpoint given, a broker address where
/// nothing listens (port 1: every line stays unconfirmed), short health-check and shutdown
/// deadlines, and standard error piped.
fn spawn_without_broker(config: &Path, data: &Path, address: &str) -> Child {
    ferry(&[
        "--healthcheck-timeout",
        "1",
        "--shutdown-timeout",
        "2",
        "--config",
    ])
    .arg(config)
    .env("FERRY_DATA_DIR", data)
    .env("FERRY_API_ADDRESS", address)
    .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

/// Events sink `kafka` received, from `/metrics` (0 while nothing answers).
fn received(address: &str) -> u64 {
    http_get(address, "/metrics")
        .and_then(|(_, scrape)| metric(&scrape, "ferry_received_events_total{sink=\"kafka\"}"))
        .unwrap_or(0)
}

fn free_address() -> String {
    format!("127.0.0.1:{}", ferry_tansu::free_port().unwrap())
}

#[test]
fn the_service_configuration_is_valid() {
    validate(&service_config());
}

#[test]
fn the_kubernetes_configuration_is_valid() {
    validate(&kubernetes_config());
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

/// What a supervisor sees with the broker away: the service configuration (its globs pointed
/// at a temporary directory) tails the file, `/health` answers on FERRY_API_ADDRESS, SIGTERM
/// ends the run with status 0 within the shutdown deadline, the lines Kafka never confirmed
/// are still in the disk buffer under FERRY_DATA_DIR for the next start, and the file's
/// checkpoint was saved there.
#[test]
fn the_service_configuration_stops_on_sigterm_keeping_unconfirmed_lines_on_disk() {
    const LINES: u64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&logs).unwrap();
    let text: String = (0..LINES).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    std::fs::write(logs.join("app.log"), text).unwrap();
    let config = pointed_at(&service_config(), "/var/log/app/", &logs);

    let address = free_address();
    let mut child = spawn_without_broker(&config, &data, &address);
    let log = capture_stderr(&mut child);
    let log_text = || log.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(20), || received(&address) == LINES),
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
        .arg(&data)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&inspect.stdout);
    let buffered: Option<u64> = report
        .strip_prefix("sink `kafka`: ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    assert!(inspect.status.success() && buffered == Some(LINES), "{report}");
    assert!(
        data.join("checkpoints/logs/checkpoints").is_file(),
        "no checkpoint file under {}",
        data.display()
    );
}

/// The DaemonSet's configuration on a copy of the kubelet's layout: every container's log is
/// read except those of ferry's own pods.
#[test]
fn the_kubernetes_configuration_tails_pod_logs_but_not_ferrys_own() {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    let data = dir.path().join("data");
    let logs = [
        ("shop_web-7d9f_0f1e/nginx/0.log", 3),
        ("shop_web-7d9f_0f1e/nginx/1.log", 2),
        ("kube-system_coredns-5c6b_a1b2/coredns/0.log", 4),
        ("logging_ferry-x7k2p_c3d4/ferry/0.log", 5),
    ];
    for (path, lines) in logs {
        let file = pods.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let text: String = (0..lines)
            .map(|i| format!("2026-12-03T10:00:00.{i:09}Z stdout F line {i}\n"))
            .collect();
        std::fs::write(file, text).unwrap();
    }
    let config = pointed_at(&kubernetes_config(), "/var/log/pods/", &pods);

    let address = free_address();
    let mut child = spawn_without_broker(&config, &data, &address);
    let log = capture_stderr(&mut child);
    let log_text = || log.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(20), || received(&address) >= 9),
        "{}",
        log_text()
    );
    // Two more discovery passes (1 s apart): ferry's own 5 lines would have been read by now.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(received(&address), 9, "{}", log_text());

    signal(child.id(), "TERM");
    let output = wait_with_limit(child, Duration::from_secs(20));
    assert!(output.status.success(), "{:?}\n{}", output.status, log_text());
}
