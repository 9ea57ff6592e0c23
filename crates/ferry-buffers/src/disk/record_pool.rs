//! Record buffers the reader fills, handed back for reuse once the last event sharing one is
//! gone.
//!
//! Why: the events decoded from a record borrow their strings from its buffer (zero-copy), so
//! a buffer lives until the sink has dropped every one of them, on whichever thread that
//! happens. Allocating a fresh 256 KiB buffer per record made the allocator return and
//! re-fault that memory over and over (thousands of page faults per million events, each page
//! zeroed by the kernel); a few recycled buffers stay resident instead.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// Spare buffers kept at most; the rest are freed.
const MAX_SPARE: usize = 8;
/// Buffers larger than this (grown by an unusually large record) are freed, not kept.
const MAX_KEPT_CAPACITY: usize = 1024 * 1024;

/// A pool of record buffers.
#[derive(Debug, Default)]
pub(crate) struct RecordPool {
    spare: Mutex<Vec<Vec<u8>>>,
}

impl RecordPool {
    /// An empty buffer, recycled if one is free.
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut buffer = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        buffer.clear();
        buffer
    }

    /// Shares `buffer` as `Bytes` that return it to the pool when the last clone is dropped.
    pub(crate) fn share(self: &Arc<Self>, buffer: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buffer,
            pool: self.clone(),
        })
    }

    fn give_back(&self, buffer: Vec<u8>) {
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < MAX_SPARE && buffer.capacity() <= MAX_KEPT_CAPACITY {
            spare.push(buffer);
        }
    }
}

struct Pooled {
    buffer: Vec<u8>,
    pool: Arc<RecordPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_when_its_last_slice_is_dropped() {
        let pool = Arc::new(RecordPool::default());
        let mut buffer = pool.take();
        buffer.extend_from_slice(b"hello world");
        let address = buffer.as_ptr();
        let shared = pool.share(buffer);
        let slice = shared.slice(6..);
        drop(shared);
        assert_eq!(&slice[..], b"world");
        assert!(pool.spare.lock().unwrap().is_empty(), "still in use by the slice");
        drop(slice);
        let again = pool.take();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), address, "the same allocation is reused");
    }

    #[test]
    fn at_most_max_spare_buffers_are_kept() {
        let pool = Arc::new(RecordPool::default());
        let shared: Vec<Bytes> = (0..MAX_SPARE + 3).map(|_| pool.share(vec![1; 16])).collect();
        drop(shared);
        assert_eq!(pool.spare.lock().unwrap().len(), MAX_SPARE);
    }
}
