//! Filters over the audit log. Every filter given must match; the store
//! reads through the most selective index and checks the rest per record.

use time::OffsetDateTime;

use crate::record::AuditRecord;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub user: Option<String>,
    pub host: Option<String>,
    pub account: Option<String>,
    /// Issued or revoked with this serial.
    pub serial: Option<u64>,
    pub grant: Option<String>,
    /// Event kinds (any of them); empty means every kind.
    pub kinds: Vec<String>,
    /// Inclusive.
    pub since: Option<OffsetDateTime>,
    /// Exclusive.
    pub until: Option<OffsetDateTime>,
    /// Only records with a larger sequence number (a pagination cursor).
    pub after_seq: Option<u64>,
    /// At most this many records (0 = no limit).
    pub limit: usize,
}

impl AuditQuery {
    pub fn matches(&self, rec: &AuditRecord) -> bool {
        let e = &rec.event;
        self.user.as_deref().is_none_or(|u| e.user() == Some(u))
            && self.host.as_deref().is_none_or(|h| e.host() == Some(h))
            && self
                .account
                .as_deref()
                .is_none_or(|a| e.account() == Some(a))
            && self.grant.as_deref().is_none_or(|g| e.grant() == Some(g))
            && self.serial.is_none_or(|s| e.serials().contains(&s))
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == e.kind()))
            && self.since.is_none_or(|t| rec.time >= t)
            && self.until.is_none_or(|t| rec.time < t)
            && self.after_seq.is_none_or(|s| rec.seq > s)
    }
}
