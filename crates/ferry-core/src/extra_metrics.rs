//! Metrics only one kind of sink has (the Kafka sink's librdkafka statistics, its per-topic
//! counters): the sink describes them, `/metrics` reads them at scrape time.

use std::fmt::Debug;

/// Whether an extra metric only goes up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtraKind {
    /// Only goes up (the encoder appends `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One metric family a sink type adds.
#[derive(Clone, Copy, Debug)]
pub struct ExtraFamily {
    /// Its name, without `_total` for counters.
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: ExtraKind,
}

/// One sample of an extra family; the `sink` label is added by the reader.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtraSample {
    /// Index into the families the sink declared.
    pub family: usize,
    /// Labels besides `sink`.
    pub labels: Vec<(&'static str, String)>,
    /// The value (a counter's is shown as an integer).
    pub value: f64,
}

/// What a sink with extra metrics hands to `/metrics`. Called at scrape time only, never on
/// the path events take.
pub trait ExtraMetrics: Send + Sync + Debug {
    /// Every family the sink may report (the same list for every sink of its type).
    fn families(&self) -> &'static [ExtraFamily];

    /// The current samples.
    fn samples(&self, out: &mut Vec<ExtraSample>);
}
