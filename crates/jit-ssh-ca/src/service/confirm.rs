//! One confirmation core. Access requests, revocations, approvers'
//! decisions and sign-ins are all "something a named user confirms with
//! their own WebAuthn touch on its page": each says what it is in one
//! [`Confirmable`] impl, and the ceremony (budgets, single-use state bound
//! to a digest, the "still waiting" check, the secret, the public summary
//! with its kind and match code) is written once here. A fifth kind is
//! one more impl and one line in `http/confirm.rs`'s callers.
//!
//! Until the touch verifies, the caller is unauthenticated: everything
//! before it counts against their address and the resource, never
//! against the user they name.
//!
//! The assertion itself (below; enrollment links use its single-use
//! take as well): started for one user's credentials, stored single-use
//! under a key with a digest of what it confirms, checked with user
//! verification required, signature counter kept, and a failed check
//! recorded as `mfa_failed`.

pub(crate) mod summary;

use std::fmt::Debug;
use std::net::SocketAddr;

use serde::Serialize;
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_audit::{Actor, Event};
use jit_ssh_proto::api::{ConfirmKind, Confirmation, RequestCreated as Created, RequestStatus};
use jit_ssh_proto::routes;

use super::{random_token, rfc3339, secret_matches, sha256_hex, step_of, Ca, ServiceError};
use crate::store::Ceremony;

/// Something its user confirms with a WebAuthn touch on its page.
pub trait Confirmable: Sized + Send + 'static {
    /// What its page reads and what the touch answers.
    type View: Serialize + Send + 'static;
    /// What the touch needs besides the item (an approver's decision: the
    /// request it decides), read before the touch is checked.
    type Context;
    /// The one kind its page and summary are about.
    const KIND: ConfirmKind;
    /// Its page (`/mfa/{id}`…), the link its creator is given.
    const PAGE: &'static str;
    /// Prefix of its ceremony key: the stored WebAuthn state and the
    /// per-resource budget are keyed `PREFIX:ID`.
    const CEREMONY: &'static str;
    /// Whether touches on this kind are applied one at a time (two last
    /// approvals must not both issue).
    const EXCLUSIVE: bool = false;

    /// Loads it (marking it expired if its time is up at `now`).
    fn load(ca: &Ca, id: &str, now: i64) -> Result<Self, ServiceError>;
    fn header(&self) -> Header<'_>;
    /// `Ok` while it still waits for its touch.
    fn waiting(&self) -> Result<(), ServiceError>;
    /// The code its creator was given (see [`crate::match_code`]).
    fn match_code(&self) -> String;
    fn context(&self, ca: &Ca, now: i64) -> Result<Self::Context, ServiceError>;
    /// What the touch approves: a digest of everything it binds.
    fn binding(&self, cx: &Self::Context) -> String;
    /// The host named in audit records about it (none by default).
    fn host<'a>(&'a self, _: &'a Self::Context) -> &'a str {
        ""
    }
    /// The whole view (its creator's, or the toucher's after the touch).
    fn view(self, ca: &Ca, now: i64) -> Result<Self::View, ServiceError>;
    /// What someone holding only the link may see (see [`summary`]).
    fn public(view: Self::View) -> Self::View;
    /// What a verified touch does at `now`; its answer.
    fn touched(self, cx: Self::Context, ca: &Ca, now: i64) -> Result<Self::View, ServiceError>;
}

/// What every confirmable thing has.
pub struct Header<'a> {
    pub id: &'a str,
    /// Who may touch: only this user's credentials are allowed.
    pub user: &'a str,
    /// SHA-256 of the secret its creator was given.
    pub secret_hash: &'a str,
    /// Unix seconds: until when it waits for its touch.
    pub expires_at: i64,
}

impl<'a> Header<'a> {
    pub fn new(id: &'a str, user: &'a str, secret_hash: &'a str, expires_at: i64) -> Self {
        Header {
            id,
            user,
            secret_hash,
            expires_at,
        }
    }
}

fn ceremony_key<C: Confirmable>(id: &str) -> String {
    format!("{}:{id}", C::CEREMONY)
}

/// A new secret for a creator, and the hash that is stored.
pub(super) fn new_secret() -> (String, String) {
    let secret = random_token();
    let hash = sha256_hex(&[&secret]);
    (secret, hash)
}

impl Ca {
    /// The answer to creating `item`: its link, match code and secret.
    pub(super) fn created<C: Confirmable>(&self, item: &C, secret: String) -> Created {
        let h = item.header();
        Created {
            match_code: item.match_code(),
            mfa_url: self.config.url(&routes::fill(C::PAGE, "id", h.id)),
            id: h.id.to_owned(),
            status: RequestStatus::PendingMfa,
            expires_at: rfc3339(h.expires_at),
            secret,
        }
    }

    /// When something created now stops waiting for its touch.
    pub(super) fn pending_until(&self, now: i64) -> i64 {
        now + i64::try_from(self.config.limits.request_ttl.as_secs()).unwrap_or(300)
    }

    /// Item `id` at `now`, if `secret` is the one its creator was given.
    pub(super) fn authorized<C: Confirmable>(
        &self,
        id: &str,
        secret: &str,
        now: i64,
    ) -> Result<C, ServiceError> {
        let item = C::load(self, id, now)?;
        if !secret_matches(secret, item.header().secret_hash) {
            return Err(ServiceError::Unauthorized);
        }
        Ok(item)
    }

    /// The creator's view (needs the secret).
    pub fn confirmable_state<C: Confirmable>(
        &self,
        id: &str,
        secret: &str,
    ) -> Result<C::View, ServiceError> {
        let now = self.now();
        self.authorized::<C>(id, secret, now)?.view(self, now)
    }

    /// What its page shows to whoever holds the link: nothing secret.
    pub fn confirmation<C: Confirmable>(
        &self,
        id: &str,
    ) -> Result<Confirmation<C::View>, ServiceError> {
        let now = self.now();
        let item = C::load(self, id, now)?;
        let match_code = item.match_code();
        Ok(Confirmation {
            kind: C::KIND,
            match_code,
            item: C::public(item.view(self, now)?),
        })
    }

    /// Starts the touch for item `id`, allowing only its user's credentials.
    pub fn confirm_start<C: Confirmable>(
        &self,
        id: &str,
        client: SocketAddr,
    ) -> Result<RequestChallengeResponse, ServiceError> {
        self.limit_address(client)?;
        let now = self.now();
        let item = C::load(self, id, now)?;
        let cx = item.context(self, now)?;
        let binding = item.binding(&cx);
        let user = item.header().user;
        self.start_touch(&ceremony_key::<C>(id), user, item.waiting(), binding, now)
    }

    /// Checks the touch, then does what it confirms; the answer is the
    /// whole view (the toucher is its owner).
    pub fn confirm_finish<C: Confirmable>(
        &self,
        id: &str,
        credential: &PublicKeyCredential,
        client: SocketAddr,
    ) -> Result<Confirmation<C::View>, ServiceError> {
        self.limit_address(client)?;
        // Single use: the state is gone before the assertion is looked at.
        let ceremony = self.take_touch(&ceremony_key::<C>(id))?;
        let now = self.now();
        let item = C::load(self, id, now)?;
        let _one = match C::EXCLUSIVE {
            true => Some(
                self.deciding
                    .lock()
                    .map_err(|_| ServiceError::Internal("decision lock".into()))?,
            ),
            false => None,
        };
        let cx = item.context(self, now)?;
        // The ceremony first: a replay is an MFA failure, and recorded so.
        let h = item.header();
        self.check_touch(
            ceremony,
            h.user,
            (h.id, item.host(&cx)),
            &item.binding(&cx),
            credential,
            (client, now),
        )?;
        item.waiting()?;
        let match_code = item.match_code();
        Ok(Confirmation {
            kind: C::KIND,
            match_code,
            item: item.touched(cx, self, now)?,
        })
    }
}

/// `Ok` when a confirmation (`what`, e.g. "request") still waits for its
/// touch, else the error saying what it is instead.
pub(crate) fn awaiting_touch(
    what: &str,
    status: impl Debug,
    waiting: bool,
) -> Result<(), ServiceError> {
    if waiting {
        return Ok(());
    }
    Err(ServiceError::WrongState(format!(
        "{what} is {status:?}, not waiting for MFA"
    )))
}

/// How long the browser has between start and finish.
const CEREMONY_TTL: i64 = 300;

impl Ca {
    /// Starts `user`'s touch for a confirmation, within the ceremony
    /// budget of the resource (`key`), if `waiting` says it still waits
    /// for one.
    pub(crate) fn start_touch(
        &self,
        key: &str,
        user: &str,
        waiting: Result<(), ServiceError>,
        binding: String,
        now: i64,
    ) -> Result<RequestChallengeResponse, ServiceError> {
        self.limit_ceremony(key)?;
        waiting?;
        self.start_assertion(key, user, binding, now)
    }

    /// Takes the ceremony stored under `key` (single use), within the
    /// resource's ceremony budget: a refused finish leaves it in place.
    pub(crate) fn take_touch(&self, key: &str) -> Result<Option<Ceremony>, ServiceError> {
        self.limit_ceremony(key)?;
        Ok(self.store.take_ceremony(key)?)
    }

    /// Checks `user`'s touch confirming `id` (on `host`, empty when none)
    /// against a ceremony already taken from the store (the touch sent from
    /// `client` at `now`); a failed check is
    /// recorded as `mfa_failed` and refused. A verified touch counts
    /// against `user`'s own budget (only their key can spend it).
    pub(crate) fn check_touch(
        &self,
        ceremony: Option<Ceremony>,
        user: &str,
        (id, host): (&str, &str),
        binding: &str,
        credential: &PublicKeyCredential,
        (client, now): (std::net::SocketAddr, i64),
    ) -> Result<(), ServiceError> {
        let Err(why) = self.check_assertion(ceremony, user, binding, credential, now)? else {
            return self.limit_confirmed(user);
        };
        tracing::warn!(id, user, reason = %why, "WebAuthn check failed");
        // A failed touch proves nothing: the name is only claimed.
        self.audit(
            Actor::claim(client.ip(), user),
            Event::MfaFailed(step_of(id, user, host, &why)),
        )?;
        Err(ServiceError::MfaFailed(why))
    }

    /// Starts an assertion allowing only `user`'s credentials; its state is
    /// stored under `key`, bound to `binding`, valid for a while from `now`.
    pub(crate) fn start_assertion(
        &self,
        key: &str,
        user: &str,
        binding: String,
        now: i64,
    ) -> Result<RequestChallengeResponse, ServiceError> {
        let creds = self.store.credentials(user)?;
        if creds.is_empty() {
            return Err(ServiceError::NotEnrolled(user.to_owned()));
        }
        let (challenge, state) = self
            .webauthn
            .start_passkey_authentication(&creds)
            .map_err(|e| ServiceError::Internal(format!("starting WebAuthn: {e}")))?;
        self.store.put_ceremony(
            key,
            &Ceremony::Mfa {
                state,
                binding,
                expires_at: now + CEREMONY_TTL,
            },
        )?;
        Ok(challenge)
    }

    /// Checks `credential` against a ceremony already taken from the store
    /// (taking it first is what makes it single-use). `Ok(Err(why))` is a
    /// failed check for the caller to record; `Err` is the CA failing.
    fn check_assertion(
        &self,
        ceremony: Option<Ceremony>,
        user: &str,
        binding: &str,
        credential: &PublicKeyCredential,
        now: i64,
    ) -> Result<Result<(), String>, ServiceError> {
        let Some(Ceremony::Mfa {
            state,
            binding: bound,
            expires_at,
        }) = ceremony
        else {
            return Ok(Err(
                "no WebAuthn ceremony in progress for this (already used, or never started)".into(),
            ));
        };
        if now > expires_at {
            return Ok(Err("the WebAuthn ceremony expired; start again".into()));
        }
        if bound != binding {
            return Ok(Err(
                "the ceremony does not belong to this confirmation".into()
            ));
        }
        let result = match self
            .webauthn
            .finish_passkey_authentication(credential, &state)
        {
            Ok(r) if r.user_verified() => r,
            Ok(_) => {
                return Ok(Err(
                    "user verification (PIN or biometric) is required".into()
                ))
            }
            Err(e) => return Ok(Err(format!("assertion refused: {e}"))),
        };
        // Applied to the list as stored at the swap (another sign-in or
        // an enrollment may come first): a counter only ever rises. It
        // only helps spot cloned authenticators: not durable, off the
        // issuance path.
        let counted = self.change_credentials(user, false, |creds| {
            let mut fresh = creds.to_vec();
            fresh
                .iter_mut()
                .any(|c| c.update_credential(&result).unwrap_or(false))
                .then_some(fresh)
        })?;
        if counted.is_none() {
            return Err(ServiceError::Busy(format!(
                "{user}'s credentials changed too often at once; nothing was confirmed, touch again"
            )));
        }
        Ok(Ok(()))
    }
}
