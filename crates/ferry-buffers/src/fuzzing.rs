//! Entry points for Ferry's fuzz targets and their corpus replay test: the disk buffer's
//! record format, which is otherwise internal. Not part of the supported API (hidden from the
//! docs); nothing outside those checks should call it.

use bytes::Bytes;
use ferry_core::LogEvent;

use crate::disk::CorruptRecord;

/// The record the disk buffer stores for `events`, the first of which is number `sequence`.
pub fn encode_record(events: &[LogEvent], sequence: u64) -> Vec<u8> {
    let mut out = Vec::new();
    crate::disk::record::encode(events, sequence, &mut out);
    out
}

/// Decodes a stored record as the disk buffer's reader does: `sequence` is the number the
/// ledger gives it, `accept_version_2` whether it may predate this run.
pub fn decode_record(
    record: &Bytes,
    sequence: u64,
    accept_version_2: bool,
) -> Result<Vec<LogEvent>, CorruptRecord> {
    crate::disk::record::decode(record, sequence, accept_version_2)
}

/// Rewrites a record's checksum to match its bytes, so that arbitrary bytes get past the
/// checksum to the body decoder.
pub fn reseal_record(record: &mut [u8]) {
    crate::disk::record::reseal(record);
}
