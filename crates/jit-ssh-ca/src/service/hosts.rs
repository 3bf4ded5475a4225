//! Hosts with an identity: enrollment tokens an operator makes, a host's
//! proof of its token and its host key, and the host certificate the host
//! CA key signs (never the user CA key). Every token, enrollment and
//! refusal is an audit record; the certificate is returned only after its
//! record is durable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ssh_key::certificate::{Builder, CertType};
use ssh_key::{Algorithm, HashAlg, PublicKey, SshSig};

use jit_ssh_audit::{Actor, Event, HostStep};
use jit_ssh_proto::hosts::{
    challenge_message, EnrolledDocument, EnrollmentToken, HostCaKeySet, HostEnrollChallenge,
    HostEnrollFinish, HostEnrollStart, HostEnrolled, HOST_CA_KEYS_KIND, HOST_CA_KEYS_NAMESPACE,
    HOST_ENROLLED_KIND, HOST_ENROLLED_NAMESPACE, HOST_ENROLL_NAMESPACE, MAX_ALIASES,
};
use jit_ssh_proto::signed::SignedDocument;

use super::{random_id, random_token, rfc3339, same, sha256_hex, Ca, KeyRing, ServiceError};
use crate::names::{HostName, Serial};
use crate::policy::HostGlob;
use crate::signer::CaSigner;
use crate::store::{HostChallenge, HostRecord, HostToken};

/// How long a host has to answer its challenge.
pub(super) const CHALLENGE_TTL: i64 = 300;
/// Enrollment attempts per token per minute (a token is a resource).
const ENROLLS_PER_MINUTE_PER_TOKEN: u32 = 10;

/// What `host-token` hands the operator.
#[derive(Debug, Clone)]
pub struct IssuedHostToken {
    pub token: EnrollmentToken,
    /// Unix seconds.
    pub expires_at: i64,
    pub uses: u32,
}

fn refuse(message: impl Into<String>) -> ServiceError {
    ServiceError::Forbidden(message.into())
}

impl Ca {
    pub(super) fn host_signer(&self) -> Result<Arc<dyn CaSigner>, ServiceError> {
        self.host_keys.as_ref().map(KeyRing::active).ok_or_else(|| {
            ServiceError::WrongState(
                "this CA enrolls no hosts: set [hosts] host_ca_key in its config (docs/hosts.md)"
                    .into(),
            )
        })
    }

    /// The host CA keys clients trust (`@cert-authority`): the active one,
    /// and during a rotation the next or the previous one.
    pub(super) fn host_ca_key_lines(&self) -> Result<Vec<String>, ServiceError> {
        let ring = self
            .host_keys
            .as_ref()
            .ok_or_else(|| ServiceError::WrongState("this CA enrolls no hosts".into()))?;
        ring.published()
            .iter()
            .map(|k| k.to_openssh())
            .collect::<Result<_, _>>()
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// Host CA keys whose certificates may still be valid.
    pub(super) fn host_signing_keys(&self) -> Vec<PublicKey> {
        self.host_keys
            .as_ref()
            .map(KeyRing::signing_keys)
            .unwrap_or_default()
    }

    /// Makes an enrollment token for `group` (a host group of the policy),
    /// optionally narrowed to names matching `name_pattern`.
    pub fn create_host_token(
        &self,
        group: &str,
        name_pattern: Option<&str>,
        ttl: Option<Duration>,
        uses: u32,
        actor: Actor,
    ) -> Result<IssuedHostToken, ServiceError> {
        self.host_signer()?;
        if !self.config.policy.host_groups.contains_key(group) {
            return Err(ServiceError::invalid(format!(
                "no host group {group:?} in the policy"
            )));
        }
        if let Some(p) = name_pattern {
            HostGlob::parse(p).map_err(ServiceError::invalid)?;
        }
        if uses == 0 {
            return Err(ServiceError::invalid("--uses must be at least 1"));
        }
        let ttl = ttl.unwrap_or(self.config.hosts.token_ttl);
        let expires_at = self.now() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let (id, secret) = (random_id(), random_token());
        let created_by = match &actor {
            Actor::User { name } => name.clone(),
            Actor::Operator { login } => login.clone(),
            _ => String::new(),
        };
        self.audit(
            actor,
            Event::HostTokenCreated(HostStep {
                host: String::new(),
                group: group.to_owned(),
                token: id.clone(),
                detail: format!(
                    "{uses} use(s) until {}{}",
                    rfc3339(expires_at),
                    name_pattern
                        .map(|p| format!(", names {p}"))
                        .unwrap_or_default()
                ),
                host_key_fingerprint: String::new(),
                serial: 0,
                valid_before: 0,
                aliases: vec![],
            }),
        )?;
        self.store.put_host_token(
            &id,
            &HostToken {
                secret_hash: sha256_hex(&[&secret]),
                group: group.to_owned(),
                name_pattern: name_pattern.map(str::to_owned),
                expires_at,
                uses_left: uses,
                created_by,
            },
        )?;
        Ok(IssuedHostToken {
            token: EnrollmentToken {
                id,
                secret,
                ca_fingerprint: self
                    .signer()
                    .public_key()
                    .fingerprint(HashAlg::Sha256)
                    .to_string(),
            },
            expires_at,
            uses,
        })
    }

    /// Audits a refused enrollment step and returns the error to send.
    fn host_refused(
        &self,
        client: SocketAddr,
        token: &str,
        host: &str,
        why: &str,
    ) -> Result<ServiceError, ServiceError> {
        self.refused_host_step(client, Event::HostEnrollRefused, token, host, why)
    }

    /// Audits a host step (an enrollment or a check-in) refused to an
    /// unauthenticated caller, as `kind`, and returns the error to send.
    pub(super) fn refused_host_step(
        &self,
        client: SocketAddr,
        kind: fn(HostStep) -> Event,
        token: &str,
        host: &str,
        why: &str,
    ) -> Result<ServiceError, ServiceError> {
        self.audit(
            Actor::claim(client.ip(), ""),
            kind(HostStep {
                host: host.to_owned(),
                group: String::new(),
                token: token.to_owned(),
                detail: why.to_owned(),
                host_key_fingerprint: String::new(),
                serial: 0,
                valid_before: 0,
                aliases: vec![],
            }),
        )?;
        Ok(refuse(why))
    }

    /// Step 1: the token and the name; answers a challenge for the host key.
    pub fn host_enroll_start(
        &self,
        body: &HostEnrollStart,
        client: SocketAddr,
    ) -> Result<HostEnrollChallenge, ServiceError> {
        self.host_signer()?;
        self.limit_address(client)?;
        if !super::is_id(&body.token_id) {
            return Err(ServiceError::invalid("token_id is not a token id"));
        }
        self.limit(
            &format!("host-token:{}", body.token_id),
            ENROLLS_PER_MINUTE_PER_TOKEN,
        )?;
        let name = HostName::parse(&body.name).map_err(ServiceError::invalid)?;
        if body.aliases.len() > MAX_ALIASES {
            return Err(ServiceError::invalid(format!(
                "at most {MAX_ALIASES} aliases"
            )));
        }
        let mut aliases = body
            .aliases
            .iter()
            .map(|a| HostName::parse(a).map_err(|e| ServiceError::invalid(format!("alias: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        aliases.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        aliases.dedup_by(|a, b| a.as_str() == b.as_str());
        aliases.retain(|a| a.as_str() != name.as_str());
        let host_key = PublicKey::from_openssh(body.host_key.trim())
            .map_err(|e| ServiceError::invalid(format!("host_key: {e}")))?;
        if host_key.algorithm() != Algorithm::Ed25519 {
            return Err(ServiceError::invalid(
                "host_key must be the host's ed25519 key (/etc/ssh/ssh_host_ed25519_key.pub)",
            ));
        }
        if self
            .store
            .host_key_revoked(&host_key.fingerprint(HashAlg::Sha256).to_string())?
        {
            return Err(self.host_refused(
                client,
                &body.token_id,
                name.as_str(),
                "this host key belongs to a removed host; enroll with a new host key",
            )?);
        }
        let now = self.now();
        let token = self.store.host_token(&body.token_id)?;
        let Some(token) = token.filter(|t| {
            same(&t.secret_hash, &sha256_hex(&[&body.token_secret]))
                && t.expires_at > now
                && t.uses_left > 0
        }) else {
            return Err(self.host_refused(
                client,
                &body.token_id,
                name.as_str(),
                "the enrollment token is unknown, used up or expired; ask for a new one (jit-ssh-ca host-token)",
            )?);
        };
        let may_enroll = |n: &str| {
            let in_group = self
                .config
                .policy
                .host_groups
                .get(&token.group)
                .is_some_and(|g| g.hosts.iter().any(|h| h.matches(n)));
            let in_pattern = token
                .name_pattern
                .as_deref()
                .and_then(|p| HostGlob::parse(p).ok())
                .is_none_or(|p| p.matches(n));
            in_group && in_pattern
        };
        if let Some(outside) = std::iter::once(&name)
            .chain(&aliases)
            .find(|n| !may_enroll(n.as_str()))
        {
            return Err(self.host_refused(
                client,
                &body.token_id,
                name.as_str(),
                &format!(
                    "{outside} is not a name this token may enroll (host group {}{})",
                    token.group,
                    token
                        .name_pattern
                        .as_deref()
                        .map(|p| format!(", names {p}"))
                        .unwrap_or_default()
                ),
            )?);
        }
        if let Some(why) = self.names_taken(name.as_str(), aliases.iter().map(HostName::as_str))? {
            return Err(self.host_refused(client, &body.token_id, name.as_str(), &why)?);
        }
        let id = random_id();
        let challenge = HostChallenge {
            token_id: body.token_id.clone(),
            name: name.to_string(),
            host_key: host_key
                .to_openssh()
                .map_err(|e| ServiceError::Internal(e.to_string()))?,
            nonce: random_token(),
            expires_at: now + CHALLENGE_TTL,
            checkin: false,
            aliases: aliases.iter().map(ToString::to_string).collect(),
        };
        self.store.put_host_challenge(&id, &challenge)?;
        Ok(HostEnrollChallenge {
            id,
            nonce: challenge.nonce,
            expires_at: rfc3339(challenge.expires_at),
        })
    }

    /// Step 2: the host key's signature over the challenge. Spends one use
    /// of the token, signs the host certificate, audits, and answers with a
    /// document the user CA key signs.
    pub fn host_enroll_finish(
        &self,
        id: &str,
        body: &HostEnrollFinish,
        client: SocketAddr,
    ) -> Result<HostEnrolled, ServiceError> {
        let host_signer = self.host_signer()?;
        self.limit_address(client)?;
        if !super::is_id(id) {
            return Err(ServiceError::NotFound("enrollment"));
        }
        // Single use: removed before the signature is checked.
        let c = self
            .store
            .take_host_challenge(id)?
            .filter(|c| !c.checkin)
            .ok_or(ServiceError::NotFound("enrollment"))?;
        let now = self.now();
        if c.expires_at <= now {
            return Err(self.host_refused(
                client,
                &c.token_id,
                &c.name,
                "the challenge expired; enroll again",
            )?);
        }
        let host_key = PublicKey::from_openssh(&c.host_key)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let proved = SshSig::from_pem(&body.signature).is_ok_and(|sig| {
            host_key
                .verify(
                    HOST_ENROLL_NAMESPACE,
                    challenge_message(id, &c.nonce).as_bytes(),
                    &sig,
                )
                .is_ok()
        });
        if !proved {
            return Err(self.host_refused(
                client,
                &c.token_id,
                &c.name,
                "the challenge is not signed by the host key named in this enrollment",
            )?);
        }
        // Again: another host may have taken a name since the challenge.
        if let Some(why) = self.names_taken(&c.name, c.aliases.iter().map(String::as_str))? {
            return Err(self.host_refused(client, &c.token_id, &c.name, &why)?);
        }
        let Some(token) = self.store.use_host_token(&c.token_id, now)? else {
            return Err(self.host_refused(
                client,
                &c.token_id,
                &c.name,
                "the enrollment token was used up or expired meanwhile",
            )?);
        };
        let fingerprint = host_key.fingerprint(HashAlg::Sha256).to_string();
        let serial = Serial::random(&mut rand::rngs::OsRng);
        let skew = self.config.profile.clock_skew.as_secs();
        let now_u = u64::try_from(now).unwrap_or(0);
        let valid_before = now_u + self.config.hosts.cert_validity.as_secs();
        let cert = build_host_cert(
            host_signer.as_ref(),
            &host_key,
            &c.name,
            &c.aliases,
            serial,
            now_u.saturating_sub(skew),
            valid_before,
        )?;
        // Durable before anything leaves the CA.
        self.audit(
            Actor::claim(client.ip(), ""),
            Event::HostEnrolled(HostStep {
                host: c.name.clone(),
                group: token.group.clone(),
                token: c.token_id.clone(),
                detail: format!("host certificate for {}", c.name),
                host_key_fingerprint: fingerprint.clone(),
                serial: serial.get(),
                valid_before,
                aliases: c.aliases.clone(),
            }),
        )?;
        self.store.put_host(&HostRecord {
            name: c.name.clone(),
            group: token.group,
            host_key: c.host_key.clone(),
            host_key_fingerprint: fingerprint,
            enrolled_by_token: c.token_id,
            enrolled_at: now,
            cert_serial: serial.get(),
            cert_valid_before: valid_before,
            last_contact: now,
            held: None,
            aliases: c.aliases.clone(),
        })?;
        let document = serde_json::to_string(&EnrolledDocument {
            kind: HOST_ENROLLED_KIND.into(),
            name: c.name,
            nonce: c.nonce,
            certificate: cert,
            host_ca_keys: self.host_ca_key_lines()?,
        })
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let signed = self.sign_document_bytes(HOST_ENROLLED_NAMESPACE, document)?;
        Ok(HostEnrolled {
            document: signed.document,
            signature: signed.signature,
            ca_keys: self.ca_keys()?,
        })
    }

    /// Why `name` with `aliases` would take a name another enrolled host
    /// answers to, if it would. A token may enroll (or re-enroll) `name`
    /// itself, openly; but an alias naming another host would vouch for a
    /// second machine as that host while it stays enrolled and unaware,
    /// and removing that host would not revoke this certificate.
    fn names_taken<'a>(
        &self,
        name: &str,
        aliases: impl Iterator<Item = &'a str> + Clone,
    ) -> Result<Option<String>, ServiceError> {
        for other in self.store.hosts()? {
            if other.name == name {
                continue;
            }
            let taken = if other.aliases.iter().any(|a| a == name) {
                Some(name)
            } else {
                aliases
                    .clone()
                    .find(|a| *a == other.name || other.aliases.iter().any(|o| o == a))
            };
            if let Some(taken) = taken {
                return Ok(Some(format!(
                    "{taken} is already a name of the enrolled host {}: remove that host first (jit-ssh-ca host remove)",
                    other.name
                )));
            }
        }
        Ok(None)
    }

    /// `GET /v1/host-ca-keys`: the host CA keys and the host patterns they
    /// vouch for, signed by the user CA key (clients hold it).
    pub fn host_ca_keys(&self) -> Result<SignedDocument, ServiceError> {
        self.host_signer()?;
        let mut patterns: Vec<String> = self
            .config
            .policy
            .host_groups
            .values()
            .flat_map(|g| g.hosts.iter().map(|h| h.as_str().to_owned()))
            .collect();
        patterns.sort();
        patterns.dedup();
        let set = HostCaKeySet {
            kind: HOST_CA_KEYS_KIND.into(),
            issued_at: u64::try_from(self.now()).unwrap_or(0),
            keys: self.host_ca_key_lines()?,
            patterns,
            revoked_host_keys: self.store.revoked_host_keys()?,
        };
        let document =
            serde_json::to_string(&set).map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.sign_document_bytes(HOST_CA_KEYS_NAMESPACE, document)
    }
}

/// A host certificate: type host, the host's name and its aliases as
/// principals, key id `jit-ssh-host:NAME:SERIAL`.
pub(super) fn build_host_cert(
    signer: &dyn CaSigner,
    host_key: &PublicKey,
    name: &str,
    aliases: &[String],
    serial: Serial,
    valid_after: u64,
    valid_before: u64,
) -> Result<String, ServiceError> {
    let build = || -> Result<String, ssh_key::Error> {
        let mut b = Builder::new_with_random_nonce(
            &mut rand::rngs::OsRng,
            host_key.key_data().clone(),
            valid_after,
            valid_before,
        )?;
        b.serial(serial.get())?;
        b.key_id(format!("jit-ssh-host:{name}:{serial}"))?;
        b.cert_type(CertType::Host)?;
        b.valid_principal(name)?;
        for alias in aliases {
            b.valid_principal(alias)?;
        }
        b.comment(name)?;
        let cert = signer.sign(b).map_err(|e| e.0)?;
        cert.to_openssh()
    };
    build().map_err(|e| ServiceError::Internal(format!("host certificate: {e}")))
}
