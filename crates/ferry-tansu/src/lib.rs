//! # ferry-tansu
//!
//! A local [tansu](https://github.com/tansu-io/tansu) broker, the Kafka-protocol broker this
//! project tests against (Apache Kafka itself cannot be installed on the development machines).
//! Used by the end-to-end tests, `cargo xtask demo|broker|bench`; std only, so `xtask` can use
//! it before anything else is installed.
//!
//! ```no_run
//! use ferry_tansu::{Broker, Storage};
//! let broker = Broker::start(&ferry_tansu::binary().unwrap(), Storage::Memory).unwrap();
//! broker.create_topic("logs", 3).unwrap();
//! println!("bootstrap servers: {}", broker.bootstrap_servers());
//! // The broker is killed when `broker` is dropped.
//! ```
//!
//! Quirks worth knowing (checked with tansu 0.6.0): topics are not auto-created; a partition's
//! reported high watermark is the base offset of its last batch + 1, so count records by
//! reading them, never from watermarks.
//!
//! [`BrokerProxy`] stands between clients and a broker to add latency, limit bandwidth or
//! stall the traffic (the benchmarks' slow brokers, the reliability suite's stalled one); the
//! broker must advertise the proxy's port ([`Broker::start_advertised`]).

mod proxy;

pub use proxy::BrokerProxy;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where a broker keeps its records.
#[derive(Clone, Debug)]
pub enum Storage {
    /// In memory: fast, gone when the broker stops.
    Memory,
    /// A SQLite file in this directory: survives a restart (outage tests, users).
    Sqlite(PathBuf),
}

/// Why the broker could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No tansu binary was found.
    #[error("no tansu binary: set FERRY_TANSU or run `cargo xtask setup` (looked for {0})")]
    NotInstalled(PathBuf),
    /// The process could not be started.
    #[error("cannot start {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The broker did not accept connections in time.
    #[error("tansu did not accept connections on {addr} within {secs} s (log: {log})")]
    NotReady {
        /// Its address.
        addr: SocketAddr,
        /// How long we waited.
        secs: u64,
        /// Its log file.
        log: String,
    },
    /// An administrative command failed.
    #[error("`tansu {command}` failed: {output}")]
    Admin {
        /// The command.
        command: String,
        /// What it printed.
        output: String,
    },
    /// Another I/O problem.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The tansu binary: `$FERRY_TANSU`, else `~/.cache/ferry/tansu-0.6.0/bin/tansu` where
/// `cargo xtask setup` installs it.
pub fn binary() -> Result<PathBuf, BrokerError> {
    let path = match std::env::var_os("FERRY_TANSU") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/ferry/tansu-0.6.0/bin/tansu"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(BrokerError::NotInstalled(path))
    }
}

/// A running tansu broker on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct Broker {
    binary: PathBuf,
    storage: Storage,
    port: u16,
    /// The port clients are told to use (differs from `port` behind a TLS terminator).
    advertised_port: u16,
    authentication: bool,
    log: PathBuf,
    child: Option<Child>,
}

/// A free TCP port on 127.0.0.1 (another process could take it before we use it; the window
/// is small and a broker that fails to bind reports it).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Broker {
    /// Starts a broker on a free port.
    pub fn start(binary: &Path, storage: Storage) -> Result<Self, BrokerError> {
        Self::start_on(binary, storage, free_port()?, false)
    }

    /// Starts a broker on `port`; with `authentication`, clients must log in with SASL/SCRAM.
    pub fn start_on(
        binary: &Path,
        storage: Storage,
        port: u16,
        authentication: bool,
    ) -> Result<Self, BrokerError> {
        Self::start_advertised(binary, storage, port, port, authentication)
    }

    /// Starts a broker listening on `port` that tells clients to connect to
    /// `advertised_port` (where a TLS terminator such as stunnel forwards to `port`).
    pub fn start_advertised(
        binary: &Path,
        storage: Storage,
        port: u16,
        advertised_port: u16,
        authentication: bool,
    ) -> Result<Self, BrokerError> {
        let log = std::env::temp_dir().join(format!("ferry-tansu-{port}.log"));
        let mut broker = Self {
            binary: binary.to_owned(),
            storage,
            port,
            advertised_port,
            authentication,
            log,
            child: None,
        };
        broker.spawn()?;
        Ok(broker)
    }

    /// `127.0.0.1:PORT` (the advertised port), for `bootstrap_servers`.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.advertised_port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process ID, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The file its output goes to.
    pub fn log_file(&self) -> &Path {
        &self.log
    }

    fn spawn(&mut self) -> Result<(), BrokerError> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised_port);
        let (engine, dir) = match &self.storage {
            Storage::Memory => ("memory://tansu/".to_owned(), std::env::temp_dir()),
            // tansu takes the SQLite path relative to its working directory.
            Storage::Sqlite(dir) => {
                std::fs::create_dir_all(dir)?;
                ("sqlite://tansu.db".to_owned(), dir.clone())
            }
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("broker")
            .args([
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
                "--storage-engine",
                &engine,
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env("RUST_LOG", "warn");
        if self.authentication {
            cmd.arg("--authentication");
        }
        let child = cmd.spawn().map_err(|source| BrokerError::Spawn {
            binary: self.binary.clone(),
            source,
        })?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30))
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), BrokerError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let start = Instant::now();
        while start.elapsed() < limit {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(BrokerError::Admin {
                    command: "broker".into(),
                    output: format!("exited with {status}; see {}", self.log.display()),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(BrokerError::NotReady {
            addr,
            secs: limit.as_secs(),
            log: self.log.display().to_string(),
        })
    }

    /// Kills the broker (as an outage would); [`Broker::restart`] brings it back on the same
    /// port and storage.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again after [`Broker::stop`] (same port, same storage).
    pub fn restart(&mut self) -> Result<(), BrokerError> {
        self.stop();
        self.spawn()
    }

    /// Restarts it with or without SASL authentication required.
    pub fn restart_with_authentication(&mut self, authentication: bool) -> Result<(), BrokerError> {
        self.authentication = authentication;
        self.restart()
    }

    /// Creates a topic (tansu does not auto-create them).
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<(), BrokerError> {
        self.admin(&["topic", "create", name, "--partitions", &partitions.to_string()])
    }

    /// Creates a SCRAM user (`scram256` or `scram512`). Only works while authentication is off.
    pub fn create_user(&self, name: &str, password: &str, mechanism: &str) -> Result<(), BrokerError> {
        self.admin(&["user", "create", name, password, "--mechanism", mechanism])
    }

    fn admin(&self, args: &[&str]) -> Result<(), BrokerError> {
        let broker = format!("tcp://127.0.0.1:{}", self.port);
        let output = Command::new(&self.binary)
            .args(args)
            .args(["--broker", &broker])
            .env("RUST_LOG", "warn")
            .output()?;
        if output.status.success() {
            return Ok(());
        }
        Err(BrokerError::Admin {
            command: args.join(" "),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
            .trim()
            .to_owned(),
        })
    }

    /// Leaves the broker running after this handle is dropped (for `cargo xtask broker`).
    pub fn detach(mut self) -> Option<u32> {
        self.child.take().map(|c| c.id())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
