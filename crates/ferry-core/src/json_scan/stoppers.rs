//! Which bytes of a 64-byte window end a plain run of string content.
//!
//! Strings are most of a log line's bytes. Classifying 64 bytes at once into a bit mask
//! (`"`, `\`, control characters and non-ASCII bytes set) lets the scanner find a string's end
//! with one `trailing_zeros` instead of looking at its bytes one by one or eight by eight.

/// Bytes classified at a time: one bit each in a `u64`.
pub(super) const WINDOW: usize = 64;

/// Whether `byte` cannot simply be part of a JSON string: it ends it (`"`), starts an escape
/// (`\`), is not allowed unescaped (a control character), or needs the UTF-8 check (≥ 0x80).
#[inline]
pub(super) fn is_stopper(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || !(0x20..0x80).contains(&byte)
}

/// Bit `i` is set when `bytes[i]` is a stopper; past the end of `bytes` every bit is set.
#[inline]
pub(super) fn stoppers(bytes: &[u8]) -> u64 {
    match bytes.first_chunk::<WINDOW>() {
        Some(window) => stoppers_in(window),
        None => {
            // Zero bytes are control characters: the bits past the end come out set.
            let mut window = [0u8; WINDOW];
            window[..bytes.len()].copy_from_slice(bytes);
            stoppers_in(&window)
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn stoppers_in(window: &[u8; WINDOW]) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let mut bits = 0u64;
    for (i, chunk) in window.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of every x86_64 CPU (these intrinsics are unsafe only for
        // their target feature), `chunk` is 16 readable bytes, and the load needs no alignment.
        let special = unsafe {
            let bytes = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let quote = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8));
            // A signed comparison: bytes ≥ 0x80 are negative, so "below space" catches them too.
            let below_space = _mm_cmplt_epi8(bytes, _mm_set1_epi8(0x20));
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), below_space))
        };
        // The mask has 16 meaningful bits.
        bits |= u64::from(special as u16) << (16 * i);
    }
    bits
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn stoppers_in(window: &[u8; WINDOW]) -> u64 {
    byte_by_byte(window)
}

/// The reference (and the classification elsewhere than x86_64).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn byte_by_byte(window: &[u8; WINDOW]) -> u64 {
    window
        .iter()
        .enumerate()
        .fold(0, |bits, (i, &byte)| bits | (u64::from(is_stopper(byte)) << i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The classes written out from JSON's grammar, sharing no code with what is tested:
    /// off x86_64 `stoppers_in` *is* the byte-by-byte loop over `is_stopper`, so comparing
    /// the two there compared the code with itself.
    fn from_the_grammar(byte: u8) -> bool {
        matches!(byte, b'"' | b'\\' | 0x00..=0x1f | 0x80..=0xff)
    }

    #[test]
    fn every_byte_value_is_classified() {
        for byte in 0..=u8::MAX {
            let mut window = [b'a'; WINDOW];
            window[37] = byte;
            let expected = if from_the_grammar(byte) { 1 << 37 } else { 0 };
            assert_eq!(stoppers_in(&window), expected, "{byte:#04x}");
            assert_eq!(byte_by_byte(&window), expected, "{byte:#04x}");
        }
    }

    #[test]
    fn a_known_window_gives_its_known_mask() {
        // `"` at 0, `\` at 17, a tab at 40, `é` (two bytes) at 62 and 63.
        let mut window = [b'a'; WINDOW];
        window[0] = b'"';
        window[17] = b'\\';
        window[40] = b'\t';
        window[62..].copy_from_slice("é".as_bytes());
        let mask = 1 | 1 << 17 | 1 << 40 | 1 << 62 | 1 << 63;
        assert_eq!(stoppers_in(&window), mask);
    }

    #[test]
    fn past_the_end_is_all_stoppers() {
        assert_eq!(stoppers(b"ab\"d"), !0 << 4 | 1 << 2);
        assert_eq!(stoppers(b""), !0);
    }

    proptest! {
        #[test]
        fn agrees_with_the_byte_by_byte_reference(
            bytes in proptest::collection::vec(prop_oneof![any::<u8>(), Just(b'"'), Just(b'\\'), Just(b'a')], WINDOW)
        ) {
            let window: [u8; WINDOW] = bytes.try_into().unwrap();
            let grammar = window
                .iter()
                .enumerate()
                .fold(0u64, |bits, (i, &b)| bits | (u64::from(from_the_grammar(b)) << i));
            prop_assert_eq!(stoppers_in(&window), grammar);
            prop_assert_eq!(byte_by_byte(&window), grammar);
        }
    }
}
