use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use ferry_tansu::{Broker, Storage};

use crate::util::{root, step};

/// The port of the background broker (`FERRY_BROKER_PORT`, default 9092).
fn port() -> Result<u16> {
    match std::env::var("FERRY_BROKER_PORT") {
        Ok(p) => p
            .parse()
            .with_context(|| format!("FERRY_BROKER_PORT={p} is not a port")),
        Err(_) => Ok(9092),
    }
}

fn pid_file() -> PathBuf {
    root().join("target/ferry-broker.pid")
}

/// Starts a broker that outlives this command, for trying ferry by hand.
pub fn start_background(tansu: &Path) -> Result<()> {
    let port = port()?;
    step(&format!("starting tansu on 127.0.0.1:{port} (memory storage)"));
    let broker = Broker::start_on(tansu, Storage::Memory, port, false)?;
    let log = broker.log_file().display().to_string();
    let pid = broker.detach().context("the broker exited at once")?;
    std::fs::create_dir_all(root().join("target"))?;
    std::fs::write(pid_file(), pid.to_string())?;
    println!("broker running: bootstrap_servers = \"127.0.0.1:{port}\" (pid {pid}, log {log})");
    println!(
        "create a topic:  {} topic create logs --broker tcp://127.0.0.1:{port}",
        tansu.display()
    );
    println!("stop it:         cargo xtask broker stop");
    Ok(())
}

/// Stops the broker `start_background` started.
pub fn stop_background() -> Result<()> {
    let file = pid_file();
    let Ok(pid) = std::fs::read_to_string(&file) else {
        println!("no broker started by `cargo xtask broker` is running");
        return Ok(());
    };
    let _ = Command::new("kill").arg(pid.trim()).status();
    std::fs::remove_file(&file)?;
    println!("broker (pid {}) stopped", pid.trim());
    Ok(())
}
