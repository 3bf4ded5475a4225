//! The audit records about an access request, each built in one place
//! from the typed request, so no flow copies its names by hand.

use jit_ssh_audit::{PolicyDecision, PolicyOutcome, RequestCreated};

use crate::store::AccessRequest;

impl From<&AccessRequest> for RequestCreated {
    fn from(req: &AccessRequest) -> Self {
        Self {
            request: req.id.clone(),
            user: req.user.to_string(),
            host: req.host.to_string(),
            account: req.account.to_string(),
            ttl_secs: req.ttl_secs,
            reason: req.reason.to_string(),
            key_fingerprint: req.key_fingerprint.clone(),
            client_addr: req.client_addr.clone(),
        }
    }
}

/// Policy's `outcome` for `req`, saying why in `reason`; the caller adds
/// what only some outcomes have (on-call shift, approvers).
pub(super) fn policy_decision(
    req: &AccessRequest,
    outcome: PolicyOutcome,
    reason: String,
) -> PolicyDecision {
    PolicyDecision {
        request: req.id.clone(),
        user: req.user.to_string(),
        host: req.host.to_string(),
        account: req.account.to_string(),
        outcome,
        reason,
        on_call: None,
        break_glass: req.break_glass,
        approvers: vec![],
        min_approvals: None,
    }
}
