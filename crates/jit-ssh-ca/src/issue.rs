//! Issuing a certificate: pick a fresh serial, build, sign, and record it
//! durably in the audit log — and only then hand it out. If the record
//! cannot be written the certificate is dropped (fail closed).

use ssh_key::{Certificate, HashAlg, PublicKey};

use jit_ssh_audit::{Actor, AuditLog, CertificateIssued, Event, IssuedVia};
use jit_ssh_proto::api::IssuedCertificate;

use crate::names::{Reason, Serial};
use crate::profile::{CertFields, CertProfile, CertSpec, ProfileError};
use crate::signer::{CaSigner, SignError};

/// Serial draws before giving up: 64 random bits collide essentially
/// never, so needing more than one means something is badly wrong.
const SERIAL_ATTEMPTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error("checking the audit log for serial reuse failed")]
    SerialLookup(#[source] jit_ssh_audit::StoreError),
    #[error("no unused serial found in {SERIAL_ATTEMPTS} random draws; the audit log or the random source is suspect")]
    SerialsExhausted,
    #[error("the issuance could not be recorded in the audit log, so no certificate was issued")]
    Audit(#[source] jit_ssh_audit::AppendError),
}

/// Everything about one issuance besides the certificate spec.
pub struct IssueRequest<'a> {
    pub spec: &'a CertSpec,
    pub public_key: &'a PublicKey,
    pub reason: &'a Reason,
    pub actor: Actor,
    pub via: IssuedVia,
    /// The session policy that applied (none for offline issuance).
    pub session: Option<jit_ssh_audit::SessionTerms>,
    /// Records of the step that led here (the touch, the policy
    /// decision), committed together with the certificate's record:
    /// one commit for the step instead of one per record. If no
    /// certificate comes of it they are still appended, on their own.
    pub preceding: Vec<(Actor, Event)>,
}

#[derive(Debug)]
pub struct Issued {
    pub certificate: Certificate,
    pub fields: CertFields,
    /// Sequence number of the audit record that made it durable.
    pub audit_seq: u64,
}

pub fn issue(
    signer: &dyn CaSigner,
    audit: &dyn AuditLog,
    profile: &CertProfile,
    mut req: IssueRequest<'_>,
    now: u64,
) -> Result<Issued, IssueError> {
    let preceding = std::mem::take(&mut req.preceding);
    let signed = fresh_serial(audit).and_then(|serial| {
        let (builder, fields) = profile.build(req.spec, req.public_key, serial, now)?;
        Ok((serial, signer.sign(builder)?, fields))
    });
    let (serial, certificate, fields) = match signed {
        Ok(s) => s,
        Err(e) => {
            // The trail still shows the touch and the decision; the
            // error that matters to the caller is the signing one.
            if !preceding.is_empty() {
                if let Err(a) = audit.append_all(preceding) {
                    tracing::error!(error = %a, "recording the steps of a failed issuance");
                }
            }
            return Err(e);
        }
    };
    let event = Event::CertificateIssued(CertificateIssued {
        serial: serial.get(),
        key_id: fields.key_id.to_string(),
        user: req.spec.user.to_string(),
        host: req.spec.host.to_string(),
        account: req.spec.account.to_string(),
        principals: principals(&fields),
        valid_after: fields.valid_after,
        valid_before: fields.valid_before,
        public_key_fingerprint: req.public_key.fingerprint(HashAlg::Sha256).to_string(),
        ca_fingerprint: signer.public_key().fingerprint(HashAlg::Sha256).to_string(),
        grant: req.spec.grant.to_string(),
        reason: req.reason.to_string(),
        critical_options: fields.critical_options.clone(),
        extensions: fields
            .extensions
            .iter()
            .map(|e| e.name().to_owned())
            .collect(),
        via: req.via,
        session: req.session,
    });
    let mut entries = preceding;
    entries.push((req.actor, event));
    let records = audit.append_all(entries).map_err(IssueError::Audit)?;
    let audit_seq = records.last().map_or(0, |r| r.seq);
    Ok(Issued {
        certificate,
        fields,
        audit_seq,
    })
}

impl Issued {
    /// What the requester gets back: the certificate line and, for
    /// display, what it says.
    pub fn for_requester(&self) -> Result<IssuedCertificate, ssh_key::Error> {
        Ok(IssuedCertificate {
            certificate: self.certificate.to_openssh()?,
            serial: self.fields.serial.get(),
            principals: principals(&self.fields),
            valid_after: self.fields.valid_after,
            valid_before: self.fields.valid_before,
        })
    }
}

/// The principals as the audit record and the requester both show them.
fn principals(fields: &CertFields) -> Vec<String> {
    fields.principals.iter().map(ToString::to_string).collect()
}

fn fresh_serial(audit: &dyn AuditLog) -> Result<Serial, IssueError> {
    let mut rng = rand::rngs::OsRng;
    for _ in 0..SERIAL_ATTEMPTS {
        let serial = Serial::random(&mut rng);
        if !audit
            .serial_issued(serial.get())
            .map_err(IssueError::SerialLookup)?
        {
            return Ok(serial);
        }
    }
    Err(IssueError::SerialsExhausted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{AccountName, GrantId, HostName, UserName};
    use crate::signer::FileSigner;
    use jit_ssh_audit::{AppendError, AuditQuery, AuditRecord, StoreError, VerifyReport};
    use ssh_key::{Algorithm, PrivateKey};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// An audit log whose storage is broken, or that claims serials exist.
    /// `appended` keeps the kinds of records offered while `append_fails`
    /// is false (every append still answers with an error).
    struct Broken {
        append_fails: bool,
        taken_serials: AtomicUsize,
        appended: std::sync::Mutex<Vec<&'static str>>,
    }

    impl AuditLog for Broken {
        fn append_all(&self, e: Vec<(Actor, Event)>) -> Result<Vec<AuditRecord>, AppendError> {
            if !self.append_fails {
                let mut kinds = self.appended.lock().unwrap();
                kinds.extend(e.iter().map(|(_, event)| event.kind()));
            }
            Err(AppendError::Commit(std::sync::Arc::new(
                StoreError::Poisoned,
            )))
        }
        fn query(&self, _: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
            Ok(vec![])
        }
        fn serial_issued(&self, _: u64) -> Result<bool, StoreError> {
            Ok(self.taken_serials.fetch_sub(1, Ordering::SeqCst) > 0)
        }
        fn verify(&self) -> Result<VerifyReport, StoreError> {
            unimplemented!("not used")
        }
        fn head(&self) -> jit_ssh_audit::ChainHead {
            jit_ssh_audit::ChainHead::default()
        }
        fn first_seq_at(&self, _: time::OffsetDateTime) -> Result<u64, StoreError> {
            Ok(1)
        }
        fn export(
            &self,
            _: u64,
            _: u64,
            _: &mut dyn FnMut(&[u8]) -> bool,
        ) -> Result<u64, StoreError> {
            Ok(0)
        }
    }

    fn spec() -> CertSpec {
        CertSpec {
            user: UserName::parse("alice").unwrap(),
            host: HostName::parse("db.dev").unwrap(),
            account: AccountName::parse("oncall").unwrap(),
            grant: GrantId::random(&mut rand::rngs::OsRng),
            ttl: Duration::from_secs(300),
            source_address: vec![],
            force_command: None,
            extensions: vec![],
            break_glass: false,
        }
    }

    /// An offline issuance of `spec` for `user`'s key, after `preceding`.
    fn request<'a>(
        spec: &'a CertSpec,
        user: &'a PrivateKey,
        reason: &'a Reason,
        preceding: Vec<(Actor, Event)>,
    ) -> IssueRequest<'a> {
        IssueRequest {
            spec,
            public_key: user.public_key(),
            reason,
            actor: Actor::System,
            via: IssuedVia::OfflineSign,
            session: None,
            preceding,
        }
    }

    fn keys() -> (FileSigner, PrivateKey) {
        let mut rng = ssh_key::rand_core::OsRng;
        (
            FileSigner::new(PrivateKey::random(&mut rng, Algorithm::Ed25519).unwrap()),
            PrivateKey::random(&mut rng, Algorithm::Ed25519).unwrap(),
        )
    }

    #[test]
    fn no_certificate_when_the_audit_log_fails() {
        let (signer, user) = keys();
        let audit = Broken {
            append_fails: true,
            taken_serials: AtomicUsize::new(0),
            appended: Default::default(),
        };
        let reason = Reason::parse("incident 42").unwrap();
        let spec = spec();
        let req = request(&spec, &user, &reason, vec![]);
        let err = issue(&signer, &audit, &CertProfile::default(), req, 1_800_000_000).unwrap_err();
        assert!(matches!(err, IssueError::Audit(_)), "{err}");
    }

    #[test]
    fn gives_up_rather_than_reuse_a_serial() {
        let (signer, user) = keys();
        let audit = Broken {
            append_fails: false,
            taken_serials: AtomicUsize::new(usize::MAX / 2),
            appended: Default::default(),
        };
        let reason = Reason::parse("incident 42").unwrap();
        let spec = spec();
        let req = request(&spec, &user, &reason, vec![]);
        let err = issue(&signer, &audit, &CertProfile::default(), req, 1_800_000_000).unwrap_err();
        assert!(matches!(err, IssueError::SerialsExhausted), "{err}");
        assert!(audit.appended.lock().unwrap().is_empty());
    }

    #[test]
    fn issues_and_records_with_a_real_log() {
        let (signer, user) = keys();
        let dir = tempfile::tempdir().unwrap();
        let audit = jit_ssh_audit_disk::DiskAuditLog::open(dir.path()).unwrap();
        let reason = Reason::parse("incident 42").unwrap();
        let spec = spec();
        let mut serials = std::collections::HashSet::new();
        for _ in 0..20 {
            let req = IssueRequest {
                actor: Actor::Operator {
                    login: "root".into(),
                },
                ..request(&spec, &user, &reason, vec![])
            };
            let issued =
                issue(&signer, &audit, &CertProfile::default(), req, 1_800_000_000).unwrap();
            assert!(serials.insert(issued.certificate.serial()));
            let recs = audit
                .query(&AuditQuery {
                    serial: Some(issued.certificate.serial()),
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(recs.len(), 1);
            assert_eq!(recs[0].seq, issued.audit_seq);
        }
    }

    fn touch(spec: &CertSpec) -> (Actor, Event) {
        let step = jit_ssh_audit::record::RequestStep {
            request: spec.grant.to_string(),
            user: spec.user.to_string(),
            host: spec.host.to_string(),
            detail: String::new(),
        };
        (Actor::System, Event::MfaVerified(step))
    }

    fn kinds(audit: &dyn AuditLog) -> Vec<&'static str> {
        let all = audit.query(&AuditQuery::default()).unwrap();
        all.iter().map(|r| r.event.kind()).collect()
    }

    #[test]
    fn the_steps_before_are_committed_with_the_certificate_record() {
        let (signer, user) = keys();
        let dir = tempfile::tempdir().unwrap();
        let audit = jit_ssh_audit_disk::DiskAuditLog::open(dir.path()).unwrap();
        let reason = Reason::parse("incident 42").unwrap();
        let spec = spec();
        let req = request(&spec, &user, &reason, vec![touch(&spec)]);
        let issued = issue(&signer, &audit, &CertProfile::default(), req, 1_800_000_000).unwrap();
        assert_eq!(kinds(&audit), ["mfa_verified", "certificate_issued"]);
        assert_eq!(issued.audit_seq, 2);
    }

    #[test]
    fn the_steps_before_are_recorded_when_no_certificate_comes_of_them() {
        let (signer, user) = keys();
        // Every serial looks taken: the issuance fails before signing.
        let audit = Broken {
            append_fails: false,
            taken_serials: AtomicUsize::new(usize::MAX / 2),
            appended: Default::default(),
        };
        let reason = Reason::parse("incident 42").unwrap();
        let spec = spec();
        let req = request(&spec, &user, &reason, vec![touch(&spec)]);
        let err = issue(&signer, &audit, &CertProfile::default(), req, 1_800_000_000).unwrap_err();
        assert!(matches!(err, IssueError::SerialsExhausted), "{err}");
        assert_eq!(*audit.appended.lock().unwrap(), ["mfa_verified"]);
    }
}
