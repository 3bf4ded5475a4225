//! The WebAuthn assertion every confirmation uses (access requests,
//! revocations, sign-ins, approvers' decisions): started for one user's
//! credentials, stored single-use under a key with a digest of what it
//! confirms, checked with user verification required, signature counter
//! kept, and a failed check recorded as `mfa_failed`.

use std::fmt::Debug;

use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_audit::{Actor, Event};

use super::{now_unix, step_of, Ca, ServiceError};
use crate::store::Ceremony;

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
    ) -> Result<RequestChallengeResponse, ServiceError> {
        self.limit_ceremony(key)?;
        waiting?;
        self.start_assertion(key, user, binding)
    }

    /// Takes the ceremony stored under `key` (single use), within the
    /// resource's ceremony budget: a refused finish leaves it in place.
    pub(crate) fn take_touch(&self, key: &str) -> Result<Option<Ceremony>, ServiceError> {
        self.limit_ceremony(key)?;
        Ok(self.store.take_ceremony(key)?)
    }

    /// Checks `user`'s touch confirming `id` (on `host`, empty when none)
    /// against a ceremony already taken from the store (the touch sent from
    /// `client`); a failed check is
    /// recorded as `mfa_failed` and refused. A verified touch counts
    /// against `user`'s own budget (only their key can spend it).
    pub(crate) fn check_touch(
        &self,
        ceremony: Option<Ceremony>,
        user: &str,
        (id, host): (&str, &str),
        binding: &str,
        credential: &PublicKeyCredential,
        client: std::net::SocketAddr,
    ) -> Result<(), ServiceError> {
        let Err(why) = self.check_assertion(ceremony, user, binding, credential)? else {
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
    /// stored under `key`, bound to `binding`.
    pub(crate) fn start_assertion(
        &self,
        key: &str,
        user: &str,
        binding: String,
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
                expires_at: now_unix() + CEREMONY_TTL,
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
        if now_unix() > expires_at {
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
        let mut creds = self.store.credentials(user)?;
        if creds
            .iter_mut()
            .any(|c| c.update_credential(&result).unwrap_or(false))
        {
            // The counter only helps spot cloned authenticators: sled's
            // background flush persists it, off the issuance path.
            self.store.put_credentials(user, &creds, false)?;
        }
        Ok(Ok(()))
    }
}
