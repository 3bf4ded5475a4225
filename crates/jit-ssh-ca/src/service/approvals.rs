//! Approvers deciding requests: list what they may decide, approve or
//! deny, each confirmed with the approver's own WebAuthn touch bound to
//! that decision on that request. A requester never approves their own
//! request; each approver counts once; approvals end with the request.

use std::net::SocketAddr;

use jit_ssh_audit::{Actor, ApprovalStep, Event};
use jit_ssh_proto::api::{
    ConfirmKind, CreateDecision, DecisionState, DecisionStatus, PendingRequests, RequestCreated,
    RequestStatus, Verdict,
};
use jit_ssh_proto::routes;

use super::confirm::{awaiting_touch, new_secret, summary, Confirmable, Header};
use super::revoke_flow::NOT_ALLOWED;
use super::sessions::SignedIn;
use super::{is_id, random_id, sha256_hex, Ca, ServiceError};
use crate::names::{Reason, UserName};
use crate::notify::texts::{waiting_text, RequestEvent};
use crate::profile::Extension;
use crate::store::{AccessRequest, ApprovalMark, PendingDecision};

/// An approver's verdict on a request, confirmed on `/decide/{id}` with
/// the approver's own touch, which records it (and issues when it was the
/// last approval needed).
impl Confirmable for PendingDecision {
    type View = DecisionState;
    /// The request decided.
    type Context = AccessRequest;
    const KIND: ConfirmKind = ConfirmKind::Decision;
    const PAGE: &'static str = routes::DECIDE_PAGE;
    const CEREMONY: &'static str = "decide";
    /// One decision at a time: two last approvals must not both issue.
    const EXCLUSIVE: bool = true;

    fn load(ca: &Ca, id: &str, now: i64) -> Result<Self, ServiceError> {
        ca.load_decision(id, now)
    }
    fn header(&self) -> Header<'_> {
        Header::new(&self.id, &self.user, &self.secret_hash, self.expires_at)
    }
    fn waiting(&self) -> Result<(), ServiceError> {
        awaiting_touch(
            "decision",
            self.status,
            self.status == DecisionStatus::PendingMfa,
        )
    }
    fn match_code(&self) -> String {
        crate::match_code::decision(&self.id, &self.request, &self.user, self.verdict)
    }
    fn context(&self, ca: &Ca, now: i64) -> Result<AccessRequest, ServiceError> {
        ca.load_request(&self.request, now)
    }
    /// This verdict, by them, on this request for this key, host and
    /// account.
    fn binding(&self, req: &AccessRequest) -> String {
        sha256_hex(&[
            "jit-ssh-decide-v1",
            &self.id,
            &self.user,
            &format!("{:?}", self.verdict),
            &self.comment,
            &req.id,
            &req.key_fingerprint,
            req.host.as_str(),
            req.account.as_str(),
        ])
    }
    fn host<'a>(&'a self, req: &'a AccessRequest) -> &'a str {
        req.host.as_str()
    }
    fn view(self, ca: &Ca, now: i64) -> Result<DecisionState, ServiceError> {
        let req = ca.load_request(&self.request, now)?;
        Ok(DecisionState {
            id: self.id,
            request: self.request,
            user: self.user,
            verdict: self.verdict,
            comment: self.comment,
            status: self.status,
            outcome: self.outcome,
            summary: ca.summary_of(req),
        })
    }
    fn public(d: DecisionState) -> DecisionState {
        summary::decision(d)
    }
    fn touched(self, req: AccessRequest, ca: &Ca, now: i64) -> Result<DecisionState, ServiceError> {
        ca.decision_touched(self, &req, now)?.view(ca, now)
    }
}

/// Why someone may not decide a request.
pub(super) struct Refusal {
    pub(super) why: String,
    /// Whether a caller who has not touched their key may be told `why`:
    /// the request's page already names its requester and who approved,
    /// but whether a given name may approve is not for strangers.
    pub(super) public: bool,
}

/// Why `who` may not decide `req`, if they may not.
fn refusal(req: &AccessRequest, who: &str) -> Option<Refusal> {
    if req.user.as_str() == who {
        return Some(Refusal {
            why: format!("{who} asked for this access and cannot approve or deny it themselves"),
            public: true,
        });
    }
    let a = req.approval.as_ref()?;
    if !a.approvers.iter().any(|x| x == who) {
        return Some(Refusal {
            why: format!("{who} is not an approver for this request"),
            public: false,
        });
    }
    if a.approvals.iter().any(|m| m.by == who) {
        return Some(Refusal {
            why: format!("{who} already approved this request; each approver counts once"),
            public: true,
        });
    }
    None
}

impl Ca {
    /// Pending requests `who` may decide.
    pub fn pending_for(&self, who: &SignedIn) -> Result<PendingRequests, ServiceError> {
        let mut requests = Vec::new();
        let now = self.now();
        for req in self.store.pending_approval()? {
            // Expire what ran out on the way.
            let req = self.load_request(&req.id, now)?;
            // What approving would refuse is not offered (approval_standing):
            // a requester security blocked since they asked gets nothing.
            if req.status == RequestStatus::PendingApproval
                && refusal(&req, &who.user).is_none()
                && self.approver_now_refusal(&req, &who.user, now).is_none()
                && !self.store.is_blocked(req.user.as_str())?
            {
                requests.push(self.summary_of(req));
            }
        }
        requests.sort_by(|a, b| a.expires_at.cmp(&b.expires_at));
        Ok(PendingRequests { requests })
    }

    fn step_of(&self, req: &AccessRequest, approver: &str, comment: &str) -> ApprovalStep {
        let a = req.approval.as_ref();
        ApprovalStep {
            request: req.id.clone(),
            user: req.user.to_string(),
            host: req.host.to_string(),
            account: req.account.to_string(),
            approver: approver.to_owned(),
            comment: comment.to_owned(),
            approvals: a.map_or(0, |a| u32::try_from(a.approvals.len()).unwrap_or(u32::MAX)),
            needed: a.map_or(0, |a| a.needed),
        }
    }

    /// Refuses (and audits) a decision `who` may not make. `client` is
    /// set before the touch: the name is then only a claim, and the
    /// caller is told only what is public (never who may decide).
    fn refuse(
        &self,
        req: &AccessRequest,
        who: &str,
        Refusal { why, public }: Refusal,
        client: Option<SocketAddr>,
    ) -> Result<ServiceError, ServiceError> {
        let (actor, told) = match client {
            Some(c) if public => (Actor::claim(c.ip(), who), why.clone()),
            Some(c) => (Actor::claim(c.ip(), who), NOT_ALLOWED.to_owned()),
            None => (
                Actor::User {
                    name: who.to_owned(),
                },
                why.clone(),
            ),
        };
        self.audit(actor, Event::ApprovalRefused(self.step_of(req, who, &why)))?;
        Ok(ServiceError::Forbidden(told))
    }

    pub fn create_decision(
        &self,
        request_id: &str,
        body: CreateDecision,
        client: SocketAddr,
    ) -> Result<RequestCreated, ServiceError> {
        self.limit_address(client)?;
        let who = UserName::parse(&body.user).map_err(ServiceError::invalid)?;
        let comment = match (body.verdict, body.comment.trim()) {
            (Verdict::Deny, "") => {
                return Err(ServiceError::invalid("a denial needs a reason (comment)"))
            }
            (_, "") => String::new(),
            (_, c) => Reason::parse(c).map_err(ServiceError::invalid)?.to_string(),
        };
        let now = self.now();
        let req = self.load_request(request_id, now)?;
        if req.status != RequestStatus::PendingApproval {
            return Err(ServiceError::WrongState(format!(
                "this request {}: there is nothing left to approve or deny",
                req.status.in_words()
            )));
        }
        // A name nobody enrolled can never confirm: refused before any
        // audit record, so strangers cannot fill the log with names.
        let standing = self.store.may_request(who.as_str())?;
        if !standing.enrolled {
            return Err(ServiceError::NotEnrolled(who.to_string()));
        }
        // As for their own requests: said before the touch (checked
        // again after it).
        if standing.blocked {
            return Err(ServiceError::UserBlocked(who.to_string()));
        }
        // Say no early (checked again after the touch, which is what counts).
        if let Some(why) = refusal(&req, who.as_str()) {
            return Err(self.refuse(&req, who.as_str(), why, Some(client))?);
        }
        if let Some(why) = self.approver_now_refusal(&req, who.as_str(), now) {
            return Err(self.refuse(&req, who.as_str(), why, Some(client))?);
        }
        let (secret, secret_hash) = new_secret();
        let d = PendingDecision {
            id: random_id(),
            request: req.id.clone(),
            user: who.to_string(),
            verdict: body.verdict,
            comment,
            // The approver has until the request itself ends.
            expires_at: req.expires_at.min(self.pending_until(now)),
            status: DecisionStatus::PendingMfa,
            outcome: None,
            secret_hash,
        };
        self.store.put_decision(&d)?;
        Ok(self.created(&d, secret))
    }

    pub(super) fn load_decision(
        &self,
        id: &str,
        now: i64,
    ) -> Result<PendingDecision, ServiceError> {
        if !is_id(id) {
            return Err(ServiceError::NotFound("decision"));
        }
        let d = self
            .store
            .decision(id)?
            .ok_or(ServiceError::NotFound("decision"))?;
        if d.status != DecisionStatus::PendingMfa || now < d.expires_at {
            return Ok(d);
        }
        let mut expired = d.clone();
        expired.status = DecisionStatus::Expired;
        expired.outcome = Some("not confirmed in time; nothing was decided".into());
        self.store.swap_decision(&d, &expired)?;
        Ok(expired)
    }

    /// What a verified touch on decision `d` about `req` does: records
    /// the verdict (or the refusal) and stores the outcome.
    fn decision_touched(
        &self,
        d: PendingDecision,
        req: &AccessRequest,
        now: i64,
    ) -> Result<PendingDecision, ServiceError> {
        let actor = Actor::User {
            name: d.user.clone(),
        };
        let mut done = d.clone();
        match self.apply_decision(req, &d, actor, now) {
            Ok(outcome) => {
                done.status = DecisionStatus::Recorded;
                done.outcome = Some(outcome);
            }
            Err(ServiceError::Forbidden(why) | ServiceError::WrongState(why)) => {
                done.status = DecisionStatus::Refused;
                done.outcome = Some(why);
            }
            Err(e) => return Err(e),
        }
        if !self.store.swap_decision(&d, &done)? {
            return Err(ServiceError::WrongState(
                "the decision changed while being confirmed".into(),
            ));
        }
        Ok(done)
    }

    /// Records a confirmed verdict on the request, at `now`.
    fn apply_decision(
        &self,
        req: &AccessRequest,
        d: &PendingDecision,
        actor: Actor,
        now: i64,
    ) -> Result<String, ServiceError> {
        if req.status != RequestStatus::PendingApproval {
            let why = format!(
                "this request {} while you were confirming: there is nothing left to approve or deny",
                req.status.in_words()
            );
            let why = Refusal { why, public: true };
            return Err(self.refuse(req, &d.user, why, None)?);
        }
        if let Some(why) = refusal(req, &d.user) {
            return Err(self.refuse(req, &d.user, why, None)?);
        }
        if let Some(why) = self.standing_refusal(req, &d.user, d.verdict, now)? {
            return Err(self.refuse(req, &d.user, why, None)?);
        }
        if super::decide::claim_is_live(req, now) {
            let why = "another approval is being applied to this request; try again".to_owned();
            return Err(self.refuse(req, &d.user, Refusal { why, public: true }, None)?);
        }
        // What the final swap replaces: the request as read, or as claimed.
        let mut base = req.clone();
        let mut next = req.clone();
        let approval = next
            .approval
            .as_mut()
            .ok_or_else(|| ServiceError::Internal("approval state".into()))?;
        let outcome = match d.verdict {
            Verdict::Deny => {
                let reason = format!("denied by {}: {}", d.user, d.comment);
                self.audit(
                    actor,
                    Event::RequestDenied(self.step_of(req, &d.user, &d.comment)),
                )?;
                next.status = RequestStatus::Denied;
                next.decision_reason = Some(reason.clone());
                reason
            }
            Verdict::Approve => {
                approval.approvals.push(ApprovalMark {
                    by: d.user.clone(),
                    at: now,
                    comment: d.comment.clone(),
                });
                let (have, needed) = (approval.approvals.len(), approval.needed);
                let (pin, extensions) = (approval.pin_source_address, approval.extensions.clone());
                let session = approval.session.unwrap_or_default();
                next.decision_reason = Some(waiting_text(approval));
                let last = have >= usize::try_from(needed).unwrap_or(usize::MAX);
                if last {
                    // One certificate: claimed before signing.
                    let Some(claimed) = self.claim(req, now)? else {
                        let why = "the request changed while being decided; try again".to_owned();
                        return Err(self.refuse(
                            req,
                            &d.user,
                            Refusal { why, public: true },
                            None,
                        )?);
                    };
                    base = claimed;
                }
                let issued = self
                    .audit(
                        actor.clone(),
                        Event::RequestApproved(self.step_of(&next, &d.user, &d.comment)),
                    )
                    .and_then(|_| {
                        if last {
                            self.issue_approved(next, pin, &extensions, session, actor, now)
                        } else {
                            Ok(next)
                        }
                    });
                next = match issued {
                    Ok(n) => n,
                    Err(e) => {
                        if last {
                            self.release_claim(&base, req);
                        }
                        return Err(e);
                    }
                };
                if last {
                    format!("approved; that was the last approval needed: the certificate was issued to {}", req.user)
                } else {
                    format!("approved ({have} of {needed}); waiting for more approvers")
                }
            }
        };
        next.deciding_since = None;
        let conflict = "the request changed while being decided; try again";
        if let Err(e) = self.transition(&base, &next, None, conflict) {
            // The verdict was recorded above but did not count (another
            // replica's approval, a cancel or an expiry came first): the
            // log says so, or an auditor would count it.
            // (Not after an issuance: that one counted.)
            if let (ServiceError::WrongState(why), false) =
                (&e, next.status == RequestStatus::Issued)
            {
                let why = Refusal {
                    why: why.clone(),
                    public: true,
                };
                return Err(self.refuse(req, &d.user, why, None)?);
            }
            return Err(e);
        }
        let event = match (d.verdict, next.status) {
            (Verdict::Deny, _) => Some(RequestEvent::Denied),
            (Verdict::Approve, RequestStatus::Issued) => Some(RequestEvent::Approved),
            _ => None,
        };
        if let Some(event) = event {
            self.notify_request(event, &next, Some(&d.user));
        }
        Ok(outcome)
    }

    /// Issues the certificate for a request its last approval completed.
    fn issue_approved(
        &self,
        next: AccessRequest,
        pin: bool,
        extensions: &[String],
        session: crate::policy::SessionPolicy,
        actor: Actor,
        now: i64,
    ) -> Result<AccessRequest, ServiceError> {
        let extensions = extensions
            .iter()
            .map(|e| Extension::parse(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServiceError::Internal(format!("stored extension: {e}")))?;
        let terms = super::decide::CertTerms {
            pin_source_address: pin,
            extensions,
            session,
        };
        self.issue_now(next, terms, actor, now, vec![])
    }
}
