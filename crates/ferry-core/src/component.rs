//! The contract between the runner and the components it assembles.
//!
//! A component crate provides a config struct that mirrors its TOML table and registers it
//! with [`register_source!`](crate::register_source) or [`register_sink!`](crate::register_sink),
//! which make the `typetag` registration (what `type = "..."` selects) and the `inventory`
//! descriptor (`ferry list`) from one name:
//!
//! ```ignore
//! ferry_core::register_sink! {
//!     name: "console",
//!     description: "Writes encoded events to standard output.",
//!     example: "[sinks.out]\ntype = \"console\"\ninputs = [\"in\"]\n",
//!     impl SinkConfig for ConsoleSinkConfig {
//!         fn build(&self, cx: SinkContext) -> Result<(Box<dyn SinkRunner>, Healthcheck), BoxError> {
//!             /* ... */
//!         }
//!     }
//! }
//! ```
//!
//! Nothing in the runner names the crate beyond a dependency line.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::BoxError;
use crate::buffer_config::BufferConfig;
use crate::event::LogEvent;
use crate::health::SinkHealth;
use crate::metrics::SinkMetrics;
use crate::source_metrics::SourceMetrics;

/// Whether a component produces or consumes events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentKind {
    /// Reads events from the outside world.
    Source,
    /// Writes events to the outside world.
    Sink,
}

impl ComponentKind {
    /// `source` or `sink`.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Source => "source",
            ComponentKind::Sink => "sink",
        }
    }

    /// The top-level table holding this kind: `sources` or `sinks`.
    pub fn table(self) -> &'static str {
        match self {
            ComponentKind::Source => "sources",
            ComponentKind::Sink => "sinks",
        }
    }
}

/// What every component tells the runner about itself, collected through `inventory`.
#[derive(Debug)]
pub struct ComponentDescriptor {
    /// Source or sink.
    pub kind: ComponentKind,
    /// The `type = "..."` value selecting it (the same name given to `typetag`).
    pub type_name: &'static str,
    /// One line for `ferry list`.
    pub description: &'static str,
    /// A complete, valid TOML example of its table.
    pub example: &'static str,
}

inventory::collect!(ComponentDescriptor);

/// Every registered component, sources first, each kind sorted by name.
pub fn registered_components() -> Vec<&'static ComponentDescriptor> {
    let mut all: Vec<_> = inventory::iter::<ComponentDescriptor>.into_iter().collect();
    all.sort_by_key(|d| (d.kind, d.type_name));
    all
}

/// A problem with one key of a component's configuration, found after it parsed: the key is
/// relative to the component's table (`buffer.max_size`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The offending key, relative to the component.
    pub key: String,
    /// What was expected.
    pub message: String,
}

impl ConfigIssue {
    /// An issue with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Where a source sends its batches. Sending waits while downstream buffers are full, which is
/// how backpressure reaches the source.
#[derive(Clone, Debug)]
pub struct SourceSender {
    tx: mpsc::Sender<Vec<LogEvent>>,
    /// The source's counters: every batch sent counts its events here, so no source has to.
    metrics: Arc<SourceMetrics>,
}

/// Downstream stopped accepting events (the topology is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline is shutting down and no longer accepts events")]
pub struct SendClosed;

impl SourceSender {
    /// A sender and the receiving end the topology drains. `capacity` is in batches.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Vec<LogEvent>>) {
        Self::with_metrics(capacity, Arc::default())
    }

    /// A sender counting what it sends in `metrics`.
    pub fn with_metrics(
        capacity: usize,
        metrics: Arc<SourceMetrics>,
    ) -> (Self, mpsc::Receiver<Vec<LogEvent>>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { tx, metrics }, rx)
    }

    /// The counters of the source this sender belongs to.
    pub fn metrics(&self) -> &Arc<SourceMetrics> {
        &self.metrics
    }

    /// Sends one batch, waiting for room.
    pub async fn send_batch(&self, events: Vec<LogEvent>) -> Result<(), SendClosed> {
        if events.is_empty() {
            return Ok(());
        }
        let n = events.len() as u64;
        self.tx.send(events).await.map_err(|_| SendClosed)?;
        self.metrics.add_events(n);
        Ok(())
    }

    /// Waits for room for one batch and holds it. Unlike [`SourceSender::send_batch`], giving
    /// up on the wait (dropping the future) loses nothing, which lets a source do other work
    /// while downstream is full.
    pub async fn reserve(&self) -> Result<SendPermit<'_>, SendClosed> {
        self.tx
            .reserve()
            .await
            .map(|permit| SendPermit {
                permit,
                metrics: &self.metrics,
            })
            .map_err(|_| SendClosed)
    }

    /// Sends one batch from a thread outside the async runtime, blocking it while there is no
    /// room. Must not be called from an async task.
    pub fn blocking_send_batch(&self, events: Vec<LogEvent>) -> Result<(), SendClosed> {
        if events.is_empty() {
            return Ok(());
        }
        let n = events.len() as u64;
        self.tx.blocking_send(events).map_err(|_| SendClosed)?;
        self.metrics.add_events(n);
        Ok(())
    }
}

/// Room for one batch, held until it is used.
#[derive(Debug)]
pub struct SendPermit<'a> {
    permit: mpsc::Permit<'a, Vec<LogEvent>>,
    metrics: &'a SourceMetrics,
}

impl SendPermit<'_> {
    /// Sends the batch into the room held.
    pub fn send(self, events: Vec<LogEvent>) {
        self.metrics.add_events(events.len() as u64);
        self.permit.send(events);
    }
}

/// What a source gets when it is built.
#[derive(Debug)]
pub struct SourceContext {
    /// The source's ID (the key of its `[sources.ID]` table).
    pub id: String,
    /// Where its events go.
    pub out: SourceSender,
    /// Cancelled when the source must stop reading (signal or shutdown).
    pub shutdown: CancellationToken,
    /// The global data directory (for state such as a file source's checkpoints).
    pub data_dir: PathBuf,
    /// Its counters (the same ones `out` counts sent events in): bytes read and errors are
    /// the source's to count.
    pub metrics: Arc<SourceMetrics>,
}

/// A running source: completes at end of input or after `shutdown` fired.
pub type SourceTask = BoxFuture<'static, Result<(), BoxError>>;

/// A source's configuration, deserialized from its `[sources.ID]` table by `type`.
#[typetag::deserialize(tag = "type")]
pub trait SourceConfig: std::fmt::Debug + Send + Sync {
    /// Problems the parser cannot see (values that depend on each other).
    fn validate(&self) -> Vec<ConfigIssue> {
        Vec::new()
    }

    /// Builds the running source.
    fn build(&self, cx: SourceContext) -> Result<SourceTask, BoxError>;
}

/// The batches a sink reads from its buffer; it ends when every input has ended and the buffer
/// is drained.
pub type EventStream = Pin<Box<dyn Stream<Item = Vec<LogEvent>> + Send>>;

/// A sink's start-up check that its destination is reachable.
pub type Healthcheck = BoxFuture<'static, Result<(), BoxError>>;

/// What a sink gets when it is built.
#[derive(Clone, Debug)]
pub struct SinkContext {
    /// The sink's ID (the key of its `[sinks.ID]` table).
    pub id: String,
    /// Its counters.
    pub metrics: Arc<SinkMetrics>,
    /// Its health, which the sink keeps up to date (`/health` reads it).
    pub health: Arc<SinkHealth>,
    /// The global data directory (for state such as disk buffers and dead letters).
    pub data_dir: PathBuf,
    /// Cancelled when the shutdown deadline has passed: the sink stops waiting for its
    /// destination, hands what it still holds to its dead-letter destination (memory buffer)
    /// or leaves it to its disk buffer, and returns promptly.
    pub deadline: CancellationToken,
    /// Whether the sink's buffer is on disk: events it cannot confirm by the deadline then
    /// stay there for the next start instead of going to dead letters.
    pub durable_buffer: bool,
}

impl SinkContext {
    /// A context outside any topology, for a sink's own tests and tools: fresh counters and
    /// health, a memory buffer, and a deadline that never fires unless the caller cancels it.
    pub fn standalone(id: impl Into<String>, data_dir: PathBuf) -> Self {
        Self {
            id: id.into(),
            metrics: Arc::default(),
            health: Arc::default(),
            data_dir,
            deadline: CancellationToken::new(),
            durable_buffer: false,
        }
    }
}

/// A built sink, waiting for its input.
pub trait SinkRunner: Send {
    /// Consumes `input` until it ends, settling every event's finalizer, and flushes.
    fn run(self: Box<Self>, input: EventStream) -> BoxFuture<'static, Result<(), BoxError>>;
}

/// A sink's configuration, deserialized from its `[sinks.ID]` table by `type`.
///
/// The sink's struct declares `inputs`, `buffer` and `healthcheck` itself (serde cannot deny
/// unknown fields across a flattened struct), and exposes them through these methods.
#[typetag::deserialize(tag = "type")]
pub trait SinkConfig: std::fmt::Debug + Send + Sync {
    /// The IDs of the sources feeding it.
    fn inputs(&self) -> &[String];

    /// Its `buffer` table.
    fn buffer(&self) -> &BufferConfig;

    /// Whether its health check runs at start.
    fn healthcheck_enabled(&self) -> bool;

    /// Problems the parser cannot see (values that depend on each other).
    fn validate(&self) -> Vec<ConfigIssue> {
        self.buffer().validate()
    }

    /// Builds the sink and its health check. Must not touch the network: the health check
    /// does that.
    fn build(&self, cx: SinkContext) -> Result<(Box<dyn SinkRunner>, Healthcheck), BoxError>;

    /// Checks everything `build` would (files readable, settings accepted) without starting
    /// anything: no network connection, no thread. `ferry validate --no-healthchecks` runs
    /// this, so validating a file copied from elsewhere never reaches the hosts it names. The
    /// default builds the sink and drops it, which is right for a sink whose `build` starts
    /// nothing; a sink whose client connects as soon as it exists (Kafka) checks instead.
    fn check_offline(&self, cx: SinkContext) -> Result<(), BoxError> {
        self.build(cx).map(drop)
    }

    /// Sends the sink's dead letters again (`ferry dead-letter replay`), once the operator has
    /// fixed what made them fail. Blocking; called while no pipeline runs. A sink that keeps
    /// no dead letters keeps this default.
    fn replay_dead_letters(&self, request: &ReplayRequest) -> Result<ReplayReport, BoxError> {
        let _ = request;
        Err("this sink type keeps no dead letters".into())
    }
}

/// What `ferry dead-letter replay` asks of one sink.
#[derive(Clone, Debug)]
pub struct ReplayRequest {
    /// The sink's ID.
    pub id: String,
    /// The global data directory.
    pub data_dir: PathBuf,
    /// Send every letter to this destination (a topic) instead of its own.
    pub destination: Option<String>,
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Letters read.
    pub letters: u64,
    /// Letters the destination confirmed (and removed from the dead-letter files).
    pub delivered: u64,
    /// Letters that failed again and stay in the dead-letter files, with the first cause.
    pub failed: u64,
    /// The first failure's cause, if any.
    pub first_failure: Option<String>,
    /// Lines that could not be read, left in place.
    pub unreadable: u64,
}
