//! What the service relies on from a state store, run against every
//! implementation: the embedded sled store and PostgreSQL (one cluster
//! for this binary, a fresh database per test). Each behaviour is a
//! function over `Arc<dyn Store>`; `suite!` makes one test per store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg;
#[path = "../src/store/sled_reopen.rs"]
mod sled_reopen;
mod stored;

use std::sync::{Arc, Barrier};

use stored::{ceremony, counted, exact, passkey, request};

use jit_ssh_ca::policy::Role;
use jit_ssh_ca::store::{
    AccessRequest, Ceremony, Cutoffs, HostChallenge, HostRecord, HostToken, Invite,
    PendingDecision, PendingRevocation, PgStore, RevokedSerial, Session, SledStore, Standing,
    Store,
};
use jit_ssh_proto::api::{
    DecisionStatus, IssuedCertificate, RequestStatus, RevocationStatus, RevokeTarget,
    SessionStatus, Verdict,
};
use webauthn_rs::prelude::Passkey;

/// A sled store in a temp dir (removed when the test ends).
fn sled() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(&dir.path().join("state")).unwrap());
    (store, dir)
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[test] fn $name() { let (s, _dir) = super::sled(); super::$name(s) })*
        }
        mod postgres {
            $(#[test] fn $name() {
                if let Some(s) = super::pg::store(stringify!($name)) { super::$name(s) }
            })*
        }
    };
}

suite!(
    request_swaps_only_from_the_stored_value,
    one_of_many_racing_swaps_wins,
    pending_approval_lists_exactly_the_waiting,
    prune_removes_what_ended_and_keeps_the_rest,
    single_use_values_are_taken_once,
    single_use_values_race_to_one_taker,
    krl_version_moves_with_every_change,
    revocations_decisions_and_sessions_swap,
    users_credentials_roles_and_blocks,
    host_tokens_are_spent_and_hosts_swapped,
    host_challenges_and_revoked_host_keys,
    a_stored_request_reads_back_identical,
    credentials_swap_only_from_what_was_read,
    first_credentials_race_to_one_writer,
);

fn pending_ids(s: &dyn Store) -> Vec<String> {
    let mut ids: Vec<String> = s
        .pending_approval()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    ids.sort();
    ids
}

fn request_swaps_only_from_the_stored_value(s: Arc<dyn Store>) {
    let first = request("a", RequestStatus::PendingMfa);
    s.put_request(&first).unwrap();
    let claimed = AccessRequest {
        deciding_since: Some(5),
        ..first.clone()
    };
    assert!(s.swap_request(&first, &claimed).unwrap());
    // A second claimer holding the old value loses: nobody issues twice.
    let other = AccessRequest {
        deciding_since: Some(6),
        ..first.clone()
    };
    assert!(!s.swap_request(&first, &other).unwrap());
    assert_eq!(s.request("a").unwrap(), Some(claimed));
    // A request that is not stored cannot be swapped into existence.
    let ghost = request("ghost", RequestStatus::PendingMfa);
    assert!(!s.swap_request(&ghost, &ghost).unwrap());
    assert_eq!(s.request("ghost").unwrap(), None);
}

fn one_of_many_racing_swaps_wins(s: Arc<dyn Store>) {
    let first = request("race", RequestStatus::PendingMfa);
    s.put_request(&first).unwrap();
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let wins: usize = (0..n)
        .map(|i| {
            let (s, first, barrier) = (s.clone(), first.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mine = AccessRequest {
                    deciding_since: Some(i64::try_from(i).unwrap()),
                    status: RequestStatus::Issued,
                    ..first.clone()
                };
                barrier.wait();
                usize::from(s.swap_request(&first, &mine).unwrap())
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(wins, 1);
}

fn pending_approval_lists_exactly_the_waiting(s: Arc<dyn Store>) {
    let mfa = request("a", RequestStatus::PendingMfa);
    s.put_request(&mfa).unwrap();
    for i in 0..50 {
        s.put_request(&request(&format!("done{i}"), RequestStatus::Issued))
            .unwrap();
    }
    s.put_request(&request("b", RequestStatus::PendingApproval))
        .unwrap();
    assert_eq!(pending_ids(&*s), ["b"]);
    let waiting = request("a", RequestStatus::PendingApproval);
    assert!(s.swap_request(&mfa, &waiting).unwrap());
    assert_eq!(pending_ids(&*s), ["a", "b"]);
    let issued = request("a", RequestStatus::Issued);
    assert!(s.swap_request(&waiting, &issued).unwrap());
    assert_eq!(pending_ids(&*s), ["b"]);
    // A failed swap changes nothing, the index included.
    assert!(!s.swap_request(&waiting, &issued).unwrap());
    assert_eq!(pending_ids(&*s), ["b"]);
}

fn prune_removes_what_ended_and_keeps_the_rest(s: Arc<dyn Store>) {
    s.put_request(&request("old", RequestStatus::PendingApproval))
        .unwrap();
    let young = AccessRequest {
        expires_at: 1_000,
        ..request("young", RequestStatus::PendingApproval)
    };
    s.put_request(&young).unwrap();
    // Issued, its certificate valid past the cutoff: kept.
    let issued = AccessRequest {
        certificate: Some(IssuedCertificate {
            certificate: String::new(),
            serial: 7,
            principals: vec![],
            valid_after: 0,
            valid_before: 900,
        }),
        ..request("issued", RequestStatus::Issued)
    };
    s.put_request(&issued).unwrap();
    // Never confirmed: goes with the secrets' cutoff, not the state's.
    let anon = AccessRequest {
        expires_at: 300,
        ..request("anon", RequestStatus::PendingMfa)
    };
    s.put_request(&anon).unwrap();
    s.put_invite(
        "inv-old",
        &Invite {
            user: "bob".into(),
            roles: vec![],
            expires_at: 100,
        },
    )
    .unwrap();
    s.put_invite(
        "inv-new",
        &Invite {
            user: "bob".into(),
            roles: vec![],
            expires_at: 10_000,
        },
    )
    .unwrap();
    s.put_session(&session("s-old", 100)).unwrap();
    s.put_session(&session("s-new", 10_000)).unwrap();
    let p = s
        .prune(Cutoffs {
            state: 200,
            secrets: 500,
        })
        .unwrap();
    assert_eq!((p.requests, p.invites, p.sessions), (2, 1, 1), "{p:?}");
    assert!(s.request("old").unwrap().is_none());
    assert!(s.request("anon").unwrap().is_none());
    assert!(s.request("issued").unwrap().is_some());
    assert_eq!(pending_ids(&*s), ["young"]);
    assert!(s.invite("inv-new").unwrap().is_some() && s.invite("inv-old").unwrap().is_none());
    assert!(s.session("s-new").unwrap().is_some() && s.session("s-old").unwrap().is_none());
}

fn session(id: &str, expires_at: i64) -> Session {
    Session {
        id: id.into(),
        user: "alice".into(),
        status: SessionStatus::PendingMfa,
        expires_at,
        secret_hash: "ff".into(),
        roles: vec![],
    }
}

fn single_use_values_are_taken_once(s: Arc<dyn Store>) {
    s.put_ceremony("c", &ceremony(100)).unwrap();
    assert!(matches!(
        s.take_ceremony("c").unwrap(),
        Some(Ceremony::Enroll {
            expires_at: 100,
            ..
        })
    ));
    assert!(s.take_ceremony("c").unwrap().is_none());
    let invite = Invite {
        user: "bob".into(),
        roles: vec![Role::Approver],
        expires_at: 100,
    };
    s.put_invite("h", &invite).unwrap();
    assert_eq!(s.invite("h").unwrap(), Some(invite.clone()));
    assert_eq!(s.take_invite("h").unwrap(), Some(invite));
    assert_eq!(s.take_invite("h").unwrap(), None);
    assert_eq!(s.invite("h").unwrap(), None);
}

fn single_use_values_race_to_one_taker(s: Arc<dyn Store>) {
    for round in 0..5 {
        let key = format!("c{round}");
        s.put_ceremony(&key, &ceremony(100)).unwrap();
        let barrier = Arc::new(Barrier::new(6));
        let got: usize = (0..6)
            .map(|_| {
                let (s, key, barrier) = (s.clone(), key.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    usize::from(s.take_ceremony(&key).unwrap().is_some())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(got, 1, "round {round}");
    }
}

fn krl_version_moves_with_every_change(s: Arc<dyn Store>) {
    assert_eq!(s.krl_version().unwrap(), 1);
    assert!(s.revoked_serials().unwrap().is_empty());
    let v = s
        .revoke_serials(&[
            RevokedSerial {
                serial: u64::MAX,
                valid_before: u64::MAX,
            },
            RevokedSerial {
                serial: 3,
                valid_before: 100,
            },
            // The same serial twice in one call: the last wins.
            RevokedSerial {
                serial: 3,
                valid_before: 200,
            },
        ])
        .unwrap();
    assert_eq!(v, 2);
    assert_eq!(s.krl_version().unwrap(), 2);
    let mut got: Vec<(u64, u64)> = s
        .revoked_serials()
        .unwrap()
        .iter()
        .map(|r| (r.serial, r.valid_before))
        .collect();
    got.sort();
    assert_eq!(got, [(3, 200), (u64::MAX, u64::MAX)]);
    assert_eq!(s.remove_revoked(&[3]).unwrap(), 3);
    let left: Vec<u64> = s
        .revoked_serials()
        .unwrap()
        .iter()
        .map(|r| r.serial)
        .collect();
    assert_eq!(left, [u64::MAX]);
}

fn revocations_decisions_and_sessions_swap(s: Arc<dyn Store>) {
    let r = PendingRevocation {
        id: "r".into(),
        user: "sam".into(),
        target: RevokeTarget::Serial(9),
        reason: "lost laptop".into(),
        created_at: 0,
        expires_at: 100,
        status: RevocationStatus::PendingMfa,
        outcome: None,
        secret_hash: "ff".into(),
        serials: vec![],
        krl_version: None,
    };
    s.put_revocation(&r).unwrap();
    let done = PendingRevocation {
        status: RevocationStatus::Revoked,
        krl_version: Some(2),
        ..r.clone()
    };
    assert!(s.swap_revocation(&r, &done).unwrap());
    assert!(!s.swap_revocation(&r, &done).unwrap());
    assert_eq!(s.revocation("r").unwrap(), Some(done));

    let d = PendingDecision {
        id: "d".into(),
        request: "a".into(),
        user: "bob".into(),
        verdict: Verdict::Approve,
        comment: "ok".into(),
        expires_at: 100,
        status: DecisionStatus::PendingMfa,
        outcome: None,
        secret_hash: "ff".into(),
    };
    s.put_decision(&d).unwrap();
    let applied = PendingDecision {
        status: DecisionStatus::Recorded,
        ..d.clone()
    };
    assert!(s.swap_decision(&d, &applied).unwrap());
    assert!(!s.swap_decision(&d, &applied).unwrap());
    assert_eq!(s.decision("d").unwrap(), Some(applied));

    let pending = session("s", 100);
    s.put_session(&pending).unwrap();
    let active = Session {
        status: SessionStatus::Active,
        roles: vec![Role::Auditor],
        ..pending.clone()
    };
    assert!(s.swap_session(&pending, &active).unwrap());
    assert!(!s.swap_session(&pending, &active).unwrap());
    assert_eq!(s.session("s").unwrap(), Some(active));
    assert_eq!(s.session("nope").unwrap(), None);
}

fn users_credentials_roles_and_blocks(s: Arc<dyn Store>) {
    assert!(s.credentials("alice").unwrap().is_empty());
    let none = s.stored_credentials("alice").unwrap();
    assert!(s.swap_credentials("alice", &none, &[], true).unwrap());
    let empty = s.stored_credentials("alice").unwrap();
    assert!(s.swap_credentials("alice", &empty, &[], false).unwrap());
    assert!(s.credentials("alice").unwrap().is_empty());
    assert!(s.invited_roles("alice").unwrap().is_empty());
    s.add_invited_roles("alice", &[Role::Security, Role::Approver])
        .unwrap();
    s.add_invited_roles("alice", &[Role::Approver, Role::Admin])
        .unwrap();
    let mut want = vec![Role::Security, Role::Approver, Role::Admin];
    want.sort();
    assert_eq!(s.invited_roles("alice").unwrap(), want);
    assert!(!s.is_blocked("alice").unwrap());
    let (unenrolled, blocked) = (
        Standing {
            enrolled: false,
            blocked: false,
        },
        Standing {
            enrolled: false,
            blocked: true,
        },
    );
    assert_eq!(s.may_request("alice").unwrap(), unenrolled);
    s.block_user("alice").unwrap();
    s.block_user("alice").unwrap();
    assert!(s.is_blocked("alice").unwrap() && !s.is_blocked("bob").unwrap());
    assert_eq!(s.may_request("alice").unwrap(), blocked);
    assert_eq!(s.may_request("bob").unwrap(), unenrolled);
    assert!(s.unblock_user("alice").unwrap());
    assert!(!s.unblock_user("alice").unwrap());
    assert!(!s.is_blocked("alice").unwrap());
    assert_eq!(s.may_request("alice").unwrap(), unenrolled);
}

fn host(name: &str) -> HostRecord {
    HostRecord {
        name: name.into(),
        group: "web".into(),
        host_key: "ssh-ed25519 AAAA".into(),
        host_key_fingerprint: "SHA256:x".into(),
        enrolled_by_token: "t".into(),
        enrolled_at: 0,
        cert_serial: 1,
        cert_valid_before: 100,
        last_contact: 0,
        held: None,
        aliases: vec![],
    }
}

fn host_tokens_are_spent_and_hosts_swapped(s: Arc<dyn Store>) {
    let token = HostToken {
        secret_hash: "ff".into(),
        group: "web".into(),
        name_pattern: None,
        expires_at: 100,
        uses_left: 2,
        created_by: "admin".into(),
    };
    s.put_host_token("t", &token).unwrap();
    assert_eq!(
        s.use_host_token("t", 10).unwrap().map(|t| t.uses_left),
        Some(2)
    );
    assert_eq!(s.host_token("t").unwrap().map(|t| t.uses_left), Some(1));
    assert_eq!(
        s.use_host_token("t", 10).unwrap().map(|t| t.uses_left),
        Some(1)
    );
    assert_eq!(s.host_token("t").unwrap(), None, "the last use removes it");
    assert_eq!(s.use_host_token("t", 10).unwrap(), None);
    s.put_host_token("expired", &token).unwrap();
    assert_eq!(s.use_host_token("expired", 100).unwrap(), None);
    assert_eq!(s.host_token("expired").unwrap(), None);

    let h = host("web-1");
    s.put_host(&h).unwrap();
    s.put_host(&host("web-0")).unwrap();
    let renewed = HostRecord {
        cert_serial: 2,
        ..h.clone()
    };
    assert!(s.swap_host(&h, &renewed).unwrap());
    assert!(
        !s.swap_host(&h, &renewed).unwrap(),
        "two check-ins never both renew"
    );
    assert!(!s.swap_host(&host("nope"), &host("nope")).unwrap());
    let mut names: Vec<String> = s.hosts().unwrap().into_iter().map(|h| h.name).collect();
    names.sort();
    assert_eq!(names, ["web-0", "web-1"]);
    assert_eq!(s.remove_host("web-1").unwrap(), Some(renewed));
    assert_eq!(s.remove_host("web-1").unwrap(), None);
    assert_eq!(s.host("web-1").unwrap(), None);
}

fn host_challenges_and_revoked_host_keys(s: Arc<dyn Store>) {
    let c = |expires_at| HostChallenge {
        token_id: "t".into(),
        name: "web-1".into(),
        host_key: "ssh-ed25519 AAAA".into(),
        nonce: "00".into(),
        expires_at,
        checkin: false,
        aliases: vec![],
    };
    s.put_host_challenge("old", &c(10)).unwrap();
    s.put_host_challenge("new", &c(1_000)).unwrap();
    s.put_host_challenge("taken", &c(1_000)).unwrap();
    assert_eq!(s.take_host_challenge("taken").unwrap(), Some(c(1_000)));
    assert_eq!(s.take_host_challenge("taken").unwrap(), None);
    assert_eq!(s.prune_host_challenges(500).unwrap(), 1);
    assert_eq!(s.take_host_challenge("old").unwrap(), None);
    assert_eq!(s.take_host_challenge("new").unwrap(), Some(c(1_000)));

    assert!(!s.host_key_revoked("SHA256:x").unwrap());
    s.revoke_host_key("SHA256:x", "ssh-ed25519 AAAA web-1")
        .unwrap();
    assert!(s.host_key_revoked("SHA256:x").unwrap());
    assert_eq!(s.revoked_host_keys().unwrap(), ["ssh-ed25519 AAAA web-1"]);
}

fn a_stored_request_reads_back_identical(s: Arc<dyn Store>) {
    // Everything a request can hold, control characters and the largest
    // serial included, comes back equal.
    let mut r = request("full", RequestStatus::Issued);
    r.decision_reason = Some("line\u{0}two \u{202e} \"q\"".into());
    r.certificate = Some(IssuedCertificate {
        certificate: "ssh-ed25519-cert-v01@openssh.com AAAA".into(),
        serial: u64::MAX,
        principals: vec!["postgres@db-1.prod".into()],
        valid_after: 1,
        valid_before: u64::MAX / 2,
    });
    r.deciding_since = Some(i64::MAX);
    s.put_request(&r).unwrap();
    assert_eq!(s.request("full").unwrap(), Some(r.clone()));
    let next = AccessRequest {
        grant: Some("g".into()),
        ..r.clone()
    };
    assert!(s.swap_request(&r, &next).unwrap());
    assert_eq!(s.request("full").unwrap(), Some(next));
}

fn credentials_swap_only_from_what_was_read(s: Arc<dyn Store>) {
    let (a, b, c) = (passkey(), passkey(), passkey());
    let (only_a, only_b) = (std::slice::from_ref(&a), std::slice::from_ref(&b));
    let none = s.stored_credentials("alice").unwrap();
    assert!(none.passkeys.is_empty());
    assert!(!s.may_request("alice").unwrap().enrolled);
    // The first credential, from a read that found none.
    assert!(s.swap_credentials("alice", &none, only_a, true).unwrap());
    assert_eq!(exact(&s.credentials("alice").unwrap()), exact(only_a));
    // A second "first" enrollment read none too: refused.
    assert!(!s.swap_credentials("alice", &none, only_b, true).unwrap());
    // An enrollment from the stored list, not waiting for the disk here
    // (both kinds of write must swap alike).
    let with_a = s.stored_credentials("alice").unwrap();
    let two = [a.clone(), b.clone()];
    assert!(s.swap_credentials("alice", &with_a, &two, false).unwrap());
    // A sign-in that read the list before that enrollment writes back
    // what it read with its counter raised: refused, nothing changes
    // (this blind write lost passkey b).
    for durable in [true, false] {
        assert!(!s
            .swap_credentials("alice", &with_a, &[counted(&a, 7)], durable)
            .unwrap());
        assert!(!s
            .swap_credentials("alice", &with_a, &[a.clone(), c.clone()], durable)
            .unwrap());
        assert_eq!(exact(&s.credentials("alice").unwrap()), exact(&two));
    }
    // The counter rises from the stored list; a stale read cannot move
    // it back.
    let with_two = s.stored_credentials("alice").unwrap();
    let raised = [counted(&a, 7), b.clone()];
    assert!(s
        .swap_credentials("alice", &with_two, &raised, false)
        .unwrap());
    assert!(!s
        .swap_credentials("alice", &with_two, &[counted(&a, 3), b.clone()], false)
        .unwrap());
    assert_eq!(exact(&s.credentials("alice").unwrap()), exact(&raised));
    // An empty list stored is not "none": a read of none before it was
    // stored is stale, a read of it is not.
    let bob_none = s.stored_credentials("bob").unwrap();
    assert!(s.swap_credentials("bob", &bob_none, &[], true).unwrap());
    let only_c = std::slice::from_ref(&c);
    assert!(!s.swap_credentials("bob", &bob_none, only_c, true).unwrap());
    let bob_empty = s.stored_credentials("bob").unwrap();
    assert!(bob_empty.passkeys.is_empty());
    assert!(s.swap_credentials("bob", &bob_empty, only_c, true).unwrap());
    assert_eq!(exact(&s.credentials("bob").unwrap()), exact(only_c));
}

/// `a`'s list as another version of webauthn-rs might have stored it: a
/// field this one does not know, other spacing. It decodes to the same
/// passkey but does not come back byte for byte when encoded again.
fn stored_by_another_version(a: &Passkey) -> String {
    let mut list = serde_json::to_value([a]).unwrap();
    list[0]["cred"]["field_of_another_version"] = serde_json::json!(1);
    let form = serde_json::to_string_pretty(&list).unwrap();
    assert_ne!(form, exact(std::slice::from_ref(a)));
    form
}

/// A sign-in raises the counter of a list stored in another form. A
/// swap that compared against the list encoded again never matched it:
/// every counter update failed (then every sign-in, after its tries).
fn a_list_stored_in_another_form_swaps(s: Arc<dyn Store>, a: &Passkey) {
    let read = s.stored_credentials("alice").unwrap();
    assert_eq!(exact(&read.passkeys), exact(std::slice::from_ref(a)));
    let raised = [counted(a, 7)];
    assert!(
        s.swap_credentials("alice", &read, &raised, false).unwrap(),
        "the swap missed the list it read"
    );
    assert_eq!(exact(&s.credentials("alice").unwrap()), exact(&raised));
}

#[test]
fn embedded_a_list_stored_in_another_form_swaps() {
    let a = passkey();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    {
        let db = sled::open(&path).unwrap();
        let tree = db.open_tree("credentials").unwrap();
        tree.insert("alice", stored_by_another_version(&a).as_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let s = sled_reopen::until_unlocked(|| SledStore::open(&path));
    a_list_stored_in_another_form_swaps(Arc::new(s), &a);
}

#[test]
fn postgres_a_list_stored_in_another_form_swaps() {
    let test = "postgres_a_list_stored_in_another_form_swaps";
    let Some(cfg) = pg::database(test) else {
        return;
    };
    let a = passkey();
    let form = stored_by_another_version(&a).replace('\'', "''");
    pg::cluster(test).unwrap().sql(
        &pg::db_name(&cfg),
        &format!("INSERT INTO credentials (user_name, body) VALUES ('alice', '{form}')"),
    );
    let s = PgStore::open(&cfg).unwrap();
    a_list_stored_in_another_form_swaps(Arc::new(s), &a);
}

fn first_credentials_race_to_one_writer(s: Arc<dyn Store>) {
    let n = 6;
    for round in 0..4 {
        let user = format!("u{round}");
        let keys: Vec<_> = (0..n).map(|_| passkey()).collect();
        let barrier = Arc::new(Barrier::new(n));
        let won: Vec<usize> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let (s, user, k, barrier) = (s.clone(), user.clone(), k.clone(), barrier.clone());
                std::thread::spawn(move || {
                    // Each read none, then all swap at once, durable
                    // and not racing each other.
                    let none = s.stored_credentials(&user).unwrap();
                    barrier.wait();
                    let won = s.swap_credentials(&user, &none, &[k], i % 2 == 0).unwrap();
                    won.then_some(i)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {won:?} all stored");
        assert_eq!(
            exact(&s.credentials(&user).unwrap()),
            exact(&[keys[won[0]].clone()]),
            "round {round}"
        );
    }
}
