//! `ferry dead-letter replay` for a Kafka sink: each letter is produced again to its topic
//! (or to the one the operator names) with its key, headers and timestamp, and a file is
//! removed only once Kafka confirmed every letter in it. Letters that fail again stay.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::{ReplayReport, ReplayRequest};
use ferry_dead_letter::{DeadLetter, DeadLetterError};
use rdkafka::ClientContext;
use rdkafka::client::OAuthToken;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use crate::client::ClientError;
use crate::config::KafkaSinkConfig;
use crate::token::{TokenError, TokenSource};

/// How long a replayed letter may take to be confirmed: a replay is run by hand, so it
/// should answer within a minute rather than wait out a long `message_timeout_ms`.
const REPLAY_TIMEOUT_MS: u64 = 30_000;

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The dead-letter files (or their lock: a running ferry holds it).
    #[error(transparent)]
    DeadLetters(#[from] DeadLetterError),
    /// The producer could not be set up.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The sink's OAUTHBEARER token source could not be set up.
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// The delivery opaque of letter `index` of the `file`-th file replayed: a late report of an
/// earlier file can never be taken for one of the current file's letters.
fn letter_key(file: usize, index: usize) -> usize {
    (file << 32) | (index & 0xffff_ffff)
}

/// Collects the delivery results of the letters, by [`letter_key`].
#[derive(Default)]
struct ReplayContext {
    outcomes: Mutex<HashMap<usize, Result<(), String>>>,
    /// The sink's own OAUTHBEARER tokens (`sasl.token_file`, MSK IAM), as in `FerryContext`.
    token: Option<Arc<TokenSource>>,
}

impl ClientContext for ReplayContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(&self, _config: Option<&str>) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        match &self.token {
            Some(source) => Ok(source.token()?),
            None => Err("no token source: set sasl.token_file or sasl.token_endpoint_url".into()),
        }
    }
}

impl ProducerContext for ReplayContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string());
        self.outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(index, outcome);
    }
}

pub(crate) fn replay(config: &KafkaSinkConfig, request: &ReplayRequest) -> Result<ReplayReport, ReplayError> {
    let dir = config.dead_letter.dir(&request.data_dir, &request.id);
    let _lock = ferry_dead_letter::lock_dir(&dir)?;
    let mut client_config = crate::client::client_config(config)?;
    let timeout = config.message_timeout_ms.min(REPLAY_TIMEOUT_MS);
    client_config.set("message.timeout.ms", timeout.to_string());
    let producer = BaseProducer::from_config_and_context(
        &client_config,
        ReplayContext {
            outcomes: Mutex::default(),
            token: TokenSource::from_config(&config.sasl)?,
        },
    )
    .map_err(|e| ClientError::InvalidSetting(e.to_string()))?;
    let mut report = ReplayReport::default();
    for (number, file) in ferry_dead_letter::list_files(&dir)?.iter().enumerate() {
        replay_file(
            &producer,
            (number, &file.path),
            request.destination.as_deref(),
            timeout,
            &mut report,
        )?;
    }
    Ok(report)
}

fn replay_file(
    producer: &BaseProducer<ReplayContext>,
    (number, path): (usize, &Path),
    destination: Option<&str>,
    timeout_ms: u64,
    report: &mut ReplayReport,
) -> Result<(), ReplayError> {
    let mut letters = Vec::new();
    let mut unreadable = 0;
    for line in ferry_dead_letter::read_file(path)? {
        match line {
            Ok(letter) => letters.push(letter),
            Err(e) => {
                unreadable += 1;
                tracing::warn!(file = %path.display(), "unreadable dead letter left in place: {e}");
            }
        }
    }
    report.letters += letters.len() as u64;
    report.unreadable += unreadable;
    producer
        .context()
        .outcomes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    for (index, letter) in letters.iter().enumerate() {
        let topic = destination.unwrap_or(&letter.topic);
        let key = letter_key(number, index);
        if let Err(e) = send(producer, topic, letter, key) {
            producer
                .context()
                .outcomes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, Err(e.to_string()));
        }
    }
    let _ = producer.flush(Duration::from_millis(timeout_ms + 5_000));
    let outcomes = std::mem::take(
        &mut *producer
            .context()
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    let mut remaining: Vec<&DeadLetter> = Vec::new();
    for (index, letter) in letters.iter().enumerate() {
        match outcomes.get(&letter_key(number, index)) {
            Some(Ok(())) => report.delivered += 1,
            Some(Err(cause)) => {
                report.first_failure.get_or_insert_with(|| cause.clone());
                remaining.push(letter);
            }
            None => {
                report
                    .first_failure
                    .get_or_insert_with(|| "no delivery report within the timeout".into());
                remaining.push(letter);
            }
        }
    }
    report.failed += remaining.len() as u64;
    if unreadable > 0 {
        // Rewriting would lose the lines that cannot be read: the file stays as it is, and the
        // letters delivered now may be delivered again by a later replay.
        return Ok(());
    }
    if remaining.is_empty() {
        std::fs::remove_file(path).map_err(|source| DeadLetterError::Io {
            path: path.to_owned(),
            source,
        })?;
    } else if remaining.len() < letters.len() {
        rewrite(path, &remaining)?;
    }
    Ok(())
}

fn send(
    producer: &BaseProducer<ReplayContext>,
    topic: &str,
    letter: &DeadLetter,
    index: usize,
) -> Result<(), KafkaError> {
    let mut record = BaseRecord::with_opaque_to(topic, index).payload(&letter.payload[..]);
    if let Some(key) = &letter.key {
        record = record.key(&key[..]);
    }
    if let Some(timestamp) = letter.timestamp_ms {
        record = record.timestamp(timestamp);
    }
    if !letter.headers.is_empty() {
        let mut headers = OwnedHeaders::new_with_capacity(letter.headers.len());
        for (key, value) in &letter.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        record = record.headers(headers);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                producer.poll(Duration::from_millis(100));
                record = back;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Replaces `path` with only `letters`, atomically (a new file renamed over it).
fn rewrite(path: &Path, letters: &[&DeadLetter]) -> Result<(), ReplayError> {
    let io = |source| DeadLetterError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("jsonl.replay");
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    for letter in letters {
        file.write_all(&letter.to_json_line()).map_err(io)?;
    }
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}
