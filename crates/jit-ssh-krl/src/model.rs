//! What a KRL revokes: certificates by serial or key id (per CA key, or for
//! any CA), and keys by their blob, SHA-1 or SHA-256 fingerprint.

use std::collections::{BTreeMap, BTreeSet};

use sha1::{Digest, Sha1};
use sha2::Sha256;
use ssh_key::PublicKey;

use crate::serials::{SerialSet, ZeroSerial};

/// Which certificates a certificate section applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CaScope {
    /// Certificates signed by any CA (an empty CA key in the section).
    AnyCa,
    /// Certificates signed by this CA; holds the CA's public key blob.
    Ca(Vec<u8>),
}

impl CaScope {
    /// The scope of certificates signed by `ca`.
    pub fn of(ca: &PublicKey) -> Self {
        CaScope::Ca(key_blob(ca))
    }
}

/// The SSH wire blob of a public key, without comment or certificate.
pub(crate) fn key_blob(key: &PublicKey) -> Vec<u8> {
    // Encoding a parsed key into a Vec cannot fail; an empty blob would
    // simply never match anything.
    key.to_bytes().unwrap_or_default()
}

/// Certificates revoked within one [`CaScope`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevokedCerts {
    pub serials: SerialSet,
    pub key_ids: BTreeSet<String>,
}

impl RevokedCerts {
    pub fn is_empty(&self) -> bool {
        self.serials.is_empty() && self.key_ids.is_empty()
    }
}

/// A key id that OpenSSH could not store: it holds a NUL byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key id {0:?} contains a NUL byte, which OpenSSH cannot represent")]
pub struct KeyIdError(pub String);

/// A Key Revocation List.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Krl {
    /// Increases with every KRL the issuer publishes.
    pub version: u64,
    /// Seconds since the Unix epoch.
    pub generated_date: u64,
    pub comment: String,
    pub(crate) certs: BTreeMap<CaScope, RevokedCerts>,
    pub(crate) explicit_keys: BTreeSet<Vec<u8>>,
    pub(crate) sha1s: BTreeSet<[u8; 20]>,
    pub(crate) sha256s: BTreeSet<[u8; 32]>,
}

impl Krl {
    pub fn new() -> Self {
        Self::default()
    }

    fn scope(&mut self, ca: &CaScope) -> &mut RevokedCerts {
        self.certs.entry(ca.clone()).or_default()
    }

    pub fn revoke_serial(&mut self, ca: &CaScope, serial: u64) -> Result<(), ZeroSerial> {
        self.scope(ca).serials.insert(serial)
    }

    /// Revokes `lo..=hi`; refuses ranges that include serial 0.
    pub fn revoke_serial_range(
        &mut self,
        ca: &CaScope,
        lo: u64,
        hi: u64,
    ) -> Result<(), ZeroSerial> {
        self.scope(ca).serials.insert_range(lo, hi)
    }

    /// Revokes every serial in `serials` (fast for large sets).
    pub fn revoke_serials(&mut self, ca: &CaScope, serials: &SerialSet) {
        let scope = self.scope(ca);
        if scope.serials.is_empty() {
            scope.serials = serials.clone();
        } else {
            scope.serials.extend_from(serials);
        }
    }

    pub fn revoke_key_id(&mut self, ca: &CaScope, key_id: &str) -> Result<(), KeyIdError> {
        if key_id.contains('\0') {
            return Err(KeyIdError(key_id.to_owned()));
        }
        self.scope(ca).key_ids.insert(key_id.to_owned());
        Ok(())
    }

    /// Revokes a key (and every certificate for it) by its exact blob.
    pub fn revoke_key_explicit(&mut self, key: &PublicKey) {
        self.explicit_keys.insert(key_blob(key));
    }

    pub fn revoke_sha1(&mut self, digest: [u8; 20]) {
        self.sha1s.insert(digest);
    }

    pub fn revoke_sha256(&mut self, digest: [u8; 32]) {
        self.sha256s.insert(digest);
    }

    pub fn revoke_key_sha1(&mut self, key: &PublicKey) {
        self.revoke_sha1(sha1_of(key));
    }

    pub fn revoke_key_sha256(&mut self, key: &PublicKey) {
        self.revoke_sha256(sha256_of(key));
    }

    /// Certificate sections, one per CA scope that revokes something.
    pub fn cert_sections(&self) -> impl Iterator<Item = (&CaScope, &RevokedCerts)> {
        self.certs.iter().filter(|(_, rc)| !rc.is_empty())
    }

    pub fn revoked_certs(&self, ca: &CaScope) -> Option<&RevokedCerts> {
        self.certs.get(ca)
    }

    pub fn explicit_keys(&self) -> impl Iterator<Item = &[u8]> {
        self.explicit_keys.iter().map(Vec::as_slice)
    }

    pub fn sha1s(&self) -> impl Iterator<Item = &[u8; 20]> {
        self.sha1s.iter()
    }

    pub fn sha256s(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.sha256s.iter()
    }

    /// True when the KRL revokes nothing.
    pub fn is_empty(&self) -> bool {
        self.cert_sections().next().is_none()
            && self.explicit_keys.is_empty()
            && self.sha1s.is_empty()
            && self.sha256s.is_empty()
    }
}

pub(crate) fn sha1_of(key: &PublicKey) -> [u8; 20] {
    Sha1::digest(key_blob(key)).into()
}

pub(crate) fn sha256_of(key: &PublicKey) -> [u8; 32] {
    Sha256::digest(key_blob(key)).into()
}
