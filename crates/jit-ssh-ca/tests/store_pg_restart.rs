//! PostgreSQL goes away under a running store and comes back: operations
//! fail (bounded by `connect_timeout`, never hanging) while it is down,
//! and succeed again afterwards without reopening the store. Its own
//! binary: it stops the cluster every other test would share.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg;

use std::time::{Duration, Instant};

use jit_ssh_ca::store::{HostStore, PgStore, Store};

#[test]
fn the_store_fails_while_postgresql_is_down_and_recovers_after() {
    let Some(cluster) = pg::cluster("the_store_fails_while_postgresql_is_down_and_recovers_after")
    else {
        return;
    };
    let cfg = jit_ssh_ca::config::storage::PostgresConfig {
        connect_timeout: Duration::from_secs(1),
        ..cluster.database()
    };
    let store = PgStore::open(&cfg).unwrap();
    store.block_user("mallory").unwrap();
    let v = store.krl_version().unwrap();

    cluster.stop("immediate");
    let started = Instant::now();
    assert!(
        store.is_blocked("mallory").is_err(),
        "read a stopped database"
    );
    assert!(store.revoke_host_key("SHA256:x", "k").is_err());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "failing took {took:?}");

    cluster.restart();
    // The pool drops the broken connections and makes new ones.
    let deadline = Instant::now() + Duration::from_secs(20);
    let blocked = loop {
        match store.is_blocked("mallory") {
            Ok(b) => break b,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("no recovery: {e}"),
        }
    };
    assert!(blocked, "the block survived the crash");
    assert_eq!(store.krl_version().unwrap(), v);
    store.revoke_host_key("SHA256:x", "k").unwrap();
    assert!(store.host_key_revoked("SHA256:x").unwrap());
    eprintln!("failed in {took:?} while down; recovered after the restart");
}
