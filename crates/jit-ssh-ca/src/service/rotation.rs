//! CA key rotation in three audited steps, on a running CA:
//!
//! 1. **stage**: the next key is made (or imported) and published beside
//!    the signing key in the signed key set, so hosts trust both on their
//!    next sync. Nothing it signs exists yet.
//! 2. **activate**: the next key signs certificates, KRLs, signed documents
//!    and audit checkpoints from now on; the previous key stays published
//!    (and in the KRL) so the certificates it signed keep working.
//! 3. **retire**: the previous key leaves the published set, refused until
//!    no certificate it signed can still be valid: activation time plus
//!    the longest validity this CA gives a certificate plus the clock skew
//!    hosts are allowed.
//!
//! The keys sit behind an [`ArcSwap`]: every issuance reads the active key
//! without a lock, and a step swaps it without a restart. Each step is
//! written to `DATA/rotation.json` ([`crate::rotation_state`]) before it
//! takes effect, so a restart resumes where the rotation stood.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ssh_key::{HashAlg, PublicKey};

use jit_ssh_audit::{Actor, Event, KeyRotation};

use super::{rfc3339, Ca, ServiceError};
use crate::rotation_state::{self, Retiring, RoleState, RotationFile, RotationStateError};
use crate::signer::{CaSigner, FileSigner};

/// Which CA key a rotation step is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// The user CA key: user certificates, KRLs, signed documents, checkpoints.
    User,
    /// The host CA key: host certificates.
    Host,
}

impl KeyRole {
    pub fn name(self) -> &'static str {
        match self {
            KeyRole::User => "user",
            KeyRole::Host => "host",
        }
    }
}

/// A staged next key.
#[derive(Clone)]
pub struct Staged {
    pub signer: Arc<dyn CaSigner>,
    pub file: PathBuf,
}

/// One CA key and its rotation: what signs, what comes next, what went.
#[derive(Clone)]
pub struct Slots {
    pub active: Arc<dyn CaSigner>,
    /// The active key's file, which the state file names (`None` for a
    /// signer that is not a file: such a key cannot be rotated here).
    pub active_file: Option<PathBuf>,
    pub staged: Option<Staged>,
    pub retiring: Option<(PublicKey, Retiring)>,
}

impl Slots {
    /// A key with no rotation under way.
    pub fn single(active: Arc<dyn CaSigner>, file: Option<PathBuf>) -> Self {
        Self {
            active,
            active_file: file,
            staged: None,
            retiring: None,
        }
    }

    /// The keys a rotation state names, loaded (with the CA key's
    /// passphrase); `config_file` when no rotation ever happened.
    pub fn open(
        state: Option<&RoleState>,
        config_file: &Path,
        passphrase_file: Option<&Path>,
    ) -> Result<Self, RotationStateError> {
        let load = |p: &Path| -> Result<Arc<dyn CaSigner>, RotationStateError> {
            Ok(Arc::new(FileSigner::new(crate::ca_key::load(
                p,
                passphrase_file,
            )?)))
        };
        let Some(state) = state else {
            return Ok(Self::single(
                load(config_file)?,
                Some(config_file.to_owned()),
            ));
        };
        let staged = match &state.staged {
            Some(f) => Some(Staged {
                signer: load(f)?,
                file: f.clone(),
            }),
            None => None,
        };
        let retiring = match &state.retiring {
            Some(r) => Some((
                PublicKey::from_openssh(&r.public_key)
                    .map_err(|e| RotationStateError::Key(crate::ca_key::CaKeyError::Key(e)))?,
                r.clone(),
            )),
            None => None,
        };
        Ok(Self {
            active: load(&state.active)?,
            active_file: Some(state.active.clone()),
            staged,
            retiring,
        })
    }

    fn state(&self) -> Option<RoleState> {
        Some(RoleState {
            active: self.active_file.clone()?,
            staged: self.staged.as_ref().map(|s| s.file.clone()),
            retiring: self.retiring.as_ref().map(|(_, r)| r.clone()),
        })
    }
}

/// One CA key's [`Slots`], swapped whole by a rotation step.
pub struct KeyRing(ArcSwap<Slots>);

impl KeyRing {
    pub fn new(slots: Slots) -> Self {
        Self(ArcSwap::from_pointee(slots))
    }

    /// The key that signs now.
    pub fn active(&self) -> Arc<dyn CaSigner> {
        self.0.load().active.clone()
    }

    pub fn slots(&self) -> Arc<Slots> {
        self.0.load_full()
    }

    /// What hosts (or clients) are asked to trust: the active key, the
    /// staged next key, the previous key not yet retired.
    pub fn published(&self) -> Vec<PublicKey> {
        let s = self.0.load();
        std::iter::once(s.active.public_key().clone())
            .chain(s.staged.as_ref().map(|n| n.signer.public_key().clone()))
            .chain(s.retiring.as_ref().map(|(k, _)| k.clone()))
            .collect()
    }

    /// Keys whose certificates may still be valid: the active key and the
    /// previous one (the KRL names revoked serials under both).
    pub fn signing_keys(&self) -> Vec<PublicKey> {
        let s = self.0.load();
        std::iter::once(s.active.public_key().clone())
            .chain(s.retiring.as_ref().map(|(k, _)| k.clone()))
            .collect()
    }
}

/// Where a rotation stands, for `jit-ssh-ca rotate status` and each step's answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RotationStatus {
    pub key: KeyRole,
    pub active: String,
    #[serde(default)]
    pub active_file: Option<PathBuf>,
    #[serde(default)]
    pub staged: Option<String>,
    #[serde(default)]
    pub staged_file: Option<PathBuf>,
    #[serde(default)]
    pub retiring: Option<String>,
    /// RFC 3339: when `rotate retire` becomes possible.
    #[serde(default)]
    pub retire_after: Option<String>,
}

fn fingerprint(k: &PublicKey) -> String {
    k.fingerprint(HashAlg::Sha256).to_string()
}

fn refuse(message: String) -> ServiceError {
    ServiceError::WrongState(message)
}

fn state_failed(e: RotationStateError) -> ServiceError {
    tracing::error!(error = %e, source = ?std::error::Error::source(&e), "CA key rotation state");
    ServiceError::Internal(format!("CA key rotation: {e}"))
}

impl Ca {
    /// One rotation step at a time: the step's lock, and the role's keys
    /// as they stand when it starts.
    fn begin_step(
        &self,
        role: KeyRole,
    ) -> Result<(std::sync::MutexGuard<'_, ()>, Arc<Slots>), ServiceError> {
        let step = self
            .rotating
            .lock()
            .map_err(|_| ServiceError::Internal("rotation".into()))?;
        let old = self.ring(role)?.slots();
        Ok((step, old))
    }

    fn ring(&self, role: KeyRole) -> Result<&KeyRing, ServiceError> {
        match role {
            KeyRole::User => Ok(&self.user_keys),
            KeyRole::Host => self.host_keys.as_ref().ok_or_else(|| {
                refuse("this CA has no host CA key: set [hosts] host_ca_key in its config".into())
            }),
        }
    }

    /// The longest a certificate signed by `role`'s key can be valid for:
    /// the longest any policy rule (or break-glass) allows, within the
    /// hard cap; for hosts, the host certificate validity.
    fn longest_validity(&self, role: KeyRole) -> u64 {
        match role {
            KeyRole::User => self
                .config
                .policy
                .rules
                .iter()
                .map(|r| r.max_ttl.max(r.break_glass.unwrap_or_default()))
                .max()
                .unwrap_or(self.config.profile.max_ttl)
                .min(self.config.profile.max_ttl)
                .as_secs(),
            KeyRole::Host => self.config.hosts.cert_validity.as_secs(),
        }
    }

    pub fn rotation_status(&self, role: KeyRole) -> Result<RotationStatus, ServiceError> {
        let s = self.ring(role)?.slots();
        Ok(RotationStatus {
            key: role,
            active: fingerprint(s.active.public_key()),
            active_file: s.active_file.clone(),
            staged: s
                .staged
                .as_ref()
                .map(|n| fingerprint(n.signer.public_key())),
            staged_file: s.staged.as_ref().map(|n| n.file.clone()),
            retiring: s.retiring.as_ref().map(|(k, _)| fingerprint(k)),
            retire_after: s.retiring.as_ref().map(|(_, r)| rfc3339(r.retire_after)),
        })
    }

    /// `rotate stage`: makes the next key (or imports `import`) and
    /// publishes it beside the active key.
    pub fn rotate_stage(
        &self,
        role: KeyRole,
        import: Option<&Path>,
        actor: Actor,
    ) -> Result<RotationStatus, ServiceError> {
        let (_step, old) = self.begin_step(role)?;
        if let Some(n) = &old.staged {
            return Err(refuse(format!(
                "a next {} CA key ({}) is already staged; activate it first (`jit-ssh-ca rotate activate`)",
                role.name(),
                fingerprint(n.signer.public_key())
            )));
        }
        if let Some((k, r)) = &old.retiring {
            return Err(refuse(format!(
                "the previous {} CA key ({}) is still published; retire it first (possible from {})",
                role.name(),
                fingerprint(k),
                rfc3339(r.retire_after)
            )));
        }
        if old.active_file.is_none() {
            return Err(refuse(format!(
                "the {} CA key is not a key file; rotate it where it is kept",
                role.name()
            )));
        }
        let now = self.now();
        let data = &self.config.data_dir;
        let passphrase_file = self.passphrase_file();
        let (file, key) = match import {
            Some(from) => rotation_state::import_key(data, role.name(), now, from, passphrase_file),
            None => {
                let pass = passphrase_file
                    .map(crate::ca_key::read_passphrase)
                    .transpose()
                    .map_err(RotationStateError::from);
                pass.and_then(|p| rotation_state::make_key(data, role.name(), now, p.as_deref()))
            }
        }
        .map_err(|e| match (&e, import) {
            // The operator's file: say what is wrong with it.
            (RotationStateError::Key(_), Some(_)) => ServiceError::invalid(format!("--key: {e}")),
            _ => state_failed(e),
        })?;
        if published_already(self.ring(role)?, key.public_key())
            || self
                .extra_ca_keys
                .iter()
                .any(|k| k.key_data() == key.public_key().key_data())
        {
            let _ = std::fs::remove_file(&file);
            return Err(ServiceError::invalid(
                "that key is already published; stage a new key",
            ));
        }
        let mut next = (*old).clone();
        next.staged = Some(Staged {
            signer: Arc::new(FileSigner::new(key)),
            file: file.clone(),
        });
        let event = Event::CaKeyStaged(KeyRotation {
            key: role.name().into(),
            fingerprint: fingerprint(
                next.staged
                    .as_ref()
                    .map_or(old.active.public_key(), |n| n.signer.public_key()),
            ),
            other_fingerprint: fingerprint(old.active.public_key()),
            retire_after: 0,
            detail: format!(
                "{} {}",
                if import.is_some() {
                    "imported as"
                } else {
                    "made in"
                },
                file.display()
            ),
        });
        if let Err(e) = self.commit(role, &old, next, actor, event) {
            let _ = std::fs::remove_file(&file);
            return Err(e);
        }
        self.rotation_status(role)
    }

    /// `rotate activate`: the staged key signs from now on.
    pub fn rotate_activate(
        &self,
        role: KeyRole,
        actor: Actor,
    ) -> Result<RotationStatus, ServiceError> {
        let (_step, old) = self.begin_step(role)?;
        let Some(staged) = old.staged.clone() else {
            return Err(refuse(format!(
                "no next {} CA key is staged; run `jit-ssh-ca rotate stage` first and let hosts sync",
                role.name()
            )));
        };
        let now = self.now();
        let skew = self.config.profile.clock_skew.as_secs();
        let retire_after = now.saturating_add(
            i64::try_from(self.longest_validity(role) + skew).unwrap_or(i64::MAX / 2),
        );
        let previous = old.active.public_key().clone();
        let next = Slots {
            active: staged.signer.clone(),
            active_file: Some(staged.file.clone()),
            staged: None,
            retiring: Some((
                previous.clone(),
                Retiring {
                    public_key: previous
                        .to_openssh()
                        .map_err(|e| ServiceError::Internal(format!("encoding a CA key: {e}")))?,
                    key_file: old.active_file.clone().unwrap_or_default(),
                    activated_at: now,
                    retire_after,
                },
            )),
        };
        let event = Event::CaKeyActivated(KeyRotation {
            key: role.name().into(),
            fingerprint: fingerprint(staged.signer.public_key()),
            other_fingerprint: fingerprint(&previous),
            retire_after: u64::try_from(retire_after).unwrap_or(0),
            detail: format!(
                "certificates signed by the previous key may be valid until {} ({} s validity + {} s clock skew)",
                rfc3339(retire_after),
                self.longest_validity(role),
                skew
            ),
        });
        self.commit(role, &old, next, actor, event)?;
        self.rotation_status(role)
    }

    /// `rotate retire`: the previous key leaves the published set, once no
    /// certificate it signed can still be valid; `at_once` (a compromised
    /// key) skips the wait and ends those certificates on hosts' next sync.
    pub fn rotate_retire(
        &self,
        role: KeyRole,
        at_once: bool,
        actor: Actor,
    ) -> Result<RotationStatus, ServiceError> {
        let (_step, old) = self.begin_step(role)?;
        let Some((previous, r)) = old.retiring.clone() else {
            return Err(refuse(format!(
                "no previous {} CA key is published; nothing to retire",
                role.name()
            )));
        };
        let now = self.now();
        if now < r.retire_after && !at_once {
            return Err(refuse(format!(
                "certificates signed by the previous {} CA key ({}) may be valid until {}: retire it then (in {} s), or now with --now if the key is compromised",
                role.name(),
                fingerprint(&previous),
                rfc3339(r.retire_after),
                r.retire_after - now
            )));
        }
        let mut next = (*old).clone();
        next.retiring = None;
        let event = Event::CaKeyRetired(KeyRotation {
            key: role.name().into(),
            fingerprint: fingerprint(&previous),
            other_fingerprint: fingerprint(old.active.public_key()),
            retire_after: u64::try_from(r.retire_after).unwrap_or(0),
            detail: if now < r.retire_after {
                format!(
                    "retired early (--now), {} s before its certificates expire: they stop working on hosts' next sync; key file {} kept",
                    r.retire_after - now,
                    r.key_file.display()
                )
            } else {
                format!(
                    "no longer published; its key file {} is kept",
                    r.key_file.display()
                )
            },
        });
        self.commit(role, &old, next, actor, event)?;
        self.rotation_status(role)
    }

    fn passphrase_file(&self) -> Option<&Path> {
        match &self.config.signer {
            crate::config::SignerConfig::File {
                passphrase_file, ..
            } => passphrase_file.as_deref(),
            crate::config::SignerConfig::Pkcs11(_) => None,
        }
    }

    /// Writes the state with `next` in place of `old`, audits the step,
    /// then swaps it in. A failed audit puts the old state file back, so
    /// nothing takes effect unaudited.
    fn commit(
        &self,
        role: KeyRole,
        old: &Slots,
        next: Slots,
        actor: Actor,
        event: Event,
    ) -> Result<(), ServiceError> {
        let state = |user: &Slots, host: Option<&Slots>| RotationFile {
            version: 0,
            user: user.state(),
            host: host.and_then(Slots::state),
        };
        let host_now = self.host_keys.as_ref().map(KeyRing::slots);
        let user_now = self.user_keys.slots();
        let (before, after) = match role {
            KeyRole::User => (
                state(old, host_now.as_deref()),
                state(&next, host_now.as_deref()),
            ),
            KeyRole::Host => (state(&user_now, Some(old)), state(&user_now, Some(&next))),
        };
        let data = &self.config.data_dir;
        after.save(data).map_err(state_failed)?;
        if let Err(e) = self.audit(actor, event) {
            if let Err(e) = before.save(data) {
                tracing::error!(error = %e, "putting the rotation state back after a failed audit append");
            }
            return Err(e);
        }
        self.ring(role)?.0.store(Arc::new(next));
        // What was signed by, or lists, the old set is signed again.
        self.signed_cache.clear();
        self.krl_cache.clear_published();
        tracing::info!(key = role.name(), "CA key rotation step done");
        Ok(())
    }
}

fn published_already(ring: &KeyRing, key: &PublicKey) -> bool {
    ring.published()
        .iter()
        .any(|k| k.key_data() == key.key_data())
}
