use std::sync::Arc;

use ferry_codecs::Encoder;
use ferry_core::{BoxError, DeliveryStatus, EventStream, SinkMetrics, SinkRunner};
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt;

use crate::config::ConsoleTarget;

pub(crate) struct ConsoleSink {
    pub(crate) target: ConsoleTarget,
    pub(crate) encoder: Encoder,
    pub(crate) metrics: Arc<SinkMetrics>,
}

impl SinkRunner for ConsoleSink {
    fn run(self: Box<Self>, mut input: EventStream) -> BoxFuture<'static, Result<(), BoxError>> {
        Box::pin(async move {
            let mut out: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>> = match self.target {
                ConsoleTarget::Stdout => Box::pin(tokio::io::stdout()),
                ConsoleTarget::Stderr => Box::pin(tokio::io::stderr()),
            };
            let mut buf = Vec::with_capacity(64 * 1024);
            while let Some(batch) = input.next().await {
                buf.clear();
                for event in &batch {
                    self.encoder.encode(event, &mut buf);
                    buf.push(b'\n');
                }
                out.write_all(&buf).await?;
                out.flush().await?;
                SinkMetrics::add(&self.metrics.delivered, batch.len() as u64);
                for event in batch {
                    event.settle(DeliveryStatus::Delivered);
                }
            }
            Ok(())
        })
    }
}
