//! [`HostStore`] on sled: one tree each for tokens, challenges and hosts.

use super::hosts::{HostChallenge, HostRecord, HostStore, HostToken};
use super::sled_store::{dec, enc, SledStore};
use super::StoreError;

impl SledStore {
    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db().open_tree(name)?)
    }
}

impl HostStore for SledStore {
    fn put_host_token(&self, id: &str, token: &HostToken) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.tree("host_tokens")?
            .insert(id, enc(token, "host token")?)?;
        Ok(())
    }

    fn host_token(&self, id: &str) -> Result<Option<HostToken>, StoreError> {
        dec(self.tree("host_tokens")?.get(id)?, "host token")
    }

    fn use_host_token(&self, id: &str, now: i64) -> Result<Option<HostToken>, StoreError> {
        let _writing = self.writing();
        let tree = self.tree("host_tokens")?;
        loop {
            let Some(raw) = tree.get(id)? else {
                return Ok(None);
            };
            let token: HostToken = dec(Some(raw.clone()), "host token")?.ok_or(StoreError::Gone)?;
            if token.expires_at <= now || token.uses_left == 0 {
                tree.remove(id)?;
                return Ok(None);
            }
            let next = HostToken {
                uses_left: token.uses_left - 1,
                ..token.clone()
            };
            let new = if next.uses_left == 0 {
                None
            } else {
                Some(enc(&next, "host token")?)
            };
            if tree.compare_and_swap(id, Some(raw), new)?.is_ok() {
                tree.flush()?;
                return Ok(Some(token));
            }
        }
    }

    fn put_host_challenge(&self, id: &str, c: &HostChallenge) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.tree("host_challenges")?
            .insert(id, enc(c, "host challenge")?)?;
        Ok(())
    }

    fn take_host_challenge(&self, id: &str) -> Result<Option<HostChallenge>, StoreError> {
        let _writing = self.writing();
        dec(self.tree("host_challenges")?.remove(id)?, "host challenge")
    }

    fn put_host(&self, host: &HostRecord) -> Result<(), StoreError> {
        let _writing = self.writing();
        let tree = self.tree("hosts")?;
        tree.insert(&host.name, enc(host, "host")?)?;
        tree.flush()?;
        Ok(())
    }

    fn host(&self, name: &str) -> Result<Option<HostRecord>, StoreError> {
        dec(self.tree("hosts")?.get(name)?, "host")
    }

    fn swap_host(&self, old: &HostRecord, new: &HostRecord) -> Result<bool, StoreError> {
        let _writing = self.writing();
        // Compared decoded: a record stored by an older version encodes
        // differently (fields added since) but is still `old`.
        let tree = self.tree("hosts")?;
        let Some(raw) = tree.get(&old.name)? else {
            return Ok(false);
        };
        if dec::<HostRecord>(Some(raw.clone()), "host")?.as_ref() != Some(old) {
            return Ok(false);
        }
        let swapped = tree
            .compare_and_swap(&old.name, Some(raw), Some(enc(new, "host")?))?
            .is_ok();
        tree.flush()?;
        Ok(swapped)
    }

    fn prune_host_challenges(&self, cutoff: i64) -> Result<usize, StoreError> {
        let _writing = self.writing();
        let gone = Self::prune_tree(
            &self.tree("host_challenges")?,
            "host challenge",
            cutoff,
            |c: &HostChallenge| c.expires_at,
        )?;
        Ok(gone.len())
    }

    fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        self.tree("hosts")?
            .iter()
            .map(|item| {
                let (_, v) = item?;
                dec(Some(v), "host")?.ok_or(StoreError::Gone)
            })
            .collect()
    }

    fn remove_host(&self, name: &str) -> Result<Option<HostRecord>, StoreError> {
        let _writing = self.writing();
        let tree = self.tree("hosts")?;
        let gone = dec(tree.remove(name)?, "host")?;
        tree.flush()?;
        Ok(gone)
    }

    fn revoke_host_key(&self, fingerprint: &str, key: &str) -> Result<(), StoreError> {
        let _writing = self.writing();
        let tree = self.tree("revoked_host_keys")?;
        tree.insert(fingerprint, key.as_bytes())?;
        tree.flush()?;
        Ok(())
    }

    fn host_key_revoked(&self, fingerprint: &str) -> Result<bool, StoreError> {
        Ok(self.tree("revoked_host_keys")?.contains_key(fingerprint)?)
    }

    fn revoked_host_keys(&self) -> Result<Vec<String>, StoreError> {
        self.tree("revoked_host_keys")?
            .iter()
            .map(|item| Ok(String::from_utf8_lossy(&item?.1).into_owned()))
            .collect()
    }
}
