//! Big-endian, length-framed fields: a reader that never panics and names
//! the field it ran out in, and the matching writers.

use crate::chunk::ParseError;

pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ParseError> {
        if self.rest.len() < n {
            return Err(ParseError::Truncated(field));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ParseError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ParseError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4, field)?);
        Ok(u32::from_be_bytes(b))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ParseError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8, field)?);
        Ok(u64::from_be_bytes(b))
    }

    pub(crate) fn array32(&mut self, field: &'static str) -> Result<[u8; 32], ParseError> {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.take(32, field)?);
        Ok(b)
    }

    /// A `u32` length, at most `max`, then that many bytes.
    pub(crate) fn framed(&mut self, field: &'static str, max: u64) -> Result<&'a [u8], ParseError> {
        let len = self.u32(field)?;
        if u64::from(len) > max {
            return Err(ParseError::TooLong {
                field,
                len: len.into(),
                max,
            });
        }
        self.take(len as usize, field)
    }

    pub(crate) fn finish(self) -> Result<(), ParseError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ParseError::TrailingBytes(self.rest.len()))
        }
    }
}

/// Writes a `u32` length and the bytes; callers keep every field under
/// its limit, which is far below `u32::MAX`.
pub(crate) fn put_framed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}
