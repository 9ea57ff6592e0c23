//! Producing through topic handles made once per topic.
//!
//! rdkafka's `BaseProducer::send` builds a `CString` of the topic name for every message, and
//! librdkafka then looks the topic up by name under the client's lock. A handle kept per topic
//! (as kcat does) skips both: together with the variadic call's topic lookup they were about 6%
//! of the instructions of the pass-through pipeline in a callgrind profile.

use std::collections::HashMap;
use std::ffi::CString;
use std::ptr::{self, NonNull};

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

struct TopicHandle {
    ptr: NonNull<rdsys::rd_kafka_topic_t>,
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
    handles: HashMap<Box<str>, TopicHandle>,
}

impl TopicProducer {
    pub(crate) fn new(producer: Producer) -> Self {
        Self {
            producer,
            handles: HashMap::new(),
        }
    }

    fn handle(&mut self, topic: &str) -> Result<*mut rdsys::rd_kafka_topic_t, KafkaError> {
        if let Some(handle) = self.handles.get(topic) {
            return Ok(handle.ptr.as_ptr());
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
        self.handles.insert(
            topic.into(),
            TopicHandle {
                ptr,
                _producer: self.producer.clone(),
            },
        );
        Ok(ptr.as_ptr())
    }

    /// Queues one record in librdkafka (copying key and payload); its delivery report will
    /// carry `finalizer`.
    pub(crate) fn send(
        &mut self,
        record: OutgoingRecord<'_>,
        finalizer: DeliveryHandle,
    ) -> Result<(), NotQueued> {
        let topic = match self.handle(record.topic) {
            Ok(topic) => topic,
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
        // SAFETY: the same call rdkafka's `BaseProducer::send` makes, with a topic handle kept
        // alive by `self` instead of a name; librdkafka copies key and payload (F_COPY) and
        // takes the headers only when it accepts the record.
        let code = unsafe {
            rdsys::rd_kafka_producev(
                self.producer.client().native_ptr(),
                RD_KAFKA_VTYPE_RKT,
                topic,
                RD_KAFKA_VTYPE_PARTITION,
                -1i32,
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
