//! The few SSH wire encodings a KRL uses (RFC 4251 §5), read with the same
//! limits as OpenSSH's `sshbuf`, so that what we accept OpenSSH accepts too.

use crate::DecodeError;

/// OpenSSH refuses buffers (and so KRL files and strings) above 128 MiB
/// (`SSHBUF_SIZE_MAX`).
pub const SSHBUF_SIZE_MAX: usize = 0x0800_0000;

/// OpenSSH refuses bignums above 16,384 bits (`SSHBUF_MAX_BIGNUM`): this is
/// what caps a serial bitmap at 2,048 bytes.
pub const MAX_BIGNUM_BYTES: usize = 16384 / 8;

/// A cursor over a byte slice that fails instead of reading past the end.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A length-prefixed byte string.
    pub(crate) fn string(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)? as usize;
        if len > SSHBUF_SIZE_MAX - 4 {
            return Err(DecodeError::TooLarge(what));
        }
        self.take(len, what)
    }

    /// A string that OpenSSH reads as a C string: no embedded NUL. We also
    /// require UTF-8, which is stricter than OpenSSH and never looser.
    pub(crate) fn cstring(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let bytes = self.string(what)?;
        if bytes.contains(&0) {
            return Err(DecodeError::EmbeddedNul(what));
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::NotUtf8(what))
    }

    /// An unsigned mpint as `sshbuf_get_bignum2_bytes_direct` reads it:
    /// negative values are refused, at most 2,048 significant bytes (plus
    /// one leading zero), and leading zeros are stripped.
    pub(crate) fn unsigned_mpint(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let mut d = self.string(what)?;
        if d.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(DecodeError::NegativeBignum(what));
        }
        if d.len() > MAX_BIGNUM_BYTES + 1 || (d.len() == MAX_BIGNUM_BYTES + 1 && d[0] != 0) {
            return Err(DecodeError::BignumTooLarge {
                what,
                bytes: d.len(),
            });
        }
        while let Some((0, rest)) = d.split_first() {
            d = rest;
        }
        Ok(d)
    }
}

/// Appends SSH wire encodings to a byte vector.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// Writes a length-prefixed string. Callers keep strings far below
    /// 4 GiB (the whole KRL is capped at 128 MiB before it is written).
    pub(crate) fn string(&mut self, v: &[u8]) {
        self.u32(len_u32(v.len()));
        self.buf.extend_from_slice(v);
    }

    /// Starts a length-prefixed string whose body is written next; finish
    /// it with [`Writer::end_string`] at the returned position.
    pub(crate) fn begin_string(&mut self) -> usize {
        let at = self.buf.len();
        self.u32(0);
        at
    }

    pub(crate) fn end_string(&mut self, at: usize) {
        let len = len_u32(self.buf.len() - at - 4);
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// Writes big-endian magnitude bytes as an mpint: leading zeros dropped,
    /// one zero prepended when the top bit is set so it stays positive.
    pub(crate) fn unsigned_mpint(&mut self, mut magnitude: &[u8]) {
        while let Some((0, rest)) = magnitude.split_first() {
            magnitude = rest;
        }
        let pad = magnitude.first().is_some_and(|b| b & 0x80 != 0);
        self.u32(len_u32(magnitude.len() + usize::from(pad)));
        if pad {
            self.buf.push(0);
        }
        self.buf.extend_from_slice(magnitude);
    }
}

fn len_u32(len: usize) -> u32 {
    // The encoder refuses KRLs above SSHBUF_SIZE_MAX (128 MiB) before
    // writing, so every length here fits; saturate rather than wrap.
    u32::try_from(len).unwrap_or(u32::MAX)
}
