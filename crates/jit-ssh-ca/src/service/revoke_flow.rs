//! A revocation as a confirmed action: a `security` user asks, confirms
//! with their own WebAuthn touch bound to that revocation, and only then
//! does the CA revoke. Refusals (role, nothing to revoke) are audited.

use std::net::SocketAddr;

use jit_ssh_audit::{Actor, Enrollment, Event};
use jit_ssh_proto::api::{
    ConfirmKind, CreateRevocation, RequestCreated, RevocationState, RevocationStatus, RevokeTarget,
};
use jit_ssh_proto::routes;

use super::confirm::{awaiting_touch, new_secret, summary, Confirmable, Header};
use super::{is_id, random_id, rfc3339, sha256_hex, step_of, Ca, ServiceError};
use crate::names::{GrantId, Reason, UserName};
use crate::policy::Role;
use crate::store::PendingRevocation;

/// What a caller who has not touched their key is told when refused.
pub(super) const NOT_ALLOWED: &str = "not allowed; nothing was created";

/// Asked for by a `security` user, confirmed on `/revoke/{id}` with their
/// own touch, which revokes (the role is checked again after the touch).
impl Confirmable for PendingRevocation {
    type View = RevocationState;
    type Context = ();
    const KIND: ConfirmKind = ConfirmKind::Revocation;
    const PAGE: &'static str = routes::REVOKE_PAGE;
    const CEREMONY: &'static str = "revoke";

    fn load(ca: &Ca, id: &str, now: i64) -> Result<Self, ServiceError> {
        ca.load_revocation(id, now)
    }
    fn header(&self) -> Header<'_> {
        Header::new(&self.id, &self.user, &self.secret_hash, self.expires_at)
    }
    fn waiting(&self) -> Result<(), ServiceError> {
        awaiting_touch(
            "revocation",
            self.status,
            self.status == RevocationStatus::PendingMfa,
        )
    }
    fn match_code(&self) -> String {
        crate::match_code::revocation(&self.id, &self.user, &self.target)
    }
    fn context(&self, _: &Ca, _: i64) -> Result<(), ServiceError> {
        Ok(())
    }
    fn binding(&self, (): &()) -> String {
        sha256_hex(&[
            "jit-ssh-revoke-v1",
            &self.id,
            &self.user,
            &self.target.to_string(),
            &self.reason,
        ])
    }
    /// With whose certificate it takes away, for the page.
    fn view(self, ca: &Ca, _: i64) -> Result<RevocationState, ServiceError> {
        Ok(RevocationState {
            certificate: ca.certificate_owner(&self.target)?,
            id: self.id,
            user: self.user,
            target: self.target,
            reason: self.reason,
            status: self.status,
            expires_at: rfc3339(self.expires_at),
            outcome: self.outcome,
            serials: self.serials,
            krl_version: self.krl_version,
        })
    }
    fn public(r: RevocationState) -> RevocationState {
        summary::revocation(r)
    }
    /// Checks the role, and revokes.
    fn touched(self, (): (), ca: &Ca, now: i64) -> Result<RevocationState, ServiceError> {
        let done = ca.revoke_touched(&self, now)?;
        done.view(ca, now)
    }
}

impl Ca {
    /// The roles `user` holds: from the config, plus those invites
    /// granted while the user is still in the config's `[[users]]` (an
    /// invite needs the entry; removing it ends what the invite gave).
    pub fn roles_of(&self, user: &str) -> Result<std::collections::BTreeSet<Role>, ServiceError> {
        let mut roles = self.config.policy.roles(user);
        if self.config.policy.users.contains_key(user) {
            roles.extend(self.store.invited_roles(user)?);
        }
        Ok(roles)
    }

    /// Refuses (and audits) a revocation by someone without the security
    /// role. `client` is set before the touch: the name is then only a
    /// claim, and the caller is told no more than "not allowed" (which
    /// roles a user holds is not for strangers to learn).
    fn require_security(
        &self,
        r: &PendingRevocation,
        client: Option<SocketAddr>,
    ) -> Result<(), ServiceError> {
        // A revoked officer keeps their role in the config, not the power:
        // else they (or their key's thief) could block everyone else.
        let blocked = self.store.is_blocked(&r.user)?;
        if !blocked && self.roles_of(&r.user)?.contains(&Role::Security) {
            return Ok(());
        }
        let why = if blocked {
            format!(
                "{}'s own access was revoked by security; they may not revoke until an admin re-enables them",
                r.user
            )
        } else {
            format!(
                "{} does not hold the security role; only security may revoke",
                r.user
            )
        };
        let (actor, told) = match client {
            Some(c) => (Actor::claim(c.ip(), &r.user), NOT_ALLOWED.to_owned()),
            None => (
                Actor::User {
                    name: r.user.clone(),
                },
                why.clone(),
            ),
        };
        self.audit(
            actor,
            Event::RevocationRefused(step_of(&r.id, &r.user, "", &why)),
        )?;
        Err(ServiceError::Forbidden(told))
    }

    pub fn create_revocation(
        &self,
        body: CreateRevocation,
        client: SocketAddr,
    ) -> Result<RequestCreated, ServiceError> {
        self.limit_address(client)?;
        let user = UserName::parse(&body.user).map_err(ServiceError::invalid)?;
        let reason = Reason::parse(&body.reason).map_err(ServiceError::invalid)?;
        match &body.target {
            RevokeTarget::Serial(0) => {
                return Err(ServiceError::invalid("serial 0 is never issued"))
            }
            RevokeTarget::Grant(g) => drop(GrantId::parse(g).map_err(ServiceError::invalid)?),
            RevokeTarget::User(u) => drop(UserName::parse(u).map_err(ServiceError::invalid)?),
            RevokeTarget::KeyId(k)
                if !k.starts_with("jit-ssh:")
                    || k.len() > 256
                    || k.chars().any(char::is_control) =>
            {
                return Err(ServiceError::invalid(
                    "key_id must be a jit-ssh key id (jit-ssh:USER:GRANT:SERIAL)",
                ))
            }
            _ => {}
        }
        let standing = self.store.may_request(user.as_str())?;
        if !standing.enrolled {
            return Err(ServiceError::NotEnrolled(user.to_string()));
        }
        // As for their own requests (checked again after the touch).
        if standing.blocked {
            return Err(ServiceError::UserBlocked(user.to_string()));
        }
        let now = self.now();
        let (secret, secret_hash) = new_secret();
        let r = PendingRevocation {
            id: random_id(),
            user: user.to_string(),
            target: body.target,
            reason: reason.to_string(),
            created_at: now,
            expires_at: self.pending_until(now),
            status: RevocationStatus::PendingMfa,
            outcome: None,
            secret_hash,
            serials: vec![],
            krl_version: None,
        };
        // Say no early to someone who may not revoke (checked again after
        // the touch, which is what counts).
        self.require_security(&r, Some(client))?;
        self.store.put_revocation(&r)?;
        Ok(self.created(&r, secret))
    }

    pub(super) fn load_revocation(
        &self,
        id: &str,
        now: i64,
    ) -> Result<PendingRevocation, ServiceError> {
        if !is_id(id) {
            return Err(ServiceError::NotFound("revocation"));
        }
        let r = self
            .store
            .revocation(id)?
            .ok_or(ServiceError::NotFound("revocation"))?;
        if r.status != RevocationStatus::PendingMfa || now < r.expires_at {
            return Ok(r);
        }
        let mut expired = r.clone();
        expired.status = RevocationStatus::Expired;
        expired.outcome = Some("not confirmed in time; nothing was revoked".into());
        if self.store.swap_revocation(&r, &expired)? {
            return Ok(expired);
        }
        self.store
            .revocation(id)?
            .ok_or(ServiceError::NotFound("revocation"))
    }

    /// What a verified touch on revocation `r` does: checks the role,
    /// revokes as of `now`, and stores the outcome.
    fn revoke_touched(
        &self,
        r: &PendingRevocation,
        now: i64,
    ) -> Result<PendingRevocation, ServiceError> {
        let actor = Actor::User {
            name: r.user.clone(),
        };
        self.require_security(r, None)?;
        let mut done = r.clone();
        match self.revoke_at(&r.target, &r.reason, actor.clone(), now) {
            Ok(revoked) => {
                done.status = RevocationStatus::Revoked;
                done.outcome = Some(format!(
                    "{} certificate(s) revoked; KRL version {}",
                    revoked.serials.len(),
                    revoked.krl_version
                ));
                done.serials = revoked.serials;
                done.krl_version = Some(revoked.krl_version);
            }
            Err(ServiceError::WrongState(why)) => {
                self.audit(
                    actor.clone(),
                    Event::RevocationRefused(step_of(&r.id, &r.user, "", &why)),
                )?;
                done.status = RevocationStatus::Refused;
                done.outcome = Some(why);
            }
            Err(e) => return Err(e),
        }
        if let RevokeTarget::User(u) = &r.target {
            // Blocked even when nothing was unexpired: no new certificates.
            self.store.block_user(u)?;
            let note = format!(" {u} can get no new certificates until an admin runs `jit-ssh-ca enable-user {u}`.");
            if done.status == RevocationStatus::Refused {
                done.status = RevocationStatus::Revoked;
            }
            done.outcome = Some(done.outcome.unwrap_or_default() + &note);
        }
        if !self.store.swap_revocation(r, &done)? {
            return Err(ServiceError::WrongState(
                "the revocation changed while being confirmed".into(),
            ));
        }
        if done.status == RevocationStatus::Revoked {
            self.notifier
                .send(crate::notify::texts::about_revocation(&done));
        }
        Ok(done)
    }

    /// Lifts the block a user revocation put on `user`.
    pub fn enable_user(&self, user: &str, by: Actor) -> Result<bool, ServiceError> {
        let user = UserName::parse(user).map_err(ServiceError::invalid)?;
        let was = self.store.is_blocked(user.as_str())?;
        if was {
            self.audit(
                by,
                Event::UserEnabled(Enrollment {
                    user: user.to_string(),
                    detail: "re-enabled after a user revocation".into(),
                }),
            )?;
            self.store.unblock_user(user.as_str())?;
        }
        Ok(was)
    }
}
