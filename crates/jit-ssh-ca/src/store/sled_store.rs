//! [`Store`] on sled 0.34: one tree per kind, values as JSON.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use webauthn_rs::prelude::Passkey;

use super::{AccessRequest, Ceremony, Invite, Store, StoreError};
use crate::policy::Role;

pub struct SledStore {
    invites: sled::Tree,
    credentials: sled::Tree,
    roles: sled::Tree,
    requests: sled::Tree,
    ceremonies: sled::Tree,
}

impl SledStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = sled::open(path)?;
        Ok(Self {
            invites: db.open_tree("invites")?,
            credentials: db.open_tree("credentials")?,
            roles: db.open_tree("roles")?,
            requests: db.open_tree("requests")?,
            ceremonies: db.open_tree("ceremonies")?,
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

impl Store for SledStore {
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
        let swapped = self.requests.compare_and_swap(
            &old.id,
            Some(enc(old, "request")?),
            Some(enc(new, "request")?),
        )?;
        Ok(swapped.is_ok())
    }

    fn put_ceremony(&self, key: &str, c: &Ceremony) -> Result<(), StoreError> {
        self.ceremonies.insert(key, enc(c, "ceremony")?)?;
        Ok(())
    }

    fn take_ceremony(&self, key: &str) -> Result<Option<Ceremony>, StoreError> {
        dec(self.ceremonies.remove(key)?, "ceremony")
    }
}
