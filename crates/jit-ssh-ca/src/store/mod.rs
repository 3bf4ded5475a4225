//! The CA's state besides the audit log: invites, enrolled credentials,
//! access requests and in-flight WebAuthn ceremonies. Code above this
//! module sees the [`Store`] trait, never sled or PostgreSQL.

pub mod copy;
mod hosts;
pub mod pg;
mod retention;
mod sled_credentials;
mod sled_hosts;
#[cfg(test)]
pub(crate) mod sled_reopen;
mod sled_store;
mod stored_credentials;
#[cfg(test)]
mod stored_form;
mod stored_form_drift;
#[cfg(test)]
pub(crate) use stored_form::STORED as STORED_REQUEST;

pub use hosts::{HeldReport, HostChallenge, HostRecord, HostStore, HostToken};
pub use pg::{PgAuditLog, PgStore};
pub use retention::{Cutoffs, Pruned};
pub use sled_store::SledStore;
pub use stored_credentials::StoredCredentials;

use serde::{Deserialize, Serialize};

use crate::names::{AccountName, HostName, Reason, UserName};
use webauthn_rs::prelude::{Passkey, PasskeyAuthentication, PasskeyRegistration};

use jit_ssh_proto::api::{
    DecisionStatus, IssuedCertificate, RequestStatus, RevocationStatus, RevokeTarget,
    SessionStatus, Verdict,
};

/// SQLSTATEs (besides class 08, connection exception) that say the
/// database is going away or not yet back: admin_shutdown, crash_shutdown,
/// cannot_connect_now; and 25P03 (idle_in_transaction_session_timeout):
/// the server ended a session that sat too long inside a transaction
/// (this replica froze, `pg::limits`), rolling it back, so nothing was
/// committed and a retry on a fresh connection may pass. Not 57P04
/// (database_dropped): that does not pass.
const UNAVAILABLE_SQLSTATES: [&str; 4] = ["57P01", "57P02", "57P03", "25P03"];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Sled(#[from] sled::Error),
    #[error("PostgreSQL")]
    Postgres(#[from] postgres::Error),
    #[error("no PostgreSQL connection")]
    Pool(#[from] r2d2_postgres::r2d2::Error),
    #[error("a stored entry vanished while it was read")]
    Gone,
    #[error("writing a copy of the state")]
    Copy(#[source] std::io::Error),
    #[error("stored {what} is unreadable")]
    Corrupt {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// A PostgreSQL error that means "not reachable now" rather than "refused"
/// or "wrong": a closed or failed connection, a connection or shutdown
/// SQLSTATE. A query that returned the wrong rows, a value that does not
/// decode, a dropped database: 500, since retrying elsewhere fixes nothing.
fn postgres_unavailable(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(state) = e.code() {
        let code = state.code();
        return code.starts_with("08") || UNAVAILABLE_SQLSTATES.contains(&code);
    }
    // Not the server's word: only a failed connection counts (the driver
    // puts the I/O error under it; its kinds are not public).
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    let said = e.to_string();
    said.starts_with("error connecting to server") || said.starts_with("timeout waiting for server")
}

/// Whether `e`, or an error under it, says the database could not be
/// reached (see [`StoreError::is_unavailable`]): an audit append or an
/// issuance that failed for that reason issued nothing and may be retried,
/// here or on another replica.
pub fn database_unavailable(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<r2d2_postgres::r2d2::Error>() {
            return true;
        }
        if let Some(pg) = err.downcast_ref::<postgres::Error>() {
            return postgres_unavailable(pg);
        }
        if let Some(s) = err.downcast_ref::<StoreError>() {
            return s.is_unavailable();
        }
        cur = err.source();
    }
    false
}

impl StoreError {
    /// Whether the store could not be reached (no connection, one that
    /// broke, a database shutting down): the operation changed nothing
    /// and may succeed shortly, here or on another replica.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pool(_) => true,
            StoreError::Postgres(e) => postgres_unavailable(e),
            _ => false,
        }
    }
}

/// A one-time enrollment link, stored under the SHA-256 of its token so
/// a copy of the database holds no usable link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub user: String,
    pub roles: Vec<crate::policy::Role>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// An access request and everything decided about it. Its names are
/// stored as the strings they always were and parsed again on reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub id: String,
    pub user: UserName,
    pub host: HostName,
    pub account: AccountName,
    pub ttl_secs: u64,
    pub reason: Reason,
    /// OpenSSH public key line to certify.
    pub public_key: String,
    pub key_fingerprint: String,
    /// The address the CA saw the request come from.
    pub client_addr: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds: the WebAuthn step must happen before this.
    pub expires_at: i64,
    pub status: RequestStatus,
    /// Why it was denied, for the engineer.
    pub decision_reason: Option<String>,
    /// SHA-256 of the polling secret (hex).
    pub secret_hash: String,
    pub grant: Option<String>,
    pub certificate: Option<IssuedCertificate>,
    #[serde(default)]
    pub break_glass: bool,
    /// Set once policy asks for approvers.
    #[serde(default)]
    pub approval: Option<ApprovalState>,
    /// Unix seconds when a verified touch claimed the request for its
    /// decision (compare-and-swap before any signing): whoever set it is
    /// the only one who may issue. Absent from older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deciding_since: Option<i64>,
}

impl AccessRequest {
    /// Whether `new` is this request with only its claim changed (a touch
    /// claiming it for its decision, or giving the claim back): nothing
    /// the requester's long poll answers with.
    pub fn only_claim_differs(&self, new: &AccessRequest) -> bool {
        let mut claimed = self.clone();
        claimed.deciding_since = new.deciding_since;
        claimed == *new && self.deciding_since != new.deciding_since
    }
}

/// A user's standing for a new request ([`Store::may_request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub enrolled: bool,
    pub blocked: bool,
}

/// Who was asked to approve a request, and who did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalState {
    /// The rule that asked (for the audit record).
    pub rule: usize,
    /// Everyone who may approve: never the requester.
    pub approvers: Vec<String>,
    pub needed: u32,
    /// Each approver at most once, in order.
    pub approvals: Vec<ApprovalMark>,
    /// The on-call schedule the requester was not on, if that is why.
    pub not_on_call: Option<String>,
    /// What the certificate gets once approved (from the rule).
    pub pin_source_address: bool,
    pub extensions: Vec<String>,
    /// The rule's session policy. Approvals stored before sessions
    /// existed have none and get the default (their bytes are unchanged:
    /// the store compares them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<crate::policy::SessionPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalMark {
    pub by: String,
    /// Unix seconds.
    pub at: i64,
    pub comment: String,
}

/// An approver's decision waiting for (or done after) their touch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDecision {
    pub id: String,
    pub request: String,
    pub user: String,
    pub verdict: Verdict,
    pub comment: String,
    pub expires_at: i64,
    pub status: DecisionStatus,
    pub outcome: Option<String>,
    pub secret_hash: String,
}

/// A revocation waiting for (or done after) its requester's WebAuthn touch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRevocation {
    pub id: String,
    pub user: String,
    pub target: RevokeTarget,
    pub reason: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub status: RevocationStatus,
    pub outcome: Option<String>,
    pub secret_hash: String,
    pub serials: Vec<u64>,
    pub krl_version: Option<u64>,
}

/// A sign-in: pending until its user confirms with WebAuthn, then a
/// bearer credential (`ID.SECRET`) for reading and deciding, for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub user: String,
    pub status: SessionStatus,
    /// Unix seconds: the deadline to confirm, then the end of the session.
    pub expires_at: i64,
    pub secret_hash: String,
    /// Roles when confirmed (a role taken away later ends with the session).
    pub roles: Vec<crate::policy::Role>,
}

/// WebAuthn state between a ceremony's start and finish: single-use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ceremony {
    Enroll {
        state: PasskeyRegistration,
        /// Unix seconds.
        expires_at: i64,
    },
    Mfa {
        state: PasskeyAuthentication,
        /// SHA-256 over what the assertion approves (request id, key
        /// fingerprint, host, account): rechecked at finish.
        binding: String,
        expires_at: i64,
    },
}

/// A revoked certificate: its serial, and when it would expire anyway (after
/// which it can leave the KRL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedSerial {
    pub serial: u64,
    /// Unix seconds.
    pub valid_before: u64,
}

/// The CA's state. Hosts' state is in [`HostStore`], which every store
/// implements too.
/// Called with a request id when a stored request changed, possibly in
/// another CA process, or with `None` when changes may have been missed
/// (a lost database connection): wake every waiter to read again.
pub type RequestChanged = std::sync::Arc<dyn Fn(Option<&str>) + Send + Sync>;

pub trait Store: HostStore + Send + Sync {
    /// Tells `changed` about request changes made by *other* processes
    /// sharing this store, for long polls waiting on one replica while
    /// another issues. The embedded store has one process, which wakes
    /// its own waiters: nothing to do.
    fn watch_requests(&self, changed: RequestChanged) {
        let _ = changed;
    }

    /// Adds revoked serials and bumps the KRL version; returns the new version.
    fn revoke_serials(&self, serials: &[RevokedSerial]) -> Result<u64, StoreError>;
    /// Every revoked serial still stored.
    fn revoked_serials(&self) -> Result<Vec<RevokedSerial>, StoreError>;
    /// Drops these serials (their certificates expired); bumps the version.
    fn remove_revoked(&self, serials: &[u64]) -> Result<u64, StoreError>;
    /// Increases with every change to what the KRL holds; starts at 1.
    fn krl_version(&self) -> Result<u64, StoreError>;

    fn put_invite(&self, token_hash: &str, invite: &Invite) -> Result<(), StoreError>;
    fn invite(&self, token_hash: &str) -> Result<Option<Invite>, StoreError>;
    /// Removes and returns the invite: only one caller ever gets it.
    fn take_invite(&self, token_hash: &str) -> Result<Option<Invite>, StoreError>;

    fn credentials(&self, user: &str) -> Result<Vec<Passkey>, StoreError> {
        Ok(self.stored_credentials(user)?.passkeys)
    }
    /// `user`'s credentials with what was stored for them, for a swap.
    fn stored_credentials(&self, user: &str) -> Result<StoredCredentials, StoreError>;
    /// Replaces `user`'s credentials with `new` only if the store still
    /// holds exactly what `old` was read from (nothing, for a first
    /// enrollment: of two, one wins): the only way the service changes
    /// them, since an enrollment and a sign-in's signature-counter update
    /// each rewrite the whole list, and a blind write of a list read
    /// earlier lost a passkey enrolled in between. `durable` waits for
    /// the disk (enrollment; a counter update need not).
    fn swap_credentials(
        &self,
        user: &str,
        old: &StoredCredentials,
        new: &[Passkey],
        durable: bool,
    ) -> Result<bool, StoreError>;
    /// Stored roles granted by invites (the config grants more).
    fn invited_roles(&self, user: &str) -> Result<Vec<crate::policy::Role>, StoreError>;
    fn add_invited_roles(
        &self,
        user: &str,
        roles: &[crate::policy::Role],
    ) -> Result<(), StoreError>;

    fn put_request(&self, req: &AccessRequest) -> Result<(), StoreError>;
    fn request(&self, id: &str) -> Result<Option<AccessRequest>, StoreError>;
    /// Replaces `old` with `new` only if the stored request is still `old`.
    fn swap_request(&self, old: &AccessRequest, new: &AccessRequest) -> Result<bool, StoreError>;

    fn put_revocation(&self, r: &PendingRevocation) -> Result<(), StoreError>;
    fn revocation(&self, id: &str) -> Result<Option<PendingRevocation>, StoreError>;
    fn swap_revocation(
        &self,
        old: &PendingRevocation,
        new: &PendingRevocation,
    ) -> Result<bool, StoreError>;

    /// Requests waiting for approvers (for listing them), from an index:
    /// the cost follows the number waiting, not the number stored. May
    /// return a few that just stopped waiting; callers check the status.
    fn pending_approval(&self) -> Result<Vec<AccessRequest>, StoreError>;

    /// Removes requests, revocations, decisions and sessions that ended
    /// before `before.state`, and ceremonies and invites that expired
    /// before `before.secrets`. Users, credentials, blocks and revoked
    /// serials are never pruned here.
    fn prune(&self, before: Cutoffs) -> Result<Pruned, StoreError>;

    fn put_decision(&self, d: &PendingDecision) -> Result<(), StoreError>;
    fn decision(&self, id: &str) -> Result<Option<PendingDecision>, StoreError>;
    fn swap_decision(
        &self,
        old: &PendingDecision,
        new: &PendingDecision,
    ) -> Result<bool, StoreError>;

    fn put_session(&self, s: &Session) -> Result<(), StoreError>;
    fn session(&self, id: &str) -> Result<Option<Session>, StoreError>;
    fn swap_session(&self, old: &Session, new: &Session) -> Result<bool, StoreError>;

    /// Users blocked by a user revocation (no new certificates).
    fn block_user(&self, user: &str) -> Result<(), StoreError>;
    fn unblock_user(&self, user: &str) -> Result<bool, StoreError>;
    fn is_blocked(&self, user: &str) -> Result<bool, StoreError>;
    /// Whether `user` has any credential, and whether they are blocked:
    /// what a new request checks, in one round trip where the store can.
    fn may_request(&self, user: &str) -> Result<Standing, StoreError> {
        Ok(Standing {
            enrolled: !self.credentials(user)?.is_empty(),
            blocked: self.is_blocked(user)?,
        })
    }

    fn put_ceremony(&self, key: &str, c: &Ceremony) -> Result<(), StoreError>;
    /// Removes and returns the ceremony: a second caller gets `None`.
    fn take_ceremony(&self, key: &str) -> Result<Option<Ceremony>, StoreError>;

    /// Writes a copy of the whole state as of one moment to `out`, then
    /// runs `held`, and only then lets writes resume (they wait
    /// meanwhile), for `jit-ssh-ca backup`; returns the entries written.
    /// `None` (and `held` not run): this store is backed up by its own
    /// tools (PostgreSQL: pg_dump).
    fn dump(
        &self,
        out: &mut dyn std::io::Write,
        held: &mut dyn FnMut(),
    ) -> Result<Option<u64>, StoreError> {
        let _ = (out, held);
        Ok(None)
    }
}
