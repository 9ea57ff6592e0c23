//! Waking one of the disk buffer's threads when there is something for it to do.
//!
//! Why thread parking and not a `Condvar` or tokio's `Notify`: the write thread signals the
//! read thread after every record it appends, and the delivery-report thread signals the
//! write thread after every record it deletes. `unpark` on a thread that is busy is one atomic
//! swap, no lock and no system call; only a thread that really sleeps costs a wake-up.

use std::sync::OnceLock;
use std::thread::Thread;
use std::time::Duration;

/// Wakes the one thread that waits on it (once that thread is registered).
#[derive(Debug, Default)]
pub(crate) struct Wakeup {
    waiter: OnceLock<Thread>,
}

impl Wakeup {
    /// Names the thread that waits; later calls are ignored.
    pub(crate) fn register(&self, thread: Thread) {
        let _ = self.waiter.set(thread);
    }

    /// Wakes the waiter if it sleeps, or makes its next wait return at once.
    pub(crate) fn wake(&self) {
        if let Some(thread) = self.waiter.get() {
            thread.unpark();
        }
    }

    /// Sleeps the calling (registered) thread until woken or `timeout` passes. It may also
    /// return early: callers look again at what they wait for.
    pub(crate) fn wait(&self, timeout: Duration) {
        std::thread::park_timeout(timeout);
    }
}
