//! `cargo xtask bench --input file`: the file scenarios of issue 21. The bench's lines are
//! written once into 1, 100 or 1,000 files (`target/bench/files-EVENTSxN/`, kept for later
//! runs), and each contender tails them into the topic: ferry's file source, and rsyslog's
//! `imfile` + `omkafka` (Debian's packages, its omkafka on the same librdkafka 2.12 as kcat).
//! ferry reading the same lines on stdin runs beside them for the issue's "one file ≥ 0.9x
//! stdin" target.
//!
//! A tailer never exits on its own, so a run ends when the topic holds every line: a
//! `kafka-read --until N` process follows the topic from before the contender starts, and the
//! contender then gets SIGTERM. Wall time, CPU seconds (from /proc, every thread) and peak RSS
//! (`VmHWM`) are taken at that moment, so shutting down is not counted. The follower costs the
//! machine the same in every run, the stdin contender's included.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{
    ConfigFile, Contender, Measurement, Options, Section, expand, ferry_argv, ferry_stdin, kafka_sink,
    median, proc_cpu, provenance, round_ratios, summarize, vm_hwm_kib,
};
use crate::setup;
use crate::util::step;

/// The markers around the file bench's section of docs/benchmarks.md.
pub const SECTION: (&str, &str) = ("<!-- bench-file:start -->", "<!-- bench-file:end -->");

/// The file bench's chart, beside the stdin bench's.
pub const CHART: &str = "docs/benchmarks-file.png";

/// How long the topic's count may stand still before a run is declared stalled. Generous: a
/// tailer's first record can wait for its discovery pass and librdkafka's first connection, and
/// a busy 2-core machine stretches both.
const STALL_LIMIT: Duration = Duration::from_secs(120);

/// How long a contender gets to exit after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// The rsyslog configuration of one run: imfile reads every `*.log` of the set from its
/// beginning, and omkafka sends each line as it was read (`%msg%`), the JSON line itself as
/// ferry sends it (ferry's file source adds its `file` and `offset` fields to the object). Only what the bench needs is loaded (no imuxsock, no imklog: the system's syslog
/// traffic cannot reach this daemon); its state files and pid file live in the run's directory,
/// and its own messages go to a file there. In the foreground rsyslogd also prints every
/// message of its own on stderr, whatever the configuration says (an occasional "main Q:Reg:
/// worker thread ... terminated" amid the bench's lines); that is kept, since its errors come the
/// same way.
const RSYSLOG_CONFIG: &str = r#"global(workDirectory="{data_dir}")
module(load="imfile")
module(load="omkafka")
template(name="raw_line" type="string" string="%msg%")
input(type="imfile" file="{files}/*.log" tag="bench" readMode="0" freshStartTail="off" ruleset="to_kafka")
ruleset(name="to_kafka") {
  action(type="omkafka" broker=["{brokers}"] topic="{topic}" template="raw_line")
}
*.* action(type="omfile" file="{data_dir}/rsyslogd-messages.log")
"#;

/// The file scenario's contenders: ferry-json on stdin, then for each file count ferry's file
/// source, rsyslog imfile and the `--peer` commands, in that order within a round.
pub fn contenders(options: &Options, counts: &[usize]) -> Vec<Contender> {
    let wanted = |name: &str| {
        options
            .only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == name))
    };
    let mut all = vec![ferry_stdin("ferry-json", "encoding.codec = \"json\"", "json")];
    // Installs rsyslog only when a run needs it.
    let rsyslog = if counts.iter().any(|n| wanted(&format!("rsyslog-imfile-{n}"))) {
        match setup::rsyslog() {
            Ok(found) => Some(found),
            Err(e) => {
                eprintln!("rsyslog imfile will be skipped: {e:#}");
                None
            }
        }
    } else {
        None
    };
    for &n in counts {
        all.push(ferry_file(n));
        if let Some((rsyslogd, lib)) = &rsyslog {
            all.push(rsyslog_imfile(n, rsyslogd, lib));
        }
        for (name, command) in &options.peers {
            all.push(Contender {
                name: format!("{name}-{n}"),
                argv: vec!["sh".into(), "-c".into(), command.clone()],
                env: Vec::new(),
                config: None,
                files: Some(n),
                validate: None,
            });
        }
    }
    all.retain(|c| wanted(&c.name));
    all
}

/// ferry's file source over `n` files, decoding JSON like ferry-json and with its sink.
fn ferry_file(n: usize) -> Contender {
    let config = format!(
        "data_dir = \"{{data_dir}}\"\n[sources.in]\ntype = \"file\"\ninclude = [\"{{files}}/*.log\"]\nread_from = \"beginning\"\ndecoding.codec = \"json\"\n\n{}",
        kafka_sink("encoding.codec = \"json\"")
    );
    let mut validate = ferry_argv();
    // `ferry validate` builds every component and reaches the broker: a source type this
    // build does not have yet fails here, before a run that would only stall.
    validate.truncate(1);
    validate.extend(["validate".into(), "--config".into(), "${BENCH_CONFIG}".into()]);
    Contender {
        name: format!("ferry-file-{n}"),
        argv: ferry_argv(),
        env: Vec::new(),
        config: Some(ConfigFile {
            extension: "toml",
            text: config,
        }),
        files: Some(n),
        validate: Some(validate),
    }
}

/// rsyslogd in the foreground (`-n`) on its own configuration and pid file, its omkafka on
/// the librdkafka in `lib`.
fn rsyslog_imfile(n: usize, rsyslogd: &Path, lib: &Path) -> Contender {
    let rsyslogd = rsyslogd.display().to_string();
    Contender {
        name: format!("rsyslog-imfile-{n}"),
        argv: vec![
            rsyslogd.clone(),
            "-n".into(),
            "-f".into(),
            "${BENCH_CONFIG}".into(),
            "-i".into(),
            "{data_dir}/rsyslogd.pid".into(),
        ],
        env: vec![("LD_LIBRARY_PATH".into(), lib.display().to_string())],
        config: Some(ConfigFile {
            extension: "conf",
            text: RSYSLOG_CONFIG.into(),
        }),
        files: Some(n),
        validate: Some(vec![
            rsyslogd,
            "-N1".into(),
            "-f".into(),
            "${BENCH_CONFIG}".into(),
        ]),
    }
}

/// Runs a contender's configuration check; fails with its output when it does not pass.
pub fn validate(argv: &[String], env: &[(String, String)]) -> Result<()> {
    let argv: Vec<String> = argv.iter().map(|a| expand(a, env)).collect();
    let program = argv.first().context("empty validation command")?;
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().with_context(|| format!("cannot run {argv:?}"))?;
    if !output.status.success() {
        bail!(
            "{argv:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The `events` lines of `input` spread in order over `n` files of (nearly) equal line counts,
/// `file-0000.log` and so on. Written once and kept: the tailers only read them, and writing
/// ~150 MiB before every run would leave the kernel writing them back during the measurement.
pub fn spread_input(bench_dir: &Path, input: &Path, events: u64, n: usize) -> Result<PathBuf> {
    let dir = bench_dir.join(format!("files-{events}x{n}"));
    // Written last: a set cut short by an interruption is written again.
    let complete = dir.join("complete");
    if complete.is_file() {
        return Ok(dir);
    }
    step(&format!(
        "writing the {events} lines into {n} files ({})",
        dir.display()
    ));
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot clear {}", dir.display())),
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let mut lines = text.split_inclusive(|&b| b == b'\n');
    let total = events as usize;
    for i in 0..n {
        let count = (i + 1) * total / n - i * total / n;
        let path = dir.join(format!("file-{i:04}.log"));
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?,
        );
        for _ in 0..count {
            let line = lines
                .next()
                .with_context(|| format!("{} has fewer than {events} lines", input.display()))?;
            file.write_all(line)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let file = file
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.sync_all()
            .with_context(|| format!("cannot sync {}", path.display()))?;
    }
    std::fs::write(&complete, b"").with_context(|| format!("cannot write {}", complete.display()))?;
    Ok(dir)
}

/// A `kafka-read --until N` process counting the topic's records as they arrive.
pub struct Follower {
    child: Child,
    counts: Receiver<u64>,
}

impl Follower {
    /// Starts following `topic` and waits until it is assigned its partitions, so its start-up
    /// is not part of the contender's time.
    pub fn start(kafka_read: &Path, brokers: &str, topic: &str, events: u64) -> Result<Self> {
        let mut child = Command::new(kafka_read)
            .args([brokers, topic, "--until", &events.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", kafka_read.display()))?;
        let stdout = child.stdout.take().context("kafka-read's stdout was not piped")?;
        let (sender, counts) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Some(count) = line.strip_prefix("count ").and_then(|n| n.trim().parse().ok()) else {
                    continue;
                };
                if sender.send(count).is_err() {
                    break;
                }
            }
        });
        let follower = Follower { child, counts };
        match follower.counts.recv_timeout(Duration::from_secs(30)) {
            Ok(_) => Ok(follower),
            Err(RecvTimeoutError::Timeout) => bail!("kafka-read did not start following {topic} within 30 s"),
            Err(RecvTimeoutError::Disconnected) => {
                bail!("kafka-read could not follow {topic} (its error is above)")
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        // It exits by itself once the count is reached; this ends it after a failed run.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A started contender, stopped when dropped if it is still running (a failed run leaves no
/// tailer behind).
struct Running {
    pid: i32,
    /// Wait status and resource usage, once reaped.
    exit: Option<(i32, libc::rusage)>,
}

impl Running {
    /// Reaps the process if it has exited.
    fn poll(&mut self) -> Result<Option<(i32, libc::rusage)>> {
        if self.exit.is_none() {
            let mut status = 0;
            // SAFETY: rusage is plain old data; wait4 fills it in when it returns the pid.
            let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: pid is our child; WNOHANG makes this a poll.
            let r = unsafe { libc::wait4(self.pid, &mut status, libc::WNOHANG, &mut rusage) };
            if r == self.pid {
                self.exit = Some((status, rusage));
            } else if r < 0 {
                bail!(
                    "wait4 failed for pid {}: {}",
                    self.pid,
                    std::io::Error::last_os_error()
                );
            }
        }
        Ok(self.exit)
    }

    /// SIGTERM, then SIGKILL after [`STOP_LIMIT`]; the wait status.
    fn stop(&mut self) -> Result<i32> {
        if let Some((status, _)) = self.poll()? {
            return Ok(status);
        }
        // SAFETY: kill has no memory preconditions; pid is our unreaped child.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        let asked = Instant::now();
        while asked.elapsed() < STOP_LIMIT {
            if let Some((status, _)) = self.poll()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!(
            "    pid {} still running {} s after SIGTERM: killed",
            self.pid,
            STOP_LIMIT.as_secs()
        );
        // SAFETY: as above.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        loop {
            if let Some((status, _)) = self.poll()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.stop();
        }
    }
}

fn exited_cleanly(status: i32) -> bool {
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// A wait status in words: `exit code 3`, `killed by signal 9`.
fn describe(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status}")
    }
}

/// Runs a contender until `follower` has counted `events` records in the topic, then stops it
/// with SIGTERM. `stdin`: the input it reads there (the stdin contender), else nothing.
pub fn measure_until_delivered(
    argv: &[String],
    env: &[(String, String)],
    stdin: Option<&Path>,
    broker_pid: u32,
    follower: Follower,
    events: u64,
) -> Result<Measurement> {
    let program = argv.first().context("empty contender command")?;
    let mut cmd = Command::new(expand(program, env));
    cmd.args(argv[1..].iter().map(|a| expand(a, env)))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    match stdin {
        Some(path) => {
            cmd.stdin(std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?)
        }
        None => cmd.stdin(Stdio::null()),
    };
    for (k, v) in env {
        cmd.env(k, v);
    }
    let broker_before = proc_cpu(broker_pid);
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("cannot start {argv:?}"))?;
    // Reaped with wait4 below (for its resource usage), never through the std handle.
    let mut running = Running {
        pid: child.id() as i32,
        exit: None,
    };
    drop(child);
    let pid = running.pid as u32;
    let mut peak = 0;
    let mut count = 0;
    let mut last_progress = Instant::now();
    let wall = loop {
        if running.poll()?.is_none()
            && let Some(hwm) = vm_hwm_kib(pid)
        {
            peak = peak.max(hwm);
        }
        let mut follower_gone = false;
        loop {
            match follower.counts.try_recv() {
                Ok(c) if c > count => {
                    count = c;
                    last_progress = Instant::now();
                }
                Ok(_) => {}
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    follower_gone = true;
                    break;
                }
            }
        }
        if count >= events {
            break start.elapsed().as_secs_f64();
        }
        if let Some((status, _)) = running.exit
            && !exited_cleanly(status)
        {
            bail!(
                "{argv:?} failed ({}) with {count} of {events} records in the topic; its messages are above",
                describe(status)
            );
        }
        if follower_gone {
            bail!(
                "the topic's follower (kafka-read) stopped at {count} of {events} records; its error is above"
            );
        }
        if last_progress.elapsed() >= STALL_LIMIT {
            let state = if running.exit.is_some() {
                "it had exited"
            } else {
                "it was still running and is now stopped"
            };
            bail!(
                "stalled: the topic held {count} of {events} records and no new one came for {} s ({state})",
                STALL_LIMIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let broker_cpu = proc_cpu(broker_pid) - broker_before;
    let librdkafka = mapped_librdkafka(pid);
    let cpu = match running.exit {
        // The stdin contender exits by itself once everything is confirmed.
        Some((_, rusage)) => {
            let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            seconds(rusage.ru_utime) + seconds(rusage.ru_stime)
        }
        None => {
            if let Some(hwm) = vm_hwm_kib(pid) {
                peak = peak.max(hwm);
            }
            let cpu = proc_cpu(pid);
            let status = running.stop()?;
            if !exited_cleanly(status) {
                eprintln!(
                    "    note: {} ended with {} after SIGTERM",
                    argv[0],
                    describe(status)
                );
            }
            cpu
        }
    };
    Ok(Measurement {
        wall,
        cpu,
        peak_rss_kib: peak,
        broker_cpu,
        delivered: 0,
        librdkafka,
    })
}

/// The librdkafka file a process has mapped, if any (ferry links its own statically).
fn mapped_librdkafka(pid: u32) -> Option<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|path| path.contains("librdkafka"))
        .map(str::to_owned)
}

/// The contender's file count as the table shows it.
fn files_cell(c: &Contender) -> String {
    c.files.map_or_else(|| "stdin".into(), |n| n.to_string())
}

pub fn table(
    contenders: &[Contender],
    results: &BTreeMap<String, Vec<Measurement>>,
    events: u64,
    bytes: u64,
) -> String {
    let mut out = String::from(
        "| contender | events/s | MiB/s | CPU s per M events | peak RSS MiB | broker CPU s per M | delivered (range of runs) | files | events/s vs rsyslog imfile |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in contenders {
        let s = summarize(&results[&c.name], events);
        let mib = s.rate * (bytes as f64 / events as f64) / 1048576.0;
        let rsyslog = c
            .files
            .filter(|_| c.name.starts_with("ferry-file-"))
            .and_then(|n| results.get(&format!("rsyslog-imfile-{n}")))
            .map(|runs| summarize(runs, events).rate);
        let vs = rsyslog.map_or_else(|| "-".into(), |r| format!("{:.2}x", s.rate / r));
        let delivered = if s.delivered_min == s.delivered_max {
            s.delivered_min.to_string()
        } else {
            format!("{}-{}", s.delivered_min, s.delivered_max)
        };
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.1} | {:.2} | {:.1} | {:.2} | {} | {} | {} |",
            c.name,
            s.rate,
            mib,
            s.cpu_per_million,
            s.rss_mib,
            s.broker_cpu_per_million,
            delivered,
            files_cell(c),
            vs
        );
    }
    out
}

/// ferry's file source against rsyslog, against itself over more files, and against stdin,
/// round by round.
pub fn ratios_table(contenders: &[Contender], results: &BTreeMap<String, Vec<Measurement>>) -> String {
    let mut out = String::from(
        "Events/s ratios round by round (median, range): steadier than ratios of medians when the machine's speed drifts.\n\n| ratio | median | range |\n|---|---|---|\n",
    );
    let mut pairs: Vec<(String, String)> = Vec::new();
    let ferry_files: Vec<usize> = contenders
        .iter()
        .filter(|c| c.name.starts_with("ferry-file-"))
        .filter_map(|c| c.files)
        .collect();
    for &n in &ferry_files {
        pairs.push((format!("ferry-file-{n}"), format!("rsyslog-imfile-{n}")));
    }
    for &n in &ferry_files {
        pairs.push((format!("ferry-file-{n}"), "ferry-json".into()));
    }
    for &n in ferry_files.iter().filter(|&&n| n != 1) {
        pairs.push((format!("ferry-file-{n}"), "ferry-file-1".into()));
    }
    let mut rows = String::new();
    for (a, b) in pairs {
        if let Some((mid, lowest, highest)) = round_ratios(results, &a, &b) {
            let _ = writeln!(rows, "| {a} / {b} | {mid:.2}x | {lowest:.2}-{highest:.2}x |");
        }
    }
    // Without ferry-file runs there is nothing to compare: no empty table.
    if rows.is_empty() {
        return String::new();
    }
    out.push_str(&rows);
    out
}

/// The file targets of issue 21, checked against this run.
pub fn targets_table(
    results: &BTreeMap<String, Vec<Measurement>>,
    events: u64,
    stdin_json_rate: Option<f64>,
) -> String {
    let mut rows: Vec<(String, String, bool)> = Vec::new();
    let rate = |name: &str| Some(summarize(results.get(name)?, events).rate);
    if let Some((ratio, ..)) = round_ratios(results, "ferry-file-1", "ferry-json") {
        rows.push((
            "one file ≥ 0.9x ferry's stdin JSON events/s".into(),
            format!("{ratio:.2}x (median of rounds, against ferry-json in this run)"),
            ratio >= 0.9,
        ));
    } else if let (Some(file), Some(stdin)) = (rate("ferry-file-1"), stdin_json_rate) {
        let ratio = file / stdin;
        rows.push((
            "one file ≥ 0.9x ferry's stdin JSON events/s".into(),
            format!("{ratio:.2}x (against --stdin-json-rate {stdin:.0})"),
            ratio >= 0.9,
        ));
    }
    if let Some((ratio, ..)) = round_ratios(results, "ferry-file-1000", "ferry-file-1") {
        rows.push((
            "1,000 files ≥ 0.7x one file".into(),
            format!("{ratio:.2}x (median of rounds)"),
            ratio >= 0.7,
        ));
    }
    let mut counts: Vec<usize> = results
        .keys()
        .filter_map(|name| name.strip_prefix("ferry-file-")?.parse().ok())
        .collect();
    counts.sort_unstable();
    for n in counts {
        let a = format!("ferry-file-{n}");
        let b = format!("rsyslog-imfile-{n}");
        if let Some((ratio, ..)) = round_ratios(results, &a, &b) {
            rows.push((
                format!(
                    "≥ 2x rsyslog imfile's events/s, {n} file{}",
                    if n == 1 { "" } else { "s" }
                ),
                format!("{ratio:.2}x (median of rounds)"),
                ratio >= 2.0,
            ));
        }
    }
    if let Some(runs) = results.get("ferry-file-1000") {
        let peaks: Vec<f64> = runs.iter().map(|m| m.peak_rss_kib as f64 / 1024.0).collect();
        let highest = peaks.iter().copied().fold(0.0, f64::max);
        let mid = median(peaks);
        rows.push((
            "ferry peak RSS ≤ 60 MiB with 1,000 files".into(),
            format!("{mid:.1} MiB (median; highest run {highest:.1})"),
            mid <= 60.0,
        ));
    }
    let scale = if events == 1_000_000 {
        String::new()
    } else {
        format!(" (set for 1,000,000 lines; this run had {events}, so start-up weighs more)")
    };
    let mut out = format!("Targets of the file source issue (21), this run{scale}:\n\n");
    if rows.is_empty() {
        out.push_str("None could be checked: they need ferry-file runs (and ferry-json or rsyslog-imfile beside them).\n");
        return out;
    }
    out.push_str("| target | measured | |\n|---|---|---|\n");
    for (target, measured, met) in rows {
        let verdict = if met { "met" } else { "**not met**" };
        let _ = writeln!(out, "| {target} | {measured} | {verdict} |");
    }
    out
}

/// The rsyslogd version, as `rsyslogd -v` prints it.
fn rsyslog_version(rsyslogd: &str) -> Option<String> {
    let output = Command::new(rsyslogd).arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines().next()?.split_whitespace().nth(1).map(str::to_owned)
}

/// The file bench's section of docs/benchmarks.md: the run's command, machine and versions,
/// then its tables. How the runs are made is described above the section, once.
pub fn section(
    table: &str,
    contenders: &[Contender],
    results: &BTreeMap<String, Vec<Measurement>>,
    options: &Options,
    args: &[&str],
) -> Section {
    let rsyslog = contenders
        .iter()
        .find(|c| c.name.starts_with("rsyslog-imfile-"))
        .map(|c| {
            let version = c
                .argv
                .first()
                .and_then(|program| rsyslog_version(program))
                .unwrap_or_else(|| "(version unknown)".into());
            let mut mapped: Vec<&str> = results
                .iter()
                .filter(|(name, _)| name.starts_with("rsyslog-imfile-"))
                .flat_map(|(_, runs)| runs.iter().filter_map(|m| m.librdkafka.as_deref()))
                .collect();
            mapped.sort_unstable();
            mapped.dedup();
            let mapped = if mapped.is_empty() {
                "none seen".into()
            } else {
                mapped
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(" rsyslogd {version}; the librdkafka its runs had mapped: {mapped}.")
        })
        .unwrap_or_default();
    let body = format!(
        "### Last run\n\nCommand: `cargo xtask bench {}` at {}; {} lines, {} alternating rounds, medians; a fresh tansu 0.6.0 broker (memory storage) for each run, one topic of 3 partitions.{rsyslog}\n\n{table}\n![events/s and CPU per million events per contender, file scenarios](benchmarks-file.png)\n\n`cargo xtask bench chart` redraws the picture from this table.",
        args.join(" "),
        provenance(),
        options.events,
        options.rounds
    );
    Section {
        start: SECTION.0,
        end: SECTION.1,
        body,
    }
}
