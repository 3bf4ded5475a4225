//! What the CA keeps about hosts: enrollment tokens (stored under the
//! SHA-256 of their secret part, so a copy of the database holds no usable
//! token), in-flight enrollment challenges, and the inventory of enrolled
//! hosts. A separate trait so the host side of the state has one place,
//! beside [`super::Store`] which requires it.

use serde::{Deserialize, Serialize};

use super::StoreError;

/// A token `jit-ssh-ca host-token` made for provisioning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostToken {
    /// SHA-256 (hex) of the token's secret part.
    pub secret_hash: String,
    /// The host group enrolled hosts join (a `[host_groups]` name).
    pub group: String,
    /// Further limits the names it may enroll (glob), beyond the group's.
    pub name_pattern: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
    /// Enrollments left.
    pub uses_left: u32,
    pub created_by: String,
}

/// A host that proved its token and is asked to prove its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostChallenge {
    pub token_id: String,
    pub name: String,
    /// OpenSSH public key line of the host key to certify.
    pub host_key: String,
    /// Hex; the host signs `{challenge id}\n{nonce}` with its key.
    pub nonce: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// A check-in challenge (`host_key` is then the enrolled one, looked
    /// up again at finish), never usable to enroll, and the reverse.
    #[serde(default)]
    pub checkin: bool,
    /// More names for the certificate, checked against the token.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// An enrolled host, as the inventory lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub name: String,
    pub group: String,
    pub host_key: String,
    pub host_key_fingerprint: String,
    pub enrolled_by_token: String,
    /// Unix seconds.
    pub enrolled_at: i64,
    pub cert_serial: u64,
    /// Unix seconds.
    pub cert_valid_before: u64,
    /// Unix seconds of the last authenticated contact (enrollment or
    /// check-in).
    pub last_contact: i64,
    /// What the host reported at its last check-in (`None` before one).
    #[serde(default)]
    pub held: Option<HeldReport>,
    /// More names in its host certificate (kept at renewal).
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// What a host said it holds, as of `HostRecord::last_contact`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldReport {
    pub krl_version: u64,
    /// Unix seconds the held KRL manifest was signed.
    pub krl_signed_at: Option<u64>,
    pub ca_keys_signed_at: Option<u64>,
    /// The host's last sync error (bounded, control characters escaped).
    pub last_error: Option<String>,
}

pub trait HostStore: Send + Sync {
    fn put_host_token(&self, id: &str, token: &HostToken) -> Result<(), StoreError>;
    fn host_token(&self, id: &str) -> Result<Option<HostToken>, StoreError>;
    /// Spends one use of the token (compare-and-swap; the last use removes
    /// it). `None` when it is gone, expired at `now`, or used up.
    fn use_host_token(&self, id: &str, now: i64) -> Result<Option<HostToken>, StoreError>;
    fn put_host_challenge(&self, id: &str, c: &HostChallenge) -> Result<(), StoreError>;
    /// Removes and returns it: a challenge answers once.
    fn take_host_challenge(&self, id: &str) -> Result<Option<HostChallenge>, StoreError>;
    fn put_host(&self, host: &HostRecord) -> Result<(), StoreError>;
    fn host(&self, name: &str) -> Result<Option<HostRecord>, StoreError>;
    /// Replaces `old` with `new` only if the stored record is still `old`
    /// (two check-ins of one host never both renew). `false` otherwise.
    fn swap_host(&self, old: &HostRecord, new: &HostRecord) -> Result<bool, StoreError>;
    /// Removes challenges that expired before `cutoff`; returns how many.
    fn prune_host_challenges(&self, cutoff: i64) -> Result<usize, StoreError>;
    fn hosts(&self) -> Result<Vec<HostRecord>, StoreError>;
    /// Forgets `name`; returns what was stored.
    fn remove_host(&self, name: &str) -> Result<Option<HostRecord>, StoreError>;
    /// Remembers a removed host's key (OpenSSH line) under its fingerprint:
    /// clients list it as `@revoked`, and it cannot enroll again.
    fn revoke_host_key(&self, fingerprint: &str, key: &str) -> Result<(), StoreError>;
    fn host_key_revoked(&self, fingerprint: &str) -> Result<bool, StoreError>;
    fn revoked_host_keys(&self) -> Result<Vec<String>, StoreError>;
}
