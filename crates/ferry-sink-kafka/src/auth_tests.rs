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

mod through_the_handshake {
    //! The token's way to the broker, against [`SaslHandshakeStub`] (a loopback listener that
    //! answers only the SASL handshake; not a broker). Each runs in a child process: it
    //! captures every log line (librdkafka's SASL debug included) with a process-wide
    //! subscriber, and the MSK IAM case needs its own AWS environment.

    use std::io::Write as _;
    use std::process::Command;

    use super::*;
    use crate::sasl_handshake_stub::SaslHandshakeStub;

    const CHILD_FLAG: &str = "FERRY_TEST_HANDSHAKE_CHILD";

    /// Every log line of the process, from here on.
    fn capture_logs() -> Arc<std::sync::Mutex<Vec<u8>>> {
        #[derive(Clone)]
        struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Capture {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = Capture(buffer.clone());
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .init();
        buffer
    }

    /// librdkafka's SASL and protocol debug on, and quick reconnects after the stub hangs up.
    const OPTIONS: &str = "librdkafka_options = { debug = \"security,broker,protocol\", \
                           \"reconnect.backoff.ms\" = \"100\", \"reconnect.backoff.max.ms\" = \"300\" }";

    fn wait_for_token(stub: &SaslHandshakeStub, matches: impl Fn(&str) -> bool, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(token) = stub.tokens().into_iter().find(|t| matches(t)) {
                return token;
            }
            assert!(
                Instant::now() < deadline,
                "token not seen; seen: {}",
                stub.tokens().len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn now_s() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn run_child(test: &str, vars: &[(&str, &str)]) {
        let home = tempfile::tempdir().expect("temp dir");
        let output = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", test, "--ignored", "--nocapture"])
            .env_clear()
            .env(CHILD_FLAG, "1")
            .env("HOME", home.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                format!("http://127.0.0.1:{}", closed_port()),
            )
            .envs(vars.iter().copied())
            .output()
            .expect("child runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("test result: ok. 1 passed"),
            "child {test} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn a_token_file_reaches_the_broker_is_replaced_before_expiry_and_is_never_logged() {
        run_child("auth_tests::through_the_handshake::token_file_child", &[]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "run by the test above in a child process"]
    async fn token_file_child() {
        if std::env::var_os(CHILD_FLAG).is_none() {
            return;
        }
        let logs = capture_logs();
        let stub = SaslHandshakeStub::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("token");
        // Expires in 5 s: librdkafka asks for the next token at 80% of that.
        let first = crate::token_file::tests::jwt(&format!(r#"{{"sub":"ferry","exp":{}}}"#, now_s() + 5));
        std::fs::write(&path, &first).expect("write token");
        let built = build(
            &stub.address,
            &format!(
                "sasl.enabled = true\nsasl.mechanism = \"OAUTHBEARER\"\nsasl.token_file = \"{}\"\n{OPTIONS}",
                path.display()
            ),
        );
        wait_for_token(&stub, |t| t == first, Duration::from_secs(10));
        // The writer replaces the file (write and rename, as the kubelet does).
        let second = crate::token_file::tests::jwt(&format!(r#"{{"sub":"ferry","exp":{}}}"#, now_s() + 600));
        let tmp = dir.path().join("token.tmp");
        std::fs::write(&tmp, &second).expect("write token");
        std::fs::rename(&tmp, &path).expect("replace token");
        // Before the first one expires, the broker sees the second.
        let seen_first_until = Instant::now();
        wait_for_token(&stub, |t| t == second, Duration::from_secs(10));
        assert!(seen_first_until.elapsed() < Duration::from_secs(6));
        drop(built.sink);
        let logs = String::from_utf8_lossy(&logs.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
        assert!(
            logs.contains("OAUTHBEARER"),
            "librdkafka's SASL debug was captured"
        );
        assert!(
            !logs.contains(&first) && !logs.contains(&second),
            "a token was logged"
        );
        let _ = std::io::stdout().flush();
    }

    #[cfg(feature = "aws-msk-iam")]
    #[test]
    fn an_msk_iam_token_reaches_the_broker_and_no_secret_is_logged() {
        run_child(
            "auth_tests::through_the_handshake::msk_iam_child",
            &[
                ("AWS_ACCESS_KEY_ID", "AKIDWIRETEST"),
                ("AWS_SECRET_ACCESS_KEY", "wire/secret+access+key"),
                ("AWS_SESSION_TOKEN", "wire-session-token"),
            ],
        );
    }

    #[cfg(feature = "aws-msk-iam")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "run by the test above in a child process"]
    async fn msk_iam_child() {
        if std::env::var_os(CHILD_FLAG).is_none() {
            return;
        }
        let logs = capture_logs();
        let stub = SaslHandshakeStub::start();
        let built = build(
            &stub.address,
            &format!(
                "sasl.enabled = true\nsasl.mechanism = \"AWS_MSK_IAM\"\nsasl.region = \"eu-west-1\"\n{OPTIONS}"
            ),
        );
        let token = wait_for_token(&stub, |_| true, Duration::from_secs(10));
        use base64::Engine as _;
        let url = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&token)
                .expect("base64url"),
        )
        .expect("UTF-8");
        assert!(
            url.starts_with("https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect&"),
            "{url}"
        );
        assert!(url.contains("X-Amz-Credential=AKIDWIRETEST%2F"), "{url}");
        assert!(url.contains("X-Amz-Security-Token=wire-session-token&"), "{url}");
        assert!(!url.contains("secret"), "{url}");
        drop(built.sink);
        let logs = String::from_utf8_lossy(&logs.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
        assert!(
            logs.contains("OAUTHBEARER"),
            "librdkafka's SASL debug was captured"
        );
        for secret in [token.as_str(), "wire/secret+access+key", "wire-session-token"] {
            let lines: Vec<&str> = logs.lines().filter(|l| l.contains(secret)).collect();
            assert!(lines.is_empty(), "logged: {secret}: {lines:#?}");
        }
    }
}
