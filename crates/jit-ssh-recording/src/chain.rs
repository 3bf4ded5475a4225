//! The hash chain: chunk 0 names the header line's hash, every later
//! chunk names its predecessor's hash, and the end chunk's hash is the
//! recording's final hash.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A SHA-256 in the chain, shown and parsed as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash(pub [u8; 32]);

/// Domain of [`header_hash`]: a header line hashed here can never equal a
/// chunk body's hash (those start with the chunk magic).
const HEADER_DOMAIN: &[u8] = b"jit-ssh-recording-header/1\n";

/// The hash chunk 0 must name: binds the exact header line bytes.
pub fn header_hash(line: &str) -> ChainHash {
    let mut h = Sha256::new();
    h.update(HEADER_DOMAIN);
    h.update((line.len() as u64).to_be_bytes());
    h.update(line.as_bytes());
    ChainHash(h.finalize().into())
}

/// The hash of a chunk's signed body bytes.
pub(crate) fn body_hash(body: &[u8]) -> ChainHash {
    ChainHash(Sha256::digest(body).into())
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a chain hash is 64 hex digits")]
pub struct BadChainHash;

impl FromStr for ChainHash {
    type Err = BadChainHash;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| BadChainHash)?;
        Ok(ChainHash(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_hash_binds_every_byte_and_round_trips_as_hex() {
        let a = header_hash("{\"version\":2}");
        assert_ne!(a, header_hash("{\"version\":2} "));
        assert_eq!(a.to_string().parse::<ChainHash>().ok(), Some(a));
        assert!("zz".parse::<ChainHash>().is_err());
    }
}
