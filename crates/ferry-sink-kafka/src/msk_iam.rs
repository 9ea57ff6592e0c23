//! `sasl.mechanism = "AWS_MSK_IAM"`: OAUTHBEARER whose token is a presigned SigV4 request.
//!
//! The token is what AWS's own signers (aws-msk-iam-sasl-signer-python, -go, -js) send: the
//! URL `https://kafka.REGION.amazonaws.com/?Action=kafka-cluster%3AConnect` presigned with
//! SigV4 in its query (service `kafka-cluster`, 900 s validity), a `User-Agent` parameter
//! appended after signing, the whole URL base64url-encoded without padding. The broker
//! checks the signature and the credentials' IAM permissions. Signing is AWS's `aws-sigv4`;
//! credentials come from [`crate::aws_credentials`].
//!
//! librdkafka is told the token expires when the signature does, and asks for a new one at
//! 80% of that (after 12 minutes); the credentials behind it are fetched again each time
//! (temporary credentials rotate on their own schedule).

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::Region;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rdkafka::client::OAuthToken;

use crate::aws_credentials::{CredentialChain, CredentialsError};
use crate::config::SaslConfig;

/// How long a token's signature is valid: what AWS's signers use.
pub(crate) const TOKEN_VALIDITY: Duration = Duration::from_secs(900);
/// The IAM service the token is signed for.
const SIGNING_NAME: &str = "kafka-cluster";
/// The IAM action the broker checks.
const ACTION: &str = "kafka-cluster:Connect";
/// Ferry's `User-Agent` query parameter (not signed, as in AWS's signers).
const USER_AGENT: &str = concat!("ferry/", env!("CARGO_PKG_VERSION"));
/// How long making a token may take in all (credentials included) before librdkafka hears
/// an error and asks again: its polling thread waits meanwhile.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(20);

/// Why no MSK IAM token could be made. One line; never a secret.
#[derive(Debug, thiserror::Error)]
pub enum MskIamError {
    /// No region in `sasl.region` or the AWS settings.
    #[error(
        "AWS_MSK_IAM: no AWS region: set sasl.region, or AWS_REGION, or `region` in the AWS config file's profile"
    )]
    NoRegion,
    /// The credentials could not be found or fetched.
    #[error("AWS_MSK_IAM: {0}")]
    Credentials(#[from] CredentialsError),
    /// aws-sigv4 refused to sign (it should not with valid credentials).
    #[error("AWS_MSK_IAM: cannot sign the token: {0}")]
    Signing(String),
    /// The runtime that drives AWS's asynchronous providers could not start.
    #[error("AWS_MSK_IAM: cannot start the credentials runtime: {0}")]
    Runtime(String),
    /// Making the token (credentials included) took longer than 20 s.
    #[error("AWS_MSK_IAM: no token after {} s (credentials endpoint not answering)", TOKEN_TIMEOUT.as_secs())]
    TimedOut,
}

/// A token and when its signature expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MskIamToken {
    /// base64url of the presigned URL.
    pub(crate) token: String,
    /// Milliseconds since the Unix epoch.
    pub(crate) expires_ms: i64,
}

/// Signs an MSK IAM token with `credentials` for `region` at `now`, with `user_agent` as the
/// unsigned `User-Agent` parameter.
pub(crate) fn sign_token(
    credentials: &Credentials,
    region: &str,
    now: SystemTime,
    user_agent: &str,
) -> Result<MskIamToken, MskIamError> {
    let base = format!(
        "https://kafka.{region}.amazonaws.com/?Action={}",
        query_escape(ACTION)
    );
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_VALIDITY);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| MskIamError::Signing(e.to_string()))?
        .into();
    // The payload hash of a GET without a body, as botocore computes it for an https URL.
    let request = SignableRequest::new("GET", base.as_str(), std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| MskIamError::Signing(e.to_string()))?;
    // aws-sigv4 traces the canonical request, session token included (its redaction covers
    // headers, not query parameters): signed with no subscriber, so that `-vv` or RUST_LOG
    // can never put a secret in the log (found by the handshake test, which captures every
    // line).
    let signed = tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
        sign(request, &params)
    });
    let (instructions, _signature) = signed
        .map_err(|e| MskIamError::Signing(e.to_string()))?
        .into_parts();
    let mut url = base;
    // The signature last, as AWS's Python signer (botocore) writes it; aws-sigv4 puts the
    // session token after it. The order is not signed, so either is valid: this one makes
    // the tokens byte for byte the same as the reference signer's.
    let mut params: Vec<_> = instructions.params().iter().collect();
    params.sort_by_key(|(name, _)| *name == "X-Amz-Signature");
    for (name, value) in params {
        url.push('&');
        url.push_str(name);
        url.push('=');
        url.push_str(&query_escape(value));
    }
    url.push_str("&User-Agent=");
    url.push_str(&query_escape(user_agent));
    let signed_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let expires_s = signed_s.saturating_add(TOKEN_VALIDITY.as_secs());
    Ok(MskIamToken {
        token: URL_SAFE_NO_PAD.encode(url.as_bytes()),
        expires_ms: i64::try_from(expires_s.saturating_mul(1000)).unwrap_or(i64::MAX),
    })
}

/// SigV4's query encoding: everything but `A-Z a-z 0-9 - _ . ~` percent-encoded, in upper
/// case hex (what the signature was computed over).
fn query_escape(value: &str) -> Cow<'_, str> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
    if value.bytes().all(unreserved) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 16);
    for b in value.bytes() {
        if unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

/// The sink's MSK IAM token maker: its credentials chain, and a small runtime to drive AWS's
/// asynchronous providers from librdkafka's polling thread.
#[derive(Debug)]
pub(crate) struct MskIamTokens {
    chain: CredentialChain,
    region: Option<String>,
    /// Always `Some` until dropped (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for MskIamTokens {
    fn drop(&mut self) {
        // The sink is dropped on the async executor, where dropping a runtime panics;
        // nothing runs on this one between tokens, so there is nothing to wait for.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl MskIamTokens {
    pub(crate) fn new(sasl: &SaslConfig) -> Result<Self, MskIamError> {
        // Its own current-thread runtime: tokens are asked for on librdkafka's polling thread
        // (not an executor thread), and the health check asks from a blocking task; both may
        // block on it. Nothing runs on it between requests.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| MskIamError::Runtime(e.to_string()))?;
        let chain = CredentialChain::new(sasl.role_arn.clone(), sasl.role_session_name.clone());
        Ok(Self {
            chain,
            region: sasl.region.clone(),
            runtime: Some(runtime),
        })
    }

    /// A fresh token, signed now. Blocks (see the runtime above).
    pub(crate) fn token(&self, now: SystemTime) -> Result<OAuthToken, MskIamError> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| MskIamError::Runtime("already shut down".into()))?;
        let (region, credentials) = runtime.block_on(async {
            tokio::time::timeout(TOKEN_TIMEOUT, async {
                let region = match &self.region {
                    Some(region) => Region::new(region.clone()),
                    None => crate::aws_credentials::default_region()
                        .await
                        .ok_or(MskIamError::NoRegion)?,
                };
                let credentials = self.chain.credentials(&region).await?;
                Ok::<_, MskIamError>((region, credentials))
            })
            .await
            .map_err(|_| MskIamError::TimedOut)?
        })?;
        let token = sign_token(&credentials, region.as_ref(), now, USER_AGENT)?;
        Ok(OAuthToken {
            token: token.token,
            // Brokers take the principal from the signed request; librdkafka only wants a
            // name, which it may log: not the access key id.
            principal_name: "ferry".to_owned(),
            lifetime_ms: token.expires_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens made by AWS's Python signer (tests/fixtures/msk_iam/make_fixtures.py).
    const FIXTURES: &str = include_str!("../tests/fixtures/msk_iam/msk_iam_tokens.json");

    #[test]
    fn tokens_match_aws_python_signer_byte_for_byte() {
        let fixtures: serde_json::Value = serde_json::from_str(FIXTURES).expect("fixture JSON");
        let signer = fixtures["signer"].as_str().expect("signer");
        let cases = fixtures["cases"].as_array().expect("cases");
        assert!(!cases.is_empty());
        for case in cases {
            let field = |k: &str| case[k].as_str().map(str::to_owned);
            let credentials = Credentials::new(
                field("access_key_id").expect("key id"),
                field("secret_access_key").expect("secret"),
                field("session_token"),
                None,
                "fixture",
            );
            let time =
                chrono::DateTime::parse_from_rfc3339(&field("time").expect("time")).expect("RFC 3339 time");
            let now = UNIX_EPOCH + Duration::from_secs(u64::try_from(time.timestamp()).expect("after 1970"));
            let token =
                sign_token(&credentials, &field("region").expect("region"), now, signer).expect("signs");
            let name = field("name").unwrap_or_default();
            assert_eq!(Some(token.token.clone()), field("token"), "{name}");
            assert_eq!(Some(token.expires_ms), case["expiry_ms"].as_i64(), "{name}");
        }
    }

    #[test]
    fn the_token_is_a_presigned_connect_url_without_the_secret() {
        let credentials =
            Credentials::new("AKIDEXAMPLE", "very/secret+key", Some("tok".into()), None, "test");
        let now = UNIX_EPOCH + Duration::from_secs(1_764_763_200);
        let token = sign_token(&credentials, "ap-southeast-2", now, USER_AGENT).expect("signs");
        let url = String::from_utf8(URL_SAFE_NO_PAD.decode(&token.token).expect("base64url")).expect("UTF-8");
        assert!(
            url.starts_with("https://kafka.ap-southeast-2.amazonaws.com/?Action=kafka-cluster%3AConnect&"),
            "{url}"
        );
        assert!(
            url.contains("X-Amz-Expires=900&") && url.contains("X-Amz-Security-Token=tok&"),
            "{url}"
        );
        assert!(
            url.ends_with(&format!("&User-Agent=ferry%2F{}", env!("CARGO_PKG_VERSION"))),
            "{url}"
        );
        assert!(!url.contains("secret"), "{url}");
        assert_eq!(token.expires_ms, (1_764_763_200 + 900) * 1000);
    }
}
