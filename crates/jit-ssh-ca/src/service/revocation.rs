//! Revoking certificates and publishing the KRL hosts read.
//!
//! A revocation names a serial, a grant, a user or a key id; the CA turns
//! it into the serials of that target's certificates that have not expired
//! yet (from the audit log, which holds every issued certificate), stores
//! them, and bumps the KRL version. The KRL holds only unexpired revoked
//! certificates, so it stays small however long the CA runs. It is rebuilt
//! only when its version changes (or an entry expires) and cached.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use jit_ssh_audit::{Actor, AuditQuery, Event, Revoked};
use jit_ssh_krl::{CaScope, Krl, SerialSet};
use jit_ssh_proto::api::RevokeTarget;
use jit_ssh_proto::routes::KRL_NAMESPACE;
use ssh_key::LineEnding;

use super::{Ca, ServiceError};
use crate::store::RevokedSerial;

/// A published KRL and its detached signature.
#[derive(Debug, Clone)]
pub struct PublishedKrl {
    pub version: u64,
    pub bytes: Arc<Vec<u8>>,
    /// Armored SSHSIG (`-----BEGIN SSH SIGNATURE-----`).
    pub signature: Arc<String>,
}

/// The revoked serials in memory, as of store version `version`.
struct RevokedSet {
    version: u64,
    serials: SerialSet,
    /// (valid_before, serial), to drop entries as they expire.
    by_expiry: BTreeSet<(u64, u64)>,
}

impl RevokedSet {
    fn load(entries: Vec<RevokedSerial>, version: u64) -> Result<Self, ServiceError> {
        let by_expiry = entries.iter().map(|r| (r.valid_before, r.serial)).collect();
        let serials = SerialSet::from_serials(entries.into_iter().map(|r| r.serial).collect())
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(Self {
            version,
            serials,
            by_expiry,
        })
    }

    fn add(&mut self, entries: &[RevokedSerial], version: u64) {
        for r in entries {
            // Issued serials are never 0, so this cannot fail.
            let _ = self.serials.insert(r.serial);
            self.by_expiry.insert((r.valid_before, r.serial));
        }
        self.version = version;
    }

    /// Drops the entries whose certificates expired by `now`; returns them.
    fn expire(&mut self, now: u64) -> Vec<u64> {
        let mut gone = Vec::new();
        while let Some(&(valid_before, serial)) = self.by_expiry.first() {
            if valid_before > now {
                break;
            }
            self.by_expiry.pop_first();
            self.serials.remove(serial);
            gone.push(serial);
        }
        gone
    }
}

#[derive(Default)]
pub struct KrlCache {
    published: Mutex<Option<PublishedKrl>>,
    revoked: Mutex<Option<RevokedSet>>,
}

impl KrlCache {
    /// Forgets the signed KRL: the next one is built and signed afresh.
    pub(super) fn clear_published(&self) {
        if let Ok(mut c) = self.published.lock() {
            *c = None;
        }
    }
}

impl Ca {
    /// Revokes every unexpired certificate of `target`. Says so clearly when
    /// there is nothing (unknown, expired, or already revoked).
    pub fn revoke(
        &self,
        target: &RevokeTarget,
        reason: &str,
        actor: Actor,
    ) -> Result<Revoked, ServiceError> {
        self.revoke_at(target, reason, actor, self.now())
    }

    /// [`Ca::revoke`] as of `now` (what counts as expired).
    pub(super) fn revoke_at(
        &self,
        target: &RevokeTarget,
        reason: &str,
        actor: Actor,
        now: i64,
    ) -> Result<Revoked, ServiceError> {
        let reason = crate::names::Reason::parse(reason).map_err(ServiceError::invalid)?;
        let query = match target {
            RevokeTarget::Serial(s) => AuditQuery {
                serial: Some(*s),
                ..Default::default()
            },
            RevokeTarget::Grant(g) => AuditQuery {
                grant: Some(g.clone()),
                ..Default::default()
            },
            RevokeTarget::User(u) => AuditQuery {
                user: Some(u.clone()),
                ..Default::default()
            },
            RevokeTarget::KeyId(k) => {
                // jit-ssh:USER:GRANT:SERIAL — the serial finds the record,
                // the full key id must match it.
                let serial = k
                    .rsplit(':')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                AuditQuery {
                    serial: Some(serial),
                    ..Default::default()
                }
            }
        };
        let now = u64::try_from(now).unwrap_or(0);
        let issued = self
            .audit
            .query(&query)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        // What is already revoked, from the in-memory set; the guard goes
        // before add_revoked takes the same lock.
        let revoked = self.current_revoked(now)?;
        let already = |serial| revoked.as_ref().is_some_and(|m| m.serials.contains(serial));
        let mut user = String::new();
        let mut found = Vec::new();
        for rec in issued {
            let Event::CertificateIssued(c) = rec.event else {
                continue;
            };
            if let RevokeTarget::KeyId(k) = target {
                if &c.key_id != k {
                    continue;
                }
            }
            user.clone_from(&c.user);
            if c.valid_before > now && !already(c.serial) {
                found.push(RevokedSerial {
                    serial: c.serial,
                    valid_before: c.valid_before,
                });
            }
        }
        drop(revoked);
        if found.is_empty() {
            return Err(ServiceError::WrongState(format!(
                "nothing to revoke for {target}: no unexpired, unrevoked certificate was issued for it"
            )));
        }
        let mut event = Revoked {
            target: target.to_string(),
            user,
            reason: reason.to_string(),
            serials: found.iter().map(|r| r.serial).collect(),
            krl_version: self.store.krl_version()? + 1,
        };
        // Recorded first; if the store then fails, the audit log shows an
        // intent that a retry completes.
        self.audit(actor, Event::Revoked(event.clone()))?;
        event.krl_version = self.add_revoked(&found)?;
        tracing::info!(target = %target, serials = found.len(), krl_version = event.krl_version, "revoked");
        Ok(event)
    }

    /// Stores revoked serials (durably) and keeps the in-memory set in step;
    /// returns the new KRL version.
    pub fn add_revoked(&self, entries: &[RevokedSerial]) -> Result<u64, ServiceError> {
        let mut mem = self
            .krl_cache
            .revoked
            .lock()
            .map_err(|_| ServiceError::Internal("KRL state".into()))?;
        let version = self.store.revoke_serials(entries)?;
        match mem.as_mut() {
            Some(m) if m.version + 1 == version => m.add(entries, version),
            // Someone else changed the store: reload on next use.
            _ => *mem = None,
        }
        Ok(version)
    }

    /// The revoked set, current: reloaded from the store only when another
    /// writer changed it, with expired entries dropped from memory and
    /// store alike (no full re-read for that).
    fn current_revoked(
        &self,
        now: u64,
    ) -> Result<MutexGuard<'_, Option<RevokedSet>>, ServiceError> {
        let mut mem = self
            .krl_cache
            .revoked
            .lock()
            .map_err(|_| ServiceError::Internal("KRL state".into()))?;
        let stored = self.store.krl_version()?;
        if mem.as_ref().is_none_or(|m| m.version != stored) {
            *mem = Some(RevokedSet::load(self.store.revoked_serials()?, stored)?);
        }
        if let Some(m) = mem.as_mut() {
            let expired = m.expire(now);
            if !expired.is_empty() {
                match self.store.remove_revoked(&expired) {
                    Ok(version) => m.version = version,
                    Err(e) => {
                        // Memory is ahead of the store now: reload next time.
                        *mem = None;
                        return Err(e.into());
                    }
                }
            }
        }
        Ok(mem)
    }

    /// The current KRL: rebuilt only when its version changes (a revocation,
    /// or an entry expiring), cached otherwise.
    pub fn krl(&self) -> Result<PublishedKrl, ServiceError> {
        self.krl_at(u64::try_from(self.now()).unwrap_or(0))
    }

    /// The KRL as of `now` (Unix seconds): what expired by then is gone.
    pub(super) fn krl_at(&self, now: u64) -> Result<PublishedKrl, ServiceError> {
        let mem = self.current_revoked(now)?;
        let Some(m) = mem.as_ref() else {
            return Err(ServiceError::Internal("KRL state".into()));
        };
        if let Ok(cache) = self.krl_cache.published.lock() {
            if let Some(p) = cache.as_ref().filter(|p| p.version == m.version) {
                return Ok(p.clone());
            }
        }
        let published = self.build_krl(m.version, &m.serials, now)?;
        if let Ok(mut cache) = self.krl_cache.published.lock() {
            *cache = Some(published.clone());
        }
        Ok(published)
    }

    fn build_krl(
        &self,
        version: u64,
        set: &SerialSet,
        now: u64,
    ) -> Result<PublishedKrl, ServiceError> {
        let mut krl = Krl::new();
        krl.version = version;
        krl.generated_date = now;
        krl.comment = "jit-ssh".into();
        // Under the previous key too while it is published: the
        // certificates it signed are still valid on hosts.
        for key in self.user_keys.signing_keys() {
            krl.revoke_serials(&CaScope::of(&key), set);
        }
        let bytes = krl
            .encode()
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let signature = self
            .signer()
            .sign_detached(KRL_NAMESPACE, &bytes)
            .and_then(|s| s.to_pem(LineEnding::LF).map_err(crate::signer::SignError))
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(PublishedKrl {
            version,
            bytes: Arc::new(bytes),
            signature: Arc::new(signature),
        })
    }
}
