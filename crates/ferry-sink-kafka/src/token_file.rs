//! `sasl.token_file`: an OAUTHBEARER token (a JWT) kept in a file by someone else: the
//! kubelet's projected service account token, a sidecar, a cron job.
//!
//! librdkafka asks for a token when it needs one and again at 80% of the lifetime it was
//! told. The lifetime told is the JWT's `exp`, but never more than [`RECHECK`] away, so the
//! file is looked at again at least every ~50 s: a replaced token is picked up well before
//! the old one expires (the kubelet replaces it at 80% of its lifetime, at least an hour
//! for a 10-minute-minimum token). Each look is one `stat`; the file is read only when its
//! modification time or size changed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The longest lifetime told to librdkafka, so that it asks again (and the file is looked at
/// again) at least every 80% of this.
pub(crate) const RECHECK: Duration = Duration::from_secs(60);

/// Why the token file gave no usable token. Never shows the token itself.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("sasl.token_file: cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The content is not a JWT with an expiry.
    #[error("sasl.token_file: `{path}` does not hold a JWT: {why}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The token's `exp` is past.
    #[error(
        "sasl.token_file: the token in `{path}` expired {ago_s} s ago (exp {exp}); whoever writes it has stopped"
    )]
    Expired {
        /// The file.
        path: PathBuf,
        /// The token's `exp` (seconds since the Unix epoch).
        exp: i64,
        /// How long ago.
        ago_s: i64,
    },
}

/// A token as read from the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileToken {
    /// The JWT, as sent to the broker.
    pub(crate) token: String,
    /// The JWT's `sub`, or `ferry` (librdkafka needs a principal name; brokers take theirs from
    /// the validated token).
    pub(crate) principal: String,
    /// The JWT's `exp`, in seconds since the Unix epoch.
    pub(crate) exp: i64,
}

impl FileToken {
    /// The expiry to tell librdkafka, in milliseconds since the Unix epoch (see [`RECHECK`]).
    pub(crate) fn lifetime_ms(&self, now: SystemTime) -> i64 {
        let recheck = now
            .checked_add(RECHECK)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(i64::MAX, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        recheck.min(self.exp.saturating_mul(1000))
    }
}

/// What identifies a version of the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

/// The token file and the token last read from it.
#[derive(Debug)]
pub(crate) struct TokenFile {
    path: PathBuf,
    last: Mutex<Option<(Stamp, FileToken)>>,
}

impl TokenFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            last: Mutex::new(None),
        }
    }

    /// The current token: the one read before if the file has not changed since, else the
    /// file read again. An expired token is an error even if unchanged.
    pub(crate) fn token(&self, now: SystemTime) -> Result<FileToken, TokenFileError> {
        let read_error = |source| TokenFileError::Read {
            path: self.path.clone(),
            source,
        };
        let meta = std::fs::metadata(&self.path).map_err(read_error)?;
        let stamp = Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
        };
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let token = match &*last {
            Some((seen, token)) if *seen == stamp => token.clone(),
            _ => {
                let text = std::fs::read_to_string(&self.path).map_err(read_error)?;
                let token = parse(&self.path, text.trim())?;
                *last = Some((stamp, token.clone()));
                token
            }
        };
        drop(last);
        let now_s = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if token.exp <= now_s {
            return Err(TokenFileError::Expired {
                path: self.path.clone(),
                exp: token.exp,
                ago_s: now_s - token.exp,
            });
        }
        Ok(token)
    }
}

/// The JWT claims Ferry reads.
#[derive(serde::Deserialize)]
struct Claims {
    exp: Option<serde_json::Number>,
    sub: Option<String>,
}

/// Reads `exp` and `sub` from a JWT without checking its signature: the broker does that;
/// Ferry only needs to know when to look for a new one.
fn parse(path: &Path, text: &str) -> Result<FileToken, TokenFileError> {
    let malformed = |why| TokenFileError::Malformed {
        path: path.to_owned(),
        why,
    };
    if text.is_empty() {
        return Err(malformed("the file is empty"));
    }
    let mut parts = text.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("expected three base64url parts separated by dots"));
    };
    let payload = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| malformed("its payload is not base64url"))?;
    let claims: Claims = serde_json::from_slice(&payload)
        .map_err(|_| malformed("its payload is not a JSON object of claims"))?;
    let exp = claims
        .exp
        .and_then(|n| n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)))
        .ok_or_else(|| malformed("it has no numeric `exp` claim"))?;
    Ok(FileToken {
        token: text.to_owned(),
        principal: claims
            .sub
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "ferry".into()),
        exp,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An unsigned JWT with these claims (the signature part is a placeholder).
    pub(crate) fn jwt(claims: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        format!("{header}.{}.c2lnbmF0dXJl", URL_SAFE_NO_PAD.encode(claims))
    }

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn reads_the_token_again_only_when_the_file_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let first = jwt(r#"{"sub":"system:serviceaccount:logs:ferry","exp":2000}"#);
        std::fs::write(&path, format!("{first}\n")).unwrap();
        let file = TokenFile::new(path.clone());
        let token = file.token(at(1000)).unwrap();
        assert_eq!(token.token, first);
        assert_eq!(token.principal, "system:serviceaccount:logs:ferry");
        assert_eq!(token.exp, 2000);
        // Lifetime told to librdkafka: capped at RECHECK, or the token's own expiry if sooner.
        assert_eq!(token.lifetime_ms(at(1000)), 1_060_000);
        assert_eq!(token.lifetime_ms(at(1990)), 2_000_000);

        // Replaced (as the kubelet does: a new file moved into place), with another size.
        let second = jwt(r#"{"sub":"system:serviceaccount:logs:ferry","exp":3600,"iat":1500}"#);
        let tmp = dir.path().join("token.new");
        std::fs::write(&tmp, &second).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(file.token(at(1500)).unwrap().token, second);

        // Same size and modification time: not read again. Proven by changing the content
        // behind the stamp's back.
        let stamp = std::fs::metadata(&path).unwrap().modified().unwrap();
        let third = jwt(r#"{"sub":"system:serviceaccount:logs:ferry","exp":3700,"iat":1500}"#);
        assert_eq!(third.len(), second.len());
        std::fs::write(&path, &third).unwrap();
        let handle = std::fs::File::options().write(true).open(&path).unwrap();
        handle.set_modified(stamp).unwrap();
        assert_eq!(file.token(at(1600)).unwrap().token, second);
        // Its modification time moves (a write): read again.
        handle.set_modified(stamp + Duration::from_secs(1)).unwrap();
        assert_eq!(file.token(at(1600)).unwrap().token, third);
    }

    #[test]
    fn expired_malformed_and_missing_files_are_one_line_each_without_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let file = TokenFile::new(path.clone());

        let missing = file.token(at(1000)).unwrap_err().to_string();
        assert!(missing.starts_with("sasl.token_file: cannot read `"), "{missing}");

        let old = jwt(r#"{"exp":900}"#);
        std::fs::write(&path, &old).unwrap();
        let expired = file.token(at(1000)).unwrap_err().to_string();
        assert!(expired.contains("expired 100 s ago (exp 900)"), "{expired}");
        assert!(!expired.contains(&old));

        for (content, why) in [
            ("", "the file is empty"),
            ("opaque-token", "expected three base64url parts"),
            ("a.!!!.c", "its payload is not base64url"),
            (&jwt("[1,2]"), "not a JSON object of claims"),
            (&jwt(r#"{"sub":"x"}"#), "no numeric `exp` claim"),
        ] {
            std::fs::write(&path, content).unwrap();
            let err = file.token(at(1000)).unwrap_err().to_string();
            assert!(err.contains(why), "{content:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
            if !content.is_empty() {
                assert!(!err.contains(content), "the token leaked: {err}");
            }
        }
    }
}
