//! Sign-in for reading and deciding: a user asks for a session, confirms
//! it with their own WebAuthn touch on the sign-in page, and then holds a
//! bearer token (`ID.SECRET`) for a short while. Only the secret's hash is
//! stored. The roles its `signed_in` record names are fixed when the
//! session is confirmed; each use of the token holds only those the user
//! still holds then (a config change, a restart, another replica).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use jit_ssh_audit::{Actor, Event};
use jit_ssh_proto::api::{ConfirmKind, CreateSession, RequestCreated, SessionState, SessionStatus};
use jit_ssh_proto::routes;

use super::confirm::{awaiting_touch, new_secret, summary, Confirmable, Header};
use super::{is_id, random_id, rfc3339, secret_matches, sha256_hex, step_of, Ca, ServiceError};
use crate::names::UserName;
use crate::policy::Role;
use crate::store::Session;

/// A sign-in, confirmed on `/signin/{id}` by its user's touch, which
/// makes the session active with the roles the user holds then.
impl Confirmable for Session {
    type View = SessionState;
    type Context = ();
    const KIND: ConfirmKind = ConfirmKind::SignIn;
    const PAGE: &'static str = routes::SIGNIN_PAGE;
    const CEREMONY: &'static str = "session";

    fn load(ca: &Ca, id: &str, now: i64) -> Result<Self, ServiceError> {
        ca.load_session(id, now)
    }
    fn header(&self) -> Header<'_> {
        Header::new(&self.id, &self.user, &self.secret_hash, self.expires_at)
    }
    fn waiting(&self) -> Result<(), ServiceError> {
        awaiting_touch(
            "sign-in",
            self.status,
            self.status == SessionStatus::PendingMfa,
        )
    }
    fn match_code(&self) -> String {
        crate::match_code::sign_in(&self.id, &self.user)
    }
    fn context(&self, _: &Ca, _: i64) -> Result<(), ServiceError> {
        Ok(())
    }
    fn binding(&self, (): &()) -> String {
        sha256_hex(&["jit-ssh-session-v1", &self.id, &self.user])
    }
    fn view(mut self, ca: &Ca, _: i64) -> Result<SessionState, ServiceError> {
        self.roles = ca.roles_still_held(&self)?.into_iter().collect();
        Ok(session_view(self))
    }
    fn public(s: SessionState) -> SessionState {
        summary::sign_in(s)
    }
    fn touched(self, (): (), ca: &Ca, now: i64) -> Result<SessionState, ServiceError> {
        ca.sign_in_touched(self, now)
    }
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
        let (secret, secret_hash) = new_secret();
        let s = Session {
            id: random_id(),
            user: user.to_string(),
            status: SessionStatus::PendingMfa,
            expires_at: self.pending_until(self.now()),
            secret_hash,
            roles: vec![],
        };
        self.store.put_session(&s)?;
        Ok(self.created(&s, secret))
    }

    /// The session, marked expired if its time is up at `now`.
    pub(super) fn load_session(&self, id: &str, now: i64) -> Result<Session, ServiceError> {
        if !is_id(id) {
            return Err(ServiceError::NotFound("session"));
        }
        let s = self
            .store
            .session(id)?
            .ok_or(ServiceError::NotFound("session"))?;
        if s.status == SessionStatus::Expired || now < s.expires_at {
            return Ok(s);
        }
        let mut expired = s.clone();
        expired.status = SessionStatus::Expired;
        self.store.swap_session(&s, &expired)?;
        Ok(expired)
    }

    /// What a verified touch on sign-in `s` does: the session becomes
    /// active with the roles `s.user` holds now, for a while from `now`.
    fn sign_in_touched(&self, s: Session, now: i64) -> Result<SessionState, ServiceError> {
        let actor = Actor::User {
            name: s.user.clone(),
        };
        let roles: Vec<Role> = self.roles_of(&s.user)?.into_iter().collect();
        let mut active = s.clone();
        active.status = SessionStatus::Active;
        active.roles = roles;
        active.expires_at =
            now + i64::try_from(self.config.limits.session_ttl.as_secs()).unwrap_or(900);
        let view = session_view(active.clone());
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

    /// Ends sign-in `id` at once, for whoever holds its token `ID.SECRET`
    /// (`jit-ssh logout`): every copy of the token stops working. Ending
    /// one that already ended changes nothing. A blocked user may still
    /// end theirs.
    pub fn sign_out(&self, id: &str, token: &str) -> Result<SessionState, ServiceError> {
        let (token_id, secret) = token.split_once('.').ok_or(ServiceError::Unauthorized)?;
        if token_id != id {
            return Err(ServiceError::Unauthorized);
        }
        let now = self.now();
        let s = self
            .load_session(id, now)
            .map_err(|_| ServiceError::Unauthorized)?;
        if !secret_matches(secret, &s.secret_hash) {
            return Err(ServiceError::Unauthorized);
        }
        if s.status == SessionStatus::Expired {
            return Ok(session_view(s));
        }
        let mut ended = s.clone();
        ended.status = SessionStatus::Expired;
        ended.expires_at = now.min(s.expires_at);
        // Recorded before the token stops working, as `signed_in` is
        // before it starts: a failed record leaves the sign-in as it was.
        self.audit(
            Actor::User {
                name: s.user.clone(),
            },
            Event::SignedOut(step_of(&s.id, &s.user, "", "ended by its holder")),
        )?;
        if !self.store.swap_session(&s, &ended)? {
            // It changed meanwhile (expired, or ended by another copy):
            // done only if it no longer works.
            let now_s = self.load_session(id, self.now())?;
            if now_s.status != SessionStatus::Expired {
                return Err(ServiceError::WrongState(
                    "the sign-in changed while being ended; try again".into(),
                ));
            }
            return Ok(session_view(now_s));
        }
        Ok(session_view(ended))
    }

    /// Checks a bearer token `ID.SECRET` of an active session.
    pub fn authenticate(&self, token: &str) -> Result<SignedIn, ServiceError> {
        let (id, secret) = token.split_once('.').ok_or(ServiceError::Unauthorized)?;
        let s = self
            .load_session(id, self.now())
            .map_err(|_| ServiceError::Unauthorized)?;
        if !secret_matches(secret, &s.secret_hash) || s.status != SessionStatus::Active {
            return Err(ServiceError::Unauthorized);
        }
        if self.store.is_blocked(&s.user)? {
            return Err(ServiceError::UserBlocked(s.user));
        }
        let roles = self.roles_still_held(&s)?;
        Ok(SignedIn {
            user: s.user,
            roles,
        })
    }

    /// The roles sign-in `s` carries now: those its `signed_in` record
    /// names that `s.user` still holds in this CA's config (and invites).
    /// A role taken away (the config edited and the CA restarted, or a
    /// replica already running the new config) ends at the next request,
    /// not when the token expires. A role given since is not added: the
    /// token never does more than its record says; a new sign-in gets it.
    fn roles_still_held(&self, s: &Session) -> Result<BTreeSet<Role>, ServiceError> {
        let now = self.roles_of(&s.user)?;
        Ok(s.roles
            .iter()
            .copied()
            .filter(|r| now.contains(r))
            .collect())
    }
}
