use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  ferry --config ferry.toml                     run the pipeline until end of input or Ctrl-C
  ferry --config base.toml --config kafka.toml  several files form one configuration
  ferry validate --config ferry.toml            check a configuration (and reach the sinks)
  ferry list                                    show every source and sink type built in
  ferry dead-letter list                        records sinks could never deliver, per sink
  RUST_LOG=ferry=debug ferry -c ferry.toml      more detail from one area

A minimal configuration:
  [sources.in]
  type = \"stdin\"

  [sinks.out]
  type = \"console\"
  inputs = [\"in\"]
  encoding.codec = \"json\"

Environment variables are substituted before parsing: ${VAR}, $VAR, ${VAR:-default}, $$.
Signals: SIGTERM/SIGINT stop reading, drain and exit (a second one exits at once); SIGHUP
reloads the configuration files (a file that does not load is logged and ignored).
Exit status: 0 done, 1 configuration, health or delivery failure, 2 usage, 130 second signal.";

/// Ferry ships log events from sources (stdin, demo) through per-sink buffers into sinks
/// (Kafka, console) with at-least-once delivery.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub logging: LogArgs,
}

impl Cli {
    /// Parses the command line, exiting with clap's message on an error or for `--help`.
    /// `--version` also names the librdkafka built in: it decides the Kafka features and fixes
    /// an operator has.
    pub fn parse_args() -> Self {
        let version = format!(
            "{} (librdkafka {})",
            env!("CARGO_PKG_VERSION"),
            ferry_sink_kafka::librdkafka_version()
        );
        // clap keeps a version string for the life of the program; this one is made once.
        let version: &'static str = Box::leak(version.into_boxed_str());
        let matches = Cli::command().version(version).get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a configuration: parse it, build every component and run the sinks' health
    /// checks; prints every problem found and exits 0 (valid) or 1.
    Validate(ValidateArgs),
    /// Inspect or verify disk buffers. Run it while ferry is stopped: a running ferry holds
    /// its buffers' locks.
    Buffer {
        #[command(subcommand)]
        action: BufferCommand,
    },
    /// Inspect dead letters: records a sink could never deliver, kept on disk.
    ///
    /// A record becomes a dead letter when its sink can never deliver it: the topic name is
    /// invalid or could not be rendered, the record is larger than the broker accepts, the
    /// topic stayed missing past its grace, writing was denied, or it was still unconfirmed at
    /// the shutdown deadline. Before its source is told the record was rejected, ferry appends
    /// it (payload, key and headers byte for byte, plus time, sink, topic, reason and cause) as
    /// one JSON line to `<data_dir>/dead_letters/<sink id>/dead-letters-NNNNNN.jsonl`, so
    /// nothing is dropped without a record.
    ///
    /// `list` and `show` only read, and are safe while ferry runs (the last line of a file
    /// being written may then show as unreadable). Once the cause is fixed (topic created,
    /// size limit raised), `ferry dead-letter replay` sends the letters again.
    #[command(name = "dead-letter", after_help = DEAD_LETTER_EXAMPLES)]
    DeadLetter {
        #[command(subcommand)]
        action: DeadLetterCommand,
    },
    /// List every registered source and sink type with a one-line description.
    List {
        /// Also print each component's example configuration.
        #[arg(long)]
        examples: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BufferCommand {
    /// Per sink: records, events, bytes, size on disk, and the oldest event's time.
    Inspect(BufferArgs),
    /// Read every record and verify its checksum; exit 1 if any is corrupt.
    Check(BufferArgs),
}

#[derive(Debug, Args)]
pub struct BufferArgs {
    /// The data directory (the configuration's `data_dir`); its `buffers/` holds one
    /// directory per disk-buffered sink. Default: the same default ferry uses.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

const DEAD_LETTER_EXAMPLES: &str = "\
Examples:
  ferry dead-letter list                                   per sink: letters, time range, reasons
  ferry dead-letter show --sink kafka --limit 10           the ten oldest letters of sink `kafka`
  ferry dead-letter show | jq -r .reason | sort | uniq -c  letters per reason, across sinks
  ferry dead-letter list --dir /srv/dead/kafka             a sink configured with `dead_letter.path`
  ferry dead-letter replay --config ferry.toml             send them again once the cause is fixed
  ferry dead-letter replay -c ferry.toml --sink kafka --topic quarantine   all of one sink's, elsewhere";

#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// Per sink: files, letters, bytes, oldest and newest letter, letters per reason, and any
    /// unreadable lines (such as the torn last line of a crash).
    List(DeadLetterArgs),
    /// Print the letters as stored, one JSON line each, oldest first (sink by sink).
    ///
    /// Fields: time, sink, topic, reason, cause, key (or key_base64 when not UTF-8), payload
    /// (or payload_base64), headers, timestamp_ms. Unreadable lines are reported on standard
    /// error.
    Show(DeadLetterShowArgs),
    /// Send the letters again, once their cause is fixed; run it while ferry is stopped.
    ///
    /// For every sink of the configuration (or only `--sink`), each letter is sent again to
    /// its topic (or to `--topic`) with its key, headers and timestamp. A file is removed once
    /// every letter in it was confirmed; letters that fail again stay, and the first cause is
    /// printed. Exit status 1 if any letter failed.
    Replay(DeadLetterReplayArgs),
}

#[derive(Debug, Args)]
pub struct DeadLetterReplayArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Only this sink's letters (the ID of its `[sinks.ID]` table).
    #[arg(long, value_name = "ID")]
    pub sink: Option<String>,

    /// Send every letter to this topic instead of its own.
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeadLetterArgs {
    /// The data directory (the configuration's `data_dir`); its `dead_letters/` holds one
    /// directory per sink. Default: the same default ferry uses.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// One sink's dead-letter directory, for a sink whose `dead_letter.path` points elsewhere;
    /// used instead of the data directory.
    #[arg(long, value_name = "DIR", conflicts_with = "data_dir")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DeadLetterShowArgs {
    #[command(flatten)]
    pub location: DeadLetterArgs,

    /// Only this sink's letters (the ID of its `[sinks.ID]` table).
    #[arg(long, value_name = "ID", conflicts_with = "dir")]
    pub sink: Option<String>,

    /// Print at most N letters.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Configuration file (TOML); repeat to combine several files into one configuration.
    #[arg(
        short,
        long = "config",
        value_name = "FILE",
        env = "FERRY_CONFIG",
        value_delimiter = ','
    )]
    pub config: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Exit with status 1 before reading any input if a sink's health check fails.
    #[arg(long)]
    pub require_healthy: bool,

    /// Seconds to drain buffers and flush sinks after end of input or a signal; events still
    /// unconfirmed then are reported and the exit status is 1.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub shutdown_timeout: f64,

    /// Seconds between summary lines (per sink: received, delivered, retried, rejected,
    /// dropped, buffered); 0 logs only the final one at exit.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub summary_interval: f64,

    /// Seconds each sink's health check may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub healthcheck_timeout: f64,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Skip the health checks: check only the files and that every component builds.
    #[arg(long)]
    pub no_healthchecks: bool,

    /// Seconds each sink's health check may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub healthcheck_timeout: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// More log detail (-v debug, -vv trace). RUST_LOG, when set, takes precedence.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Less log detail (-q warnings and errors, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,

    /// Format of the log lines (written to standard error).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}
