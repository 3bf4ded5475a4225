//! After the requester's touch: the claim (one request, one
//! certificate), the policy decision (with on-call and break-glass),
//! asking approvers, and issuance — always audited first.

use std::time::Duration;

use ssh_key::PublicKey;

use jit_ssh_audit::{Actor, Event, IssuedVia, OnCallShift, PolicyOutcome};
use jit_ssh_proto::api::{ApprovalProgress, RequestStatus, RequestSummary};
use jit_ssh_proto::routes;

use super::records::policy_decision;
use super::{step, Ca, ServiceError};
use crate::issue::{issue, IssueRequest};
use crate::names::GrantId;
use crate::notify::texts::{self, waiting_text, RequestEvent};
use crate::policy::{Decision, DenyReason, SessionPolicy, Via};
use crate::profile::{CertSpec, Extension, SourceCidr};
use crate::store::{AccessRequest, ApprovalState};

/// What the rule that allowed a request puts into its certificate.
pub(super) struct CertTerms {
    pub pin_source_address: bool,
    pub extensions: Vec<Extension>,
    pub session: SessionPolicy,
}

fn invalid(e: crate::names::NameError) -> ServiceError {
    ServiceError::Internal(format!("stored request is invalid: {e}"))
}

impl Ca {
    /// Applies policy at `now` to an authenticated request; returns its
    /// new state.
    /// `preceding`: records of the step that led here (the touch),
    /// committed with the decision's (and the certificate's).
    pub(super) fn decide_and_issue(
        &self,
        req: &AccessRequest,
        actor: Actor,
        now: i64,
        mut preceding: Vec<(Actor, Event)>,
    ) -> Result<AccessRequest, ServiceError> {
        let ttl = Duration::from_secs(req.ttl_secs);
        let names = self.config.policy.names_of(req.user.as_str());
        let on_call = |schedule: &str, layers: &[String]| {
            self.schedules.on_call(schedule, layers, &names, now)
        };
        // A user revocation blocks new certificates, even for requests made before it.
        let blocked = match self.store.is_blocked(req.user.as_str()) {
            Ok(b) => b,
            Err(e) => {
                // Still record the touch when the store is what failed.
                let _ = self.audit_all(preceding);
                return Err(e.into());
            }
        };
        let decision = if blocked {
            Decision::Deny(DenyReason::Blocked(req.user.to_string()))
        } else {
            self.config.policy.decide(
                &req.user,
                &req.host,
                &req.account,
                ttl,
                req.break_glass,
                &on_call,
            )
        };
        let mut approval = None;
        let record = match &decision {
            Decision::Allow(a) => {
                let reason = match &a.via {
                    Via::Rule => format!("rule {} needs no approval", a.rule),
                    Via::OnCall(shift) => format!("rule {}: on call ({shift})", a.rule),
                    Via::BreakGlass => format!("rule {}: break-glass: {}", a.rule, req.reason),
                };
                let mut record = policy_decision(req, PolicyOutcome::Approved, reason);
                if let Via::OnCall(s) = &a.via {
                    record.on_call = Some(OnCallShift {
                        schedule: s.schedule.clone(),
                        layer: s.layer.clone(),
                        member: s.member.clone(),
                        start: s.start,
                        end: s.end,
                    });
                }
                record
            }
            Decision::NeedsApproval {
                rule,
                approvers,
                not_on_call,
            } => {
                let asked = self.config.policy.approvers(approvers, req.user.as_str());
                let reason = match not_on_call {
                    Some(s) => format!(
                        "rule {rule}: not on call in {s}; {} approval(s) needed",
                        approvers.min_approvals
                    ),
                    None => format!("rule {rule} needs {} approval(s)", approvers.min_approvals),
                };
                let mut record = policy_decision(req, PolicyOutcome::PendingApproval, reason);
                record.approvers = asked.clone();
                record.min_approvals = Some(approvers.min_approvals);
                let rule_ext = &self.config.policy.rules[*rule];
                approval = Some(ApprovalState {
                    rule: *rule,
                    approvers: asked,
                    needed: approvers.min_approvals,
                    approvals: vec![],
                    not_on_call: not_on_call.clone(),
                    pin_source_address: rule_ext.pin_source_address,
                    extensions: rule_ext
                        .extensions
                        .iter()
                        .map(|e| e.name().to_owned())
                        .collect(),
                    session: Some(rule_ext.session),
                });
                record
            }
            Decision::Deny(d) => policy_decision(req, PolicyOutcome::Denied, d.to_string()),
        };
        preceding.push((actor.clone(), Event::PolicyDecision(record.clone())));
        if !matches!(decision, Decision::Allow(_)) {
            self.audit_all(std::mem::take(&mut preceding))?;
        }
        self.metrics.policy_decision(&decision);
        tracing::info!(request = %req.id, user = %req.user, outcome = %record.outcome, reason = %record.reason, "policy decision");
        let mut next = req.clone();
        match decision {
            Decision::Deny(d) => {
                next.status = RequestStatus::Denied;
                next.decision_reason = Some(d.to_string());
                Ok(next)
            }
            Decision::NeedsApproval { .. } => {
                let approval =
                    approval.ok_or_else(|| ServiceError::Internal("approval state".into()))?;
                next.status = RequestStatus::PendingApproval;
                next.expires_at =
                    now + i64::try_from(self.config.limits.approval_ttl.as_secs()).unwrap_or(1800);
                next.decision_reason = Some(waiting_text(&approval));
                next.approval = Some(approval);
                self.notify_request(RequestEvent::PendingApproval, &next, None);
                Ok(next)
            }
            Decision::Allow(allowed) => {
                let issued = self.issue_now(
                    next,
                    CertTerms {
                        pin_source_address: allowed.pin_source_address,
                        extensions: allowed.extensions,
                        session: allowed.session,
                    },
                    actor,
                    now,
                    preceding,
                )?;
                if allowed.via == Via::BreakGlass {
                    self.notify_request(RequestEvent::BreakGlass, &issued, None);
                }
                Ok(issued)
            }
        }
    }

    /// Issues the certificate for an approved request (audited first),
    /// valid from `now`.
    pub(super) fn issue_now(
        &self,
        mut next: AccessRequest,
        terms: CertTerms,
        actor: Actor,
        now: i64,
        preceding: Vec<(Actor, Event)>,
    ) -> Result<AccessRequest, ServiceError> {
        let req = &next;
        let CertTerms {
            pin_source_address,
            extensions,
            session,
        } = terms;
        let grant = GrantId::parse(&req.id).map_err(invalid)?;
        let source_address = if pin_source_address {
            vec![SourceCidr::parse(&req.client_addr)
                .map_err(|e| ServiceError::Internal(e.to_string()))?]
        } else {
            vec![]
        };
        let spec = CertSpec {
            user: req.user.clone(),
            host: req.host.clone(),
            account: req.account.clone(),
            grant: grant.clone(),
            ttl: Duration::from_secs(req.ttl_secs),
            source_address,
            force_command: session.force_command(&self.config.sessions.wrapper, &grant),
            extensions,
            break_glass: req.break_glass,
        };
        let public_key = PublicKey::from_openssh(&req.public_key)
            .map_err(|e| ServiceError::Internal(format!("stored public key: {e}")))?;
        let started = std::time::Instant::now();
        let issued = issue(
            self.signer().as_ref(),
            self.audit.as_ref(),
            &self.config.profile,
            IssueRequest {
                spec: &spec,
                public_key: &public_key,
                reason: &req.reason,
                actor,
                via: IssuedVia::Server,
                session: Some(session.terms()),
                preceding,
            },
            u64::try_from(now).unwrap_or(0),
        )
        .map_err(|e| {
            tracing::error!(request = %req.id, error = %e, source = ?std::error::Error::source(&e), "issuance failed");
            if crate::store::database_unavailable(&e) {
                return ServiceError::Unavailable("audit log");
            }
            ServiceError::Internal("issuance".into())
        })?;
        self.metrics.issued(started.elapsed());
        let f = &issued.fields;
        tracing::info!(request = %req.id, serial = f.serial.get(), key_id = %f.key_id, "certificate issued");
        next.status = RequestStatus::Issued;
        next.grant = Some(grant.to_string());
        next.certificate = Some(
            issued
                .for_requester()
                .map_err(|e| ServiceError::Internal(e.to_string()))?,
        );
        Ok(next)
    }

    /// Where approvers decide on request `id`.
    pub(super) fn approve_url(&self, id: &str) -> String {
        self.config
            .url(&routes::fill(routes::APPROVE_PAGE, "id", id))
    }

    /// The requester's and the pages' view of the approvals.
    pub(super) fn approval_progress(&self, req: &AccessRequest) -> Option<ApprovalProgress> {
        let a = req.approval.as_ref()?;
        Some(ApprovalProgress {
            approvers: a.approvers.clone(),
            approved_by: a.approvals.iter().map(|m| m.by.clone()).collect(),
            needed: a.needed,
            url: self.approve_url(&req.id),
            not_on_call: a.not_on_call.clone(),
        })
    }

    /// Queues a notification about `req` (never blocks, never fails).
    pub(super) fn notify_request(
        &self,
        event: RequestEvent,
        req: &AccessRequest,
        by: Option<&str>,
    ) {
        let url = (event == RequestEvent::PendingApproval).then(|| self.approve_url(&req.id));
        self.notifier
            .send(texts::about_request(event, req, by, url));
    }
}

/// How long a claim holds off expiry and other touches: far longer than
/// signing and one audit append take; a claim older than this belongs to
/// a CA that died mid-decision, and the request may expire.
const CLAIM_TIMEOUT: i64 = 120;

/// Whether a verified touch is deciding `req` at `now`.
pub(super) fn claim_is_live(req: &AccessRequest, now: i64) -> bool {
    req.deciding_since
        .is_some_and(|t| now < t.saturating_add(CLAIM_TIMEOUT))
}

impl Ca {
    /// What the requester's verified touch does: claims the request,
    /// records the touch, decides by policy, and issues if allowed.
    pub(super) fn decide_touched(
        &self,
        req: AccessRequest,
        now: i64,
    ) -> Result<RequestSummary, ServiceError> {
        let Some(claimed) = self.claim(&req, now)? else {
            return Err(ServiceError::WrongState(
                "the request changed while it was being confirmed; another touch finished first"
                    .into(),
            ));
        };
        let actor = Actor::User {
            name: req.user.to_string(),
        };
        // The touch is recorded in the same commit as the decision (and
        // the certificate, when one is issued).
        let touch = (actor.clone(), Event::MfaVerified(step(&req, "")));
        let decided = self.decide_and_issue(&claimed, actor, now, vec![touch]);
        let mut decided = match decided {
            Ok(d) => d,
            Err(e) => {
                // Let the requester try again rather than wait for the
                // claim to age, but only if no certificate was recorded
                // for this request (one recorded is one made: never two).
                self.release_claim(&claimed, &req);
                return Err(e);
            }
        };
        decided.deciding_since = None;
        let conflict = "the request changed while it was being decided";
        self.transition(&claimed, &decided, None, conflict)
            .inspect_err(|e| {
                if let ServiceError::WrongState(_) = e {
                    // Only a claim older than CLAIM_TIMEOUT can be taken over.
                    tracing::error!(request = %req.id, "the request changed under a live claim");
                }
            })
    }

    /// Claims `req` for the one touch that may decide it. One request, one
    /// certificate: the claim is a compare-and-swap in the store before
    /// anything is signed, so a touch that loses the race signs nothing
    /// (another CA replica may be here too). `None` when it changed.
    pub(super) fn claim(
        &self,
        req: &AccessRequest,
        now: i64,
    ) -> Result<Option<AccessRequest>, ServiceError> {
        let mut claimed = req.clone();
        claimed.deciding_since = Some(now);
        Ok(self.store.swap_request(req, &claimed)?.then_some(claimed))
    }

    /// After a failed decision, puts `claimed` back to `before` so the
    /// request can be tried again, unless a certificate was recorded for
    /// it (one recorded is one made: never two).
    pub(super) fn release_claim(&self, claimed: &AccessRequest, before: &AccessRequest) {
        if self.certificate_recorded(&claimed.id) {
            return;
        }
        if let Err(e) = self.store.swap_request(claimed, before) {
            tracing::error!(request = %claimed.id, error = %e, "releasing a claim failed");
        }
    }

    /// Whether the audit log holds a certificate for request `id` (when
    /// it cannot say, assume so: fail closed).
    fn certificate_recorded(&self, id: &str) -> bool {
        self.audit
            .query(&jit_ssh_audit::AuditQuery {
                grant: Some(id.to_owned()),
                kinds: vec!["certificate_issued".into()],
                limit: 1,
                ..Default::default()
            })
            .map_or(true, |found| !found.is_empty())
    }
}
