use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_codecs::Encoder;
use ferry_core::rate_limit::WarnLimiter;
use ferry_core::{
    BoxError, DeliveryStatus, EventStream, LogEvent, SinkHealth, SinkMetrics, SinkRunner, Template,
};
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::config::{Compression, climbs};
use crate::error::FileSinkError;
use crate::open_files::OpenFiles;

/// How long a failed write waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct FileSink {
    pub(crate) id: String,
    pub(crate) path: Template,
    /// Whether the template itself has `..` (then rendered paths may too).
    pub(crate) template_climbs: bool,
    pub(crate) encoder: Encoder,
    pub(crate) compression: Compression,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_open_files: usize,
    pub(crate) metrics: Arc<SinkMetrics>,
    pub(crate) health: Arc<SinkHealth>,
    pub(crate) deadline: CancellationToken,
}

/// The part of a batch bound for one file.
struct Group {
    path: PathBuf,
    bytes: Vec<u8>,
    events: Vec<LogEvent>,
    /// Written and fsynced: a retry of the batch skips it.
    done: bool,
}

impl SinkRunner for FileSink {
    fn run(self: Box<Self>, mut input: EventStream) -> BoxFuture<'static, Result<(), BoxError>> {
        Box::pin(async move {
            let mut files = OpenFiles::new(self.max_open_files);
            let rejections = WarnLimiter::default();
            let mut idle_check = tokio::time::interval(Duration::from_secs(1));
            loop {
                let batch = tokio::select! {
                    batch = input.next() => match batch {
                        Some(batch) => batch,
                        None => break,
                    },
                    _ = idle_check.tick() => {
                        let closed = files.close_idle(self.idle_timeout);
                        if closed > 0 {
                            tracing::debug!(sink = %self.id, closed, open = files.len(), "closed idle files");
                        }
                        continue;
                    }
                };
                let groups = self.group(batch, &rejections);
                let events: u64 = groups.iter().map(|g| g.events.len() as u64).sum();
                SinkMetrics::add(&self.metrics.in_flight, events);
                let (back, groups) = self.write_until_done(files, groups).await?;
                files = back;
                SinkMetrics::sub(&self.metrics.in_flight, events);
                SinkMetrics::add(&self.metrics.delivered, events);
                // Group commit: every file of the batch is fsynced; only now may the sources
                // hear "safe".
                for event in groups.into_iter().flat_map(|g| g.events) {
                    event.settle(DeliveryStatus::Delivered);
                }
            }
            Ok(())
        })
    }
}

impl FileSink {
    /// Renders each event's path and encodes it into its file's group; events whose path
    /// cannot be rendered are rejected.
    fn group(&self, batch: Vec<LogEvent>, rejections: &WarnLimiter) -> Vec<Group> {
        let mut groups: Vec<Group> = Vec::new();
        let mut by_path: HashMap<String, usize> = HashMap::new();
        let mut rendered = String::new();
        for event in batch {
            rendered.clear();
            let problem = match self.path.render_into(&event, &mut rendered) {
                Err(e) => Some(e.to_string()),
                Ok(()) if !self.template_climbs && climbs(Path::new(&rendered)) => Some(format!(
                    "the rendered path `{rendered}` leaves the template's directories with `..`"
                )),
                Ok(()) => None,
            };
            if let Some(problem) = problem {
                SinkMetrics::add(&self.metrics.rejected, 1);
                if let Some(suppressed) = rejections.check() {
                    tracing::warn!(sink = %self.id, suppressed, "event rejected: {problem}");
                }
                event.settle(DeliveryStatus::Rejected);
                continue;
            }
            let index = match by_path.get(rendered.as_str()) {
                Some(&index) => index,
                None => {
                    groups.push(Group {
                        path: PathBuf::from(&rendered),
                        bytes: Vec::new(),
                        events: Vec::new(),
                        done: false,
                    });
                    by_path.insert(rendered.clone(), groups.len() - 1);
                    groups.len() - 1
                }
            };
            let group = &mut groups[index];
            self.encoder.encode(&event, &mut group.bytes);
            group.bytes.push(b'\n');
            group.events.push(event);
        }
        groups
    }

    /// Writes and fsyncs every group, trying again after a failure until it works or the
    /// shutdown deadline passes.
    async fn write_until_done(
        &self,
        mut files: OpenFiles,
        mut groups: Vec<Group>,
    ) -> Result<(OpenFiles, Vec<Group>), FileSinkError> {
        let compression = self.compression;
        let mut compressed = false;
        loop {
            let (back_files, back_groups, result) = tokio::task::spawn_blocking(move || {
                if compression == Compression::Gzip && !compressed {
                    for group in &mut groups {
                        group.bytes = gzip(&group.bytes);
                    }
                }
                let result = write_groups(&mut files, &mut groups);
                (files, groups, result)
            })
            .await
            .map_err(|_| FileSinkError::Task)?;
            files = back_files;
            groups = back_groups;
            compressed = true;
            let Err((path, source)) = result else {
                self.health.set_healthy();
                return Ok((files, groups));
            };
            files.close(&path);
            let waiting: usize = groups.iter().filter(|g| !g.done).map(|g| g.events.len()).sum();
            tracing::warn!(sink = %self.id, path = %path.display(), error = %source, events = waiting, "cannot write; trying again in a second");
            self.health
                .set_unhealthy(format!("cannot write {}: {source}", path.display()));
            SinkMetrics::add(&self.metrics.retried, waiting as u64);
            tokio::select! {
                () = self.deadline.cancelled() => {
                    return Err(FileSinkError::GaveUp { path, source, events: waiting });
                }
                () = tokio::time::sleep(RETRY_AFTER) => {}
            }
        }
    }
}

/// Appends and fsyncs each group not done yet; stops at the first failure.
fn write_groups(files: &mut OpenFiles, groups: &mut [Group]) -> Result<(), (PathBuf, std::io::Error)> {
    for group in groups.iter_mut().filter(|g| !g.done) {
        files
            .append(&group.path, &group.bytes)
            .and_then(|()| files.sync(&group.path))
            .map_err(|e| (group.path.clone(), e))?;
        group.done = true;
    }
    Ok(())
}

/// One gzip member holding `bytes`.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}
