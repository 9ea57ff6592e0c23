//! The `ferry` runner: parses flags, sets up logging, loads the configuration and hands it to
//! the topology. Everything else lives in the library crates.

mod cli;
mod commands;
mod logging;

include!(concat!(env!("OUT_DIR"), "/components.rs"));

// Every event costs a few small allocations (its field table, librdkafka's message); glibc's
// malloc was a fifth of the instructions per event in a callgrind profile, mimalloc far less.
// mimalloc is built to replace `malloc` itself too (its `override` feature), so librdkafka's
// per-message allocations and frees use it as well: glibc's were ~5% of the instructions of a
// json -> json pipeline, and its trimming a good part of the system time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: entry 15 of mimalloc's `mi_option_e` (in mimalloc 2 and 3); the
/// Rust bindings have no name for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc returns freed memory to the system only after `purge_delay` (1 s by default in
/// mimalloc 3). Messages freed on librdkafka's thread then piled up: peak RSS of a 1 M-event
/// json run went from ~42 to 56-70 MiB. 50 ms keeps it near 40 MiB for a little system time
/// (0 ms: 33 MiB, but twice the system time).
fn tune_allocator() {
    // SAFETY: sets an option mimalloc reads whenever it purges; allowed at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 50) }
}

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tune_allocator();
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
