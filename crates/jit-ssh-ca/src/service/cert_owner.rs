//! Whose certificate a revocation takes away, so the person confirming
//! it sees "alice's certificate for db-1 as oncall", not only a number.
//! Read from the audit log's issuance record (indexed by serial and
//! grant), the same record revoking looks up.

use jit_ssh_audit::{AuditQuery, Event};
use jit_ssh_proto::api::{CertificateOwner, RevokeTarget};

use super::{rfc3339, Ca, ServiceError};

impl Ca {
    /// The owner of the certificate `target` names; `None` for a user
    /// target (the target is the owner) or when no such certificate was
    /// issued.
    pub fn certificate_owner(
        &self,
        target: &RevokeTarget,
    ) -> Result<Option<CertificateOwner>, ServiceError> {
        let mut query = AuditQuery {
            kinds: vec!["certificate_issued".into()],
            limit: 1,
            ..Default::default()
        };
        match target {
            RevokeTarget::Serial(s) => query.serial = Some(*s),
            RevokeTarget::Grant(g) => query.grant = Some(g.clone()),
            // jit-ssh:USER:GRANT:SERIAL; the whole key id must match below.
            RevokeTarget::KeyId(k) => match k.rsplit(':').next().and_then(|s| s.parse().ok()) {
                Some(serial) => query.serial = Some(serial),
                None => return Ok(None),
            },
            RevokeTarget::User(_) => return Ok(None),
        }
        let found = self
            .audit
            .query(&query)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(found.into_iter().find_map(|rec| match rec.event {
            Event::CertificateIssued(c)
                if !matches!(target, RevokeTarget::KeyId(k) if *k != c.key_id) =>
            {
                Some(CertificateOwner {
                    user: c.user,
                    host: c.host,
                    account: c.account,
                    valid_before: rfc3339(i64::try_from(c.valid_before).unwrap_or(i64::MAX)),
                })
            }
            _ => None,
        }))
    }
}
