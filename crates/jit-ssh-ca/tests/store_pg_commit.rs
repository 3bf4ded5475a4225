//! Which store writes wait for the disk on PostgreSQL (store/pg/commit.rs):
//! login state (WebAuthn ceremonies, access requests) commits without
//! waiting for its WAL to be flushed; everything else waits. Seen from the
//! server's own WAL positions: right after a write that waited, everything
//! inserted is flushed; after one that did not, the insert position stays
//! ahead of the flush position until the WAL writer's next round, 10 s
//! apart in this test's own cluster.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg;
mod stored;

use jit_ssh_ca::store::{AccessRequest, PgStore, Store};
use jit_ssh_proto::api::RequestStatus;
use stored::{ceremony, counted, passkey, request};

/// Whether WAL inserted so far is not yet flushed.
fn unflushed(c: &mut postgres::Client) -> bool {
    c.query_one(
        "SELECT pg_current_wal_insert_lsn() > pg_current_wal_flush_lsn()",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn login_state_commits_without_waiting_for_the_disk_and_the_rest_waits() {
    if !pg::available("login_state_commits_without_waiting_for_the_disk") {
        return;
    }
    // Generic plans: the set_config item must run in them too (a custom
    // plan folds the parameter; a generic one keeps the CASE).
    let cluster = pg::Cluster::start_with(5435, |_| {
        "wal_writer_delay = 10s\nplan_cache_mode = force_generic_plan\n".into()
    });
    let cfg = cluster.database();
    let store = PgStore::open(&cfg).unwrap();
    let mut c = postgres::Client::connect(&cfg.url, postgres::NoTls).unwrap();

    // Each deferred write comes right after a durable one, which leaves
    // nothing unflushed behind it.
    let durable = |c: &mut postgres::Client, what: &str, write: &dyn Fn()| {
        write();
        assert!(!unflushed(c), "{what} returned before its WAL was flushed");
    };
    let deferred = |c: &mut postgres::Client, what: &str, write: &dyn Fn()| {
        // (An upsert that always writes: a write that changes nothing
        // commits nothing.)
        durable(c, "storing credentials", &|| {
            store.put_credentials("bob", &[]).unwrap()
        });
        write();
        assert!(unflushed(c), "{what} waited for the disk");
    };

    deferred(&mut c, "storing a ceremony", &|| {
        store.put_ceremony("mfa:1", &ceremony(100)).unwrap()
    });
    deferred(&mut c, "taking a ceremony", &|| {
        assert!(store.take_ceremony("mfa:1").unwrap().is_some())
    });
    let first = request("r1", RequestStatus::PendingMfa);
    let claimed = AccessRequest {
        deciding_since: Some(5),
        ..first.clone()
    };
    deferred(&mut c, "storing a request", &|| {
        store.put_request(&first).unwrap()
    });
    deferred(&mut c, "claiming a request", &|| {
        assert!(store.swap_request(&first, &claimed).unwrap())
    });

    // What a claim leads to is told to the requester (and a certificate
    // leaves with `issued`) with no later audit commit to flush it: it
    // waits. Lost in a crash, `issued` went back to "being decided" and
    // then `expired`, and the CA refused every recording of that grant
    // ("it was never issued"); a denial came back as a live claim.
    let issued = AccessRequest {
        deciding_since: None,
        status: RequestStatus::Issued,
        grant: Some("r1".into()),
        ..first.clone()
    };
    durable(&mut c, "storing the issued state after a claim", &|| {
        assert!(store.swap_request(&claimed, &issued).unwrap())
    });
    let second = request("r2", RequestStatus::PendingMfa);
    let second_claimed = AccessRequest {
        deciding_since: Some(5),
        ..second.clone()
    };
    let denied = AccessRequest {
        status: RequestStatus::Denied,
        ..second.clone()
    };
    deferred(&mut c, "storing a request", &|| {
        store.put_request(&second).unwrap()
    });
    deferred(&mut c, "claiming a request", &|| {
        assert!(store.swap_request(&second, &second_claimed).unwrap())
    });
    durable(&mut c, "storing a denial after a claim", &|| {
        assert!(store.swap_request(&second_claimed, &denied).unwrap())
    });

    // An enrolled credential waits; a sign-in's counter update need not.
    let key = passkey();
    durable(&mut c, "enrolling a credential", &|| {
        let none = store.stored_credentials("carol").unwrap();
        assert!(store
            .swap_credentials("carol", &none, std::slice::from_ref(&key), true)
            .unwrap())
    });
    deferred(&mut c, "a signature-counter update", &|| {
        let one = store.stored_credentials("carol").unwrap();
        assert!(store
            .swap_credentials("carol", &one, &[counted(&key, 1)], false)
            .unwrap())
    });
    deferred(&mut c, "storing a ceremony", &|| {
        store.put_ceremony("mfa:5", &ceremony(100)).unwrap()
    });
    durable(&mut c, "enrolling a second credential", &|| {
        let two = [counted(&key, 1), passkey()];
        let counted_once = store.stored_credentials("carol").unwrap();
        assert!(store
            .swap_credentials("carol", &counted_once, &two, true)
            .unwrap())
    });

    // What must not be lost waits, even right after a deferred write.
    deferred(&mut c, "storing a ceremony", &|| {
        store.put_ceremony("mfa:2", &ceremony(100)).unwrap()
    });
    durable(&mut c, "blocking a user", &|| {
        store.block_user("mallory").unwrap()
    });
    deferred(&mut c, "storing a ceremony", &|| {
        store.put_ceremony("mfa:3", &ceremony(100)).unwrap()
    });
    durable(&mut c, "unblocking a user", &|| {
        assert!(store.unblock_user("mallory").unwrap())
    });
    // The audit log's append forces a synchronous commit of its own.
    deferred(&mut c, "storing a ceremony", &|| {
        store.put_ceremony("mfa:4", &ceremony(100)).unwrap()
    });
    let audit = jit_ssh_ca::store::PgAuditLog::open(&cfg).unwrap();
    durable(&mut c, "an audit append", &|| {
        jit_ssh_audit::AuditLog::append(
            &audit,
            jit_ssh_audit::Actor::System,
            jit_ssh_audit::Event::RequestExpired(jit_ssh_audit::record::RequestStep {
                request: "r1".into(),
                user: "alice".into(),
                host: "db-1.prod".into(),
                detail: String::new(),
            }),
        )
        .map(drop)
        .unwrap()
    });
}
