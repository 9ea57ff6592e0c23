use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use ferry_core::{DeliveryStatus, LogEvent, SendClosed, SinkMetrics, WhenFull};
use futures::Stream;
use tokio::sync::{Semaphore, TryAcquireError, mpsc};

use crate::BufferError;

/// The largest `max_events` a memory buffer accepts (the semaphore counts in `u32`).
pub(crate) const MAX_EVENTS: usize = 1 << 28;

/// Writes into a memory buffer. Room is counted in events by a semaphore; the channel behind
/// it carries whole batches, so the per-event cost is a slice of a batch, not a channel send.
#[derive(Clone, Debug)]
pub struct MemoryWriter {
    // Unbounded only in type: every batch in it holds permits of `room`, so the events it can
    // hold never exceed `max_events`.
    tx: mpsc::UnboundedSender<Vec<LogEvent>>,
    room: Arc<Semaphore>,
    max_events: usize,
    when_full: WhenFull,
    metrics: Arc<SinkMetrics>,
    enqueued: Arc<EnqueueTimes>,
}

/// Reads from a memory buffer; ends when every writer is gone and the buffer is empty.
#[derive(Debug)]
pub struct MemoryReader {
    rx: mpsc::UnboundedReceiver<Vec<LogEvent>>,
    room: Arc<Semaphore>,
    metrics: Arc<SinkMetrics>,
    enqueued: Arc<EnqueueTimes>,
}

/// When each batch in the channel was written and about how many bytes it holds, in channel
/// order, so that the oldest waiting event's age (`SinkMetrics::oldest_enqueued_us`) and the
/// buffered bytes can be kept without touching the events again. One lock per batch, on both
/// sides; the lock is held across the channel send so that the order of the entries is the
/// order of the batches.
#[derive(Debug, Default)]
struct EnqueueTimes {
    /// (write time in µs, approximate bytes) per batch.
    times: Mutex<VecDeque<(u64, u64)>>,
}

impl EnqueueTimes {
    fn lock(&self) -> MutexGuard<'_, VecDeque<(u64, u64)>> {
        self.times.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn channel(
    max_events: usize,
    when_full: WhenFull,
    metrics: Arc<SinkMetrics>,
) -> Result<(MemoryWriter, MemoryReader), BufferError> {
    if max_events == 0 || max_events > MAX_EVENTS {
        return Err(BufferError::MaxEventsOutOfRange(max_events));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(max_events));
    let enqueued = Arc::new(EnqueueTimes::default());
    let writer = MemoryWriter {
        tx,
        room: room.clone(),
        max_events,
        when_full,
        metrics: metrics.clone(),
        enqueued: enqueued.clone(),
    };
    Ok((
        writer,
        MemoryReader {
            rx,
            room,
            metrics,
            enqueued,
        },
    ))
}

impl MemoryWriter {
    /// Writes `events`, in order.
    pub async fn write(&self, mut events: Vec<LogEvent>) -> Result<(), SendClosed> {
        while !events.is_empty() {
            // A batch larger than the whole buffer goes in pieces.
            let rest = if events.len() > self.max_events {
                events.split_off(self.max_events)
            } else {
                Vec::new()
            };
            let wanted = events.len();
            let granted = match self.when_full {
                WhenFull::Block => {
                    let Ok(permit) = self.room.acquire_many(wanted as u32).await else {
                        // The sink is gone (its reader closed the room): these copies end
                        // here, counted, and their sources hear `Errored` as they drop.
                        self.count_dropped(events.len() + rest.len());
                        return Err(SendClosed);
                    };
                    permit.forget();
                    wanted
                }
                WhenFull::DropNewest if self.room.is_closed() => {
                    self.count_dropped(events.len() + rest.len());
                    return Err(SendClosed);
                }
                WhenFull::DropNewest => self.take_available_room(wanted),
            };
            if granted < wanted {
                let dropped = events.split_off(granted);
                SinkMetrics::add(&self.metrics.dropped, dropped.len() as u64);
                for event in dropped {
                    // The buffer is full: these events end here and their sources hear so.
                    event.settle(DeliveryStatus::Errored);
                }
            }
            if !events.is_empty() {
                let n = events.len() as u64;
                let bytes: u64 = events.iter().map(|e| e.approximate_size() as u64).sum();
                SinkMetrics::add(&self.metrics.received, n);
                SinkMetrics::add(&self.metrics.buffered, n);
                SinkMetrics::add(&self.metrics.buffered_bytes, bytes);
                let mut times = self.enqueued.lock();
                let now = ferry_core::monotonic_us();
                times.push_back((now, bytes));
                if times.len() == 1 {
                    self.metrics.oldest_enqueued_us.store(now, Ordering::Relaxed);
                }
                let sent = self.tx.send(events);
                if sent.is_err() {
                    times.pop_back();
                    SinkMetrics::sub(&self.metrics.buffered_bytes, bytes);
                    if times.is_empty() {
                        self.metrics.oldest_enqueued_us.store(0, Ordering::Relaxed);
                    }
                }
                drop(times);
                if let Err(mpsc::error::SendError(returned)) = sent {
                    SinkMetrics::sub(&self.metrics.buffered, returned.len() as u64);
                    SinkMetrics::sub(&self.metrics.received, returned.len() as u64);
                    self.count_dropped(returned.len() + rest.len());
                    return Err(SendClosed);
                }
            }
            events = rest;
        }
        Ok(())
    }

    fn count_dropped(&self, events: usize) {
        SinkMetrics::add(&self.metrics.dropped, events as u64);
    }

    fn take_available_room(&self, wanted: usize) -> usize {
        loop {
            let available = self.room.available_permits().min(wanted);
            if available == 0 {
                return 0;
            }
            // Another writer may have taken room since we looked: try again with what is left.
            match self.room.try_acquire_many(available as u32) {
                Ok(permit) => {
                    permit.forget();
                    return available;
                }
                Err(TryAcquireError::NoPermits) => {}
                // The reader is gone (a closed semaphore still reports its permits): no room.
                Err(TryAcquireError::Closed) => return 0,
            }
        }
    }
}

impl Stream for MemoryReader {
    type Item = Vec<LogEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(batch)) => {
                let mut times = this.enqueued.lock();
                let (_, bytes) = times.pop_front().unwrap_or_default();
                let oldest = times.front().map_or(0, |&(at, _)| at);
                this.metrics.oldest_enqueued_us.store(oldest, Ordering::Relaxed);
                drop(times);
                SinkMetrics::sub(&this.metrics.buffered_bytes, bytes);
                this.room.add_permits(batch.len());
                SinkMetrics::sub(&this.metrics.buffered, batch.len() as u64);
                Poll::Ready(Some(batch))
            }
            other => other,
        }
    }
}

impl Drop for MemoryReader {
    /// The sink is gone (it failed, or the run ended): writers waiting for room must not wait
    /// forever, and the events still queued are dropped, counted.
    fn drop(&mut self) {
        self.room.close();
        self.rx.close();
        let bytes: u64 = self.enqueued.lock().drain(..).map(|(_, bytes)| bytes).sum();
        SinkMetrics::sub(&self.metrics.buffered_bytes, bytes);
        self.metrics.oldest_enqueued_us.store(0, Ordering::Relaxed);
        while let Ok(batch) = self.rx.try_recv() {
            let n = batch.len() as u64;
            SinkMetrics::sub(&self.metrics.buffered, n);
            SinkMetrics::add(&self.metrics.dropped, n);
            for event in batch {
                event.settle(DeliveryStatus::Errored);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::BatchNotifier;
    use futures::StreamExt;
    use std::time::Duration;

    fn events(n: usize) -> Vec<LogEvent> {
        (0..n).map(|i| LogEvent::from_message(i.to_string())).collect()
    }

    fn message(e: &LogEvent) -> String {
        String::from_utf8(e.message().unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn preserves_order_and_splits_big_batches() {
        let metrics = Arc::new(SinkMetrics::default());
        let (w, mut r) = channel(3, WhenFull::Block, metrics.clone()).unwrap();
        let writer = tokio::spawn(async move { w.write(events(7)).await });
        let mut seen = Vec::new();
        while let Some(batch) = r.next().await {
            assert!(batch.len() <= 3);
            seen.extend(batch.iter().map(message));
        }
        writer.await.unwrap().unwrap();
        assert_eq!(seen, (0..7).map(|i| i.to_string()).collect::<Vec<_>>());
        assert_eq!(metrics.received.load(Ordering::Relaxed), 7);
        assert_eq!(metrics.buffered.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn buffered_bytes_follow_the_batches_in_the_channel() {
        let metrics = Arc::new(SinkMetrics::default());
        let (w, mut r) = channel(10, WhenFull::Block, metrics.clone()).unwrap();
        let bytes = || metrics.buffered_bytes.load(Ordering::Relaxed);
        let batch = events(2);
        let size: u64 = batch.iter().map(|e| e.approximate_size() as u64).sum();
        assert!(size > 0);
        w.write(batch).await.unwrap();
        w.write(events(2)).await.unwrap();
        assert_eq!(bytes(), 2 * size);
        r.next().await.unwrap();
        assert_eq!(bytes(), size);
        drop(r);
        assert_eq!(bytes(), 0, "what a dropped reader held is no longer buffered");
    }

    #[tokio::test]
    async fn the_oldest_waiting_batch_is_timed_until_the_sink_takes_it() {
        let metrics = Arc::new(SinkMetrics::default());
        let (w, mut r) = channel(10, WhenFull::Block, metrics.clone()).unwrap();
        let oldest = || metrics.oldest_enqueued_us.load(Ordering::Relaxed);
        assert_eq!(oldest(), 0);
        w.write(events(2)).await.unwrap();
        let first = oldest();
        assert!(first > 0);
        tokio::time::sleep(Duration::from_millis(5)).await;
        w.write(events(2)).await.unwrap();
        assert_eq!(oldest(), first, "the older batch still waits");
        r.next().await.unwrap();
        assert!(oldest() >= first + 5_000, "now the second batch is the oldest");
        r.next().await.unwrap();
        assert_eq!(oldest(), 0);
    }

    #[tokio::test]
    async fn blocked_writer_resumes_when_room_frees() {
        let (w, mut r) = channel(2, WhenFull::Block, Arc::new(SinkMetrics::default())).unwrap();
        w.write(events(2)).await.unwrap();
        let w2 = w.clone();
        let mut pending = tokio::spawn(async move { w2.write(events(1)).await });
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut pending)
                .await
                .is_err(),
            "should block while full"
        );
        assert_eq!(r.next().await.unwrap().len(), 2);
        pending.await.unwrap().unwrap();
        assert_eq!(r.next().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_writer_waiting_for_room_lets_go_once_the_reader_is_gone() {
        let metrics = Arc::new(SinkMetrics::default());
        let (w, r) = channel(2, WhenFull::Block, metrics.clone()).unwrap();
        w.write(events(2)).await.unwrap();
        let w2 = w.clone();
        let mut pending = tokio::spawn(async move { w2.write(events(3)).await });
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut pending)
                .await
                .is_err(),
            "should block while full"
        );
        drop(r);
        let result = tokio::time::timeout(Duration::from_secs(5), pending)
            .await
            .expect("the blocked writer returns")
            .unwrap();
        assert_eq!(result, Err(SendClosed));
        assert_eq!(w.write(events(1)).await, Err(SendClosed));
        // 2 queued when the reader went, 3 blocked, 1 written after.
        assert_eq!(metrics.dropped.load(Ordering::Relaxed), 6);
        assert_eq!(metrics.buffered.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_drop_newest_writer_gets_closed_once_the_reader_is_gone() {
        let metrics = Arc::new(SinkMetrics::default());
        let (w, r) = channel(10, WhenFull::DropNewest, metrics.clone()).unwrap();
        w.write(events(2)).await.unwrap();
        drop(r);
        let result = tokio::time::timeout(Duration::from_secs(5), w.write(events(3)))
            .await
            .expect("the writer does not spin");
        assert_eq!(result, Err(SendClosed));
        assert_eq!(metrics.dropped.load(Ordering::Relaxed), 5);
    }

    #[tokio::test]
    async fn drop_newest_counts_and_reports_what_it_dropped() {
        let metrics = Arc::new(SinkMetrics::default());
        let (w, mut r) = channel(2, WhenFull::DropNewest, metrics.clone()).unwrap();
        let (notifier, status) = BatchNotifier::new_with_receiver();
        let mut batch = events(3);
        for e in &mut batch {
            e.attach_notifier(&notifier);
        }
        drop(notifier);
        w.write(batch).await.unwrap();
        assert_eq!(metrics.dropped.load(Ordering::Relaxed), 1);
        let kept = r.next().await.unwrap();
        assert_eq!(kept.iter().map(message).collect::<Vec<_>>(), ["0", "1"]);
        for e in kept {
            e.settle(DeliveryStatus::Delivered);
        }
        assert_eq!(status.await, DeliveryStatus::Errored);
    }
}
