//! Sign-in for reading and deciding: a user asks for a session, confirms
//! it with their own WebAuthn touch on the sign-in page, and then holds a
//! bearer token (`ID.SECRET`) for a short while. Only the secret's hash is
//! stored; the roles are fixed when the session is confirmed.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_audit::{Actor, Event};
use jit_ssh_proto::api::{
    CreateSession, RequestCreated, RequestStatus, SessionState, SessionStatus,
};
use jit_ssh_proto::routes;

use super::assertion::awaiting_touch;
use super::{
    is_id, now_unix, random_id, random_token, rfc3339, secret_matches, sha256_hex, step_of, Ca,
    ServiceError,
};
use crate::names::UserName;
use crate::policy::Role;
use crate::store::Session;

fn ceremony_key(id: &str) -> String {
    format!("session:{id}")
}

fn waiting(s: &Session) -> Result<(), ServiceError> {
    awaiting_touch("sign-in", s.status, s.status == SessionStatus::PendingMfa)
}

fn binding(s: &Session) -> String {
    sha256_hex(&["jit-ssh-session-v1", &s.id, &s.user])
}

/// Who a valid session token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub user: String,
    pub roles: BTreeSet<Role>,
}

impl SignedIn {
    /// May read every audit record (not only their own).
    pub fn reads_all_audit(&self) -> bool {
        [Role::Auditor, Role::Security, Role::Admin]
            .iter()
            .any(|r| self.roles.contains(r))
    }
}

impl Ca {
    pub fn create_session(
        &self,
        body: CreateSession,
        client: SocketAddr,
    ) -> Result<RequestCreated, ServiceError> {
        self.limit_address(client)?;
        let user = UserName::parse(&body.user).map_err(ServiceError::invalid)?;
        if self.store.credentials(user.as_str())?.is_empty() {
            return Err(ServiceError::NotEnrolled(user.to_string()));
        }
        let secret = random_token();
        let s = Session {
            id: random_id(),
            user: user.to_string(),
            status: SessionStatus::PendingMfa,
            expires_at: now_unix()
                + i64::try_from(self.config.limits.request_ttl.as_secs()).unwrap_or(300),
            secret_hash: sha256_hex(&[&secret]),
            roles: vec![],
        };
        self.store.put_session(&s)?;
        Ok(RequestCreated {
            match_code: crate::match_code::sign_in(&s.id, &s.user),
            mfa_url: self
                .config
                .url(&routes::fill(routes::SIGNIN_PAGE, "id", &s.id)),
            id: s.id,
            status: RequestStatus::PendingMfa,
            expires_at: rfc3339(s.expires_at),
            secret,
        })
    }

    /// The session, marked expired once its time is up.
    fn load_session(&self, id: &str) -> Result<Session, ServiceError> {
        if !is_id(id) {
            return Err(ServiceError::NotFound("session"));
        }
        let s = self
            .store
            .session(id)?
            .ok_or(ServiceError::NotFound("session"))?;
        if s.status == SessionStatus::Expired || now_unix() < s.expires_at {
            return Ok(s);
        }
        let mut expired = s.clone();
        expired.status = SessionStatus::Expired;
        self.store.swap_session(&s, &expired)?;
        Ok(expired)
    }

    fn session_view(s: Session) -> SessionState {
        SessionState {
            id: s.id,
            user: s.user,
            status: s.status,
            roles: s.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            expires_at: rfc3339(s.expires_at),
        }
    }

    /// The requester's view (needs the secret).
    pub fn session_state(&self, id: &str, secret: &str) -> Result<SessionState, ServiceError> {
        let s = self.load_session(id)?;
        if !secret_matches(secret, &s.secret_hash) {
            return Err(ServiceError::Unauthorized);
        }
        Ok(Self::session_view(s))
    }

    /// What the sign-in page shows. Nothing secret.
    pub fn session_summary(&self, id: &str) -> Result<SessionState, ServiceError> {
        self.load_session(id).map(Self::session_view)
    }

    pub fn session_mfa_start(
        &self,
        id: &str,
        client: SocketAddr,
    ) -> Result<RequestChallengeResponse, ServiceError> {
        self.limit_address(client)?;
        let s = self.load_session(id)?;
        self.start_touch(&ceremony_key(id), &s.user, waiting(&s), binding(&s))
    }

    pub fn session_mfa_finish(
        &self,
        id: &str,
        credential: &PublicKeyCredential,
        client: SocketAddr,
    ) -> Result<SessionState, ServiceError> {
        self.limit_address(client)?;
        let ceremony = self.take_touch(&ceremony_key(id))?;
        let s = self.load_session(id)?;
        self.check_touch(
            ceremony,
            &s.user,
            (&s.id, ""),
            &binding(&s),
            credential,
            client,
        )?;
        waiting(&s)?;
        let actor = Actor::User {
            name: s.user.clone(),
        };
        let roles: Vec<Role> = self.roles_of(&s.user)?.into_iter().collect();
        let mut active = s.clone();
        active.status = SessionStatus::Active;
        active.roles = roles;
        active.expires_at =
            now_unix() + i64::try_from(self.config.limits.session_ttl.as_secs()).unwrap_or(900);
        let view = Self::session_view(active.clone());
        // Recorded before the token works: who could read what is auditable.
        self.audit(
            actor,
            Event::SignedIn(step_of(&s.id, &s.user, "", &view.roles.join(","))),
        )?;
        if !self.store.swap_session(&s, &active)? {
            return Err(ServiceError::WrongState(
                "the sign-in changed while being confirmed".into(),
            ));
        }
        Ok(view)
    }

    /// Checks a bearer token `ID.SECRET` of an active session.
    pub fn authenticate(&self, token: &str) -> Result<SignedIn, ServiceError> {
        let (id, secret) = token.split_once('.').ok_or(ServiceError::Unauthorized)?;
        let s = self
            .load_session(id)
            .map_err(|_| ServiceError::Unauthorized)?;
        if !secret_matches(secret, &s.secret_hash) || s.status != SessionStatus::Active {
            return Err(ServiceError::Unauthorized);
        }
        if self.store.is_blocked(&s.user)? {
            return Err(ServiceError::UserBlocked(s.user));
        }
        Ok(SignedIn {
            user: s.user,
            roles: s.roles.into_iter().collect(),
        })
    }
}
