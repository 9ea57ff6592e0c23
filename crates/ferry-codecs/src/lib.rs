//! # ferry-codecs
//!
//! How events become bytes and bytes become events.
//!
//! - Encoders, configured by a sink's `encoding` table ([`EncodingConfig`]):
//!   `text` (the `message` field, empty when absent), `json` (the whole event, one object per
//!   record) and `logfmt`; `only_fields` / `except_fields` filters (nested paths allowed), and
//!   `timestamp_format` = `rfc3339` | `unix` | `unix_ms` | `unix_float`.
//! - Decoders, configured by a source's `decoding` table ([`DecodingConfig`]): `bytes` (the line
//!   becomes `message`) and `json` (the line's object becomes the fields).
//!
//! Output is deterministic: fields are written in the event's order, so two runs produce the
//! same bytes. Encoders append to a caller-owned buffer so the hot path reuses one allocation.
//!
//! ```
//! use ferry_codecs::{EncodingConfig, Encoder};
//! use ferry_core::LogEvent;
//!
//! let config: EncodingConfig = EncodingConfig::json();
//! let encoder = Encoder::new(&config);
//! let mut out = Vec::new();
//! encoder.encode(&LogEvent::from_message("hi \"there\""), &mut out);
//! assert_eq!(out, br#"{"message":"hi \"there\""}"#);
//! ```

mod decoding;
mod encoder;
mod encoding;
mod filter;
mod json_escape;
mod timestamp;

pub use decoding::{DecodeError, Decoder, DecodingCodec, DecodingConfig, add_standard_fields};
pub use encoder::Encoder;
pub use encoding::{EncodingCodec, EncodingConfig};
pub use ferry_core::parse_json_object;
pub use filter::FieldFilter;
pub use timestamp::TimestampFormat;
