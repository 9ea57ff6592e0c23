//! Where AWS_MSK_IAM's credentials come from: the order the reference document lists, then
//! what Kubernetes and ECS need, each source one of AWS's own providers (`aws-config`).
//!
//! 1. environment variables `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (`AWS_SESSION_TOKEN`);
//! 2. the AWS config file (`AWS_CONFIG_FILE`, default `~/.aws/config`): its profile's
//!    `credential_process` command (or other credentials the profile holds: keys, a role);
//! 3. the AWS credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`);
//! 4. a web identity token (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`: IRSA on EKS);
//! 5. container credentials (`AWS_CONTAINER_CREDENTIALS_*`: ECS tasks, EKS Pod Identity);
//! 6. the instance profile, through instance metadata (IMDS; `AWS_EC2_METADATA_SERVICE_ENDPOINT`
//!    moves it, `AWS_EC2_METADATA_DISABLED=true` skips it).
//!
//! The profile is `AWS_PROFILE` (default `default`). The first source that has credentials
//! wins; one that has them but fails (a `credential_process` exiting non-zero, an endpoint
//! answering an error) stops the search with its error rather than falling through to a
//! later, perhaps different, identity. With `sasl.role_arn`, the credentials found assume
//! that role through STS.

use aws_config::provider_config::ProviderConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError as AwsCredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The sources, in the order they are tried, as named in errors and docs.
pub(crate) const SOURCES: [&str; 6] = [
    "environment variables",
    "AWS config file (credential_process)",
    "AWS credentials file",
    "web identity token",
    "container credentials",
    "instance metadata",
];

/// The default `sasl.role_session_name`.
const DEFAULT_SESSION_NAME: &str = "ferry";

/// Why there are no credentials. One line; never a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// No source had credentials.
    #[error("no AWS credentials found; tried, in order: {}", SOURCES.join(", "))]
    NotFound,
    /// A source had credentials but could not produce them.
    #[error("AWS credentials from the {source_name}: {cause}")]
    Failed {
        /// The source, as named in the `NotFound` message.
        source_name: &'static str,
        /// What it said.
        cause: String,
    },
    /// The role in `sasl.role_arn` could not be assumed.
    #[error("cannot assume role {role_arn}: {cause}")]
    AssumeRole {
        /// The role.
        role_arn: String,
        /// What STS (or the way to it) said.
        cause: String,
    },
}

/// The credential chain, and the role to assume with what it finds.
#[derive(Debug)]
pub(crate) struct CredentialChain {
    role_arn: Option<String>,
    session_name: String,
    http: SharedHttpClient,
}

impl CredentialChain {
    pub(crate) fn new(role_arn: Option<String>, session_name: Option<String>) -> Self {
        // rustls with ring: the SDK's default client uses aws-lc, a long C build.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        Self {
            role_arn,
            session_name: session_name.unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned()),
            http,
        }
    }

    /// Credentials for signing in `region`, looked up afresh: each source caches nothing,
    /// and a call comes only every ~12 minutes.
    pub(crate) async fn credentials(&self, region: &Region) -> Result<Credentials, CredentialsError> {
        let found = self.find(region).await?;
        let Some(role_arn) = &self.role_arn else {
            return Ok(found);
        };
        // The STS client needs everything aws-config's loader would have set: without a
        // time source AssumeRoleProvider panics, without a sleep its retries cannot wait.
        let mut sdk = SdkConfig::builder()
            .http_client(self.http.clone())
            .time_source(aws_smithy_async::time::SystemTimeSource::new())
            .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
            .behavior_version(BehaviorVersion::latest())
            .region(region.clone());
        // The AWS settings for another STS endpoint (a VPC endpoint; a test's loopback STS).
        // aws-config reads them only when it loads the whole SDK configuration, which this
        // sink does not (it builds its chain source by source).
        if let Some(url) = ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        {
            sdk = sdk.endpoint_url(url);
        }
        let sdk = sdk.build();
        let provider = AssumeRoleProvider::builder(role_arn.clone())
            .session_name(self.session_name.clone())
            .region(region.clone())
            .configure(&sdk)
            .build_from_provider(SharedCredentialsProvider::new(found))
            .await;
        provider
            .provide_credentials()
            .await
            .map_err(|e| CredentialsError::AssumeRole {
                role_arn: role_arn.clone(),
                cause: one_line(&e),
            })
    }

    /// The first source's credentials, in [`SOURCES`] order.
    async fn find(&self, region: &Region) -> Result<Credentials, CredentialsError> {
        let config = ProviderConfig::without_region()
            .with_http_client(self.http.clone())
            .with_region(Some(region.clone()));
        // One file each, so that the config file is asked before the credentials file (the
        // SDK's own profile provider merges the two into one profile).
        let profile = |kind| {
            let files = match kind {
                EnvConfigFileKind::Config => EnvConfigFiles::builder().include_default_config_file(true),
                _ => EnvConfigFiles::builder().include_default_credentials_file(true),
            }
            .build();
            aws_config::profile::ProfileFileCredentialsProvider::builder()
                .configure(&config)
                .profile_files(files)
                .build()
        };
        let sources: [SharedCredentialsProvider; 6] = [
            SharedCredentialsProvider::new(
                aws_config::environment::credentials::EnvironmentVariableCredentialsProvider::new(),
            ),
            SharedCredentialsProvider::new(profile(EnvConfigFileKind::Config)),
            SharedCredentialsProvider::new(profile(EnvConfigFileKind::Credentials)),
            SharedCredentialsProvider::new(
                aws_config::web_identity_token::WebIdentityTokenCredentialsProvider::builder()
                    .configure(&config)
                    .build(),
            ),
            SharedCredentialsProvider::new(
                aws_config::ecs::EcsCredentialsProvider::builder()
                    .configure(&config)
                    .build(),
            ),
            SharedCredentialsProvider::new(
                aws_config::imds::credentials::ImdsCredentialsProvider::builder()
                    .configure(&config)
                    .build(),
            ),
        ];
        for (name, source) in SOURCES.iter().zip(sources) {
            match source.provide_credentials().await {
                Ok(credentials) => {
                    tracing::debug!(source = name, "AWS credentials found");
                    return Ok(credentials);
                }
                Err(AwsCredentialsError::CredentialsNotLoaded(_)) => {
                    tracing::trace!(source = name, "no AWS credentials here");
                }
                Err(e) => {
                    return Err(CredentialsError::Failed {
                        source_name: name,
                        cause: one_line(&e),
                    });
                }
            }
        }
        Err(CredentialsError::NotFound)
    }
}

/// The region from the usual AWS settings: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's
/// `region`, then instance metadata.
pub(crate) async fn default_region() -> Option<Region> {
    aws_config::default_provider::region::DefaultRegionChain::builder()
        .build()
        .region()
        .await
}

/// An AWS error and its causes on one line: the SDK's own messages are terse ("the
/// credential provider was not enabled") and the cause is in the chain.
fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    //! Each case runs the chain in a child process (this test binary again, running
    //! `chain_child`) with an environment of its own: the providers read the real process
    //! environment, which tests running in parallel threads must not change.

    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::TcpListener;
    use std::path::Path;
    use std::process::Command;

    use super::*;

    const CHILD_FLAG: &str = "FERRY_TEST_CHAIN_CHILD";

    #[test]
    #[ignore = "run by the other tests in a child process with its own environment"]
    fn chain_child() {
        if std::env::var_os(CHILD_FLAG).is_none() {
            return;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let role = std::env::var("FERRY_TEST_ROLE_ARN").ok();
        let chain = CredentialChain::new(role, Some("ferry-test".into()));
        match runtime.block_on(chain.credentials(&Region::new("eu-west-1"))) {
            Ok(credentials) => println!("FOUND {}", credentials.access_key_id()),
            Err(e) => println!("ERROR {e}"),
        }
    }

    /// An instance metadata service on loopback handing out `key_id` for role `ferry-role`
    /// (IMDSv2: a session token first), and container credentials (`AKIDCONTAINER`) at
    /// `/container-credentials`. Returns its endpoint.
    fn imds(key_id: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut content_length = 0;
                let mut headers = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    headers.push_str(&line);
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        content_length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; content_length];
                let _ = reader.read_exact(&mut body);
                let path = request_line.split_whitespace().nth(1).unwrap_or("");
                let body = String::from_utf8_lossy(&body).into_owned();
                let (status, extra, body) = if request_line.starts_with("POST") && path == "/" {
                    sts(&headers, &body)
                } else if request_line.starts_with("PUT") && path == "/latest/api/token" {
                    (
                        "200 OK",
                        "x-aws-ec2-metadata-token-ttl-seconds: 21600\r\n",
                        "imds-session".to_owned(),
                    )
                } else if path.ends_with("/security-credentials/")
                    || path.ends_with("/security-credentials-extended/")
                {
                    ("200 OK", "", "ferry-role".to_owned())
                } else if path == "/container-credentials" {
                    let json = r#"{"AccessKeyId":"AKIDCONTAINER","SecretAccessKey":"container-secret","Token":"container-token","Expiration":"2099-01-01T00:00:00Z"}"#;
                    ("200 OK", "", json.to_owned())
                } else if path.ends_with("/ferry-role") {
                    let json = format!(
                        r#"{{"Code":"Success","LastUpdated":"2026-12-03T12:00:00Z","Type":"AWS-HMAC","AccessKeyId":"{key_id}","SecretAccessKey":"imds-secret","Token":"imds-token","Expiration":"2099-01-01T00:00:00Z"}}"#
                    );
                    ("200 OK", "", json)
                } else {
                    ("404 Not Found", "", String::new())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        endpoint
    }

    /// A loopback STS answering `AssumeRole` for role `ferry-writer`, session `ferry-test`,
    /// with the temporary key `ASIAROLE`, when asked with the environment's key `AKIDENV`;
    /// anything else is refused.
    fn sts(headers: &str, form: &str) -> (&'static str, &'static str, String) {
        if form.contains("Action=AssumeRoleWithWebIdentity") {
            return sts_web_identity(form);
        }
        if !headers.contains("Credential=AKIDENV/") {
            return ("403 Forbidden", "", "not signed with AKIDENV".to_owned());
        }
        let expected = [
            "Action=AssumeRole",
            "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fferry-writer",
            "RoleSessionName=ferry-test",
        ];
        if !expected.iter().all(|part| form.contains(part)) {
            return ("400 Bad Request", "", format!("unexpected request: {form}"));
        }
        let xml = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/ferry-writer/ferry-test</Arn><AssumedRoleId>AROAEXAMPLE:ferry-test</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>ASIAROLE</AccessKeyId><SecretAccessKey>role-secret</SecretAccessKey><SessionToken>role-session</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleResult><ResponseMetadata><RequestId>0</RequestId></ResponseMetadata></AssumeRoleResponse>"#;
        ("200 OK", "content-type: text/xml\r\n", xml.to_owned())
    }

    /// `AssumeRoleWithWebIdentity` (IRSA): the token from the file, answered with `ASIAWEBID`.
    fn sts_web_identity(form: &str) -> (&'static str, &'static str, String) {
        let expected = [
            "WebIdentityToken=irsa-token",
            "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Firsa",
        ];
        if !expected.iter().all(|part| form.contains(part)) {
            return ("400 Bad Request", "", format!("unexpected request: {form}"));
        }
        let xml = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><SubjectFromWebIdentityToken>system:serviceaccount:logs:ferry</SubjectFromWebIdentityToken><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/irsa/ferry</Arn><AssumedRoleId>AROAEXAMPLE:ferry</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>ASIAWEBID</AccessKeyId><SecretAccessKey>web-secret</SecretAccessKey><SessionToken>web-session</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>0</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>"#;
        ("200 OK", "content-type: text/xml\r\n", xml.to_owned())
    }

    /// What the chain found in a child process with only `vars` (and a `HOME` without
    /// `.aws`) in its environment: `FOUND <key id>` or `ERROR <message>`.
    fn chain_with(home: &Path, vars: &[(&str, String)]) -> String {
        let exe = std::env::current_exe().expect("test binary");
        let output = Command::new(exe)
            .args([
                "--exact",
                "aws_credentials::tests::chain_child",
                "--ignored",
                "--nocapture",
            ])
            .env_clear()
            .env(CHILD_FLAG, "1")
            .env("HOME", home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("child runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        stdout
            .lines()
            .find(|l| l.starts_with("FOUND ") || l.starts_with("ERROR "))
            .unwrap_or_else(|| {
                panic!(
                    "no result from the child:\n{stdout}\n{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            })
            .to_owned()
    }

    /// A port nothing listens on: instance metadata that is not there, answered at once.
    fn no_imds() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    }

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("temp dir");
            let process = dir.path().join("credential-process.sh");
            std::fs::write(
                &process,
                "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"AKIDPROCESS\", \"SecretAccessKey\": \"process-secret\"}'\n",
            )
            .expect("write script");
            let failing = dir.path().join("failing-process.sh");
            std::fs::write(&failing, "#!/bin/sh\necho 'sso session expired' >&2\nexit 3\n")
                .expect("write script");
            for script in [&process, &failing] {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            }
            std::fs::write(
                dir.path().join("config"),
                format!(
                    "[default]\nregion = eu-west-1\ncredential_process = {}\n",
                    process.display()
                ),
            )
            .expect("write config");
            std::fs::write(
                dir.path().join("config-failing"),
                format!("[default]\ncredential_process = {}\n", failing.display()),
            )
            .expect("write config");
            std::fs::write(
                dir.path().join("config-region-only"),
                "[default]\nregion = eu-west-1\n",
            )
            .expect("write config");
            std::fs::write(
                dir.path().join("credentials"),
                "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n",
            )
            .expect("write credentials");
            Self { dir }
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }
    }

    #[test]
    fn sources_are_tried_in_the_references_order_and_the_first_wins() {
        let files = Files::new();
        let home = files.dir.path();
        let imds = imds("AKIDIMDS");
        let env = [
            ("AWS_ACCESS_KEY_ID", "AKIDENV".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "env-secret".to_owned()),
        ];
        let config = ("AWS_CONFIG_FILE", files.path("config"));
        let no_config = ("AWS_CONFIG_FILE", files.path("config-region-only"));
        let credentials = ("AWS_SHARED_CREDENTIALS_FILE", files.path("credentials"));
        let no_credentials = ("AWS_SHARED_CREDENTIALS_FILE", files.path("absent"));
        let imds_at = ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.clone());

        // Every source has credentials: the environment wins.
        let all = [
            env[0].clone(),
            env[1].clone(),
            config.clone(),
            credentials.clone(),
            imds_at.clone(),
        ];
        assert_eq!(chain_with(home, &all), "FOUND AKIDENV");
        // Then the config file's credential_process, over the credentials file and IMDS.
        assert_eq!(
            chain_with(home, &[config.clone(), credentials.clone(), imds_at.clone()]),
            "FOUND AKIDPROCESS"
        );
        // Then the credentials file, over IMDS.
        assert_eq!(
            chain_with(home, &[no_config.clone(), credentials.clone(), imds_at.clone()]),
            "FOUND AKIDFILE"
        );
        // Then (an addition to the reference's list) container credentials, over IMDS.
        let container = (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("{imds}/container-credentials"),
        );
        assert_eq!(
            chain_with(
                home,
                &[
                    no_config.clone(),
                    no_credentials.clone(),
                    container,
                    imds_at.clone()
                ]
            ),
            "FOUND AKIDCONTAINER"
        );
        // Then the instance profile.
        assert_eq!(
            chain_with(
                home,
                &[no_config.clone(), no_credentials.clone(), imds_at.clone()]
            ),
            "FOUND AKIDIMDS"
        );
    }

    #[test]
    fn no_credentials_is_one_line_naming_the_sources_tried() {
        let files = Files::new();
        let found = chain_with(
            files.dir.path(),
            &[
                ("AWS_CONFIG_FILE", files.path("absent-config")),
                ("AWS_SHARED_CREDENTIALS_FILE", files.path("absent-credentials")),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", no_imds()),
            ],
        );
        assert_eq!(
            found,
            "ERROR no AWS credentials found; tried, in order: environment variables, AWS config file \
             (credential_process), AWS credentials file, web identity token, container credentials, \
             instance metadata"
        );
    }

    #[test]
    fn a_failing_credential_process_stops_the_search_with_its_reason() {
        let files = Files::new();
        let found = chain_with(
            files.dir.path(),
            &[
                ("AWS_CONFIG_FILE", files.path("config-failing")),
                ("AWS_SHARED_CREDENTIALS_FILE", files.path("credentials")),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", no_imds()),
            ],
        );
        assert!(
            found.starts_with("ERROR AWS credentials from the AWS config file (credential_process): "),
            "{found}"
        );
        assert!(found.contains("sso session expired"), "{found}");
        assert!(!found.contains("AKIDFILE"), "{found}");
    }

    #[test]
    fn a_role_is_assumed_with_the_credentials_found() {
        let files = Files::new();
        let endpoint = imds("AKIDIMDS");
        let found = chain_with(
            files.dir.path(),
            &[
                ("AWS_ACCESS_KEY_ID", "AKIDENV".to_owned()),
                ("AWS_SECRET_ACCESS_KEY", "env-secret".to_owned()),
                ("AWS_ENDPOINT_URL_STS", endpoint.clone()),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", no_imds()),
                (
                    "FERRY_TEST_ROLE_ARN",
                    "arn:aws:iam::123456789012:role/ferry-writer".to_owned(),
                ),
            ],
        );
        assert_eq!(found, "FOUND ASIAROLE");
    }

    #[test]
    fn a_web_identity_token_comes_before_instance_metadata() {
        let files = Files::new();
        let endpoint = imds("AKIDIMDS");
        let token = files.dir.path().join("irsa-token");
        std::fs::write(&token, "irsa-token").expect("write token");
        let found = chain_with(
            files.dir.path(),
            &[
                ("AWS_CONFIG_FILE", files.path("config-region-only")),
                ("AWS_SHARED_CREDENTIALS_FILE", files.path("absent")),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", token.display().to_string()),
                ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/irsa".to_owned()),
                ("AWS_ENDPOINT_URL_STS", endpoint.clone()),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint),
            ],
        );
        assert_eq!(found, "FOUND ASIAWEBID");
    }
}
