//! Support for the end-to-end tests in `tests/`: the `ferry` binary, a broker, and a way to
//! run ferry with a configuration and collect what it did.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod delivery;
mod kafka;
pub mod tls;

pub use delivery::{Tally, append_lines, numbered_lines};
pub use ferry_tansu::{Broker, Storage};
pub use kafka::{Record, TestKafka, read_topic, read_topic_until, read_topic_with, read_topic_within};

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `ferry` binary, built (incrementally) on first use so that tests never run a stale one.
///
/// Built with the same command as `cargo xtask test` and `demo` (`build --workspace --bins`),
/// so the three share one set of artifacts instead of rebuilding for each feature set.
pub fn ferry_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--workspace", "--bins"])
            .current_dir(root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building ferry failed");
        // Test executables live in target/<profile>/deps; the binary one level up.
        let exe = std::env::current_exe().expect("test executable path");
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .join("ferry");
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}

/// A temporary directory holding a configuration file.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
}

impl ConfigDir {
    /// Writes `text` as `ferry.toml` in a fresh directory; `data_dir` points inside it unless
    /// the text sets its own.
    pub fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = if text.contains("data_dir") {
            text.to_owned()
        } else {
            format!("data_dir = \"{}\"\n{text}", dir.path().join("data").display())
        };
        std::fs::write(dir.path().join("ferry.toml"), text).expect("write config");
        Self { dir }
    }

    /// The most common test pipeline: `stdin` → a `kafka` sink with ID `kafka` writing to
    /// `topic` on `brokers`, plus `extra` lines in the sink's table.
    pub fn stdin_to_kafka(brokers: &str, topic: &str, extra: &str) -> Self {
        Self::new(&format!(
            "[sources.in]\ntype = \"stdin\"\n\n[sinks.kafka]\ntype = \"kafka\"\ninputs = [\"in\"]\nbootstrap_servers = \"{brokers}\"\ntopic = \"{topic}\"\n{extra}\n"
        ))
    }

    /// The dead letters a sink wrote under this directory's `data_dir`, oldest first.
    pub fn dead_letters(&self, sink: &str) -> Vec<ferry_dead_letter::DeadLetter> {
        let dir = ferry_dead_letter::default_dir(&self.dir.path().join("data"), sink);
        let files = ferry_dead_letter::list_files(&dir).expect("dead-letter files are listed");
        files
            .iter()
            .flat_map(|f| ferry_dead_letter::read_file(&f.path).expect("dead-letter file reads"))
            .map(|line| line.expect("every dead-letter line parses"))
            .collect()
    }

    /// The configuration file.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("ferry.toml")
    }

    /// `ferry <args> --config FILE` started with standard input and error piped (output
    /// discarded): the shape of every test that feeds ferry while something else happens.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.ferry(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ferry starts")
    }

    /// `ferry <args> --config FILE`, ready to run.
    pub fn ferry(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(ferry_bin());
        cmd.args(args)
            .arg("--config")
            .arg(self.path())
            .env_remove("RUST_LOG");
        cmd
    }
}

/// Runs `cmd` with `input` on stdin; fails the test if it takes longer than `limit`.
pub fn run_with_input(mut cmd: Command, input: &[u8], limit: Duration) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("ferry starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // ferry may exit early (bad config); a broken pipe is then expected.
        let _ = stdin.write_all(&input);
    });
    let output = wait_with_limit(child, limit);
    let _ = writer.join();
    output
}

/// Waits for `child`, killing it and failing if it runs longer than `limit`.
pub fn wait_with_limit(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("wait for ferry"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("ferry (pid {pid}) did not exit within {limit:?}");
        }
    }
}

/// Collects a running child's standard error as it comes, so a test can wait for a log line
/// (a summary counter) while the process runs.
pub fn capture_stderr(child: &mut Child) -> std::sync::Arc<std::sync::Mutex<String>> {
    use std::io::BufRead;
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let writer = log.clone();
    let pipe = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Ok(mut log) = writer.lock() {
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
    log
}

/// Waits (at most `limit`) until the captured log holds `needle`.
pub fn wait_for_log(log: &std::sync::Mutex<String>, needle: &str, limit: Duration) -> bool {
    wait_until(limit, || log.lock().map(|l| l.contains(needle)).unwrap_or(false))
}

/// Sends a signal (`TERM`, `INT`, `KILL`) to a process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Polls `condition` every 50 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    condition()
}

/// A name no other test (or earlier run against the same cluster) uses: `prefix-PID-NANOS`.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The `final summary` line's value of `counter` for `sink`, from ferry's text logs.
pub fn summary_counter(stderr: &str, sink: &str, counter: &str) -> Option<u64> {
    let line = stderr
        .lines()
        .find(|l| l.contains("final summary") && l.contains(&format!("sink={sink}")))?;
    let start = line.find(&format!(" {counter}="))? + counter.len() + 2;
    line[start..].split_whitespace().next()?.parse().ok()
}

/// `GET path` from ferry's HTTP endpoint at `address` (`127.0.0.1:PORT`): the status and the
/// body, or `None` while nothing answers there.
pub fn http_get(address: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The value of one sample in a `/metrics` scrape, e.g.
/// `metric(&text, "ferry_delivered_events_total{sink=\"kafka\"}")`.
pub fn metric(scrape: &str, sample: &str) -> Option<u64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}
