//! Copying the embedded (sled) state into another store, for
//! `jit-ssh-ca migrate --from`. Every entry is read back as its type and
//! written through the target's own `put` methods, so the target derives
//! its columns and indexes exactly as it does for a running CA; the KRL
//! version is carried over unchanged (hosts refuse a version that goes
//! back). The pending-approval index of sled is not copied: the target
//! derives its own from the requests.

use serde::de::DeserializeOwned;

use super::{
    AccessRequest, Ceremony, HostChallenge, HostStore, HostToken, Invite, PendingDecision,
    PendingRevocation, PgStore, Session, SledStore, Store, StoreError,
};
use crate::policy::Role;

/// How many entries of each kind were copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copied {
    pub kinds: Vec<(&'static str, usize)>,
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        f.write_str(&parts.join(", "))
    }
}

/// Calls `put(key, value)` for every entry of sled tree `tree`.
fn each<T: DeserializeOwned>(
    from: &SledStore,
    tree: &str,
    what: &'static str,
    mut put: impl FnMut(&str, T) -> Result<(), StoreError>,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for item in from.db().open_tree(tree)?.iter() {
        let (k, v) = item?;
        let value: T =
            serde_json::from_slice(&v).map_err(|source| StoreError::Corrupt { what, source })?;
        put(&String::from_utf8_lossy(&k), value)?;
        n += 1;
    }
    Ok(n)
}

/// Copies every entry of `from` into `to`, which should be empty.
pub fn copy_state(from: &SledStore, to: &PgStore) -> Result<Copied, StoreError> {
    let mut c = Copied::default();
    let mut count = |kind, n| c.kinds.push((kind, n));
    count(
        "invites",
        each(from, "invites", "invite", |k, v: Invite| {
            to.put_invite(k, &v)
        })?,
    );
    count(
        "users' credentials",
        each(
            from,
            "credentials",
            "credentials",
            |k, v: Vec<webauthn_rs::prelude::Passkey>| to.put_credentials(k, &v),
        )?,
    );
    count(
        "users' invited roles",
        each(from, "roles", "roles", |k, v: Vec<Role>| {
            to.add_invited_roles(k, &v)
        })?,
    );
    count(
        "requests",
        each(from, "requests", "request", |_, v: AccessRequest| {
            to.put_request(&v)
        })?,
    );
    count(
        "revocations",
        each(
            from,
            "revocations",
            "revocation",
            |_, v: PendingRevocation| to.put_revocation(&v),
        )?,
    );
    count(
        "decisions",
        each(from, "decisions", "decision", |_, v: PendingDecision| {
            to.put_decision(&v)
        })?,
    );
    count(
        "sessions",
        each(from, "sessions", "session", |_, v: Session| {
            to.put_session(&v)
        })?,
    );
    count(
        "ceremonies",
        each(from, "ceremonies", "ceremony", |k, v: Ceremony| {
            to.put_ceremony(k, &v)
        })?,
    );
    let mut blocked = 0;
    for item in from.db().open_tree("blocked")?.iter() {
        to.block_user(&String::from_utf8_lossy(&item?.0))?;
        blocked += 1;
    }
    count("blocked users", blocked);
    let revoked = from.revoked_serials()?;
    if !revoked.is_empty() {
        to.revoke_serials(&revoked)?;
    }
    count("revoked serials", revoked.len());
    to.set_krl_version(from.krl_version()?)?;
    count(
        "host tokens",
        each(from, "host_tokens", "host token", |k, v: HostToken| {
            to.put_host_token(k, &v)
        })?,
    );
    count(
        "host challenges",
        each(
            from,
            "host_challenges",
            "host challenge",
            |k, v: HostChallenge| to.put_host_challenge(k, &v),
        )?,
    );
    let hosts = from.hosts()?;
    for h in &hosts {
        to.put_host(h)?;
    }
    count("hosts", hosts.len());
    let mut keys = 0;
    for item in from.db().open_tree("revoked_host_keys")?.iter() {
        let (fp, key) = item?;
        to.revoke_host_key(
            &String::from_utf8_lossy(&fp),
            &String::from_utf8_lossy(&key),
        )?;
        keys += 1;
    }
    count("revoked host keys", keys);
    Ok(c)
}
