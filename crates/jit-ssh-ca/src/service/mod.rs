//! The CA server's operations as plain methods: create and read access
//! requests, run the WebAuthn ceremonies, decide, issue. HTTP handlers
//! parse, call one of these, and map the result; nothing more.
//!
//! Methods that touch storage block (sled, fsync): the HTTP layer calls
//! them on the blocking pool.

mod approval_standing;
mod approvals;
mod audit_read;
mod backup;
mod cert_owner;
mod confirm;
mod credentials;
mod decide;
mod enroll;
mod host_checkin;
mod host_inventory;
mod hosts;
mod limits;
mod published;
mod reach;
mod ready;
mod recording_bounds;
mod recording_caps;
mod recording_ids;
mod recording_read;
mod recording_upload;
mod records;
mod requests;
mod retention;
mod revocation;
mod revoke_flow;
mod rotation;
mod sessions;
mod setup_error;
mod waiters;

use std::sync::Arc;

use sha2::{Digest, Sha256};
use ssh_key::PublicKey;
use webauthn_rs::{Webauthn, WebauthnBuilder};

use jit_ssh_audit::{Actor, AuditLog, Event};
use jit_ssh_proto::error::code;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::signer::CaSigner;
use crate::store::{Store, StoreError};

pub use confirm::Confirmable;
pub use hosts::IssuedHostToken;
pub use limits::{client_key, RateLimiter};
pub use published::{MANIFEST_VALIDITY, RESIGN_AFTER};
pub use ready::{Readiness, READY_NAMESPACE};
pub use recording_upload::Recordings;
pub use revocation::PublishedKrl;
pub use rotation::{KeyRing, KeyRole, RotationStatus, Slots, Staged};
pub use sessions::SignedIn;
pub use setup_error::SetupError;
pub use waiters::Waiters;

/// WebAuthn starts plus finishes one resource may see per minute: a
/// person needs two per attempt, so this allows a few retries.
const CEREMONIES_PER_MINUTE_PER_RESOURCE: u32 = 10;

/// Why an operation failed. `Internal` details are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("missing or wrong request secret")]
    Unauthorized,
    #[error("{0} has no enrolled security key or passkey; ask an admin for an enrollment link (jit-ssh-ca invite {0})")]
    NotEnrolled(String),
    #[error("{0}")]
    WrongState(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} is blocked by a revocation; an admin re-enables them with `jit-ssh-ca enable-user {0}`")]
    UserBlocked(String),
    #[error("WebAuthn check failed: {0}")]
    MfaFailed(String),
    #[error("this enrollment link is unknown, already used, or expired; ask for a new one")]
    InviteInvalid,
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
    #[error("internal error ({0}); nothing was issued")]
    Internal(String),
    #[error(
        "the CA's {0} cannot be reached just now; nothing was issued or changed, retry shortly"
    )]
    Unavailable(&'static str),
    #[error("{0}: nothing of this upload was stored; keep the chunks and retry later")]
    InsufficientStorage(String),
    /// Too many changes at once to the same thing (a user's credentials):
    /// this one was not applied, and may succeed when tried again.
    #[error("{0}")]
    Busy(String),
}

impl ServiceError {
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Invalid { code, .. } => code,
            ServiceError::NotFound(_) => code::NOT_FOUND,
            ServiceError::Unauthorized => code::UNAUTHORIZED,
            ServiceError::NotEnrolled(_) => code::NOT_ENROLLED,
            ServiceError::WrongState(_) => code::WRONG_STATE,
            ServiceError::Forbidden(_) => code::FORBIDDEN,
            ServiceError::UserBlocked(_) => code::USER_BLOCKED,
            ServiceError::MfaFailed(_) => code::MFA_FAILED,
            ServiceError::InviteInvalid => code::INVITE_INVALID,
            ServiceError::RateLimited(_) => code::RATE_LIMITED,
            ServiceError::Internal(_) => code::INTERNAL,
            ServiceError::Unavailable(_) => code::UNAVAILABLE,
            ServiceError::InsufficientStorage(_) => code::INSUFFICIENT_STORAGE,
            ServiceError::Busy(_) => code::UNAVAILABLE,
        }
    }

    pub(crate) fn invalid(message: impl std::fmt::Display) -> Self {
        ServiceError::Invalid {
            code: code::INVALID_FIELD,
            message: message.to_string(),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, source = ?std::error::Error::source(&e), "state store failed");
        if e.is_unavailable() {
            return ServiceError::Unavailable("state store");
        }
        ServiceError::Internal("state store".into())
    }
}

/// The running CA: configuration, WebAuthn relying party, signer, stores.
pub struct Ca {
    pub config: Config,
    webauthn: Webauthn,
    /// The user CA key: what signs now, and a rotation's next or previous key.
    user_keys: KeyRing,
    store: Arc<dyn Store>,
    audit: Arc<dyn AuditLog>,
    limiter: RateLimiter,
    pub waiters: Arc<Waiters>,
    krl_cache: revocation::KrlCache,
    signed_cache: published::SignedCache,
    /// Public keys published beside the signing key (a staged rotation).
    extra_ca_keys: Vec<ssh_key::PublicKey>,
    /// The host CA key, when hosts are enrolled (never the user CA key).
    host_keys: Option<KeyRing>,
    /// Held while a key rotation step runs.
    rotating: std::sync::Mutex<()>,
    pub schedules: crate::oncall::Schedules,
    notifier: crate::notify::Notifier,
    /// Held while an approver's decision is applied.
    deciding: std::sync::Mutex<()>,
    /// Read once per operation ([`Ca::now`]); `now` is passed down.
    clock: Arc<dyn Clock>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// One `/readyz` run at a time ([`Ca::readiness`]).
    ready_runs: ready::ReadyRuns,
    /// Session recordings hosts upload (`DATA/recordings/`).
    recordings: Recordings,
}

impl Ca {
    pub fn new(
        config: Config,
        signer: Arc<dyn CaSigner>,
        store: Arc<dyn Store>,
        audit: Arc<dyn AuditLog>,
    ) -> Result<Self, SetupError> {
        let rp_id = config
            .public_url
            .host_str()
            .ok_or_else(|| SetupError::NoHost(config.public_url.clone()))?
            .to_owned();
        let webauthn = WebauthnBuilder::new(&rp_id, &config.public_url)
            .and_then(|b| b.rp_name("jit-ssh").build())
            .map_err(|source| SetupError::Webauthn {
                url: config.public_url.clone(),
                source,
            })?;
        let schedules = crate::oncall::Schedules::new(config.schedules.clone());
        for (name, why) in schedules.load_files() {
            tracing::error!(schedule = %name, error = %why, "on-call feed did not load; nobody counts as on call in it until it does");
        }
        let notifier = crate::notify::Notifier::new(config.notify.clone());
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let audit = Arc::new(crate::metrics::audit::MeteredAudit::new(
            audit,
            metrics.clone(),
        ));
        let extra_ca_keys = config
            .publish_ca_keys
            .iter()
            .map(|p| {
                PublicKey::read_openssh_file(p).map_err(|source| SetupError::PublishedKey {
                    path: p.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let file = match &config.signer {
            crate::config::SignerConfig::File { path, .. } => Some(path.clone()),
            crate::config::SignerConfig::Pkcs11(_) => None,
        };
        let user_keys = KeyRing::new(Slots::single(signer, file));
        let recordings = Recordings::local(&config.data_dir);
        // Another replica's issuance wakes a long poll waiting here.
        let waiters = Arc::new(Waiters::default());
        let woken = waiters.clone();
        store.watch_requests(Arc::new(move |id: Option<&str>| match id {
            Some(id) => woken.wake(id),
            None => woken.wake_all(),
        }));
        Ok(Self {
            schedules,
            notifier,
            deciding: std::sync::Mutex::new(()),
            config,
            webauthn,
            user_keys,
            store,
            audit: Arc::new(LoggedAudit(audit)),
            limiter: RateLimiter::default(),
            waiters,
            krl_cache: revocation::KrlCache::default(),
            signed_cache: published::SignedCache::default(),
            extra_ca_keys,
            host_keys: None,
            rotating: std::sync::Mutex::new(()),
            clock: Arc::new(SystemClock),
            metrics,
            ready_runs: ready::ReadyRuns::default(),
            recordings,
        })
    }

    /// Reads time from `clock` instead of the system clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Unix seconds: read once at the start of an operation.
    pub fn now(&self) -> i64 {
        self.clock.now_unix()
    }

    /// Starts delivering notifications (needs a tokio runtime).
    pub fn start_notifications(&self, backoff: crate::notify::Backoff) {
        self.notifier
            .start(self.audit.clone(), backoff, self.metrics.clone());
    }

    /// Enrolls hosts with certificates `signer` makes (the host CA key).
    pub fn with_host_signer(mut self, signer: Arc<dyn CaSigner>) -> Self {
        let file = match &self.config.hosts.host_ca_key {
            Some(crate::config::SignerConfig::File { path, .. }) => Some(path.clone()),
            _ => None,
        };
        self.host_keys = Some(KeyRing::new(Slots::single(signer, file)));
        self
    }

    /// Takes up a rotation where it stood (keys loaded from
    /// `DATA/rotation.json` by the server).
    pub fn with_key_slots(mut self, user: Slots, host: Option<Slots>) -> Self {
        self.user_keys = KeyRing::new(user);
        self.host_keys = host.map(KeyRing::new);
        self
    }

    /// The user CA key that signs now (it changes on `rotate activate`).
    pub fn signer(&self) -> Arc<dyn CaSigner> {
        self.user_keys.active()
    }

    /// Appends an audit record; a failure stops the operation (fail closed).
    fn audit(&self, actor: Actor, event: Event) -> Result<u64, ServiceError> {
        let record = self.audit.append(actor, event).map_err(audit_failed)?;
        Ok(record.seq)
    }

    /// Appends records of one step in one commit (see
    /// [`AuditLog::append_all`]); a failure stops the operation.
    fn audit_all(&self, entries: Vec<(Actor, Event)>) -> Result<(), ServiceError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.audit
            .append_all(entries)
            .map(drop)
            .map_err(audit_failed)
    }

    fn limit(&self, key: &str, per_minute: u32) -> Result<(), ServiceError> {
        self.limiter
            .check(key, per_minute)
            .map_err(ServiceError::RateLimited)
    }

    /// Everything an unauthenticated caller can start (requests, sign-ins,
    /// revocations, decisions, ceremonies) counts against their address,
    /// never against the user they name: naming someone spends nothing of
    /// theirs.
    fn limit_address(&self, client: std::net::SocketAddr) -> Result<(), ServiceError> {
        self.limit(
            &format!("addr:{}", limits::client_key(client.ip())),
            self.config.limits.requests_per_minute_per_address,
        )
    }

    /// WebAuthn starts and finishes on one resource (a request, sign-in,
    /// revocation, decision or enrollment link), keyed by its ceremony
    /// key: hammering one resource blocks only that resource, whose id the
    /// rightful user keeps to themselves.
    fn limit_ceremony(&self, key: &str) -> Result<(), ServiceError> {
        self.limit(
            &format!("ceremony:{key}"),
            CEREMONIES_PER_MINUTE_PER_RESOURCE,
        )
    }

    /// Completed WebAuthn confirmations of `user`: counted only after
    /// their touch verified, so only the user (their key) can spend it.
    fn limit_confirmed(&self, user: &str) -> Result<(), ServiceError> {
        self.limit(
            &format!("user:{user}"),
            self.config.limits.requests_per_minute_per_user,
        )
    }
}

/// An audit step about request or revocation `id` (MFA result, expiry,
/// cancellation, refusal); `host` is empty for revocations.
pub(crate) fn step_of(
    id: &str,
    user: &str,
    host: &str,
    detail: &str,
) -> jit_ssh_audit::RequestStep {
    jit_ssh_audit::RequestStep {
        request: id.to_owned(),
        user: user.to_owned(),
        host: host.to_owned(),
        detail: detail.to_owned(),
    }
}

/// An audit step about access request `req`.
pub(crate) fn step(req: &crate::store::AccessRequest, detail: &str) -> jit_ssh_audit::RequestStep {
    step_of(&req.id, req.user.as_str(), req.host.as_str(), detail)
}

/// Request and revocation ids: 32 hex digits (anything else is unknown).
pub(crate) fn is_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `secret` is the one whose SHA-256 was stored (constant time).
pub(crate) fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    same(&sha256_hex(&[secret]), stored_hash)
}

/// A failed read of the audit log (a page, an export, a recording's
/// grant and session records): 503 `unavailable` while the database
/// under a shared log cannot be reached (the same test as a failed
/// append's, so a client retries or moves to another replica; a recorder
/// keeps its chunks and tries again), 500 for
/// anything else — a query the database refused, a record it holds that
/// does not decode — which retrying will not mend.
fn audit_read_failed(e: jit_ssh_audit::StoreError) -> ServiceError {
    tracing::error!(error = %e, source = ?std::error::Error::source(&e), "audit log read failed");
    if crate::store::database_unavailable(&e) {
        return ServiceError::Unavailable("audit log");
    }
    ServiceError::Internal("audit log".into())
}

fn audit_failed(e: jit_ssh_audit::AppendError) -> ServiceError {
    tracing::error!(error = %e, source = ?std::error::Error::source(&e), "audit log append failed");
    if crate::store::database_unavailable(&e) {
        return ServiceError::Unavailable("audit log");
    }
    ServiceError::Internal("audit log".into())
}

/// Emits every durable audit record as one structured log line as well,
/// so journald or syslog can ship it to a SIEM. Records hold no secrets.
struct LoggedAudit(Arc<dyn AuditLog>);

impl AuditLog for LoggedAudit {
    fn append_all(
        &self,
        entries: Vec<(Actor, Event)>,
    ) -> Result<Vec<jit_ssh_audit::AuditRecord>, jit_ssh_audit::AppendError> {
        let records = self.0.append_all(entries)?;
        if tracing::enabled!(target: "jit_ssh_audit", tracing::Level::INFO) {
            for record in &records {
                if let Ok(json) = serde_json::to_string(record) {
                    tracing::info!(target: "jit_ssh_audit", seq = record.seq, record = %json, "audit record");
                }
            }
        }
        Ok(records)
    }

    fn query(
        &self,
        q: &jit_ssh_audit::AuditQuery,
    ) -> Result<Vec<jit_ssh_audit::AuditRecord>, jit_ssh_audit::StoreError> {
        self.0.query(q)
    }

    fn serial_issued(&self, serial: u64) -> Result<bool, jit_ssh_audit::StoreError> {
        self.0.serial_issued(serial)
    }

    fn verify(&self) -> Result<jit_ssh_audit::VerifyReport, jit_ssh_audit::StoreError> {
        self.0.verify()
    }

    fn head(&self) -> jit_ssh_audit::ChainHead {
        self.0.head()
    }

    fn first_seq_at(&self, t: time::OffsetDateTime) -> Result<u64, jit_ssh_audit::StoreError> {
        self.0.first_seq_at(t)
    }

    fn export(
        &self,
        from: u64,
        to: u64,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<u64, jit_ssh_audit::StoreError> {
        self.0.export(from, to, sink)
    }

    fn ready(&self) -> Result<(), jit_ssh_audit::StoreError> {
        self.0.ready()
    }

    fn with_checkpoint_lock(&self, f: &mut dyn FnMut()) -> Result<(), jit_ssh_audit::StoreError> {
        self.0.with_checkpoint_lock(f)
    }
}

/// RFC 3339 of a Unix time, for answers outside the service.
pub fn rfc3339_of(unix: i64) -> String {
    rfc3339(unix)
}

pub(crate) fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// 32 random bytes as hex: secrets and tokens.
pub(crate) fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex::encode(b)
}

/// 16 random bytes as hex: identifiers.
pub(crate) fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex::encode(b)
}

pub(crate) fn sha256_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// Compares two strings in time independent of where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
