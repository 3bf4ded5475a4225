//! asciicast `o` and `i` data are JSON strings, so UTF-8 text; a terminal
//! stream is bytes, and one read may end inside a character. A [`Utf8Carry`]
//! keeps an incomplete trailing sequence (at most 3 bytes) for the next
//! read of the same stream. Bytes that can never be UTF-8 (invalid
//! sequences, or a sequence still incomplete when the stream ends) become
//! U+FFFD REPLACEMENT CHARACTER, one per maximal invalid subsequence, as
//! `String::from_utf8_lossy` and asciinema's own recorder do.

use std::borrow::Cow;

#[derive(Debug, Default, Clone)]
pub struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    /// The text `bytes` completes (after what was pending), keeping an
    /// incomplete trailing sequence for the next call. The common case,
    /// nothing pending and a whole-character read, borrows `bytes`.
    pub fn decode<'a>(&mut self, bytes: &'a [u8]) -> Cow<'a, str> {
        if self.pending.is_empty() {
            if let Ok(s) = std::str::from_utf8(bytes) {
                return Cow::Borrowed(s);
            }
        }
        let mut input = std::mem::take(&mut self.pending);
        input.extend_from_slice(bytes);
        let mut out = String::with_capacity(input.len());
        let mut rest = &input[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    // `good` is valid UTF-8 by `valid_up_to`.
                    out.push_str(&String::from_utf8_lossy(good));
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &bad[n..];
                        }
                        None => {
                            self.pending = bad.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        Cow::Owned(out)
    }

    /// At the end of the stream: U+FFFD if a sequence was left incomplete.
    pub fn finish(&mut self) -> String {
        if std::mem::take(&mut self.pending).is_empty() {
            String::new()
        } else {
            char::REPLACEMENT_CHARACTER.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_reads_arrives_whole() {
        let bytes = "é€😀".as_bytes();
        for cut in 0..=bytes.len() {
            let mut c = Utf8Carry::default();
            let mut s = c.decode(&bytes[..cut]).into_owned();
            s += &c.decode(&bytes[cut..]);
            s += &c.finish();
            assert_eq!(s, "é€😀", "cut at {cut}");
        }
        // One byte at a time.
        let mut c = Utf8Carry::default();
        let s: String = bytes.iter().map(|b| c.decode(&[*b]).into_owned()).collect();
        assert_eq!(s, "é€😀");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut c = Utf8Carry::default();
        assert_eq!(c.decode(b"a\xffb\xc3"), "a\u{fffd}b");
        assert_eq!(c.decode(b"("), "\u{fffd}(");
        assert_eq!(c.decode(b"\xe2\x82"), "");
        assert_eq!(c.finish(), "\u{fffd}");
        assert_eq!(c.finish(), "");
    }
}
