use std::process::Command;

use anyhow::{Context, Result};
use ferry_tansu::{Broker, Storage};

use crate::setup;
use crate::util::{cargo, root, run_command, step};

const TOPICS: &[&str] = &["ferry-demo-info", "ferry-demo-warn", "ferry-demo-error"];

/// Starts a broker, runs ferry on `examples/demo.toml`, and reads the topics back.
pub fn run() -> Result<()> {
    let tools = setup::install()?;
    step("building ferry");
    cargo(
        &["build", "--package", "ferry", "--package", "ferry-e2e", "--bins"],
        &[],
    )?;
    step("starting a local tansu broker (memory storage)");
    let broker = Broker::start(&tools.tansu, Storage::Memory)?;
    let bootstrap = broker.bootstrap_servers();
    for topic in TOPICS {
        broker.create_topic(topic, 3)?;
    }
    println!("broker on {bootstrap}, topics: {}", TOPICS.join(", "));
    step("ferry --config examples/demo.toml: 10,000 generated log events into Kafka");
    let bin = root().join("target/debug");
    run_command(
        Command::new(bin.join("ferry"))
            .arg("--config")
            .arg(root().join("examples/demo.toml"))
            .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap),
    )
    .context("ferry did not finish cleanly")?;
    step("reading the topics back");
    for topic in TOPICS {
        run_command(Command::new(bin.join("kafka-read")).args([bootstrap.as_str(), topic, "3"]))?;
    }
    step("done: every event was confirmed by the broker (see ferry's final summary above)");
    Ok(())
}
