//! End-to-end acknowledgements.
//!
//! A source that wants to know what happened to its events creates one [`BatchNotifier`] per
//! batch it emits and attaches it to every event of the batch. Each event then carries an
//! [`EventFinalizer`]; cloning the event (fan-out to several sinks) clones the finalizer, so
//! every copy must be settled. Whoever takes final responsibility for a copy settles it:
//!
//! - a sink, once the destination confirmed the event (Kafka's delivery report), or rejected it;
//! - a disk buffer, once the event is fsynced (from then on the buffer owns it);
//! - a memory buffer in `drop_newest` mode, when it drops the event.
//!
//! When the last copy is settled the notifier reports the worst status it saw
//! (`Delivered < Errored < Rejected`) to the source. A finalizer that is dropped without a
//! verdict records [`DeliveryStatus::Errored`]: an event that was lost track of is never
//! reported as delivered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

/// The verdict on an event, or on a whole batch (the worst of its events).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum DeliveryStatus {
    /// Stored by its destination (or durably in a disk buffer that will deliver it).
    Delivered = 0,
    /// Not delivered, for a reason that may pass: it could be sent again.
    Errored = 1,
    /// Refused for good (too large, invalid); sending it again would not help.
    Rejected = 2,
}

impl DeliveryStatus {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => DeliveryStatus::Delivered,
            1 => DeliveryStatus::Errored,
            _ => DeliveryStatus::Rejected,
        }
    }
}

enum Completion {
    Channel(oneshot::Sender<DeliveryStatus>),
    Callback(Box<dyn FnOnce(DeliveryStatus) + Send + Sync>),
}

/// Collects the verdicts on a batch of events and reports the worst one when the last event
/// copy referring to it is settled (that is, when the last `Arc` is dropped).
pub struct BatchNotifier {
    status: AtomicU8,
    completion: Option<Completion>,
}

impl BatchNotifier {
    /// A notifier and the receiver its source awaits.
    pub fn new_with_receiver() -> (Arc<Self>, BatchStatusReceiver) {
        let (tx, rx) = oneshot::channel();
        let notifier = Arc::new(Self {
            status: AtomicU8::new(DeliveryStatus::Delivered as u8),
            completion: Some(Completion::Channel(tx)),
        });
        (notifier, BatchStatusReceiver { rx })
    }

    /// A notifier that calls `on_complete` with the batch's verdict instead of sending it over
    /// a channel. Buffers use this to learn when they may delete what they hold.
    pub fn with_callback(on_complete: impl FnOnce(DeliveryStatus) + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            status: AtomicU8::new(DeliveryStatus::Delivered as u8),
            completion: Some(Completion::Callback(Box::new(on_complete))),
        })
    }

    /// Records a verdict on one event copy; the batch keeps the worst.
    pub fn update(&self, status: DeliveryStatus) {
        // `Delivered` is where the value starts and the lowest: nothing to record, and no
        // atomic write per delivered event on the delivery-report thread.
        if status != DeliveryStatus::Delivered {
            // Only ever raising the value makes concurrent updates commute.
            self.status.fetch_max(status as u8, Ordering::AcqRel);
        }
    }
}

impl Drop for BatchNotifier {
    fn drop(&mut self) {
        let status = DeliveryStatus::from_u8(self.status.load(Ordering::Acquire));
        match self.completion.take() {
            // The source may have stopped listening; nobody is left to tell.
            Some(Completion::Channel(tx)) => drop(tx.send(status)),
            Some(Completion::Callback(callback)) => callback(status),
            None => {}
        }
    }
}

impl std::fmt::Debug for BatchNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchNotifier")
            .field(
                "status",
                &DeliveryStatus::from_u8(self.status.load(Ordering::Relaxed)),
            )
            .finish()
    }
}

/// Resolves to a batch's verdict once every copy of every event in it has been settled.
#[derive(Debug)]
pub struct BatchStatusReceiver {
    rx: oneshot::Receiver<DeliveryStatus>,
}

impl Future for BatchStatusReceiver {
    type Output = DeliveryStatus;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            // The notifier always sends on drop; a closed channel means it was leaked or the
            // process is going down, and neither is a delivery.
            .map(|result| result.unwrap_or(DeliveryStatus::Errored))
    }
}

/// The acknowledgement handle one event copy carries. Settle it once with
/// [`EventFinalizer::settle`]; dropping it unsettled records `Errored`.
#[derive(Debug, Default)]
pub struct EventFinalizer {
    notifier: Option<Arc<BatchNotifier>>,
}

impl EventFinalizer {
    /// A finalizer reporting to `notifier`.
    pub fn new(notifier: Arc<BatchNotifier>) -> Self {
        Self {
            notifier: Some(notifier),
        }
    }

    /// Whether anybody waits for this event's verdict.
    pub fn is_tracked(&self) -> bool {
        self.notifier.is_some()
    }

    /// Turns the handle into a pointer that can travel through a C library (librdkafka's
    /// delivery opaque) without an allocation; null when untracked. Nothing is settled: the
    /// handle lives on in the pointer until [`EventFinalizer::from_raw`] takes it back.
    pub fn into_raw(mut self) -> *const () {
        match self.notifier.take() {
            Some(notifier) => Arc::into_raw(notifier).cast(),
            None => std::ptr::null(),
        }
    }

    /// Takes back a handle made by [`EventFinalizer::into_raw`].
    ///
    /// # Safety
    /// `ptr` must come from `into_raw` and be passed here exactly once: each pointer owns one
    /// reference to its batch.
    pub unsafe fn from_raw(ptr: *const ()) -> Self {
        if ptr.is_null() {
            return Self::default();
        }
        // SAFETY: by the caller's promise, `ptr` is an `Arc::into_raw` of a `BatchNotifier`
        // whose reference has not been reclaimed yet.
        let notifier = unsafe { Arc::from_raw(ptr.cast::<BatchNotifier>()) };
        Self {
            notifier: Some(notifier),
        }
    }

    /// Records the verdict and detaches; later calls do nothing.
    pub fn settle(&mut self, status: DeliveryStatus) {
        if let Some(notifier) = self.notifier.take() {
            notifier.update(status);
        }
    }
}

impl Clone for EventFinalizer {
    fn clone(&self) -> Self {
        Self {
            notifier: self.notifier.clone(),
        }
    }
}

impl Drop for EventFinalizer {
    fn drop(&mut self) {
        self.settle(DeliveryStatus::Errored);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_or_never<F: Future + Unpin>(mut f: F) -> Option<F::Output> {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        match Pin::new(&mut f).poll(&mut cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }

    #[test]
    fn batch_resolves_only_after_every_copy_is_settled() {
        let (notifier, mut rx) = BatchNotifier::new_with_receiver();
        let mut a = EventFinalizer::new(notifier.clone());
        let mut b = a.clone();
        drop(notifier);
        a.settle(DeliveryStatus::Delivered);
        assert_eq!(now_or_never(&mut rx), None);
        b.settle(DeliveryStatus::Delivered);
        drop((a, b));
        assert_eq!(now_or_never(&mut rx), Some(DeliveryStatus::Delivered));
    }

    #[test]
    fn worst_verdict_wins() {
        let (notifier, rx) = BatchNotifier::new_with_receiver();
        let mut copies: Vec<_> = (0..3).map(|_| EventFinalizer::new(notifier.clone())).collect();
        drop(notifier);
        copies[0].settle(DeliveryStatus::Rejected);
        copies[1].settle(DeliveryStatus::Delivered);
        copies[2].settle(DeliveryStatus::Errored);
        drop(copies);
        assert_eq!(now_or_never(rx), Some(DeliveryStatus::Rejected));
    }

    #[test]
    fn dropping_an_unsettled_finalizer_is_an_error_not_a_delivery() {
        let (notifier, rx) = BatchNotifier::new_with_receiver();
        let mut delivered = EventFinalizer::new(notifier.clone());
        let forgotten = EventFinalizer::new(notifier);
        delivered.settle(DeliveryStatus::Delivered);
        drop(forgotten);
        drop(delivered);
        assert_eq!(now_or_never(rx), Some(DeliveryStatus::Errored));
    }

    #[test]
    fn settling_twice_keeps_the_first_verdict() {
        let (notifier, rx) = BatchNotifier::new_with_receiver();
        let mut f = EventFinalizer::new(notifier);
        f.settle(DeliveryStatus::Delivered);
        f.settle(DeliveryStatus::Rejected);
        drop(f);
        assert_eq!(now_or_never(rx), Some(DeliveryStatus::Delivered));
    }

    #[test]
    fn callback_notifier_reports_on_last_drop() {
        let seen = Arc::new(std::sync::Mutex::new(None));
        let seen2 = seen.clone();
        let notifier = BatchNotifier::with_callback(move |s| *seen2.lock().unwrap() = Some(s));
        let mut f = EventFinalizer::new(notifier);
        assert!(seen.lock().unwrap().is_none());
        f.settle(DeliveryStatus::Delivered);
        assert_eq!(*seen.lock().unwrap(), Some(DeliveryStatus::Delivered));
    }

    #[test]
    fn raw_round_trip_keeps_the_reference() {
        let (notifier, mut rx) = BatchNotifier::new_with_receiver();
        let raw = EventFinalizer::new(notifier).into_raw();
        assert!(!raw.is_null());
        assert_eq!(
            now_or_never(&mut rx),
            None,
            "the pointer still holds the batch open"
        );
        // SAFETY: `raw` came from `into_raw` and is reclaimed once.
        let mut back = unsafe { EventFinalizer::from_raw(raw) };
        back.settle(DeliveryStatus::Delivered);
        assert_eq!(now_or_never(rx), Some(DeliveryStatus::Delivered));
        assert!(EventFinalizer::default().into_raw().is_null());
    }

    #[test]
    fn untracked_finalizer_is_inert() {
        let mut f = EventFinalizer::default();
        assert!(!f.is_tracked());
        f.settle(DeliveryStatus::Rejected);
    }
}
