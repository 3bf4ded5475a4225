//! The audit log `[storage]` names: the chain files under the data
//! directory (embedded; one process), or the PostgreSQL chain every
//! replica on that database appends to.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use jit_ssh_audit::AuditLog;
use jit_ssh_audit_disk::DiskAuditLog;

use crate::config::storage::StorageConfig;
use crate::store::PgAuditLog;

/// The opened log, still knowing its kind for what only it offers.
pub enum OpenedAudit {
    Disk(Arc<DiskAuditLog>),
    Postgres(Arc<PgAuditLog>),
}

impl OpenedAudit {
    pub fn open(storage: &StorageConfig, data: &Path) -> anyhow::Result<Self> {
        Ok(match storage {
            StorageConfig::Embedded => {
                let dir = data.join(super::AUDIT_DIR);
                OpenedAudit::Disk(Arc::new(
                    DiskAuditLog::open(&dir)
                        .with_context(|| format!("opening the audit log in {}", dir.display()))?,
                ))
            }
            StorageConfig::Postgres(pg) => OpenedAudit::Postgres(Arc::new(
                PgAuditLog::open(pg).context("opening the PostgreSQL audit log")?,
            )),
        })
    }

    pub fn log(&self) -> Arc<dyn AuditLog> {
        match self {
            OpenedAudit::Disk(d) => d.clone(),
            OpenedAudit::Postgres(p) => p.clone(),
        }
    }

    /// Reports the size of every committed group (for metrics).
    pub fn observe_group_sizes(&self, observe: impl Fn(usize) + Send + Sync + 'static) {
        match self {
            OpenedAudit::Disk(d) => d.observe_group_sizes(observe),
            OpenedAudit::Postgres(p) => p.observe_group_sizes(observe),
        }
    }
}
