//! [`HostStore`] on PostgreSQL: tables for tokens, challenges, hosts and
//! revoked host keys.

use super::commit::Commit;
use super::{dec, enc, PgStore};
use crate::store::hosts::{HostChallenge, HostRecord, HostStore, HostToken};
use crate::store::StoreError;

impl HostStore for PgStore {
    fn put_host_token(&self, id: &str, token: &HostToken) -> Result<(), StoreError> {
        let body = enc(token, "host token")?;
        self.put(
            "host_tokens",
            (id, &body, token.expires_at),
            Commit::Durable,
        )
    }

    fn host_token(&self, id: &str) -> Result<Option<HostToken>, StoreError> {
        self.get("host_tokens", id, "host token")
    }

    fn use_host_token(&self, id: &str, now: i64) -> Result<Option<HostToken>, StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            // The row lock serialises two enrollments spending one token.
            let Some(row) = tx.query_opt(
                "SELECT body FROM host_tokens WHERE key = $1 FOR UPDATE",
                &[&id],
            )?
            else {
                return Ok(None);
            };
            let token: HostToken = dec(&row.get::<_, String>(0), "host token")?;
            if token.expires_at <= now || token.uses_left <= 1 {
                tx.execute("DELETE FROM host_tokens WHERE key = $1", &[&id])?;
            } else {
                let next = HostToken {
                    uses_left: token.uses_left - 1,
                    ..token.clone()
                };
                tx.execute(
                    "UPDATE host_tokens SET body = $2 WHERE key = $1",
                    &[&id, &enc(&next, "host token")?],
                )?;
            }
            tx.commit()?;
            Ok((token.expires_at > now && token.uses_left > 0).then_some(token))
        })
    }

    fn put_host_challenge(&self, id: &str, c: &HostChallenge) -> Result<(), StoreError> {
        let body = enc(c, "host challenge")?;
        self.put(
            "host_challenges",
            (id, &body, c.expires_at),
            Commit::Durable,
        )
    }

    fn take_host_challenge(&self, id: &str) -> Result<Option<HostChallenge>, StoreError> {
        self.take("host_challenges", (id, "host challenge"), Commit::Durable)
    }

    fn put_host(&self, host: &HostRecord) -> Result<(), StoreError> {
        let body = enc(host, "host")?;
        self.put("hosts", (&host.name, &body, 0), Commit::Durable)
    }

    fn host(&self, name: &str) -> Result<Option<HostRecord>, StoreError> {
        self.get("hosts", name, "host")
    }

    fn swap_host(&self, old: &HostRecord, new: &HostRecord) -> Result<bool, StoreError> {
        if old.name != new.name {
            return Ok(false);
        }
        // Compared decoded, as the embedded store does: a record written
        // by an older version encodes differently but is still `old`.
        let new_body = enc(new, "host")?;
        self.with(|c| {
            let mut tx = c.transaction()?;
            let Some(row) = tx.query_opt(
                "SELECT body FROM hosts WHERE key = $1 FOR UPDATE",
                &[&old.name],
            )?
            else {
                return Ok(false);
            };
            if dec::<HostRecord>(&row.get::<_, String>(0), "host")? != *old {
                return Ok(false);
            }
            tx.execute(
                "UPDATE hosts SET body = $2 WHERE key = $1",
                &[&old.name, &new_body],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn prune_host_challenges(&self, cutoff: i64) -> Result<usize, StoreError> {
        self.prune_table("host_challenges", cutoff)
    }

    fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        let rows = self.with(|c| Ok(c.query("SELECT body FROM hosts ORDER BY key", &[])?))?;
        rows.iter()
            .map(|r| dec(&r.get::<_, String>(0), "host"))
            .collect()
    }

    fn remove_host(&self, name: &str) -> Result<Option<HostRecord>, StoreError> {
        self.take("hosts", (name, "host"), Commit::Durable)
    }

    fn revoke_host_key(&self, fingerprint: &str, key: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO revoked_host_keys (fingerprint, key_line) VALUES ($1, $2)
                 ON CONFLICT (fingerprint) DO UPDATE SET key_line = EXCLUDED.key_line",
                &[&fingerprint, &key],
            )?;
            Ok(())
        })
    }

    fn host_key_revoked(&self, fingerprint: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT 1 FROM revoked_host_keys WHERE fingerprint = $1",
                &[&fingerprint],
            )?
            .is_some())
        })
    }

    fn revoked_host_keys(&self) -> Result<Vec<String>, StoreError> {
        let rows = self.with(|c| {
            Ok(c.query(
                "SELECT key_line FROM revoked_host_keys ORDER BY fingerprint",
                &[],
            )?)
        })?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
