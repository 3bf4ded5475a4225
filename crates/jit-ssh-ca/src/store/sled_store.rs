//! [`Store`] on sled 0.34: one tree per kind, values as JSON.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use webauthn_rs::prelude::Passkey;

use super::{
    AccessRequest, Ceremony, Invite, PendingDecision, PendingRevocation, RevokedSerial, Session,
    Store, StoreError,
};
use crate::policy::Role;

pub struct SledStore {
    invites: sled::Tree,
    credentials: sled::Tree,
    roles: sled::Tree,
    requests: sled::Tree,
    ceremonies: sled::Tree,
    revoked: sled::Tree,
    revocations: sled::Tree,
    blocked: sled::Tree,
    sessions: sled::Tree,
    decisions: sled::Tree,
    meta: sled::Tree,
    db: sled::Db,
}

const KRL_VERSION: &[u8] = b"krl_version";

impl SledStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = sled::open(path)?;
        Ok(Self {
            invites: db.open_tree("invites")?,
            credentials: db.open_tree("credentials")?,
            roles: db.open_tree("roles")?,
            requests: db.open_tree("requests")?,
            ceremonies: db.open_tree("ceremonies")?,
            revoked: db.open_tree("revoked")?,
            revocations: db.open_tree("revocations")?,
            blocked: db.open_tree("blocked")?,
            sessions: db.open_tree("sessions")?,
            decisions: db.open_tree("decisions")?,
            meta: db.open_tree("meta")?,
            db,
        })
    }
}

fn enc<T: Serialize>(v: &T, what: &'static str) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|source| StoreError::Corrupt { what, source })
}

fn dec<T: DeserializeOwned>(
    v: Option<sled::IVec>,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    v.map(|b| serde_json::from_slice(&b).map_err(|source| StoreError::Corrupt { what, source }))
        .transpose()
}

/// Replaces the JSON stored under `key` with `new` only if it is still
/// exactly `old` (compare-and-swap): what every state change goes through.
fn swap<T: Serialize>(
    tree: &sled::Tree,
    key: &str,
    old: &T,
    new: &T,
    what: &'static str,
) -> Result<bool, StoreError> {
    let swapped = tree.compare_and_swap(key, Some(enc(old, what)?), Some(enc(new, what)?))?;
    Ok(swapped.is_ok())
}

impl SledStore {
    fn bump_version(&self) -> Result<u64, StoreError> {
        let next = self
            .meta
            .update_and_fetch(KRL_VERSION, |old| {
                let v = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(1, u64::from_be_bytes);
                Some(v.saturating_add(1).to_be_bytes().to_vec())
            })?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(1, u64::from_be_bytes);
        Ok(next)
    }
}

impl Store for SledStore {
    fn revoke_serials(&self, serials: &[RevokedSerial]) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        for r in serials {
            batch.insert(
                &r.serial.to_be_bytes()[..],
                &r.valid_before.to_be_bytes()[..],
            );
        }
        self.revoked.apply_batch(batch)?;
        let version = self.bump_version()?;
        // A revocation must survive a crash: the KRL is rebuilt from this.
        self.db.flush()?;
        Ok(version)
    }

    fn revoked_serials(&self) -> Result<Vec<RevokedSerial>, StoreError> {
        let mut out = Vec::with_capacity(self.revoked.len());
        for item in self.revoked.iter() {
            let (k, v) = item?;
            if let (Ok(k), Ok(v)) = (
                <[u8; 8]>::try_from(k.as_ref()),
                <[u8; 8]>::try_from(v.as_ref()),
            ) {
                out.push(RevokedSerial {
                    serial: u64::from_be_bytes(k),
                    valid_before: u64::from_be_bytes(v),
                });
            }
        }
        Ok(out)
    }

    fn remove_revoked(&self, serials: &[u64]) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        for s in serials {
            batch.remove(&s.to_be_bytes()[..]);
        }
        self.revoked.apply_batch(batch)?;
        self.bump_version()
    }

    fn krl_version(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(KRL_VERSION)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(1, u64::from_be_bytes))
    }

    fn put_invite(&self, token_hash: &str, invite: &Invite) -> Result<(), StoreError> {
        self.invites.insert(token_hash, enc(invite, "invite")?)?;
        Ok(())
    }

    fn invite(&self, token_hash: &str) -> Result<Option<Invite>, StoreError> {
        dec(self.invites.get(token_hash)?, "invite")
    }

    fn take_invite(&self, token_hash: &str) -> Result<Option<Invite>, StoreError> {
        dec(self.invites.remove(token_hash)?, "invite")
    }

    fn credentials(&self, user: &str) -> Result<Vec<Passkey>, StoreError> {
        Ok(dec(self.credentials.get(user)?, "credentials")?.unwrap_or_default())
    }

    fn put_credentials(
        &self,
        user: &str,
        creds: &[Passkey],
        durable: bool,
    ) -> Result<(), StoreError> {
        self.credentials.insert(user, enc(&creds, "credentials")?)?;
        if durable {
            self.credentials.flush()?;
        }
        Ok(())
    }

    fn invited_roles(&self, user: &str) -> Result<Vec<Role>, StoreError> {
        Ok(dec(self.roles.get(user)?, "roles")?.unwrap_or_default())
    }

    fn add_invited_roles(&self, user: &str, roles: &[Role]) -> Result<(), StoreError> {
        let mut all = self.invited_roles(user)?;
        all.extend_from_slice(roles);
        all.sort();
        all.dedup();
        self.roles.insert(user, enc(&all, "roles")?)?;
        Ok(())
    }

    fn put_request(&self, req: &AccessRequest) -> Result<(), StoreError> {
        self.requests.insert(&req.id, enc(req, "request")?)?;
        Ok(())
    }

    fn request(&self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        dec(self.requests.get(id)?, "request")
    }

    fn swap_request(&self, old: &AccessRequest, new: &AccessRequest) -> Result<bool, StoreError> {
        swap(&self.requests, &old.id, old, new, "request")
    }

    fn put_revocation(&self, r: &PendingRevocation) -> Result<(), StoreError> {
        self.revocations.insert(&r.id, enc(r, "revocation")?)?;
        Ok(())
    }

    fn revocation(&self, id: &str) -> Result<Option<PendingRevocation>, StoreError> {
        dec(self.revocations.get(id)?, "revocation")
    }

    fn swap_revocation(
        &self,
        old: &PendingRevocation,
        new: &PendingRevocation,
    ) -> Result<bool, StoreError> {
        swap(&self.revocations, &old.id, old, new, "revocation")
    }

    fn pending_approval(&self) -> Result<Vec<AccessRequest>, StoreError> {
        // Requests are few and short-lived; a scan is fine.
        let mut out = Vec::new();
        for item in self.requests.iter() {
            let (_, v) = item?;
            if let Some(r) = dec::<AccessRequest>(Some(v), "request")? {
                if r.status == jit_ssh_proto::api::RequestStatus::PendingApproval {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    fn put_decision(&self, d: &PendingDecision) -> Result<(), StoreError> {
        self.decisions.insert(&d.id, enc(d, "decision")?)?;
        Ok(())
    }

    fn decision(&self, id: &str) -> Result<Option<PendingDecision>, StoreError> {
        dec(self.decisions.get(id)?, "decision")
    }

    fn swap_decision(
        &self,
        old: &PendingDecision,
        new: &PendingDecision,
    ) -> Result<bool, StoreError> {
        swap(&self.decisions, &old.id, old, new, "decision")
    }

    fn put_session(&self, s: &Session) -> Result<(), StoreError> {
        self.sessions.insert(&s.id, enc(s, "session")?)?;
        Ok(())
    }

    fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        dec(self.sessions.get(id)?, "session")
    }

    fn swap_session(&self, old: &Session, new: &Session) -> Result<bool, StoreError> {
        swap(&self.sessions, &old.id, old, new, "session")
    }

    fn block_user(&self, user: &str) -> Result<(), StoreError> {
        self.blocked.insert(user, &[1u8][..])?;
        self.blocked.flush()?;
        Ok(())
    }

    fn unblock_user(&self, user: &str) -> Result<bool, StoreError> {
        let was = self.blocked.remove(user)?.is_some();
        self.blocked.flush()?;
        Ok(was)
    }

    fn is_blocked(&self, user: &str) -> Result<bool, StoreError> {
        Ok(self.blocked.contains_key(user)?)
    }

    fn put_ceremony(&self, key: &str, c: &Ceremony) -> Result<(), StoreError> {
        self.ceremonies.insert(key, enc(c, "ceremony")?)?;
        Ok(())
    }

    fn take_ceremony(&self, key: &str) -> Result<Option<Ceremony>, StoreError> {
        dec(self.ceremonies.remove(key)?, "ceremony")
    }
}
