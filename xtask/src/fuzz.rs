//! `cargo xtask fuzz`: runs the libFuzzer targets in `fuzz/` for a set time each.
//!
//! Each target (`fuzz/fuzz_targets/NAME.rs`) wraps a check of `crates/ferry-fuzz-checks`. The
//! run starts from the committed seeds in `fuzz/corpus/NAME/` but writes what it discovers to
//! a scratch corpus under the target directory (`fuzz/corpus/NAME/` there), so the repository
//! changes only when someone copies an input in on purpose. Fuzzing needs the nightly
//! toolchain and cargo-fuzz; it is not part of `cargo xtask test` (CI replays the saved
//! corpus on stable instead, through the `replay` test of `ferry-fuzz-checks`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::util::{on_path, root, run_command, step, target_dir};

pub const USAGE: &str = "\
usage: cargo xtask fuzz [--seconds N] [TARGET...]

Runs each fuzz target for N seconds (default 60), all of them unless TARGETs are named:
config_loader, template, json_line, disk_record. Needs the nightly toolchain; installs
cargo-fuzz when it is missing. Starts from the committed seeds in fuzz/corpus/TARGET/ and
keeps what it finds in TARGET_DIR/fuzz/corpus/TARGET/ (TARGET_DIR: CARGO_TARGET_DIR or
target/). Prints executions per target and the path of any crashing input, and exits 1 when
a target crashed. Reproduce a crash with `cargo +nightly fuzz run TARGET PATH`; keep it as a
regression by copying it into fuzz/corpus/TARGET/ (the stable test suite replays that folder).";

/// libFuzzer's options for every run: a malloc larger than this is reported as a crash (a
/// decoder must not trust a length it read), as is one input taking longer than the timeout.
const LIBFUZZER_OPTIONS: &[&str] = &[
    "-malloc_limit_mb=256",
    "-rss_limit_mb=2048",
    "-timeout=10",
    "-print_final_stats=1",
];

struct Options {
    seconds: u64,
    targets: Vec<String>,
}

/// What one target's run gave.
struct Outcome {
    target: String,
    executions: Option<u64>,
    per_second: Option<u64>,
    corpus: usize,
    crash: Option<String>,
    log: PathBuf,
}

pub fn run(args: &[&str]) -> Result<()> {
    if matches!(args, ["--help"] | ["-h"] | ["help"]) {
        println!("{USAGE}");
        return Ok(());
    }
    let known = known_targets()?;
    let options = parse(args, &known)?;
    require_nightly()?;
    ensure_cargo_fuzz()?;

    let fuzz_target_dir = target_dir().join("fuzz");
    let fuzz_target_arg = fuzz_target_dir.to_string_lossy().into_owned();
    step("cargo +nightly fuzz build (every target, address sanitizer)");
    run_command(
        Command::new("cargo")
            .args(["+nightly", "fuzz", "build", "--target-dir", &fuzz_target_arg])
            .current_dir(root()),
    )?;

    let mut outcomes = Vec::new();
    for target in &options.targets {
        step(&format!("fuzzing {target} for {} s", options.seconds));
        outcomes.push(fuzz_one(target, options.seconds, &fuzz_target_dir)?);
    }

    step("fuzzing summary");
    println!(
        "{:<16} {:>12} {:>10} {:>8}  result",
        "target", "executions", "per s", "corpus"
    );
    let show = |n: Option<u64>| n.map_or("?".to_owned(), |n| n.to_string());
    for o in &outcomes {
        let result = match &o.crash {
            Some(path) => format!("CRASH: {path}"),
            None => "ok".to_owned(),
        };
        println!(
            "{:<16} {:>12} {:>10} {:>8}  {result}",
            o.target,
            show(o.executions),
            show(o.per_second),
            o.corpus
        );
    }
    let crashed: Vec<&Outcome> = outcomes.iter().filter(|o| o.crash.is_some()).collect();
    if !crashed.is_empty() {
        for o in &crashed {
            eprintln!("{}: libFuzzer's output is in {}", o.target, o.log.display());
        }
        bail!(
            "{} of {} targets crashed; reproduce with `cargo +nightly fuzz run TARGET PATH`",
            crashed.len(),
            outcomes.len()
        );
    }
    Ok(())
}

fn parse(args: &[&str], known: &[String]) -> Result<Options> {
    let mut options = Options {
        seconds: 60,
        targets: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(&arg) = args.next() {
        match arg {
            "--seconds" => {
                let value = args.next().context("--seconds needs a number")?;
                options.seconds = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .with_context(|| format!("--seconds {value}: expected a whole number above 0"))?;
            }
            name if known.iter().any(|k| k == name) => options.targets.push(name.to_owned()),
            other => bail!(
                "unknown fuzz target or option `{other}` (targets: {})\n\n{USAGE}",
                known.join(", ")
            ),
        }
    }
    if options.targets.is_empty() {
        options.targets = known.to_vec();
    }
    Ok(options)
}

/// The targets, from the files in `fuzz/fuzz_targets/`, in the order the checks crate lists
/// them when it does (the rest after, by name).
fn known_targets() -> Result<Vec<String>> {
    const ORDER: &[&str] = &["config_loader", "template", "json_line", "disk_record"];
    let dir = root().join("fuzz/fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort_by_key(|name| {
        (
            ORDER.iter().position(|o| o == name).unwrap_or(ORDER.len()),
            name.clone(),
        )
    });
    Ok(names)
}

fn require_nightly() -> Result<()> {
    let works = Command::new("rustup")
        .args(["run", "nightly", "rustc", "-V"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        bail!(
            "fuzzing needs the nightly toolchain (libFuzzer's instrumentation is nightly-only): \
             install it with `rustup toolchain install nightly`"
        );
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> Result<()> {
    if on_path("cargo-fuzz") {
        return Ok(());
    }
    step("cargo-fuzz is not installed: cargo +nightly install cargo-fuzz --locked (a few minutes, once)");
    run_command(Command::new("cargo").args(["+nightly", "install", "cargo-fuzz", "--locked"]))
        .context("installing cargo-fuzz failed; install it by hand and run again")
}

fn fuzz_one(target: &str, seconds: u64, fuzz_target_dir: &Path) -> Result<Outcome> {
    let scratch = fuzz_target_dir.join("corpus").join(target);
    std::fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    let seeds = root().join("fuzz/corpus").join(target);
    let logs = fuzz_target_dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = logs.join(format!("{target}.log"));
    let log_file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;

    let max_time = format!("-max_total_time={seconds}");
    let mut cmd = Command::new("cargo");
    cmd.args(["+nightly", "fuzz", "run", target, "--target-dir"])
        .arg(fuzz_target_dir)
        // The first corpus folder is where libFuzzer writes: the scratch one, not the seeds.
        .arg(&scratch)
        .arg(&seeds)
        .arg("--")
        .arg(&max_time)
        .args(LIBFUZZER_OPTIONS)
        .current_dir(root())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    let output = std::fs::read_to_string(&log).unwrap_or_default();

    let stat = |name: &str| {
        output
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok())
    };
    let crash = output
        .lines()
        .find_map(|line| Some(line.split_once("Test unit written to ")?.1.trim().to_owned()));
    let crash = match (status.success(), crash) {
        (true, _) => None,
        (false, Some(path)) => Some(path),
        (false, None) => Some(format!("no input saved ({status}); see {}", log.display())),
    };
    if crash.is_some() {
        // The report and the stack of the crash end libFuzzer's output.
        let tail: Vec<&str> = output.lines().rev().take(40).collect();
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
    } else if let Some(done) = output.lines().rev().find(|line| line.starts_with("Done ")) {
        eprintln!("  {done}");
    }
    Ok(Outcome {
        target: target.to_owned(),
        executions: stat("stat::number_of_executed_units:"),
        per_second: stat("stat::average_exec_per_sec:"),
        corpus: std::fs::read_dir(&scratch).map_or(0, |d| d.count()),
        crash,
        log,
    })
}
