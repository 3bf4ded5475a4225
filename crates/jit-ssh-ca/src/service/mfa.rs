//! The WebAuthn touch that approves one request, the policy decision, and
//! issuance. The assertion is bound to the request: its ceremony state is
//! stored under the request id together with a digest of what is being
//! approved, is removed before the assertion is checked (single use), and
//! expires.

use std::net::SocketAddr;

use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_audit::{Actor, Event};
use jit_ssh_proto::api::{RequestStatus, RequestSummary};

use super::assertion::awaiting_touch;
use super::{sha256_hex, step, Ca, ServiceError};
use crate::store::AccessRequest;

fn ceremony_key(id: &str) -> String {
    format!("mfa:{id}")
}

fn waiting(req: &AccessRequest) -> Result<(), ServiceError> {
    awaiting_touch(
        "request",
        req.status,
        req.status == RequestStatus::PendingMfa,
    )
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
        self.start_touch(&ceremony_key(id), &req.user, waiting(&req), binding(&req))
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
        let ceremony = self.take_touch(&ceremony_key(id))?;
        let req = self.load_request(id)?;
        // The ceremony first: a replay is an MFA failure, and recorded so.
        self.check_touch(
            ceremony,
            &req.user,
            (&req.id, &req.host),
            &binding(&req),
            credential,
        )?;
        waiting(&req)?;
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
}
