//! Approvers deciding requests: list what they may decide, approve or
//! deny, each confirmed with the approver's own WebAuthn touch bound to
//! that decision on that request. A requester never approves their own
//! request; each approver counts once; approvals end with the request.

use std::net::SocketAddr;

use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_audit::{Actor, ApprovalStep, Event};
use jit_ssh_proto::api::{
    CreateDecision, DecisionState, DecisionStatus, PendingRequests, RequestCreated, RequestStatus,
    Verdict,
};
use jit_ssh_proto::routes;

use super::assertion::awaiting_touch;
use super::revoke_flow::NOT_ALLOWED;
use super::sessions::SignedIn;
use super::{
    is_id, now_unix, random_id, random_token, secret_matches, sha256_hex, Ca, ServiceError,
};
use crate::names::{Reason, UserName};
use crate::notify::texts::{waiting_text, RequestEvent};
use crate::profile::Extension;
use crate::store::{AccessRequest, ApprovalMark, PendingDecision};

fn ceremony_key(id: &str) -> String {
    format!("decide:{id}")
}

/// What the approver's assertion confirms: this verdict, by them, on this
/// request for this key, host and account.
fn binding(d: &PendingDecision, req: &AccessRequest) -> String {
    sha256_hex(&[
        "jit-ssh-decide-v1",
        &d.id,
        &d.user,
        &format!("{:?}", d.verdict),
        &d.comment,
        &req.id,
        &req.key_fingerprint,
        &req.host,
        &req.account,
    ])
}

fn waiting(d: &PendingDecision) -> Result<(), ServiceError> {
    awaiting_touch("decision", d.status, d.status == DecisionStatus::PendingMfa)
}

/// Why someone may not decide a request.
struct Refusal {
    why: String,
    /// Whether a caller who has not touched their key may be told `why`:
    /// the request's page already names its requester and who approved,
    /// but whether a given name may approve is not for strangers.
    public: bool,
}

/// Why `who` may not decide `req`, if they may not.
fn refusal(req: &AccessRequest, who: &str) -> Option<Refusal> {
    if req.user == who {
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
        for req in self.store.pending_approval()? {
            // Expire what ran out on the way.
            let req = self.load_request(&req.id)?;
            if req.status == RequestStatus::PendingApproval && refusal(&req, &who.user).is_none() {
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
            user: req.user.clone(),
            host: req.host.clone(),
            account: req.account.clone(),
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
        let req = self.load_request(request_id)?;
        if req.status != RequestStatus::PendingApproval {
            return Err(ServiceError::WrongState(format!(
                "this request {}: there is nothing left to approve or deny",
                req.status.in_words()
            )));
        }
        // A name nobody enrolled can never confirm: refused before any
        // audit record, so strangers cannot fill the log with names.
        if self.store.credentials(who.as_str())?.is_empty() {
            return Err(ServiceError::NotEnrolled(who.to_string()));
        }
        // Say no early (checked again after the touch, which is what counts).
        if let Some(why) = refusal(&req, who.as_str()) {
            return Err(self.refuse(&req, who.as_str(), why, Some(client))?);
        }
        let secret = random_token();
        let d = PendingDecision {
            id: random_id(),
            request: req.id.clone(),
            user: who.to_string(),
            verdict: body.verdict,
            comment,
            // The approver has until the request itself ends.
            expires_at: req.expires_at.min(
                now_unix() + i64::try_from(self.config.limits.request_ttl.as_secs()).unwrap_or(300),
            ),
            status: DecisionStatus::PendingMfa,
            outcome: None,
            secret_hash: sha256_hex(&[&secret]),
        };
        self.store.put_decision(&d)?;
        Ok(RequestCreated {
            match_code: crate::match_code::decision(&d.id, &d.request, &d.user, d.verdict),
            mfa_url: self
                .config
                .url(&routes::fill(routes::DECIDE_PAGE, "id", &d.id)),
            id: d.id,
            status: RequestStatus::PendingMfa,
            expires_at: super::rfc3339(d.expires_at),
            secret,
        })
    }

    fn load_decision(&self, id: &str) -> Result<PendingDecision, ServiceError> {
        if !is_id(id) {
            return Err(ServiceError::NotFound("decision"));
        }
        let d = self
            .store
            .decision(id)?
            .ok_or(ServiceError::NotFound("decision"))?;
        if d.status != DecisionStatus::PendingMfa || now_unix() < d.expires_at {
            return Ok(d);
        }
        let mut expired = d.clone();
        expired.status = DecisionStatus::Expired;
        expired.outcome = Some("not confirmed in time; nothing was decided".into());
        self.store.swap_decision(&d, &expired)?;
        Ok(expired)
    }

    fn decision_view(&self, d: PendingDecision) -> Result<DecisionState, ServiceError> {
        let req = self.load_request(&d.request)?;
        Ok(DecisionState {
            id: d.id,
            request: d.request,
            user: d.user,
            verdict: d.verdict,
            comment: d.comment,
            status: d.status,
            outcome: d.outcome,
            summary: self.summary_of(req),
        })
    }

    /// The approver's view (with the secret).
    pub fn decision_state(&self, id: &str, secret: &str) -> Result<DecisionState, ServiceError> {
        let d = self.load_decision(id)?;
        if !secret_matches(secret, &d.secret_hash) {
            return Err(ServiceError::Unauthorized);
        }
        self.decision_view(d)
    }

    /// What the decision page shows. Nothing secret.
    pub fn decision_summary(&self, id: &str) -> Result<DecisionState, ServiceError> {
        let d = self.load_decision(id)?;
        self.decision_view(d)
    }

    pub fn decision_mfa_start(
        &self,
        id: &str,
        client: SocketAddr,
    ) -> Result<RequestChallengeResponse, ServiceError> {
        self.limit_address(client)?;
        let d = self.load_decision(id)?;
        let req = self.load_request(&d.request)?;
        self.start_touch(&ceremony_key(id), &d.user, waiting(&d), binding(&d, &req))
    }

    /// Checks the approver's touch, then records the verdict — issuing the
    /// certificate when it was the last approval needed.
    pub fn decision_mfa_finish(
        &self,
        id: &str,
        credential: &PublicKeyCredential,
        client: SocketAddr,
    ) -> Result<DecisionState, ServiceError> {
        self.limit_address(client)?;
        let ceremony = self.take_touch(&ceremony_key(id))?;
        let d = self.load_decision(id)?;
        // One decision at a time: two last approvals must not both issue.
        let _one = self
            .deciding
            .lock()
            .map_err(|_| ServiceError::Internal("decision lock".into()))?;
        let req = self.load_request(&d.request)?;
        self.check_touch(
            ceremony,
            &d.user,
            (&d.id, &req.host),
            &binding(&d, &req),
            credential,
            client,
        )?;
        waiting(&d)?;
        let actor = Actor::User {
            name: d.user.clone(),
        };
        let mut done = d.clone();
        match self.apply_decision(&req, &d, actor) {
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
        self.decision_view(done)
    }

    /// Records a confirmed verdict on the request.
    fn apply_decision(
        &self,
        req: &AccessRequest,
        d: &PendingDecision,
        actor: Actor,
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
        if super::mfa::claim_is_live(req) {
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
                    at: now_unix(),
                    comment: d.comment.clone(),
                });
                let (have, needed) = (approval.approvals.len(), approval.needed);
                let (pin, extensions) = (approval.pin_source_address, approval.extensions.clone());
                next.decision_reason = Some(waiting_text(approval));
                let last = have >= usize::try_from(needed).unwrap_or(usize::MAX);
                if last {
                    // One certificate: claim the request in the store
                    // before signing (another CA replica may be here too).
                    base.deciding_since = Some(now_unix());
                    if !self.store.swap_request(req, &base)? {
                        let why = "the request changed while being decided; try again".to_owned();
                        return Err(self.refuse(
                            req,
                            &d.user,
                            Refusal { why, public: true },
                            None,
                        )?);
                    }
                }
                let issued = self
                    .audit(
                        actor.clone(),
                        Event::RequestApproved(self.step_of(&next, &d.user, &d.comment)),
                    )
                    .and_then(|_| {
                        if last {
                            self.issue_approved(next, pin, &extensions, actor)
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
        if !self.store.swap_request(&base, &next)? {
            return Err(ServiceError::WrongState(
                "the request changed while being decided; try again".into(),
            ));
        }
        self.waiters.wake(&req.id);
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
        actor: Actor,
    ) -> Result<AccessRequest, ServiceError> {
        let extensions = extensions
            .iter()
            .map(|e| Extension::parse(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServiceError::Internal(format!("stored extension: {e}")))?;
        self.issue_now(next, pin, extensions, actor)
    }
}
