//! An enrolled host checks in on every sync: it proves it still holds the
//! host key its certificate names, reports what it holds (KRL and key set
//! versions, its last error), and gets a new host certificate when less
//! than a third of the current one's validity is left.
//!
//! 1. `POST /v1/hosts/checkin` [`HostCheckinStart`] → a challenge
//!    ([`crate::hosts::HostEnrollChallenge`]: id, nonce, expiry).
//! 2. `POST /v1/hosts/checkin/{id}` [`HostCheckin`]: the current host
//!    certificate and the report, with the host key's SSHSIG over
//!    [`checkin_message`] ([`HOST_CHECKIN_NAMESPACE`]) → [`HostCheckedIn`],
//!    a document the user CA key signs ([`HOST_CHECKED_IN_NAMESPACE`])
//!    naming the nonce, so an old answer cannot be replayed.
//!
//! A copy of the certificate without the host private key cannot check in,
//! and a certificate replaced by a renewal (or of a removed host) is refused.

use serde::{Deserialize, Serialize};

/// What the host signs its check-in in.
pub const HOST_CHECKIN_NAMESPACE: &str = "jit-ssh-host-checkin@jit-ssh";
/// What the CA signs its answer in.
pub const HOST_CHECKED_IN_NAMESPACE: &str = "jit-ssh-host-checked-in@jit-ssh";
pub const HOST_CHECKED_IN_KIND: &str = "jit-ssh-host-checked-in/1";
/// The most a host reads of a check-in answer.
pub const MAX_CHECKED_IN_BYTES: u64 = 64 * 1024;
/// The most of `last_error` the CA keeps.
pub const MAX_REPORTED_ERROR_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostCheckinStart {
    /// The host's enrolled name (its certificate's principal).
    pub name: String,
}

/// What the host holds, as its last sync found it (`sync-state.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostReport {
    /// The KRL version sshd reads.
    pub krl_version: u64,
    /// Unix seconds: when the CA signed the held KRL's manifest.
    pub krl_signed_at: Option<u64>,
    /// Unix seconds: when the CA signed the held CA key set.
    pub ca_keys_signed_at: Option<u64>,
    /// The last sync's error, if it failed.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostCheckin {
    /// The host's current certificate (its `-cert.pub` line).
    pub certificate: String,
    /// JSON of [`HostReport`]: the exact bytes signed.
    pub report: String,
    /// Armored SSHSIG by the host key over [`checkin_message`].
    pub signature: String,
}

/// The bytes a host signs for check-in `id`: the challenge, its
/// certificate and its report, each on its own line(s) after a length so
/// no field can run into the next.
pub fn checkin_message(id: &str, nonce: &str, certificate: &str, report: &str) -> String {
    let certificate = certificate.trim();
    format!(
        "jit-ssh host checkin\n{id}\n{nonce}\n{}\n{certificate}\n{}\n{report}\n",
        certificate.len(),
        report.len()
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCheckedIn {
    /// JSON of [`CheckedInDocument`]: the signed bytes.
    pub document: String,
    /// SSHSIG over `document` by the user CA key ([`HOST_CHECKED_IN_NAMESPACE`]).
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckedInDocument {
    /// [`HOST_CHECKED_IN_KIND`].
    pub kind: String,
    pub name: String,
    /// The challenge's nonce: this answer is for this check-in only.
    pub nonce: String,
    /// A new host certificate when the current one was due for renewal.
    pub certificate: Option<String>,
    /// The host CA public keys (what `certificate` must be signed by).
    pub host_ca_keys: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_message_keeps_fields_apart() {
        // Moving a line from the certificate into the report changes the bytes.
        assert_ne!(
            checkin_message("i", "n", "a\nb", "c"),
            checkin_message("i", "n", "a", "b\nc")
        );
        assert_eq!(
            checkin_message("i", "n", " cert \n", "{}"),
            "jit-ssh host checkin\ni\nn\n4\ncert\n2\n{}\n"
        );
    }
}
