//! A group's transaction, begun and holding the head row in one round
//! trip: `BEGIN` and the head lock go to the server as one simple query
//! (the client library's own transactions send `BEGIN` alone first).
//! Every round trip inside the group's transaction is also time the other
//! replicas wait for the head row, and an issued certificate makes two
//! appends.
//!
//! The transaction also gets a short idle limit of its own
//! (`limits::AUDIT_GROUP_IDLE`), set in that same query: every replica
//! waits while this one holds the head row.
//!
//! Not the library's `Transaction`, so this guard ends it: rolled back
//! when dropped uncommitted, and a connection whose transaction could not
//! be ended is never lent out again (it would hold the head row).

use postgres::SimpleQueryMessage;
use time::OffsetDateTime;

use jit_ssh_audit::chain::ChainHead;

use super::super::limits::audit_group_idle_sql;
use super::super::prepared::Conn;
use super::append::{parse_hash, LOCK_HEAD};
use super::{time_of, PgAuditError};

pub(super) struct HeadLocked<'c> {
    conn: &'c mut Conn,
    ended: bool,
}

/// The head the transaction holds, and when its record was written.
pub(super) struct Held {
    pub head: ChainHead,
    pub time: OffsetDateTime,
}

impl<'c> HeadLocked<'c> {
    pub(super) fn begin(conn: &'c mut Conn) -> Result<(Self, Held), PgAuditError> {
        let tx = HeadLocked { conn, ended: false };
        // The limit first, so the head row is never held without it: a
        // replica that freezes holding it has its session ended after
        // `AUDIT_GROUP_IDLE`, and the others append again.
        let replies = tx
            .conn
            .simple_query(&format!("BEGIN; {}; {LOCK_HEAD}", audit_group_idle_sql()))?;
        let row = replies
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .ok_or(PgAuditError::Head)?;
        let number = |i: usize| -> Result<i64, PgAuditError> {
            row.get(i)
                .and_then(|v| v.parse().ok())
                .ok_or(PgAuditError::Head)
        };
        let held = Held {
            head: ChainHead {
                seq: u64::try_from(number(0)?).map_err(|_| PgAuditError::Head)?,
                hash: parse_hash(row.get(1).ok_or(PgAuditError::Head)?)?,
            },
            time: time_of(number(2)?)?,
        };
        Ok((tx, held))
    }

    pub(super) fn conn(&mut self) -> &mut Conn {
        self.conn
    }

    /// Commits; returns once the server says it did (with
    /// `synchronous_commit` on, after its WAL is flushed).
    pub(super) fn commit(mut self) -> Result<(), PgAuditError> {
        self.ended = true;
        let done = self.conn.batch_execute("COMMIT");
        if done.is_err() {
            // Whether it committed is unknown; the connection is not reused.
            self.conn.spoil();
        }
        Ok(done?)
    }
}

impl Drop for HeadLocked<'_> {
    fn drop(&mut self) {
        if !self.ended && self.conn.batch_execute("ROLLBACK").is_err() {
            self.conn.spoil();
        }
    }
}
