use ferry_core::{BoxError, SourceContext};

use crate::checkpoint::{CheckpointStore, Loaded};
use crate::config::FileSourceConfig;
use crate::tailer::Tailer;

/// Runs the tailer on a thread of its own and completes when it has stopped: after shutdown,
/// once every batch it sent was settled and the last checkpoints were saved.
pub(crate) async fn run(
    config: FileSourceConfig,
    store: CheckpointStore,
    loaded: Loaded,
    cx: SourceContext,
) -> Result<(), BoxError> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Handle::current();
    let SourceContext {
        id, out, shutdown, ..
    } = cx;
    let name = format!("file-{id}");
    let tailer = Tailer::new(id, config, store, loaded, out, shutdown, runtime);
    std::thread::Builder::new().name(name).spawn(move || {
        tailer.run();
        let _ = done_tx.send(());
    })?;
    done_rx
        .await
        .map_err(|_| "the file source's reader thread ended abnormally".into())
}
