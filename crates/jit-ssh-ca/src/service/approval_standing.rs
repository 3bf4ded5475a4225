//! Whether a decision still stands when it is made: a request waits up to
//! `limits.approval_ttl` for its approvers, and meanwhile security may
//! revoke the requester or an approver, or the operator may change the
//! policy (a restart with a new config). What the requester's touch
//! decided is not enough then: each decision is judged by the users'
//! standing and the policy in force at that moment.

use std::time::Duration;

use jit_ssh_proto::api::Verdict;

use super::approvals::Refusal;
use super::{Ca, ServiceError};
use crate::policy::Decision;
use crate::store::AccessRequest;

impl Ca {
    /// Why `who`'s `verdict` on `req` no longer stands at `now`: a blocked
    /// approver decides nothing; nobody's approval gives a blocked
    /// requester, or a request the policy no longer allows, a certificate
    /// (a denial still ends it); an approver the policy no longer asks
    /// decides nothing.
    pub(super) fn standing_refusal(
        &self,
        req: &AccessRequest,
        who: &str,
        verdict: Verdict,
        now: i64,
    ) -> Result<Option<Refusal>, ServiceError> {
        if self.store.is_blocked(who)? {
            return Ok(Some(Refusal {
                why: format!(
                    "{who}'s access was revoked by security; their decisions no longer count"
                ),
                public: true,
            }));
        }
        if verdict == Verdict::Approve && self.store.is_blocked(req.user.as_str())? {
            return Ok(Some(Refusal {
                why: format!(
                    "{}'s access was revoked by security since they asked: no approval can issue them a certificate",
                    req.user
                ),
                public: true,
            }));
        }
        if let Some(why) = self.approver_now_refusal(req, who, now) {
            return Ok(Some(why));
        }
        if let (Verdict::Approve, Decision::Deny(d)) = (verdict, self.policy_now(req, now)) {
            return Ok(Some(Refusal {
                why: format!(
                    "the policy in force no longer allows this request ({d}): no approval can issue it"
                ),
                public: true,
            }));
        }
        Ok(None)
    }

    /// Why `who` is not among the approvers the policy in force at `now`
    /// asks for `req` (the list stored with the request was the policy's
    /// when the requester touched). Whether a name may approve is not for
    /// strangers: not public.
    pub(super) fn approver_now_refusal(
        &self,
        req: &AccessRequest,
        who: &str,
        now: i64,
    ) -> Option<Refusal> {
        let Decision::NeedsApproval { approvers, .. } = self.policy_now(req, now) else {
            return None;
        };
        let asked = self.config.policy.approvers(&approvers, req.user.as_str());
        (!asked.iter().any(|a| a == who)).then(|| Refusal {
            why: format!(
                "{who} is no longer an approver for this request under the policy in force"
            ),
            public: false,
        })
    }

    /// What the policy in force says about `req` at `now`.
    fn policy_now(&self, req: &AccessRequest, now: i64) -> Decision {
        let names = self.config.policy.names_of(req.user.as_str());
        let on_call = |schedule: &str, layers: &[String]| {
            self.schedules.on_call(schedule, layers, &names, now)
        };
        self.config.policy.decide(
            &req.user,
            &req.host,
            &req.account,
            Duration::from_secs(req.ttl_secs),
            req.break_glass,
            &on_call,
        )
    }
}
