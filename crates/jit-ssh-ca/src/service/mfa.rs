//! The WebAuthn touch that approves one request, the policy decision, and
//! issuance. The assertion is bound to the request: its ceremony state is
//! stored under the request id together with a digest of what is being
//! approved, is removed before the assertion is checked (single use), and
//! expires.

use std::net::SocketAddr;
use std::time::Duration;

use ssh_key::PublicKey;
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_audit::{Actor, Event, IssuedVia, PolicyDecision};
use jit_ssh_proto::api::{IssuedCertificate, RequestStatus, RequestSummary};

use super::{now_unix, sha256_hex, step, Ca, ServiceError};
use crate::issue::{issue, IssueRequest};
use crate::names::{AccountName, GrantId, HostName, Reason, UserName};
use crate::policy::Decision;
use crate::profile::{CertSpec, SourceCidr};
use crate::store::AccessRequest;

fn ceremony_key(id: &str) -> String {
    format!("mfa:{id}")
}

/// What an assertion for this request approves.
fn binding(req: &AccessRequest) -> String {
    sha256_hex(&[
        "jit-ssh-mfa-v1",
        &req.id,
        &req.key_fingerprint,
        &req.host,
        &req.account,
    ])
}

impl Ca {
    /// Starts the assertion for request `id`, allowing only the
    /// requester's own credentials.
    pub fn mfa_start(
        &self,
        id: &str,
        client: SocketAddr,
    ) -> Result<RequestChallengeResponse, ServiceError> {
        self.limit_address(client)?;
        let req = self.load_request(id)?;
        self.limit_ceremonies(&req.user)?;
        if req.status != RequestStatus::PendingMfa {
            return Err(ServiceError::WrongState(format!(
                "request is {:?}, not waiting for MFA",
                req.status
            )));
        }
        self.start_assertion(&ceremony_key(id), &req.user, binding(&req))
    }

    /// Checks the assertion, decides by policy, and issues if allowed.
    pub fn mfa_finish(
        &self,
        id: &str,
        credential: &PublicKeyCredential,
        client: SocketAddr,
    ) -> Result<RequestSummary, ServiceError> {
        self.limit_address(client)?;
        // Single use: the state is gone before the assertion is looked at.
        let ceremony = self.store.take_ceremony(&ceremony_key(id))?;
        let req = self.load_request(id)?;
        self.limit_ceremonies(&req.user)?;
        // The ceremony first: a replay is an MFA failure, and recorded so.
        if let Err(why) = self.check_assertion(ceremony, &req.user, &binding(&req), credential)? {
            return Err(self.mfa_failed(&req, &why));
        }
        if req.status != RequestStatus::PendingMfa {
            return Err(ServiceError::WrongState(format!(
                "request is {:?}, not waiting for MFA",
                req.status
            )));
        }
        let actor = Actor::User {
            name: req.user.clone(),
        };
        self.audit(actor.clone(), Event::MfaVerified(step(&req, "")))?;
        let decided = self.decide_and_issue(&req, actor)?;
        if !self.store.swap_request(&req, &decided)? {
            return Err(ServiceError::WrongState(
                "the request changed while it was being decided".into(),
            ));
        }
        self.waiters.wake(id);
        self.summary(id)
    }

    fn mfa_failed(&self, req: &AccessRequest, why: &str) -> ServiceError {
        tracing::warn!(request = %req.id, user = %req.user, reason = why, "WebAuthn check failed");
        let step = step(req, why);
        match self.audit(
            Actor::User {
                name: req.user.clone(),
            },
            Event::MfaFailed(step),
        ) {
            Ok(_) => ServiceError::MfaFailed(why.to_owned()),
            Err(e) => e,
        }
    }

    /// Applies policy to an authenticated request; returns its new state.
    fn decide_and_issue(
        &self,
        req: &AccessRequest,
        actor: Actor,
    ) -> Result<AccessRequest, ServiceError> {
        let invalid = |e: crate::names::NameError| {
            ServiceError::Internal(format!("stored request is invalid: {e}"))
        };
        let user = UserName::parse(&req.user).map_err(invalid)?;
        let host = HostName::parse(&req.host).map_err(invalid)?;
        let account = AccountName::parse(&req.account).map_err(invalid)?;
        let ttl = Duration::from_secs(req.ttl_secs);
        // A user revocation blocks new certificates, even for requests made before it.
        let decision = if self.store.is_blocked(user.as_str())? {
            Decision::Deny(crate::policy::DenyReason::Blocked(user.to_string()))
        } else {
            self.config.policy.decide(&user, &host, &account, ttl)
        };
        let (outcome, why) = match &decision {
            Decision::Allow(a) => ("approved", format!("rule {}", a.rule)),
            Decision::NeedsApproval {
                rule,
                min_approvals,
            } => (
                "pending_approval",
                format!("rule {rule} needs {min_approvals} approval(s)"),
            ),
            Decision::Deny(d) => ("denied", d.to_string()),
        };
        self.audit(
            actor.clone(),
            Event::PolicyDecision(PolicyDecision {
                request: req.id.clone(),
                user: req.user.clone(),
                host: req.host.clone(),
                account: req.account.clone(),
                outcome: outcome.to_owned(),
                reason: why.clone(),
            }),
        )?;
        tracing::info!(request = %req.id, user = %req.user, outcome, reason = %why, "policy decision");
        let mut next = req.clone();
        match decision {
            Decision::Deny(d) => {
                next.status = RequestStatus::Denied;
                next.decision_reason = Some(d.to_string());
            }
            Decision::NeedsApproval { min_approvals, .. } => {
                next.status = RequestStatus::PendingApproval;
                next.decision_reason = Some(format!("waiting for {min_approvals} approver(s)"));
            }
            Decision::Allow(allowed) => {
                let grant = GrantId::parse(&req.id).map_err(invalid)?;
                let source_address = if allowed.pin_source_address {
                    vec![SourceCidr::parse(&req.client_addr)
                        .map_err(|e| ServiceError::Internal(e.to_string()))?]
                } else {
                    vec![]
                };
                let spec = CertSpec {
                    user,
                    host,
                    account,
                    grant: grant.clone(),
                    ttl,
                    source_address,
                    force_command: None,
                    extensions: allowed.extensions,
                };
                let public_key = PublicKey::from_openssh(&req.public_key)
                    .map_err(|e| ServiceError::Internal(format!("stored public key: {e}")))?;
                let reason = Reason::parse(&req.reason).map_err(invalid)?;
                let now = u64::try_from(now_unix()).unwrap_or(0);
                let issued = issue(
                    self.signer.as_ref(),
                    self.audit.as_ref(),
                    &self.config.profile,
                    IssueRequest {
                        spec: &spec,
                        public_key: &public_key,
                        reason: &reason,
                        actor,
                        via: IssuedVia::Server,
                    },
                    now,
                )
                .map_err(|e| {
                    tracing::error!(request = %req.id, error = %e, source = ?std::error::Error::source(&e), "issuance failed");
                    ServiceError::Internal("issuance".into())
                })?;
                let f = &issued.fields;
                tracing::info!(request = %req.id, serial = f.serial.get(), key_id = %f.key_id, "certificate issued");
                next.status = RequestStatus::Issued;
                next.grant = Some(grant.to_string());
                next.certificate = Some(IssuedCertificate {
                    certificate: issued
                        .certificate
                        .to_openssh()
                        .map_err(|e| ServiceError::Internal(e.to_string()))?,
                    serial: f.serial.get(),
                    principals: f.principals.iter().map(ToString::to_string).collect(),
                    valid_after: f.valid_after,
                    valid_before: f.valid_before,
                });
            }
        }
        Ok(next)
    }
}
