//! The WebAuthn assertion every confirmation uses (access requests,
//! revocations): started for one user's credentials, stored single-use
//! under a key with a digest of what it confirms, checked with user
//! verification required, signature counter kept.

use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use super::{now_unix, Ca, ServiceError};
use crate::store::Ceremony;

/// How long the browser has between start and finish.
const CEREMONY_TTL: i64 = 300;

impl Ca {
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
    pub(crate) fn check_assertion(
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
