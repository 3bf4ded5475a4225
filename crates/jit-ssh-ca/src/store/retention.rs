//! When stored state has ended, so that it can be pruned: plain functions
//! over the stored types, the same for every store.

use jit_ssh_proto::api::RequestStatus;

use super::{AccessRequest, Ceremony, Invite, PendingDecision, PendingRevocation, Session};

/// What a prune removes: state that ended before `state`, and single-use
/// secrets (ceremonies, enrollment links) that expired before `secrets`.
/// Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    pub state: i64,
    pub secrets: i64,
}

/// How many of each kind a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub requests: usize,
    pub revocations: usize,
    pub decisions: usize,
    pub sessions: usize,
    pub ceremonies: usize,
    pub invites: usize,
    /// Host enrollment and check-in challenges never answered.
    pub host_challenges: usize,
}

impl Pruned {
    pub fn total(&self) -> usize {
        self.requests
            + self.revocations
            + self.decisions
            + self.sessions
            + self.ceremonies
            + self.invites
            + self.host_challenges
    }
}

impl AccessRequest {
    /// When nothing more can happen to it: its deadline (touch or
    /// approvals), or for an issued one the end of its certificate,
    /// whichever is later.
    pub fn ends_at(&self) -> i64 {
        let cert_end = self
            .certificate
            .as_ref()
            .map_or(0, |c| i64::try_from(c.valid_before).unwrap_or(i64::MAX));
        self.expires_at.max(cert_end)
    }

    /// Never confirmed by its requester's touch (anyone may create one):
    /// nothing about it is worth keeping past its deadline but the audit
    /// record, so it is pruned with the expired secrets, not kept for the
    /// retention time (found by review: anonymous requests otherwise held
    /// ~3 KB each for 7 days).
    pub fn never_confirmed(&self) -> bool {
        matches!(
            self.status,
            RequestStatus::PendingMfa | RequestStatus::Expired | RequestStatus::Cancelled
        ) && self.approval.is_none()
            && self.certificate.is_none()
            && self.grant.is_none()
    }

    /// Whether it may still turn into (or is) a request waiting for
    /// approvers: what the pending-approval index may hold.
    pub fn may_await_approval(&self) -> bool {
        matches!(
            self.status,
            RequestStatus::PendingMfa | RequestStatus::PendingApproval
        )
    }
}

impl PendingRevocation {
    pub fn ends_at(&self) -> i64 {
        self.expires_at
    }
}

impl PendingDecision {
    pub fn ends_at(&self) -> i64 {
        self.expires_at
    }
}

impl Session {
    /// The confirm deadline, or once active the end of the session.
    pub fn ends_at(&self) -> i64 {
        self.expires_at
    }
}

impl Ceremony {
    pub fn ends_at(&self) -> i64 {
        match self {
            Ceremony::Enroll { expires_at, .. } | Ceremony::Mfa { expires_at, .. } => *expires_at,
        }
    }
}

impl Invite {
    pub fn ends_at(&self) -> i64 {
        self.expires_at
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::names::{AccountName, HostName, Reason, UserName};
    use jit_ssh_proto::api::IssuedCertificate;

    fn request(expires_at: i64, valid_before: Option<u64>) -> AccessRequest {
        AccessRequest {
            id: "0".repeat(32),
            user: UserName::parse("alice").unwrap(),
            host: HostName::parse("db-1.dev").unwrap(),
            account: AccountName::parse("oncall").unwrap(),
            ttl_secs: 300,
            reason: Reason::parse("r").unwrap(),
            public_key: String::new(),
            key_fingerprint: String::new(),
            client_addr: "192.0.2.1".into(),
            created_at: 0,
            expires_at,
            status: RequestStatus::Issued,
            decision_reason: None,
            secret_hash: String::new(),
            grant: None,
            certificate: valid_before.map(|v| IssuedCertificate {
                certificate: String::new(),
                serial: 1,
                principals: vec![],
                valid_after: 0,
                valid_before: v,
            }),
            break_glass: false,
            approval: None,
            deciding_since: None,
        }
    }

    #[test]
    fn an_issued_request_ends_with_its_certificate() {
        assert_eq!(request(100, None).ends_at(), 100);
        assert_eq!(request(100, Some(3_700)).ends_at(), 3_700);
        assert_eq!(request(5_000, Some(3_700)).ends_at(), 5_000);
    }
}
