//! `ferry dead-letter list|show|replay`: what sinks could never deliver, and sending it again.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use ferry_core::ReplayRequest;

use crate::cli::{DeadLetterArgs, DeadLetterReplayArgs, DeadLetterShowArgs};

/// The dead-letter directories `args` names, as (sink, directory), and where they were
/// looked for.
fn dead_letter_dirs(args: &DeadLetterArgs) -> anyhow::Result<(PathBuf, Vec<(String, PathBuf)>)> {
    if let Some(dir) = &args.dir {
        let sink = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        return Ok((dir.clone(), vec![(sink, dir.clone())]));
    }
    let data_dir = ferry_config::resolve_data_dir(args.data_dir.as_deref())?;
    let root = ferry_dead_letter::root_dir(&data_dir);
    let dirs = ferry_dead_letter::sink_dirs(&root)?;
    Ok((root, dirs))
}

/// `ferry dead-letter list`.
pub(crate) fn list(args: DeadLetterArgs) -> anyhow::Result<ExitCode> {
    let (root, dirs) = dead_letter_dirs(&args)?;
    let mut summaries = Vec::new();
    for (sink, dir) in dirs {
        let summary = ferry_dead_letter::summarize(&dir).with_context(|| format!("sink `{sink}`"))?;
        if summary.files > 0 {
            summaries.push((sink, summary));
        }
    }
    if summaries.is_empty() {
        println!("no dead letters under {}", root.display());
        return Ok(ExitCode::SUCCESS);
    }
    for (sink, s) in summaries {
        let mut line = format!(
            "sink `{sink}`: {}, {}, {}",
            plural(s.files as u64, "file"),
            plural(s.letters, "letter"),
            human_bytes(s.bytes)
        );
        if let (Some(oldest), Some(newest)) = (s.oldest, s.newest) {
            const SECONDS: &str = "%Y-%m-%dT%H:%M:%SZ";
            line += &format!(", {} .. {}", oldest.format(SECONDS), newest.format(SECONDS));
        }
        let mut reasons: Vec<_> = s.reasons.iter().collect();
        // Most frequent first: the reason to fix first.
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        if !reasons.is_empty() {
            let reasons: Vec<_> = reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
            line += &format!("; {}", reasons.join(", "));
        }
        println!("{line}");
        const SHOWN: usize = 10;
        for (file, e) in s.unreadable.iter().take(SHOWN) {
            println!("  unreadable: {} {e}", file.display());
        }
        if s.unreadable.len() > SHOWN {
            println!("  ... and {} more unreadable lines", s.unreadable.len() - SHOWN);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry dead-letter show`.
pub(crate) fn show(args: DeadLetterShowArgs) -> anyhow::Result<ExitCode> {
    let (place, dirs) = match &args.sink {
        Some(sink) => {
            let data_dir = ferry_config::resolve_data_dir(args.location.data_dir.as_deref())?;
            let dir = ferry_dead_letter::default_dir(&data_dir, sink);
            (dir.clone(), vec![(sink.clone(), dir)])
        }
        None => dead_letter_dirs(&args.location)?,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut left = args.limit.unwrap_or(usize::MAX);
    let mut shown = false;
    'sinks: for (sink, dir) in &dirs {
        let files = ferry_dead_letter::list_files(dir).with_context(|| format!("sink `{sink}`"))?;
        for file in files {
            if left == 0 {
                break 'sinks;
            }
            let letters =
                ferry_dead_letter::read_file(&file.path).with_context(|| format!("sink `{sink}`"))?;
            for letter in letters {
                match letter {
                    Ok(letter) => {
                        if left == 0 {
                            break 'sinks;
                        }
                        left -= 1;
                        shown = true;
                        if let Err(e) = out.write_all(&letter.to_json_line()) {
                            return stdout_closed(e);
                        }
                    }
                    Err(e) => eprintln!("ferry: {} {e}: unreadable, skipped", file.path.display()),
                }
            }
        }
    }
    if let Err(e) = out.flush() {
        return stdout_closed(e);
    }
    if !shown {
        eprintln!("ferry: no dead letters under {}", place.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// A reader that stopped reading (`ferry dead-letter show | head`) is not a failure.
fn stdout_closed(e: std::io::Error) -> anyhow::Result<ExitCode> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(e).context("cannot write to standard output")
    }
}

fn plural(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Bytes for people: `512 bytes`, `45 KiB`, `1.5 MiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return plural(bytes, "byte");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// `ferry dead-letter replay`: every sink of the configuration (or `--sink`) sends its
/// letters again.
pub(crate) fn replay(args: DeadLetterReplayArgs) -> anyhow::Result<ExitCode> {
    let Some(config) = crate::commands::load(&args.config)? else {
        return Ok(ExitCode::FAILURE);
    };
    let data_dir = ferry_config::resolve_data_dir(config.data_dir.as_deref())?;
    let sinks: Vec<_> = config
        .sinks
        .iter()
        .filter(|s| args.sink.as_ref().is_none_or(|id| &s.id == id))
        .collect();
    if sinks.is_empty() {
        anyhow::bail!(
            "no sink `{}` in the configuration",
            args.sink.as_deref().unwrap_or_default()
        );
    }
    let mut failed = false;
    for sink in sinks {
        let request = ReplayRequest {
            id: sink.id.clone(),
            data_dir: data_dir.clone(),
            destination: args.topic.clone(),
        };
        match sink.config.replay_dead_letters(&request) {
            Ok(report) => {
                println!(
                    "sink `{}`: {} letters, {} delivered and removed, {} failed again{}{}",
                    sink.id,
                    report.letters,
                    report.delivered,
                    report.failed,
                    report
                        .first_failure
                        .as_ref()
                        .map(|c| format!(" (first cause: {c})"))
                        .unwrap_or_default(),
                    if report.unreadable > 0 {
                        format!(", {} unreadable lines left in place", report.unreadable)
                    } else {
                        String::new()
                    }
                );
                failed |= report.failed > 0;
            }
            Err(e) if args.sink.is_none() && e.to_string().contains("keeps no dead letters") => {}
            Err(e) => {
                eprintln!("ferry: sink `{}`: replay failed: {e}", sink.id);
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
