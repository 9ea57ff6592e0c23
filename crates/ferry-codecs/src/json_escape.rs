//! JSON string escaping, in the style of serde_json's own (which it does not export): copy
//! runs of plain bytes at once and escape only what JSON requires.

/// Marks the bytes of multi-byte UTF-8 sequences: copied as they are, once the string is known
/// to be valid UTF-8.
const NON_ASCII: u8 = b'8';

/// For each byte: 0 = copy as is, `NON_ASCII`, otherwise the escape to use (`u` for `\u00XX`).
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut high = 0x80;
    while high < 0x100 {
        table[high] = NON_ASCII;
        high += 1;
    }
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a quoted JSON string.
pub(crate) fn write_json_str(s: &str, out: &mut Vec<u8>) {
    // Already UTF-8: nothing to check.
    let written = write_escaped(s.as_bytes(), out, false);
    debug_assert!(written);
}

/// Appends bytes as a quoted JSON string, invalid UTF-8 replaced by U+FFFD.
///
/// The UTF-8 check rides on the escape scan: ASCII strings (nearly every log string) are never
/// looked at twice, and the rest is validated once from its first non-ASCII byte. A separate
/// `from_utf8_lossy` pass per string cost about 3% of a json → json pipeline.
pub(crate) fn write_json_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    if !write_escaped(bytes, out, true) {
        out.truncate(start);
        write_escaped(String::from_utf8_lossy(bytes).as_bytes(), out, false);
    }
}

/// Escapes `bytes` into `out`. With `check_utf8`, returns false (leaving a partial write for
/// the caller to truncate) if `bytes` is not valid UTF-8; without, `bytes` must be UTF-8.
fn write_escaped(bytes: &[u8], out: &mut Vec<u8>, mut check_utf8: bool) -> bool {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPE[byte as usize];
        if escape == 0 {
            continue;
        }
        if escape == NON_ASCII {
            if check_utf8 {
                if std::str::from_utf8(&bytes[i..]).is_err() {
                    return false;
                }
                check_utf8 = false;
            }
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            b'u' => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(byte >> 4) as usize],
                HEX[(byte & 0xf) as usize],
            ]),
            other => out.extend_from_slice(&[b'\\', other]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn agrees_with_serde_json(s in ".*|[\\x00-\\x1f\"\\\\]{0,8}") {
            let mut ours = Vec::new();
            write_json_str(&s, &mut ours);
            prop_assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn bytes_agree_with_serde_json_on_the_lossy_string(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut ours = Vec::new();
            write_json_bytes(&b, &mut ours);
            let expected = serde_json::to_string(&String::from_utf8_lossy(&b)).unwrap();
            prop_assert_eq!(String::from_utf8(ours).unwrap(), expected);
        }
    }
}
