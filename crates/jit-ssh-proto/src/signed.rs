//! Documents the CA signs for hosts: its key set and the manifest of its
//! current KRL. A host accepts either only when a detached SSHSIG over the
//! exact document bytes verifies with a key it already trusts, in the
//! namespace naming that kind of document, and only when it is not older
//! than the one it holds (the signed `issued_at` orders them, so a replayed
//! old answer is noticed).
//!
//! Both travel as a [`SignedDocument`]: the document as a JSON string (the
//! bytes the signature covers) beside its armored signature, in one answer,
//! so the two cannot come from different moments.

use serde::{Deserialize, Serialize};

/// SSHSIG namespace of [`CaKeySet`] documents.
pub const CA_KEYS_NAMESPACE: &str = "jit-ssh-ca-keys@jit-ssh";
/// SSHSIG namespace of [`KrlManifest`] documents.
pub const KRL_MANIFEST_NAMESPACE: &str = "jit-ssh-krl-manifest@jit-ssh";

/// `kind` of a [`CaKeySet`].
pub const CA_KEY_SET_KIND: &str = "jit-ssh-ca-keys/1";
/// `kind` of a [`KrlManifest`].
pub const KRL_MANIFEST_KIND: &str = "jit-ssh-krl-manifest/1";

/// The most a host reads of a key set answer (`GET /v1/ca-keys`).
pub const MAX_CA_KEYS_BYTES: u64 = 64 * 1024;
/// The most a host reads of a manifest answer (`GET /v1/krl.manifest`).
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024;
/// The most a host reads of a KRL; the signed manifest names the exact size,
/// which caps the download further.
pub const MAX_KRL_BYTES: u64 = 64 * 1024 * 1024;

/// A document and the CA's detached signature over its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDocument {
    /// The signed bytes: JSON of a [`CaKeySet`] or a [`KrlManifest`].
    pub document: String,
    /// Armored SSHSIG (`-----BEGIN SSH SIGNATURE-----`) over `document`.
    pub signature: String,
}

/// The CA keys hosts should trust (their `TrustedUserCAKeys` lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaKeySet {
    /// [`CA_KEY_SET_KIND`].
    pub kind: String,
    /// When the CA signed it (Unix seconds).
    pub issued_at: u64,
    /// OpenSSH public key lines: the signing key first, then keys staged
    /// for a rotation.
    pub keys: Vec<String>,
}

/// What the current KRL is, signed with the time it was vouched for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KrlManifest {
    /// [`KRL_MANIFEST_KIND`].
    pub kind: String,
    pub krl_version: u64,
    /// SHA-256 of the KRL bytes, lowercase hex.
    pub krl_sha256: String,
    /// Length of the KRL in bytes.
    pub krl_size: u64,
    /// When the CA signed it (Unix seconds). The CA signs a fresh manifest
    /// at least every minute, even when nothing changed.
    pub issued_at: u64,
    /// The CA's own bound: after this, a host should treat the KRL as stale.
    pub valid_until: u64,
}
