//! The inventory of enrolled hosts: what each holds as of its last
//! check-in, flagged when it is behind on revocations or silent, and
//! removing a host.

use jit_ssh_audit::{Actor, Event, HostStep};
use jit_ssh_proto::hosts::{HostInfo, HostList};

use super::{rfc3339, Ca, ServiceError, SignedIn};
use crate::config::hosts::HostsConfig;
use crate::store::HostRecord;

/// Unix seconds (u64, as certificates and signed documents carry them) as
/// RFC 3339.
fn rfc3339_u(t: u64) -> String {
    rfc3339(i64::try_from(t).unwrap_or(i64::MAX))
}

/// One host as listed at `now`.
fn info(h: HostRecord, config: &HostsConfig, now: i64) -> HostInfo {
    let age = |t: u64| now.saturating_sub(i64::try_from(t).unwrap_or(i64::MAX));
    let behind_after = i64::try_from(config.krl_behind_after.as_secs()).unwrap_or(i64::MAX);
    let silent_after = i64::try_from(config.silent_after.as_secs()).unwrap_or(i64::MAX);
    // Until its first check-in a host has reported nothing: judged from
    // its enrollment, when sync installed the KRL of that moment.
    let behind_on_krl = match &h.held {
        Some(held) => held.krl_signed_at.is_none_or(|t| age(t) > behind_after),
        None => now.saturating_sub(h.enrolled_at) > behind_after,
    };
    let held = h.held.unwrap_or_default();
    let reported = h.last_contact > h.enrolled_at || held.krl_signed_at.is_some();
    HostInfo {
        silent: now.saturating_sub(h.last_contact) > silent_after,
        behind_on_krl,
        krl_version: reported.then_some(held.krl_version),
        krl_signed_at: held.krl_signed_at.map(rfc3339_u),
        ca_keys_signed_at: held.ca_keys_signed_at.map(rfc3339_u),
        last_error: held.last_error,
        name: h.name,
        group: h.group,
        host_key_fingerprint: h.host_key_fingerprint,
        enrolled_by_token: h.enrolled_by_token,
        enrolled_at: rfc3339(h.enrolled_at),
        cert_serial: h.cert_serial,
        cert_valid_before: rfc3339_u(h.cert_valid_before),
        last_contact: rfc3339(h.last_contact),
        aliases: h.aliases,
    }
}

impl Ca {
    /// The inventory of enrolled hosts, flagged as of now.
    pub fn hosts(&self) -> Result<HostList, ServiceError> {
        let now = self.now();
        let hosts = self
            .store
            .hosts()?
            .into_iter()
            .map(|h| info(h, &self.config.hosts, now))
            .collect();
        Ok(HostList {
            hosts,
            krl_version: self.store.krl_version()?,
        })
    }

    /// The inventory for someone signed in: security, auditors and admins
    /// only (it lists every host and who enrolled it).
    pub fn host_list(&self, who: &SignedIn) -> Result<HostList, ServiceError> {
        if !who.reads_all_audit() {
            return Err(ServiceError::Forbidden(
                "the host inventory is for the security, auditor and admin roles".into(),
            ));
        }
        self.hosts()
    }

    /// Removes `name` from the inventory and revokes its host key: clients
    /// list it `@revoked` at their next known_hosts refresh, the key
    /// cannot enroll again, and its certificate cannot check in.
    pub fn remove_host(&self, name: &str, actor: Actor) -> Result<HostRecord, ServiceError> {
        let host = self
            .store
            .host(name)?
            .ok_or(ServiceError::NotFound("host"))?;
        self.audit(
            actor,
            Event::HostRemoved(HostStep {
                host: host.name.clone(),
                group: host.group.clone(),
                token: host.enrolled_by_token.clone(),
                detail: format!(
                    "removed; host certificate serial {} revoked",
                    host.cert_serial
                ),
                host_key_fingerprint: host.host_key_fingerprint.clone(),
                serial: host.cert_serial,
                valid_before: host.cert_valid_before,
                aliases: vec![],
            }),
        )?;
        self.store
            .revoke_host_key(&host.host_key_fingerprint, &host.host_key)?;
        self.store.remove_host(&host.name)?;
        Ok(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::HeldReport;

    fn record(enrolled_at: i64, last_contact: i64, held: Option<HeldReport>) -> HostRecord {
        HostRecord {
            name: "web-1".into(),
            group: "web".into(),
            host_key: String::new(),
            host_key_fingerprint: String::new(),
            enrolled_by_token: String::new(),
            enrolled_at,
            cert_serial: 1,
            cert_valid_before: 0,
            last_contact,
            held,
            aliases: Vec::new(),
        }
    }

    fn held(krl_signed_at: Option<u64>) -> Option<HeldReport> {
        Some(HeldReport {
            krl_version: 3,
            krl_signed_at,
            ..HeldReport::default()
        })
    }

    #[test]
    fn a_host_is_behind_when_its_krl_was_signed_too_long_ago() {
        let c = HostsConfig::default();
        let n = 1_000_000;
        let behind = i64::try_from(c.krl_behind_after.as_secs()).unwrap();
        let at = |age: i64| Some(u64::try_from(n - age).unwrap());
        assert!(!info(record(n - 10, n - 5, held(at(60))), &c, n).behind_on_krl);
        assert!(info(record(n - 10, n - 5, held(at(behind + 1))), &c, n).behind_on_krl);
        assert!(info(record(n - 10, n - 5, held(None)), &c, n).behind_on_krl);
        // Never checked in: judged from enrollment.
        assert!(!info(record(n - 10, n - 10, None), &c, n).behind_on_krl);
        assert!(info(record(n - behind - 1, n - behind - 1, None), &c, n).behind_on_krl);
        let fresh = info(record(n - 10, n - 5, held(at(60))), &c, n);
        assert_eq!(fresh.krl_version, Some(3));
        assert_eq!(info(record(n - 10, n - 10, None), &c, n).krl_version, None);
    }

    #[test]
    fn a_host_is_silent_after_its_last_contact_ages() {
        let c = HostsConfig::default();
        let n = 1_000_000;
        let silent = i64::try_from(c.silent_after.as_secs()).unwrap();
        assert!(!info(record(n - 10, n - silent, None), &c, n).silent);
        assert!(info(record(n - 10, n - silent - 1, None), &c, n).silent);
    }
}
