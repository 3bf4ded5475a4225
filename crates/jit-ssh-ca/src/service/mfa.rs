//! The WebAuthn touch that approves one request, the policy decision, and
//! issuance. The assertion is bound to the request: its ceremony state is
//! stored under the request id together with a digest of what is being
//! approved, is removed before the assertion is checked (single use), and
//! expires.

use std::net::SocketAddr;

use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_audit::{Actor, Event};
use jit_ssh_proto::api::{RequestStatus, RequestSummary};

use super::{sha256_hex, step, Ca, ServiceError};
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
}
