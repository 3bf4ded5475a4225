//! The jit-ssh audit log: every request, decision, issued certificate and
//! revocation as one append-only record, each holding the hash of the one
//! before it, so an edited, removed or reordered record breaks the chain.
//!
//! What it owns: the record format ([`record`]), the hash chain ([`chain`]),
//! queries ([`query`]) and the [`AuditLog`] trait a store implements. All
//! of it is pure: the client uses it to verify an export offline.
//! Checkpoints ([`checkpoint`]) are signed by the CA (which holds the key)
//! and checked here, offline, with only the public key.
//! What it does not: storage (`jit-ssh-audit-disk`: an append-only chain
//! file, hashed posting-file indexes, group commit), and deciding what to
//! record (the CA does).
//!
//! Callers depend on the [`AuditLog`] trait, not on the files, so another store
//! can take its place.

pub mod chain;
pub mod checkpoint;
pub mod query;
pub mod record;
pub mod session_record;

pub use chain::{ChainBreak, ChainHead, VerifyReport};
pub use checkpoint::{ExportProblem, ExportReport};
pub use query::AuditQuery;
pub use record::{
    Actor, ApprovalStep, AuditRecord, CertificateIssued, Checkpoint, Enrollment, Event, Hash,
    HostStep, IssuedVia, KeyRotation, NotificationFailed, OnCallShift, PolicyDecision,
    PolicyOutcome, RequestCreated, RequestStep, Revoked, SessionTerms, EVENT_KINDS,
};

/// Why an append failed. The record is not known to be durable: the
/// caller must treat the action it describes as not having happened
/// (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("committing the audit record failed")]
    Commit(#[source] std::sync::Arc<StoreError>),
}

/// A failure of the storage under the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("audit chain file")]
    Io(#[source] std::io::Error),
    #[error("another process has the audit log in {0} open")]
    Locked(std::path::PathBuf),
    #[error("stored audit record {seq} is unreadable")]
    Corrupt {
        seq: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("encoding an audit record failed")]
    Encode(#[source] serde_json::Error),
    #[error("the audit log refuses appends after an earlier write or flush failure; restart once the storage is healthy")]
    Poisoned,
    /// Nothing was written: the log refuses appends until its directory
    /// takes writes again (checked again before the next append).
    #[error("the audit log directory does not take writes; appends are refused until it does")]
    Unwritable(#[source] std::io::Error),
    /// The database under a shared log (PostgreSQL) failed or could not
    /// be reached. An append that fails so was rolled back, or its commit
    /// is unknown: either way the caller treats it as not having happened.
    #[error("the audit log's database")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The audit log as the CA sees it.
pub trait AuditLog: Send + Sync {
    /// Appends records, in order and with nothing between them, in one
    /// commit: all of them are durable when it returns. On an error the
    /// caller treats none as made (on PostgreSQL none is; on disk, a
    /// crash mid-write can leave a prefix, as with any group). A step
    /// that makes several records (a touch, its policy decision, the
    /// certificate) pays for one commit instead of several.
    fn append_all(&self, entries: Vec<(Actor, Event)>) -> Result<Vec<AuditRecord>, AppendError>;

    /// Appends one record and returns only once it is durable.
    fn append(&self, actor: Actor, event: Event) -> Result<AuditRecord, AppendError> {
        self.append_all(vec![(actor, event)])?
            .pop()
            .ok_or_else(|| AppendError::Commit(std::sync::Arc::new(StoreError::Poisoned)))
    }

    /// Records matching `query`, in sequence order.
    fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// Whether a certificate with this serial was ever issued.
    fn serial_issued(&self, serial: u64) -> Result<bool, StoreError>;

    /// Walks the whole chain; reports the first break if there is one.
    fn verify(&self) -> Result<VerifyReport, StoreError>;

    /// The last durable record's sequence number and hash.
    fn head(&self) -> ChainHead;

    /// The first sequence number whose record is at or after `t`.
    fn first_seq_at(&self, t: time::OffsetDateTime) -> Result<u64, StoreError>;

    /// Streams records `from..=to` as stored (JSON, the sealed form) to
    /// `sink` until it returns `false`; returns how many it wrote.
    fn export(
        &self,
        from: u64,
        to: u64,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<u64, StoreError>;

    /// Whether the log would accept an append now, checked without
    /// writing a record (a readiness probe calls it every few seconds).
    /// A store with nothing to check is always ready.
    fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Runs `f` while holding the log's checkpoint lock: of the processes
    /// sharing one log (replicas on one database), one at a time signs a
    /// checkpoint, so two do not both vouch for the same head at once. A
    /// log that one process owns has nothing to hold.
    fn with_checkpoint_lock(&self, f: &mut dyn FnMut()) -> Result<(), StoreError> {
        f();
        Ok(())
    }
}
