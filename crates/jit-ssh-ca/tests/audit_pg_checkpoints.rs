//! Checkpoints on one replica at once (the timer's, an operator's, the
//! one at shutdown): each holds the cross-replica checkpoint lock on one
//! of the log's two writing connections and appends its record through
//! the other, so a second checkpoint must not take that other one while
//! it waits for the lock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit_events;
mod pg;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use jit_ssh_audit::record::Actor;
use jit_ssh_audit::AuditLog;
use jit_ssh_ca::store::PgAuditLog;

use audit_events::issued;

#[test]
fn two_checkpoints_at_once_on_one_replica_both_append_and_issuance_goes_on() {
    let Some(cfg) = pg::database("checkpoints_at_once") else {
        return;
    };
    let log = Arc::new(PgAuditLog::open(&cfg).unwrap());
    let (locked_tx, locked) = mpsc::channel();
    let first = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut appended = None;
            log.with_checkpoint_lock(&mut || {
                locked_tx.send(()).unwrap();
                // The second checkpoint asks for the lock meanwhile.
                std::thread::sleep(Duration::from_millis(500));
                appended = Some(log.append(Actor::System, issued("first", "h", 1)));
            })
            .unwrap();
            appended.unwrap()
        })
    };
    locked.recv().unwrap();
    let second = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut appended = None;
            log.with_checkpoint_lock(&mut || {
                appended = Some(log.append(Actor::System, issued("second", "h", 2)));
            })
            .unwrap();
            appended.unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    // An issuance's record while both checkpoints are under way.
    log.append(Actor::System, issued("engineer", "h", 3))
        .expect("an append while two checkpoints run");
    let first = first.join().unwrap();
    let second = second.join().unwrap();
    assert!(first.is_ok(), "the first checkpoint's append: {first:?}");
    assert!(second.is_ok(), "the second checkpoint's append: {second:?}");
    assert_eq!(log.head().seq, 3);
    assert!(log.verify().unwrap().first_break.is_none());
}
