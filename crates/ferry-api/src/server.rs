//! The HTTP server: bound at start-up (so a bad address stops ferry before it reads input),
//! served on the pipeline's runtime, stopped at the end of the run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::health_report;
use crate::metrics::{METRICS_CONTENT_TYPE, encode, registry};
use crate::{SinkStatus, SourceStatus};

/// Why the endpoint cannot run. Each names `api.address`, the key to change.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The address is taken, not local, or not allowed.
    #[error("key `api.address`: cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The bound socket could not be handed to the runtime.
    #[error("key `api.address`: cannot serve on {address}: {source}")]
    Serve {
        /// The configured address.
        address: SocketAddr,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// Binds `address` now (no runtime needed), so that a port in use is a start-up error.
pub fn bind(address: SocketAddr) -> Result<std::net::TcpListener, ApiError> {
    let listener =
        std::net::TcpListener::bind(address).map_err(|source| ApiError::Bind { address, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ApiError::Bind { address, source })?;
    Ok(listener)
}

/// The running endpoint.
#[derive(Debug)]
pub struct ApiServer {
    address: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// How long [`ApiServer::stop`] lets requests in progress finish.
const STOP_GRACE: Duration = Duration::from_secs(1);

struct ApiState {
    sinks: Arc<[SinkStatus]>,
    registry: Registry,
}

/// Serves `/metrics` and `/health` for `sinks` on `listener` (from [`bind`]); must be called
/// inside a tokio runtime.
pub fn serve(
    listener: std::net::TcpListener,
    sinks: Vec<SinkStatus>,
    sources: Vec<SourceStatus>,
) -> Result<ApiServer, ApiError> {
    let address = listener.local_addr().map_err(|source| ApiError::Serve {
        address: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|source| ApiError::Serve { address, source })?;
    let sinks: Arc<[SinkStatus]> = sinks.into();
    let state = Arc::new(ApiState {
        registry: registry(sinks.clone(), sources.into()),
        sinks,
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(state);
    let shutdown = CancellationToken::new();
    let stopped = shutdown.clone();
    let task = tokio::spawn(async move {
        let server =
            axum::serve(listener, app).with_graceful_shutdown(async move { stopped.cancelled().await });
        if let Err(e) = server.await {
            tracing::error!(%address, "the API endpoint stopped: {e}");
        }
    });
    tracing::info!(%address, "API endpoint listening: /metrics, /health");
    Ok(ApiServer {
        address,
        shutdown,
        task,
    })
}

impl ApiServer {
    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting requests; requests in progress get a moment to finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
        }
    }
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    match encode(&state.registry) {
        Ok(text) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the metrics: {e}\n"),
        )
            .into_response(),
    }
}

async fn health(State(state): State<Arc<ApiState>>) -> Response {
    let report = health_report(&state.sinks);
    let status = if report.is_healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        report.to_json(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ferry_core::{SinkHealth, SinkMetrics};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    async fn get(address: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[test]
    fn a_port_in_use_is_an_error_naming_the_key() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let error = bind(taken.local_addr().unwrap()).unwrap_err().to_string();
        assert!(
            error.starts_with("key `api.address`: cannot listen on 127.0.0.1:") && error.contains("in use"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn serves_metrics_and_health_until_stopped() {
        let health = Arc::new(SinkHealth::default());
        let metrics = Arc::new(SinkMetrics::default());
        SinkMetrics::add(&metrics.delivered, 3);
        let sinks = vec![SinkStatus {
            id: "out".into(),
            metrics,
            health: health.clone(),
        }];
        let server = serve(bind("127.0.0.1:0".parse().unwrap()).unwrap(), sinks, Vec::new()).unwrap();
        let address = server.address();

        let response = get(address, "/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("application/openmetrics-text"), "{response}");
        assert!(
            response.contains("ferry_delivered_events_total{sink=\"out\"} 3"),
            "{response}"
        );

        let response = get(address, "/health").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with(r#"{"status":"ok"}"#), "{response}");
        health.set_unhealthy("broken");
        let response = get(address, "/health").await;
        assert!(response.starts_with("HTTP/1.1 503"), "{response}");
        assert!(
            response.ends_with(r#"{"status":"unhealthy","sinks":{"out":"broken"}}"#),
            "{response}"
        );

        server.stop().await;
        assert!(tokio::net::TcpStream::connect(address).await.is_err(), "stopped");
    }
}
