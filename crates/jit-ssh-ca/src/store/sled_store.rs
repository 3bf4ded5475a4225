//! [`Store`] on sled 0.34: one tree per kind, values as JSON.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use webauthn_rs::prelude::Passkey;

use super::stored_form_drift::same_value_in_another_form;
use super::{
    AccessRequest, Ceremony, Cutoffs, Invite, PendingDecision, PendingRevocation, Pruned,
    RevokedSerial, Session, Store, StoreError, StoredCredentials,
};
use crate::policy::Role;
use jit_ssh_proto::api::RequestStatus;

pub struct SledStore {
    invites: sled::Tree,
    pub(super) credentials: sled::Tree,
    roles: sled::Tree,
    requests: sled::Tree,
    ceremonies: sled::Tree,
    revoked: sled::Tree,
    revocations: sled::Tree,
    blocked: sled::Tree,
    sessions: sled::Tree,
    decisions: sled::Tree,
    /// Ids of requests that wait, or may come to wait, for approvers
    /// (values empty). A superset of the truth: an entry is added before
    /// a request turns pending and removed after it stops.
    pending: sled::Tree,
    meta: sled::Tree,
    db: sled::Db,
    /// Every write holds it shared; a backup's copy holds it exclusively,
    /// so the copy is one point in time across all trees.
    gate: std::sync::RwLock<()>,
}

const KRL_VERSION: &[u8] = b"krl_version";
/// Set once the pending-approval index covers every stored request.
const PENDING_INDEXED: &[u8] = b"pending_index_v1";

impl SledStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = sled::open(path)?;
        let store = Self {
            invites: db.open_tree("invites")?,
            credentials: db.open_tree("credentials")?,
            roles: db.open_tree("roles")?,
            requests: db.open_tree("requests")?,
            ceremonies: db.open_tree("ceremonies")?,
            revoked: db.open_tree("revoked")?,
            revocations: db.open_tree("revocations")?,
            blocked: db.open_tree("blocked")?,
            sessions: db.open_tree("sessions")?,
            decisions: db.open_tree("decisions")?,
            pending: db.open_tree("pending_approval")?,
            meta: db.open_tree("meta")?,
            db,
            gate: std::sync::RwLock::new(()),
        };
        store.index_pending_once()
    }

    /// A store from before the index: index what waits for approvers, once.
    fn index_pending_once(self) -> Result<Self, StoreError> {
        if self.meta.contains_key(PENDING_INDEXED)? {
            return Ok(self);
        }
        for item in self.requests.iter() {
            let (_, v) = item?;
            if let Some(r) = dec::<AccessRequest>(Some(v), "request")? {
                if r.status == RequestStatus::PendingApproval {
                    self.pending.insert(r.id.as_bytes(), &[][..])?;
                }
            }
        }
        self.meta.insert(PENDING_INDEXED, &[1u8][..])?;
        self.db.flush()?;
        Ok(self)
    }

    /// Removes from `tree` every value `ended` says ended before `cutoff`;
    /// returns the keys removed. Unreadable values are kept (and logged
    /// by whoever reads them).
    pub(super) fn prune_tree<T: DeserializeOwned>(
        tree: &sled::Tree,
        what: &'static str,
        cutoff: i64,
        ended: impl Fn(&T) -> i64,
    ) -> Result<Vec<sled::IVec>, StoreError> {
        let mut gone = Vec::new();
        for item in tree.iter() {
            let (k, v) = item?;
            let Ok(Some(value)) = dec::<T>(Some(v.clone()), what) else {
                continue;
            };
            // Only if unchanged since read: a value that moved on is
            // judged on the next run.
            if ended(&value) < cutoff
                && tree
                    .compare_and_swap(&k, Some(v), None as Option<&[u8]>)?
                    .is_ok()
            {
                gone.push(k);
            }
        }
        Ok(gone)
    }
}

pub(super) fn enc<T: Serialize>(v: &T, what: &'static str) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|source| StoreError::Corrupt { what, source })
}

pub(super) fn dec<T: DeserializeOwned>(
    v: Option<sled::IVec>,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    v.map(|b| serde_json::from_slice(&b).map_err(|source| StoreError::Corrupt { what, source }))
        .transpose()
}

/// Replaces the JSON stored under `key` with `new` only if it is still
/// exactly `old` (compare-and-swap): what every state change goes through.
///
/// A swap is how the outcome of a touch is kept (a claim, an issuance,
/// an approval, a sign-in): one that happened is on disk before the
/// caller goes on, and with it the taken ceremony before it (sled's log
/// is one sequence, which a tree's flush writes whole). sled writes on
/// its own only every 500 ms: a crash in between took an issued request
/// back to `pending_mfa`, and the same touch, replayed, got a second
/// certificate (tests/serve_crash.rs).
///
/// `old` stored in another form (by another version) still matches
/// (`stored_form_drift`).
fn swap<T: Serialize + DeserializeOwned>(
    tree: &sled::Tree,
    key: &str,
    old: &T,
    new: &T,
    what: &'static str,
) -> Result<bool, StoreError> {
    let (was, new) = (enc(old, what)?, enc(new, what)?);
    let swapped = match tree.compare_and_swap(key, Some(&was[..]), Some(new.clone()))? {
        Ok(()) => true,
        // Once more against what is stored, if it is `old` in another form.
        Err(miss) => match miss.current {
            Some(stored) if same_value_in_another_form::<T>(&stored, &was) => {
                tree.compare_and_swap(key, Some(stored), Some(new))?.is_ok()
            }
            _ => false,
        },
    };
    if swapped {
        tree.flush()?;
    }
    Ok(swapped)
}

impl SledStore {
    pub(super) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Held by a write for its whole length (every trait method that
    /// changes a tree takes it once, never nested: a backup waiting for
    /// it exclusively would otherwise deadlock a nested taker). A panic
    /// while held poisons nothing worth refusing writes for.
    pub(super) fn writing(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes every tree to `out` while no write runs, then runs `held`
    /// before writes resume.
    pub(super) fn dump_all(
        &self,
        out: &mut dyn std::io::Write,
        held: &mut dyn FnMut(),
    ) -> Result<u64, StoreError> {
        let _alone = self
            .gate
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = crate::backup::state_dump::write_db(&self.db, out)?;
        held();
        Ok(n)
    }

    fn bump_version(&self) -> Result<u64, StoreError> {
        let next = self
            .meta
            .update_and_fetch(KRL_VERSION, |old| {
                let v = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(1, u64::from_be_bytes);
                Some(v.saturating_add(1).to_be_bytes().to_vec())
            })?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(1, u64::from_be_bytes);
        Ok(next)
    }
}

impl Store for SledStore {
    fn dump(
        &self,
        out: &mut dyn std::io::Write,
        held: &mut dyn FnMut(),
    ) -> Result<Option<u64>, StoreError> {
        self.dump_all(out, held).map(Some)
    }

    fn revoke_serials(&self, serials: &[RevokedSerial]) -> Result<u64, StoreError> {
        let _writing = self.writing();
        let mut batch = sled::Batch::default();
        for r in serials {
            batch.insert(
                &r.serial.to_be_bytes()[..],
                &r.valid_before.to_be_bytes()[..],
            );
        }
        self.revoked.apply_batch(batch)?;
        let version = self.bump_version()?;
        // A revocation must survive a crash: the KRL is rebuilt from this.
        self.db.flush()?;
        Ok(version)
    }

    fn revoked_serials(&self) -> Result<Vec<RevokedSerial>, StoreError> {
        let mut out = Vec::with_capacity(self.revoked.len());
        for item in self.revoked.iter() {
            let (k, v) = item?;
            if let (Ok(k), Ok(v)) = (
                <[u8; 8]>::try_from(k.as_ref()),
                <[u8; 8]>::try_from(v.as_ref()),
            ) {
                out.push(RevokedSerial {
                    serial: u64::from_be_bytes(k),
                    valid_before: u64::from_be_bytes(v),
                });
            }
        }
        Ok(out)
    }

    fn remove_revoked(&self, serials: &[u64]) -> Result<u64, StoreError> {
        let _writing = self.writing();
        let mut batch = sled::Batch::default();
        for s in serials {
            batch.remove(&s.to_be_bytes()[..]);
        }
        self.revoked.apply_batch(batch)?;
        self.bump_version()
    }

    fn krl_version(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(KRL_VERSION)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(1, u64::from_be_bytes))
    }

    fn put_invite(&self, token_hash: &str, invite: &Invite) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.invites.insert(token_hash, enc(invite, "invite")?)?;
        Ok(())
    }

    fn invite(&self, token_hash: &str) -> Result<Option<Invite>, StoreError> {
        dec(self.invites.get(token_hash)?, "invite")
    }

    fn take_invite(&self, token_hash: &str) -> Result<Option<Invite>, StoreError> {
        let _writing = self.writing();
        dec(self.invites.remove(token_hash)?, "invite")
    }

    fn stored_credentials(&self, user: &str) -> Result<StoredCredentials, StoreError> {
        StoredCredentials::decode(self.credentials.get(user)?.map(|b| b.to_vec()))
    }

    fn swap_credentials(
        &self,
        user: &str,
        old: &StoredCredentials,
        new: &[Passkey],
        durable: bool,
    ) -> Result<bool, StoreError> {
        self.swap_user_credentials(user, (old, new), durable)
    }

    fn invited_roles(&self, user: &str) -> Result<Vec<Role>, StoreError> {
        Ok(dec(self.roles.get(user)?, "roles")?.unwrap_or_default())
    }

    fn add_invited_roles(&self, user: &str, roles: &[Role]) -> Result<(), StoreError> {
        let _writing = self.writing();
        let mut all = self.invited_roles(user)?;
        all.extend_from_slice(roles);
        all.sort();
        all.dedup();
        self.roles.insert(user, enc(&all, "roles")?)?;
        Ok(())
    }

    fn put_request(&self, req: &AccessRequest) -> Result<(), StoreError> {
        let _writing = self.writing();
        if req.status == RequestStatus::PendingApproval {
            self.pending.insert(req.id.as_bytes(), &[][..])?;
        }
        self.requests.insert(&req.id, enc(req, "request")?)?;
        Ok(())
    }

    fn request(&self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        dec(self.requests.get(id)?, "request")
    }

    fn swap_request(&self, old: &AccessRequest, new: &AccessRequest) -> Result<bool, StoreError> {
        let _writing = self.writing();
        // The index entry goes in before the request turns pending, and
        // out only after it stopped: the index never misses one.
        let waits = new.status == RequestStatus::PendingApproval;
        if waits {
            self.pending.insert(new.id.as_bytes(), &[][..])?;
        }
        let swapped = swap(&self.requests, &old.id, old, new, "request")?;
        if swapped && !waits && old.status == RequestStatus::PendingApproval {
            self.pending.remove(new.id.as_bytes())?;
        }
        Ok(swapped)
    }

    fn put_revocation(&self, r: &PendingRevocation) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.revocations.insert(&r.id, enc(r, "revocation")?)?;
        Ok(())
    }

    fn revocation(&self, id: &str) -> Result<Option<PendingRevocation>, StoreError> {
        dec(self.revocations.get(id)?, "revocation")
    }

    fn swap_revocation(
        &self,
        old: &PendingRevocation,
        new: &PendingRevocation,
    ) -> Result<bool, StoreError> {
        let _writing = self.writing();
        swap(&self.revocations, &old.id, old, new, "revocation")
    }

    fn pending_approval(&self) -> Result<Vec<AccessRequest>, StoreError> {
        let mut out = Vec::new();
        for item in self.pending.iter() {
            let (id, _) = item?;
            // Entries are never removed here: one read just before its
            // request turns pending must stay (prune tidies leftovers).
            if let Some(r) = dec::<AccessRequest>(self.requests.get(&id)?, "request")? {
                if r.status == RequestStatus::PendingApproval {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    fn prune(&self, before: Cutoffs) -> Result<Pruned, StoreError> {
        let _writing = self.writing();
        // A never-confirmed request goes once its deadline is past the
        // secrets' cutoff: shifted by the retention time to compare with
        // the state cutoff like every other request.
        let retention = before.secrets.saturating_sub(before.state);
        let requests = Self::prune_tree(
            &self.requests,
            "request",
            before.state,
            |r: &AccessRequest| {
                if r.never_confirmed() {
                    r.expires_at.saturating_sub(retention)
                } else {
                    r.ends_at()
                }
            },
        )?;
        for id in &requests {
            self.pending.remove(id)?;
        }
        // Leftovers of a crash between a swap and its index update.
        for item in self.pending.iter() {
            let (id, _) = item?;
            let live = dec::<AccessRequest>(self.requests.get(&id)?, "request")
                .ok()
                .flatten()
                .is_some_and(|r| r.may_await_approval());
            if !live {
                self.pending.remove(&id)?;
            }
        }
        Ok(Pruned {
            requests: requests.len(),
            revocations: Self::prune_tree(
                &self.revocations,
                "revocation",
                before.state,
                PendingRevocation::ends_at,
            )?
            .len(),
            decisions: Self::prune_tree(
                &self.decisions,
                "decision",
                before.state,
                PendingDecision::ends_at,
            )?
            .len(),
            sessions: Self::prune_tree(&self.sessions, "session", before.state, Session::ends_at)?
                .len(),
            ceremonies: Self::prune_tree(
                &self.ceremonies,
                "ceremony",
                before.secrets,
                Ceremony::ends_at,
            )?
            .len(),
            invites: Self::prune_tree(&self.invites, "invite", before.secrets, Invite::ends_at)?
                .len(),
            // Pruned through HostStore, by the service.
            host_challenges: 0,
        })
    }

    fn put_decision(&self, d: &PendingDecision) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.decisions.insert(&d.id, enc(d, "decision")?)?;
        Ok(())
    }

    fn decision(&self, id: &str) -> Result<Option<PendingDecision>, StoreError> {
        dec(self.decisions.get(id)?, "decision")
    }

    fn swap_decision(
        &self,
        old: &PendingDecision,
        new: &PendingDecision,
    ) -> Result<bool, StoreError> {
        let _writing = self.writing();
        swap(&self.decisions, &old.id, old, new, "decision")
    }

    fn put_session(&self, s: &Session) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.sessions.insert(&s.id, enc(s, "session")?)?;
        Ok(())
    }

    fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        dec(self.sessions.get(id)?, "session")
    }

    fn swap_session(&self, old: &Session, new: &Session) -> Result<bool, StoreError> {
        let _writing = self.writing();
        swap(&self.sessions, &old.id, old, new, "session")
    }

    fn block_user(&self, user: &str) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.blocked.insert(user, &[1u8][..])?;
        self.blocked.flush()?;
        Ok(())
    }

    fn unblock_user(&self, user: &str) -> Result<bool, StoreError> {
        let _writing = self.writing();
        let was = self.blocked.remove(user)?.is_some();
        self.blocked.flush()?;
        Ok(was)
    }

    fn is_blocked(&self, user: &str) -> Result<bool, StoreError> {
        Ok(self.blocked.contains_key(user)?)
    }

    fn put_ceremony(&self, key: &str, c: &Ceremony) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.ceremonies.insert(key, enc(c, "ceremony")?)?;
        Ok(())
    }

    fn take_ceremony(&self, key: &str) -> Result<Option<Ceremony>, StoreError> {
        let _writing = self.writing();
        dec(self.ceremonies.remove(key)?, "ceremony")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(id: &str, status: RequestStatus) -> AccessRequest {
        AccessRequest {
            id: id.to_owned(),
            user: crate::names::UserName::parse("alice").unwrap(),
            host: crate::names::HostName::parse("db-1.prod").unwrap(),
            account: crate::names::AccountName::parse("postgres").unwrap(),
            ttl_secs: 300,
            reason: crate::names::Reason::parse("r").unwrap(),
            public_key: String::new(),
            key_fingerprint: String::new(),
            client_addr: "192.0.2.1".into(),
            created_at: 0,
            expires_at: 100,
            status,
            decision_reason: None,
            secret_hash: String::new(),
            grant: None,
            certificate: None,
            break_glass: false,
            approval: None,
            deciding_since: None,
        }
    }

    fn ids(s: &SledStore) -> Vec<String> {
        s.pending_approval()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    }

    #[test]
    fn pending_approvals_come_from_the_index_not_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(&dir.path().join("state")).unwrap();
        let mfa = request("a", RequestStatus::PendingMfa);
        s.put_request(&mfa).unwrap();
        for i in 0..100 {
            s.put_request(&request(&format!("done{i}"), RequestStatus::Issued))
                .unwrap();
        }
        // An unreadable request that does not wait: a scan would trip on it.
        s.requests.insert("junk", &b"not json"[..]).unwrap();
        let waiting = request("a", RequestStatus::PendingApproval);
        assert!(s.swap_request(&mfa, &waiting).unwrap());
        assert_eq!(ids(&s), ["a"]);
        let issued = request("a", RequestStatus::Issued);
        assert!(s.swap_request(&waiting, &issued).unwrap());
        assert!(ids(&s).is_empty());
        assert!(s.pending.is_empty(), "the entry left with the request");
    }

    #[test]
    fn a_store_from_before_the_index_is_indexed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        {
            let s = SledStore::open(&path).unwrap();
            s.put_request(&request("a", RequestStatus::PendingApproval))
                .unwrap();
            s.put_request(&request("b", RequestStatus::Denied)).unwrap();
            // As an older version left it: no index, no flag.
            s.pending.clear().unwrap();
            s.meta.remove(PENDING_INDEXED).unwrap();
            s.db.flush().unwrap();
        }
        let s = super::super::sled_reopen::until_unlocked(|| SledStore::open(&path));
        assert_eq!(ids(&s), ["a"]);
    }

    #[test]
    fn prune_removes_what_ended_before_the_cutoff_and_its_index_entry() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(&dir.path().join("state")).unwrap();
        s.put_request(&request("old", RequestStatus::PendingApproval))
            .unwrap();
        let mut young = request("young", RequestStatus::PendingApproval);
        young.expires_at = 1_000;
        s.put_request(&young).unwrap();
        let p = s
            .prune(Cutoffs {
                state: 500,
                secrets: 500,
            })
            .unwrap();
        assert_eq!(p.requests, 1);
        assert!(s.request("old").unwrap().is_none());
        assert_eq!(ids(&s), ["young"]);
        assert_eq!(s.pending.len(), 1);
    }
}
