//! `GET /v1/reach`: what the signed-in user may reach, and what approval
//! each rule would need right now — the policy's own answer
//! ([`crate::policy::Policy::preview`]) with the on-call lookup a real
//! request uses. Like reading one's own audit records, asking is not
//! recorded: the sign-in that allows it is.

use jit_ssh_proto::reach::{ReachApproval, ReachList, ReachParams, ReachRow};

use super::{rfc3339, Ca, ServiceError, SignedIn};
use crate::names::UserName;
use crate::policy::{Decision, Reach, ReachFilter, Via};

impl Ca {
    pub fn reach(&self, who: &SignedIn, params: &ReachParams) -> Result<ReachList, ServiceError> {
        if let Some(other) = params.user.as_deref().filter(|u| *u != who.user) {
            // Another user's reach is a map of who holds which doors.
            return Err(ServiceError::Forbidden(format!(
                "you are signed in as {}: you may ask only what you may reach yourself, not {other:?}",
                who.user
            )));
        }
        let filter = params
            .pattern
            .as_deref()
            .map(ReachFilter::parse)
            .transpose()
            .map_err(|e| ServiceError::invalid(format!("pattern: {e}")))?;
        let user = UserName::parse(&who.user).map_err(ServiceError::invalid)?;
        let policy = &self.config.policy;
        let now = self.now();
        let names = policy.names_of(user.as_str());
        let on_call = |schedule: &str, layers: &[String]| {
            self.schedules.on_call(schedule, layers, &names, now)
        };
        let (rows, note) = match policy.preview(&user, filter.as_ref(), &on_call) {
            Ok(rows) => (rows.into_iter().map(|r| self.row(&user, r)).collect(), None),
            Err(why) => (vec![], Some(why.to_string())),
        };
        Ok(ReachList {
            user: user.to_string(),
            rows,
            note,
        })
    }

    fn row(&self, user: &UserName, r: Reach) -> ReachRow {
        let approval = match r.now {
            Decision::Allow(a) => match a.via {
                Via::OnCall(shift) => ReachApproval::OnCall {
                    schedule: shift.schedule,
                    layer: shift.layer,
                    until: rfc3339(shift.end),
                },
                Via::Rule | Via::BreakGlass => ReachApproval::Auto,
            },
            Decision::NeedsApproval {
                approvers,
                not_on_call,
                ..
            } => ReachApproval::Approvers {
                needed: approvers.min_approvals,
                approvers: self.config.policy.approvers(&approvers, user.as_str()),
                not_on_call,
            },
            Decision::Deny(why) if r.break_glass_max_ttl.is_some() => {
                ReachApproval::BreakGlassOnly {
                    reason: why.to_string(),
                }
            }
            Decision::Deny(why) => ReachApproval::Denied {
                reason: why.to_string(),
            },
        };
        ReachRow {
            rule: r.rule,
            host_group: r.host_group,
            hosts: r.hosts,
            accounts: r.accounts,
            max_ttl_secs: r.max_ttl.as_secs(),
            break_glass_max_ttl_secs: r.break_glass_max_ttl.map(|d| d.as_secs()),
            approval,
        }
    }
}
