//! What `jit-ssh-ca migrate --from` needs of the PostgreSQL store beyond
//! the [`Store`](crate::store::Store) trait: whether it holds anything yet
//! (it copies only into an empty database), and the KRL version carried
//! over as it was (hosts compare versions; it must not go back).

use super::PgStore;
use crate::store::StoreError;

/// Every table of state (0001_state.sql) and the audit chain's.
const TABLES: &[&str] = &[
    "invites",
    "credentials",
    "invited_roles",
    "requests",
    "revocations",
    "decisions",
    "sessions",
    "ceremonies",
    "blocked_users",
    "revoked_serials",
    "host_tokens",
    "host_challenges",
    "hosts",
    "revoked_host_keys",
    "audit_records",
];

impl PgStore {
    /// The first table that holds a row, if any does.
    pub fn first_non_empty_table(&self) -> Result<Option<&'static str>, StoreError> {
        for t in TABLES {
            let sql = format!("SELECT EXISTS (SELECT 1 FROM {t})");
            if self.with(|c| Ok(c.query_one(&sql, &[])?.get::<_, bool>(0)))? {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    /// Sets the KRL version (a copy keeps its source's).
    pub fn set_krl_version(&self, version: u64) -> Result<(), StoreError> {
        let v = i64::try_from(version).unwrap_or(i64::MAX);
        self.with(|c| {
            Ok(c.execute("UPDATE krl_version SET version = $1", &[&v])
                .map(drop)?)
        })
    }
}
