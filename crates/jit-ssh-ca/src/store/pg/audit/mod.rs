//! [`AuditLog`] on PostgreSQL: one hash chain for every replica on the
//! database (schema: `migrations/0002_audit.sql`).
//!
//! - **Appends** go through group commit per process (the embedded log's
//!   [`GroupCommit`]): concurrent appends in one replica become one
//!   transaction, which locks the single head row, seals the group onto
//!   it and commits ([`append`]). Replicas take turns on that row lock.
//!   `append` returns after the commit, with `synchronous_commit` on.
//! - **Records** are stored as the embedded log stores them (the sealed
//!   JSON, hash included), so an export is byte for byte what `jit-ssh
//!   audit verify` checks today; index columns beside it serve queries.
//! - **Checkpoints** are ordinary records; the advisory lock in
//!   [`AuditLog::with_checkpoint_lock`] makes replicas sign them one at a
//!   time.
//!
//! It holds two pools of its own beside the state store's: two
//! connections for writing (the group's transaction, and the one holding
//! the checkpoint lock while the checkpoint is appended through the
//! other), and `pool_size` for reading, so that readers (queries,
//! exports, however many or slow) never keep an append waiting for a
//! connection.

mod append;
mod head_lock;
pub mod import;
mod read;

use std::sync::{Mutex, OnceLock};

use jit_ssh_audit::chain::{ChainHead, VerifyReport};
use jit_ssh_audit::record::{Actor, AuditRecord, Event};
use jit_ssh_audit::{AppendError, AuditLog, AuditQuery, StoreError};
use jit_ssh_audit_disk::group_commit::GroupCommit;
use time::OffsetDateTime;

use super::connect::{self, Pool};
use super::{migrate, OpenError};
use crate::config::storage::PostgresConfig;

/// The advisory lock checkpoint signers hold (another constant than
/// `migrate`'s).
const CHECKPOINT_LOCK: i64 = 0x6a69_742d_7373_6802;

/// What can go wrong under the log; handed up as
/// [`StoreError::Database`] (or `Encode`/`Corrupt`, as the disk log does).
#[derive(Debug, thiserror::Error)]
pub enum PgAuditError {
    #[error("PostgreSQL")]
    Postgres(#[from] postgres::Error),
    #[error("no PostgreSQL connection")]
    Pool(#[from] r2d2_postgres::r2d2::Error),
    #[error("the audit_head row is missing or unreadable (was the database migrated?)")]
    Head,
    #[error("an encoded audit record is not UTF-8")]
    NotUtf8,
    #[error("encoding an audit record")]
    Encode(#[source] serde_json::Error),
    #[error("stored audit record {seq} is unreadable")]
    Corrupt {
        seq: u64,
        #[source]
        source: serde_json::Error,
    },
}

impl From<PgAuditError> for StoreError {
    fn from(e: PgAuditError) -> Self {
        match e {
            PgAuditError::Encode(e) => StoreError::Encode(e),
            PgAuditError::Corrupt { seq, source } => StoreError::Corrupt { seq, source },
            e => StoreError::Database(Box::new(e)),
        }
    }
}

/// Which of the log's pools an operation uses.
#[derive(Clone, Copy)]
enum Side {
    Write,
    Read,
}

struct Pools {
    write: Pool,
    read: Pool,
}

pub struct PgAuditLog {
    /// Always `Some` until dropped.
    pools: Option<Pools>,
    commit: GroupCommit<Vec<(Actor, Event)>, Vec<AuditRecord>, StoreError>,
    /// The last head this process saw committed or read: what
    /// [`AuditLog::head`] answers while the database does not.
    last_head: Mutex<ChainHead>,
    group_observer: OnceLock<Box<dyn Fn(usize) + Send + Sync>>,
    /// Held by this process's checkpoint from before it takes a writing
    /// connection: a second one at once (the timer's and an operator's)
    /// waited for the cross-replica lock on the other writing connection,
    /// and the first's record, and every issuance's, had none left.
    checkpointing: Mutex<()>,
}

impl Drop for PgAuditLog {
    /// As `PgStore`'s: a blocking client is closed off the async workers.
    fn drop(&mut self) {
        if let Some(pools) = self.pools.take() {
            let _ = std::thread::spawn(move || drop(pools)).join();
        }
    }
}

impl PgAuditLog {
    /// Connects (two pools of its own: two connections for writing,
    /// `pool_size` for reading) and checks the schema is this binary's;
    /// never changes it.
    pub fn open(cfg: &PostgresConfig) -> Result<Self, OpenError> {
        let write = connect::pool(&PostgresConfig {
            pool_size: 2,
            ..cfg.clone()
        })?;
        write.with(|c| migrate::check(c))?;
        let read = connect::pool(cfg)?;
        let log = Self {
            pools: Some(Pools { write, read }),
            commit: GroupCommit::default(),
            last_head: Mutex::new(ChainHead::default()),
            group_observer: OnceLock::new(),
            checkpointing: Mutex::new(()),
        };
        log.read_head(Side::Read)
            .map_err(|_| migrate::SchemaError::Unmigrated)?;
        Ok(log)
    }

    fn with<T, E>(
        &self,
        side: Side,
        f: impl FnOnce(&mut super::prepared::Conn) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<r2d2_postgres::r2d2::Error> + From<PgAuditError> + std::error::Error + 'static,
    {
        match (&self.pools, side) {
            (Some(p), Side::Write) => p.write.with(f),
            (Some(p), Side::Read) => p.read.with(f),
            (None, _) => Err(PgAuditError::Head.into()),
        }
    }

    /// The committed head, as the database has it now.
    fn read_head(&self, side: Side) -> Result<ChainHead, PgAuditError> {
        let head = self.with(side, |c| -> Result<_, PgAuditError> {
            let row = c.query_one("SELECT seq, hash FROM audit_head", &[])?;
            Ok(ChainHead {
                seq: u64::try_from(row.get::<_, i64>(0)).map_err(|_| PgAuditError::Head)?,
                hash: append::parse_hash(row.get(1))?,
            })
        })?;
        self.saw(head);
        Ok(head)
    }

    fn saw(&self, head: ChainHead) {
        if let Ok(mut last) = self.last_head.lock() {
            if head.seq >= last.seq {
                *last = head;
            }
        }
    }

    /// Appends many records as one transaction, for bulk loads such as
    /// benchmarks. Durable when it returns.
    pub fn append_many(&self, items: Vec<(Actor, Event)>) -> Result<Vec<AuditRecord>, StoreError> {
        self.commit_group(items)
    }

    /// Calls `observe` with the size of every group committed from now on
    /// (for metrics), as the embedded log does. Set once.
    pub fn observe_group_sizes(&self, observe: impl Fn(usize) + Send + Sync + 'static) {
        let _ = self.group_observer.set(Box::new(observe));
    }

    fn commit_group(&self, jobs: Vec<(Actor, Event)>) -> Result<Vec<AuditRecord>, StoreError> {
        let (records, head) = self.with(Side::Write, |c| append::commit_group(c, jobs))?;
        self.saw(head);
        if let Some(observe) = self.group_observer.get() {
            observe(records.len());
        }
        Ok(records)
    }
}

/// Unix nanoseconds, the `time_ns` columns.
fn nanos(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

fn time_of(ns: i64) -> Result<OffsetDateTime, PgAuditError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).map_err(|_| PgAuditError::Head)
}

impl AuditLog for PgAuditLog {
    fn append_all(&self, entries: Vec<(Actor, Event)>) -> Result<Vec<AuditRecord>, AppendError> {
        Ok(self
            .commit
            .submit_batch(entries, |jobs| self.commit_group(jobs))?)
    }

    fn query(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(self.with(Side::Read, |c| read::query(c, q))?)
    }

    fn serial_issued(&self, serial: u64) -> Result<bool, StoreError> {
        let q = AuditQuery {
            serial: Some(serial),
            kinds: vec!["certificate_issued".into()],
            limit: 1,
            ..Default::default()
        };
        Ok(!self.query(&q)?.is_empty())
    }

    fn verify(&self) -> Result<VerifyReport, StoreError> {
        Ok(self.with(Side::Read, read::verify)?)
    }

    /// The database's head; the last one seen while it does not answer
    /// (a checkpoint of it is still a true statement about the chain).
    fn head(&self) -> ChainHead {
        match self.read_head(Side::Read) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "reading the audit head failed; using the last one seen");
                self.last_head.lock().map_or(ChainHead::default(), |h| *h)
            }
        }
    }

    fn first_seq_at(&self, t: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(self.with(Side::Read, |c| read::first_seq_at(c, t))?)
    }

    fn export(
        &self,
        from: u64,
        to: u64,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<u64, StoreError> {
        // A connection per page, none held while `sink` writes (to a
        // slow client, say).
        let mut next = from.max(1);
        let mut n = 0;
        while next <= to {
            let page = self.with(Side::Read, |c| read::page(c, next, to))?;
            let Some(last) = page.last().map(|(seq, _)| *seq) else {
                break;
            };
            for (_, record) in &page {
                if !sink(record.as_bytes()) {
                    return Ok(n);
                }
                n += 1;
            }
            next = last + 1;
        }
        Ok(n)
    }

    /// The head row answers on the connections appends use: the
    /// database is reachable, migrated, and the table every append locks
    /// is there.
    fn ready(&self) -> Result<(), StoreError> {
        self.read_head(Side::Write)
            .map(drop)
            .map_err(StoreError::from)
    }

    /// A transaction-scoped advisory lock on one of the two writing
    /// connections, held while `f` signs and appends (through another
    /// connection) and released by the rollback that ends it.
    fn with_checkpoint_lock(&self, f: &mut dyn FnMut()) -> Result<(), StoreError> {
        let _one_here = self
            .checkpointing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(self.with(Side::Write, |c| -> Result<_, PgAuditError> {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHECKPOINT_LOCK])?;
            f();
            tx.rollback()?;
            Ok(())
        })?)
    }
}
