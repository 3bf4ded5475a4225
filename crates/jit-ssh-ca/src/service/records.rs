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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jit_ssh_audit::Event;

    /// The records carry the names exactly as the strings they replaced:
    /// the audit chain hashes this JSON.
    #[test]
    fn records_from_a_typed_request_serialise_as_before() {
        let req: AccessRequest = serde_json::from_str(crate::store::STORED_REQUEST).unwrap();
        let created = Event::RequestCreated(RequestCreated::from(&req));
        assert_eq!(
            serde_json::to_string(&created).unwrap(),
            concat!(
                r#"{"kind":"request_created","request":"0123456789abcdef0123456789abcdef","#,
                r#""user":"alice","host":"db-1.prod","account":"oncall","ttl_secs":300,"#,
                r#""reason":"incident 42","key_fingerprint":"SHA256:abc","client_addr":"192.0.2.7"}"#
            )
        );
        let decided = Event::PolicyDecision(policy_decision(
            &req,
            PolicyOutcome::PendingApproval,
            "rule 2 needs 1 approval(s)".into(),
        ));
        assert_eq!(
            serde_json::to_string(&decided).unwrap(),
            concat!(
                r#"{"kind":"policy_decision","request":"0123456789abcdef0123456789abcdef","#,
                r#""user":"alice","host":"db-1.prod","account":"oncall","#,
                r#""outcome":"pending_approval","reason":"rule 2 needs 1 approval(s)","#,
                r#""break_glass":true}"#
            )
        );
    }
}
