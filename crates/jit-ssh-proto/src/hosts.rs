//! Host enrollment on the wire. A host holds an enrollment token
//! (`jhe1.ID.SECRET.CAFP`) an operator made; the token names the user CA
//! key's fingerprint, so the host can check every answer the CA signs
//! without a separate bootstrap step.
//!
//! 1. `POST /v1/hosts/enroll` [`HostEnrollStart`] → [`HostEnrollChallenge`].
//! 2. The host signs [`challenge_message`] with its host key (SSHSIG,
//!    [`HOST_ENROLL_NAMESPACE`]); `POST /v1/hosts/enroll/{id}`
//!    [`HostEnrollFinish`] → [`HostEnrolled`]: the host certificate and
//!    host CA keys in a document the user CA key signs
//!    ([`HOST_ENROLLED_NAMESPACE`]), and the signed user CA key set.

use serde::{Deserialize, Serialize};

use crate::api::CaKeys;

/// What the host signs to prove it holds the host key.
pub const HOST_ENROLL_NAMESPACE: &str = "jit-ssh-host-enroll@jit-ssh";
/// What the CA signs its enrollment answer in.
pub const HOST_ENROLLED_NAMESPACE: &str = "jit-ssh-host-enrolled@jit-ssh";
/// The host CA key set clients put in known_hosts (`@cert-authority`).
pub const HOST_CA_KEYS_NAMESPACE: &str = "jit-ssh-host-ca-keys@jit-ssh";
pub const HOST_ENROLLED_KIND: &str = "jit-ssh-host-enrolled/1";
pub const HOST_CA_KEYS_KIND: &str = "jit-ssh-host-ca-keys/1";

/// The most a host reads of an enrollment answer.
pub const MAX_ENROLLED_BYTES: u64 = 64 * 1024;

/// An enrollment token as an operator hands it to provisioning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    pub id: String,
    pub secret: String,
    /// `SHA256:…` of the user CA key the answers must be signed by.
    pub ca_fingerprint: String,
}

impl EnrollmentToken {
    const PREFIX: &'static str = "jhe1";

    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().split('.');
        let (Some(Self::PREFIX), Some(id), Some(secret), Some(fp), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let hex = |v: &str, n: usize| v.len() == n && v.bytes().all(|b| b.is_ascii_hexdigit());
        let b64 = |v: &str| {
            !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        };
        (hex(id, 32) && hex(secret, 64) && b64(fp)).then(|| Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
            ca_fingerprint: format!("SHA256:{fp}"),
        })
    }
}

impl std::fmt::Display for EnrollmentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fp = self
            .ca_fingerprint
            .strip_prefix("SHA256:")
            .unwrap_or(&self.ca_fingerprint);
        write!(f, "{}.{}.{}.{fp}", Self::PREFIX, self.id, self.secret)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEnrollStart {
    pub token_id: String,
    pub token_secret: String,
    /// The host's name as engineers ssh to it.
    pub name: String,
    /// The host's public key (OpenSSH line, ed25519).
    pub host_key: String,
    /// More names for the host certificate (each one the token may
    /// enroll), at most [`MAX_ALIASES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// The most aliases one host certificate carries.
pub const MAX_ALIASES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEnrollChallenge {
    pub id: String,
    pub nonce: String,
    pub expires_at: String,
}

/// The bytes a host signs for challenge `id`.
pub fn challenge_message(id: &str, nonce: &str) -> String {
    format!("jit-ssh host enroll\n{id}\n{nonce}\n")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEnrollFinish {
    /// Armored SSHSIG over [`challenge_message`] by the host key.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEnrolled {
    /// JSON of [`EnrolledDocument`]: the signed bytes.
    pub document: String,
    /// SSHSIG over `document` by the user CA key ([`HOST_ENROLLED_NAMESPACE`]).
    pub signature: String,
    /// The user CA key set, signed as for host sync.
    pub ca_keys: CaKeys,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolledDocument {
    /// [`HOST_ENROLLED_KIND`].
    pub kind: String,
    pub name: String,
    /// The challenge's nonce: this answer is for this enrollment only.
    pub nonce: String,
    /// The host certificate (OpenSSH `…-cert.pub` line).
    pub certificate: String,
    /// The host CA public keys (for known_hosts `@cert-authority`).
    pub host_ca_keys: Vec<String>,
}

/// `GET /v1/host-ca-keys`: what clients put in known_hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCaKeySet {
    /// [`HOST_CA_KEYS_KIND`].
    pub kind: String,
    pub issued_at: u64,
    /// Host CA public keys.
    pub keys: Vec<String>,
    /// Host name patterns the CA enrolls hosts under (`@cert-authority`
    /// applies to these only).
    pub patterns: Vec<String>,
    /// Host keys of removed hosts (`@revoked` for clients).
    #[serde(default)]
    pub revoked_host_keys: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_malformed_ones_are_refused() {
        let t = EnrollmentToken {
            id: "a".repeat(32),
            secret: "b".repeat(64),
            ca_fingerprint: "SHA256:abc+/9".into(),
        };
        assert_eq!(EnrollmentToken::parse(&t.to_string()), Some(t.clone()));
        for bad in [
            "",
            "jhe1",
            &format!("jhe2.{}.{}.abc", "a".repeat(32), "b".repeat(64)),
            &format!("jhe1.{}.{}.abc", "a".repeat(31), "b".repeat(64)),
            &format!("jhe1.{}.{}.abc.x", "a".repeat(32), "b".repeat(64)),
            &format!("jhe1.{}.{}.", "a".repeat(32), "b".repeat(64)),
        ] {
            assert_eq!(EnrollmentToken::parse(bad), None, "{bad}");
        }
    }
}

/// `GET /v1/hosts` (signed in as security, auditor or admin): the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostList {
    pub hosts: Vec<HostInfo>,
    /// The CA's KRL version now, beside what each host holds.
    #[serde(default)]
    pub krl_version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub name: String,
    pub group: String,
    pub host_key_fingerprint: String,
    /// Enrolled with this token id.
    pub enrolled_by_token: String,
    /// RFC 3339.
    pub enrolled_at: String,
    /// The host certificate's serial (a decimal string, as every serial).
    #[serde(with = "crate::serial")]
    pub cert_serial: u64,
    /// RFC 3339: when the host certificate ends.
    pub cert_valid_before: String,
    /// RFC 3339 of the last authenticated contact (enrollment or check-in).
    pub last_contact: String,
    /// More names in its host certificate.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The KRL version the host reported holding (`None`: no check-in yet).
    #[serde(default)]
    pub krl_version: Option<u64>,
    /// RFC 3339: when the CA signed the KRL manifest the host holds.
    #[serde(default)]
    pub krl_signed_at: Option<String>,
    /// RFC 3339: when the CA signed the user CA key set the host holds.
    #[serde(default)]
    pub ca_keys_signed_at: Option<String>,
    /// The host's last sync error, as it reported it.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The KRL the host holds was signed longer ago than the CA's
    /// `[hosts] krl_behind_after` (or it never reported one): revocations
    /// since may not be enforced there.
    #[serde(default)]
    pub behind_on_krl: bool,
    /// No contact for longer than `[hosts] silent_after`.
    #[serde(default)]
    pub silent: bool,
}
