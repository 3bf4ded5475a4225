//! `jit-ssh-ca migrate --from DATA_DIR --to URL`: an embedded CA's state
//! and audit chain moved into an empty PostgreSQL database, as an
//! operator runs it (the real binary; one cluster for this test binary).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg;
#[path = "../src/store/sled_reopen.rs"]
mod sled_reopen;
mod stored;

use std::path::Path;
use std::process::{Command, Output};

use jit_ssh_audit::checkpoint::{self, NAMESPACE};
use jit_ssh_audit::{Actor, AuditLog, Checkpoint, Event, RequestStep};
use jit_ssh_audit_disk::DiskAuditLog;
use jit_ssh_ca::policy::Role;
use jit_ssh_ca::store::{
    AccessRequest, HostStore, Invite, PgAuditLog, PgStore, RevokedSerial, SledStore, Store,
};
use jit_ssh_proto::api::RequestStatus;

fn ca() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jit-ssh-ca"))
}

fn migrate_from(data: &Path, url: &str) -> Output {
    ca().arg("migrate")
        .arg("--from")
        .arg(data)
        .args(["--to", url, "--sslmode", "disable"])
        .output()
        .unwrap()
}

/// A request still waiting for approvers when the data was copied.
fn request(id: &str) -> AccessRequest {
    AccessRequest {
        expires_at: 4_000_000_000,
        ..stored::request(id, RequestStatus::PendingApproval)
    }
}

fn step(i: u64) -> Event {
    Event::RequestExpired(RequestStep {
        request: format!("r{i}"),
        user: "alice".into(),
        host: "db-1.prod".into(),
        detail: String::new(),
    })
}

/// An embedded CA's data directory: some state, 40 records, a checkpoint
/// signed by `key`, and 3 records after it.
fn embedded_ca(data: &Path, key: &ssh_key::PrivateKey) {
    let store = SledStore::open(&data.join("state")).unwrap();
    store
        .put_invite(
            "invite-hash",
            &Invite {
                user: "bob".into(),
                roles: vec![Role::Approver],
                expires_at: 4_000_000_000,
            },
        )
        .unwrap();
    store.add_invited_roles("carol", &[Role::Auditor]).unwrap();
    store.put_request(&request("r1")).unwrap();
    store.block_user("mallory").unwrap();
    // Three KRL changes (version 4); the copy puts the serial in at once.
    for serial in [u64::MAX - 1, 7, 8] {
        store
            .revoke_serials(&[RevokedSerial {
                serial,
                valid_before: 4_000_000_000,
            }])
            .unwrap();
    }
    store.remove_revoked(&[7, 8]).unwrap();
    store
        .revoke_host_key("SHA256:gone", "ssh-ed25519 AAAA gone")
        .unwrap();
    let audit = DiskAuditLog::open(&data.join("audit")).unwrap();
    for i in 0..40 {
        audit.append(Actor::System, step(i)).unwrap();
    }
    let head = audit.head();
    let sig = key
        .sign(
            NAMESPACE,
            ssh_key::HashAlg::Sha512,
            &checkpoint::message(head.seq, &head.hash),
        )
        .unwrap();
    audit
        .append(
            Actor::System,
            Event::Checkpoint(Checkpoint {
                seq: head.seq,
                hash: head.hash,
                ca_fingerprint: key
                    .public_key()
                    .fingerprint(ssh_key::HashAlg::Sha256)
                    .to_string(),
                signature: sig.to_pem(ssh_key::LineEnding::LF).unwrap(),
                trigger: "test".into(),
            }),
        )
        .unwrap();
    for i in 40..43 {
        audit.append(Actor::System, step(i)).unwrap();
    }
}

fn export(log: &dyn AuditLog) -> Vec<u8> {
    let mut out = Vec::new();
    log.export(1, u64::MAX, &mut |r| {
        out.extend_from_slice(r);
        out.push(b'\n');
        true
    })
    .unwrap();
    out
}

#[test]
fn an_embedded_ca_moves_to_postgresql_with_the_same_chain() {
    let Some(cluster) = pg::cluster("an_embedded_ca_moves_to_postgresql") else {
        return;
    };
    // Not migrated yet: `migrate --from` brings the schema first.
    cluster.sql("postgres", "CREATE DATABASE moved");
    let cfg = cluster.config("moved");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    embedded_ca(&data, &key);
    let (source_head, source_export, source_krl) = {
        let audit = DiskAuditLog::open(&data.join("audit")).unwrap();
        let store = sled_reopen::until_unlocked(|| SledStore::open(&data.join("state")));
        (audit.head(), export(&audit), store.krl_version().unwrap())
    };

    let out = migrate_from(&data, &cfg.url);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("migrated from version 0 to 2"), "{said}");
    assert!(
        said.contains(&format!("44 records, head {}", source_head.hash)),
        "{said}"
    );

    // The state, read through the store as a replica would.
    let store = PgStore::open(&cfg).unwrap();
    assert_eq!(store.invite("invite-hash").unwrap().unwrap().user, "bob");
    assert_eq!(store.invited_roles("carol").unwrap(), vec![Role::Auditor]);
    let pending: Vec<String> = store
        .pending_approval()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(pending, vec!["r1".to_owned()]);
    assert!(store.is_blocked("mallory").unwrap());
    let revoked: Vec<u64> = store
        .revoked_serials()
        .unwrap()
        .iter()
        .map(|r| r.serial)
        .collect();
    assert_eq!(revoked, vec![u64::MAX - 1]);
    assert_eq!(
        store.krl_version().unwrap(),
        source_krl,
        "the KRL version never goes back"
    );
    assert!(store.host_key_revoked("SHA256:gone").unwrap());

    // The chain: the same bytes, the same head; an export from
    // PostgreSQL verifies with the CA key over the old records.
    let log = PgAuditLog::open(&cfg).unwrap();
    assert_eq!(log.head(), source_head);
    let moved = export(&log);
    assert_eq!(moved, source_export);
    // (An export ends at a checkpoint: records 1..=41.)
    let signed: Vec<u8> = moved
        .split_inclusive(|b| *b == b'\n')
        .take(41)
        .flatten()
        .copied()
        .collect();
    let report = checkpoint::verify_export(&signed[..], &[key.public_key().clone()]).unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(
        (report.records, report.checkpoints, report.signed_through),
        (41, 1, 40)
    );
    // New records follow the old ones on the same chain.
    let next = log.append(Actor::System, step(99)).unwrap();
    assert_eq!((next.seq, next.prev_hash), (45, source_head.hash));
    assert_eq!(log.verify().unwrap().first_break, None);

    // Never into a database that holds something.
    let again = migrate_from(&data, &cfg.url);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(err.contains("already holds data"), "{err}");
    assert_eq!(log.head().seq, 45, "nothing copied twice");
}

#[test]
fn a_broken_source_chain_is_refused_and_nothing_is_copied() {
    let Some(cluster) = pg::cluster("a_broken_source_chain_is_refused") else {
        return;
    };
    let cfg = cluster.database();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    embedded_ca(&data, &key);
    // Someone edited record 12 in the chain file (same length).
    let file = data.join("audit").join("chain.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let edited: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 11 {
                l.replacen("r11", "r99", 1)
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&file, edited.join("\n") + "\n").unwrap();

    let out = migrate_from(&data, &cfg.url);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("broken") && err.contains("record 12"), "{err}");
    let store = PgStore::open(&cfg).unwrap();
    assert_eq!(
        store.first_non_empty_table().unwrap(),
        None,
        "nothing copied"
    );
}

#[test]
fn to_refuses_a_password_in_the_url() {
    let tmp = tempfile::tempdir().unwrap();
    let out = migrate_from(tmp.path(), "postgres://jit:s3cret@db.internal/jit");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--password-file"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}
