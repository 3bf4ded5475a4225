//! Enrollment: one-time invite links, and registering a passkey or
//! security key (user verification required) with one.

use std::net::SocketAddr;

use webauthn_rs::prelude::{CreationChallengeResponse, RegisterPublicKeyCredential, Uuid};

use jit_ssh_audit::{Actor, Enrollment, Event};
use jit_ssh_proto::api::{Enrolled, InviteSummary};
use jit_ssh_proto::routes;

use super::{random_token, rfc3339, sha256_hex, Ca, ServiceError};
use crate::names::UserName;
use crate::policy::Role;
use crate::store::{Ceremony, Invite};

const CEREMONY_TTL: i64 = 600;

/// A made invite: the link to give the user, and when it stops working.
#[derive(Debug, Clone)]
pub struct InviteLink {
    pub user: String,
    pub url: String,
    pub expires_at: String,
}

fn token_hash(token: &str) -> String {
    sha256_hex(&["jit-ssh-invite", token])
}

/// A stable WebAuthn user handle per user name.
fn user_handle(user: &str) -> Uuid {
    let digest = sha256_hex(&["jit-ssh-user", user]);
    let mut b = [0u8; 16];
    let _ = hex::decode_to_slice(&digest[..32], &mut b);
    Uuid::from_bytes(b)
}

impl Ca {
    /// Makes a one-time enrollment link for a user the policy knows.
    pub fn invite(
        &self,
        user: &str,
        roles: &[Role],
        by: Actor,
    ) -> Result<InviteLink, ServiceError> {
        let user = UserName::parse(user).map_err(ServiceError::invalid)?;
        if !self.config.policy.users.contains_key(user.as_str()) {
            return Err(ServiceError::invalid(format!(
                "user {user} is not in the CA's configuration; add a [[users]] entry first"
            )));
        }
        let token = random_token();
        let expires_at =
            self.now() + i64::try_from(self.config.limits.invite_ttl.as_secs()).unwrap_or(86_400);
        let invite = Invite {
            user: user.to_string(),
            roles: roles.to_vec(),
            expires_at,
        };
        let roles_text = roles
            .iter()
            .map(|r| format!("{r:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(",");
        self.audit(
            by,
            Event::InviteCreated(Enrollment {
                user: user.to_string(),
                detail: roles_text,
            }),
        )?;
        self.store.put_invite(&token_hash(&token), &invite)?;
        Ok(InviteLink {
            user: user.to_string(),
            url: self
                .config
                .url(&routes::fill(routes::ENROLL_PAGE, "token", &token)),
            expires_at: rfc3339(expires_at),
        })
    }

    fn valid_invite(&self, token: &str, now: i64) -> Result<Invite, ServiceError> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ServiceError::InviteInvalid);
        }
        match self.store.invite(&token_hash(token))? {
            Some(i) if now < i.expires_at => Ok(i),
            _ => Err(ServiceError::InviteInvalid),
        }
    }

    pub fn invite_summary(&self, token: &str) -> Result<InviteSummary, ServiceError> {
        let i = self.valid_invite(token, self.now())?;
        Ok(InviteSummary {
            user: i.user,
            expires_at: rfc3339(i.expires_at),
        })
    }

    pub fn enroll_start(
        &self,
        token: &str,
        client: SocketAddr,
    ) -> Result<CreationChallengeResponse, ServiceError> {
        self.limit_address(client)?;
        self.limit_ceremony(&format!("enroll:{}", token_hash(token)))?;
        let now = self.now();
        let invite = self.valid_invite(token, now)?;
        let existing: Vec<_> = self
            .store
            .credentials(&invite.user)?
            .iter()
            .map(|c| c.cred_id().clone())
            .collect();
        let (challenge, state) = self
            .webauthn
            .start_passkey_registration(
                user_handle(&invite.user),
                &invite.user,
                &invite.user,
                Some(existing),
            )
            .map_err(|e| ServiceError::Internal(format!("starting WebAuthn registration: {e}")))?;
        self.store.put_ceremony(
            &format!("enroll:{}", token_hash(token)),
            &Ceremony::Enroll {
                state,
                expires_at: now + CEREMONY_TTL,
            },
        )?;
        Ok(challenge)
    }

    pub fn enroll_finish(
        &self,
        token: &str,
        reg: &RegisterPublicKeyCredential,
        client: SocketAddr,
    ) -> Result<Enrolled, ServiceError> {
        self.limit_address(client)?;
        let hash = token_hash(token);
        let ceremony = self.take_touch(&format!("enroll:{hash}"))?;
        let now = self.now();
        let Some(Ceremony::Enroll { state, expires_at }) = ceremony else {
            return Err(ServiceError::MfaFailed(
                "no registration in progress for this link (already used, or never started)".into(),
            ));
        };
        if now > expires_at {
            return Err(ServiceError::MfaFailed(
                "the registration expired; start again".into(),
            ));
        }
        self.valid_invite(token, now)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(reg, &state)
            .map_err(|e| ServiceError::MfaFailed(format!("registration refused: {e}")))?;
        // The invite is spent only now, and only once, even if two
        // registrations raced to this point.
        let invite = match self.store.take_invite(&hash)? {
            Some(i) if now < i.expires_at => i,
            _ => return Err(ServiceError::InviteInvalid),
        };
        // The record first, once: no credential without it, whatever
        // the swap below takes. Refused, nothing was stored: the link is
        // given back, as it was (this ceremony stays spent).
        if let Err(e) = self.audit(
            Actor::User {
                name: invite.user.clone(),
            },
            Event::UserEnrolled(Enrollment {
                user: invite.user.clone(),
                detail: format!("credential {}", hex::encode(passkey.cred_id())),
            }),
        ) {
            self.give_back_invite(&hash, &invite);
            return Err(e);
        }
        // A store error here leaves the link spent: whether the swap
        // landed is not known, and a link is good for one passkey.
        let stored = self.change_credentials(&invite.user, true, |creds| {
            if creds.iter().any(|c| c.cred_id() == passkey.cred_id()) {
                return None;
            }
            let mut all = creds.to_vec();
            all.push(passkey.clone());
            Some(all)
        })?;
        let Some(creds) = stored else {
            // Every swap lost to another change of the same list: nothing
            // was stored, so the user may simply register again.
            self.store.put_invite(&hash, &invite)?;
            return Err(ServiceError::Busy(format!(
                "{}'s credentials changed too often at once; this passkey was not stored. The link still works: register again",
                invite.user
            )));
        };
        self.store.add_invited_roles(&invite.user, &invite.roles)?;
        tracing::info!(user = %invite.user, credentials = creds.len(), "credential enrolled");
        Ok(Enrolled {
            user: invite.user,
            credentials: creds.len(),
        })
    }

    /// Puts back an invite taken for an enrollment that stored nothing;
    /// if even that fails, the link is used up and the log says so.
    fn give_back_invite(&self, hash: &str, invite: &Invite) {
        if let Err(e) = self.store.put_invite(hash, invite) {
            tracing::error!(user = %invite.user, error = %e, "an enrollment link could not be given back after a failed enrollment; it is used up");
        }
    }

    /// Whether `user` has at least one credential.
    pub fn is_enrolled(&self, user: &str) -> Result<bool, ServiceError> {
        Ok(!self.store.credentials(user)?.is_empty())
    }
}
