use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_codecs::Encoder;
use ferry_core::{BoxError, DeliveryStatus, EventStream, SinkMetrics, SinkRunner};
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::error::FileError;

/// How long a failed write waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct FileSink {
    pub(crate) path: PathBuf,
    pub(crate) encoder: Encoder,
    pub(crate) metrics: Arc<SinkMetrics>,
    pub(crate) deadline: CancellationToken,
}

impl SinkRunner for FileSink {
    fn run(self: Box<Self>, mut input: EventStream) -> BoxFuture<'static, Result<(), BoxError>> {
        Box::pin(async move {
            let mut buf = Vec::with_capacity(64 * 1024);
            // The input ends when every source has stopped and the buffer is drained.
            while let Some(batch) = input.next().await {
                buf.clear();
                for event in &batch {
                    self.encoder.encode(event, &mut buf);
                    buf.push(b'\n');
                }
                let events = batch.len() as u64;
                SinkMetrics::add(&self.metrics.in_flight, events);
                buf = self.write_until_done(buf, batch.len()).await?;
                SinkMetrics::sub(&self.metrics.in_flight, events);
                SinkMetrics::add(&self.metrics.delivered, events);
                // Only now, with the bytes on disk, may the sources hear "safe".
                for event in batch {
                    event.settle(DeliveryStatus::Delivered);
                }
            }
            Ok(())
        })
    }
}

impl FileSink {
    /// Appends `buf` durably, trying again after a failure until it works or the shutdown
    /// deadline passes. Returns the buffer for reuse.
    async fn write_until_done(&self, mut buf: Vec<u8>, events: usize) -> Result<Vec<u8>, FileError> {
        loop {
            let path = self.path.clone();
            let (result, back) = tokio::task::spawn_blocking(move || {
                let result = append_durably(&path, &buf);
                (result, buf)
            })
            .await
            .map_err(|_| FileError::Task)?;
            buf = back;
            let Err(source) = result else {
                return Ok(buf);
            };
            tracing::warn!(path = %self.path.display(), error = %source, "cannot write; trying again");
            SinkMetrics::add(&self.metrics.retried, events as u64);
            tokio::select! {
                () = self.deadline.cancelled() => {
                    return Err(FileError::GaveUp { path: self.path.clone(), source, events });
                }
                () = tokio::time::sleep(RETRY_AFTER) => {}
            }
        }
    }
}

/// Opens `path` for appending, creating it if needed.
pub(crate) fn open_for_append(path: &Path) -> Result<File, FileError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| FileError::Unwritable {
            path: path.to_owned(),
            source,
        })
}

fn append_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_data()
}
