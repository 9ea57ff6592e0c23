//! What a failure means for the record that met it, decided once, in one place.
//!
//! Every error the sink can meet (refused by `produce`, or reported failed by a delivery
//! report) falls in exactly one class, and each class has one treatment:
//!
//! | class | examples | treatment |
//! |---|---|---|
//! | [`FailureClass::Transient`] | timeouts, purges, transport errors, leader changes, a broker restarting | sent again after a back-off, for as long as the process lives |
//! | [`FailureClass::MissingTopic`] | the topic does not exist | its topic's records wait and are retried for `unknown_topic_grace_ms`, then become dead letters; other topics flow |
//! | [`FailureClass::Permanent`] | invalid topic name, record too large, invalid record, topic authorization denied | a dead letter at once |
//! | [`FailureClass::BatchTooLarge`] | the broker refused a whole batch as too large | sent again alone, then a dead letter if it still does not fit |
//! | [`FailureClass::Fatal`] | the producer's fatal state (idempotence broken) | the producer is rebuilt and everything unconfirmed sent again |
//! | [`FailureClass::Unrecognised`] | anything else | sent again after a back-off at most [`UNRECOGNISED_ATTEMPTS`] times, then a dead letter |

use ferry_core::SinkErrorKind;
use ferry_dead_letter::DeadLetterReason;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// How often a record that keeps failing with an error Ferry does not know is tried before
/// it becomes a dead letter: enough to ride out a short-lived oddity, few enough that an
/// unknown permanent error does not keep a record forever.
pub(crate) const UNRECOGNISED_ATTEMPTS: u32 = 10;

/// The treatment a failed record gets (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailureClass {
    /// May pass: send again.
    Transient,
    /// The topic is not there (yet).
    MissingTopic,
    /// Sending it again cannot help.
    Permanent(DeadLetterReason),
    /// The broker refused the batch the record was in as too large.
    BatchTooLarge,
    /// The producer is dead.
    Fatal,
    /// Not an error Ferry knows.
    Unrecognised,
}

/// The `kind` label a failure of `class` is counted under in `ferry_sink_errors_total`.
pub(crate) fn error_kind(class: FailureClass) -> SinkErrorKind {
    match class {
        FailureClass::Transient => SinkErrorKind::Transient,
        FailureClass::MissingTopic => SinkErrorKind::MissingTopic,
        FailureClass::Permanent(_) => SinkErrorKind::Record,
        FailureClass::BatchTooLarge => SinkErrorKind::BatchTooLarge,
        FailureClass::Fatal => SinkErrorKind::Fatal,
        FailureClass::Unrecognised => SinkErrorKind::Unrecognised,
    }
}

/// Classifies an error from `produce` (`at_enqueue`) or from a delivery report.
pub(crate) fn classify(error: &KafkaError, at_enqueue: bool) -> FailureClass {
    use RDKafkaErrorCode::*;
    let Some(code) = error.rdkafka_error_code() else {
        // Errors without a librdkafka code come from the Rust side: a topic name holding a
        // NUL byte (`KafkaError::Nul`) is the one `produce` can meet.
        return match error {
            KafkaError::Nul(_) => FailureClass::Permanent(DeadLetterReason::InvalidTopic),
            _ => FailureClass::Unrecognised,
        };
    };
    match code {
        QueueFull
        | MessageTimedOut
        | PurgeQueue
        | PurgeInflight
        | BrokerTransportFailure
        | AllBrokersDown
        | BrokerNotAvailable
        | LeaderNotAvailable
        | NotLeaderForPartition
        | RequestTimedOut
        | NetworkException
        | NotEnoughReplicas
        | NotEnoughReplicasAfterAppend
        | BrokerDestroy
        | DestroyBroker
        | UnknownPartition
        | PreferredLeaderNotAvailable
        | KafkaStorageError
        | FencedLeaderEpoch
        | UnknownLeaderEpoch
        | OffsetNotAvailable
        | CoordinatorLoadInProgress
        | CoordinatorNotAvailable
        | NotCoordinator
        | ThrottlingQuotaExceeded
        | Resolve
        | Retry
        | WaitCache
        | OperationTimedOut
        | TimedOutQueue
        | OutOfOrderSequenceNumber
        | DuplicateSequenceNumber
        | UnknownProducerId
        | InvalidProducerEpoch
        | ConcurrentTransactions
        | NotController
        | Interrupted
        | Partial
        | ISRInsufficient
        | ReplicaNotAvailable
        | RebootstrapRequired
        | Authentication
        | SaslAuthenticationFailed
        | SSL => FailureClass::Transient,
        UnknownTopic | UnknownTopicOrPartition => FailureClass::MissingTopic,
        Fatal => FailureClass::Fatal,
        // At enqueue, librdkafka compares the single record with `message.max.bytes`: the
        // record itself is too large. In a delivery report the broker refused a whole batch,
        // which may be the neighbours' fault.
        MessageSizeTooLarge | InvalidMessageSize if at_enqueue => {
            FailureClass::Permanent(DeadLetterReason::TooLarge)
        }
        MessageSizeTooLarge | MessageBatchTooLarge | InvalidMessageSize => FailureClass::BatchTooLarge,
        InvalidTopic | PolicyViolation => FailureClass::Permanent(DeadLetterReason::InvalidTopic),
        InvalidMessage
        | InvalidRecord
        | InvalidArgument
        | BadCompression
        | UnsupportedForMessageFormat
        | InvalidTimestamp
        | BadMessage
        | InvalidRequiredAcks => FailureClass::Permanent(DeadLetterReason::InvalidRecord),
        TopicAuthorizationFailed | TransactionalIdAuthorizationFailed => {
            FailureClass::Permanent(DeadLetterReason::TopicAuthorization)
        }
        _ => FailureClass::Unrecognised,
    }
}

/// Whether `topic` is a name Kafka accepts: 1 to 249 characters of `[a-zA-Z0-9._-]`, and not
/// `.` or `..`. Checked before a handle is made, so a rendered topic that can never exist
/// becomes a dead letter at once instead of a retry.
pub(crate) fn valid_topic_name(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("the rendered topic is empty");
    }
    if topic.len() > 249 {
        return Err("the rendered topic is longer than 249 characters");
    }
    if topic == "." || topic == ".." {
        return Err("`.` and `..` are not topic names");
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("a topic name may hold only ASCII letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageProduction(code)
    }

    #[test]
    fn every_class_has_its_errors() {
        use RDKafkaErrorCode::*;
        assert_eq!(
            classify(&produce(MessageTimedOut), false),
            FailureClass::Transient
        );
        assert_eq!(classify(&produce(PurgeQueue), false), FailureClass::Transient);
        assert_eq!(
            classify(&produce(NotLeaderForPartition), false),
            FailureClass::Transient
        );
        assert_eq!(
            classify(&produce(UnknownTopicOrPartition), false),
            FailureClass::MissingTopic
        );
        assert_eq!(classify(&produce(UnknownTopic), true), FailureClass::MissingTopic);
        assert_eq!(
            classify(&produce(MessageSizeTooLarge), true),
            FailureClass::Permanent(DeadLetterReason::TooLarge)
        );
        assert_eq!(
            classify(&produce(MessageSizeTooLarge), false),
            FailureClass::BatchTooLarge
        );
        assert_eq!(
            classify(&produce(TopicAuthorizationFailed), false),
            FailureClass::Permanent(DeadLetterReason::TopicAuthorization)
        );
        assert_eq!(
            classify(&produce(InvalidTopic), true),
            FailureClass::Permanent(DeadLetterReason::InvalidTopic)
        );
        assert_eq!(classify(&produce(Fatal), false), FailureClass::Fatal);
        assert_eq!(classify(&produce(Unknown), false), FailureClass::Unrecognised);
    }

    #[test]
    fn a_nul_in_a_topic_is_permanent() {
        let nul = std::ffi::CString::new("a\0b").unwrap_err();
        assert_eq!(
            classify(&KafkaError::from(nul), true),
            FailureClass::Permanent(DeadLetterReason::InvalidTopic)
        );
    }

    #[test]
    fn topic_names() {
        assert!(valid_topic_name("logs-app_1.v2").is_ok());
        assert!(valid_topic_name("a\0b").is_err());
        assert!(valid_topic_name("").is_err());
        assert!(valid_topic_name("..").is_err());
        assert!(valid_topic_name("sp ace").is_err());
        assert!(valid_topic_name(&"x".repeat(250)).is_err());
        assert!(valid_topic_name(&"x".repeat(249)).is_ok());
    }
}
