use std::sync::Arc;
use std::time::Duration;

use ferry_buffers::BufferWriter;
use ferry_core::{DeliveryStatus, LogEvent, SinkMetrics};
use futures::future::join_all;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::build::Pipeline;
use crate::signals::{Request, Signals};
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
    /// The HTTP endpoint could not be started (nothing was read).
    ApiFailed(String),
    /// SIGHUP brought a configuration that [`ReloadCheck`] accepted: the pipeline stopped
    /// reading and drained as at shutdown, and the caller should build and run the new one.
    /// `unconfirmed` counts memory-buffered events that were not confirmed by the shutdown
    /// deadline (they went to dead letters, as at a shutdown).
    Reload {
        /// (sink ID, events) not confirmed by the deadline, as in [`RunOutcome::Unfinished`].
        unconfirmed: Vec<(String, u64)>,
    },
}

/// Called on SIGHUP while the pipeline runs: loads and checks the configuration again.
/// `Ok` switches to it (the caller keeps what it loaded); `Err` keeps the running pipeline,
/// and the reason is logged.
pub type ReloadCheck<'a> = &'a mut dyn FnMut() -> Result<(), String>;

/// How long sources may take to finish after the sinks have given up at the deadline.
const SOURCES_AFTER_DEADLINE: Duration = Duration::from_secs(3);
/// How long sinks may take, once the deadline passed, to hand what they hold to their
/// dead-letter destination (or leave it to their disk buffer) and return.
const AFTER_DEADLINE: Duration = Duration::from_secs(10);

/// Runs `pipeline` until end of input, a signal or a failed sink, then drains it (see the
/// crate docs).
/// `reload` is asked on every SIGHUP; without one, SIGHUP is logged and ignored.
pub async fn run(
    mut pipeline: Pipeline,
    options: RunOptions,
    signals: &mut Signals,
    reload: Option<ReloadCheck<'_>>,
) -> RunOutcome {
    // The endpoint answers from the start, through the health checks and the drain.
    let api = match pipeline.api.take() {
        Some(listener) => {
            let sinks = pipeline
                .sinks
                .iter()
                .map(|s| ferry_api::SinkStatus {
                    id: s.id.clone(),
                    metrics: s.metrics.clone(),
                    health: s.health.clone(),
                })
                .collect();
            let sources = pipeline
                .sources
                .iter()
                .map(|s| ferry_api::SourceStatus {
                    id: s.id.clone(),
                    metrics: s.metrics.clone(),
                })
                .collect();
            match ferry_api::serve(listener, sinks, sources) {
                Ok(server) => Some(server),
                Err(e) => {
                    tracing::error!("{e}");
                    return RunOutcome::ApiFailed(e.to_string());
                }
            }
        }
        None => None,
    };
    let outcome = run_pipeline(pipeline, options, signals, reload).await;
    if let Some(api) = api {
        api.stop().await;
    }
    outcome
}

async fn run_pipeline(
    mut pipeline: Pipeline,
    options: RunOptions,
    signals: &mut Signals,
    mut reload: Option<ReloadCheck<'_>>,
) -> RunOutcome {
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
    // Every sink reports here when its task ends, however it ends.
    let (sink_done_tx, mut sink_done) = mpsc::unbounded_channel::<(usize, Result<(), String>)>();
    for (index, sink) in pipeline.sinks.into_iter().enumerate() {
        let Some((writer, reader)) = sink.buffer else {
            tracing::error!(sink = %sink.id, "pipeline was built without buffers and cannot run");
            return RunOutcome::SinkFailed(vec![(sink.id, "no buffer".into())]);
        };
        writers.push(Some(writer));
        let task = tokio::spawn(sink.runner.run(reader));
        let done = sink_done_tx.clone();
        tokio::spawn(async move {
            let result = match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("its task ended abnormally: {e}")),
            };
            let _ = done.send((index, result));
        });
    }
    drop(sink_done_tx);
    let sink_count = metrics.len();
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

    let mut finished = SinksFinished::new(metrics.iter().map(|(id, _)| id.clone()).collect());
    let all_sources = join_all(source_tasks);
    tokio::pin!(all_sources);
    let mut reloading = false;
    // Running: until end of input, a signal, or the first sink that stops.
    loop {
        tokio::select! {
            _ = &mut all_sources => {
                tracing::info!("end of input: draining buffers and flushing sinks");
                break;
            }
            request = signals.recv() => match request {
                Request::Shutdown(name) => {
                    tracing::info!(signal = name, timeout_s = options.shutdown_timeout.as_secs_f64(), "shutting down: sources stop, buffers drain, sinks flush (a second signal exits at once)");
                    pipeline.shutdown.cancel();
                    break;
                }
                Request::Reload => {
                    let Some(check) = reload.as_mut() else {
                        tracing::warn!("SIGHUP ignored: this run cannot reload its configuration");
                        continue;
                    };
                    match check() {
                        Ok(()) => {
                            tracing::info!(timeout_s = options.shutdown_timeout.as_secs_f64(), "SIGHUP: the new configuration is valid; sources stop, buffers drain, sinks flush, then it starts");
                            reloading = true;
                            pipeline.shutdown.cancel();
                            break;
                        }
                        Err(reason) => {
                            tracing::error!("SIGHUP: the configuration was not reloaded, the running one goes on: {reason}");
                        }
                    }
                }
            },
            Some((index, result)) = sink_done.recv() => {
                let failed = result.is_err();
                finished.record(index, result);
                if failed {
                    // One sink is gone: stop reading, and let the others deliver what they
                    // have (within the deadline) before exiting non-zero.
                    tracing::error!(timeout_s = options.shutdown_timeout.as_secs_f64(), "a sink failed: stopping the sources and draining the other sinks");
                    pipeline.shutdown.cancel();
                    break;
                }
            }
        }
    }

    let sources_done = std::cell::Cell::new(false);
    let drain = async {
        (&mut all_sources).await;
        sources_done.set(true);
        join_all(fan_outs).await;
        while finished.count() < sink_count {
            match sink_done.recv().await {
                Some((index, result)) => finished.record(index, result),
                None => break,
            }
        }
    };
    let outcome = tokio::select! {
        () = drain => None,
        () = tokio::time::sleep(options.shutdown_timeout) => Some(false),
        name = signals.shutdown() => {
            tracing::warn!(signal = name, "second signal: exiting without waiting for the sinks");
            Some(true)
        }
    };
    let outcome = match outcome {
        None => finished.outcome(),
        Some(true) => RunOutcome::Aborted,
        Some(false) => {
            // The deadline: sinks hand what they hold to their dead-letter destination (memory
            // buffers) or leave it on disk, and return.
            let before: Vec<u64> = metrics
                .iter()
                .map(|(_, m)| m.dead_lettered.load(std::sync::atomic::Ordering::Relaxed))
                .collect();
            pipeline.deadline.cancel();
            let wait_sinks = async {
                while finished.count() < sink_count {
                    match sink_done.recv().await {
                        Some((index, result)) => finished.record(index, result),
                        None => break,
                    }
                }
            };
            let _ = tokio::time::timeout(AFTER_DEADLINE, wait_sinks).await;
            // Sources finish once what they sent is settled (a file source then saves its
            // last checkpoints): give them a moment now that the sinks have let go.
            if !sources_done.get() {
                let _ = tokio::time::timeout(SOURCES_AFTER_DEADLINE, &mut all_sources).await;
            }
            let mut unfinished = Vec::new();
            for (((id, m), durable), before) in metrics.iter().zip(&durable).zip(before) {
                let s = m.snapshot();
                let dead_lettered = s.dead_lettered.saturating_sub(before);
                // Waiting in the buffer, or taken by the sink and not confirmed: for a disk
                // buffer both stay on disk until confirmed.
                let unconfirmed = s.buffered + s.in_flight;
                if *durable {
                    if unconfirmed > 0 {
                        tracing::warn!(sink = %id, unconfirmed, "shutdown deadline passed; these events stay in the disk buffer and are delivered after the next start");
                    }
                    continue;
                }
                if unconfirmed > 0 {
                    tracing::error!(sink = %id, unconfirmed, "shutdown deadline passed; these events were neither confirmed nor written to dead letters, and are lost with this process");
                }
                if unconfirmed + dead_lettered > 0 {
                    unfinished.push((id.clone(), unconfirmed + dead_lettered));
                }
            }
            match finished.outcome() {
                RunOutcome::SinkFailed(failed) => RunOutcome::SinkFailed(failed),
                _ if unfinished.is_empty() => RunOutcome::Completed,
                _ => RunOutcome::Unfinished(unfinished),
            }
        }
    };
    if let Some(summary) = summary {
        summary.abort();
    }
    log_summary(&metrics, true);
    if !reloading {
        return outcome;
    }
    match outcome {
        RunOutcome::Completed => RunOutcome::Reload {
            unconfirmed: Vec::new(),
        },
        RunOutcome::Unfinished(unconfirmed) => RunOutcome::Reload { unconfirmed },
        other => other,
    }
}

/// The sinks whose tasks have ended, and how.
struct SinksFinished {
    ids: Vec<String>,
    results: Vec<Option<Result<(), String>>>,
}

impl SinksFinished {
    fn new(ids: Vec<String>) -> Self {
        let results = ids.iter().map(|_| None).collect();
        Self { ids, results }
    }

    fn record(&mut self, index: usize, result: Result<(), String>) {
        if let (Some(slot), Some(id)) = (self.results.get_mut(index), self.ids.get(index)) {
            if let Err(e) = &result {
                tracing::error!(sink = %id, "sink failed: {e}");
            }
            *slot = Some(result);
        }
    }

    fn count(&self) -> usize {
        self.results.iter().filter(|r| r.is_some()).count()
    }

    /// `SinkFailed` naming every failed sink, or `Completed`.
    fn outcome(&self) -> RunOutcome {
        let failed: Vec<(String, String)> = self
            .ids
            .iter()
            .zip(&self.results)
            .filter_map(|(id, r)| match r {
                Some(Err(e)) => Some((id.clone(), e.clone())),
                _ => None,
            })
            .collect();
        if failed.is_empty() {
            RunOutcome::Completed
        } else {
            RunOutcome::SinkFailed(failed)
        }
    }
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
