use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Prints a visible step header.
pub fn step(what: &str) {
    eprintln!("\n==> {what}");
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    // `cargo run` sets CARGO_MANIFEST_DIR for the running binary too; prefer it over the path
    // baked in at compile time, which names whichever checkout built the binary last when two
    // checkouts share one target directory (then a bench would build and run the other one).
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set (a relative one is taken from the
/// workspace root, where [`cargo`] runs), else `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root().join(dir),
        _ => root().join("target"),
    }
}

/// Runs cargo from the workspace root with extra environment variables.
pub fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args).current_dir(root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_command(&mut cmd)
}

/// Runs a command, failing with its name when it fails.
pub fn run_command(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// Whether a program is on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}
