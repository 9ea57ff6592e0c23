use std::process::Command;

use anyhow::{Context, Result};
use ferry_tansu::{Broker, Storage};

use crate::setup;
use crate::util::{cargo, root, run_command, step};

/// Starts a broker, runs ferry on `examples/demo.toml`, and shows the result.
pub fn run() -> Result<()> {
    let tools = setup::install()?;
    step("building ferry");
    cargo(&["build", "--package", "ferry"], &[])?;
    step("starting a local tansu broker");
    let broker = Broker::start(&tools.tansu, Storage::Memory)?;
    println!("broker listening on {}", broker.bootstrap_servers());
    step("running: ferry --config examples/demo.toml (1,000 generated log events)");
    let ferry = root().join("target/debug/ferry");
    let config = root().join("examples/demo.toml");
    run_command(
        Command::new(&ferry)
            .arg("--config")
            .arg(&config)
            .env("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers()),
    )
    .context("ferry did not finish cleanly")?;
    step("done");
    Ok(())
}
