//! OAUTHBEARER wiring through librdkafka: the sink's token callback and librdkafka's own OIDC
//! client, as far as they can be checked without a broker that accepts OAUTHBEARER
//! (librdkafka's mock cluster implements no SASL at all; tansu 0.6 only SCRAM and PLAIN).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::{SinkContext, SinkMetrics};
use tokio_util::sync::CancellationToken;

use crate::KafkaSinkConfig;
use crate::context::SinkShared;

/// A port nothing listens on: the brokers are never reached, only the token is.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

pub(crate) struct Built {
    pub(crate) sink: crate::sink::KafkaSink,
    pub(crate) healthcheck: ferry_core::Healthcheck,
    pub(crate) shared: Arc<SinkShared>,
    _data_dir: tempfile::TempDir,
}

pub(crate) fn build(bootstrap: &str, extra: &str) -> Built {
    let text = format!(
        "inputs = [\"in\"]\nbootstrap_servers = \"{bootstrap}\"\ntopic = \"logs\"\nsocket_timeout_ms = 3000\n{extra}\n"
    );
    let config: KafkaSinkConfig = toml::from_str(&text).expect("config parses");
    assert!(config.check().is_empty(), "{:?}", config.check());
    let data_dir = tempfile::tempdir().expect("temp dir");
    let cx = SinkContext {
        id: "kafka".into(),
        metrics: Arc::new(SinkMetrics::default()),
        health: Arc::new(ferry_core::SinkHealth::default()),
        data_dir: data_dir.path().to_owned(),
        deadline: CancellationToken::new(),
        durable_buffer: false,
    };
    let (sink, healthcheck) = config.build_sink(cx).expect("sink builds");
    let shared = sink.shared.clone();
    Built {
        sink,
        healthcheck,
        shared,
        _data_dir: data_dir,
    }
}

/// Waits for librdkafka's error callback to report something containing `needle`.
pub(crate) fn wait_for_error(shared: &SinkShared, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some(error) = shared.last_error()
            && error.contains(needle)
        {
            return error;
        }
        assert!(
            Instant::now() < deadline,
            "no error containing {needle:?}; last: {:?}",
            shared.last_error()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_file_reaches_librdkafka_and_the_health_check_as_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("token");
    let token = crate::token_file::tests::jwt(r#"{"sub":"ferry","exp":1000}"#);
    std::fs::write(&path, &token).expect("write token");
    let built = build(
        &format!("127.0.0.1:{}", closed_port()),
        &format!(
            "sasl.enabled = true\nsasl.mechanism = \"OAUTHBEARER\"\nsasl.token_file = \"{}\"",
            path.display()
        ),
    );
    // librdkafka asked the sink's callback for a token at start and reported the refusal.
    let error = wait_for_error(
        &built.shared,
        "Failed to acquire SASL OAUTHBEARER token",
        Duration::from_secs(5),
    );
    assert!(error.contains("sasl.token_file: the token in"), "{error}");
    assert!(error.contains("expired"), "{error}");
    assert!(!error.contains(&token) && !error.contains('\n'), "{error}");

    let health = built.healthcheck.await.expect_err("no usable token").to_string();
    assert!(
        health.starts_with("cannot authenticate to 127.0.0.1:") && health.contains("expired"),
        "{health}"
    );
    assert!(!health.contains('\n'), "{health}");
    drop(built.sink);
}

#[cfg(feature = "oidc")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_token_endpoint_is_reported_by_librdkafkas_oidc_client() {
    let built = build(
        &format!("127.0.0.1:{}", closed_port()),
        &format!(
            "sasl.enabled = true\nsasl.mechanism = \"OAUTHBEARER\"\n\
             sasl.token_endpoint_url = \"http://127.0.0.1:{}/oauth2/token\"\n\
             sasl.client_id = \"ferry\"\nsasl.client_secret = \"hunter2-oidc\"\nsasl.scope = \"kafka\"",
            closed_port()
        ),
    );
    // Built at all: librdkafka has its OIDC client (libcurl), or it would have refused
    // `sasl.oauthbearer.method=oidc`.
    let error = wait_for_error(
        &built.shared,
        "Failed to acquire SASL OAUTHBEARER token",
        Duration::from_secs(15),
    );
    assert!(!error.contains("hunter2-oidc"), "{error}");
    assert!(!error.contains('\n'), "{error}");
    eprintln!("librdkafka said: {error}");
    drop(built.sink);
}

#[cfg(feature = "aws-msk-iam")]
mod msk_iam {
    //! The health check of an AWS_MSK_IAM sink, in a child process whose environment holds
    //! no AWS credentials (the providers read the real process environment).

    use std::process::Command;

    use super::*;

    const CHILD_FLAG: &str = "FERRY_TEST_MSK_HEALTH_CHILD";

    #[tokio::test]
    #[ignore = "run by the test below in a child process with its own environment"]
    async fn health_child() {
        if std::env::var_os(CHILD_FLAG).is_none() {
            return;
        }
        let built = build(
            &format!("127.0.0.1:{}", closed_port()),
            "sasl.enabled = true\nsasl.mechanism = \"AWS_MSK_IAM\"\nsasl.region = \"eu-west-1\"",
        );
        match built.healthcheck.await {
            Ok(()) => println!("HEALTH ok"),
            Err(e) => println!("HEALTH {e}"),
        }
        drop(built.sink);
    }

    #[test]
    fn no_credentials_fail_the_health_check_with_one_line_naming_the_sources() {
        let home = tempfile::tempdir().expect("temp dir");
        let output = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "auth_tests::msk_iam::health_child",
                "--ignored",
                "--nocapture",
            ])
            .env_clear()
            .env(CHILD_FLAG, "1")
            .env("HOME", home.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // Instance metadata that is not there, answered at once.
            .env(
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                format!("http://127.0.0.1:{}", closed_port()),
            )
            .output()
            .expect("child runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("HEALTH "))
            .unwrap_or_else(|| {
                panic!(
                    "no result:\n{stdout}\n{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        assert!(
            line.starts_with("HEALTH cannot authenticate to 127.0.0.1:"),
            "{line}"
        );
        assert!(
            line.ends_with(
                "AWS_MSK_IAM: no AWS credentials found; tried, in order: environment variables, \
                 AWS config file (credential_process), AWS credentials file, web identity token, \
                 container credentials, instance metadata"
            ),
            "{line}"
        );
    }
}
