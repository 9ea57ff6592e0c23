//! Reading RFC 3339 times, the JSON decoder's rule for a `timestamp` string.
//!
//! Nearly every log line spells its time the same way (`2026-11-25T10:00:00.000Z`), and chrono's
//! general parser (which also builds a `FixedOffset` date-time and converts it) was about 8% of
//! the stdin thread of a json → json pipeline. [`parse_rfc3339`] reads that common shape digit
//! by digit and leaves every other spelling to chrono, so what is accepted, and the time it
//! means, stay chrono's (property-tested against it).

use chrono::{DateTime, Utc};

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
    let (date_time, rest) = text.split_at_checked(19)?;
    let &[
        y0,
        y1,
        y2,
        y3,
        b'-',
        m0,
        m1,
        b'-',
        d0,
        d1,
        b'T',
        h0,
        h1,
        b':',
        i0,
        i1,
        b':',
        s0,
        s1,
    ] = date_time
    else {
        return None;
    };
    let year = i64::from(digits(&[y0, y1, y2, y3])?);
    let month = digits(&[m0, m1])?;
    let day = digits(&[d0, d1])?;
    let hour = digits(&[h0, h1])?;
    let minute = digits(&[i0, i1])?;
    let second = digits(&[s0, s1])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }

    let (nanos, zone) = match rest.split_first() {
        Some((b'.', after_dot)) => {
            let count = after_dot.iter().take_while(|b| b.is_ascii_digit()).count();
            if count == 0 || count > 9 {
                return None;
            }
            let (fraction, zone) = after_dot.split_at(count);
            let scale = 10u32.pow(9 - u32::try_from(count).ok()?);
            (digits(fraction)? * scale, zone)
        }
        _ => (0, rest),
    };
    let offset_seconds = match zone {
        b"Z" => 0,
        &[sign @ (b'+' | b'-'), oh0, oh1, b':', om0, om1] => {
            let hours = digits(&[oh0, oh1])?;
            let minutes = digits(&[om0, om1])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = i64::from(hours * 3600 + minutes * 60);
            if sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };

    let local = days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    DateTime::from_timestamp(local - offset_seconds, nanos)
}

/// The number written by `ascii` in decimal, if it is only digits (at most 9 of them).
fn digits(ascii: &[u8]) -> Option<u32> {
    ascii.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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
            assert_eq!(
                parse_rfc3339(text.as_bytes()),
                parse_with_chrono(text.as_bytes()),
                "{text}"
            );
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
            prop_assert_eq!(parse_rfc3339(text.as_bytes()), chrono, "{}", text);
        }
    }
}
