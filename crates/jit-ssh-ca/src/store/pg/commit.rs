//! Which of the store's commits wait for the disk.
//!
//! Every statement runs in its own transaction, and by default its
//! commit waits until the WAL is flushed (and, with
//! `synchronous_standby_names`, on a standby): the server's
//! `synchronous_commit`. Short-lived login state — a WebAuthn
//! ceremony's state, a new access request's row and a request's claim
//! by a touch — need not wait:
//!
//! - PostgreSQL's WAL is one sequence, and a commit that waits flushes
//!   everything before it. The audit commit that holds a certificate's
//!   record (always synchronous: see `audit/append.rs`) comes after the
//!   ceremony was taken and the request claimed, so those are on disk
//!   before a certificate leaves the CA.
//! - A deferred commit is visible to every replica at once; only a crash
//!   of PostgreSQL itself (not of a replica) can lose it, and then only
//!   what no synchronous commit followed: a ceremony started but not
//!   finished (the user touches again), or a request created but not yet
//!   touched (its `request_created` record is already durable; the login
//!   is started again). No certificate is issued twice and no touch
//!   counts twice: what comes back after such a crash is state that
//!   produced nothing.
//! - What a claim leads to waits ([`of_request_change`]): `issued`,
//!   `denied` and `pending_approval` are written after the decision's
//!   audit commit and told to the requester (with the certificate) with
//!   no synchronous commit after them. Deferred, a crash took `issued`
//!   back to a claim that then expired, and the CA refused every
//!   recording of a grant whose certificate was in use ("it was never
//!   issued"); a denial likewise became a claim, approvers were asked
//!   about a request they could no longer decide.
//!
//! A sign-in's signature-counter update is deferred too: the counter
//! only helps spot a cloned authenticator, and an update lost in a
//! crash of PostgreSQL only lets a clone reuse that count unnoticed
//! (each challenge is single-use whatever the counter says).
//!
//! Everything else (users, enrolled credentials, revocations, blocked
//! users, hosts, invites, sessions, decisions) keeps the server's setting.
//! Measured with `fsync = on`, when the state after a claim was deferred
//! too: deferring took two replicas from 164 to 315 certificates/s in
//! the same run; with that write waiting again (one more flush per
//! certificate, shared between concurrent commits) not measured yet.

/// How a write's own transaction commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Commit {
    /// Waits for the disk as the server is configured to.
    Durable,
    /// Returns before its WAL is flushed (see the module comment for
    /// which writes may).
    Deferred,
}

impl Commit {
    /// The boolean the [`setting`] item reads.
    pub(super) fn deferred(self) -> bool {
        self == Commit::Deferred
    }
}

/// How a change of an access request commits: a claim (`deciding_since`
/// set) is always followed by the decision's synchronous audit commit,
/// which flushes it; every other change may be the last write before
/// the requester is answered (see the module comment).
pub(super) fn of_request_change(new: &crate::store::AccessRequest) -> Commit {
    if new.deciding_since.is_some() {
        Commit::Deferred
    } else {
        Commit::Durable
    }
}

/// A one-row `FROM` / `USING` item: when boolean parameter `$param` is
/// true it turns `synchronous_commit` off for the statement's own
/// transaction only (the setting is local, and read at its commit).
pub(super) fn setting(param: usize) -> String {
    format!(
        "(SELECT CASE WHEN ${param}::boolean \
         THEN set_config('synchronous_commit', 'off', true) END) AS commit_setting"
    )
}
