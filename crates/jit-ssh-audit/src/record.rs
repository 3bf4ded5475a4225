//! One audit record and the events it can describe.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A SHA-256 digest, written as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Hash(pub [u8; 32]);

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(Hash(out))
    }
}

/// Who caused the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// An enrolled jit-ssh user.
    User { name: String },
    /// Someone at a shell on the CA host (offline tools); `login` is the
    /// Unix account the tool ran as.
    Operator { login: String },
    /// The CA itself (expiry, scheduled work).
    System,
    /// Someone who has not proven who they are (no WebAuthn touch yet):
    /// the address the CA saw, and the user name they gave, which is
    /// only a claim. Added after the first release; older records never
    /// hold it, and the hash of older records is unchanged.
    Unauthenticated {
        client_addr: String,
        claimed_user: String,
    },
    /// An enrolled host that proved its host key and current host
    /// certificate (a check-in), from the address the CA saw.
    Host { name: String, client_addr: String },
}

impl Actor {
    /// An unauthenticated caller at `client` claiming to be `user`.
    pub fn claim(client: std::net::IpAddr, user: &str) -> Self {
        Actor::Unauthenticated {
            client_addr: client.to_string(),
            claimed_user: user.to_owned(),
        }
    }
}

/// How a certificate came to be issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssuedVia {
    /// `jit-ssh-ca sign` on the CA host: the break-glass path of last resort.
    OfflineSign,
    /// The CA server, after MFA and policy.
    Server,
}

/// A certificate left (or is about to leave) the CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateIssued {
    pub serial: u64,
    pub key_id: String,
    pub user: String,
    pub host: String,
    pub account: String,
    pub principals: Vec<String>,
    /// Unix seconds.
    pub valid_after: u64,
    /// Unix seconds.
    pub valid_before: u64,
    /// SHA256 fingerprint of the certified public key.
    pub public_key_fingerprint: String,
    /// SHA256 fingerprint of the CA key that signed it.
    pub ca_fingerprint: String,
    pub grant: String,
    pub reason: String,
    pub critical_options: Vec<(String, String)>,
    pub extensions: Vec<String>,
    pub via: IssuedVia,
    /// The session policy the certificate's rule applied (its
    /// `force-command` runs the host's session wrapper when it asks for
    /// anything). Added with the session wrapper; older records and
    /// offline issuance never hold it, and their hashes are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionTerms>,
}

/// A rule's session policy as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTerms {
    /// The host's session wrapper ends the session at `valid_before`.
    pub end_at_expiry: bool,
    /// "off", "output" or "full".
    pub record: String,
}

/// An engineer asked for access (before any MFA or policy decision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCreated {
    pub request: String,
    pub user: String,
    pub host: String,
    pub account: String,
    pub ttl_secs: u64,
    pub reason: String,
    pub key_fingerprint: String,
    pub client_addr: String,
}

/// A step concerning one request: its WebAuthn result or its expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestStep {
    pub request: String,
    pub user: String,
    pub host: String,
    /// What went wrong, for failures; empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// What policy decided for an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDecision {
    pub request: String,
    pub user: String,
    pub host: String,
    pub account: String,
    pub outcome: PolicyOutcome,
    /// The denial reason, or which rule decided.
    pub reason: String,
    /// The on-call shift that approved it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_call: Option<OnCallShift>,
    /// Issued at once under break-glass.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
    /// Who was asked to approve (pending approval).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// How many approvals it needs (pending approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_approvals: Option<u32>,
}

/// What policy decided: stored as `approved`, `pending_approval` or
/// `denied`, the strings older records hold (their hashes depend on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyOutcome {
    Approved,
    PendingApproval,
    Denied,
}

impl PolicyOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::PendingApproval => "pending_approval",
            Self::Denied => "denied",
        }
    }
}

impl std::fmt::Display for PolicyOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lets readers compare with the stored string (`d.outcome == "denied"`).
impl PartialEq<&str> for PolicyOutcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The shift that put the requester on call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnCallShift {
    pub schedule: String,
    pub layer: String,
    /// The name the schedule gave (user name or email).
    pub member: String,
    /// Unix seconds.
    pub start: i64,
    pub end: i64,
}

/// An approver's decision on someone's request (or its refusal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalStep {
    pub request: String,
    /// The requester.
    pub user: String,
    pub host: String,
    pub account: String,
    pub approver: String,
    /// The approver's comment or reason; for refusals, why.
    pub comment: String,
    /// Approvals so far (after this one) and how many are needed.
    pub approvals: u32,
    pub needed: u32,
}

/// A notification that could not be delivered after every retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationFailed {
    /// What it was about (`pending_approval`, `break_glass`, …).
    pub event: String,
    pub request: String,
    pub user: String,
    /// Kind and host of the target (never the URL: it may hold a secret).
    pub target: String,
    pub attempts: u32,
    pub error: String,
}

/// Enrollment: an invite was made, or a credential registered with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub user: String,
    /// Roles the invite grants (invites), or the credential id (enrollments).
    pub detail: String,
}

/// Certificates were revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// What was revoked: `serial:N`, `grant:ID`, `user:NAME` or `key_id:ID`.
    pub target: String,
    /// The user whose certificates these are, when known.
    pub user: String,
    pub reason: String,
    /// Serials put in the KRL (unexpired certificates only).
    pub serials: Vec<u64>,
    pub krl_version: u64,
}

/// The CA's signature over the chain head: every record up to `seq`
/// (whose hash is `hash`) is vouched for by the CA key. Checkpoints are
/// records in the chain themselves, so an export carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: Hash,
    /// SHA256 fingerprint of the signing CA key.
    pub ca_fingerprint: String,
    /// Armored SSHSIG over [`crate::checkpoint::message`], namespace
    /// [`crate::checkpoint::NAMESPACE`].
    pub signature: String,
    /// Why it was made: `interval`, `shutdown` or `export`.
    pub trigger: String,
}

/// What happened. New kinds are added as the CA grows; existing ones are
/// never changed, because old records must still verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    CertificateIssued(CertificateIssued),
    RequestCreated(RequestCreated),
    MfaVerified(RequestStep),
    MfaFailed(RequestStep),
    RequestExpired(RequestStep),
    RequestCancelled(RequestStep),
    PolicyDecision(PolicyDecision),
    InviteCreated(Enrollment),
    UserEnrolled(Enrollment),
    Revoked(Revoked),
    /// A revocation was refused (role, nothing to revoke); `request` is
    /// the revocation id, `host` empty.
    RevocationRefused(RequestStep),
    /// An admin re-enabled a user blocked by a user revocation.
    UserEnabled(Enrollment),
    Checkpoint(Checkpoint),
    /// A user signed in (WebAuthn) to read or decide; `request` is the
    /// session id, `detail` the roles it carries.
    SignedIn(RequestStep),
    RequestApproved(ApprovalStep),
    RequestDenied(ApprovalStep),
    /// An approval or denial that was not accepted (self-approval, a
    /// second approval by the same person, not an approver).
    ApprovalRefused(ApprovalStep),
    NotificationFailed(NotificationFailed),
    /// An admin made a host enrollment token.
    HostTokenCreated(HostStep),
    /// A host proved its token and its key and got a host certificate.
    HostEnrolled(HostStep),
    /// A host enrollment was refused (bad token, name, or key proof).
    HostEnrollRefused(HostStep),
    /// An admin removed a host: its key is revoked for clients.
    HostRemoved(HostStep),
    /// An enrolled host proved its key and current certificate and got a
    /// new host certificate.
    HostRenewed(HostStep),
    /// A host check-in was refused (unknown host, stale or foreign
    /// certificate, or a signature not by the enrolled host key).
    HostCheckinRefused(HostStep),
    /// An operator staged the next CA key (`jit-ssh-ca rotate stage`): it
    /// is published beside the signing key so hosts trust both.
    CaKeyStaged(KeyRotation),
    /// The staged key became the signing key (`rotate activate`); the
    /// previous one stays published until it is retired.
    CaKeyActivated(KeyRotation),
    /// The previous key left the published set (`rotate retire`).
    CaKeyRetired(KeyRotation),
    /// A recorded SSH session began (its first chunks arrived, signed by
    /// the host).
    SessionStarted(crate::session_record::SessionStarted),
    /// A recorded SSH session ended; the recording's final hash.
    SessionEnded(crate::session_record::SessionEnded),
    /// A user ended their sign-in (`jit-ssh logout`): its token no longer
    /// works, copies included; `request` is the session id.
    SignedOut(RequestStep),
}

/// A step of a CA key rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    /// Which key: `user` (the user CA key) or `host` (the host CA key).
    pub key: String,
    /// SHA256 fingerprint of the key the step is about: the staged key,
    /// the newly active key, or the retired key.
    pub fingerprint: String,
    /// SHA256 fingerprint of the other key: the active key when staging or
    /// retiring, the previous key when activating.
    pub other_fingerprint: String,
    /// Unix seconds from which the previous key may be retired (activate)
    /// or was retired (retire); 0 when staging.
    #[serde(default)]
    pub retire_after: u64,
    pub detail: String,
}

/// A step of a host's enrollment. `token` is the token's id (never its
/// secret); `serial` and `valid_before` are the host certificate's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStep {
    pub host: String,
    pub group: String,
    pub token: String,
    pub detail: String,
    #[serde(default)]
    pub host_key_fingerprint: String,
    #[serde(default)]
    pub serial: u64,
    #[serde(default)]
    pub valid_before: u64,
    /// The host certificate's principals besides `host` (its aliases),
    /// for enrollments and renewals: every name the certificate vouches
    /// for is in the log, as a user certificate's principals are. Added
    /// in session 12; older records never hold it, and their hashes are
    /// unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// Every event kind, as written in records (`"kind"`) and filters.
pub const EVENT_KINDS: &[&str] = &[
    "certificate_issued",
    "request_created",
    "mfa_verified",
    "mfa_failed",
    "request_expired",
    "request_cancelled",
    "policy_decision",
    "invite_created",
    "user_enrolled",
    "revoked",
    "revocation_refused",
    "user_enabled",
    "checkpoint",
    "signed_in",
    "request_approved",
    "request_denied",
    "approval_refused",
    "notification_failed",
    "host_token_created",
    "host_enrolled",
    "host_enroll_refused",
    "host_removed",
    "host_renewed",
    "host_checkin_refused",
    "ca_key_staged",
    "ca_key_activated",
    "ca_key_retired",
    "session_started",
    "session_ended",
    "signed_out",
];

impl Event {
    /// The kind as written in the record's `"kind"` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::CertificateIssued(_) => "certificate_issued",
            Event::RequestCreated(_) => "request_created",
            Event::MfaVerified(_) => "mfa_verified",
            Event::MfaFailed(_) => "mfa_failed",
            Event::RequestExpired(_) => "request_expired",
            Event::RequestCancelled(_) => "request_cancelled",
            Event::PolicyDecision(_) => "policy_decision",
            Event::InviteCreated(_) => "invite_created",
            Event::UserEnrolled(_) => "user_enrolled",
            Event::Revoked(_) => "revoked",
            Event::RevocationRefused(_) => "revocation_refused",
            Event::UserEnabled(_) => "user_enabled",
            Event::Checkpoint(_) => "checkpoint",
            Event::SignedIn(_) => "signed_in",
            Event::RequestApproved(_) => "request_approved",
            Event::RequestDenied(_) => "request_denied",
            Event::ApprovalRefused(_) => "approval_refused",
            Event::NotificationFailed(_) => "notification_failed",
            Event::HostTokenCreated(_) => "host_token_created",
            Event::HostEnrolled(_) => "host_enrolled",
            Event::HostEnrollRefused(_) => "host_enroll_refused",
            Event::HostRemoved(_) => "host_removed",
            Event::HostRenewed(_) => "host_renewed",
            Event::HostCheckinRefused(_) => "host_checkin_refused",
            Event::CaKeyStaged(_) => "ca_key_staged",
            Event::CaKeyActivated(_) => "ca_key_activated",
            Event::CaKeyRetired(_) => "ca_key_retired",
            Event::SessionStarted(_) => "session_started",
            Event::SessionEnded(_) => "session_ended",
            Event::SignedOut(_) => "signed_out",
        }
    }

    /// The account (login name on the host) the event concerns.
    pub fn account(&self) -> Option<&str> {
        match self {
            Event::CertificateIssued(c) => Some(&c.account),
            Event::RequestCreated(r) => Some(&r.account),
            Event::PolicyDecision(d) => Some(&d.account),
            Event::RequestApproved(a) | Event::RequestDenied(a) | Event::ApprovalRefused(a) => {
                Some(&a.account)
            }
            Event::SessionStarted(s) => Some(&s.subject.account),
            Event::SessionEnded(s) => Some(&s.subject.account),
            _ => None,
        }
    }

    /// The user this event is about, for the user index.
    pub fn user(&self) -> Option<&str> {
        Some(match self {
            Event::Checkpoint(_)
            | Event::HostTokenCreated(_)
            | Event::HostEnrolled(_)
            | Event::HostEnrollRefused(_)
            | Event::HostRemoved(_)
            | Event::HostRenewed(_)
            | Event::HostCheckinRefused(_)
            | Event::CaKeyStaged(_)
            | Event::CaKeyActivated(_)
            | Event::CaKeyRetired(_) => return None,
            Event::SignedIn(s) | Event::SignedOut(s) => &s.user,
            Event::RequestApproved(a) | Event::RequestDenied(a) | Event::ApprovalRefused(a) => {
                &a.user
            }
            Event::NotificationFailed(n) => &n.user,
            Event::CertificateIssued(c) => &c.user,
            Event::RequestCreated(r) => &r.user,
            Event::MfaVerified(s)
            | Event::MfaFailed(s)
            | Event::RequestExpired(s)
            | Event::RequestCancelled(s) => &s.user,
            Event::PolicyDecision(d) => &d.user,
            Event::InviteCreated(e) | Event::UserEnrolled(e) => &e.user,
            Event::Revoked(r) => &r.user,
            Event::RevocationRefused(s) => &s.user,
            Event::UserEnabled(e) => &e.user,
            Event::SessionStarted(s) => &s.subject.user,
            Event::SessionEnded(s) => &s.subject.user,
        })
    }

    pub fn host(&self) -> Option<&str> {
        match self {
            Event::CertificateIssued(c) => Some(&c.host),
            Event::RequestCreated(r) => Some(&r.host),
            Event::MfaVerified(s)
            | Event::MfaFailed(s)
            | Event::RequestExpired(s)
            | Event::RequestCancelled(s) => Some(&s.host),
            Event::PolicyDecision(d) => Some(&d.host),
            Event::RequestApproved(a) | Event::RequestDenied(a) | Event::ApprovalRefused(a) => {
                Some(&a.host)
            }
            Event::InviteCreated(_)
            | Event::NotificationFailed(_)
            | Event::UserEnrolled(_)
            | Event::Revoked(_)
            | Event::RevocationRefused(_)
            | Event::UserEnabled(_)
            | Event::Checkpoint(_)
            | Event::HostTokenCreated(_)
            | Event::CaKeyStaged(_)
            | Event::CaKeyActivated(_)
            | Event::CaKeyRetired(_)
            | Event::SignedIn(_)
            | Event::SignedOut(_) => None,
            Event::HostEnrolled(h)
            | Event::HostEnrollRefused(h)
            | Event::HostRemoved(h)
            | Event::HostRenewed(h)
            | Event::HostCheckinRefused(h) => Some(&h.host),
            Event::SessionStarted(s) => Some(&s.subject.host),
            Event::SessionEnded(s) => Some(&s.subject.host),
        }
    }

    /// Serials the event concerns: the one issued, or those revoked.
    pub fn serials(&self) -> &[u64] {
        match self {
            Event::CertificateIssued(c) => std::slice::from_ref(&c.serial),
            Event::Revoked(r) => &r.serials,
            Event::HostEnrolled(h) | Event::HostRemoved(h) | Event::HostRenewed(h) => {
                std::slice::from_ref(&h.serial)
            }
            Event::SessionStarted(s) => std::slice::from_ref(&s.subject.serial),
            Event::SessionEnded(s) => std::slice::from_ref(&s.subject.serial),
            _ => &[],
        }
    }

    /// The grant, or for request events the request id (a request becomes
    /// the grant of the certificate issued for it).
    pub fn grant(&self) -> Option<&str> {
        match self {
            Event::CertificateIssued(c) => Some(&c.grant),
            Event::RequestCreated(r) => Some(&r.request),
            Event::MfaVerified(s)
            | Event::MfaFailed(s)
            | Event::RequestExpired(s)
            | Event::RequestCancelled(s) => Some(&s.request),
            Event::PolicyDecision(d) => Some(&d.request),
            Event::Revoked(r) => r.target.strip_prefix("grant:"),
            Event::RevocationRefused(s) => Some(&s.request),
            Event::RequestApproved(a) | Event::RequestDenied(a) | Event::ApprovalRefused(a) => {
                Some(&a.request)
            }
            Event::NotificationFailed(n) => Some(&n.request),
            Event::UserEnabled(_)
            | Event::Checkpoint(_)
            | Event::SignedIn(_)
            | Event::SignedOut(_) => None,
            Event::InviteCreated(_) | Event::UserEnrolled(_) => None,
            Event::HostTokenCreated(_)
            | Event::HostEnrolled(_)
            | Event::HostEnrollRefused(_)
            | Event::HostRemoved(_)
            | Event::HostRenewed(_)
            | Event::HostCheckinRefused(_)
            | Event::CaKeyStaged(_)
            | Event::CaKeyActivated(_)
            | Event::CaKeyRetired(_) => None,
            Event::SessionStarted(s) => Some(&s.subject.grant),
            Event::SessionEnded(s) => Some(&s.subject.grant),
        }
    }
}

/// One link of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 1 for the first record, then +1 each; never reused.
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub actor: Actor,
    pub event: Event,
    /// `hash` of record `seq - 1` (all zeros for the first record).
    pub prev_hash: Hash,
    /// SHA-256 over this record's other fields; see [`crate::chain`].
    pub hash: Hash,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Records hash the JSON of their actor: older kinds must keep their
    /// exact encoding so older chains still verify.
    #[test]
    fn actors_keep_their_encoding() {
        for (actor, json) in [
            (
                Actor::User {
                    name: "alice".into(),
                },
                r#"{"kind":"user","name":"alice"}"#,
            ),
            (
                Actor::Operator {
                    login: "root".into(),
                },
                r#"{"kind":"operator","login":"root"}"#,
            ),
            (Actor::System, r#"{"kind":"system"}"#),
            (
                Actor::claim("192.0.2.10".parse().unwrap(), "carol"),
                r#"{"kind":"unauthenticated","client_addr":"192.0.2.10","claimed_user":"carol"}"#,
            ),
            (
                Actor::Host {
                    name: "web-1".into(),
                    client_addr: "192.0.2.11".into(),
                },
                r#"{"kind":"host","name":"web-1","client_addr":"192.0.2.11"}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&actor).unwrap(), json);
            assert_eq!(serde_json::from_str::<Actor>(json).unwrap(), actor);
        }
    }

    /// Policy decisions written while `outcome` was a string read back as
    /// the enum and serialise to the same bytes (the hash chain covers them).
    #[test]
    fn policy_outcomes_keep_their_encoding() {
        for (outcome, word) in [
            (PolicyOutcome::Approved, "approved"),
            (PolicyOutcome::PendingApproval, "pending_approval"),
            (PolicyOutcome::Denied, "denied"),
        ] {
            let json = format!(
                r#"{{"kind":"policy_decision","request":"r1","user":"alice","host":"db.dev","account":"oncall","outcome":"{word}","reason":"rule 0 needs no approval"}}"#
            );
            let event: Event = serde_json::from_str(&json).unwrap();
            let Event::PolicyDecision(d) = &event else {
                panic!("not a policy decision: {event:?}")
            };
            assert_eq!(d.outcome, outcome);
            assert!(d.outcome == word);
            assert_eq!(serde_json::to_string(&event).unwrap(), json);
        }
        let unknown = r#"{"kind":"policy_decision","request":"r1","user":"a","host":"h","account":"x","outcome":"maybe","reason":""}"#;
        assert!(serde_json::from_str::<Event>(unknown).is_err());
    }
}
