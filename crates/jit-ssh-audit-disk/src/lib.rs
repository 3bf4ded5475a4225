//! The jit-ssh audit log on disk ([`DiskAuditLog`]), one directory per
//! log: the chain as an append-only file ([`chain_file`]), secondary
//! indexes as hashed posting files ([`index`]), and group commit
//! ([`group_commit`]) so concurrent appends share one fsync. The log's own
//! lock file keeps a second process out.
//!
//! What it owns: durability, recovery of a torn tail, indexes, export.
//! What it does not: the record format, the hash chain and checkpoint
//! verification (`jit-ssh-audit`, pure, which the client uses to verify an
//! export offline without compiling this crate).

mod chain_file;
pub mod disk_log;
pub mod group_commit;
mod index;

pub use disk_log::DiskAuditLog;
