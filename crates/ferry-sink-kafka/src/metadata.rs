//! Partition layouts of the topics the sink writes to, fetched on a thread of its own.
//!
//! A metadata request blocks for a network round trip (up to its timeout when the broker is
//! away), so it never runs on the sink task or any async worker. The sink asks for a topic
//! and reads the latest answer when it starts a batch; until there is one, librdkafka's own
//! partitioner chooses.
//!
//! Asking for a topic's metadata also refreshes librdkafka's own cache for it, which is how a
//! topic created after librdkafka decided it does not exist becomes writable again without
//! waiting for its five-minute refresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::producer::Producer as _;

use crate::client::Producer;

/// How often a topic's layout is read again (partitions are added, leaders move).
const REFRESH: Duration = Duration::from_secs(30);
/// How long one request may wait for the cluster.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A topic not asked about for this long is dropped from the watch list.
const IDLE: Duration = Duration::from_secs(600);

/// Where a topic's records may go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TopicLayout {
    /// The partitions that have a leader now: keyless batches go only to these.
    pub(crate) with_leader: Vec<i32>,
}

struct Watched {
    refresh_at: Instant,
    asked_at: Instant,
    layout: Option<TopicLayout>,
}

struct State {
    producer: Option<Producer>,
    topics: HashMap<String, Watched>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Bumped whenever a layout changes, so the sink re-reads only then.
    generation: AtomicU64,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The handle the sink holds; the thread ends when it is dropped.
pub(crate) struct MetadataWatcher {
    shared: Arc<Shared>,
}

impl MetadataWatcher {
    /// Starts the thread, reading through `producer`.
    pub(crate) fn start(producer: Producer, sink_id: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                producer: Some(producer),
                topics: HashMap::new(),
            }),
            wake: Condvar::new(),
            generation: AtomicU64::new(0),
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("ferry-meta-{sink_id}"))
            .spawn(move || watch(&thread_shared))?;
        Ok(Self { shared })
    }

    /// Asks for `topic`'s layout (now, if it is not watched yet).
    pub(crate) fn watch(&self, topic: &str) {
        let mut state = lock(&self.shared);
        let now = Instant::now();
        match state.topics.get_mut(topic) {
            Some(watched) => watched.asked_at = now,
            None => {
                state.topics.insert(
                    topic.to_owned(),
                    Watched {
                        refresh_at: now,
                        asked_at: now,
                        layout: None,
                    },
                );
                self.shared.wake.notify_one();
            }
        }
    }

    /// Reads `topic` again soon (a leader moved, or it was missing).
    pub(crate) fn refresh_soon(&self, topic: &str) {
        let mut state = lock(&self.shared);
        if let Some(watched) = state.topics.get_mut(topic) {
            watched.refresh_at = Instant::now();
            watched.asked_at = Instant::now();
            self.shared.wake.notify_one();
        } else {
            drop(state);
            self.watch(topic);
        }
    }

    /// A number that changes whenever a layout changed.
    pub(crate) fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// The last known layout of `topic`.
    pub(crate) fn layout(&self, topic: &str) -> Option<TopicLayout> {
        lock(&self.shared).topics.get(topic)?.layout.clone()
    }

    /// A way for tests to see what the watcher knows after the sink took it over.
    #[cfg(test)]
    pub(crate) fn probe(&self) -> impl Fn(&str) -> Option<TopicLayout> + Send + Sync + 'static {
        let shared = self.shared.clone();
        move |topic| lock(&shared).topics.get(topic)?.layout.clone()
    }

    /// Reads through a new producer from now on (after a rebuild).
    pub(crate) fn set_producer(&self, producer: Producer) {
        lock(&self.shared).producer = Some(producer);
    }
}

impl Drop for MetadataWatcher {
    fn drop(&mut self) {
        lock(&self.shared).producer = None;
        self.shared.wake.notify_one();
    }
}

/// The thread: reads due topics one at a time, without holding the lock during a request.
fn watch(shared: &Shared) {
    let mut state = lock(shared);
    loop {
        let Some(producer) = state.producer.clone() else {
            return;
        };
        let now = Instant::now();
        state.topics.retain(|_, w| now.duration_since(w.asked_at) < IDLE);
        let due = state
            .topics
            .iter()
            .filter(|(_, w)| w.refresh_at <= now)
            .map(|(name, _)| name.clone())
            .next();
        let Some(topic) = due else {
            let next = state.topics.values().map(|w| w.refresh_at).min();
            let wait = next.map_or(REFRESH, |at| at.saturating_duration_since(now));
            drop(producer);
            state = shared
                .wake
                .wait_timeout(state, wait)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
            continue;
        };
        drop(state);
        let layout = fetch(&producer, &topic);
        drop(producer);
        state = lock(shared);
        if let Some(watched) = state.topics.get_mut(&topic) {
            // A missing or unreachable topic is asked again sooner: it may appear any time.
            watched.refresh_at = Instant::now() + if layout.is_some() { REFRESH } else { REFRESH / 10 };
            if watched.layout != layout {
                tracing::debug!(topic = %topic, with_leader = ?layout.as_ref().map(|l| &l.with_leader), "topic layout");
                watched.layout = layout;
                shared.generation.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

fn fetch(producer: &Producer, topic: &str) -> Option<TopicLayout> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .ok()?;
    let topic = metadata.topics().iter().find(|t| t.name() == topic)?;
    if topic.error().is_some() || topic.partitions().is_empty() {
        return None;
    }
    let mut with_leader: Vec<i32> = topic
        .partitions()
        .iter()
        .filter(|p| p.leader() >= 0 && p.error().is_none())
        .map(|p| p.id())
        .collect();
    with_leader.sort_unstable();
    Some(TopicLayout { with_leader })
}
