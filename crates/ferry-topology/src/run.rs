use std::sync::Arc;
use std::time::Duration;

use ferry_buffers::BufferWriter;
use ferry_core::{DeliveryStatus, LogEvent, SinkMetrics};
use futures::future::join_all;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::build::Pipeline;
use crate::signals::Signals;
use crate::summary::log_summary;

/// How a run is conducted.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Stop before reading any input when a health check fails.
    pub require_healthy: bool,
    /// How long each health check may take.
    pub healthcheck_timeout: Duration,
    /// How long draining and flushing may take once shutdown began.
    pub shutdown_timeout: Duration,
    /// How often to log the summary lines; `None` logs only the final one.
    pub summary_interval: Option<Duration>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            require_healthy: false,
            healthcheck_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            summary_interval: Some(Duration::from_secs(10)),
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every source finished or was stopped and every sink flushed what it had.
    Completed,
    /// `require_healthy` was set and these sinks failed their checks: (ID, reason).
    Unhealthy(Vec<(String, String)>),
    /// The shutdown deadline passed with events unconfirmed: (sink ID, events still waiting or
    /// in flight).
    Unfinished(Vec<(String, u64)>),
    /// A sink stopped with an error: (sink ID, error).
    SinkFailed(Vec<(String, String)>),
    /// A second signal ended the run without waiting.
    Aborted,
}

/// Runs `pipeline` until end of input or a signal, then drains it (see the crate docs).
pub async fn run(mut pipeline: Pipeline, options: RunOptions, mut signals: Signals) -> RunOutcome {
    let failures = crate::build::check_health(&mut pipeline, options.healthcheck_timeout).await;
    if options.require_healthy && !failures.is_empty() {
        return RunOutcome::Unhealthy(failures);
    }

    let metrics: Vec<(String, Arc<SinkMetrics>)> = pipeline
        .sinks
        .iter()
        .map(|s| (s.id.clone(), s.metrics.clone()))
        .collect();
    let durable: Vec<bool> = pipeline.sinks.iter().map(|s| s.durable).collect();
    let mut writers: Vec<Option<BufferWriter>> = Vec::new();
    let mut sink_tasks = Vec::new();
    for sink in pipeline.sinks {
        let Some((writer, reader)) = sink.buffer else {
            tracing::error!(sink = %sink.id, "pipeline was built without buffers and cannot run");
            return RunOutcome::SinkFailed(vec![(sink.id, "no buffer".into())]);
        };
        writers.push(Some(writer));
        let id = sink.id.clone();
        sink_tasks.push((id, tokio::spawn(sink.runner.run(reader))));
    }
    let mut source_tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut fan_outs = Vec::new();
    for source in pipeline.sources {
        let targets: Vec<BufferWriter> = source
            .sinks
            .iter()
            .filter_map(|&i| writers.get(i).and_then(Clone::clone))
            .collect();
        fan_outs.push(tokio::spawn(fan_out(source.id.clone(), source.output, targets)));
        let id = source.id;
        let task = source.task;
        source_tasks.push(tokio::spawn(async move {
            if let Err(e) = task.await {
                tracing::error!(source = %id, "source stopped with an error: {e}");
            }
        }));
    }
    // Only the fan-outs hold writers now: when they end, the buffers close.
    drop(writers);

    let summary = options.summary_interval.map(|interval| {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                log_summary(&metrics, false);
            }
        })
    });

    let all_sources = join_all(source_tasks);
    tokio::pin!(all_sources);
    tokio::select! {
        _ = &mut all_sources => tracing::info!("end of input: draining buffers and flushing sinks"),
        name = signals.recv() => {
            tracing::info!(signal = name, timeout_s = options.shutdown_timeout.as_secs_f64(), "shutting down: sources stop, buffers drain, sinks flush (a second signal exits at once)");
            pipeline.shutdown.cancel();
        }
    }

    let drain = async {
        all_sources.await;
        join_all(fan_outs).await;
        let mut failed = Vec::new();
        for (id, task) in sink_tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(sink = %id, "sink stopped with an error: {e}");
                    failed.push((id, e.to_string()));
                }
                Err(e) => {
                    tracing::error!(sink = %id, "sink task failed: {e}");
                    failed.push((id, e.to_string()));
                }
            }
        }
        failed
    };
    let outcome = tokio::select! {
        failed = drain => if failed.is_empty() { RunOutcome::Completed } else { RunOutcome::SinkFailed(failed) },
        () = tokio::time::sleep(options.shutdown_timeout) => {
            let mut lost = Vec::new();
            for ((id, m), durable) in metrics.iter().zip(&durable) {
                let s = m.snapshot();
                // Waiting in the buffer, or taken by the sink and not confirmed: for a disk
                // buffer both stay on disk until confirmed.
                let unconfirmed = s.buffered + s.in_flight;
                if unconfirmed == 0 {
                    continue;
                }
                if *durable {
                    tracing::warn!(sink = %id, unconfirmed, "shutdown deadline passed; these events stay in the disk buffer and are delivered after the next start");
                } else {
                    tracing::error!(sink = %id, unconfirmed, "shutdown deadline passed; these events were not confirmed and are lost with this process");
                    lost.push((id.clone(), unconfirmed));
                }
            }
            if lost.is_empty() { RunOutcome::Completed } else { RunOutcome::Unfinished(lost) }
        }
        name = signals.recv() => {
            tracing::warn!(signal = name, "second signal: exiting without waiting for the sinks");
            RunOutcome::Aborted
        }
    };
    if let Some(summary) = summary {
        summary.abort();
    }
    log_summary(&metrics, true);
    outcome
}

/// Copies each batch of one source to every buffer it feeds, in order, waiting on full ones.
async fn fan_out(source: String, mut batches: mpsc::Receiver<Vec<LogEvent>>, targets: Vec<BufferWriter>) {
    let mut closed = vec![false; targets.len()];
    while let Some(batch) = batches.recv().await {
        let Some((last, rest)) = targets.split_last() else {
            // Nobody reads this source (warned at build): the events end here.
            for event in batch {
                event.settle(DeliveryStatus::Rejected);
            }
            continue;
        };
        for (i, writer) in rest.iter().enumerate() {
            if writer.write(batch.clone()).await.is_err() && !std::mem::replace(&mut closed[i], true) {
                tracing::error!(source = %source, "a sink stopped accepting events; its copies are dropped");
            }
        }
        let last_index = targets.len() - 1;
        if last.write(batch).await.is_err() && !std::mem::replace(&mut closed[last_index], true) {
            tracing::error!(source = %source, "a sink stopped accepting events; its copies are dropped");
        }
    }
}
