use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use ferry_config::Config;
use ferry_core::component::registered_components;
use ferry_topology::{RunOptions, RunOutcome, Signals};

use crate::cli::{
    BufferArgs, BufferCommand, Cli, Command, ConfigArgs, DeadLetterCommand, RunArgs, ValidateArgs,
};

/// Status for a second signal, as a shell reports death by SIGINT.
const EXIT_ABORTED: u8 = 130;

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::List { examples }) => {
            list(examples);
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Validate(args)) => validate(args),
        Some(Command::Buffer { action }) => match action {
            BufferCommand::Inspect(args) => buffers(args, false),
            BufferCommand::Check(args) => buffers(args, true),
        },
        Some(Command::DeadLetter { action }) => match action {
            DeadLetterCommand::List(args) => crate::dead_letters::list(args),
            DeadLetterCommand::Show(args) => crate::dead_letters::show(args),
            DeadLetterCommand::Replay(args) => crate::dead_letters::replay(args),
        },
        None => run(cli.run),
    }
}

/// `ferry buffer inspect|check`.
fn buffers(args: BufferArgs, verify: bool) -> anyhow::Result<ExitCode> {
    let data_dir = ferry_config::resolve_data_dir(args.data_dir.as_deref())?;
    let root = data_dir.join("buffers");
    let mut dirs: Vec<_> = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(_) => Vec::new(),
    };
    dirs.sort();
    if dirs.is_empty() {
        println!("no disk buffers under {}", root.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut corrupt = 0;
    for dir in dirs {
        let sink = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let report = ferry_buffers::inspect(&dir, verify).with_context(|| format!("sink `{sink}`"))?;
        println!(
            "sink `{sink}`: {} events, {} bytes in records, {} bytes on disk{}{}",
            report.events,
            report.bytes,
            report.size_on_disk,
            if verify {
                format!(", {} records", report.records)
            } else {
                String::new()
            },
            report
                .oldest
                .map(|t| format!(", oldest event {t}"))
                .unwrap_or_default()
        );
        for (sequence, why) in &report.corrupt {
            println!("  corrupt record at sequence {sequence}: {why}");
        }
        corrupt += report.corrupt.len();
    }
    if verify {
        if corrupt > 0 {
            println!("{corrupt} corrupt record(s): ferry skips and deletes them when it reads them");
            return Ok(ExitCode::FAILURE);
        }
        println!("every record's checksum is valid");
    }
    Ok(ExitCode::SUCCESS)
}

fn list(examples: bool) {
    let components = registered_components();
    let width = components.iter().map(|d| d.type_name.len()).max().unwrap_or(0);
    let mut kind = None;
    for d in components {
        if kind != Some(d.kind) {
            println!("{}:", d.kind.table());
            kind = Some(d.kind);
        }
        println!("  {:width$}  {}", d.type_name, d.description);
        if examples {
            for line in d.example.lines() {
                println!("      {line}");
            }
            println!();
        }
    }
}

/// Loads the configuration; on failure prints every problem and returns `None`.
pub(crate) fn load(args: &ConfigArgs) -> anyhow::Result<Option<Config>> {
    if args.config.is_empty() {
        bail!("no configuration given: pass --config FILE (see `ferry --help` for an example)");
    }
    match ferry_config::load_files(&args.config) {
        Ok(config) => Ok(Some(config)),
        Err(errors) => {
            eprintln!("{errors}");
            Ok(None)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferry-worker")
        .build()
        .context("cannot start the async runtime")
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("{flag} must be a number of seconds, 0 or more"))
}

fn build_or_report(config: &Config, buffers: ferry_topology::Buffers) -> Option<ferry_topology::Pipeline> {
    match ferry_topology::build_pipeline(config, buffers) {
        Ok(pipeline) => Some(pipeline),
        Err(errors) => {
            report_build_errors(config, errors);
            None
        }
    }
}

/// Builds a pipeline after a reload. What the previous one held (disk-buffer and checkpoint
/// locks, the API port) is let go as its last tasks end, which can trail the drain by a
/// moment: a build that fails is tried again for a few seconds before it counts as failed.
async fn rebuild(config: &Config) -> Result<ferry_topology::Pipeline, String> {
    let mut attempts = 0;
    loop {
        match ferry_topology::build_pipeline(config, ferry_topology::Buffers::Open) {
            Ok(pipeline) => return Ok(pipeline),
            Err(errors) if attempts >= REBUILD_ATTEMPTS => {
                return Err(errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "));
            }
            Err(_) => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Prints what stopped the pipeline from being built; an unusable `data_dir` is shown where
/// the configuration sets it, as a configuration error is.
fn report_build_errors(config: &Config, errors: Vec<ferry_topology::BuildError>) {
    for e in errors {
        match (&e, &config.data_dir_set_at) {
            (ferry_topology::BuildError::DataDir(_), Some((file, position))) => {
                let at = position
                    .map(|(line, column)| format!(":{line}:{column}"))
                    .unwrap_or_default();
                eprintln!("ferry: {}{at}: key `data_dir`: {e}", file.display());
            }
            (ferry_topology::BuildError::Capacity(_), _) => {
                // Shown at the first disk buffer's `max_size`; the message names them all.
                let first = config
                    .sinks
                    .iter()
                    .find(|s| s.config.buffer().kind == ferry_core::BufferType::Disk);
                match first {
                    Some(sink) => {
                        let at =
                            ferry_config::locate_key(&sink.file, &["sinks", &sink.id, "buffer", "max_size"])
                                .map(|(line, column)| format!(":{line}:{column}"))
                                .unwrap_or_default();
                        eprintln!(
                            "ferry: {}{at}: [sinks.{}] key `buffer.max_size`: {e}",
                            sink.file.display(),
                            sink.id
                        );
                    }
                    None => eprintln!("ferry: {e}"),
                }
            }
            _ => eprintln!("ferry: {e}"),
        }
    }
}

/// 25 tries, 200 ms apart: 5 s for the previous pipeline's last holders to let go.
const REBUILD_ATTEMPTS: u32 = 25;

fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let Some(config) = load(&args.config)? else {
        return Ok(ExitCode::FAILURE);
    };
    let timeout = seconds(args.healthcheck_timeout, "--healthcheck-timeout")?;
    let (n_sources, n_sinks) = (config.sources.len(), config.sinks.len());
    // Components may expect a runtime while they are built, even when they start nothing.
    let rt = runtime()?;
    let _guard = rt.enter();
    if args.no_healthchecks {
        // Without health checks nothing may reach the network: a Kafka client connects to
        // its brokers as soon as it is made, so the sinks are checked, not built.
        if let Err(errors) = ferry_topology::check_offline(&config) {
            report_build_errors(&config, errors);
            return Ok(ExitCode::FAILURE);
        }
    } else {
        let Some(mut pipeline) = build_or_report(&config, ferry_topology::Buffers::Skip) else {
            return Ok(ExitCode::FAILURE);
        };
        let failures = rt.block_on(ferry_topology::check_health(&mut pipeline, timeout));
        if !failures.is_empty() {
            for (sink, reason) in failures {
                eprintln!("ferry: sink `{sink}`: health check failed: {reason}");
            }
            return Ok(ExitCode::FAILURE);
        }
    }
    println!(
        "configuration is valid: {n_sources} source{}, {n_sinks} sink{}{}",
        if n_sources == 1 { "" } else { "s" },
        if n_sinks == 1 { "" } else { "s" },
        if args.no_healthchecks {
            " (health checks skipped)"
        } else {
            ", health checks passed"
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let Some(config) = load(&args.config)? else {
        return Ok(ExitCode::FAILURE);
    };
    let summary = seconds(args.summary_interval, "--summary-interval")?;
    let mut options = RunOptions {
        require_healthy: args.require_healthy,
        healthcheck_timeout: seconds(args.healthcheck_timeout, "--healthcheck-timeout")?,
        shutdown_timeout: seconds(args.shutdown_timeout, "--shutdown-timeout")?,
        summary_interval: (!summary.is_zero()).then_some(summary),
    };
    let rt = runtime()?;
    let outcome = rt.block_on(async {
        let mut signals = Signals::install().context("cannot install the SIGINT/SIGTERM/SIGHUP handlers")?;
        let Some(mut pipeline) = build_or_report(&config, ferry_topology::Buffers::Open) else {
            return Ok(None);
        };
        let mut running = config;
        loop {
            // SIGHUP loads the files again; only a configuration that loads is switched to.
            let mut next: Option<Config> = None;
            let mut check = || match ferry_config::load_files(&args.config.config) {
                Ok(config) => {
                    next = Some(config);
                    Ok(())
                }
                Err(errors) => Err(errors.to_string()),
            };
            let outcome = ferry_topology::run(pipeline, options.clone(), &mut signals, Some(&mut check)).await;
            let RunOutcome::Reload { unconfirmed } = outcome else {
                return anyhow::Ok(Some(outcome));
            };
            for (sink, events) in unconfirmed {
                tracing::error!(sink = %sink, events, "reload: these events were not confirmed by the shutdown deadline and went to dead letters");
            }
            // A reload never stops ferry for a broker that is away: the first start decided.
            options.require_healthy = false;
            let config = next.take().context("SIGHUP accepted a configuration that was not kept")?;
            pipeline = match rebuild(&config).await {
                Ok(pipeline) => {
                    tracing::info!(files = ?args.config.config, "reload: the new configuration is running");
                    running = config;
                    pipeline
                }
                Err(reason) => {
                    tracing::error!("reload: the new configuration could not start, the previous one starts again: {reason}");
                    match rebuild(&running).await {
                        Ok(pipeline) => pipeline,
                        Err(reason) => {
                            eprintln!("ferry: the previous configuration could not start again either: {reason}");
                            return Ok(None);
                        }
                    }
                }
            };
        }
    })?;
    // Sources blocked in reads (stdin) must not keep the process alive.
    rt.shutdown_timeout(Duration::from_millis(100));
    let code = match outcome {
        None => ExitCode::FAILURE,
        Some(RunOutcome::Completed) => ExitCode::SUCCESS,
        Some(RunOutcome::Unhealthy(failures)) => {
            for (sink, reason) in failures {
                eprintln!(
                    "ferry: sink `{sink}`: health check failed: {reason} (exiting because of --require-healthy)"
                );
            }
            ExitCode::FAILURE
        }
        Some(RunOutcome::Unfinished(sinks)) => {
            for (sink, events) in sinks {
                eprintln!(
                    "ferry: sink `{sink}`: {events} events were not confirmed by the shutdown deadline (see the log above for where they are)"
                );
            }
            ExitCode::FAILURE
        }
        Some(RunOutcome::SinkFailed(sinks)) => {
            for (sink, cause) in sinks {
                eprintln!("ferry: sink `{sink}` failed: {cause}");
            }
            ExitCode::FAILURE
        }
        Some(RunOutcome::Aborted) => ExitCode::from(EXIT_ABORTED),
        Some(RunOutcome::ApiFailed(cause)) => {
            eprintln!("ferry: {cause}");
            ExitCode::FAILURE
        }
        // The loop above runs every reload; none ends the process.
        Some(RunOutcome::Reload { .. }) => ExitCode::FAILURE,
    };
    Ok(code)
}
