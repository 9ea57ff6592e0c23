use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  ferry --config ferry.toml                     run the pipeline until end of input or Ctrl-C
  ferry --config base.toml --config kafka.toml  several files form one configuration
  ferry validate --config ferry.toml            check a configuration (and reach the sinks)
  ferry list                                    show every source and sink type built in
  RUST_LOG=ferry=debug ferry -c ferry.toml      more detail from one area

A minimal configuration:
  [sources.in]
  type = \"stdin\"

  [sinks.out]
  type = \"console\"
  inputs = [\"in\"]
  encoding.codec = \"json\"

Environment variables are substituted before parsing: ${VAR}, $VAR, ${VAR:-default}, $$.
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
