//! `cargo xtask TASK`: Ferry's development tasks, in plain Rust so nothing hides in shell
//! snippets.
//!
//! - `setup`: installs what the tests need and skips what is there (Debian packages, the
//!   tansu broker cached under `~/.cache/ferry`).
//! - `broker` / `broker stop`: a local tansu broker on 127.0.0.1:9092 (memory storage).
//! - `demo`: the main job end to end: broker, ferry streaming demo logs, records read back.
//! - `test`: everything CI runs: setup, lint, and every test of the workspace.
//! - `lint`: `cargo fmt --check` and clippy with `-D warnings`.
//! - `bench`: Ferry side by side with kcat and a raw librdkafka producer; with `--input file`,
//!   Ferry's file source side by side with rsyslog's imfile.
//! - `dist`: the release tarball (stripped binary, service files, docs, license) and its
//!   checksum.
//! - `reliability`: the fault scenarios of `tests/reliability.rs`, one ledger line each.
//! - `fuzz`: the libFuzzer targets of `fuzz/` (nightly), a set time each.
//! - `new-sink` / `new-source`: a new component crate, linked into the runner.

mod bench;
mod broker;
mod chart;
mod demo;
mod dist;
mod fuzz;
mod scaffold;
mod setup;
mod util;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  setup         install the Debian packages and the tansu broker the tests need (idempotent)
  broker        start a local tansu broker on 127.0.0.1:9092 (FERRY_BROKER_PORT to change)
  broker stop   stop it
  demo          start the broker, stream demo logs through ferry into Kafka, read them back
  test          setup + lint + every test (what CI runs)
  bench         ferry vs kcat vs a raw rdkafka producer; prints a table, writes docs/benchmarks.md
                (--events N, --rounds N, --only a,b, --peer NAME='CMD {topic} {brokers}',
                --broker-latency MS (through a proxy delaying each direction), --no-docs);
                --input file [--files 1,100,1000]: the lines in files, ferry's file source vs
                rsyslog imfile; `cargo xtask bench --help` for every option
  dist          build the release tarball target/dist/ferry-VERSION-TARGET.tar.gz (stripped
                binary, ferry.toml, ferry.service, README, LICENSE, docs) and its .sha256
  lint          cargo fmt --check and cargo clippy -D warnings
  reliability   the fault scenarios alone, one ledger line each (sent, delivered, lost,
                duplicated, out of order per key)
  fuzz          run the fuzz targets (config_loader, template, json_line, disk_record) for
                --seconds N each (default 60) on the nightly toolchain, installing cargo-fuzz
                if missing; `cargo xtask fuzz --help` for details. Not part of `test`, which
                replays the saved corpus in fuzz/corpus/ on stable instead
  new-sink NAME     generate crates/ferry-sink-NAME (builds and passes its tests as generated)
                    and link it into the runner with one dependency line (--root DIR)
  new-source NAME   the same for a source";

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["setup"] => setup::install().map(|_| ()),
        ["broker"] | ["broker", "start"] => {
            let tools = setup::install()?;
            broker::start_background(&tools.tansu)
        }
        ["broker", "stop"] => broker::stop_background(),
        ["demo"] => demo::run(),
        ["dist", rest @ ..] => dist::run(rest),
        ["bench", rest @ ..] => bench::run(rest),
        ["test"] => test(),
        ["reliability"] => reliability(),
        ["fuzz", rest @ ..] => fuzz::run(rest),
        ["lint"] => lint(),
        ["new-sink", rest @ ..] => scaffold::run(scaffold::Kind::Sink, rest),
        ["new-source", rest @ ..] => scaffold::run(scaffold::Kind::Source, rest),
        [] | ["help"] | ["--help"] | ["-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task `{}`\n\n{USAGE}", other.join(" ")),
    }
}

fn lint() -> Result<()> {
    util::step("cargo fmt --check");
    util::cargo(&["fmt", "--all", "--", "--check"], &[])?;
    util::step("cargo clippy -D warnings");
    util::cargo(
        &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
        &[],
    )
}

/// The reliability suite alone, its ledger lines shown.
fn reliability() -> Result<()> {
    let tools = setup::install()?;
    let tansu = tools.tansu.to_string_lossy().into_owned();
    util::step("cargo test --test reliability (one scenario at a time)");
    util::cargo(
        &[
            "test",
            "--test",
            "reliability",
            "--",
            "--nocapture",
            "--test-threads",
            "1",
        ],
        &[("FERRY_TANSU", tansu.as_str())],
    )
}

fn test() -> Result<()> {
    let tools = setup::install()?;
    lint()?;
    util::step("cargo build --workspace --bins (the binaries the end-to-end tests run)");
    util::cargo(&["build", "--workspace", "--bins"], &[])?;
    util::step("cargo test --workspace");
    let tansu = tools.tansu.to_string_lossy().into_owned();
    util::cargo(
        &["test", "--workspace", "--no-fail-fast"],
        &[("FERRY_TANSU", tansu.as_str())],
    )?;
    util::step("all checks passed");
    Ok(())
}
