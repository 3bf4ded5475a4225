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
use super::{now_unix, sha256_hex, step, Ca, ServiceError};
use crate::store::AccessRequest;

fn ceremony_key(id: &str) -> String {
    format!("mfa:{id}")
}

/// How long a claim holds off expiry and other touches: far longer than
/// signing and one audit append take; a claim older than this belongs to
/// a CA that died mid-decision, and the request may expire.
const CLAIM_TIMEOUT: i64 = 120;

/// Whether a verified touch is deciding `req` right now.
pub(super) fn claim_is_live(req: &AccessRequest) -> bool {
    req.deciding_since
        .is_some_and(|t| now_unix() < t.saturating_add(CLAIM_TIMEOUT))
}

fn waiting(req: &AccessRequest) -> Result<(), ServiceError> {
    if req.deciding_since.is_some() {
        return Err(ServiceError::WrongState(
            "request is being decided after another touch; nothing more to confirm".into(),
        ));
    }
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
            client,
        )?;
        waiting(&req)?;
        // One request, one certificate: claim it in the store before
        // anything is signed; a touch that loses the race signs nothing.
        let mut claimed = req.clone();
        claimed.deciding_since = Some(now_unix());
        if !self.store.swap_request(&req, &claimed)? {
            return Err(ServiceError::WrongState(
                "the request changed while it was being confirmed; another touch finished first"
                    .into(),
            ));
        }
        let actor = Actor::User {
            name: req.user.clone(),
        };
        let decided = self
            .audit(actor.clone(), Event::MfaVerified(step(&req, "")))
            .and_then(|_| self.decide_and_issue(&claimed, actor));
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
        if !self.store.swap_request(&claimed, &decided)? {
            // Only a claim older than CLAIM_TIMEOUT can be taken over.
            tracing::error!(request = %req.id, "the request changed under a live claim");
            return Err(ServiceError::WrongState(
                "the request changed while it was being decided".into(),
            ));
        }
        self.waiters.wake(id);
        self.summary(id)
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
