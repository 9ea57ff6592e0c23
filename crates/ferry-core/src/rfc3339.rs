//! Reading RFC 3339 times, the JSON decoder's rule for a `timestamp` string.
//!
//! Nearly every log line spells its time the same way (`2026-11-25T10:00:00.000Z`), and chrono's
//! general parser (which also builds a `FixedOffset` date-time and converts it) was about 8% of
//! the stdin thread of a json → json pipeline. [`parse_rfc3339`] reads that common shape digit
//! by digit and leaves every other spelling to chrono, so what is accepted, and the time it
//! means, stay chrono's (property-tested against it).

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};

/// An RFC 3339 string as a UTC time, or `None` if it is not one.
pub fn parse_rfc3339(text: &[u8]) -> Option<DateTime<Utc>> {
    match parse_common(text) {
        Some(time) => Some(time),
        None => parse_with_chrono(text),
    }
}

fn parse_with_chrono(text: &[u8]) -> Option<DateTime<Utc>> {
    let text = std::str::from_utf8(text).ok()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)` with an upper-case `T` and no leap second; `None`
/// for anything else, including what chrono would accept.
fn parse_common(text: &[u8]) -> Option<DateTime<Utc>> {
    let (head, rest) = text.split_first_chunk::<19>()?;
    if head[4] != b'-' || head[7] != b'-' || head[10] != b'T' || head[13] != b':' || head[16] != b':' {
        return None;
    }
    let d = head.map(|b| b.wrapping_sub(b'0'));
    let largest = [
        d[0], d[1], d[2], d[3], d[5], d[6], d[8], d[9], d[11], d[12], d[14], d[15], d[17], d[18],
    ]
    .into_iter()
    .fold(0, u8::max);
    if largest > 9 {
        return None;
    }
    let pair = |i: usize| u32::from(d[i]) * 10 + u32::from(d[i + 1]);
    let year = pair(0) * 100 + pair(2);
    let (nanos, zone) = match rest.split_first() {
        Some((b'.', after_dot)) => {
            let count = after_dot.iter().take_while(|b| b.is_ascii_digit()).count();
            let (fraction, zone) = after_dot.split_at(count);
            let scale = match count {
                1..=9 => 10u32.pow(9 - u32::try_from(count).ok()?),
                _ => return None,
            };
            let value = fraction.iter().fold(0u32, |n, &b| n * 10 + u32::from(b - b'0'));
            (value * scale, zone)
        }
        _ => (0, rest),
    };
    // Range checks (month, day of month, hour < 24, minute and second < 60) are chrono's.
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, pair(5), pair(8))?;
    let time = NaiveTime::from_hms_nano_opt(pair(11), pair(14), pair(17), nanos)?;
    let local = date.and_time(time).and_utc();
    match zone {
        b"Z" => Some(local),
        &[sign @ (b'+' | b'-'), h0, h1, b':', m0, m1] => {
            let [h0, h1, m0, m1] = [h0, h1, m0, m1].map(|b| u32::from(b.wrapping_sub(b'0')));
            if h0 > 9 || h1 > 9 || m0 > 9 || m1 > 9 {
                return None;
            }
            let (hours, minutes) = (h0 * 10 + h1, m0 * 10 + m1);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = i64::from(hours * 3600 + minutes * 60);
            let east = if sign == b'-' { -seconds } else { seconds };
            local.checked_sub_signed(TimeDelta::seconds(east))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn common_shapes_take_the_fast_path() {
        for text in [
            "2026-11-25T10:00:00.000Z",
            "2026-11-25T10:00:00Z",
            "2024-02-29T23:59:59.123456789+05:30",
            "1969-12-31T23:59:59.5-01:00",
            "0001-01-01T00:00:00Z",
        ] {
            let fast = parse_common(text.as_bytes());
            assert!(fast.is_some(), "{text}");
            assert_eq!(fast, parse_with_chrono(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn other_spellings_are_chronos_to_judge() {
        for text in [
            "2026-11-25t10:00:00Z",
            "2026-11-25 10:00:00Z",
            "2026-11-25T10:00:00.1234567891Z",
            "2026-11-25T23:59:60Z",
            "2026-11-25T10:00:00z",
        ] {
            assert_eq!(parse_common(text.as_bytes()), None, "{text}");
        }
        // What they mean, written out rather than asked of chrono (which `parse_rfc3339`
        // itself calls for them: comparing the two would compare chrono with chrono).
        for (text, meaning) in [
            ("2026-11-25t10:00:00Z", "2026-11-25T10:00:00Z"),
            ("2026-11-25 10:00:00Z", "2026-11-25T10:00:00Z"),
            (
                "2026-11-25T10:00:00.1234567891Z",
                "2026-11-25T10:00:00.123456789Z",
            ),
            ("2026-11-25T10:00:00z", "2026-11-25T10:00:00Z"),
            ("2026-11-25T12:30:00+02:30", "2026-11-25T10:00:00Z"),
        ] {
            let parsed = parse_rfc3339(text.as_bytes())
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
            assert_eq!(parsed.as_deref(), Some(meaning), "{text}");
        }
        for bad in [
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-25T10:00:00",
            "",
            "x",
        ] {
            assert_eq!(parse_rfc3339(bad.as_bytes()), None, "{bad}");
        }
    }

    proptest! {
        /// Whatever the fast path accepts, chrono accepts as the same instant.
        #[test]
        fn fast_path_agrees_with_chrono(
            year in 0u32..10_000, month in 0u32..14, day in 0u32..33,
            hour in 0u32..26, minute in 0u32..62, second in 0u32..62,
            fraction in proptest::option::of("[0-9]{0,11}"),
            zone in prop_oneof![Just("Z".to_owned()), Just("z".to_owned()), Just(String::new()),
                (any::<bool>(), 0u32..30, 0u32..64).prop_map(|(minus, h, m)| format!("{}{h:02}:{m:02}", if minus { '-' } else { '+' }))],
        ) {
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{zone}");
            let chrono = parse_with_chrono(text.as_bytes());
            if let Some(fast) = parse_common(text.as_bytes()) {
                prop_assert_eq!(Some(fast), chrono, "{}", text);
            }
            // The fast path must take the common shape, or the comparison below is chrono's
            // with itself: every valid time with `T`, 0 to 9 fraction digits, an upper-case
            // `Z` or an offset, and no leap second.
            let digits = fraction.len().saturating_sub(1);
            let bare_dot = fraction == ".";
            let common_shape = (zone == "Z" || zone.len() == 6) && second < 60 && !bare_dot && digits <= 9;
            if chrono.is_some() && common_shape {
                prop_assert!(parse_common(text.as_bytes()).is_some(), "the fast path left {}", text);
            }
            prop_assert_eq!(parse_rfc3339(text.as_bytes()), chrono, "{}", text);
        }
    }
}
