use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

/// How encoders write timestamp values (`encoding.timestamp_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    /// `2026-11-25T13:04:05.123456Z`: a JSON string (default).
    #[default]
    Rfc3339,
    /// Whole seconds since the Unix epoch: a number.
    Unix,
    /// Milliseconds since the Unix epoch: a number.
    UnixMs,
    /// Seconds since the Unix epoch with a fraction: a number.
    UnixFloat,
}

/// A timestamp rendered for output: text needs quoting in JSON, numbers do not.
pub(crate) enum RenderedTimestamp {
    Text(String),
    Number(String),
}

impl TimestampFormat {
    /// Appends the timestamp as a JSON value (a quoted string or a number) without building an
    /// intermediate `String`: this runs for every event the JSON encoder writes.
    pub(crate) fn write_json(self, t: &DateTime<Utc>, out: &mut Vec<u8>) {
        match self {
            TimestampFormat::Rfc3339 => {
                out.push(b'"');
                write_rfc3339(t, out);
                out.push(b'"');
            }
            TimestampFormat::Unix => {
                out.extend_from_slice(itoa::Buffer::new().format(t.timestamp()).as_bytes())
            }
            TimestampFormat::UnixMs => {
                out.extend_from_slice(itoa::Buffer::new().format(t.timestamp_millis()).as_bytes())
            }
            TimestampFormat::UnixFloat => {
                let secs = t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9;
                out.extend_from_slice(ryu::Buffer::new().format(secs).as_bytes());
            }
        }
    }

    pub(crate) fn render(self, t: &DateTime<Utc>) -> RenderedTimestamp {
        match self {
            TimestampFormat::Rfc3339 => {
                RenderedTimestamp::Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            }
            TimestampFormat::Unix => RenderedTimestamp::Number(t.timestamp().to_string()),
            TimestampFormat::UnixMs => RenderedTimestamp::Number(t.timestamp_millis().to_string()),
            TimestampFormat::UnixFloat => {
                let secs = t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9;
                let mut buf = ryu::Buffer::new();
                RenderedTimestamp::Number(buf.format(secs).to_owned())
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z`, the same text as chrono's
/// `to_rfc3339_opts(SecondsFormat::AutoSi, true)`, written digit by digit.
fn write_rfc3339(t: &DateTime<Utc>, out: &mut Vec<u8>) {
    use chrono::{Datelike, Timelike};
    let nanos = t.nanosecond();
    let year = t.year();
    // Leap seconds (nanos past 1e9) and years beyond four digits take chrono's general path.
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        out.extend_from_slice(t.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes());
        return;
    }
    let digits = |value: u32, width: usize, out: &mut Vec<u8>| {
        let mut buf = [b'0'; 9];
        let mut v = value;
        for slot in buf[..width].iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend_from_slice(&buf[..width]);
    };
    digits(year as u32, 4, out);
    out.push(b'-');
    digits(t.month(), 2, out);
    out.push(b'-');
    digits(t.day(), 2, out);
    out.push(b'T');
    digits(t.hour(), 2, out);
    out.push(b':');
    digits(t.minute(), 2, out);
    out.push(b':');
    digits(t.second(), 2, out);
    if nanos != 0 {
        out.push(b'.');
        if nanos.is_multiple_of(1_000_000) {
            digits(nanos / 1_000_000, 3, out);
        } else if nanos.is_multiple_of(1_000) {
            digits(nanos / 1_000, 6, out);
        } else {
            digits(nanos, 9, out);
        }
    }
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn writes_what_chrono_writes(secs in -62_000_000_000i64..300_000_000_000, nanos in prop_oneof![Just(0u32), (0u32..1000).prop_map(|m| m * 1_000_000), (0u32..1_000_000).prop_map(|u| u * 1000), 0u32..1_000_000_000]) {
            let t = Utc.timestamp_opt(secs, nanos).unwrap();
            let mut ours = Vec::new();
            write_rfc3339(&t, &mut ours);
            prop_assert_eq!(String::from_utf8(ours).unwrap(), t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        }
    }
}
