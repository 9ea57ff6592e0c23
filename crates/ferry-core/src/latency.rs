//! A delivery-latency histogram that costs three relaxed atomic adds per observation: no
//! lock, no allocation. `/metrics` reads it as a Prometheus histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (1 ms to 60 s, then `+Inf`).
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000, 60_000_000,
];

/// Observations per bucket (not cumulative; the last one is `+Inf`), their sum and count.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

/// A copy of a histogram at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Observations per bucket, not cumulative; the last one is `+Inf`.
    pub buckets: [u64; LATENCY_BUCKETS_US.len() + 1],
    /// Sum of the observations, in microseconds.
    pub sum_us: u64,
    /// Number of observations.
    pub count: u64,
}

impl LatencyHistogram {
    /// Records one latency of `micros` microseconds.
    pub fn observe_us(&self, micros: u64) {
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one latency.
    pub fn observe(&self, latency: Duration) {
        self.observe_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Reads the histogram.
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_us: self.sum_us.load(Ordering::Relaxed),
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_observation_lands_in_the_first_bucket_that_holds_it() {
        let h = LatencyHistogram::default();
        h.observe_us(0);
        h.observe_us(1_000);
        h.observe_us(1_001);
        h.observe_us(120_000_000);
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 2);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[LATENCY_BUCKETS_US.len()], 1);
        assert_eq!(s.count, 4);
        assert_eq!(s.sum_us, 120_002_001);
    }
}
