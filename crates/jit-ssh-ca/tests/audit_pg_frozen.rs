//! A replica that freezes while it holds a lock every replica needs (a
//! paused VM, a SIGSTOPped process, a partition that drops packets
//! without a reset) must not stop the others: PostgreSQL ends its
//! session, the others go on, and the frozen replica, once it wakes,
//! fails what it was doing (nothing issued for it) and recovers by itself.
//! `kill -9` (tests/replicas_failover.rs) closes the socket at once; a
//! freeze closes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit_events;
mod frozen_proxy;
mod pg;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jit_ssh_audit::record::Actor;
use jit_ssh_audit::{AuditLog, AuditQuery};
use jit_ssh_ca::config::storage::PostgresConfig;
use jit_ssh_ca::store::{database_unavailable, PgAuditLog, PgStore, RevokedSerial, Store};

use audit_events::issued;
use frozen_proxy::Proxy;

/// How long the other replicas may wait for a frozen one at most before
/// this test calls it an outage (the CA's own limits are far below).
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs `f` on a thread of its own (it may never return: the thread is
/// then left behind, and the test still ends).
fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// A proxy in front of `cluster`, and `cfg` pointed at it.
fn proxied(cluster: &pg::Cluster, cfg: &PostgresConfig) -> (Proxy, PostgresConfig) {
    let proxy = Proxy::start(cluster.dir(), cluster.port());
    let mut via_proxy = cfg.clone();
    via_proxy.url = cfg.url.replace(
        &format!("host={}", cluster.dir().display()),
        &format!("host={}", proxy.dir().display()),
    );
    assert_ne!(via_proxy.url, cfg.url);
    (proxy, via_proxy)
}

fn serials(log: &dyn AuditLog) -> Vec<u64> {
    log.query(&AuditQuery::default())
        .unwrap()
        .iter()
        .flat_map(|r| r.event.serials().to_vec())
        .collect()
}

#[test]
fn a_replica_frozen_holding_the_audit_head_does_not_stop_the_others() {
    let name = "frozen_head";
    let Some(cluster) = pg::cluster(name) else {
        return;
    };
    let cfg = cluster.database();
    let (proxy, via_proxy) = proxied(cluster, &cfg);
    let a = Arc::new(PgAuditLog::open(&via_proxy).unwrap());
    let b = Arc::new(PgAuditLog::open(&cfg).unwrap());
    a.append(Actor::System, issued("alice", "h1", 1)).unwrap();

    // A takes the head row, then freezes.
    proxy.freeze_after("audit_head FOR UPDATE");
    let a_frozen = {
        let a = a.clone();
        spawn(move || a.append(Actor::System, issued("alice", "h1", 2)))
    };
    let started = Instant::now();
    while !proxy.is_frozen() {
        assert!(started.elapsed() < PATIENCE, "A never locked the head");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(a_frozen.try_recv().is_err(), "A is frozen mid-append");

    // B must still append, within a bound.
    let began = Instant::now();
    let b_append = {
        let b = b.clone();
        spawn(move || b.append(Actor::System, issued("bob", "h2", 3)))
    };
    let b_done = b_append.recv_timeout(PATIENCE);
    let waited = began.elapsed();
    eprintln!(
        "replica B waited {} ms behind frozen replica A",
        waited.as_millis()
    );
    let rec = b_done
        .unwrap_or_else(|_| {
            panic!("B still waits after {PATIENCE:?}: one frozen replica stopped every replica")
        })
        .unwrap();
    assert_eq!(rec.seq, 2, "B's record follows the last committed one");
    let report = b.verify().unwrap();
    assert_eq!((report.records, report.first_break), (2, None));

    // A wakes: its append fails (no certificate may leave A for it) and
    // its record is nowhere.
    proxy.thaw();
    let a_result = a_frozen
        .recv_timeout(PATIENCE)
        .expect("A's append never ends after it wakes");
    let e = a_result.expect_err("A's append must fail once its session was ended");
    // 503, retry (here or on another replica): nothing was committed.
    assert!(
        database_unavailable(&e),
        "A's failure is not reported as the database being unavailable: {:#}",
        anyhow::Error::from(e)
    );
    assert_eq!(serials(&*b), vec![1, 3], "A's frozen record is absent");

    // A recovers by itself: its next append commits, after B's.
    let again = a.append(Actor::System, issued("alice", "h1", 4)).unwrap();
    assert_eq!(again.seq, 3);
    let report = a.verify().unwrap();
    assert_eq!((report.records, report.first_break), (3, None));
    assert_eq!(serials(&*a), vec![1, 3, 4]);
}

#[test]
fn a_replica_frozen_holding_the_checkpoint_lock_does_not_stop_the_others() {
    let Some(cfg) = pg::database("frozen_checkpoint") else {
        return;
    };
    let a = Arc::new(PgAuditLog::open(&cfg).unwrap());
    let b = Arc::new(PgAuditLog::open(&cfg).unwrap());
    // A freezes (its thread stops) while it holds the checkpoint lock.
    let (locked_tx, locked_rx) = mpsc::channel();
    let (wake_tx, wake_rx) = mpsc::channel::<()>();
    let a_checkpoint = {
        let a = a.clone();
        spawn(move || {
            a.with_checkpoint_lock(&mut || {
                locked_tx.send(()).unwrap();
                let _ = wake_rx.recv();
            })
        })
    };
    locked_rx.recv_timeout(PATIENCE).unwrap();

    let began = Instant::now();
    let b_checkpoint = {
        let b = b.clone();
        spawn(move || {
            b.with_checkpoint_lock(&mut || {
                b.append(Actor::System, issued("bob", "h2", 9)).unwrap();
            })
        })
    };
    // The session limit is the longest legitimate idle inside a CA
    // transaction (a checkpoint signing on an HSM): more patience here.
    let b_done = b_checkpoint.recv_timeout(PATIENCE * 2);
    eprintln!(
        "replica B waited {} ms for the checkpoint lock held by frozen replica A",
        began.elapsed().as_millis()
    );
    b_done
        .unwrap_or_else(|_| {
            panic!(
                "B still waits for the checkpoint lock after {:?}",
                PATIENCE * 2
            )
        })
        .unwrap();
    // A wakes: ending its transaction fails (its session is gone), and
    // it locks again afterwards.
    wake_tx.send(()).unwrap();
    let e = a_checkpoint.recv_timeout(PATIENCE).unwrap().unwrap_err();
    assert!(database_unavailable(&e), "{:#}", anyhow::Error::from(e));
    a.with_checkpoint_lock(&mut || {}).unwrap();
}

#[test]
fn a_replica_frozen_in_a_revocation_does_not_stop_the_others() {
    let name = "frozen_revocation";
    let Some(cluster) = pg::cluster(name) else {
        return;
    };
    let cfg = cluster.database();
    let (proxy, via_proxy) = proxied(cluster, &cfg);
    let a: Arc<dyn Store> = Arc::new(PgStore::open(&via_proxy).unwrap());
    let b: Arc<dyn Store> = Arc::new(PgStore::open(&cfg).unwrap());
    let revoke = |serial| {
        vec![RevokedSerial {
            serial,
            valid_before: 4_000_000_000,
        }]
    };

    // A has bumped the KRL version (its row is locked) and freezes
    // before its COMMIT reaches the server.
    proxy.freeze_before("COMMIT");
    let a_frozen = {
        let a = a.clone();
        spawn(move || a.revoke_serials(&revoke(10)))
    };
    let started = Instant::now();
    while !proxy.is_frozen() {
        assert!(started.elapsed() < PATIENCE, "A never committed");
        std::thread::sleep(Duration::from_millis(5));
    }

    let began = Instant::now();
    let b_revoke = {
        let b = b.clone();
        spawn(move || b.revoke_serials(&revoke(11)))
    };
    let b_done = b_revoke.recv_timeout(PATIENCE * 2);
    eprintln!(
        "replica B's revocation waited {} ms behind frozen replica A",
        began.elapsed().as_millis()
    );
    b_done
        .unwrap_or_else(|_| panic!("B's revocation still waits after {:?}", PATIENCE * 2))
        .unwrap();

    proxy.thaw();
    let e = a_frozen
        .recv_timeout(PATIENCE)
        .expect("A's revocation never ends after it wakes")
        .expect_err("A's revocation must fail once its session was ended");
    assert!(database_unavailable(&e), "{:#}", anyhow::Error::from(e));
    let revoked = |s: &dyn Store| -> Vec<u64> {
        s.revoked_serials()
            .unwrap()
            .iter()
            .map(|r| r.serial)
            .collect()
    };
    assert_eq!(revoked(&*b), vec![11], "A's revocation was rolled back");
    // A recovers by itself.
    a.revoke_serials(&revoke(12)).unwrap();
    assert_eq!(revoked(&*a), vec![11, 12]);
}
