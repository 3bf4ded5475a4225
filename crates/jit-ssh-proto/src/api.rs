//! Request and response bodies. Bodies the CA accepts refuse unknown fields.

use serde::{Deserialize, Serialize};

/// `POST /v1/requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub user: String,
    pub host: String,
    pub account: String,
    /// A duration such as `"10m"`.
    pub ttl: String,
    pub reason: String,
    /// An OpenSSH ed25519 public key line.
    pub public_key: String,
    /// Break-glass: issued at once after MFA where policy allows it, with
    /// its own shorter TTL cap, marked and always notified.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    PendingMfa,
    PendingApproval,
    Issued,
    Denied,
    Expired,
    /// The requester gave up (Ctrl-C in `jit-ssh login`).
    Cancelled,
}

impl RequestStatus {
    /// No further change will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Issued | Self::Denied | Self::Expired | Self::Cancelled
        )
    }

    /// Where the request stands, in words for people ("was already
    /// denied"), never the Rust name.
    pub fn in_words(self) -> &'static str {
        match self {
            Self::PendingMfa => "is still waiting for the requester's security key",
            Self::PendingApproval => "is waiting for approval",
            Self::Issued => "was already approved and issued",
            Self::Denied => "was already denied",
            Self::Expired => "has expired",
            Self::Cancelled => "was withdrawn by the requester",
        }
    }
}

/// `201` answer to [`CreateRequest`]. `secret` is shown once: the client
/// polls with `Authorization: Bearer SECRET`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCreated {
    pub id: String,
    pub status: RequestStatus,
    pub mfa_url: String,
    /// RFC 3339: the MFA step must happen before this.
    pub expires_at: String,
    pub secret: String,
    /// A short code (`ABC-DEF`) the CA derives from this request's id and
    /// what it binds (key fingerprint, target, verdict, user). The
    /// confirmation page shows the same code: the person checks the two
    /// match before touching their key. Empty from CAs that predate it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub match_code: String,
}

/// Which kind of thing a confirmation page and its summary are about.
/// Each page serves exactly one kind and refuses a summary of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmKind {
    AccessRequest,
    Revocation,
    Decision,
    SignIn,
}

/// `GET …/summary` and the `…/mfa/finish` answer of every confirmed
/// thing: the item's fields, with its kind and match code beside them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation<T> {
    pub kind: ConfirmKind,
    /// The code the creator was given in [`RequestCreated::match_code`].
    pub match_code: String,
    #[serde(flatten)]
    pub item: T,
}

/// `GET /v1/requests/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestState {
    pub id: String,
    pub status: RequestStatus,
    pub expires_at: String,
    /// Why it was denied, in words the engineer can act on.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub certificate: Option<IssuedCertificate>,
    /// While (and after) approvers are asked: who, and who approved.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub approval: Option<ApprovalProgress>,
}

/// Where the approvals of a request stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalProgress {
    /// Everyone who may approve (never the requester).
    pub approvers: Vec<String>,
    pub approved_by: Vec<String>,
    pub needed: u32,
    /// The page where approvers decide.
    pub url: String,
    /// Set when the rule is on-call and the requester was not on call.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub not_on_call: Option<String>,
}

/// `POST /v1/requests/{id}/decisions`: an approver approves or denies;
/// the answer is a [`RequestCreated`] whose `mfa_url` the approver
/// confirms with their own security key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDecision {
    /// The approver.
    pub user: String,
    pub verdict: Verdict,
    /// A comment (approve) or the reason (deny; required).
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionStatus {
    PendingMfa,
    /// Confirmed and counted.
    Recorded,
    /// Confirmed, but not accepted (self-approval, twice, not an approver,
    /// the request no longer pending): `outcome` says why.
    Refused,
    Expired,
}

/// `GET /v1/decisions/{id}` (secret) and `…/summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionState {
    pub id: String,
    pub request: String,
    /// The approver.
    pub user: String,
    pub verdict: Verdict,
    pub comment: String,
    pub status: DecisionStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outcome: Option<String>,
    /// What is being decided.
    pub summary: RequestSummary,
}

/// One entry of `GET /v1/requests` (pending requests the signed-in user
/// may decide).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequests {
    pub requests: Vec<RequestSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCertificate {
    /// The OpenSSH certificate line.
    pub certificate: String,
    /// A decimal string (see [`crate::serial`]).
    #[serde(with = "crate::serial")]
    pub serial: u64,
    pub principals: Vec<String>,
    /// Unix seconds.
    pub valid_after: u64,
    /// Unix seconds.
    pub valid_before: u64,
}

/// `GET /v1/requests/{id}/summary`: what the person at the MFA page is
/// about to approve. Holds nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSummary {
    pub id: String,
    pub user: String,
    pub host: String,
    pub account: String,
    pub ttl: String,
    pub reason: String,
    /// SHA256 fingerprint of the key to be certified.
    pub key_fingerprint: String,
    pub status: RequestStatus,
    pub expires_at: String,
    /// Why it was denied or what it waits for, once decided.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub decision: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub break_glass: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub approval: Option<ApprovalProgress>,
}

/// `GET /v1/enroll/{token}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteSummary {
    pub user: String,
    pub expires_at: String,
}

/// `POST …/enroll/{token}/finish` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    pub user: String,
    pub credentials: usize,
}

/// `GET /v1/ca-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaKeys {
    /// TrustedUserCAKeys lines, for people and scripts. Unsigned: hosts
    /// install only the keys of the signed `document`.
    pub keys: Vec<String>,
    /// A [`crate::signed::CaKeySet`] and its signature, namespace
    /// [`crate::signed::CA_KEYS_NAMESPACE`].
    #[serde(flatten)]
    pub signed: crate::signed::SignedDocument,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_refuses_unknown_fields() {
        let ok =
            r#"{"user":"a","host":"h","account":"x","ttl":"5m","reason":"r","public_key":"k"}"#;
        assert!(serde_json::from_str::<CreateRequest>(ok).is_ok());
        let extra = r#"{"user":"a","host":"h","account":"x","ttl":"5m","reason":"r","public_key":"k","admin":true}"#;
        assert!(serde_json::from_str::<CreateRequest>(extra).is_err());
    }

    #[test]
    fn statuses_use_snake_case() {
        assert_eq!(
            serde_json::to_string(&RequestStatus::PendingMfa).unwrap(),
            "\"pending_mfa\""
        );
    }
}

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RevokeTarget {
    /// A decimal string; a number is accepted too (see [`crate::serial`]).
    Serial(#[serde(with = "crate::serial")] u64),
    Grant(String),
    /// Every unexpired certificate of this user; new issuance is blocked
    /// until an admin re-enables them.
    User(String),
    KeyId(String),
}

/// `serial:N`, `grant:ID`, `user:NAME`, `key_id:ID` (as audit records say).
impl std::fmt::Display for RevokeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RevokeTarget::Serial(s) => write!(f, "serial:{s}"),
            RevokeTarget::Grant(g) => write!(f, "grant:{g}"),
            RevokeTarget::User(u) => write!(f, "user:{u}"),
            RevokeTarget::KeyId(k) => write!(f, "key_id:{k}"),
        }
    }
}

/// `POST /v1/revocations`: a `security` user asks; their WebAuthn touch
/// on `mfa_url` confirms. The answer has the shape of [`RequestCreated`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRevocation {
    /// Who revokes (must hold the `security` role).
    pub user: String,
    pub target: RevokeTarget,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationStatus {
    PendingMfa,
    Revoked,
    /// Confirmed, but not allowed or nothing to revoke (see `reason`).
    Refused,
    Expired,
}

/// `GET /v1/revocations/{id}` (with the secret) and its page's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationState {
    pub id: String,
    pub user: String,
    pub target: RevokeTarget,
    pub reason: String,
    pub status: RevocationStatus,
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outcome: Option<String>,
    /// Serials now in the KRL, once revoked (decimal strings).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "crate::serial::vec"
    )]
    pub serials: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub krl_version: Option<u64>,
    /// Whose certificate a serial, key id or grant names, from the CA's
    /// record of issuing it; absent when it issued none such (or for a
    /// user, whom the target already names).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub certificate: Option<CertificateOwner>,
}

/// Who a certificate was issued to, for what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateOwner {
    pub user: String,
    pub host: String,
    pub account: String,
    /// RFC 3339: when it stops working anyway.
    pub valid_before: String,
}

/// `POST /v1/sessions`: sign in to read the audit log or decide requests.
/// The answer is a [`RequestCreated`]; once the user confirms on its
/// `mfa_url`, `Authorization: Bearer ID.SECRET` authenticates them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub user: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    PendingMfa,
    Active,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    pub id: String,
    pub user: String,
    pub status: SessionStatus,
    /// The roles the session carries (decided when it was confirmed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// RFC 3339: for a pending session, the deadline to confirm; for an
    /// active one, when it stops working.
    pub expires_at: String,
}

/// The bearer token of a confirmed session.
pub fn session_token(id: &str, secret: &str) -> String {
    format!("{id}.{secret}")
}

/// `GET /v1/audit`: one page of records (as stored: each carries its
/// `seq`, `hash` and `prev_hash`), oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub records: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The query of `GET /v1/audit` (every field optional; all given must
/// match). Times are RFC 3339; `kind` is a comma-separated list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Records per page: 1 to 1000 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}
