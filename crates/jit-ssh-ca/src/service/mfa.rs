//! The WebAuthn touch that approves one request, the policy decision, and
//! issuance. The assertion is bound to the request: its ceremony state is
//! stored under the request id together with a digest of what is being
//! approved, is removed before the assertion is checked (single use), and
//! expires.

use jit_ssh_audit::{Actor, Event};
use jit_ssh_proto::api::{ConfirmKind, RequestStatus, RequestSummary};
use jit_ssh_proto::routes;

use super::assertion::awaiting_touch;
use super::confirm::{summary, Confirmable};
use super::{now_unix, sha256_hex, step, Ca, ServiceError};
use crate::store::AccessRequest;

/// How long a claim holds off expiry and other touches: far longer than
/// signing and one audit append take; a claim older than this belongs to
/// a CA that died mid-decision, and the request may expire.
const CLAIM_TIMEOUT: i64 = 120;

/// Whether a verified touch is deciding `req` right now.
pub(super) fn claim_is_live(req: &AccessRequest) -> bool {
    req.deciding_since
        .is_some_and(|t| now_unix() < t.saturating_add(CLAIM_TIMEOUT))
}

/// Confirmed on `/mfa/{id}` by the requester, then decided by policy
/// (and, when it asks for them, by approvers on `/approve/{id}`).
impl Confirmable for AccessRequest {
    type View = RequestSummary;
    type Context = ();
    const KIND: ConfirmKind = ConfirmKind::AccessRequest;
    const PAGE: &'static str = routes::MFA_PAGE;
    const CEREMONY: &'static str = "mfa";

    fn load(ca: &Ca, id: &str) -> Result<Self, ServiceError> {
        ca.load_request(id)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn user(&self) -> &str {
        &self.user
    }
    fn secret_hash(&self) -> &str {
        &self.secret_hash
    }
    fn expires_at(&self) -> i64 {
        self.expires_at
    }
    fn waiting(&self) -> Result<(), ServiceError> {
        if self.deciding_since.is_some() {
            return Err(ServiceError::WrongState(
                "request is being decided after another touch; nothing more to confirm".into(),
            ));
        }
        awaiting_touch(
            "request",
            self.status,
            self.status == RequestStatus::PendingMfa,
        )
    }
    fn match_code(&self) -> String {
        crate::match_code::access_request(
            &self.id,
            &self.user,
            &self.host,
            &self.account,
            &self.key_fingerprint,
        )
    }
    fn context(&self, _: &Ca) -> Result<(), ServiceError> {
        Ok(())
    }
    fn binding(&self, (): &()) -> String {
        sha256_hex(&[
            "jit-ssh-mfa-v1",
            &self.id,
            &self.key_fingerprint,
            &self.host,
            &self.account,
        ])
    }
    fn host<'a>(&'a self, (): &'a ()) -> &'a str {
        &self.host
    }
    fn view(self, ca: &Ca) -> Result<RequestSummary, ServiceError> {
        Ok(ca.summary_of(self))
    }
    fn public(r: RequestSummary) -> RequestSummary {
        summary::access_request(r)
    }
    /// Decides by policy, and issues if allowed.
    fn touched(self, (): (), ca: &Ca) -> Result<RequestSummary, ServiceError> {
        ca.decide_touched(self)
    }
}

impl Ca {
    fn decide_touched(&self, req: AccessRequest) -> Result<RequestSummary, ServiceError> {
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
        let conflict = "the request changed while it was being decided";
        self.transition(&claimed, &decided, None, conflict)
            .inspect_err(|e| {
                if let ServiceError::WrongState(_) = e {
                    // Only a claim older than CLAIM_TIMEOUT can be taken over.
                    tracing::error!(request = %req.id, "the request changed under a live claim");
                }
            })
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
