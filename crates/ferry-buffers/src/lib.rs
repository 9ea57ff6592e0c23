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
//! - A disk buffer settles an event `Delivered` once it is fsynced, and from then on owns it
//!   until the sink confirms it (see [`disk`]).
//! - A failing disk (full, I/O errors, failed fsyncs) makes a disk buffer hold input back and
//!   retry; it never drops what it accepted and never acknowledges what is not durable.
//!   [`check_capacity`] refuses, at start, disk buffers that together could fill their volume.
//! - `SinkMetrics::buffered` counts the events waiting in either buffer type, not yet taken by
//!   the sink.
//!
//! ```
//! use std::sync::Arc;
//! use futures::StreamExt;
//! use ferry_core::{BufferConfig, LogEvent, SinkMetrics};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let metrics = Arc::new(SinkMetrics::default());
//! let dir = std::env::temp_dir();
//! let (writer, mut reader) = ferry_buffers::build(&BufferConfig::default(), &dir, metrics).unwrap();
//! writer.write(vec![LogEvent::from_message("a")]).await.unwrap();
//! drop(writer);
//! assert_eq!(reader.next().await.unwrap().len(), 1);
//! assert!(reader.next().await.is_none());
//! # });
//! ```

mod capacity;
pub mod disk;
#[doc(hidden)]
pub mod fuzzing;
mod memory;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_core::{BufferConfig, BufferType, EventStream, LogEvent, SendClosed, SinkMetrics};

pub use capacity::{BufferShare, check_capacity};
pub use disk::{BufferReport, DiskReader, DiskWriter, inspect};
pub use memory::{MemoryReader, MemoryWriter};

/// Why a buffer could not be created or used.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// `max_events` is zero or beyond what a memory buffer can count.
    #[error("buffer.max_events = {0} is out of range (1 ..= {max})", max = memory::MAX_EVENTS)]
    MaxEventsOutOfRange(usize),
    /// Another process has the disk buffer open.
    #[error("the disk buffer at {} is in use by another ferry process (lock file {}/ferry.lock)", path.display(), path.display())]
    Locked {
        /// The buffer directory.
        path: PathBuf,
    },
    /// The buffer's files cannot be opened.
    #[error("cannot open the disk buffer at {}: {reason}", path.display())]
    Open {
        /// The buffer directory.
        path: PathBuf,
        /// sled's reason.
        reason: String,
    },
    /// A file operation failed.
    #[error("disk buffer file {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Making written events durable failed.
    #[error("disk buffer fsync failed: {reason}")]
    Sync {
        /// Why.
        reason: String,
    },
    /// The disk buffers on one volume may together hold more than it can.
    #[error(
        "the disk buffers on the volume holding {} may hold more than it can: {} add up to {total} bytes, but the volume has {capacity} bytes; lower their max_size or move data_dir",
        volume.display(),
        capacity::describe(buffers)
    )]
    CapacityExceeded {
        /// A directory on the volume.
        volume: PathBuf,
        /// The volume's size in bytes.
        capacity: u64,
        /// The sum of the buffers' `max_size`.
        total: u64,
        /// The buffers on it.
        buffers: Vec<BufferShare>,
    },
    /// The directory holds no disk buffer.
    #[error("{} holds no disk buffer", path.display())]
    NotABuffer {
        /// The directory.
        path: PathBuf,
    },
}

/// The writing end of a sink's buffer; clone it for every input.
#[derive(Clone, Debug)]
pub enum BufferWriter {
    /// A bounded in-memory queue.
    Memory(MemoryWriter),
    /// A durable queue on disk.
    Disk(DiskWriter),
}

impl BufferWriter {
    /// Writes one batch, waiting for room or dropping, as `when_full` says.
    pub async fn write(&self, events: Vec<LogEvent>) -> Result<(), SendClosed> {
        match self {
            BufferWriter::Memory(w) => w.write(events).await,
            BufferWriter::Disk(w) => w.write(events).await,
        }
    }
}

/// The directory of a sink's disk buffer under the data directory.
pub fn disk_buffer_dir(data_dir: &Path, sink_id: &str) -> PathBuf {
    data_dir.join("buffers").join(sink_id)
}

/// Creates the buffer `config` describes; a disk buffer lives in `dir`. Counters go to
/// `metrics`. A disk buffer starts threads of its own, which end once both of its ends are
/// dropped.
pub fn build(
    config: &BufferConfig,
    dir: &Path,
    metrics: Arc<SinkMetrics>,
) -> Result<(BufferWriter, EventStream), BufferError> {
    match config.kind {
        BufferType::Memory => {
            let (writer, reader) = memory::channel(config.max_events, config.when_full, metrics)?;
            Ok((BufferWriter::Memory(writer), Box::pin(reader)))
        }
        BufferType::Disk => {
            let (writer, reader) = disk::open(dir, config, metrics)?;
            Ok((BufferWriter::Disk(writer), Box::pin(reader)))
        }
    }
}
