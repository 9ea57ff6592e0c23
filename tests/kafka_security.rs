//! The Kafka sink with SASL/SCRAM (tansu with `--authentication`) and TLS (stunnel in front
//! of tansu): deliveries work, and a wrong password or an untrusted certificate is one
//! readable line.

use std::collections::HashSet;
use std::time::Duration;

use ferry_e2e::tls::{Certificates, Stunnel};
use ferry_e2e::{Broker, ConfigDir, Storage, read_topic_with, run_with_input, stderr, summary_counter};

const LINES: usize = 500;

fn input() -> (Vec<String>, Vec<u8>) {
    let lines: Vec<String> = (0..LINES).map(|i| format!("secure line {i}")).collect();
    let bytes = (lines.join("\n") + "\n").into_bytes();
    (lines, bytes)
}

/// Runs `cmd` (ferry with `--require-healthy`) over `bytes` and checks that it exited 0 with
/// every line delivered; returns its log.
fn deliver_all(cmd: std::process::Command, bytes: &[u8], what: &str) -> String {
    let output = run_with_input(cmd, bytes, Duration::from_secs(60));
    let err = stderr(&output);
    assert!(output.status.success(), "{what}: {err}");
    assert_eq!(
        summary_counter(&err, "kafka", "delivered"),
        Some(LINES as u64),
        "{what}: {err}"
    );
    err
}

fn assert_all_arrived(extra: &[(&str, &str)], brokers: &str, topic: &str, lines: &[String]) {
    let records = read_topic_with(extra, brokers, topic, lines.len(), Duration::from_millis(1500));
    let got: HashSet<&str> = records.iter().map(|r| r.payload_str()).collect();
    assert_eq!(records.len(), lines.len(), "records in {topic}");
    assert!(
        lines.iter().all(|l| got.contains(l.as_str())),
        "content of {topic}"
    );
}

/// A tansu broker requiring SASL/SCRAM, with users `u256` (SCRAM-SHA-256) and `u512`
/// (SCRAM-SHA-512) and the topics already created (users and topics must be made while
/// authentication is off).
fn scram_broker(topics: &[&str]) -> (Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let binary = ferry_tansu::binary().unwrap();
    let mut broker = Broker::start(&binary, Storage::Sqlite(dir.path().to_owned())).unwrap();
    for topic in topics {
        broker.create_topic(topic, 3).unwrap();
    }
    broker.create_user("u256", "secret-256", "scram256").unwrap();
    broker.create_user("u512", "secret-512", "scram512").unwrap();
    broker.restart_with_authentication(true).unwrap();
    (broker, dir)
}

#[test]
fn scram_sha_256_and_sha_512_deliver() {
    let (broker, _dir) = scram_broker(&["scram-256", "scram-512"]);
    let brokers = broker.bootstrap_servers();
    let (lines, bytes) = input();
    for (mechanism, user, password, topic) in [
        ("SCRAM-SHA-256", "u256", "secret-256", "scram-256"),
        ("SCRAM-SHA-512", "u512", "secret-512", "scram-512"),
    ] {
        let extra = format!(
            "sasl.enabled = true\nsasl.mechanism = \"{mechanism}\"\nsasl.username = \"{user}\"\nsasl.password = \"${{KAFKA_PASSWORD}}\""
        );
        let cfg = ConfigDir::stdin_to_kafka(&brokers, topic, &extra);
        let mut cmd = cfg.ferry(&["--require-healthy"]);
        cmd.env("KAFKA_PASSWORD", password);
        let err = deliver_all(cmd, &bytes, mechanism);
        assert!(!err.contains(password), "the password is never logged");
        let client = [
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", mechanism),
            ("sasl.username", user),
            ("sasl.password", password),
        ];
        assert_all_arrived(&client, &brokers, topic, &lines);
    }
}

#[test]
fn wrong_password_is_one_readable_line_and_require_healthy_exits_1() {
    let (broker, _dir) = scram_broker(&["scram-denied"]);
    let cfg = ConfigDir::stdin_to_kafka(
        &broker.bootstrap_servers(),
        "scram-denied",
        "sasl.enabled = true\nsasl.mechanism = \"SCRAM-SHA-256\"\nsasl.username = \"u256\"\nsasl.password = \"not-the-password\"",
    );
    let output = run_with_input(cfg.ferry(&["--require-healthy"]), b"x\n", Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    let line = err
        .lines()
        .find(|l| l.starts_with("ferry: "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.contains("health check failed") && line.to_lowercase().contains("authentication"),
        "{line}"
    );
    assert!(
        !err.contains("not-the-password"),
        "the password is never shown: {err}"
    );
    assert!(!err.contains("panicked"));
}

/// Consumer settings for reading back through stunnel with the test client certificate.
fn mtls_client(certs: &Certificates) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", "ssl".to_owned()),
        ("ssl.ca.location", certs.path("ca.crt").display().to_string()),
        (
            "ssl.certificate.location",
            certs.path("client.crt").display().to_string(),
        ),
        ("ssl.key.location", certs.path("client.key").display().to_string()),
        ("ssl.key.password", Certificates::KEY_PASS.to_owned()),
    ]
}

/// tansu behind stunnel: clients connect with TLS to the returned port.
fn tls_broker(certs: &Certificates, topic: &str, require_client_cert: bool) -> (Broker, Stunnel, String) {
    let binary = ferry_tansu::binary().unwrap();
    let plain = ferry_tansu::free_port().unwrap();
    let tls = ferry_tansu::free_port().unwrap();
    let broker = Broker::start_advertised(&binary, Storage::Memory, plain, tls, false).unwrap();
    broker.create_topic(topic, 3).unwrap();
    let stunnel = Stunnel::start(certs, tls, plain, require_client_cert);
    (broker, stunnel, format!("127.0.0.1:{tls}"))
}

#[test]
fn tls_verifies_the_server_with_ca_file_as_path_inline_pem_and_der() {
    let certs = Certificates::generate();
    let (_broker, _stunnel, brokers) = tls_broker(&certs, "tls", false);
    let (lines, bytes) = input();
    let ca_path = certs.path("ca.crt");
    let by_path = format!("tls.enabled = true\ntls.ca_file = \"{}\"", ca_path.display());
    let der = format!(
        "tls.enabled = true\ntls.ca_file = \"{}\"",
        certs.ca_der().display()
    );
    let inline = format!(
        "tls.enabled = true\ntls.ca_file = '''\n{}'''",
        certs.pem("ca.crt")
    );
    for (how, extra) in [("path", by_path), ("inline PEM", inline), ("DER file", der)] {
        let cfg = ConfigDir::stdin_to_kafka(&brokers, "tls", &extra);
        let cmd = cfg.ferry(&["--require-healthy"]);
        deliver_all(cmd, &bytes, &format!("ca_file as {how}"));
    }
    let client = [
        ("security.protocol", "ssl"),
        ("ssl.ca.location", ca_path.to_str().unwrap()),
    ];
    let records = read_topic_with(&client, &brokers, "tls", 3 * LINES, Duration::from_millis(1500));
    assert_eq!(records.len(), 3 * LINES);
    let got: HashSet<&str> = records.iter().map(|r| r.payload_str()).collect();
    assert!(lines.iter().all(|l| got.contains(l.as_str())));
}

#[test]
fn tls_client_certificate_with_an_encrypted_key() {
    let certs = Certificates::generate();
    let (_broker, _stunnel, brokers) = tls_broker(&certs, "mtls", true);
    let (lines, bytes) = input();
    let extra = format!(
        "tls.enabled = true\ntls.ca_file = \"{}\"\ntls.crt_file = \"{}\"\ntls.key_file = \"{}\"\ntls.key_pass = \"{}\"",
        certs.path("ca.crt").display(),
        certs.path("client.crt").display(),
        certs.path("client.key").display(),
        Certificates::KEY_PASS
    );
    let cfg = ConfigDir::stdin_to_kafka(&brokers, "mtls", &extra);
    let cmd = cfg.ferry(&["--require-healthy"]);
    let err = deliver_all(cmd, &bytes, "client certificate");
    assert!(
        !err.contains(Certificates::KEY_PASS),
        "the key pass phrase is never logged"
    );
    let client = mtls_client(&certs);
    let client: Vec<(&str, &str)> = client.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_all_arrived(&client, &brokers, "mtls", &lines);
}

#[test]
fn tls_client_certificate_as_a_pkcs12_archive() {
    let certs = Certificates::generate();
    let p12 = certs.pkcs12();
    let (_broker, _stunnel, brokers) = tls_broker(&certs, "p12", true);
    let (lines, bytes) = input();
    let extra = format!(
        "tls.enabled = true\ntls.ca_file = \"{}\"\ntls.crt_file = \"{}\"\ntls.key_pass = \"{}\"",
        certs.path("ca.crt").display(),
        p12.display(),
        Certificates::KEY_PASS
    );
    let cfg = ConfigDir::stdin_to_kafka(&brokers, "p12", &extra);
    let cmd = cfg.ferry(&["--require-healthy"]);
    deliver_all(cmd, &bytes, "PKCS#12");
    let client = mtls_client(&certs);
    let client: Vec<(&str, &str)> = client.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_all_arrived(&client, &brokers, "p12", &lines);
}

#[test]
fn untrusted_server_certificate_is_one_clear_error() {
    let certs = Certificates::generate();
    let (_broker, _stunnel, brokers) = tls_broker(&certs, "untrusted", false);
    let extra = format!(
        "tls.enabled = true\ntls.ca_file = \"{}\"",
        certs.path("other-ca.crt").display()
    );
    let output = run_with_input(
        ConfigDir::stdin_to_kafka(&brokers, "untrusted", &extra).ferry(&["--require-healthy"]),
        b"x\n",
        Duration::from_secs(60),
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    let line = err
        .lines()
        .find(|l| l.starts_with("ferry: "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.contains("health check failed") && line.contains("certificate verify failed"),
        "{line}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn a_missing_certificate_file_is_a_startup_error_naming_the_key() {
    let cfg = ConfigDir::stdin_to_kafka(
        "127.0.0.1:1",
        "t",
        "tls.enabled = true\ntls.ca_file = \"/nonexistent/ca.pem\"",
    );
    let output = run_with_input(cfg.ferry(&[]), b"x\n", Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("tls.ca_file") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
}

/// Runs `config` for 30 s with a few events waiting and returns the WARN and ERROR lines
/// logged before shutdown began, and the whole log.
fn problem_lines_over_30_seconds(config: &ConfigDir) -> (Vec<String>, String) {
    let mut child = config.spawn(&["--summary-interval", "0", "--shutdown-timeout", "1"]);
    let log = ferry_e2e::capture_stderr(&mut child);
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, b"one\ntwo\nthree\n").expect("feed ferry");
    std::thread::sleep(Duration::from_secs(30));
    ferry_e2e::signal(child.id(), "TERM");
    drop(stdin);
    let _ = ferry_e2e::wait_with_limit(child, Duration::from_secs(60));
    let log = log.lock().expect("log").clone();
    assert!(!log.contains("panicked"), "{log}");
    // The signal and the end of standard input race: whichever ferry sees first starts the
    // shutdown, and the other then counts as a second signal. Either way what comes after is
    // shutdown, not the connection's reporting.
    let lines = log
        .lines()
        .take_while(|l| !l.contains("shutting down") && !l.contains("end of input"))
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .map(str::to_owned)
        .collect();
    (lines, log)
}

/// A connection that keeps failing is reported at once in words a user understands, then at
/// most once per warning period (30 s): never a flood, whatever librdkafka retries meanwhile.
fn assert_one_readable_line_then_quiet((lines, log): &(Vec<String>, String), cause: &str) {
    let first = lines
        .first()
        .unwrap_or_else(|| panic!("nothing logged in 30 s:\n{log}"));
    assert!(
        first.contains(cause),
        "first line does not say `{cause}`: {first}\n{log}"
    );
    // The client's own warning, then the start-up health check's verdict naming the same
    // cause: two lines, and no repeat within the period.
    assert!(lines.len() <= 2, "{} lines in 30 s:\n{log}", lines.len());
}

#[test]
fn an_unreachable_broker_is_one_line_then_quiet() {
    let closed = ferry_tansu::free_port().unwrap();
    let config = ConfigDir::stdin_to_kafka(&format!("127.0.0.1:{closed}"), "nowhere", "");
    let lines = problem_lines_over_30_seconds(&config);
    assert_one_readable_line_then_quiet(&lines, "Connection refused");
}

#[test]
fn a_failed_login_is_one_line_then_quiet() {
    let (broker, _dir) = scram_broker(&["denied-quiet"]);
    let config = ConfigDir::stdin_to_kafka(
        &broker.bootstrap_servers(),
        "denied-quiet",
        "sasl.enabled = true\nsasl.mechanism = \"SCRAM-SHA-256\"\nsasl.username = \"u256\"\nsasl.password = \"not-the-password\"",
    );
    let lines = problem_lines_over_30_seconds(&config);
    assert!(!lines.1.contains("not-the-password"), "{}", lines.1);
    assert_one_readable_line_then_quiet(&lines, "uthentication");
}

#[test]
fn an_untrusted_certificate_is_one_line_then_quiet() {
    let certs = Certificates::generate();
    let (_broker, _stunnel, brokers) = tls_broker(&certs, "untrusted-quiet", false);
    let extra = format!(
        "tls.enabled = true\ntls.ca_file = \"{}\"",
        certs.path("other-ca.crt").display()
    );
    let config = ConfigDir::stdin_to_kafka(&brokers, "untrusted-quiet", &extra);
    let lines = problem_lines_over_30_seconds(&config);
    assert_one_readable_line_then_quiet(&lines, "certificate verify failed");
}
