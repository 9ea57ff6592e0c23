//! Cloud logins as a user meets them through the binary, where no broker is needed: missing
//! AWS credentials and an unusable token file fail `--require-healthy` with one readable
//! line and no secret; a running ferry with a bad token does not flood its log. (Delivery
//! through OAUTHBEARER is not tested: no broker here accepts it; see the sink crate's
//! `auth_tests` for the token's way to a loopback SASL handshake.)

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use ferry_e2e::{ConfigDir, run_with_input, stderr};

/// `host:port` where nothing listens.
fn closed_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// `ferry` with no AWS settings from this machine: every `AWS_*` variable removed, `HOME`
/// without `.aws`, and instance metadata on a closed loopback port.
fn without_aws(mut cmd: Command, home: &std::path::Path) -> Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home).env(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        format!("http://{}", closed_address()),
    );
    cmd
}

fn failure_line(err: &str) -> String {
    err.lines()
        .find(|l| l.starts_with("ferry: "))
        .unwrap_or_else(|| panic!("no ferry: line in\n{err}"))
        .to_owned()
}

#[test]
fn msk_iam_without_credentials_fails_require_healthy_with_the_sources_tried() {
    let home = tempfile::tempdir().unwrap();
    let cfg = ConfigDir::stdin_to_kafka(
        &closed_address(),
        "logs",
        "tls.enabled = true\nsasl.enabled = true\nsasl.mechanism = \"AWS_MSK_IAM\"\nsasl.region = \"eu-west-1\"",
    );
    let cmd = without_aws(cfg.ferry(&["--require-healthy"]), home.path());
    let output = run_with_input(cmd, b"x\n", Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    let line = failure_line(&err);
    assert!(line.contains("health check failed"), "{line}");
    assert!(
        line.contains(
            "AWS_MSK_IAM: no AWS credentials found; tried, in order: environment variables, AWS config file \
             (credential_process), AWS credentials file, web identity token, container credentials, \
             instance metadata"
        ),
        "{line}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_expired_token_file_fails_require_healthy_with_one_line_and_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token");
    // A JWT whose `exp` is in 2001.
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmZXJyeSIsImV4cCI6MTAwMDAwMDAwMH0.c2lnbmF0dXJl";
    std::fs::write(&token_path, token).unwrap();
    let cfg = ConfigDir::stdin_to_kafka(
        &closed_address(),
        "logs",
        &format!(
            "sasl.enabled = true\nsasl.mechanism = \"OAUTHBEARER\"\nsasl.token_file = \"{}\"",
            token_path.display()
        ),
    );
    let output = run_with_input(cfg.ferry(&["--require-healthy"]), b"x\n", Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    let line = failure_line(&err);
    assert!(
        line.contains("health check failed") && line.contains("sasl.token_file: the token in"),
        "{line}"
    );
    assert!(line.contains("expired"), "{line}");
    assert!(!err.contains(token), "the token is never shown: {err}");
}

#[test]
fn a_missing_key_is_named_before_anything_starts() {
    let cfg = ConfigDir::stdin_to_kafka(
        &closed_address(),
        "logs",
        "sasl.enabled = true\nsasl.mechanism = \"OAUTHBEARER\"\nsasl.token_endpoint_url = \"https://login.example.com/token\"\nsasl.client_secret = \"hunter2-oidc\"",
    );
    let output = run_with_input(cfg.ferry(&[]), b"x\n", Duration::from_secs(30));
    assert_ne!(output.status.code(), Some(0));
    let err = stderr(&output);
    assert!(
        err.contains("sasl.client_id") && err.contains("is required with sasl.token_endpoint_url"),
        "{err}"
    );
    assert!(!err.contains("hunter2-oidc"), "the secret is never shown: {err}");
}

#[test]
fn a_bad_token_or_token_endpoint_while_running_is_warned_once_not_at_every_retry() {
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token");
    std::fs::write(&token_path, "not-a-jwt").unwrap();
    let cases = [
        (
            format!("sasl.token_file = \"{}\"", token_path.display()),
            "does not hold a JWT",
        ),
        (
            format!(
                "sasl.token_endpoint_url = \"http://{}/oauth2/token\"\nsasl.client_id = \"ferry\"\n\
                 sasl.client_secret = \"hunter2-oidc\"",
                closed_address()
            ),
            "Couldn't connect to server",
        ),
    ];
    // Both at once: librdkafka asks again every 10 s, so 25 s covers two retries of each.
    let running: Vec<_> = cases
        .iter()
        .map(|(sasl, _)| {
            let cfg = ConfigDir::stdin_to_kafka(
                &closed_address(),
                "logs",
                &format!(
                    "healthcheck = false\nsasl.enabled = true\nsasl.mechanism = \"OAUTHBEARER\"\n{sasl}"
                ),
            );
            let mut child = cfg.spawn(&[]);
            let log = ferry_e2e::capture_stderr(&mut child);
            (cfg, child, log)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(25));
    for ((_cfg, child, log), (_, cause)) in running.into_iter().zip(&cases) {
        ferry_e2e::signal(child.id(), "TERM");
        let _ = ferry_e2e::wait_with_limit(child, Duration::from_secs(40));
        let log = log.lock().unwrap().clone();
        let warnings = log
            .lines()
            .filter(|l| l.contains("Failed to acquire SASL OAUTHBEARER token"))
            .collect::<Vec<_>>();
        assert_eq!(warnings.len(), 1, "{log}");
        assert!(warnings[0].contains(cause), "{}", warnings[0]);
        assert!(!log.contains("hunter2-oidc"), "the secret is never shown: {log}");
    }
}
