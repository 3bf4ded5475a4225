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

pub(crate) mod summary;

use std::net::SocketAddr;

use serde::Serialize;
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_proto::api::{ConfirmKind, Confirmation, RequestCreated as Created, RequestStatus};
use jit_ssh_proto::routes;

use super::{random_token, rfc3339, secret_matches, sha256_hex, Ca, ServiceError};

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

    /// Loads it (marking it expired once its time is up).
    fn load(ca: &Ca, id: &str) -> Result<Self, ServiceError>;
    fn id(&self) -> &str;
    /// Who may touch: only this user's credentials are allowed.
    fn user(&self) -> &str;
    fn secret_hash(&self) -> &str;
    fn expires_at(&self) -> i64;
    /// `Ok` while it still waits for its touch.
    fn waiting(&self) -> Result<(), ServiceError>;
    /// The code its creator was given (see [`crate::match_code`]).
    fn match_code(&self) -> String;
    fn context(&self, ca: &Ca) -> Result<Self::Context, ServiceError>;
    /// What the touch approves: a digest of everything it binds.
    fn binding(&self, cx: &Self::Context) -> String;
    /// The host named in audit records about it (empty when none).
    fn host<'a>(&'a self, cx: &'a Self::Context) -> &'a str;
    /// The whole view (its creator's, or the toucher's after the touch).
    fn view(self, ca: &Ca) -> Result<Self::View, ServiceError>;
    /// What someone holding only the link may see (see [`summary`]).
    fn public(view: Self::View) -> Self::View;
    /// What a verified touch does; its answer.
    fn touched(self, cx: Self::Context, ca: &Ca) -> Result<Self::View, ServiceError>;
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
        Created {
            match_code: item.match_code(),
            mfa_url: self.config.url(&routes::fill(C::PAGE, "id", item.id())),
            id: item.id().to_owned(),
            status: RequestStatus::PendingMfa,
            expires_at: rfc3339(item.expires_at()),
            secret,
        }
    }

    /// When something created now stops waiting for its touch.
    pub(super) fn pending_until(&self, now: i64) -> i64 {
        now + i64::try_from(self.config.limits.request_ttl.as_secs()).unwrap_or(300)
    }

    /// Item `id`, if `secret` is the one its creator was given.
    pub(super) fn authorized<C: Confirmable>(
        &self,
        id: &str,
        secret: &str,
    ) -> Result<C, ServiceError> {
        let item = C::load(self, id)?;
        if !secret_matches(secret, item.secret_hash()) {
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
        self.authorized::<C>(id, secret)?.view(self)
    }

    /// What its page shows to whoever holds the link: nothing secret.
    pub fn confirmation<C: Confirmable>(
        &self,
        id: &str,
    ) -> Result<Confirmation<C::View>, ServiceError> {
        let item = C::load(self, id)?;
        let match_code = item.match_code();
        Ok(Confirmation {
            kind: C::KIND,
            match_code,
            item: C::public(item.view(self)?),
        })
    }

    /// Starts the touch for item `id`, allowing only its user's credentials.
    pub fn confirm_start<C: Confirmable>(
        &self,
        id: &str,
        client: SocketAddr,
    ) -> Result<RequestChallengeResponse, ServiceError> {
        self.limit_address(client)?;
        let item = C::load(self, id)?;
        let cx = item.context(self)?;
        let binding = item.binding(&cx);
        self.start_touch(&ceremony_key::<C>(id), item.user(), item.waiting(), binding)
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
        let item = C::load(self, id)?;
        let _one = match C::EXCLUSIVE {
            true => Some(
                self.deciding
                    .lock()
                    .map_err(|_| ServiceError::Internal("decision lock".into()))?,
            ),
            false => None,
        };
        let cx = item.context(self)?;
        // The ceremony first: a replay is an MFA failure, and recorded so.
        self.check_touch(
            ceremony,
            item.user(),
            (item.id(), item.host(&cx)),
            &item.binding(&cx),
            credential,
            client,
        )?;
        item.waiting()?;
        let match_code = item.match_code();
        Ok(Confirmation {
            kind: C::KIND,
            match_code,
            item: item.touched(cx, self)?,
        })
    }
}
