//! # ferry-dead-letter
//!
//! Where records go that a sink can never deliver: an invalid topic name, a record larger than
//! the broker accepts, a topic that stayed missing past its grace, records still unconfirmed
//! at the shutdown deadline. Each becomes a [`DeadLetter`] (the record byte for byte, plus when,
//! which sink, which topic, why) and is appended as one JSON line to a file in the sink's
//! dead-letter directory, by default `<data_dir>/dead_letters/<sink id>/`
//! ([`DeadLetterConfig`], [`default_dir`]). An operator inspects them with
//! `ferry dead-letter list|show` and, once the cause is fixed, sends them again with
//! `ferry dead-letter replay`.
//!
//! ## Guarantees
//! - **Nothing is rejected without a record.** [`DeadLetterQueue::send`] settles the letter's
//!   finalizer [`DeliveryStatus::Rejected`](ferry_core::DeliveryStatus::Rejected) only after
//!   its line is written and fsynced (with the directory fsynced when a file is created).
//! - **A failing disk delays, it does not lose.** On a write or fsync error the writer keeps
//!   the batch, moves to a new file (a failed fsync's pages are not brought back by fsyncing
//!   the same handle again), backs off from 100 ms to 5 s and retries. Meanwhile the bounded
//!   queue ([`QUEUE_CAPACITY`] letters) fills and `send` waits: backpressure, not loss.
//! - **Order**: letters from one task are written in the order sent.
//! - **Crash isolation**: each run writes new files (`dead-letters-NNNNNN.jsonl`, numbered
//!   after the highest one present) and never appends to an earlier run's file, so the torn
//!   last line of a crash stays at the end of its own file; [`read_file`] reports it as an
//!   unreadable line instead of failing.
//! - **One user at a time**: the directory's lock file (`ferry-dead-letter.lock`) is held by
//!   the queue for as long as its thread runs, and by a replay through [`lock_dir`].
//! - A letter that was sent twice (a retry after an error whose partial write could not be
//!   taken back) can appear twice in the files: replay is at-least-once, like the sink.
//!
//! The line format is described in [`letter`]; any bytes round-trip exactly.
//!
//! ```
//! use std::time::Duration;
//! use ferry_core::{BatchNotifier, DeliveryStatus, EventFinalizer};
//! use ferry_dead_letter::{DeadLetter, DeadLetterQueue, DeadLetterReason};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let queue = DeadLetterQueue::open(dir.path(), "kafka", 64 * 1024 * 1024).unwrap();
//! let (notifier, status) = BatchNotifier::new_with_receiver();
//! let letter = DeadLetter {
//!     time: chrono::Utc::now(),
//!     sink: "kafka".into(),
//!     topic: "logs-nginx".into(),
//!     reason: DeadLetterReason::TooLarge,
//!     cause: "record of 2000000 bytes exceeds message.max.bytes".into(),
//!     key: None,
//!     payload: b"{\"message\":\"...\"}".to_vec(),
//!     headers: Vec::new(),
//!     timestamp_ms: None,
//! };
//! queue.send(letter, EventFinalizer::new(notifier)).await;
//! // The source hears `Rejected` only once the letter is on disk.
//! assert_eq!(status.await, DeliveryStatus::Rejected);
//! assert!(queue.flush(Duration::from_secs(5)).await);
//!
//! let files = ferry_dead_letter::list_files(dir.path()).unwrap();
//! let letters = ferry_dead_letter::read_file(&files[0].path).unwrap();
//! assert_eq!(letters[0].as_ref().unwrap().reason, DeadLetterReason::TooLarge);
//! # });
//! ```

mod config;
mod error;
pub mod letter;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use config::{DEFAULT_MAX_FILE_BYTES, DeadLetterConfig, MIN_FILE_BYTES, default_dir, root_dir};
pub use error::{DeadLetterError, LineError};
pub use letter::{DeadLetter, DeadLetterReason};
pub use reader::{
    DeadLetterFile, DirLock, DirSummary, list_files, lock_dir, read_file, sink_dirs, summarize,
};
pub use writer::{DeadLetterQueue, QUEUE_CAPACITY};

/// The lock file in every dead-letter directory.
pub const LOCK_FILE: &str = "ferry-dead-letter.lock";
