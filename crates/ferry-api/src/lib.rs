//! # ferry-api
//!
//! The HTTP endpoint a top-level `[api]` table turns on, served with axum on the runtime the
//! pipeline already runs on:
//!
//! - `GET /metrics`: every source's and every sink's counters in the Prometheus (OpenMetrics) text format. The
//!   values are read from each sink's [`SinkMetrics`] at scrape time by a collector, so
//!   `/metrics` and the summary lines read the same counters and can never disagree.
//! - `GET /health`: `200 {"status":"ok"}` while every sink is healthy, else
//!   `503 {"status":"unhealthy","sinks":{"ID":"reason"}}` naming each unhealthy sink. A sink
//!   keeps its own [`SinkHealth`] up to date; this crate only reports it.
//!
//! The endpoint adds no work per event: it reads atomics when it is asked.
//!
//! ```no_run
//! # async fn example(sinks: Vec<ferry_api::SinkStatus>) -> Result<(), ferry_api::ApiError> {
//! let listener = ferry_api::bind("127.0.0.1:8686".parse().unwrap())?;
//! let server = ferry_api::serve(listener, sinks, Vec::new())?;
//! // ... the pipeline runs ...
//! server.stop().await;
//! # Ok(()) }
//! ```
//!
//! [`SinkMetrics`]: ferry_core::SinkMetrics
//! [`SinkHealth`]: ferry_core::SinkHealth

mod health;
mod metrics;
mod server;

pub use health::{HealthReport, health_report};
pub use metrics::{METRICS_CONTENT_TYPE, render_metrics};
pub use server::{ApiError, ApiServer, bind, serve};

use std::sync::Arc;

use ferry_core::{SinkHealth, SinkMetrics, SourceMetrics};

/// What the endpoint knows of one sink.
#[derive(Clone, Debug)]
pub struct SinkStatus {
    /// The sink's ID (the key of its `[sinks.ID]` table): the `sink` label.
    pub id: String,
    /// Its counters (the same ones the summary lines read).
    pub metrics: Arc<SinkMetrics>,
    /// Its health, as the sink keeps it.
    pub health: Arc<SinkHealth>,
}

/// What the endpoint knows of one source.
#[derive(Clone, Debug)]
pub struct SourceStatus {
    /// The source's ID (the key of its `[sources.ID]` table): the `source` label.
    pub id: String,
    /// Its counters.
    pub metrics: Arc<SourceMetrics>,
}
