//! Access requests: creating them, what the requester's touch confirms
//! (what it binds, who may touch), reading their state, and every change
//! a requester can see ([`Ca::transition`]). What the touch then does —
//! policy, approvers, issuance — is in `decide.rs`.

use std::net::SocketAddr;

use ssh_key::{Algorithm, HashAlg, PublicKey};

use jit_ssh_audit::{Actor, Event, RequestCreated};
use jit_ssh_proto::api::{
    ConfirmKind, CreateRequest, RequestCreated as Created, RequestState, RequestStatus,
    RequestSummary,
};
use jit_ssh_proto::error::code;
use jit_ssh_proto::routes;

use super::confirm::{awaiting_touch, new_secret, summary, Confirmable, Header};
use super::{is_id, random_id, rfc3339, sha256_hex, step, Ca, ServiceError};
use crate::names::{AccountName, HostName, Reason, UserName};
use crate::store::AccessRequest;

/// Public keys longer than this are not ed25519 lines.
const MAX_PUBLIC_KEY_LEN: usize = 512;

impl Ca {
    /// Validates and records a new request, pending its WebAuthn touch.
    pub fn create_request(
        &self,
        body: CreateRequest,
        client: SocketAddr,
    ) -> Result<Created, ServiceError> {
        self.limit_address(client)?;
        let user = UserName::parse(&body.user).map_err(ServiceError::invalid)?;
        let host = HostName::parse(&body.host).map_err(ServiceError::invalid)?;
        let account = AccountName::parse(&body.account).map_err(ServiceError::invalid)?;
        let reason = Reason::parse(&body.reason).map_err(ServiceError::invalid)?;
        let ttl = jit_ssh_proto::parse_duration(&body.ttl).map_err(ServiceError::invalid)?;
        if ttl.is_zero() || ttl > self.config.profile.max_ttl {
            return Err(ServiceError::invalid(format!(
                "ttl must be between 1s and {}",
                jit_ssh_proto::format_duration(self.config.profile.max_ttl)
            )));
        }
        let public_key = parse_public_key(&body.public_key)?;
        let standing = self.store.may_request(user.as_str())?;
        if !standing.enrolled {
            return Err(ServiceError::NotEnrolled(user.to_string()));
        }
        if standing.blocked {
            return Err(ServiceError::UserBlocked(user.to_string()));
        }

        let now = self.now();
        let (secret, secret_hash) = new_secret();
        let req = AccessRequest {
            id: random_id(),
            user,
            host,
            account,
            ttl_secs: ttl.as_secs(),
            reason,
            public_key: public_key
                .to_openssh()
                .map_err(|e| ServiceError::Internal(e.to_string()))?,
            key_fingerprint: public_key.fingerprint(HashAlg::Sha256).to_string(),
            client_addr: client.ip().to_string(),
            created_at: now,
            expires_at: self.pending_until(now),
            status: RequestStatus::PendingMfa,
            decision_reason: None,
            secret_hash,
            grant: None,
            certificate: None,
            break_glass: body.break_glass,
            approval: None,
            deciding_since: None,
        };
        // Nobody has touched a key yet: whoever sent this only claims a name.
        self.audit(
            Actor::claim(client.ip(), req.user.as_str()),
            Event::RequestCreated(RequestCreated::from(&req)),
        )?;
        self.store.put_request(&req)?;
        tracing::info!(request = %req.id, user = %req.user, host = %req.host, account = %req.account, "access request created");
        Ok(self.created(&req, secret))
    }

    /// Loads a request, marking it expired if its time ran out by `now`.
    pub(crate) fn load_request(&self, id: &str, now: i64) -> Result<AccessRequest, ServiceError> {
        if !is_id(id) {
            return Err(ServiceError::NotFound("request"));
        }
        let req = self
            .store
            .request(id)?
            .ok_or(ServiceError::NotFound("request"))?;
        let pending = matches!(
            req.status,
            RequestStatus::PendingMfa | RequestStatus::PendingApproval
        );
        if !pending || now < req.expires_at || super::decide::claim_is_live(&req, now) {
            return Ok(req);
        }
        let mut expired = req.clone();
        expired.status = RequestStatus::Expired;
        expired.deciding_since = None;
        expired.decision_reason =
            Some("the request expired before it was approved; run the login again".into());
        let record = (Actor::System, Event::RequestExpired(step(&req, "")));
        match self.transition(&req, &expired, Some(record), "") {
            Ok(_) => return Ok(expired),
            // Someone else changed it meanwhile: read what they wrote.
            Err(ServiceError::WrongState(_)) => {}
            Err(e) => return Err(e),
        }
        self.store
            .request(id)?
            .ok_or(ServiceError::NotFound("request"))
    }

    /// The requester's view, given the secret returned at creation.
    pub fn request_state(&self, id: &str, secret: &str) -> Result<RequestState, ServiceError> {
        let req = self.authorized::<AccessRequest>(id, secret, self.now())?;
        Ok(self.state_of(req))
    }

    fn state_of(&self, req: AccessRequest) -> RequestState {
        RequestState {
            approval: self.approval_progress(&req),
            id: req.id,
            status: req.status,
            expires_at: rfc3339(req.expires_at),
            reason: req.decision_reason,
            certificate: req.certificate,
        }
    }

    /// Stores `new` in place of `old` (compare-and-swap), records `event`
    /// when given, and wakes whoever long-polls the request: every change
    /// a requester can see goes through here (a claim, which they cannot
    /// see, does not). `Err(WrongState(conflict))` when the request changed
    /// meanwhile: nothing is recorded and nobody is woken.
    pub(super) fn transition(
        &self,
        old: &AccessRequest,
        new: &AccessRequest,
        event: Option<(Actor, Event)>,
        conflict: &str,
    ) -> Result<RequestSummary, ServiceError> {
        if !self.store.swap_request(old, new)? {
            return Err(ServiceError::WrongState(conflict.to_owned()));
        }
        if let Some((actor, event)) = event {
            self.audit(actor, event)?;
        }
        self.waiters.wake(&new.id);
        Ok(self.summary_of(new.clone()))
    }

    /// The requester gives up: a pending request becomes `cancelled`, so
    /// the MFA link can no longer issue anything.
    /// Holding the secret is not a touch: the cancel is recorded as a
    /// claim from `client`.
    pub fn cancel_request(
        &self,
        id: &str,
        secret: &str,
        client: SocketAddr,
    ) -> Result<RequestState, ServiceError> {
        let now = self.now();
        let req = self.authorized::<AccessRequest>(id, secret, now)?;
        if req.status.is_final() {
            return Ok(self.state_of(req));
        }
        if super::decide::claim_is_live(&req, now) {
            return Err(ServiceError::WrongState(
                "the request is being decided; read it again".into(),
            ));
        }
        let mut cancelled = req.clone();
        cancelled.status = RequestStatus::Cancelled;
        cancelled.decision_reason = Some("cancelled by the requester".into());
        let record = (
            Actor::claim(client.ip(), req.user.as_str()),
            Event::RequestCancelled(step(&req, "")),
        );
        self.transition(
            &req,
            &cancelled,
            Some(record),
            "the request changed while being cancelled; read it again",
        )?;
        Ok(self.state_of(cancelled))
    }

    pub(super) fn summary_of(&self, req: AccessRequest) -> RequestSummary {
        RequestSummary {
            approval: self.approval_progress(&req),
            break_glass: req.break_glass,
            id: req.id,
            user: req.user.to_string(),
            host: req.host.to_string(),
            account: req.account.to_string(),
            ttl: jit_ssh_proto::format_duration(std::time::Duration::from_secs(req.ttl_secs)),
            reason: req.reason.to_string(),
            key_fingerprint: req.key_fingerprint,
            status: req.status,
            expires_at: rfc3339(req.expires_at),
            decision: req.decision_reason,
        }
    }
}

/// Confirmed on `/mfa/{id}` by the requester, then decided by policy
/// (and, when it asks for them, by approvers on `/approve/{id}`).
impl Confirmable for AccessRequest {
    type View = RequestSummary;
    type Context = ();
    const KIND: ConfirmKind = ConfirmKind::AccessRequest;
    const PAGE: &'static str = routes::MFA_PAGE;
    const CEREMONY: &'static str = "mfa";

    fn load(ca: &Ca, id: &str, now: i64) -> Result<Self, ServiceError> {
        ca.load_request(id, now)
    }
    fn header(&self) -> Header<'_> {
        Header::new(
            &self.id,
            self.user.as_str(),
            &self.secret_hash,
            self.expires_at,
        )
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
            self.user.as_str(),
            self.host.as_str(),
            self.account.as_str(),
            &self.key_fingerprint,
        )
    }
    fn context(&self, _: &Ca, _: i64) -> Result<(), ServiceError> {
        Ok(())
    }
    fn binding(&self, (): &()) -> String {
        sha256_hex(&[
            "jit-ssh-mfa-v1",
            &self.id,
            &self.key_fingerprint,
            self.host.as_str(),
            self.account.as_str(),
        ])
    }
    fn host<'a>(&'a self, (): &'a ()) -> &'a str {
        self.host.as_str()
    }
    fn view(self, ca: &Ca, _: i64) -> Result<RequestSummary, ServiceError> {
        Ok(ca.summary_of(self))
    }
    fn public(r: RequestSummary) -> RequestSummary {
        summary::access_request(r)
    }
    /// Decides by policy, and issues if allowed (see `decide.rs`).
    fn touched(self, (): (), ca: &Ca, now: i64) -> Result<RequestSummary, ServiceError> {
        ca.decide_touched(self, now)
    }
}

/// An OpenSSH ed25519 public key line (the client makes ed25519 keys).
fn parse_public_key(line: &str) -> Result<PublicKey, ServiceError> {
    let bad = |why: &str| ServiceError::Invalid {
        code: code::INVALID_PUBLIC_KEY,
        message: format!("public_key: {why}"),
    };
    if line.len() > MAX_PUBLIC_KEY_LEN || line.contains(['\n', '\r', '\0']) {
        return Err(bad("expected one OpenSSH public key line"));
    }
    let key =
        PublicKey::from_openssh(line.trim()).map_err(|_| bad("not an OpenSSH public key line"))?;
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(bad("only ssh-ed25519 keys are certified"));
    }
    Ok(key)
}
