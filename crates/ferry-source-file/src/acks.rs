//! The per-file low-water mark: how far a file's checkpoint may move.
//!
//! Each batch a file emits covers a byte range that starts where the previous one ended.
//! Verdicts arrive in any order (from Kafka's delivery reports, from a disk buffer's fsync);
//! the checkpoint moves past a batch only once that batch and every earlier batch of the same
//! file are settled. `Delivered` and `Rejected` settle a batch (a rejected line is in the
//! dead-letter destination: sending it again would not help). `Errored` does not: the
//! checkpoint stays before such a batch for the rest of the run, so a restart reads it again.
//! From then on the ledger is *stuck*: it stops recording batches (nothing can move the
//! checkpoint any more), so its memory stays bounded however long the run goes on.

use std::collections::VecDeque;

use ferry_core::DeliveryStatus;

/// Outstanding batches of one file, in the order they were emitted.
#[derive(Debug)]
pub struct AckLedger {
    committed: u64,
    /// The sequence number of the first slot of `pending`.
    first_seq: u64,
    pending: VecDeque<Slot>,
    stuck: bool,
}

/// The sequence number of batches a stuck ledger no longer records.
const UNRECORDED: u64 = u64::MAX;

#[derive(Debug)]
struct Slot {
    start: u64,
    end: u64,
    verdict: Option<DeliveryStatus>,
}

impl AckLedger {
    /// A ledger whose checkpoint starts at `committed`.
    pub fn new(committed: u64) -> Self {
        Self {
            committed,
            first_seq: 0,
            pending: VecDeque::new(),
            stuck: false,
        }
    }

    /// Whether an errored batch holds the checkpoint for the rest of the run.
    pub fn is_stuck(&self) -> bool {
        self.stuck
    }

    /// The offset before which every line is safe.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Whether every batch emitted so far is settled.
    pub fn is_settled(&self) -> bool {
        self.pending.is_empty()
    }

    /// Records a batch covering the bytes from the end of the previous one (or the checkpoint)
    /// to `end`, and returns its sequence number.
    pub fn record(&mut self, end: u64) -> u64 {
        if self.stuck {
            return UNRECORDED;
        }
        let start = self.pending.back().map_or(self.committed, |s| s.end);
        self.pending.push_back(Slot {
            start,
            end,
            verdict: None,
        });
        self.first_seq + self.pending.len() as u64 - 1
    }

    /// Records the verdict on batch `seq`. Returns the offset of an `Errored` batch that now
    /// holds the checkpoint back (for the caller to report), and moves the checkpoint over
    /// every settled batch at the front. Unknown sequence numbers (batches forgotten by
    /// [`AckLedger::restart_at`]) are ignored.
    pub fn settle(&mut self, seq: u64, status: DeliveryStatus) -> Option<u64> {
        if self.stuck {
            return None;
        }
        let index = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        let slot = self.pending.get_mut(index)?;
        if slot.verdict.is_none() {
            slot.verdict = Some(status);
        }
        while let Some(front) = self.pending.front() {
            match front.verdict {
                Some(DeliveryStatus::Delivered | DeliveryStatus::Rejected) => {
                    self.committed = front.end;
                    self.pending.pop_front();
                    self.first_seq += 1;
                }
                Some(DeliveryStatus::Errored) => {
                    let at = front.start;
                    self.stuck = true;
                    self.first_seq += self.pending.len() as u64;
                    self.pending.clear();
                    return Some(at);
                }
                None => break,
            }
        }
        None
    }

    /// Forgets every outstanding batch and starts over at `offset` (the file was truncated:
    /// the old ranges no longer exist). Later verdicts on forgotten batches are ignored.
    pub fn restart_at(&mut self, offset: u64) {
        self.first_seq += self.pending.len() as u64;
        self.pending.clear();
        self.committed = offset;
        // The lines that held it back no longer exist.
        self.stuck = false;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn moves_only_over_a_settled_prefix() {
        let mut ledger = AckLedger::new(10);
        let a = ledger.record(20);
        let b = ledger.record(30);
        let c = ledger.record(40);
        ledger.settle(b, DeliveryStatus::Delivered);
        assert_eq!(ledger.committed(), 10);
        ledger.settle(a, DeliveryStatus::Rejected);
        assert_eq!(ledger.committed(), 30);
        ledger.settle(c, DeliveryStatus::Delivered);
        assert_eq!(ledger.committed(), 40);
        assert!(ledger.is_settled());
    }

    #[test]
    fn an_errored_batch_holds_the_checkpoint_for_good() {
        let mut ledger = AckLedger::new(0);
        let a = ledger.record(5);
        let b = ledger.record(9);
        assert_eq!(ledger.settle(a, DeliveryStatus::Errored), Some(0));
        ledger.settle(b, DeliveryStatus::Delivered);
        assert_eq!(ledger.committed(), 0);
        assert!(ledger.is_stuck());
        // Later batches are not recorded: memory stays bounded.
        for end in 10..1000 {
            let seq = ledger.record(end);
            ledger.settle(seq, DeliveryStatus::Delivered);
        }
        assert_eq!(ledger.committed(), 0);
        assert!(ledger.pending.is_empty());
    }

    #[test]
    fn verdicts_on_forgotten_batches_are_ignored() {
        let mut ledger = AckLedger::new(0);
        let old = ledger.record(100);
        ledger.restart_at(0);
        let new = ledger.record(7);
        ledger.settle(old, DeliveryStatus::Delivered);
        assert_eq!(ledger.committed(), 0);
        ledger.settle(new, DeliveryStatus::Delivered);
        assert_eq!(ledger.committed(), 7);
    }

    fn status() -> impl Strategy<Value = DeliveryStatus> {
        prop_oneof![
            6 => Just(DeliveryStatus::Delivered),
            2 => Just(DeliveryStatus::Rejected),
            1 => Just(DeliveryStatus::Errored),
        ]
    }

    proptest! {
        /// Whatever order verdicts come in, the checkpoint is exactly the end of the longest
        /// run of settled batches from the start: never past an unsettled or errored line.
        #[test]
        fn checkpoint_is_the_settled_prefix(
            sizes in prop::collection::vec(1u64..500, 1..40),
            verdicts in prop::collection::vec(status(), 40),
            order_seed in any::<u64>(),
        ) {
            let mut ledger = AckLedger::new(0);
            let mut ends = Vec::new();
            let mut end = 0;
            for size in &sizes {
                end += size;
                ends.push(end);
                ledger.record(end);
            }
            let mut order: Vec<usize> = (0..sizes.len()).collect();
            let mut rng = order_seed;
            for i in (1..order.len()).rev() {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (rng >> 33) as usize % (i + 1));
            }
            let mut seen: Vec<Option<DeliveryStatus>> = vec![None; sizes.len()];
            for &i in &order {
                ledger.settle(i as u64, verdicts[i]);
                seen[i] = Some(verdicts[i]);
                let prefix = seen
                    .iter()
                    .take_while(|v| matches!(v, Some(DeliveryStatus::Delivered | DeliveryStatus::Rejected)))
                    .count();
                let expected = if prefix == 0 { 0 } else { ends[prefix - 1] };
                prop_assert_eq!(ledger.committed(), expected);
            }
        }
    }
}
