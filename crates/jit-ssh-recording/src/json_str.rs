//! A JSON string literal, written byte for byte as `serde_json` writes
//! it (`"`, `\` and the C0 controls escaped; `\b \f \n \r \t` short, the
//! rest `\u00xx` in lowercase hex; everything else as is), only faster:
//! terminal output is mostly plain text with a `\r\n` every line, and the
//! encoder spent an eighth of its time in `serde_json`'s byte-at-a-time
//! escaping (docs/sessions.md, the benchmark). Runs that need no escape
//! are found eight bytes at a time and copied whole.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Where a byte of `w` (little-endian) needs escaping, its top bit set;
/// the lowest set bit is exact (bits above it may be spurious, which is
/// all [`next_special`] relies on).
fn specials(w: u64) -> u64 {
    // Bytes below 0x20: subtracting borrows only where a byte is under
    // it; `!w` drops bytes that were >= 0x80 to begin with.
    let control = w.wrapping_sub(0x20 * LO) & !w;
    let quote = w ^ (b'"' as u64 * LO);
    let quote = quote.wrapping_sub(LO) & !quote;
    let backslash = w ^ (b'\\' as u64 * LO);
    let backslash = backslash.wrapping_sub(LO) & !backslash;
    (control | quote | backslash) & HI
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The index of the first byte at or after `from` that needs escaping,
/// or `s.len()`.
fn next_special(s: &[u8], mut from: usize) -> usize {
    while let Some(word) = s.get(from..from + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let m = specials(u64::from_le_bytes(w));
        if m != 0 {
            return from + (m.trailing_zeros() / 8) as usize;
        }
        from += 8;
    }
    s[from..]
        .iter()
        .position(|&b| needs_escape(b))
        .map_or(s.len(), |i| from + i)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string literal, quotes included.
pub(crate) fn write_json_str(buf: &mut Vec<u8>, s: &str) {
    let s = s.as_bytes();
    buf.reserve(s.len() + s.len() / 16 + 2);
    buf.push(b'"');
    let mut start = 0;
    loop {
        let at = next_special(s, start);
        buf.extend_from_slice(&s[start..at]);
        let Some(&b) = s.get(at) else { break };
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            0x08 => buf.extend_from_slice(b"\\b"),
            0x0c => buf.extend_from_slice(b"\\f"),
            _ => buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]),
        }
        start = at + 1;
    }
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn ours(s: &str) -> Vec<u8> {
        let mut buf = Vec::new();
        write_json_str(&mut buf, s);
        buf
    }

    #[test]
    fn every_byte_value_is_written_as_serde_json_writes_it() {
        for c in (0u32..0x250).chain([0x7f, 0x2028, 0xfffd, 0x1f600]) {
            let c = char::from_u32(c).unwrap();
            // The character alone, and at every position of a word.
            for pos in 0..=9 {
                let mut s: String = "abcdefghi".into();
                s.insert(pos, c);
                assert_eq!(ours(&s), serde_json::to_vec(&s).unwrap(), "{s:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(s in "(?s).{0,200}") {
            prop_assert_eq!(ours(&s), serde_json::to_vec(&s).unwrap());
        }

        #[test]
        fn terminal_like_text_is_written_as_serde_json_writes_it(
            s in "([ -~]{0,40}(\r\n|\u{1b}\\[[0-9;]{0,6}m|\"|\\\\|\t|é|\u{0}|\u{7f}))*"
        ) {
            prop_assert_eq!(ours(&s), serde_json::to_vec(&s).unwrap());
        }
    }
}
