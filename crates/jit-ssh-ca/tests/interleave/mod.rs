//! A state store that runs something of the test's right after the next
//! read of a user's credentials, then goes on as it would: the window
//! between a read-modify-write's read and its write, made certain
//! instead of raced for. Everything else goes to the real store as is.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use jit_ssh_ca::policy::Role;
use jit_ssh_ca::store::{
    AccessRequest, Ceremony, Cutoffs, HostChallenge, HostRecord, HostStore, HostToken, Invite,
    PendingDecision, PendingRevocation, Pruned, RequestChanged, RevokedSerial, Session, Standing,
    Store, StoreError, StoredCredentials,
};
use webauthn_rs::prelude::Passkey;

type Step = Box<dyn FnOnce() + Send>;

pub struct Interleave {
    inner: Arc<dyn Store>,
    after_read: Mutex<Option<Step>>,
    ran: Mutex<bool>,
}

impl Interleave {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            after_read: Mutex::new(None),
            ran: Mutex::new(false),
        })
    }

    /// Runs `step` once, after the next credentials read returns from the
    /// real store and before its caller sees the list.
    pub fn after_next_read(&self, step: impl FnOnce() + Send + 'static) {
        *self.ran.lock().unwrap() = false;
        *self.after_read.lock().unwrap() = Some(Box::new(step));
    }

    /// Whether the step ran (else the test proved nothing).
    pub fn ran(&self) -> bool {
        *self.ran.lock().unwrap()
    }
}

impl Store for Interleave {
    fn stored_credentials(&self, user: &str) -> Result<StoredCredentials, StoreError> {
        let read = self.inner.stored_credentials(user)?;
        let step = self.after_read.lock().unwrap().take();
        if let Some(step) = step {
            step();
            *self.ran.lock().unwrap() = true;
        }
        Ok(read)
    }
    fn swap_credentials(
        &self,
        user: &str,
        old: &StoredCredentials,
        new: &[Passkey],
        durable: bool,
    ) -> Result<bool, StoreError> {
        self.inner.swap_credentials(user, old, new, durable)
    }
    fn may_request(&self, user: &str) -> Result<Standing, StoreError> {
        self.inner.may_request(user)
    }
    fn watch_requests(&self, changed: RequestChanged) {
        self.inner.watch_requests(changed)
    }
    fn revoke_serials(&self, serials: &[RevokedSerial]) -> Result<u64, StoreError> {
        self.inner.revoke_serials(serials)
    }
    fn revoked_serials(&self) -> Result<Vec<RevokedSerial>, StoreError> {
        self.inner.revoked_serials()
    }
    fn remove_revoked(&self, serials: &[u64]) -> Result<u64, StoreError> {
        self.inner.remove_revoked(serials)
    }
    fn krl_version(&self) -> Result<u64, StoreError> {
        self.inner.krl_version()
    }
    fn put_invite(&self, token_hash: &str, invite: &Invite) -> Result<(), StoreError> {
        self.inner.put_invite(token_hash, invite)
    }
    fn invite(&self, token_hash: &str) -> Result<Option<Invite>, StoreError> {
        self.inner.invite(token_hash)
    }
    fn take_invite(&self, token_hash: &str) -> Result<Option<Invite>, StoreError> {
        self.inner.take_invite(token_hash)
    }
    fn invited_roles(&self, user: &str) -> Result<Vec<Role>, StoreError> {
        self.inner.invited_roles(user)
    }
    fn add_invited_roles(&self, user: &str, roles: &[Role]) -> Result<(), StoreError> {
        self.inner.add_invited_roles(user, roles)
    }
    fn put_request(&self, req: &AccessRequest) -> Result<(), StoreError> {
        self.inner.put_request(req)
    }
    fn request(&self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        self.inner.request(id)
    }
    fn swap_request(&self, old: &AccessRequest, new: &AccessRequest) -> Result<bool, StoreError> {
        self.inner.swap_request(old, new)
    }
    fn put_revocation(&self, r: &PendingRevocation) -> Result<(), StoreError> {
        self.inner.put_revocation(r)
    }
    fn revocation(&self, id: &str) -> Result<Option<PendingRevocation>, StoreError> {
        self.inner.revocation(id)
    }
    fn swap_revocation(
        &self,
        old: &PendingRevocation,
        new: &PendingRevocation,
    ) -> Result<bool, StoreError> {
        self.inner.swap_revocation(old, new)
    }
    fn pending_approval(&self) -> Result<Vec<AccessRequest>, StoreError> {
        self.inner.pending_approval()
    }
    fn prune(&self, before: Cutoffs) -> Result<Pruned, StoreError> {
        self.inner.prune(before)
    }
    fn put_decision(&self, d: &PendingDecision) -> Result<(), StoreError> {
        self.inner.put_decision(d)
    }
    fn decision(&self, id: &str) -> Result<Option<PendingDecision>, StoreError> {
        self.inner.decision(id)
    }
    fn swap_decision(
        &self,
        old: &PendingDecision,
        new: &PendingDecision,
    ) -> Result<bool, StoreError> {
        self.inner.swap_decision(old, new)
    }
    fn put_session(&self, s: &Session) -> Result<(), StoreError> {
        self.inner.put_session(s)
    }
    fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        self.inner.session(id)
    }
    fn swap_session(&self, old: &Session, new: &Session) -> Result<bool, StoreError> {
        self.inner.swap_session(old, new)
    }
    fn block_user(&self, user: &str) -> Result<(), StoreError> {
        self.inner.block_user(user)
    }
    fn unblock_user(&self, user: &str) -> Result<bool, StoreError> {
        self.inner.unblock_user(user)
    }
    fn is_blocked(&self, user: &str) -> Result<bool, StoreError> {
        self.inner.is_blocked(user)
    }
    fn put_ceremony(&self, key: &str, c: &Ceremony) -> Result<(), StoreError> {
        self.inner.put_ceremony(key, c)
    }
    fn take_ceremony(&self, key: &str) -> Result<Option<Ceremony>, StoreError> {
        self.inner.take_ceremony(key)
    }
    fn dump(
        &self,
        out: &mut dyn std::io::Write,
        held: &mut dyn FnMut(),
    ) -> Result<Option<u64>, StoreError> {
        self.inner.dump(out, held)
    }
}

impl HostStore for Interleave {
    fn put_host_token(&self, id: &str, token: &HostToken) -> Result<(), StoreError> {
        self.inner.put_host_token(id, token)
    }
    fn host_token(&self, id: &str) -> Result<Option<HostToken>, StoreError> {
        self.inner.host_token(id)
    }
    fn use_host_token(&self, id: &str, now: i64) -> Result<Option<HostToken>, StoreError> {
        self.inner.use_host_token(id, now)
    }
    fn put_host_challenge(&self, id: &str, c: &HostChallenge) -> Result<(), StoreError> {
        self.inner.put_host_challenge(id, c)
    }
    fn take_host_challenge(&self, id: &str) -> Result<Option<HostChallenge>, StoreError> {
        self.inner.take_host_challenge(id)
    }
    fn put_host(&self, host: &HostRecord) -> Result<(), StoreError> {
        self.inner.put_host(host)
    }
    fn host(&self, name: &str) -> Result<Option<HostRecord>, StoreError> {
        self.inner.host(name)
    }
    fn swap_host(&self, old: &HostRecord, new: &HostRecord) -> Result<bool, StoreError> {
        self.inner.swap_host(old, new)
    }
    fn prune_host_challenges(&self, cutoff: i64) -> Result<usize, StoreError> {
        self.inner.prune_host_challenges(cutoff)
    }
    fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        self.inner.hosts()
    }
    fn remove_host(&self, name: &str) -> Result<Option<HostRecord>, StoreError> {
        self.inner.remove_host(name)
    }
    fn revoke_host_key(&self, fingerprint: &str, key: &str) -> Result<(), StoreError> {
        self.inner.revoke_host_key(fingerprint, key)
    }
    fn host_key_revoked(&self, fingerprint: &str) -> Result<bool, StoreError> {
        self.inner.host_key_revoked(fingerprint)
    }
    fn revoked_host_keys(&self) -> Result<Vec<String>, StoreError> {
        self.inner.revoked_host_keys()
    }
}
