//! Two CAs on one PostgreSQL database, as two replicas are: a long poll
//! waiting on replica A is woken when replica B issues (LISTEN/NOTIFY),
//! not at the end of its wait, and a wakeup that changes nothing visible
//! does not end it early.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use jit_ssh_audit::AuditLog;
use jit_ssh_ca::store::{PgAuditLog, PgStore, Store};

use common::TestCa;

/// How long the engineer's long poll asks to wait: far longer than a
/// wakeup takes, so answering early can only come from the wakeup.
const WAIT_SECS: u64 = 25;

type Replica = (Arc<dyn Store>, Arc<dyn AuditLog>);

/// Two replicas' stores and audit logs (each with pools of its own) on
/// one database, opened outside the async runtime (blocking driver).
fn two_replicas(name: &str) -> Option<(Replica, Replica)> {
    let cfg = pg::database(name)?;
    let one = || -> Replica {
        (
            Arc::new(PgStore::open(&cfg).unwrap()),
            Arc::new(PgAuditLog::open(&cfg).unwrap()),
        )
    };
    Some((one(), one()))
}

fn replica((store, audit): Replica) -> TestCa {
    TestCa::with_store_and_audit(store, audit)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_long_poll_on_one_replica_wakes_when_the_other_issues() {
    let Some((a, b)) = two_replicas("a_long_poll_on_one_replica_wakes_when_the_other_issues")
    else {
        return;
    };
    runtime().block_on(async move {
        let (ra, rb) = (replica(a), replica(b));
        let mut key = ra.enroll("alice").await;
        let (s, created) = ra.request("alice", "web-1.dev", "oncall", "5m").await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let secret = created["secret"].as_str().unwrap().to_owned();

        let started = Instant::now();
        let poll = async {
            let (s, state) = ra
                .get(
                    &format!("/v1/requests/{id}?wait={WAIT_SECS}"),
                    Some(&secret),
                )
                .await;
            (s, state, started.elapsed())
        };
        let touch = async {
            // The poll is waiting on A by then.
            tokio::time::sleep(Duration::from_millis(700)).await;
            rb.touch(&id, &mut key).await
        };
        let ((s, state, waited), (ts, touched, _)) = tokio::join!(poll, touch);
        assert_eq!(ts, StatusCode::OK, "{touched}");
        assert_eq!(touched["status"], "issued", "{touched}");
        assert_eq!(s, StatusCode::OK, "{state}");
        assert_eq!(
            state["status"], "issued",
            "A answered with B's certificate: {state}"
        );
        assert!(state["certificate"].is_object() || state["certificate"].is_string());
        assert!(
            waited < Duration::from_secs(WAIT_SECS / 2),
            "woken by B's issuance, not by the end of the wait: {waited:?}"
        );
        eprintln!("the long poll on A answered {waited:?} after it began (B touched at 0.7 s)");
    });
}

#[test]
fn a_wakeup_that_changes_nothing_visible_keeps_the_poll_waiting() {
    let name = "a_wakeup_that_changes_nothing_visible_keeps_the_poll_waiting";
    let Some((a, _b)) = two_replicas(name) else {
        return;
    };
    runtime().block_on(async move {
        let ra = replica(a);
        ra.enroll("alice").await;
        let (_, created) = ra.request("alice", "web-1.dev", "oncall", "5m").await;
        let id = created["id"].as_str().unwrap().to_owned();
        let secret = created["secret"].as_str().unwrap().to_owned();
        let started = Instant::now();
        let path = format!("/v1/requests/{id}?wait=3");
        let poll = ra.get(&path, Some(&secret));
        let nudge = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            // What a reconnected listener does: wake everyone.
            ra.ca.waiters.wake_all();
            ra.ca.waiters.wake(&id);
        };
        let ((s, state), ()) = tokio::join!(poll, nudge);
        assert_eq!(s, StatusCode::OK, "{state}");
        assert_eq!(state["status"], "pending_mfa", "{state}");
        assert!(
            started.elapsed() >= Duration::from_millis(2900),
            "answered at {:?}, before its wait ended, with nothing new",
            started.elapsed()
        );
    });
}

#[test]
fn a_revocation_on_one_replica_is_in_the_others_next_krl() {
    let name = "a_revocation_on_one_replica_is_in_the_others_next_krl";
    let Some((a, b)) = two_replicas(name) else {
        return;
    };
    runtime().block_on(async move {
        let (ra, rb) = (replica(a), replica(b));
        let mut key = rb.enroll("alice").await;
        let (_, created) = rb.request("alice", "web-1.dev", "oncall", "5m").await;
        let id = created["id"].as_str().unwrap().to_owned();
        let secret = created["secret"].as_str().unwrap().to_owned();
        let (s, touched, _) = rb.touch(&id, &mut key).await;
        assert_eq!(s, StatusCode::OK, "{touched}");
        let (_, issued) = rb.get(&format!("/v1/requests/{id}"), Some(&secret)).await;
        let serial: u64 = issued["certificate"]["serial"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        // The store's blocking client runs off the async workers, as the
        // HTTP handlers run it (spawn_blocking).
        let revoked_in = |ca: &TestCa| {
            let published = tokio::task::block_in_place(|| ca.ca.krl().unwrap());
            let krl = jit_ssh_krl::Krl::decode(&published.bytes).unwrap();
            let listed = krl
                .cert_sections()
                .any(|(_, rc)| rc.serials.contains(serial));
            listed
        };
        let before = tokio::task::block_in_place(|| rb.ca.krl().unwrap().version);
        assert!(!revoked_in(&rb));

        tokio::task::block_in_place(|| {
            ra.ca
                .revoke(
                    &jit_ssh_proto::api::RevokeTarget::Serial(serial),
                    "lost laptop",
                    jit_ssh_audit::Actor::System,
                )
                .unwrap()
        });
        let after = tokio::task::block_in_place(|| rb.ca.krl().unwrap());
        assert!(after.version > before, "B's KRL version moved on");
        assert!(revoked_in(&rb), "B's next KRL lists the serial A revoked");
    });
}
