//! The `ferry` runner: parses flags, sets up logging, loads the configuration and hands it to
//! the topology. Everything else lives in the library crates.

mod cli;
mod commands;
mod dead_letters;
mod logging;
mod registered_examples;

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
/// json run went from ~42 to 56-70 MiB. Purging sooner costs page faults when the memory is
/// wanted again (a disk-buffer run: 17 k faults at 1 s, 31-38 k at 100 ms, 54 k at 50 ms, and
/// its CPU time with them); 100 ms keeps the memory run at 43-46 MiB.
/// An operator's own purge delay wins: mimalloc reads `MIMALLOC_PURGE_DELAY` (or its older
/// name `MIMALLOC_RESET_DELAY`) in any letter case.
fn tune_allocator() {
    let set_by_operator = std::env::vars_os().any(|(name, _)| {
        name.to_str().is_some_and(|name| {
            name.eq_ignore_ascii_case("MIMALLOC_PURGE_DELAY")
                || name.eq_ignore_ascii_case("MIMALLOC_RESET_DELAY")
        })
    });
    if !set_by_operator {
        // SAFETY: sets an option mimalloc reads whenever it purges; allowed at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 100) }
    }
}

use std::process::ExitCode;

fn main() -> ExitCode {
    tune_allocator();
    let cli = cli::Cli::parse_args();
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
