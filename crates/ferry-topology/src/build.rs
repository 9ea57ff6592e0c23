use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_buffers::BufferWriter;
use ferry_config::{Config, resolve_data_dir};
use ferry_core::{
    BoxError, EventStream, Healthcheck, SinkContext, SinkHealth, SinkMetrics, SinkRunner, SourceContext,
    SourceMetrics, SourceSender, SourceTask,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A component that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The data directory is unusable.
    #[error(transparent)]
    DataDir(#[from] ferry_config::DataDirError),
    /// The disk buffers cannot fit their volume.
    #[error("{0}")]
    Capacity(ferry_buffers::BufferError),
    /// The HTTP endpoint cannot listen on `api.address`.
    #[error(transparent)]
    Api(#[from] ferry_api::ApiError),
    /// A component's `build` failed.
    #[error("cannot start {kind} `{id}`: {source}")]
    Component {
        /// `source` or `sink`.
        kind: &'static str,
        /// Its ID.
        id: String,
        /// What went wrong.
        source: BoxError,
    },
}

/// A built sink, not yet running.
pub(crate) struct BuiltSink {
    pub(crate) id: String,
    pub(crate) runner: Box<dyn SinkRunner>,
    pub(crate) healthcheck: Option<Healthcheck>,
    pub(crate) metrics: Arc<SinkMetrics>,
    pub(crate) health: Arc<SinkHealth>,
    /// Whether its buffer is on disk (unconfirmed events then survive the process).
    pub(crate) durable: bool,
    /// Its buffer; `None` when the pipeline was built only to be validated.
    pub(crate) buffer: Option<(BufferWriter, EventStream)>,
}

/// A built source, not yet running, with the receiving end of its sender.
pub(crate) struct BuiltSource {
    pub(crate) id: String,
    pub(crate) task: SourceTask,
    pub(crate) output: mpsc::Receiver<Vec<ferry_core::LogEvent>>,
    /// Its counters (`/metrics` reads them).
    pub(crate) metrics: Arc<SourceMetrics>,
    /// The sinks it feeds, by index into `Pipeline::sinks`.
    pub(crate) sinks: Vec<usize>,
}

/// Every component of a configuration, built and wired but not running.
pub struct Pipeline {
    pub(crate) sources: Vec<BuiltSource>,
    pub(crate) sinks: Vec<BuiltSink>,
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when the shutdown deadline passes (every sink holds a clone).
    pub(crate) deadline: CancellationToken,
    /// The HTTP endpoint's socket, bound at build when `[api]` is set (and buffers open).
    pub(crate) api: Option<std::net::TcpListener>,
}

/// Batches in flight between a source and its fan-out: small, so backpressure is prompt.
const SOURCE_CHANNEL_BATCHES: usize = 2;

/// Whether to open the sinks' buffers: a pipeline built only to validate a configuration must
/// not take the disk buffers' locks from a ferry that is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buffers {
    /// Open them (to run).
    Open,
    /// Leave them closed (to validate).
    Skip,
}

/// Builds every component of `config`; reports every failure, not only the first. Must be
/// called inside a tokio runtime when `buffers` is `Open`.
pub fn build_pipeline(config: &Config, buffers: Buffers) -> Result<Pipeline, Vec<BuildError>> {
    let data_dir = resolve_data_dir(config.data_dir.as_deref()).map_err(|e| vec![BuildError::from(e)])?;
    let shutdown = CancellationToken::new();
    let deadline = CancellationToken::new();
    let mut errors = Vec::new();
    if let Err(e) = check_capacity(config, &data_dir) {
        errors.push(e);
    }
    // Bound before anything starts, so a port in use stops ferry before it reads input; not
    // when only validating, since the running ferry may hold the port.
    let mut api = None;
    if let (Some(api_config), Buffers::Open) = (&config.api, buffers) {
        match ferry_api::bind(api_config.address) {
            Ok(listener) => api = Some(listener),
            Err(e) => errors.push(e.into()),
        }
    }
    let mut sinks = Vec::new();
    let mut sink_index = HashMap::new();
    for sink in &config.sinks {
        let metrics = Arc::new(SinkMetrics::default());
        let health = Arc::new(SinkHealth::default());
        let durable = sink.config.buffer().kind == ferry_core::BufferType::Disk;
        let cx = SinkContext {
            id: sink.id.clone(),
            metrics: metrics.clone(),
            health: health.clone(),
            data_dir: data_dir.clone(),
            deadline: deadline.clone(),
            durable_buffer: durable,
        };
        let buffer_dir = ferry_buffers::disk_buffer_dir(&data_dir, &sink.id);
        let built = sink.config.build(cx).and_then(|(runner, healthcheck)| {
            let buffer = match buffers {
                Buffers::Open => Some(ferry_buffers::build(
                    sink.config.buffer(),
                    &buffer_dir,
                    metrics.clone(),
                )?),
                Buffers::Skip => None,
            };
            Ok((runner, healthcheck, buffer))
        });
        match built {
            Ok((runner, healthcheck, buffer)) => {
                sink_index.insert(sink.id.clone(), sinks.len());
                sinks.push(BuiltSink {
                    id: sink.id.clone(),
                    runner,
                    healthcheck: sink.config.healthcheck_enabled().then_some(healthcheck),
                    metrics,
                    health,
                    durable,
                    buffer,
                });
            }
            Err(source) => errors.push(BuildError::Component {
                kind: "sink",
                id: sink.id.clone(),
                source,
            }),
        }
    }
    let mut sources = Vec::new();
    for source in &config.sources {
        let metrics = Arc::new(SourceMetrics::default());
        let (out, output) = SourceSender::with_metrics(SOURCE_CHANNEL_BATCHES, metrics.clone());
        let cx = SourceContext {
            id: source.id.clone(),
            out,
            shutdown: shutdown.child_token(),
            data_dir: data_dir.clone(),
            metrics: metrics.clone(),
        };
        match source.config.build(cx) {
            Ok(task) => {
                let fed = config
                    .sinks
                    .iter()
                    .filter(|s| s.config.inputs().contains(&source.id))
                    .filter_map(|s| sink_index.get(&s.id).copied())
                    .collect::<Vec<_>>();
                if fed.is_empty() && errors.is_empty() {
                    tracing::warn!(source = %source.id, "no sink reads from this source; its events are discarded");
                }
                sources.push(BuiltSource {
                    id: source.id.clone(),
                    task,
                    output,
                    metrics,
                    sinks: fed,
                });
            }
            Err(e) => errors.push(BuildError::Component {
                kind: "source",
                id: source.id.clone(),
                source: e,
            }),
        }
    }
    if errors.is_empty() {
        Ok(Pipeline {
            sources,
            sinks,
            shutdown,
            deadline,
            api,
        })
    } else {
        Err(errors)
    }
}

/// Buffers whose `max_size` add up to more than their volume could never all be filled: a
/// configuration error, caught before anything starts.
fn check_capacity(config: &Config, data_dir: &std::path::Path) -> Result<(), BuildError> {
    let disk_buffers: Vec<(&str, std::path::PathBuf, u64)> = config
        .sinks
        .iter()
        .filter(|s| s.config.buffer().kind == ferry_core::BufferType::Disk)
        .map(|s| {
            (
                s.id.as_str(),
                ferry_buffers::disk_buffer_dir(data_dir, &s.id),
                s.config.buffer().max_size.unwrap_or(0),
            )
        })
        .collect();
    let disk_buffers: Vec<(&str, &std::path::Path, u64)> = disk_buffers
        .iter()
        .map(|(id, dir, size)| (*id, dir.as_path(), *size))
        .collect();
    ferry_buffers::check_capacity(&disk_buffers).map_err(BuildError::Capacity)
}

/// Checks what [`build_pipeline`] would, without starting anything that reaches the network
/// (`ferry validate --no-healthchecks`): each sink runs its `check_offline`, each source is
/// built and dropped, no buffer is opened and no port bound.
pub fn check_offline(config: &Config) -> Result<(), Vec<BuildError>> {
    let data_dir = resolve_data_dir(config.data_dir.as_deref()).map_err(|e| vec![BuildError::from(e)])?;
    let mut errors = Vec::new();
    if let Err(e) = check_capacity(config, &data_dir) {
        errors.push(e);
    }
    for sink in &config.sinks {
        let mut cx = SinkContext::standalone(sink.id.clone(), data_dir.clone());
        cx.durable_buffer = sink.config.buffer().kind == ferry_core::BufferType::Disk;
        if let Err(source) = sink.config.check_offline(cx) {
            errors.push(BuildError::Component {
                kind: "sink",
                id: sink.id.clone(),
                source,
            });
        }
    }
    for source in &config.sources {
        let (out, _output) = SourceSender::new(SOURCE_CHANNEL_BATCHES);
        let cx = SourceContext {
            id: source.id.clone(),
            out,
            shutdown: CancellationToken::new(),
            data_dir: data_dir.clone(),
            metrics: Arc::default(),
        };
        if let Err(e) = source.config.build(cx) {
            errors.push(BuildError::Component {
                kind: "source",
                id: source.id.clone(),
                source: e,
            });
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Runs every enabled health check at once, each bounded by `timeout`; logs each result and
/// returns the failures as (sink ID, reason).
pub async fn check_health(pipeline: &mut Pipeline, timeout: Duration) -> Vec<(String, String)> {
    let checks = pipeline.sinks.iter_mut().filter_map(|sink| {
        let check = sink.healthcheck.take()?;
        let id = sink.id.clone();
        Some(async move {
            let result = match tokio::time::timeout(timeout, check).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {} s", timeout.as_secs_f64())),
            };
            (id, result)
        })
    });
    let mut failures = Vec::new();
    for (id, result) in futures::future::join_all(checks).await {
        match result {
            Ok(()) => tracing::info!(sink = %id, "health check passed"),
            Err(reason) => {
                tracing::error!(sink = %id, "health check failed: {reason}");
                failures.push((id, reason));
            }
        }
    }
    failures
}
