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
//! keeps batches large; unlike it, it needs the topic's partition count, read from the
//! cluster's metadata when the topic is first used and every minute after. Until it is known
//! (the broker is away), and for records sent again after a failure, librdkafka's own
//! partitioner chooses, so a partition without a leader only delays the records of one batch
//! until they are sent again.

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

/// How often partition counts are read again (topics can gain partitions).
const PARTITIONS_REFRESH: Duration = Duration::from_secs(60);
/// How long the sink may wait for the partition count of a topic (it blocks the sink task,
/// at most once per topic per refresh).
const METADATA_TIMEOUT: Duration = Duration::from_millis(500);
/// librdkafka's "any partition": its partitioner chooses.
const UNASSIGNED: i32 = -1;

struct TopicHandle {
    name: Box<str>,
    ptr: NonNull<rdsys::rd_kafka_topic_t>,
    /// The topic's partition count, when the metadata said.
    partitions: Option<u32>,
    /// Read the partition count again before the next record.
    stale: bool,
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

/// The partition count of `topic` from the cluster's metadata, if it answers in time.
fn partition_count(producer: &Producer, topic: &str) -> Option<u32> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .ok()?;
    let topic = metadata.topics().first()?;
    if topic.error().is_some() {
        return None;
    }
    u32::try_from(topic.partitions().len()).ok().filter(|&n| n > 0)
}

/// The producer and a handle per topic it has produced to.
pub(crate) struct TopicProducer {
    producer: Producer,
    handles: Vec<TopicHandle>,
    /// Where each topic's handle is in `handles`.
    by_name: HashMap<Box<str>, usize>,
    /// The handle used last: consecutive records mostly share a topic, and comparing a name
    /// is cheaper than hashing it (a SipHash lookup per record was ~1.3% of a json -> json
    /// pipeline's instructions).
    last: usize,
    /// Batches started: picks the partition of keyless records.
    batches: u64,
    next_refresh: Instant,
}

impl TopicProducer {
    pub(crate) fn new(producer: Producer) -> Self {
        Self {
            producer,
            handles: Vec::new(),
            by_name: HashMap::new(),
            last: 0,
            batches: 0,
            next_refresh: Instant::now() + PARTITIONS_REFRESH,
        }
    }

    /// Starts a batch: its keyless records go to the next partition in turn.
    pub(crate) fn next_batch(&mut self) {
        self.batches = self.batches.wrapping_add(1);
        let now = Instant::now();
        if now >= self.next_refresh {
            self.next_refresh = now + PARTITIONS_REFRESH;
            for handle in &mut self.handles {
                handle.stale = true;
            }
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
        if spread && handle.stale {
            handle.partitions = partition_count(&self.producer, topic);
            // Not asked again before the next refresh, even if it failed: each ask may block
            // the sink for up to METADATA_TIMEOUT.
            handle.stale = false;
        }
        let partition = match (spread, handle.partitions) {
            (true, Some(n)) => i32::try_from(self.batches % u64::from(n)).unwrap_or(UNASSIGNED),
            _ => UNASSIGNED,
        };
        Ok((handle.ptr.as_ptr(), index, partition))
    }

    /// Makes the handle of `topic` (stale, so a keyless record first asks for the partition
    /// count) and returns its index.
    fn create_handle(&mut self, topic: &str) -> Result<usize, KafkaError> {
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
        let index = self.handles.len();
        self.handles.push(TopicHandle {
            name: topic.into(),
            ptr,
            partitions: None,
            stale: true,
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
            // partitioner choose, and read the count again.
            if code == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION
                && partition != UNASSIGNED
            {
                partition = UNASSIGNED;
                if let Some(handle) = self.handles.get_mut(index) {
                    handle.stale = true;
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
