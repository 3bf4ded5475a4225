//! Copying an existing chain (the embedded log's) into an empty
//! PostgreSQL log, record for record: the stored bytes are kept as they
//! are, so every hash, and the head, stay the same, and an export from
//! PostgreSQL verifies over the old records too. Each record is checked
//! as it is copied (its place, its hash, its link): a broken source chain
//! is refused, not carried over. One transaction: all or nothing.

use jit_ssh_audit::chain::{self, ChainHead};
use jit_ssh_audit::record::AuditRecord;
use jit_ssh_audit::AuditLog;
use time::OffsetDateTime;

use super::append::{self, Columns};
use super::{PgAuditError, PgAuditLog};

const BATCH: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the PostgreSQL audit log already holds {0} records: refusing to copy into it")]
    NotEmpty(u64),
    #[error("the source audit chain is broken at record {0}: run `jit-ssh audit verify` on it")]
    Broken(u64),
    #[error("reading the source audit log")]
    Source(#[source] jit_ssh_audit::StoreError),
    #[error("writing the PostgreSQL audit log")]
    Target(#[source] PgAuditError),
}

impl From<postgres::Error> for ImportError {
    fn from(e: postgres::Error) -> Self {
        ImportError::Target(e.into())
    }
}

impl From<PgAuditError> for ImportError {
    fn from(e: PgAuditError) -> Self {
        ImportError::Target(e)
    }
}

impl From<r2d2_postgres::r2d2::Error> for ImportError {
    fn from(e: r2d2_postgres::r2d2::Error) -> Self {
        ImportError::Target(e.into())
    }
}

/// Copies all of `source` into `target`, which must be empty; returns
/// the head, the same as the source's.
pub fn import(target: &PgAuditLog, source: &dyn AuditLog) -> Result<ChainHead, ImportError> {
    let want = source.head();
    let head = target.with(super::Side::Write, |c| {
        let mut tx = c.transaction()?;
        let row = tx.query_one(append::LOCK_HEAD, &[])?;
        let found: i64 = row.get(0);
        let rows: i64 = tx
            .query_one(
                "SELECT count(*) FROM (SELECT 1 FROM audit_records LIMIT 1) r",
                &[],
            )?
            .get(0);
        if found != 0 || rows != 0 {
            return Err(ImportError::NotEmpty(u64::try_from(found).unwrap_or(0)));
        }
        let mut copy = Copy {
            head: ChainHead::default(),
            last_time: OffsetDateTime::UNIX_EPOCH,
            cols: Columns::default(),
            failed: None,
        };
        source
            .export(1, want.seq, &mut |bytes| copy.take(&mut tx, bytes))
            .map_err(ImportError::Source)?;
        if let Some(e) = copy.failed.take() {
            return Err(e);
        }
        copy.cols.insert(&mut tx)?;
        if copy.head != want {
            return Err(ImportError::Broken(copy.head.seq + 1));
        }
        append::set_head(&mut tx, copy.head, copy.last_time)?;
        tx.commit()?;
        Ok(copy.head)
    })?;
    Ok(head)
}

struct Copy {
    head: ChainHead,
    last_time: OffsetDateTime,
    cols: Columns,
    failed: Option<ImportError>,
}

impl Copy {
    /// One stored record: checked, kept; `false` stops the export.
    fn take(&mut self, tx: &mut postgres::Transaction<'_>, bytes: &[u8]) -> bool {
        match self.check_and_keep(tx, bytes) {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }

    fn check_and_keep(
        &mut self,
        tx: &mut postgres::Transaction<'_>,
        bytes: &[u8],
    ) -> Result<(), ImportError> {
        let next = self.head.seq + 1;
        let rec: AuditRecord =
            serde_json::from_slice(bytes).map_err(|_| ImportError::Broken(next))?;
        let sound = rec.seq == next
            && rec.prev_hash == self.head.hash
            && chain::rehash(&rec).is_ok_and(|h| h == rec.hash);
        if !sound {
            return Err(ImportError::Broken(next));
        }
        self.head = ChainHead {
            seq: rec.seq,
            hash: rec.hash,
        };
        self.last_time = rec.time;
        self.cols.push(&rec, bytes.to_vec())?;
        if self.cols.len() >= BATCH {
            self.cols.insert(tx)?;
        }
        Ok(())
    }
}
