use std::time::Duration;

use chrono::Utc;
use ferry_core::{BoxError, SourceContext};

use crate::config::DemoSourceConfig;
use crate::generator::DemoGenerator;

/// How often a rate-limited source emits a batch.
const TICK: Duration = Duration::from_millis(50);
/// Batch size when running as fast as possible.
const UNPACED_BATCH: u64 = 1024;

pub(crate) async fn run(config: DemoSourceConfig, cx: SourceContext) -> Result<(), BoxError> {
    let seed = config.seed.unwrap_or_else(|| fastrand::u64(..));
    let mut generator = DemoGenerator::new(config.format, seed);
    let mut remaining = config.count.unwrap_or(u64::MAX);
    let per_tick = config.rate * TICK.as_secs_f64();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Fractions of an event owed from earlier ticks, so low rates still come out right.
    let mut owed = 0.0f64;
    while remaining > 0 {
        let n = if config.rate == 0.0 {
            UNPACED_BATCH.min(remaining)
        } else {
            tokio::select! {
                _ = ticker.tick() => {}
                () = cx.shutdown.cancelled() => break,
            }
            owed += per_tick;
            let whole = owed.floor();
            owed -= whole;
            (whole as u64).min(remaining)
        };
        if cx.shutdown.is_cancelled() {
            break;
        }
        if n == 0 {
            continue;
        }
        let now = Utc::now();
        let batch: Vec<_> = (0..n).map(|_| generator.next_event(now)).collect();
        // What it "read": the bytes of the messages it made up.
        let bytes: usize = batch.iter().map(|e| e.message().map_or(0, |m| m.len())).sum();
        cx.metrics.add_bytes(bytes as u64);
        tokio::select! {
            sent = cx.out.send_batch(batch) => if sent.is_err() { break },
            () = cx.shutdown.cancelled() => break,
        }
        remaining -= n;
    }
    tracing::debug!(source = %cx.id, seed, "demo source finished");
    Ok(())
}
