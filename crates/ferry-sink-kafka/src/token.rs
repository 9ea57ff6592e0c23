//! Where the OAUTHBEARER tokens that the sink (rather than librdkafka) makes come from:
//! `sasl.token_file`, or an MSK IAM token signed from AWS credentials.
//!
//! librdkafka asks for a token on the producer's polling thread (through
//! `ClientContext::generate_oauth_token`) when it first connects and at 80% of the last
//! token's lifetime; on an error it logs the reason through the error callback (warned at a
//! rate limit there) and asks again 10 s later. librdkafka's own OIDC client needs none of
//! this: it fetches its tokens itself.

use std::sync::Arc;
use std::time::SystemTime;

use rdkafka::client::OAuthToken;

use crate::config::{SaslConfig, SaslMechanism};
use crate::token_file::{TokenFile, TokenFileError};

/// Why no token could be made. One line, never the token or a secret.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// `sasl.token_file` gave no usable token.
    #[error(transparent)]
    File(#[from] TokenFileError),
    /// No MSK IAM token (no credentials, no region, the role could not be assumed).
    #[cfg(feature = "aws-msk-iam")]
    #[error(transparent)]
    MskIam(#[from] crate::msk_iam::MskIamError),
}

/// A source of OAUTHBEARER tokens made by the sink.
#[derive(Debug)]
pub(crate) enum TokenSource {
    /// `sasl.token_file`.
    File(TokenFile),
    /// `sasl.mechanism = "AWS_MSK_IAM"`.
    #[cfg(feature = "aws-msk-iam")]
    MskIam(crate::msk_iam::MskIamTokens),
}

impl TokenSource {
    /// The token source `sasl` asks for, if the sink makes the tokens.
    pub(crate) fn from_config(sasl: &SaslConfig) -> Result<Option<Arc<Self>>, TokenError> {
        if !sasl.enabled {
            return Ok(None);
        }
        let source = match sasl.mechanism {
            Some(SaslMechanism::OAuthBearer) => match &sasl.token_file {
                Some(path) => TokenSource::File(TokenFile::new(path.clone())),
                // librdkafka's OIDC client makes the tokens.
                None => return Ok(None),
            },
            #[cfg(feature = "aws-msk-iam")]
            Some(SaslMechanism::AwsMskIam) => TokenSource::MskIam(crate::msk_iam::MskIamTokens::new(sasl)?),
            _ => return Ok(None),
        };
        Ok(Some(Arc::new(source)))
    }

    /// A token for librdkafka. Blocks while it is made (reading a file; for MSK IAM,
    /// possibly asking an AWS endpoint for credentials), so it is called on librdkafka's
    /// polling thread or a blocking task, never on the async executor.
    pub(crate) fn token(&self) -> Result<OAuthToken, TokenError> {
        let now = SystemTime::now();
        match self {
            TokenSource::File(file) => {
                let token = file.token(now)?;
                Ok(OAuthToken {
                    lifetime_ms: token.lifetime_ms(now),
                    principal_name: token.principal,
                    token: token.token,
                })
            }
            #[cfg(feature = "aws-msk-iam")]
            TokenSource::MskIam(tokens) => Ok(tokens.token(now)?),
        }
    }
}
