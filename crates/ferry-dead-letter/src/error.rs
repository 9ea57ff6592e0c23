//! What can go wrong with dead-letter files.

use std::path::{Path, PathBuf};

/// Why a dead-letter directory, file or line could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// A file or directory operation failed.
    #[error("dead-letter file {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another holder (a running ferry, or a replay) has the directory's lock.
    #[error(
        "the dead-letter directory {} is in use by another ferry process (lock file {}/{})",
        dir.display(),
        dir.display(),
        crate::LOCK_FILE
    )]
    Locked {
        /// The dead-letter directory.
        dir: PathBuf,
    },
    /// A line is not a dead letter in Ferry's JSON line format.
    #[error("line {line}: {reason}")]
    Parse {
        /// The line's number in its file, from 1 (1 for a line parsed on its own).
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// A line of a dead-letter file that could not be read back, typically the torn last line of
/// a process that crashed while writing it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    /// The line's number in its file, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// A `map_err` adapter naming the path an I/O error concerns.
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DeadLetterError + '_ {
    move |source| DeadLetterError::Io {
        path: path.to_owned(),
        source,
    }
}
