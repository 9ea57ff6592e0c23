//! Throwaway certificates (openssl CLI) and a stunnel TLS terminator in front of tansu, whose
//! own TLS flags are unusable in 0.6.0 (see BROKER.md).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A CA with a server certificate for 127.0.0.1 and a client certificate whose key is
/// encrypted with [`Certificates::KEY_PASS`].
pub struct Certificates {
    pub dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Certificates {
    pub const KEY_PASS: &'static str = "client-key-pass";

    /// Generates everything in a fresh directory.
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::write(d.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        for (ca, subject) in [("ca", "/CN=ferry-test-ca"), ("other-ca", "/CN=untrusted-ca")] {
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.crt"),
                    "-days",
                    "2",
                    "-subj",
                    subject,
                ],
            );
        }
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        let pass = format!("pass:{}", Self::KEY_PASS);
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-aes256",
                "-pass",
                &pass,
                "-out",
                "client.key",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                "client.key",
                "-passin",
                &pass,
                "-out",
                "client.csr",
                "-subj",
                "/CN=ferry-client",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "client.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "client.crt",
                "-days",
                "2",
            ],
        );
        Self { dir }
    }

    /// Bundles the client certificate and key into `client.p12`, protected by `KEY_PASS`.
    pub fn pkcs12(&self) -> PathBuf {
        let pass = format!("pass:{}", Self::KEY_PASS);
        openssl(
            self.dir.path(),
            &[
                "pkcs12",
                "-export",
                "-in",
                "client.crt",
                "-inkey",
                "client.key",
                "-passin",
                &pass,
                "-passout",
                &pass,
                "-out",
                "client.p12",
            ],
        );
        self.path("client.p12")
    }

    /// The CA certificate in DER form, as `ca.der`.
    pub fn ca_der(&self) -> PathBuf {
        openssl(
            self.dir.path(),
            &["x509", "-in", "ca.crt", "-outform", "der", "-out", "ca.der"],
        );
        self.path("ca.der")
    }

    /// A file in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A file's text.
    pub fn pem(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("certificate file")
    }
}

/// stunnel accepting TLS on one port and forwarding plaintext to another; killed on drop.
pub struct Stunnel {
    child: Child,
}

impl Stunnel {
    /// Terminates TLS on `accept` with the server certificate and forwards to `connect`;
    /// with `require_client_cert`, clients must present a certificate signed by the CA.
    pub fn start(certs: &Certificates, accept: u16, connect: u16, require_client_cert: bool) -> Self {
        let mut conf = format!(
            "foreground = yes\npid =\ndebug = warning\n[kafka]\naccept = 127.0.0.1:{accept}\nconnect = 127.0.0.1:{connect}\ncert = {}\nkey = {}\n",
            certs.path("server.crt").display(),
            certs.path("server.key").display()
        );
        if require_client_cert {
            // verifyChain, not verifyPeer: verifyPeer pins one certificate (see BROKER.md).
            conf.push_str(&format!(
                "CAfile = {}\nverifyChain = yes\n",
                certs.path("ca.crt").display()
            ));
        }
        let conf_path = certs.path(&format!("stunnel-{accept}.conf"));
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("stunnel")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stunnel runs (Debian package stunnel4; cargo xtask setup installs it)");
        let up = crate::wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", accept)).is_ok()
        });
        assert!(up, "stunnel did not start listening on {accept}");
        Self { child }
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
