//! Reads KRL bytes, refusing everything OpenSSH's reader refuses (and, to
//! stay on the safe side, a little more: embedded signature and extension
//! sections, which OpenSSH 9.4+ and 9.2 respectively refuse).

use ssh_key::PublicKey;

use crate::model::{CaScope, Krl};
use crate::section;
use crate::wire::{Reader, SSHBUF_SIZE_MAX};

/// Why a KRL was refused. Each of these makes sshd refuse every key too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a KRL (bad magic)")]
    BadMagic,
    #[error("unsupported KRL format version {0} (only 1 exists)")]
    FormatVersion(u32),
    #[error("KRL is {0} bytes; OpenSSH reads at most {SSHBUF_SIZE_MAX}")]
    FileTooLarge(usize),
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("{0} is larger than OpenSSH allows")]
    TooLarge(&'static str),
    #[error("{0} contains a NUL byte")]
    EmbeddedNul(&'static str),
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("{0} is a negative bignum")]
    NegativeBignum(&'static str),
    #[error("{what} is {bytes} bytes: bignum is too large (OpenSSH reads at most 2,048)")]
    BignumTooLarge { what: &'static str, bytes: usize },
    #[error("KRL contains an embedded signature section; OpenSSH 9.4+ refuses those (use a detached signature)")]
    EmbeddedSignature,
    #[error("unsupported KRL section type {0:#04x}")]
    UnknownSection(u8),
    #[error("unsupported certificate subsection type {0:#04x}")]
    UnknownSubsection(u8),
    #[error("invalid CA key in certificate section: {0}")]
    BadCaKey(String),
    #[error("serial 0 cannot be revoked")]
    ZeroSerial,
    #[error("invalid serial range {lo}-{hi}")]
    BadRange { lo: u64, hi: u64 },
    #[error("serial bitmap starting at {0} wraps past 2^64")]
    BitmapWraps(u64),
    #[error("{what} has length {len}, expected {expected}")]
    BadHashLength {
        what: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("trailing data in {0}")]
    TrailingData(&'static str),
}

impl Krl {
    /// Parses a KRL, applying OpenSSH's limits.
    pub fn decode(bytes: &[u8]) -> Result<Krl, DecodeError> {
        if bytes.len() > SSHBUF_SIZE_MAX {
            return Err(DecodeError::FileTooLarge(bytes.len()));
        }
        let mut r = Reader::new(bytes);
        if r.remaining() < section::MAGIC.len()
            || r.take(section::MAGIC.len(), "magic")? != section::MAGIC
        {
            return Err(DecodeError::BadMagic);
        }
        let format = r.u32("format version")?;
        if format != section::FORMAT_VERSION {
            return Err(DecodeError::FormatVersion(format));
        }
        let mut krl = Krl {
            version: r.u64("KRL version")?,
            generated_date: r.u64("generated date")?,
            ..Krl::default()
        };
        let _flags = r.u64("flags")?;
        let _reserved = r.string("reserved header field")?;
        krl.comment = r.cstring("comment")?;

        while !r.is_empty() {
            let kind = r.u8("section type")?;
            let body = r.string("section")?;
            let mut s = Reader::new(body);
            match kind {
                section::CERTIFICATES => certificates(&mut krl, &mut s)?,
                section::EXPLICIT_KEY => {
                    while !s.is_empty() {
                        let blob = s.string("explicit key")?;
                        krl.explicit_keys.insert(blob.to_vec());
                    }
                }
                section::FINGERPRINT_SHA1 => {
                    while !s.is_empty() {
                        krl.sha1s
                            .insert(fixed(s.string("SHA1 fingerprint")?, "SHA1 fingerprint")?);
                    }
                }
                section::FINGERPRINT_SHA256 => {
                    while !s.is_empty() {
                        let d = s.string("SHA256 fingerprint")?;
                        krl.sha256s.insert(fixed(d, "SHA256 fingerprint")?);
                    }
                }
                section::SIGNATURE => return Err(DecodeError::EmbeddedSignature),
                other => return Err(DecodeError::UnknownSection(other)),
            }
        }
        Ok(krl)
    }
}

fn fixed<const N: usize>(d: &[u8], what: &'static str) -> Result<[u8; N], DecodeError> {
    d.try_into().map_err(|_| DecodeError::BadHashLength {
        what,
        len: d.len(),
        expected: N,
    })
}

fn certificates(krl: &mut Krl, s: &mut Reader<'_>) -> Result<(), DecodeError> {
    let ca_blob = s.string("CA key")?;
    let _reserved = s.string("certificate section reserved field")?;
    let scope = if ca_blob.is_empty() {
        CaScope::AnyCa
    } else {
        let key =
            PublicKey::from_bytes(ca_blob).map_err(|e| DecodeError::BadCaKey(e.to_string()))?;
        CaScope::of(&key)
    };
    let rc = krl.certs.entry(scope).or_default();

    while !s.is_empty() {
        let kind = s.u8("certificate subsection type")?;
        let mut sub = Reader::new(s.string("certificate subsection")?);
        match kind {
            section::CERT_SERIAL_LIST => {
                if !sub.remaining().is_multiple_of(8) {
                    return Err(DecodeError::Truncated("serial list"));
                }
                while !sub.is_empty() {
                    let serial = sub.u64("serial")?;
                    rc.serials
                        .insert(serial)
                        .map_err(|_| DecodeError::ZeroSerial)?;
                }
            }
            section::CERT_SERIAL_RANGE => {
                let lo = sub.u64("serial range")?;
                let hi = sub.u64("serial range")?;
                if lo == 0 || lo > hi {
                    return Err(DecodeError::BadRange { lo, hi });
                }
                rc.serials
                    .insert_range(lo, hi)
                    .map_err(|_| DecodeError::ZeroSerial)?;
            }
            section::CERT_SERIAL_BITMAP => {
                let start = sub.u64("serial bitmap start")?;
                let magnitude = sub.unsigned_mpint("serial bitmap")?;
                let nbits = significant_bits(magnitude);
                // OpenSSH walks every bit position and fails on wrap-around,
                // set or not.
                if nbits > 1 && start.checked_add(nbits - 1).is_none() {
                    return Err(DecodeError::BitmapWraps(start));
                }
                // Insert whole runs of set bits: far fewer tree operations.
                let mut run: Option<(u64, u64)> = None;
                let set_bits = magnitude.iter().rev().enumerate().flat_map(|(i, byte)| {
                    (0..8u64)
                        .filter(move |bit| byte & (1 << bit) != 0)
                        .map(move |bit| start + (i as u64) * 8 + bit)
                });
                for serial in set_bits {
                    run = match run {
                        Some((lo, hi)) if hi + 1 == serial => Some((lo, serial)),
                        Some((lo, hi)) => {
                            rc.serials
                                .insert_range(lo, hi)
                                .map_err(|_| DecodeError::ZeroSerial)?;
                            Some((serial, serial))
                        }
                        None => Some((serial, serial)),
                    };
                }
                if let Some((lo, hi)) = run {
                    rc.serials
                        .insert_range(lo, hi)
                        .map_err(|_| DecodeError::ZeroSerial)?;
                }
            }
            section::CERT_KEY_ID => {
                while !sub.is_empty() {
                    rc.key_ids.insert(sub.cstring("key id")?);
                }
            }
            other => return Err(DecodeError::UnknownSubsection(other)),
        }
        if !sub.is_empty() {
            return Err(DecodeError::TrailingData("certificate subsection"));
        }
    }
    Ok(())
}

/// Bits up to and including the highest set bit of a big-endian magnitude
/// with leading zeros already stripped.
fn significant_bits(magnitude: &[u8]) -> u64 {
    match magnitude.first() {
        None => 0,
        Some(&top) => (magnitude.len() as u64 - 1) * 8 + u64::from(8 - top.leading_zeros()),
    }
}
