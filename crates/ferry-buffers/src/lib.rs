//! # ferry-buffers
//!
//! The buffer between the sources feeding a sink and the sink itself. A [`BufferWriter`]
//! takes batches from the topology's fan-out; the sink reads them back as an
//! [`EventStream`](ferry_core::EventStream). The stream ends once every writer is dropped and
//! the buffer is drained, which is how end of input reaches a sink.
//!
//! ## Guarantees
//! - Order is preserved per writer.
//! - `buffer.max_events` bounds the events *waiting* in the buffer (events the sink has taken
//!   are its in-flight set, bounded by the sink itself).
//! - `when_full = "block"` makes writers wait for room, so backpressure reaches the sources;
//!   `"drop_newest"` drops what does not fit, counts it in `SinkMetrics::dropped` and settles
//!   those events as `Errored` so their sources learn they were not delivered.
//! - A memory buffer never settles an event as delivered: the sink does, once its destination
//!   confirmed it.
//!
//! ```
//! use std::sync::Arc;
//! use futures::StreamExt;
//! use ferry_core::{BufferConfig, LogEvent, SinkMetrics};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let metrics = Arc::new(SinkMetrics::default());
//! let (writer, mut reader) = ferry_buffers::build(&BufferConfig::default(), metrics).unwrap();
//! writer.write(vec![LogEvent::from_message("a")]).await.unwrap();
//! drop(writer);
//! assert_eq!(reader.next().await.unwrap().len(), 1);
//! assert!(reader.next().await.is_none());
//! # });
//! ```

mod memory;

use std::sync::Arc;

use ferry_core::{BufferConfig, BufferType, EventStream, LogEvent, SendClosed, SinkMetrics};

pub use memory::{MemoryReader, MemoryWriter};

/// Why a buffer could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The configured kind is not built into this version.
    #[error("buffer.type = \"{0}\" is not available in this build")]
    Unsupported(&'static str),
    /// `max_events` is zero or beyond what a memory buffer can count.
    #[error("buffer.max_events = {0} is out of range (1 ..= {max})", max = memory::MAX_EVENTS)]
    MaxEventsOutOfRange(usize),
}

/// The writing end of a sink's buffer; clone it for every input.
#[derive(Clone, Debug)]
pub enum BufferWriter {
    /// A bounded in-memory queue.
    Memory(MemoryWriter),
}

impl BufferWriter {
    /// Writes one batch, waiting for room or dropping, as `when_full` says.
    pub async fn write(&self, events: Vec<LogEvent>) -> Result<(), SendClosed> {
        match self {
            BufferWriter::Memory(w) => w.write(events).await,
        }
    }
}

/// Creates the buffer `config` describes; its counters go to `metrics`.
pub fn build(
    config: &BufferConfig,
    metrics: Arc<SinkMetrics>,
) -> Result<(BufferWriter, EventStream), BufferError> {
    match config.kind {
        BufferType::Memory => {
            let (writer, reader) = memory::channel(config.max_events, config.when_full, metrics)?;
            Ok((BufferWriter::Memory(writer), Box::pin(reader)))
        }
        BufferType::Disk => Err(BufferError::Unsupported("disk")),
    }
}
