//! The audit log as the CA writes to it, counted: every durable record of
//! an outcome worth a counter (requests, issuance, revocations, approvers'
//! decisions) and how long each append took. Counting durable records
//! means a counter moves only for what really happened.

use std::sync::Arc;
use std::time::Instant;

use jit_ssh_audit::{
    Actor, AppendError, AuditLog, AuditQuery, AuditRecord, ChainHead, Event, StoreError,
    VerifyReport,
};

use super::{
    Metrics, APPROVER_DECISIONS, AUDIT_APPEND_FAILURES, CERTS_ISSUED, REQUESTS_CREATED,
    REQUESTS_ENDED, REVOCATIONS,
};

/// Wraps the CA's audit log.
pub struct MeteredAudit {
    inner: Arc<dyn AuditLog>,
    metrics: Arc<Metrics>,
}

impl MeteredAudit {
    pub fn new(inner: Arc<dyn AuditLog>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    fn count(&self, event: &Event) {
        let m = &self.metrics;
        match event {
            Event::RequestCreated(_) => m.counter(REQUESTS_CREATED, &[]).increment(1),
            Event::CertificateIssued(_) => m.counter(CERTS_ISSUED, &[]).increment(1),
            Event::Revoked(_) => m.counter(REVOCATIONS, &[]).increment(1),
            Event::RequestApproved(_) => m
                .counter(APPROVER_DECISIONS, &[("outcome", "approved")])
                .increment(1),
            Event::RequestDenied(_) => m
                .counter(APPROVER_DECISIONS, &[("outcome", "denied")])
                .increment(1),
            Event::RequestExpired(_) => m
                .counter(REQUESTS_ENDED, &[("outcome", "expired")])
                .increment(1),
            Event::RequestCancelled(_) => m
                .counter(REQUESTS_ENDED, &[("outcome", "cancelled")])
                .increment(1),
            _ => {}
        }
    }
}

impl AuditLog for MeteredAudit {
    fn append_all(&self, entries: Vec<(Actor, Event)>) -> Result<Vec<AuditRecord>, AppendError> {
        let start = Instant::now();
        let appended = self.inner.append_all(entries);
        self.metrics.audit_appended(start.elapsed());
        match &appended {
            Ok(records) => records.iter().for_each(|r| self.count(&r.event)),
            Err(_) => self
                .metrics
                .counter(AUDIT_APPEND_FAILURES, &[])
                .increment(1),
        }
        appended
    }

    fn query(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.query(q)
    }

    fn serial_issued(&self, serial: u64) -> Result<bool, StoreError> {
        self.inner.serial_issued(serial)
    }

    fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.inner.verify()
    }

    fn head(&self) -> ChainHead {
        self.inner.head()
    }

    fn first_seq_at(&self, t: time::OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.first_seq_at(t)
    }

    fn export(
        &self,
        from: u64,
        to: u64,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<u64, StoreError> {
        self.inner.export(from, to, sink)
    }

    fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready()
    }

    fn with_checkpoint_lock(&self, f: &mut dyn FnMut()) -> Result<(), StoreError> {
        self.inner.with_checkpoint_lock(f)
    }
}
