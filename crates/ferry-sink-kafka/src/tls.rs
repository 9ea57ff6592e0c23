//! `tls.*`: file paths or inline PEM, turned into librdkafka's `ssl.*` properties. DER files
//! are converted to PEM with OpenSSL, since librdkafka reads PEM (and PKCS#12) only.

use std::path::PathBuf;

use openssl::pkey::PKey;
use openssl::x509::X509;
use rdkafka::ClientConfig;

use crate::config::TlsConfig;

/// A `tls.*` value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("tls.{key}: cannot read `{path}`: {source}")]
    Read {
        /// The option.
        key: &'static str,
        /// The path given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The content is not what the option expects.
    #[error("tls.{key}: `{what}` is not {expected}")]
    Format {
        /// The option.
        key: &'static str,
        /// The path, or "inline PEM".
        what: String,
        /// What was expected.
        expected: &'static str,
    },
}

impl TlsError {
    /// The option at fault, as written in the sink's table (`tls.ca_file`).
    pub(crate) fn key(&self) -> String {
        match self {
            TlsError::Read { key, .. } | TlsError::Format { key, .. } => format!("tls.{key}"),
        }
    }

    /// What is wrong with it, without the option's name.
    pub(crate) fn reason(&self) -> String {
        let shown = self.to_string();
        shown
            .strip_prefix(&format!("{}: ", self.key()))
            .map_or(shown.clone(), str::to_owned)
    }
}

fn is_inline_pem(value: &str) -> bool {
    value.trim_start().starts_with("-----BEGIN")
}

/// Whether a `crt_file` value names a PKCS#12 archive (which holds the key as well).
pub(crate) fn looks_like_pkcs12(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    !is_inline_pem(value) && (lower.ends_with(".p12") || lower.ends_with(".pfx"))
}

fn read(key: &'static str, path: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: PathBuf::from(path),
        source,
    })
}

fn format_error(key: &'static str, value: &str, expected: &'static str) -> TlsError {
    let what = if is_inline_pem(value) {
        "inline PEM".to_owned()
    } else {
        value.to_owned()
    };
    TlsError::Format { key, what, expected }
}

/// A certificate option: inline PEM, a PEM file (passed by path) or a DER file (converted).
/// Returns the (`*.location`, path) or (`*.pem`, text) property to set.
fn certificate(key: &'static str, value: &str) -> Result<(bool, String), TlsError> {
    const EXPECTED: &str = "a PEM or DER X.509 certificate";
    if is_inline_pem(value) {
        X509::stack_from_pem(value.as_bytes()).map_err(|_| format_error(key, value, EXPECTED))?;
        return Ok((false, value.to_owned()));
    }
    let bytes = read(key, value)?;
    if X509::stack_from_pem(&bytes).is_ok_and(|certs| !certs.is_empty()) {
        return Ok((true, value.to_owned()));
    }
    let cert = X509::from_der(&bytes).map_err(|_| format_error(key, value, EXPECTED))?;
    let pem = cert.to_pem().map_err(|_| format_error(key, value, EXPECTED))?;
    Ok((false, String::from_utf8_lossy(&pem).into_owned()))
}

/// Sets the `ssl.*` properties for `tls`.
pub(crate) fn apply(tls: &TlsConfig, cc: &mut ClientConfig) -> Result<(), TlsError> {
    if let Some(ca) = &tls.ca_file {
        match certificate("ca_file", ca)? {
            (true, path) => cc.set("ssl.ca.location", path),
            (false, pem) => cc.set("ssl.ca.pem", pem),
        };
    }
    if let Some(crt) = &tls.crt_file {
        if looks_like_pkcs12(crt) {
            read("crt_file", crt)?;
            cc.set("ssl.keystore.location", crt);
            if let Some(pass) = &tls.key_pass {
                cc.set("ssl.keystore.password", pass.expose());
            }
        } else {
            match certificate("crt_file", crt)? {
                (true, path) => cc.set("ssl.certificate.location", path),
                (false, pem) => cc.set("ssl.certificate.pem", pem),
            };
        }
    }
    if let Some(key) = &tls.key_file {
        const EXPECTED: &str = "a PEM or DER (PKCS#8) private key";
        if is_inline_pem(key) {
            cc.set("ssl.key.pem", key);
        } else {
            let bytes = read("key_file", key)?;
            if bytes.starts_with(b"-----BEGIN") || String::from_utf8_lossy(&bytes).contains("-----BEGIN") {
                cc.set("ssl.key.location", key);
            } else {
                let pkey = PKey::private_key_from_der(&bytes)
                    .or_else(|_| PKey::private_key_from_pkcs8(&bytes))
                    .map_err(|_| format_error("key_file", key, EXPECTED))?;
                let pem = pkey
                    .private_key_to_pem_pkcs8()
                    .map_err(|_| format_error("key_file", key, EXPECTED))?;
                cc.set("ssl.key.pem", String::from_utf8_lossy(&pem).into_owned());
            }
        }
        if let Some(pass) = &tls.key_pass {
            cc.set("ssl.key.password", pass.expose());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_pkcs12_and_inline_pem() {
        assert!(looks_like_pkcs12("/etc/ferry/client.P12"));
        assert!(looks_like_pkcs12("client.pfx"));
        assert!(!looks_like_pkcs12("client.crt"));
        assert!(!looks_like_pkcs12("-----BEGIN CERTIFICATE-----\n.p12"));
    }

    #[test]
    fn missing_and_malformed_files_are_named() {
        let missing = certificate("ca_file", "/nonexistent/ca.pem").unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("tls.ca_file: cannot read `/nonexistent/ca.pem`"),
            "{missing}"
        );
        let dir = std::env::temp_dir().join(format!("ferry-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.crt");
        std::fs::write(&junk, b"not a certificate").unwrap();
        let err = certificate("ca_file", junk.to_str().unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("is not a PEM or DER X.509 certificate"),
            "{err}"
        );
        let inline = certificate(
            "ca_file",
            "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
        )
        .unwrap_err();
        assert!(inline.to_string().contains("`inline PEM`"), "{inline}");
    }
}
