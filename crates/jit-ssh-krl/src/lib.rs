//! OpenSSH Key Revocation Lists (KRLs), as specified in OpenSSH's
//! `PROTOCOL.krl`: an in-memory model, an encoder that only writes what
//! OpenSSH can read, a decoder that refuses what OpenSSH would refuse, the
//! same revocation check sshd performs, and the `ssh-keygen -k` spec format.
//!
//! This crate does no I/O: callers read and write the bytes.
//!
//! What it owns: KRL bytes and their meaning. What it does not: which
//! certificates are revoked (the CA's revocation store decides), signing a
//! KRL (OpenSSH ≥ 9.4 refuses embedded signatures; the CA signs KRLs with a
//! detached SSHSIG instead).

mod check;
mod decode;
mod encode;
mod model;
mod plan;
mod serials;
pub mod spec;
mod wire;

pub use decode::DecodeError;
pub use encode::EncodeError;
pub use model::{CaScope, KeyIdError, Krl, RevokedCerts};
pub use plan::MAX_BITMAP_BITS;
pub use serials::{SerialSet, ZeroSerial};
pub use wire::{MAX_BIGNUM_BYTES, SSHBUF_SIZE_MAX};

/// Section and subsection type bytes from `PROTOCOL.krl`.
pub(crate) mod section {
    pub const MAGIC: &[u8; 8] = b"SSHKRL\n\0";
    pub const FORMAT_VERSION: u32 = 1;
    pub const CERTIFICATES: u8 = 1;
    pub const EXPLICIT_KEY: u8 = 2;
    pub const FINGERPRINT_SHA1: u8 = 3;
    pub const SIGNATURE: u8 = 4;
    pub const FINGERPRINT_SHA256: u8 = 5;
    pub const CERT_SERIAL_LIST: u8 = 0x20;
    pub const CERT_SERIAL_RANGE: u8 = 0x21;
    pub const CERT_SERIAL_BITMAP: u8 = 0x22;
    pub const CERT_KEY_ID: u8 = 0x23;
}
