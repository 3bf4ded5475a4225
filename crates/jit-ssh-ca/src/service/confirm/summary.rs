//! What a summary shows to someone holding only the link (no secret, no
//! touch yet): enough for the person the link was meant for to recognise
//! what their touch will do, and nothing that needs the secret or the
//! touch — no roles, no list of who may approve, no reasons for a refusal
//! or a denial, no serials. The creator reads those with the secret; the
//! person who touched gets them in the touch's answer. docs/api.md
//! lists the fields.

use jit_ssh_proto::api::{DecisionState, RequestSummary, RevocationState, SessionState};

/// Who asks for which host, account, time and key, and why; where it
/// stands and how many approvals it still needs.
pub(crate) fn access_request(mut r: RequestSummary) -> RequestSummary {
    r.decision = None;
    if let Some(a) = r.approval.as_mut() {
        a.approvers.clear();
        a.not_on_call = None;
    }
    r
}

/// Who revokes what, and why, and whose certificate that is (the
/// person confirming must see "alice's certificate for db-1", not only a
/// number); whether it is pending, done, refused or expired.
pub(crate) fn revocation(mut r: RevocationState) -> RevocationState {
    r.outcome = None;
    r.serials.clear();
    r.krl_version = None;
    r
}

/// Who decides, how, with which comment, about which request (itself
/// shown as [`access_request`]); where the decision stands.
pub(crate) fn decision(mut d: DecisionState) -> DecisionState {
    d.outcome = None;
    d.summary = access_request(d.summary);
    d
}

/// Who signs in and until when; not the roles the session carries.
pub(crate) fn sign_in(mut s: SessionState) -> SessionState {
    s.roles.clear();
    s
}
