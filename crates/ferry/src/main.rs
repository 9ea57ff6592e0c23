//! The `ferry` runner: parses flags, sets up logging, loads the configuration and hands it to
//! the topology. Everything else lives in the library crates.

mod cli;
mod commands;
mod logging;

include!(concat!(env!("OUT_DIR"), "/components.rs"));

// Every event costs a few small allocations (its field table, librdkafka's message); glibc's
// malloc was a fifth of the instructions per event in a callgrind profile, mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Err(e) = logging::init(&cli.logging) {
        eprintln!("ferry: cannot set up logging: {e}");
        return ExitCode::from(2);
    }
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            // One readable line (plus its causes), never a panic or a backtrace.
            eprintln!("ferry: {e:#}");
            ExitCode::FAILURE
        }
    }
}
