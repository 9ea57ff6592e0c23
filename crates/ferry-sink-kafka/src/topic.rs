//! Producing through topic handles made once per topic.
//!
//! rdkafka's `BaseProducer::send` builds a `CString` of the topic name for every message, and
//! librdkafka then looks the topic up by name under the client's lock. A handle kept per topic
//! (as kcat does) skips both: together with the variadic call's topic lookup they were about 6%
//! of the instructions of the pass-through pipeline in a callgrind profile.
//!
//! Records without a key go to one partition per batch, taken in turn, instead of through
//! librdkafka's sticky partitioner, which takes a topic lock and reads the clock for every
//! message (about a fifth of the sink task's instructions). Like the sticky partitioner this
//! keeps batches large; unlike it, it needs to know which of the topic's partitions have a
//! leader, which the [`MetadataWatcher`] reads off the sink task. Until it knows, and for
//! records sent again after a failure, librdkafka's own partitioner chooses.

use std::collections::HashMap;
use std::ffi::CString;
use std::ptr::{self, NonNull};
use std::time::{Duration, Instant};

use rdkafka::bindings as rdsys;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::Producer as _;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::IntoOpaque;

use crate::client::Producer;
use crate::context::DeliveryHandle;
use crate::metadata::MetadataWatcher;

/// One record as librdkafka takes it.
pub(crate) struct OutgoingRecord<'a> {
    pub(crate) topic: &'a str,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) payload: &'a [u8],
    pub(crate) headers: Option<OwnedHeaders>,
    pub(crate) timestamp: Option<i64>,
}

/// A record librdkafka did not take, with what the caller needs to try again or reject it.
pub(crate) struct NotQueued {
    pub(crate) error: KafkaError,
    pub(crate) finalizer: DeliveryHandle,
    pub(crate) headers: Option<OwnedHeaders>,
}

/// How often handles are checked for idleness.
const SWEEP: Duration = Duration::from_secs(60);
/// Sweeps a handle may stay unused before it is dropped (with its per-topic state).
const IDLE_SWEEPS: u8 = 5;
/// librdkafka's "any partition": its partitioner chooses.
const UNASSIGNED: i32 = -1;

struct TopicHandle {
    name: Box<str>,
    ptr: NonNull<rdsys::rd_kafka_topic_t>,
    /// The partitions with a leader, when the metadata said.
    with_leader: Vec<i32>,
    /// Used since the last sweep.
    used: bool,
    /// Sweeps in a row it was not used.
    idle_sweeps: u8,
    /// Keeps the client alive for as long as the handle: a topic handle must be destroyed
    /// before its client.
    _producer: Producer,
}

// SAFETY: librdkafka's topic handles are reference counted and may be used and destroyed from
// any thread.
unsafe impl Send for TopicHandle {}

impl Drop for TopicHandle {
    fn drop(&mut self) {
        // SAFETY: made by `rd_kafka_topic_new`, destroyed once, while the client lives.
        unsafe { rdsys::rd_kafka_topic_destroy(self.ptr.as_ptr()) }
    }
}

/// The producer and a handle per topic it has produced to.
pub(crate) struct TopicProducer {
    producer: Producer,
    metadata: MetadataWatcher,
    /// The metadata generation the handles' layouts come from.
    metadata_seen: u64,
    handles: Vec<TopicHandle>,
    /// Where each topic's handle is in `handles`.
    by_name: HashMap<Box<str>, usize>,
    /// The handle used last: consecutive records mostly share a topic, and comparing a name
    /// is cheaper than hashing it (a SipHash lookup per record was ~1.3% of a json -> json
    /// pipeline's instructions).
    last: usize,
    /// Batches started: picks the partition of keyless records.
    batches: u64,
    next_sweep: Instant,
}

impl TopicProducer {
    pub(crate) fn new(producer: Producer, metadata: MetadataWatcher) -> Self {
        Self {
            producer,
            metadata,
            metadata_seen: u64::MAX,
            handles: Vec::new(),
            by_name: HashMap::new(),
            last: 0,
            batches: 0,
            next_sweep: Instant::now() + SWEEP,
        }
    }

    /// The producer records go through.
    pub(crate) fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The metadata watcher (to ask for a refresh after a failure, or to read a layout).
    pub(crate) fn metadata(&self) -> &MetadataWatcher {
        &self.metadata
    }

    /// Sends through `producer` from now on (after a rebuild); returns the old one. Handles
    /// belong to a client, so they are made again as records need them.
    pub(crate) fn replace_producer(&mut self, producer: Producer) -> Producer {
        self.handles.clear();
        self.by_name.clear();
        self.last = 0;
        self.metadata.set_producer(producer.clone());
        std::mem::replace(&mut self.producer, producer)
    }

    /// Starts a batch: its keyless records go to the next partition in turn.
    pub(crate) fn next_batch(&mut self) {
        self.batches = self.batches.wrapping_add(1);
        let generation = self.metadata.generation();
        if generation != self.metadata_seen {
            self.metadata_seen = generation;
            for handle in &mut self.handles {
                handle.with_leader = self
                    .metadata
                    .layout(&handle.name)
                    .map(|l| l.with_leader)
                    .unwrap_or_default();
            }
        }
        let now = Instant::now();
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP;
            self.sweep();
        }
    }

    /// Drops the handles of topics not used for a while.
    fn sweep(&mut self) {
        for handle in &mut self.handles {
            if handle.used {
                handle.idle_sweeps = 0;
            } else {
                handle.idle_sweeps = handle.idle_sweeps.saturating_add(1);
            }
            handle.used = false;
        }
        if self.handles.iter().any(|h| h.idle_sweeps >= IDLE_SWEEPS) {
            self.handles.retain(|h| h.idle_sweeps < IDLE_SWEEPS);
            self.by_name = self
                .handles
                .iter()
                .enumerate()
                .map(|(i, h)| (h.name.clone(), i))
                .collect();
            self.last = 0;
        }
    }

    /// The handle of `topic`, its index, and the partition for a record of the current batch.
    fn handle(
        &mut self,
        topic: &str,
        spread: bool,
    ) -> Result<(*mut rdsys::rd_kafka_topic_t, usize, i32), KafkaError> {
        let index = match self.handles.get(self.last) {
            Some(handle) if *handle.name == *topic => self.last,
            _ => match self.by_name.get(topic) {
                Some(&index) => index,
                None => self.create_handle(topic)?,
            },
        };
        self.last = index;
        // `last` and `by_name` only ever hold indexes of `handles`.
        let handle = &mut self.handles[index];
        handle.used = true;
        let partition = match (spread, handle.with_leader.len()) {
            (true, n) if n > 0 => {
                let slot = usize::try_from(self.batches % n as u64).unwrap_or(0);
                handle.with_leader.get(slot).copied().unwrap_or(UNASSIGNED)
            }
            _ => UNASSIGNED,
        };
        Ok((handle.ptr.as_ptr(), index, partition))
    }

    /// Makes the handle of `topic`, asks for its layout, and returns its index. A name Kafka
    /// would never accept is refused here, before librdkafka sees it.
    fn create_handle(&mut self, topic: &str) -> Result<usize, KafkaError> {
        if crate::failure::valid_topic_name(topic).is_err() {
            return Err(KafkaError::MessageProduction(RDKafkaErrorCode::InvalidTopic));
        }
        let name = CString::new(topic).map_err(KafkaError::from)?;
        // SAFETY: a live client and a NUL-terminated name; no per-topic configuration.
        let raw = unsafe {
            rdsys::rd_kafka_topic_new(
                self.producer.client().native_ptr(),
                name.as_ptr(),
                ptr::null_mut(),
            )
        };
        let Some(ptr) = NonNull::new(raw) else {
            // SAFETY: reads this thread's last librdkafka error, set by the failed call above.
            let code = unsafe { rdsys::rd_kafka_last_error() };
            return Err(KafkaError::MessageProduction(RDKafkaErrorCode::from(code)));
        };
        self.metadata.watch(topic);
        let index = self.handles.len();
        self.handles.push(TopicHandle {
            name: topic.into(),
            ptr,
            with_leader: self
                .metadata
                .layout(topic)
                .map(|l| l.with_leader)
                .unwrap_or_default(),
            used: true,
            idle_sweeps: 0,
            _producer: self.producer.clone(),
        });
        self.by_name.insert(topic.into(), index);
        Ok(index)
    }

    /// Queues one record in librdkafka (copying key and payload); its delivery report will
    /// carry `finalizer`.
    /// With `spread`, a keyless record goes to the current batch's partition; otherwise (and
    /// for keyed records) librdkafka's partitioner chooses.
    pub(crate) fn send(
        &mut self,
        record: OutgoingRecord<'_>,
        finalizer: DeliveryHandle,
        spread: bool,
    ) -> Result<(), NotQueued> {
        let (topic, index, mut partition) = match self.handle(record.topic, spread && record.key.is_none()) {
            Ok(found) => found,
            Err(error) => {
                return Err(NotQueued {
                    error,
                    finalizer,
                    headers: record.headers,
                });
            }
        };
        let (key_ptr, key_len) = record.key.map_or((ptr::null_mut::<std::ffi::c_void>(), 0), |k| {
            (k.as_ptr().cast_mut().cast(), k.len())
        });
        // `BorrowedHeaders` is rdkafka's zero-sized view whose address *is* the native headers
        // pointer (that is how `OwnedHeaders::as_borrowed` makes it); rdkafka keeps the pointer
        // getter itself crate-private.
        let headers_ptr = record.headers.as_ref().map_or(ptr::null_mut(), |h| {
            std::ptr::from_ref(h.as_borrowed())
                .cast_mut()
                .cast::<rdsys::rd_kafka_headers_t>()
        });
        let opaque = finalizer.into_ptr();
        use rdsys::rd_kafka_vtype_t::*;
        let code = loop {
            // SAFETY: the same call rdkafka's `BaseProducer::send` makes, with a topic handle kept
            // alive by `self` instead of a name; librdkafka copies key and payload (F_COPY) and
            // takes the headers only when it accepts the record.
            let code = unsafe {
                rdsys::rd_kafka_producev(
                    self.producer.client().native_ptr(),
                    RD_KAFKA_VTYPE_RKT,
                    topic,
                    RD_KAFKA_VTYPE_PARTITION,
                    partition,
                    RD_KAFKA_VTYPE_MSGFLAGS,
                    rdsys::RD_KAFKA_MSG_F_COPY,
                    RD_KAFKA_VTYPE_VALUE,
                    record.payload.as_ptr().cast_mut().cast::<std::ffi::c_void>(),
                    record.payload.len(),
                    RD_KAFKA_VTYPE_KEY,
                    key_ptr,
                    key_len,
                    RD_KAFKA_VTYPE_OPAQUE,
                    opaque,
                    RD_KAFKA_VTYPE_TIMESTAMP,
                    record.timestamp.unwrap_or(0),
                    RD_KAFKA_VTYPE_HEADERS,
                    headers_ptr,
                    RD_KAFKA_VTYPE_END,
                )
            };
            // A partition the metadata named but librdkafka does not know (yet): let its
            // partitioner choose, and read the layout again.
            if code == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION
                && partition != UNASSIGNED
            {
                partition = UNASSIGNED;
                if let Some(handle) = self.handles.get(index) {
                    self.metadata.refresh_soon(&handle.name);
                }
                continue;
            }
            break code;
        };
        if code == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            // librdkafka owns the headers now.
            std::mem::forget(record.headers);
            return Ok(());
        }
        Err(NotQueued {
            error: KafkaError::MessageProduction(RDKafkaErrorCode::from(code)),
            // SAFETY: librdkafka did not take the record, so the opaque is still ours.
            finalizer: unsafe { DeliveryHandle::from_ptr(opaque) },
            headers: record.headers,
        })
    }
}
