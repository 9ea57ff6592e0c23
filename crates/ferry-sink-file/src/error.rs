use std::path::PathBuf;

/// What can go wrong in a `file` sink.
#[derive(Debug, thiserror::Error)]
pub enum FileSinkError {
    /// A directory cannot be created or written (a file in the way, permissions, read-only).
    #[error("cannot write files in {dir}: {source}")]
    UnwritableDir { dir: PathBuf, source: std::io::Error },
    /// Writing kept failing until the shutdown deadline.
    #[error(
        "cannot write {path} ({source}); gave up at the shutdown deadline with {events} events unwritten"
    )]
    GaveUp {
        path: PathBuf,
        source: std::io::Error,
        events: usize,
    },
    /// The blocking writer task panicked or was cancelled.
    #[error("the writer task ended abnormally")]
    Task,
}
