//! `cargo xtask bench`: Ferry side by side with kcat and a raw librdkafka producer, against one
//! local tansu broker (memory storage) and one deterministic input, in alternating rounds.
//!
//! For each run: wall time until the shipper exited with everything confirmed, events/s,
//! MiB/s, CPU seconds of the shipper (user + sys, from `wait4`) per million events, its peak
//! RSS (`VmHWM`, sampled while it runs: `ru_maxrss` is inherited across fork+exec), and the
//! broker's CPU seconds. The delivered count is checked by reading the topic back.
//!
//! `--input file` runs the file scenarios instead (see [`files`]): the same lines written into
//! 1, 100 or 1,000 files, tailed by ferry's file source and by rsyslog's imfile.

mod files;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_tansu::{Broker, Storage};

use crate::setup;
use crate::util::{cargo, root, step, target_dir};
use ferry_tansu::BrokerProxy;

const USAGE: &str = "\
usage: cargo xtask bench [OPTIONS]
       cargo xtask bench backlog [--events N]
       cargo xtask bench chart

options:
  --events N              lines of input (default 1000000)
  --rounds N              alternating rounds, medians reported (default 3)
  --only a,b              run only these contenders (names as in the table)
  --peer NAME='CMD'       an extra contender run with sh -c; {topic} and {brokers} are
                          substituted, and {files} (the directory of *.log files) with --input file;
                          a tailer must `exec` its program, as SIGTERM ends only the shell's pid
  --broker-latency MS     reach the broker through a proxy adding MS each way
  --input stdin|file      stdin (default): the input on each contender's stdin;
                          file: the input written into files, tailed by ferry's file source and
                          rsyslog imfile + omkafka; each run ends when the topic holds every line
  --files N,N             with --input file: the file counts to run (default 1,100,1000)
  --stdin-json-rate R     with --input file and without ferry-json in the run: ferry's stdin JSON
                          events/s to check the one-file target against
  --no-docs               do not write docs/benchmarks.md and its chart";

/// Where the contenders read the input from.
#[derive(Clone, Debug, PartialEq)]
enum Input {
    Stdin,
    /// The input spread over each of these numbers of files.
    Files(Vec<usize>),
}

struct Options {
    events: u64,
    rounds: usize,
    peers: Vec<(String, String)>,
    only: Option<Vec<String>>,
    write_docs: bool,
    /// Added to each direction between the contenders and the broker.
    broker_latency: Duration,
    input: Input,
    /// ferry's stdin JSON events/s measured elsewhere, for the file targets.
    stdin_json_rate: Option<f64>,
}

fn parse(args: &[&str]) -> Result<Options> {
    let mut options = Options {
        events: 1_000_000,
        rounds: 3,
        peers: Vec::new(),
        only: None,
        write_docs: true,
        broker_latency: Duration::ZERO,
        input: Input::Stdin,
        stdin_json_rate: None,
    };
    let mut input: Option<String> = None;
    let mut file_counts: Option<Vec<usize>> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .copied()
                .with_context(|| format!("{name} needs a value"))
        };
        match *arg {
            "--events" => options.events = value("--events")?.parse().context("--events takes a number")?,
            "--rounds" => options.rounds = value("--rounds")?.parse().context("--rounds takes a number")?,
            "--only" => options.only = Some(value("--only")?.split(',').map(str::to_owned).collect()),
            "--no-docs" => options.write_docs = false,
            "--input" => input = Some(value("--input")?.to_owned()),
            "--files" => {
                let list = value("--files")?;
                let counts = list
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().ok().filter(|&n| n > 0))
                    .collect::<Option<Vec<usize>>>()
                    .with_context(|| {
                        format!("--files takes file counts of at least 1, like 1,100,1000 (got `{list}`)")
                    })?;
                file_counts = Some(counts);
            }
            "--stdin-json-rate" => {
                let rate = value("--stdin-json-rate")?;
                options.stdin_json_rate =
                    Some(rate.parse().with_context(|| {
                        format!("--stdin-json-rate takes events per second (got `{rate}`)")
                    })?);
            }
            "--broker-latency" => {
                let ms: u64 = value("--broker-latency")?
                    .parse()
                    .context("--broker-latency takes milliseconds")?;
                options.broker_latency = Duration::from_millis(ms);
            }
            "--peer" => {
                let spec = value("--peer")?;
                let (name, command) = spec
                    .split_once('=')
                    .context("--peer takes NAME='COMMAND {topic} {brokers}'")?;
                options.peers.push((name.to_owned(), command.to_owned()));
            }
            other => bail!("unknown bench option `{other}`\n\n{USAGE}"),
        }
    }
    if options.rounds == 0 || options.events == 0 {
        bail!("--events and --rounds must be at least 1");
    }
    options.input = match (input.as_deref(), file_counts) {
        (None | Some("stdin"), None) => Input::Stdin,
        (None | Some("stdin"), Some(_)) => bail!("--files needs --input file"),
        (Some("file"), counts) => {
            let mut counts = counts.unwrap_or_else(|| vec![1, 100, 1000]);
            counts.sort_unstable();
            counts.dedup();
            if let Some(&n) = counts.iter().find(|&&n| n as u64 > options.events) {
                bail!(
                    "--files {n} is more files than the {} lines of input",
                    options.events
                );
            }
            Input::Files(counts)
        }
        (Some(other), _) => bail!("--input takes stdin or file, not `{other}`"),
    };
    if options.stdin_json_rate.is_some() && options.input == Input::Stdin {
        bail!("--stdin-json-rate is for --input file runs");
    }
    Ok(options)
}

/// One contender: how to run it for a topic.
struct Contender {
    name: String,
    /// The program and its arguments; `{topic}`, `{brokers}` and `{data_dir}` are substituted,
    /// and `${BENCH_CONFIG}` names the written configuration.
    argv: Vec<String>,
    env: Vec<(String, String)>,
    /// A configuration to write before each run, with `{data_dir}`, `{files}`, `{brokers}` and
    /// `{topic}` substituted: ferry's disk buffer and rsyslog's imfile state need a fresh
    /// directory per run.
    config: Option<ConfigFile>,
    /// File scenarios: how many files it tails. `None`: it reads the input on stdin.
    files: Option<usize>,
    /// A configuration check run before each run (`{...}` substituted as in `argv`), so a
    /// configuration the program rejects fails the bench at once instead of as a stalled run.
    validate: Option<Vec<String>>,
}

/// A contender's configuration file.
struct ConfigFile {
    /// The file name's extension (`toml`, `conf`).
    extension: &'static str,
    text: String,
}

#[derive(Clone, Debug, Default)]
struct Measurement {
    wall: f64,
    cpu: f64,
    peak_rss_kib: u64,
    broker_cpu: f64,
    delivered: u64,
    /// The librdkafka the contender had mapped when measured (file scenarios), to show which
    /// one a program given `LD_LIBRARY_PATH` really ran with.
    librdkafka: Option<String>,
}

pub fn run(args: &[&str]) -> Result<()> {
    if args.first() == Some(&"backlog") {
        return backlog(&args[1..]);
    }
    if args == ["chart"] {
        setup::chart_font()?;
        let doc = root().join("docs/benchmarks.md");
        crate::chart::from_docs(&doc, STDIN_SECTION.0, &root().join("docs/benchmarks.png"))?;
        if std::fs::read_to_string(&doc)?.contains(files::SECTION.0) {
            crate::chart::from_docs(&doc, files::SECTION.0, &root().join(files::CHART))?;
        }
        return Ok(());
    }
    if matches!(args, ["--help"] | ["-h"] | ["help"]) {
        println!("{USAGE}");
        return Ok(());
    }
    let options = parse(args)?;
    let tools = setup::install()?;
    if options.write_docs {
        setup::chart_font()?;
    }
    build_binaries()?;
    let bench_dir = root().join("target/bench");
    std::fs::create_dir_all(&bench_dir)?;
    let input = generate_input(&bench_dir, options.events)?;
    let input_bytes = std::fs::metadata(&input)?.len();
    let kcat_lib = match setup::kcat_librdkafka() {
        Ok(dir) => Some(dir),
        Err(e) => {
            eprintln!("kcat will be skipped: {e:#}");
            None
        }
    };
    let (contenders, file_sets) = match &options.input {
        Input::Stdin => (contenders(&options, kcat_lib.as_deref()), BTreeMap::new()),
        Input::Files(counts) => {
            let contenders = files::contenders(&options, counts);
            let mut sets = BTreeMap::new();
            for &n in counts {
                if contenders.iter().any(|c| c.files == Some(n)) {
                    sets.insert(n, files::spread_input(&bench_dir, &input, options.events, n)?);
                }
            }
            (contenders, sets)
        }
    };
    if contenders.is_empty() {
        bail!("no contender to run: --only matched none of this input's contenders");
    }
    step(&format!(
        "{} contenders x {} rounds over {} events ({:.1} MiB); a fresh tansu (memory storage) for each run{}",
        contenders.len(),
        options.rounds,
        options.events,
        input_bytes as f64 / 1048576.0,
        if options.broker_latency.is_zero() {
            String::new()
        } else {
            format!(
                ", reached through a proxy adding {} ms each way",
                options.broker_latency.as_millis()
            )
        }
    ));
    let mut results: BTreeMap<String, Vec<Measurement>> = BTreeMap::new();
    let total = contenders.len() * options.rounds;
    let progress = indicatif::ProgressBar::new(total as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} runs, {elapsed} elapsed, ~{eta} left  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut done = 0;
    for round in 1..=options.rounds {
        for contender in &contenders {
            done += 1;
            progress.set_message(format!("round {round}: {}", contender.name));
            // tansu's memory storage keeps every record it was sent and slows down as it grows
            // (its CPU per event rose through the 35 runs of a 5-round bench): every run gets
            // an empty broker, so no contender pays for the ones before it.
            // With added latency, clients reach the broker only through the delaying proxy:
            // the broker advertises the proxy's port, so every connection goes through it.
            let (broker, _proxy) = if options.broker_latency.is_zero() {
                (Broker::start(&tools.tansu, Storage::Memory)?, None)
            } else {
                let proxy_port = ferry_tansu::free_port()?;
                let broker_port = ferry_tansu::free_port()?;
                let proxy = BrokerProxy::start(proxy_port, broker_port, options.broker_latency)?;
                let broker = Broker::start_advertised(
                    &tools.tansu,
                    Storage::Memory,
                    broker_port,
                    proxy.port(),
                    false,
                )?;
                (broker, Some(proxy))
            };
            let brokers = broker.bootstrap_servers();
            let broker_pid = broker.pid().context("broker pid")?;
            let topic = format!("bench-{}-{round}", contender.name);
            broker.create_topic(&topic, 3)?;
            let data_dir = bench_dir.join(format!("data-{}-{round}", contender.name));
            let _ = std::fs::remove_dir_all(&data_dir);
            let files_dir = contender
                .files
                .and_then(|n| file_sets.get(&n))
                .map(|dir: &PathBuf| dir.display().to_string())
                .unwrap_or_default();
            let fill = |s: &str| {
                s.replace("{topic}", &topic)
                    .replace("{brokers}", &brokers)
                    .replace("{data_dir}", &data_dir.display().to_string())
                    .replace("{files}", &files_dir)
            };
            let mut env = contender.env.clone();
            if let Some(config) = &contender.config {
                // rsyslog wants its work directory to exist; ferry creates its data_dir itself.
                std::fs::create_dir_all(&data_dir)
                    .with_context(|| format!("cannot create {}", data_dir.display()))?;
                let path = bench_dir.join(format!("{}.{}", contender.name, config.extension));
                std::fs::write(&path, fill(&config.text))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                env.push(("BENCH_CONFIG".into(), path.display().to_string()));
            }
            env.push(("BENCH_BROKERS".into(), brokers.clone()));
            env.push(("BENCH_TOPIC".into(), topic.clone()));
            let argv: Vec<String> = contender.argv.iter().map(|a| fill(a)).collect();
            if let Some(check) = &contender.validate {
                let check: Vec<String> = check.iter().map(|a| fill(a)).collect();
                files::validate(&check, &env)
                    .with_context(|| format!("{}: its configuration does not validate", contender.name))?;
            }
            eprint!("[{done}/{total}] round {round}: {:<20}", contender.name);
            let mut m = match options.input {
                Input::Stdin => measure(&argv, &env, &input, broker_pid)?,
                Input::Files(_) => {
                    // The stdin contender of a file bench is measured like the tailers (until
                    // the topic holds every line, with a reader following the topic alongside),
                    // so their ratios compare like with like.
                    let stdin = contender.files.is_none().then_some(input.as_path());
                    let follower =
                        files::Follower::start(&bin("kafka-read"), &brokers, &topic, options.events)?;
                    let kept = if data_dir.is_dir() {
                        format!("; its data directory {} is kept", data_dir.display())
                    } else {
                        String::new()
                    };
                    files::measure_until_delivered(&argv, &env, stdin, broker_pid, follower, options.events)
                        .with_context(|| format!("{} (round {round}{kept})", contender.name))?
                }
            };
            m.delivered = count_records(&bin("kafka-read"), &brokers, &topic)?;
            eprintln!(
                " {:>9.0} events/s  {:>5.2} CPU s/M  {:>6.1} MiB peak  delivered {}",
                options.events as f64 / m.wall,
                m.cpu / (options.events as f64 / 1e6),
                m.peak_rss_kib as f64 / 1024.0,
                m.delivered
            );
            if let Some(lib) = &m.librdkafka {
                eprintln!("    librdkafka mapped: {lib}");
            }
            if m.delivered < options.events {
                eprintln!(
                    "    WARNING: {} of {} events delivered",
                    m.delivered, options.events
                );
            } else if m.delivered > options.events {
                eprintln!(
                    "    WARNING: {} records for {} events: duplicates",
                    m.delivered, options.events
                );
            }
            let _ = std::fs::remove_dir_all(&data_dir);
            results.entry(contender.name.clone()).or_default().push(m);
        }
    }
    progress.finish_and_clear();
    let table = match options.input {
        Input::Stdin => format!(
            "{}\n{}\n{}",
            table(&contenders, &results, options.events, input_bytes),
            ratios_table(&contenders, &results),
            targets_table(&results, options.events)
        ),
        Input::Files(_) => [
            files::table(&contenders, &results, options.events, input_bytes),
            files::ratios_table(&contenders, &results),
            files::targets_table(&results, options.events, options.stdin_json_rate),
        ]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("\n"),
    };
    println!("\n{table}");
    if options.write_docs {
        let (section, chart) = match options.input {
            Input::Stdin => (stdin_section(&table, &options, args), "docs/benchmarks.png"),
            Input::Files(_) => (
                files::section(&table, &contenders, &results, &options, args),
                files::CHART,
            ),
        };
        write_docs(section)?;
        let bars: Vec<crate::chart::Bar> = contenders
            .iter()
            .map(|c| {
                let runs = &results[&c.name];
                crate::chart::Bar {
                    name: c.name.clone(),
                    events_per_s: median(runs.iter().map(|m| options.events as f64 / m.wall).collect()),
                    cpu_per_million: median(
                        runs.iter()
                            .map(|m| m.cpu / (options.events as f64 / 1e6))
                            .collect(),
                    ),
                }
            })
            .collect();
        crate::chart::draw(&root().join(chart), &bars)?;
        println!("written to docs/benchmarks.md and {chart}");
    }
    Ok(())
}

/// The binaries the bench runs, copied out of the target directory.
const BINARIES: [&str; 3] = ["ferry", "kafka-read", "raw-producer"];

/// Builds [`BINARIES`] in release mode and copies them to `target/bench/bin` in this checkout:
/// a target directory shared with another checkout (`CARGO_TARGET_DIR`) holds whichever
/// checkout built last, and that may change during a bench.
fn build_binaries() -> Result<()> {
    step("building release binaries (ferry, kafka-read, raw-producer)");
    cargo(
        &["build", "--release", "-p", "ferry", "-p", "ferry-e2e", "--bins"],
        &[],
    )?;
    let built = target_dir().join("release");
    let dir = root().join("target/bench/bin");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for name in BINARIES {
        let from = built.join(name);
        std::fs::copy(&from, dir.join(name))
            .with_context(|| format!("cannot copy {} into {}", from.display(), dir.display()))?;
    }
    Ok(())
}

/// A binary [`build_binaries`] built for this bench.
fn bin(name: &str) -> PathBuf {
    root().join("target/bench/bin").join(name)
}

/// The Kafka sink every ferry contender uses, with `extra` settings appended.
fn kafka_sink(extra: &str) -> String {
    format!(
        "[sinks.kafka]\ntype = \"kafka\"\ninputs = [\"in\"]\nbootstrap_servers = \"${{BENCH_BROKERS}}\"\ntopic = \"${{BENCH_TOPIC}}\"\n{extra}\n"
    )
}

/// ferry run on the written configuration.
fn ferry_argv() -> Vec<String> {
    vec![
        bin("ferry").display().to_string(),
        "--config".into(),
        "${BENCH_CONFIG}".into(),
        "--summary-interval".into(),
        "0".into(),
        "-q".into(),
    ]
}

/// ferry reading stdin, decoding with `decode`, its sink given `sink_extra`.
fn ferry_stdin(name: &str, sink_extra: &str, decode: &str) -> Contender {
    Contender {
        name: name.to_owned(),
        argv: ferry_argv(),
        env: Vec::new(),
        config: Some(ConfigFile {
            extension: "toml",
            text: format!(
                "data_dir = \"{{data_dir}}\"\n[sources.in]\ntype = \"stdin\"\ndecoding.codec = \"{decode}\"\n\n{}",
                kafka_sink(sink_extra)
            ),
        }),
        files: None,
        validate: None,
    }
}

fn contenders(options: &Options, kcat_lib: Option<&Path>) -> Vec<Contender> {
    let mut all = Vec::new();
    if let Some(lib) = kcat_lib {
        all.push(Contender {
            name: "kcat".into(),
            argv: [
                "kcat",
                "-P",
                "-b",
                "{brokers}",
                "-t",
                "{topic}",
                "-l",
                "/dev/stdin",
            ]
            .map(String::from)
            .to_vec(),
            env: vec![("LD_LIBRARY_PATH".into(), lib.display().to_string())],
            config: None,
            files: None,
            validate: None,
        });
        // Ferry runs the idempotent producer by default and kcat does not: this one is the
        // like-for-like comparison.
        all.push(Contender {
            name: "kcat-idempotent".into(),
            argv: [
                "kcat",
                "-P",
                "-b",
                "{brokers}",
                "-t",
                "{topic}",
                "-X",
                "enable.idempotence=true",
                "-l",
                "/dev/stdin",
            ]
            .map(String::from)
            .to_vec(),
            env: vec![("LD_LIBRARY_PATH".into(), lib.display().to_string())],
            config: None,
            files: None,
            validate: None,
        });
    }
    all.push(Contender {
        name: "raw-rdkafka".into(),
        argv: vec![
            bin("raw-producer").display().to_string(),
            "{brokers}".into(),
            "{topic}".into(),
        ],
        env: Vec::new(),
        config: None,
        files: None,
        validate: None,
    });
    all.push(ferry_stdin("ferry-text", "encoding.codec = \"text\"", "bytes"));
    all.push(ferry_stdin("ferry-json", "encoding.codec = \"json\"", "json"));
    // The same pipeline with the HTTP endpoint on (an OS-chosen port): what `[api]` costs.
    let mut with_api = ferry_stdin("ferry-json-api", "encoding.codec = \"json\"", "json");
    if let Some(config) = with_api.config.as_mut() {
        config.text = config.text.replacen(
            "[sources.in]",
            "[api]\naddress = \"127.0.0.1:0\"\n\n[sources.in]",
            1,
        );
    }
    all.push(with_api);
    all.push(ferry_stdin(
        "ferry-json-disk",
        "encoding.codec = \"json\"\nbuffer.type = \"disk\"\nbuffer.max_size = 4294967296",
        "json",
    ));
    all.push(ferry_stdin(
        "ferry-json-lz4",
        "encoding.codec = \"json\"\ncompression = \"lz4\"",
        "json",
    ));
    all.push(ferry_stdin(
        "ferry-json-zstd",
        "encoding.codec = \"json\"\ncompression = \"zstd\"",
        "json",
    ));
    for (name, command) in &options.peers {
        all.push(Contender {
            name: name.clone(),
            argv: vec!["sh".into(), "-c".into(), command.clone()],
            env: Vec::new(),
            config: None,
            files: None,
            validate: None,
        });
    }
    if let Some(only) = &options.only {
        all.retain(|c| only.contains(&c.name));
    }
    all
}

/// 150-byte-ish JSON access-log lines from a fixed seed, generated once and kept.
fn generate_input(dir: &Path, events: u64) -> Result<PathBuf> {
    let path = dir.join(format!("input-{events}.jsonl"));
    if path.is_file() {
        return Ok(path);
    }
    step(&format!("generating {events} JSON log lines (seed 42)"));
    let mut state: u64 = 42;
    let mut next = move || {
        // xorshift64*: deterministic and good enough to vary the fields.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
    const PATHS: [&str; 5] = [
        "/api/v1/orders",
        "/api/v1/users/me",
        "/index.html",
        "/static/app.js",
        "/health",
    ];
    const STATUS: [u16; 6] = [200, 200, 200, 201, 404, 500];
    let mut out = String::with_capacity(events as usize * 160);
    for i in 0..events {
        let r = next();
        let _ = writeln!(
            out,
            r#"{{"timestamp":"2026-11-25T10:{:02}:{:02}.{:03}Z","host":"web-{}","level":"info","method":"{}","path":"{}","status":{},"bytes":{},"user_id":"user-{}","seq":{i}}}"#,
            (i / 60_000) % 60,
            (i / 1000) % 60,
            i % 1000,
            r % 8,
            METHODS[(r >> 8) as usize % 4],
            PATHS[(r >> 16) as usize % 5],
            STATUS[(r >> 24) as usize % 6],
            (r >> 32) % 60_000,
            (r >> 40) % 1000,
        );
    }
    std::fs::write(&path, out)?;
    Ok(path)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// A process's user + system CPU seconds from /proc.
fn proc_cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name may contain spaces; fields resume after its closing parenthesis.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `s` with each `${NAME}` of `env` replaced by its value.
fn expand(s: &str, env: &[(String, String)]) -> String {
    env.iter()
        .fold(s.to_owned(), |acc, (k, v)| acc.replace(&format!("${{{k}}}"), v))
}

fn measure(argv: &[String], env: &[(String, String)], input: &Path, broker_pid: u32) -> Result<Measurement> {
    let expand = |s: &str| expand(s, env);
    let mut cmd = Command::new(expand(&argv[0]));
    cmd.args(argv[1..].iter().map(|a| expand(a)))
        .stdin(File::open(input)?)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let broker_before = proc_cpu(broker_pid);
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("cannot start {argv:?}"))?;
    let pid = child.id();
    let mut peak = 0;
    let (status, rusage) = loop {
        if let Some(hwm) = vm_hwm_kib(pid) {
            peak = peak.max(hwm);
        }
        let mut status = 0;
        // SAFETY: rusage is plain old data; wait4 fills it in when it returns the pid.
        let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our child; WNOHANG makes this a poll.
        let r = unsafe { libc::wait4(pid as i32, &mut status, libc::WNOHANG, &mut rusage) };
        if r == pid as i32 {
            break (status, rusage);
        }
        if r < 0 {
            bail!("wait4 failed for {argv:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = start.elapsed().as_secs_f64();
    // The std handle must not wait again: wait4 reaped the child.
    std::mem::forget(child);
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{argv:?} failed (wait status {status})");
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Measurement {
        wall,
        cpu: seconds(rusage.ru_utime) + seconds(rusage.ru_stime),
        peak_rss_kib: peak,
        broker_cpu: proc_cpu(broker_pid) - broker_before,
        delivered: 0,
        librdkafka: None,
    })
}

/// Reads the topic back (tansu's watermarks cannot be trusted for counting).
fn count_records(kafka_read: &Path, brokers: &str, topic: &str) -> Result<u64> {
    let output = Command::new(kafka_read).args([brokers, topic, "0"]).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{topic}: ")))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("kafka-read printed no count: {text}"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// One contender's runs in a table row: medians, and the delivered counts' range.
struct Summary {
    rate: f64,
    cpu_per_million: f64,
    rss_mib: f64,
    broker_cpu_per_million: f64,
    delivered_min: u64,
    delivered_max: u64,
}

fn summarize(runs: &[Measurement], events: u64) -> Summary {
    let millions = events as f64 / 1e6;
    Summary {
        rate: median(runs.iter().map(|m| events as f64 / m.wall).collect()),
        cpu_per_million: median(runs.iter().map(|m| m.cpu / millions).collect()),
        rss_mib: median(runs.iter().map(|m| m.peak_rss_kib as f64 / 1024.0).collect()),
        broker_cpu_per_million: median(runs.iter().map(|m| m.broker_cpu / millions).collect()),
        delivered_min: runs.iter().map(|m| m.delivered).min().unwrap_or(0),
        delivered_max: runs.iter().map(|m| m.delivered).max().unwrap_or(0),
    }
}

fn table(
    contenders: &[Contender],
    results: &BTreeMap<String, Vec<Measurement>>,
    events: u64,
    bytes: u64,
) -> String {
    let row = |name: &str| {
        let s = summarize(&results[name], events);
        (
            s.rate,
            s.cpu_per_million,
            s.rss_mib,
            s.broker_cpu_per_million,
            s.delivered_min,
        )
    };
    let kcat = results.contains_key("kcat").then(|| row("kcat"));
    let mut out = String::from(
        "| contender | events/s | MiB/s | CPU s per M events | peak RSS MiB | broker CPU s per M | delivered (min of runs) | events/s vs kcat | CPU vs kcat |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in contenders {
        let (rate, cpu, rss, broker, delivered) = row(&c.name);
        let mib = rate * (bytes as f64 / events as f64) / 1048576.0;
        let (vs_rate, vs_cpu) = match kcat {
            Some((k_rate, k_cpu, ..)) => (format!("{:.2}x", rate / k_rate), format!("{:.2}x", cpu / k_cpu)),
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.1} | {:.2} | {:.1} | {:.2} | {} | {} | {} |",
            c.name, rate, mib, cpu, rss, broker, delivered, vs_rate, vs_cpu
        );
    }
    out
}

/// Ratio of `a`'s events/s to `b`'s within each round (their runs were close in time, so most
/// of a shared machine's drift cancels out): median, lowest, highest.
fn round_ratios(results: &BTreeMap<String, Vec<Measurement>>, a: &str, b: &str) -> Option<(f64, f64, f64)> {
    let ratios: Vec<f64> = results
        .get(a)?
        .iter()
        .zip(results.get(b)?)
        .map(|(a, b)| b.wall / a.wall)
        .collect();
    let lowest = ratios.iter().copied().reduce(f64::min)?;
    let highest = ratios.iter().copied().reduce(f64::max)?;
    Some((median(ratios), lowest, highest))
}

/// Every contender against kcat, and the JSON variants against the plain JSON run, round by
/// round.
fn ratios_table(contenders: &[Contender], results: &BTreeMap<String, Vec<Measurement>>) -> String {
    let mut out = String::from(
        "Events/s ratios round by round (median, range): steadier than ratios of medians when the machine's speed drifts.\n\n| ratio | median | range |\n|---|---|---|\n",
    );
    let mut pairs: Vec<(&str, &str)> = contenders
        .iter()
        .filter(|c| c.name != "kcat")
        .map(|c| (c.name.as_str(), "kcat"))
        .collect();
    pairs.extend(
        ["ferry-json-disk", "ferry-json-lz4", "ferry-json-zstd"]
            .into_iter()
            .map(|variant| (variant, "ferry-json")),
    );
    for (a, b) in pairs {
        if let Some((mid, lowest, highest)) = round_ratios(results, a, b) {
            let _ = writeln!(out, "| {a} / {b} | {mid:.2}x | {lowest:.2}-{highest:.2}x |");
        }
    }
    out
}

/// The targets of the benchmarks issue, checked against this run.
fn targets_table(results: &BTreeMap<String, Vec<Measurement>>, events: u64) -> String {
    let millions = events as f64 / 1e6;
    let rate = |name: &str| {
        let runs = results.get(name)?;
        Some(median(runs.iter().map(|m| events as f64 / m.wall).collect()))
    };
    let cpu = |name: &str| {
        let runs = results.get(name)?;
        Some(median(runs.iter().map(|m| m.cpu / millions).collect()))
    };
    let rss = |name: &str| {
        let runs = results.get(name)?;
        Some(median(
            runs.iter().map(|m| m.peak_rss_kib as f64 / 1024.0).collect(),
        ))
    };
    let mut rows: Vec<(String, String, bool)> = Vec::new();
    if let Some((ratio, ..)) = round_ratios(results, "ferry-text", "kcat") {
        rows.push((
            "ferry-text ≥ 0.8x kcat's events/s".into(),
            format!("{ratio:.2}x (median of rounds)"),
            ratio >= 0.8,
        ));
    }
    if let (Some(text), Some(kcat)) = (cpu("ferry-text"), cpu("kcat")) {
        let ratio = text / kcat;
        rows.push((
            "ferry-text CPU per M events ≤ 1.5x kcat's".into(),
            format!("{ratio:.2}x"),
            ratio <= 1.5,
        ));
    }
    if let Some(json) = rate("ferry-json") {
        rows.push((
            "ferry-json ≥ 1 M events/s".into(),
            format!("{:.2} M", json / 1e6),
            json >= 1e6,
        ));
    }
    if let Some(json) = cpu("ferry-json") {
        rows.push((
            "ferry-json CPU per M events ≤ 2.0 s".into(),
            format!("{json:.2} s"),
            json <= 2.0,
        ));
    }
    if let Some((ratio, ..)) = round_ratios(results, "ferry-json-disk", "ferry-json") {
        rows.push((
            "disk buffer ≥ 0.7x memory buffer".into(),
            format!("{ratio:.2}x (median of rounds)"),
            ratio >= 0.7,
        ));
    }
    let memory_runs: Vec<(&str, f64)> = ["ferry-text", "ferry-json", "ferry-json-lz4", "ferry-json-zstd"]
        .into_iter()
        .filter_map(|name| Some((name, rss(name)?)))
        .collect();
    if let Some(&(name, peak)) = memory_runs.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        rows.push((
            "peak RSS ≤ 50 MiB, memory-buffer runs".into(),
            format!("{peak:.1} MiB at most ({name})"),
            peak <= 50.0,
        ));
    }
    let scale = if events == 1_000_000 {
        String::new()
    } else {
        format!(" (set for 1,000,000 events; this run had {events}, so start-up weighs more)")
    };
    let mut out = format!(
        "Targets of the benchmarks issue, this run{scale}:\n\n| target | measured | |\n|---|---|---|\n"
    );
    for (target, measured, met) in rows {
        let verdict = if met { "met" } else { "**not met**" };
        let _ = writeln!(out, "| {target} | {measured} | {verdict} |");
    }
    out
}

/// The markers around the stdin bench's section of docs/benchmarks.md.
const STDIN_SECTION: (&str, &str) = ("<!-- bench:start -->", "<!-- bench:end -->");

/// A marked section of docs/benchmarks.md, replaced whole by the run that wrote it.
struct Section {
    start: &'static str,
    end: &'static str,
    body: String,
}

/// The commit measured and the machine it ran on: `commit X; N cores (CPU)`.
fn provenance() -> String {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("commit {commit}; {cores} cores ({cpu})")
}

fn stdin_section(table: &str, options: &Options, args: &[&str]) -> Section {
    let body = format!(
        "## End to end: `cargo xtask bench`\n\nCommand: `cargo xtask bench {}` at {}; {} events, {} alternating rounds, medians. A fresh tansu 0.6.0 broker (memory storage) for each run, one topic of 3 partitions; each run's delivered count read back from the topic. kcat is Debian's kcat 1.7.1 running librdkafka 2.12.0 (from the confluent-kafka wheel); raw-rdkafka is `tests/support/bin/raw_producer.rs`: the `rdkafka` crate alone (`ThreadedProducer`, `BaseRecord`) with Ferry's librdkafka settings and no events, codecs or buffers.\n\n{table}\n![events/s and CPU per million events per contender](benchmarks.png)\n\n`cargo xtask bench chart` redraws the picture from this table.",
        args.join(" "),
        provenance(),
        options.events,
        options.rounds
    );
    Section {
        start: STDIN_SECTION.0,
        end: STDIN_SECTION.1,
        body,
    }
}

/// Replaces `section` in docs/benchmarks.md, or appends it the first time.
fn write_docs(section: Section) -> Result<()> {
    let path = root().join("docs/benchmarks.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let marked = format!("{}\n{}\n{}", section.start, section.body, section.end);
    let updated = match (doc.find(section.start), doc.find(section.end)) {
        (Some(start), Some(end)) if start < end => {
            format!("{}{}{}", &doc[..start], marked, &doc[end + section.end.len()..])
        }
        _ => format!("{}\n\n{marked}\n", doc.trim_end()),
    };
    std::fs::write(&path, updated).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `cargo xtask bench backlog [--events N]`: peak RSS of ferry while it fills a disk buffer
/// with a large backlog (the broker is unreachable), and while it reopens that backlog.
fn backlog(args: &[&str]) -> Result<()> {
    let events: u64 = match args {
        [] => 4_500_000,
        ["--events", n] => n.parse().context("--events takes a number")?,
        _ => bail!("usage: cargo xtask bench backlog [--events N]"),
    };
    build_binaries()?;
    let dir = root().join("target/bench/backlog");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let ferry = bin("ferry").display().to_string();
    // Nothing listens on this port: every event stays in the buffer.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let sink = format!(
        "[sinks.kafka]\ntype = \"kafka\"\ninputs = [\"in\"]\nbootstrap_servers = \"127.0.0.1:{dead}\"\ntopic = \"t\"\nhealthcheck = false\nencoding.codec = \"json\"\nbuffer.type = \"disk\"\nbuffer.max_size = 4294967296\n"
    );
    let fill = dir.join("fill.toml");
    std::fs::write(
        &fill,
        format!(
            "data_dir = \"{}\"\n[sources.in]\ntype = \"demo\"\nrate = 0\ncount = {events}\nseed = 7\n{sink}",
            dir.display()
        ),
    )?;
    let reopen = dir.join("reopen.toml");
    std::fs::write(
        &reopen,
        format!(
            "data_dir = \"{}\"\n[sources.in]\ntype = \"stdin\"\n{sink}",
            dir.display()
        ),
    )?;
    let empty = dir.join("empty-input");
    std::fs::write(&empty, b"")?;
    let argv = |config: &Path, timeout: &str| {
        vec![
            ferry.clone(),
            "-q".into(),
            "--summary-interval".into(),
            "0".into(),
            "--shutdown-timeout".into(),
            timeout.into(),
            "--config".into(),
            config.display().to_string(),
        ]
    };
    step(&format!(
        "filling a disk buffer with {events} demo events (broker unreachable)"
    ));
    let filled = measure(&argv(&fill, "1"), &[], &empty, std::process::id())?;
    let size = dir_size(&dir.join("buffers"));
    step("reopening the backlog (for 5 s)");
    let reopened = measure(&argv(&reopen, "5"), &[], &empty, std::process::id())?;
    let table = format!(
        "| phase | events | buffer on disk | wall s | peak RSS MiB |\n|---|---|---|---|---|\n| fill | {events} | {:.0} MiB | {:.1} | {:.1} |\n| reopen | {events} | {:.0} MiB | {:.1} | {:.1} |\n",
        size as f64 / 1048576.0,
        filled.wall,
        filled.peak_rss_kib as f64 / 1024.0,
        size as f64 / 1048576.0,
        reopened.wall,
        reopened.peak_rss_kib as f64 / 1024.0,
    );
    println!("\n{table}");
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
