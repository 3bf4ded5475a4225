//! Two CA replicas on one PostgreSQL database, each with its own state
//! store and audit log (own pools): checkpoints are signed by one replica
//! at a time, and `/readyz`'s audit check asks the database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod pg;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use jit_ssh_audit::checkpoint;
use jit_ssh_audit::{Actor, AuditLog, AuditQuery, Event, RequestStep};
use jit_ssh_ca::config::{self, storage::PostgresConfig};
use jit_ssh_ca::service::Ca;
use jit_ssh_ca::signer::FileSigner;
use jit_ssh_ca::store::{PgAuditLog, PgStore};

use common::AppendHook;

/// Holds checkpoint records a while before appending them: the window
/// in which a second replica, unchecked, would sign the same head.
fn slow_checkpoints(real: Arc<dyn AuditLog>) -> Arc<dyn AuditLog> {
    Arc::new(AppendHook {
        inner: real,
        before: |event: &Event| {
            if matches!(event, Event::Checkpoint(_)) {
                std::thread::sleep(Duration::from_millis(300));
            }
            Ok(())
        },
        on_ready: None,
    })
}

fn replica(cfg: &PostgresConfig, key: &ssh_key::PrivateKey, dir: &std::path::Path) -> Arc<Ca> {
    let ics = dir.join("oncall.ics");
    std::fs::write(&ics, common::ONCALL_ICS).unwrap();
    let text = common::config_text("")
        .replace("ONCALL_ICS", &ics.display().to_string())
        .replace("WEBHOOK_URL", "http://127.0.0.1:9/hook");
    let mut c = config::parse(&text, "test").unwrap();
    c.data_dir = dir.to_owned();
    let store = Arc::new(PgStore::open(cfg).unwrap());
    let audit = Arc::new(PgAuditLog::open(cfg).unwrap());
    Arc::new(
        Ca::new(
            c,
            Arc::new(FileSigner::new(key.clone())),
            store,
            slow_checkpoints(audit),
        )
        .unwrap(),
    )
}

fn step(i: u64) -> Event {
    Event::RequestExpired(RequestStep {
        request: format!("r{i}"),
        user: "alice".into(),
        host: "h.prod".into(),
        detail: String::new(),
    })
}

#[test]
fn two_replicas_sign_one_checkpoint_for_one_head() {
    let Some(cfg) = pg::database("two_replicas_sign_one_checkpoint_for_one_head") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let (a, b) = (
        replica(&cfg, &key, dir.path()),
        replica(&cfg, &key, dir.path()),
    );
    let log = PgAuditLog::open(&cfg).unwrap();
    for i in 0..5 {
        log.append(Actor::System, step(i)).unwrap();
    }
    // Both replicas' timers fire at once.
    let start = Arc::new(Barrier::new(2));
    let signed: Vec<Option<u64>> = [a, b]
        .into_iter()
        .map(|ca| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                ca.checkpoint(Actor::System, "interval").unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let checkpoints = log
        .query(&AuditQuery {
            kinds: vec!["checkpoint".into()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(checkpoints.len(), 1, "{checkpoints:#?}");
    assert_eq!(
        signed,
        vec![Some(6), Some(6)],
        "both name the one checkpoint"
    );
    // The chain, exported, verifies with the CA key and is vouched for.
    let mut out = Vec::new();
    log.export(1, 6, &mut |r| {
        out.extend_from_slice(r);
        out.push(b'\n');
        true
    })
    .unwrap();
    let report = checkpoint::verify_export(&out[..], &[key.public_key().clone()]).unwrap();
    assert_eq!(report.problem, None);
    assert_eq!((report.records, report.signed_through), (6, 5));
}

#[test]
fn readiness_asks_the_database_for_the_audit_log() {
    let Some(cfg) = pg::database("readiness_asks_the_database_for_the_audit_log") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let ca = replica(&cfg, &key, dir.path());
    let r = ca.readiness();
    assert!(r.ready, "{r:?}");
    pg::cluster("readiness").unwrap().sql(
        &pg::db_name(&cfg),
        "ALTER TABLE audit_head RENAME TO audit_head_gone",
    );
    let r = ca.readiness();
    assert_eq!(r.failed, vec!["audit_log"], "{r:?}");
}

#[test]
fn a_group_that_fails_gives_the_head_row_back() {
    let Some(cfg) = pg::database("a_group_that_fails_gives_the_head_row_back") else {
        return;
    };
    let db = pg::db_name(&cfg);
    let cluster = pg::cluster("a_group_that_fails").unwrap();
    let (a, b) = (
        Arc::new(PgAuditLog::open(&cfg).unwrap()),
        Arc::new(PgAuditLog::open(&cfg).unwrap()),
    );
    a.append(Actor::System, step(1)).unwrap();
    // A row already where the next record goes: A's group fails inside
    // the transaction that holds the head row.
    cluster.sql(
        &db,
        "INSERT INTO audit_records (seq, time_ns, kind, record) VALUES (2, 0, 'x', '{}')",
    );
    assert!(a.append(Actor::System, step(2)).is_err());
    assert!(a.append(Actor::System, step(3)).is_err());
    cluster.sql(&db, "DELETE FROM audit_records WHERE seq = 2");

    // Neither of A's failed transactions is left open: B appends at once,
    // and so does A on the same connections (left in an aborted
    // transaction, they would refuse every later group).
    let (tx, rx) = std::sync::mpsc::channel();
    let b2 = b.clone();
    std::thread::spawn(move || tx.send(b2.append(Actor::System, step(4)).map(|r| r.seq)));
    let seq = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("replica B waited for a head row a failed group kept");
    assert_eq!(seq.unwrap(), 2);
    assert_eq!(a.append(Actor::System, step(5)).unwrap().seq, 3);
    let report = b.verify().unwrap();
    assert!(report.first_break.is_none(), "{report:?}");
    assert_eq!(report.records, 3);
}
