//! [`Store`] on PostgreSQL: one table per kind, each value the same JSON
//! the embedded store keeps (text, compared byte for byte by the
//! compare-and-swaps), with a few columns derived from it for pruning
//! and the pending-approval index. Every method is one statement or one
//! transaction, so several CA processes may share the database.
//!
//! The driver is rust-postgres's blocking client on an r2d2 pool: the
//! store traits are synchronous and called from `spawn_blocking`, so a
//! blocking client needs no bridge to an async runtime.

pub mod audit;
mod commit;
mod connect;
mod copy_in;
mod credentials;
mod hosts;
mod limits;
pub mod migrate;
mod notify;
mod prepared;

use serde::de::DeserializeOwned;
use serde::Serialize;
use webauthn_rs::prelude::Passkey;

pub use audit::PgAuditLog;
pub use connect::{check_files, ConnectError};

use commit::Commit;
use notify::Notify;

use super::stored_form_drift::same_value_in_another_form;
use super::{
    AccessRequest, Ceremony, Cutoffs, Invite, PendingDecision, PendingRevocation, Pruned,
    RevokedSerial, Session, Store, StoreError, StoredCredentials,
};
use crate::config::storage::PostgresConfig;
use crate::policy::Role;
use jit_ssh_proto::api::RequestStatus;

pub struct PgStore {
    /// Always `Some` until dropped.
    pool: Option<connect::Pool>,
    /// Makes the LISTEN connection `watch_requests` keeps.
    connector: connect::Connector,
    /// The LISTEN thread, stopped when the store is dropped.
    listener: std::sync::Mutex<Option<notify::Listener>>,
}

impl Drop for PgStore {
    /// Closing a blocking client blocks on its own runtime, which panics
    /// on an async worker (where the last `Arc<Ca>` may well be dropped,
    /// e.g. when `serve` returns): the pool is closed on a thread of its
    /// own, waited for.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Schema(#[from] migrate::SchemaError),
}

impl PgStore {
    /// Connects and checks that the schema is the one this binary knows;
    /// never changes it (that is `jit-ssh-ca migrate`).
    pub fn open(cfg: &PostgresConfig) -> Result<Self, OpenError> {
        let pool = connect::pool(cfg)?;
        pool.with(|c| migrate::check(c))?;
        Ok(Self {
            pool: Some(pool),
            connector: connect::connector(cfg)?,
            listener: std::sync::Mutex::new(None),
        })
    }

    /// Connects and brings the schema to this binary's version.
    pub fn migrate(cfg: &PostgresConfig) -> Result<migrate::Migrated, OpenError> {
        Ok(connect::pool(cfg)?.with(|c| migrate::migrate(c))?)
    }

    fn pool(&self) -> Result<&connect::Pool, StoreError> {
        self.pool.as_ref().ok_or(StoreError::Gone)
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut prepared::Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.pool()?.with(f)
    }

    fn put(
        &self,
        table: &str,
        (key, body, ends_at): (&str, &str, i64),
        commit: Commit,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {table} (key, body, ends_at)
             SELECT $1::text, $2::text, $3::bigint FROM {}
             ON CONFLICT (key) DO UPDATE SET body = EXCLUDED.body, ends_at = EXCLUDED.ends_at",
            commit::setting(4)
        );
        let deferred = commit.deferred();
        self.with(|c| {
            Ok(c.execute(&sql, &[&key, &body, &ends_at, &deferred])
                .map(drop)?)
        })
    }

    fn get<T: DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        what: &'static str,
    ) -> Result<Option<T>, StoreError> {
        let sql = format!("SELECT body FROM {table} WHERE key = $1");
        let row = self.with(|c| Ok(c.query_opt(&sql, &[&key])?))?;
        row.map(|r| dec(&r.get::<_, String>(0), what)).transpose()
    }

    /// Replaces the JSON under `key` with `new` only if it is still
    /// exactly `old`, as the embedded store's compare-and-swap does.
    fn swap<T: Serialize + DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        (old, new): (&T, &T),
        ends_at: i64,
        what: &'static str,
    ) -> Result<bool, StoreError> {
        let (old, new) = (enc(old, what)?, enc(new, what)?);
        let sql =
            format!("UPDATE {table} SET body = $3, ends_at = $4 WHERE key = $1 AND body = $2");
        self.swap_from::<T>(table, key, &old, |was| {
            self.with(|c| Ok(c.execute(&sql, &[&key, &was, &new, &ends_at])? == 1))
        })
    }

    /// Runs `from` (an update of `key` if its body is still the text
    /// given) with `was`, this version's form of the value read; after a
    /// miss, once more with what is stored if that is the same value in
    /// another form (written by another version, `stored_form_drift`).
    /// One more round trip, only after a miss.
    fn swap_from<T: Serialize + DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        was: &str,
        from: impl Fn(&str) -> Result<bool, StoreError>,
    ) -> Result<bool, StoreError> {
        if from(was)? {
            return Ok(true);
        }
        let sql = format!("SELECT body FROM {table} WHERE key = $1");
        let row = self.with(|c| Ok(c.query_opt(&sql, &[&key])?))?;
        match row.map(|r| r.get::<_, String>(0)) {
            Some(stored) if same_value_in_another_form::<T>(stored.as_bytes(), was.as_bytes()) => {
                from(&stored)
            }
            _ => Ok(false),
        }
    }

    /// Removes and returns: of two callers, one gets it.
    fn take<T: DeserializeOwned>(
        &self,
        table: &str,
        (key, what): (&str, &'static str),
        commit: Commit,
    ) -> Result<Option<T>, StoreError> {
        let sql = format!(
            "DELETE FROM {table} USING {} WHERE key = $1 RETURNING {table}.body",
            commit::setting(2)
        );
        let deferred = commit.deferred();
        let row = self.with(|c| Ok(c.query_opt(&sql, &[&key, &deferred])?))?;
        row.map(|r| dec(&r.get::<_, String>(0), what)).transpose()
    }

    fn prune_table(&self, table: &str, cutoff: i64) -> Result<usize, StoreError> {
        let sql = format!("DELETE FROM {table} WHERE ends_at < $1");
        let n = self.with(|c| Ok(c.execute(&sql, &[&cutoff])?))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn write_request(
        &self,
        sql: &str,
        old: Option<(&str, Notify)>,
        req: &AccessRequest,
        commit: Commit,
    ) -> Result<u64, StoreError> {
        let body = enc(req, "request")?;
        let pending = req.status == RequestStatus::PendingApproval;
        let never = req.never_confirmed();
        let (ends, expires) = (req.ends_at(), req.expires_at);
        let deferred = commit.deferred();
        self.with(|c| {
            Ok(match old {
                None => c.execute(
                    sql,
                    &[&req.id, &body, &ends, &expires, &never, &pending, &deferred],
                )?,
                Some((old, notify)) => c.execute(
                    sql,
                    &[
                        &req.id,
                        &body,
                        &ends,
                        &expires,
                        &never,
                        &pending,
                        &old,
                        &deferred,
                        &(notify == Notify::Replicas),
                    ],
                )?,
            })
        })
    }
}

pub(super) fn enc<T: Serialize>(v: &T, what: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|source| StoreError::Corrupt { what, source })
}

pub(super) fn dec<T: DeserializeOwned>(v: &str, what: &'static str) -> Result<T, StoreError> {
    serde_json::from_str(v).map_err(|source| StoreError::Corrupt { what, source })
}

/// A user's stored credentials (`body`), none when there is no row.
fn passkeys(body: Option<String>) -> Result<Vec<Passkey>, StoreError> {
    body.map(|b| dec(&b, "credentials"))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Serials are u64; PostgreSQL has no unsigned type: stored bit for bit.
fn serial_col(s: u64) -> i64 {
    i64::from_ne_bytes(s.to_ne_bytes())
}

fn serial_val(s: i64) -> u64 {
    u64::from_ne_bytes(s.to_ne_bytes())
}

fn bump_krl_version(tx: &mut postgres::Transaction<'_>) -> Result<u64, StoreError> {
    let v: i64 = tx
        .query_one(
            "UPDATE krl_version SET version = version + 1 RETURNING version",
            &[],
        )?
        .get(0);
    Ok(u64::try_from(v).unwrap_or(1))
}

impl Store for PgStore {
    fn revoke_serials(&self, serials: &[RevokedSerial]) -> Result<u64, StoreError> {
        // One row per serial (the last wins, as in the embedded store):
        // an upsert may not touch a row twice.
        let mut by_serial = std::collections::BTreeMap::new();
        for r in serials {
            by_serial.insert(serial_col(r.serial), serial_col(r.valid_before));
        }
        let (keys, valid): (Vec<i64>, Vec<i64>) = by_serial.into_iter().unzip();
        self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "INSERT INTO revoked_serials (serial, valid_before)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[])
                 ON CONFLICT (serial) DO UPDATE SET valid_before = EXCLUDED.valid_before",
                &[&keys, &valid],
            )?;
            let v = bump_krl_version(&mut tx)?;
            tx.commit()?;
            Ok(v)
        })
    }

    fn revoked_serials(&self) -> Result<Vec<RevokedSerial>, StoreError> {
        let rows = self.with(|c| {
            Ok(c.query(
                "SELECT serial, valid_before FROM revoked_serials ORDER BY serial",
                &[],
            )?)
        })?;
        Ok(rows
            .iter()
            .map(|r| RevokedSerial {
                serial: serial_val(r.get(0)),
                valid_before: serial_val(r.get(1)),
            })
            .collect())
    }

    fn remove_revoked(&self, serials: &[u64]) -> Result<u64, StoreError> {
        let keys: Vec<i64> = serials.iter().copied().map(serial_col).collect();
        self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "DELETE FROM revoked_serials WHERE serial = ANY($1)",
                &[&keys],
            )?;
            let v = bump_krl_version(&mut tx)?;
            tx.commit()?;
            Ok(v)
        })
    }

    fn krl_version(&self) -> Result<u64, StoreError> {
        let v: i64 =
            self.with(|c| Ok(c.query_one("SELECT version FROM krl_version", &[])?.get(0)))?;
        Ok(u64::try_from(v).unwrap_or(1))
    }

    fn put_invite(&self, token_hash: &str, invite: &Invite) -> Result<(), StoreError> {
        let body = enc(invite, "invite")?;
        self.put(
            "invites",
            (token_hash, &body, invite.ends_at()),
            Commit::Durable,
        )
    }

    fn invite(&self, token_hash: &str) -> Result<Option<Invite>, StoreError> {
        self.get("invites", token_hash, "invite")
    }

    fn take_invite(&self, token_hash: &str) -> Result<Option<Invite>, StoreError> {
        self.take("invites", (token_hash, "invite"), Commit::Durable)
    }

    fn stored_credentials(&self, user: &str) -> Result<StoredCredentials, StoreError> {
        let row = self.with(|c| {
            Ok(c.query_opt(
                "SELECT body FROM credentials WHERE user_name = $1",
                &[&user],
            )?)
        })?;
        StoredCredentials::decode(row.map(|r| r.get::<_, String>(0).into_bytes()))
    }

    fn swap_credentials(
        &self,
        user: &str,
        old: &StoredCredentials,
        new: &[Passkey],
        durable: bool,
    ) -> Result<bool, StoreError> {
        self.swap_user_credentials(user, (old, new), durable)
    }

    fn invited_roles(&self, user: &str) -> Result<Vec<Role>, StoreError> {
        let row = self.with(|c| {
            Ok(c.query_opt(
                "SELECT body FROM invited_roles WHERE user_name = $1",
                &[&user],
            )?)
        })?;
        row.map(|r| dec(&r.get::<_, String>(0), "roles"))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    fn add_invited_roles(&self, user: &str, roles: &[Role]) -> Result<(), StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            // The row lock makes two additions at once both count.
            tx.execute(
                "INSERT INTO invited_roles (user_name, body) VALUES ($1, '[]')
                 ON CONFLICT (user_name) DO NOTHING",
                &[&user],
            )?;
            let old: String = tx
                .query_one(
                    "SELECT body FROM invited_roles WHERE user_name = $1 FOR UPDATE",
                    &[&user],
                )?
                .get(0);
            let mut all: Vec<Role> = dec(&old, "roles")?;
            all.extend_from_slice(roles);
            all.sort();
            all.dedup();
            tx.execute(
                "UPDATE invited_roles SET body = $2 WHERE user_name = $1",
                &[&user, &enc(&all, "roles")?],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn watch_requests(&self, changed: super::RequestChanged) {
        let mut held = self.listener.lock().unwrap_or_else(|p| p.into_inner());
        *held = Some(notify::listen(self.connector.clone(), changed));
    }

    fn put_request(&self, req: &AccessRequest) -> Result<(), StoreError> {
        self.write_request(
            &format!(
                "INSERT INTO requests (key, body, ends_at, expires_at, never_confirmed, pending)
             SELECT $1::text, $2::text, $3::bigint, $4::bigint, $5::boolean, $6::boolean FROM {}
             ON CONFLICT (key) DO UPDATE SET body = EXCLUDED.body, ends_at = EXCLUDED.ends_at,
               expires_at = EXCLUDED.expires_at, never_confirmed = EXCLUDED.never_confirmed,
               pending = EXCLUDED.pending",
                commit::setting(7)
            ),
            None,
            req,
            // A new request: see `commit` for why it need not wait.
            Commit::Deferred,
        )
        .map(drop)
    }

    fn request(&self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        self.get("requests", id, "request")
    }

    fn swap_request(&self, old: &AccessRequest, new: &AccessRequest) -> Result<bool, StoreError> {
        if old.id != new.id {
            return Ok(false);
        }
        // A claim, or its release, changes nothing a long poll shows:
        // no replica is told (each notification wakes every replica's
        // listener, and a login makes one claim).
        let notify = if old.only_claim_differs(new) {
            Notify::Nobody
        } else {
            Notify::Replicas
        };
        let old = enc(old, "request")?;
        // The index column changes with the body, in one statement, which
        // also tells the other replicas' long polls (delivered on commit).
        let sql = format!(
            "WITH changed AS (
               UPDATE requests SET body = $2, ends_at = $3, expires_at = $4,
                 never_confirmed = $5, pending = $6
               FROM {}
               WHERE key = $1 AND body = $7 RETURNING requests.key)
             SELECT CASE WHEN $9::boolean THEN pg_notify('{}', key) END FROM changed",
            commit::setting(8),
            notify::REQUEST_CHANNEL
        );
        self.swap_from::<AccessRequest>("requests", &new.id, &old, |was| {
            let n = self.write_request(
                &sql,
                Some((was, notify)),
                new,
                commit::of_request_change(new),
            )?;
            Ok(n == 1)
        })
    }

    fn put_revocation(&self, r: &PendingRevocation) -> Result<(), StoreError> {
        let body = enc(r, "revocation")?;
        self.put("revocations", (&r.id, &body, r.ends_at()), Commit::Durable)
    }

    fn revocation(&self, id: &str) -> Result<Option<PendingRevocation>, StoreError> {
        self.get("revocations", id, "revocation")
    }

    fn swap_revocation(
        &self,
        old: &PendingRevocation,
        new: &PendingRevocation,
    ) -> Result<bool, StoreError> {
        if old.id != new.id {
            return Ok(false);
        }
        self.swap(
            "revocations",
            &old.id,
            (old, new),
            new.ends_at(),
            "revocation",
        )
    }

    fn pending_approval(&self) -> Result<Vec<AccessRequest>, StoreError> {
        let rows = self
            .with(|c| Ok(c.query("SELECT body FROM requests WHERE pending ORDER BY key", &[])?))?;
        rows.iter()
            .map(|r| dec(&r.get::<_, String>(0), "request"))
            .collect()
    }

    fn prune(&self, before: Cutoffs) -> Result<Pruned, StoreError> {
        // A never-confirmed request goes with the expired secrets; every
        // other one once it ended before the state cutoff.
        let requests = self.with(|c| {
            Ok(c.execute(
                "DELETE FROM requests
                 WHERE (never_confirmed AND expires_at < $1)
                    OR (NOT never_confirmed AND ends_at < $2)",
                &[&before.secrets, &before.state],
            )?)
        })?;
        Ok(Pruned {
            requests: usize::try_from(requests).unwrap_or(usize::MAX),
            revocations: self.prune_table("revocations", before.state)?,
            decisions: self.prune_table("decisions", before.state)?,
            sessions: self.prune_table("sessions", before.state)?,
            ceremonies: self.prune_table("ceremonies", before.secrets)?,
            invites: self.prune_table("invites", before.secrets)?,
            // Pruned through HostStore, by the service.
            host_challenges: 0,
        })
    }

    fn put_decision(&self, d: &PendingDecision) -> Result<(), StoreError> {
        let body = enc(d, "decision")?;
        self.put("decisions", (&d.id, &body, d.ends_at()), Commit::Durable)
    }

    fn decision(&self, id: &str) -> Result<Option<PendingDecision>, StoreError> {
        self.get("decisions", id, "decision")
    }

    fn swap_decision(
        &self,
        old: &PendingDecision,
        new: &PendingDecision,
    ) -> Result<bool, StoreError> {
        if old.id != new.id {
            return Ok(false);
        }
        self.swap("decisions", &old.id, (old, new), new.ends_at(), "decision")
    }

    fn put_session(&self, s: &Session) -> Result<(), StoreError> {
        let body = enc(s, "session")?;
        self.put("sessions", (&s.id, &body, s.ends_at()), Commit::Durable)
    }

    fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        self.get("sessions", id, "session")
    }

    fn swap_session(&self, old: &Session, new: &Session) -> Result<bool, StoreError> {
        if old.id != new.id {
            return Ok(false);
        }
        self.swap("sessions", &old.id, (old, new), new.ends_at(), "session")
    }

    fn block_user(&self, user: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO blocked_users (user_name) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&user],
            )?;
            Ok(())
        })
    }

    fn unblock_user(&self, user: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            Ok(c.execute("DELETE FROM blocked_users WHERE user_name = $1", &[&user])? == 1)
        })
    }

    fn is_blocked(&self, user: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            Ok(
                c.query_opt("SELECT 1 FROM blocked_users WHERE user_name = $1", &[&user])?
                    .is_some(),
            )
        })
    }

    fn may_request(&self, user: &str) -> Result<super::Standing, StoreError> {
        let row = self.with(|c| {
            Ok(c.query_one(
                "SELECT (SELECT body FROM credentials WHERE user_name = $1),
                        EXISTS (SELECT 1 FROM blocked_users WHERE user_name = $1)",
                &[&user],
            )?)
        })?;
        Ok(super::Standing {
            enrolled: !passkeys(row.get(0))?.is_empty(),
            blocked: row.get(1),
        })
    }

    fn put_ceremony(&self, key: &str, c: &Ceremony) -> Result<(), StoreError> {
        // Login state: see `commit` for why its commits need not wait.
        let body = enc(c, "ceremony")?;
        self.put("ceremonies", (key, &body, c.ends_at()), Commit::Deferred)
    }

    fn take_ceremony(&self, key: &str) -> Result<Option<Ceremony>, StoreError> {
        self.take("ceremonies", (key, "ceremony"), Commit::Deferred)
    }
}
