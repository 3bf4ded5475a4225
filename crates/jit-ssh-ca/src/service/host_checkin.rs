//! An enrolled host checks in on every sync: it proves it holds the host
//! key of its current certificate (SSHSIG over a nonce of ours, the
//! certificate and its report), the inventory records what it holds, and
//! when less than a third of the certificate's validity is left it gets a
//! new one. A copy of the certificate without the key, a certificate a
//! renewal replaced, and a removed host's certificate are all refused.

use std::net::SocketAddr;

use ssh_key::certificate::CertType;
use ssh_key::{Certificate, HashAlg, PublicKey, SshSig};

use jit_ssh_audit::{Actor, Event, HostStep};
use jit_ssh_proto::host_checkin::{
    checkin_message, CheckedInDocument, HostCheckedIn, HostCheckin, HostCheckinStart, HostReport,
    HOST_CHECKED_IN_KIND, HOST_CHECKED_IN_NAMESPACE, HOST_CHECKIN_NAMESPACE,
    MAX_REPORTED_ERROR_CHARS,
};
use jit_ssh_proto::hosts::HostEnrollChallenge;
use jit_ssh_proto::text::escape_for_terminal;

use super::hosts::{build_host_cert, CHALLENGE_TTL};
use super::{random_id, random_token, rfc3339, Ca, ServiceError};
use crate::names::{HostName, Serial};
use crate::store::{HeldReport, HostChallenge, HostRecord};

/// Check-ins per host name per minute: sync runs every 30 s.
const CHECKINS_PER_MINUTE_PER_HOST: u32 = 10;

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

/// Due when less than a third of the configured validity is left.
fn renewal_due(valid_before: u64, validity_secs: u64, now: u64) -> bool {
    valid_before.saturating_sub(now).saturating_mul(3) < validity_secs
}

impl Ca {
    /// Step 1: a nonce for `name`. Answered for any well-formed name, so
    /// the inventory is not revealed to whoever asks.
    pub fn host_checkin_start(
        &self,
        body: &HostCheckinStart,
        client: SocketAddr,
    ) -> Result<HostEnrollChallenge, ServiceError> {
        self.host_signer()?;
        self.limit_address(client)?;
        // The host's own budget is spent only once it proved its key
        // (finish): anyone may ask for a challenge under any name, and
        // asking must not use up a host's check-ins.
        let name = HostName::parse(&body.name).map_err(ServiceError::invalid)?;
        let id = random_id();
        let challenge = HostChallenge {
            token_id: String::new(),
            name: name.to_string(),
            host_key: String::new(),
            nonce: random_token(),
            expires_at: self.now() + CHALLENGE_TTL,
            checkin: true,
            aliases: Vec::new(),
        };
        self.store.put_host_challenge(&id, &challenge)?;
        Ok(HostEnrollChallenge {
            id,
            nonce: challenge.nonce,
            expires_at: rfc3339(challenge.expires_at),
        })
    }

    /// Step 2: the proof, the report, and a new certificate when due.
    pub fn host_checkin_finish(
        &self,
        id: &str,
        body: &HostCheckin,
        client: SocketAddr,
    ) -> Result<HostCheckedIn, ServiceError> {
        let host_signer = self.host_signer()?;
        self.limit_address(client)?;
        if !super::is_id(id) {
            return Err(ServiceError::NotFound("check-in"));
        }
        // A malformed body spends nothing.
        let report: HostReport = serde_json::from_str(&body.report)
            .map_err(|e| ServiceError::invalid(format!("report: {e}")))?;
        let Ok(cert) = Certificate::from_openssh(body.certificate.trim()) else {
            return Err(ServiceError::invalid(
                "certificate is not an OpenSSH certificate",
            ));
        };
        // Single use: removed before the proof is checked.
        let c = self
            .store
            .take_host_challenge(id)?
            .filter(|c| c.checkin)
            .ok_or(ServiceError::NotFound("check-in"))?;
        let now = self.now();
        if c.expires_at <= now {
            return Err(ServiceError::WrongState(
                "the check-in challenge expired; check in again".into(),
            ));
        }
        let refuse = |why: &str| -> Result<ServiceError, ServiceError> {
            self.refused_host_step(client, Event::HostCheckinRefused, "", &c.name, why)
        };
        let now_u = u64::try_from(now).unwrap_or(0);
        // A certificate the previous host CA key signed is still current
        // during a rotation; renewal replaces it with one the active key signs.
        let host_cas: Vec<_> = self
            .host_signing_keys()
            .iter()
            .map(|k| k.fingerprint(HashAlg::Sha256))
            .collect();
        let by_previous = cert.signature_key() != host_signer.public_key().key_data();
        // Expired ones too are refused: a host away longer than its
        // certificate's validity enrolls again, with a new token.
        if cert.cert_type() != CertType::Host
            || cert.valid_principals().first() != Some(&c.name)
            || cert.validate_at(now_u, &host_cas).is_err()
        {
            return Err(refuse(&format!(
                "not a current host certificate for {} from this CA; enroll again if it expired",
                c.name
            ))?);
        }
        let Some(host) = self.store.host(&c.name)? else {
            return Err(refuse(&format!(
                "{} is not enrolled (never, or removed): enroll with a new token",
                c.name
            ))?);
        };
        let host_key = PublicKey::from_openssh(&host.host_key).map_err(internal)?;
        if cert.public_key() != host_key.key_data() || cert.serial() != host.cert_serial {
            return Err(refuse(&format!(
                "not the current host certificate of {} (replaced by a renewal or a new enrollment)",
                c.name
            ))?);
        }
        let message = checkin_message(id, &c.nonce, &body.certificate, &body.report);
        let proved = SshSig::from_pem(&body.signature).is_ok_and(|sig| {
            host_key
                .verify(HOST_CHECKIN_NAMESPACE, message.as_bytes(), &sig)
                .is_ok()
        });
        if !proved {
            return Err(refuse(&format!(
                "the check-in is not signed by the host key enrolled for {}",
                c.name
            ))?);
        }
        self.limit(
            &format!("host-checkin:{}", c.name),
            CHECKINS_PER_MINUTE_PER_HOST,
        )?;

        let mut next = HostRecord {
            last_contact: now,
            held: Some(held(report)),
            ..host.clone()
        };
        let validity = self.config.hosts.cert_validity.as_secs();
        let certificate = if by_previous || renewal_due(host.cert_valid_before, validity, now_u) {
            let serial = Serial::random(&mut rand::rngs::OsRng);
            let skew = self.config.profile.clock_skew.as_secs();
            let valid_before = now_u + validity;
            let cert = build_host_cert(
                host_signer.as_ref(),
                &host_key,
                &host.name,
                &host.aliases,
                serial,
                now_u.saturating_sub(skew),
                valid_before,
            )?;
            next.cert_serial = serial.get();
            next.cert_valid_before = valid_before;
            Some((cert, serial, valid_before))
        } else {
            None
        };
        // A second check-in racing this one lost its challenge already;
        // one by another replica would find the record moved on.
        if !self.store.swap_host(&host, &next)? {
            return Err(ServiceError::WrongState(format!(
                "{} checked in twice at once; the next sync checks in again",
                host.name
            )));
        }
        if let Some((_, serial, valid_before)) = &certificate {
            // Durable before the certificate leaves the CA.
            let audited = self.audit(
                Actor::Host {
                    name: host.name.clone(),
                    client_addr: client.ip().to_string(),
                },
                Event::HostRenewed(HostStep {
                    host: host.name.clone(),
                    group: host.group.clone(),
                    token: host.enrolled_by_token.clone(),
                    detail: format!("replaces serial {}", host.cert_serial),
                    host_key_fingerprint: host.host_key_fingerprint.clone(),
                    serial: serial.get(),
                    valid_before: *valid_before,
                    aliases: host.aliases.clone(),
                }),
            );
            if let Err(e) = audited {
                // The new certificate never leaves: the inventory names
                // the one the host holds again, so its next check-in
                // renews instead of being refused as replaced.
                if !self.store.swap_host(&next, &host)? {
                    tracing::error!(host = %host.name, "a refused renewal could not be undone: the host must enroll again");
                }
                return Err(e);
            }
        }
        let document = serde_json::to_string(&CheckedInDocument {
            kind: HOST_CHECKED_IN_KIND.into(),
            name: host.name,
            nonce: c.nonce,
            certificate: certificate.map(|(cert, _, _)| cert),
            host_ca_keys: self.host_ca_key_lines()?,
        })
        .map_err(internal)?;
        let signed = self.sign_document_bytes(HOST_CHECKED_IN_NAMESPACE, document)?;
        Ok(HostCheckedIn {
            document: signed.document,
            signature: signed.signature,
        })
    }
}

/// What the inventory keeps of a report: the error bounded and escaped
/// (it is shown in operators' terminals).
fn held(r: HostReport) -> HeldReport {
    HeldReport {
        krl_version: r.krl_version,
        krl_signed_at: r.krl_signed_at,
        ca_keys_signed_at: r.ca_keys_signed_at,
        last_error: r.last_error.map(|e| {
            let short: String = e.chars().take(MAX_REPORTED_ERROR_CHARS).collect();
            escape_for_terminal(&short).into_owned()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_with_a_third_of_the_validity_left() {
        let week = 7 * 86_400;
        assert!(!renewal_due(1_000 + week, week, 1_000));
        assert!(!renewal_due(1_000 + week / 3 + 1, week, 1_000));
        assert!(renewal_due(1_000 + week / 3 - 1, week, 1_000));
        assert!(renewal_due(500, week, 1_000));
    }
}
