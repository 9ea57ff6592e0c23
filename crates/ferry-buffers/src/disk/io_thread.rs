//! A thread that runs a disk buffer's blocking store calls, one after another.
//!
//! Why not `spawn_blocking`: tokio's blocking pool hands each call to whichever thread is free
//! and starts new ones under load, and every thread that allocates a record gets its own
//! allocator arena (glibc) or heap (mimalloc) that keeps freed memory for itself. Measured with
//! a disk buffer of 256 KiB records, that cost tens to hundreds of MiB of resident memory and
//! made it vary from run to run; one long-lived thread per direction keeps it to one arena.

use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// The handle to one I/O thread; the thread ends when the handle is dropped.
#[derive(Debug)]
pub(crate) struct IoThread {
    jobs: mpsc::Sender<Job>,
}

impl IoThread {
    /// Starts a thread named `name`.
    pub(crate) fn spawn(name: &str) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            for job in queue {
                job();
            }
        })?;
        Ok(Self { jobs })
    }

    /// Runs `call` on the thread and waits for its result without blocking the executor.
    /// `None` if the thread is gone (it panicked).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(call());
            }))
            .ok()?;
        result.await.ok()
    }
}
