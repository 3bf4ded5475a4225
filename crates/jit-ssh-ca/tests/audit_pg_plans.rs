//! What the PostgreSQL audit log's queries cost as the chain grows
//! faster than the server's statistics follow it (a new deployment, a
//! busy hour): the serial check every issuance makes must read that
//! serial's own records, never a range of the chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit_events;
mod pg;

use std::time::Duration;

use jit_ssh_audit::record::Actor;
use jit_ssh_audit::AuditLog;
use jit_ssh_ca::config::storage::PostgresConfig;
use jit_ssh_ca::store::PgAuditLog;

use audit_events::issued;

/// Rows read from `audit_records` so far, by index or by scan, once the
/// server's statistics have them: a backend reports its counts within a
/// second of going idle.
fn rows_read(cfg: &PostgresConfig) -> i64 {
    std::thread::sleep(Duration::from_millis(1500));
    let mut c = postgres::Client::connect(&cfg.url, postgres::NoTls).unwrap();
    c.query_one(
        "SELECT (COALESCE(idx_tup_fetch, 0) + COALESCE(seq_tup_read, 0))::bigint \
         FROM pg_stat_user_tables WHERE relname = 'audit_records'",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn a_serial_check_reads_only_that_serials_records_however_the_chain_grew() {
    let Some(cfg) = pg::database("serial_check_plan") else {
        return;
    };
    let cluster = pg::cluster("serial_check_plan").unwrap();
    let db = pg::db_name(&cfg);
    let log = PgAuditLog::open(&cfg).unwrap();
    // Issuance as a replica does it from its first minute: a check, then
    // the record, on connections that keep their prepared statements
    // (and the plans made for them while the chain was short).
    let issue = |from: u64, to: u64| {
        for i in from..to {
            assert!(!log.serial_issued(i).unwrap());
            log.append(Actor::System, issued("alice", "h1.prod", i))
                .unwrap();
        }
    };
    issue(0, 500);
    // Autovacuum's first analysis, then none while the chain grows: what
    // the planner knows between two of them (a minute apart at least).
    cluster.sql(
        &db,
        "ANALYZE audit_records; ANALYZE audit_serials;
         ALTER TABLE audit_records SET (autovacuum_enabled = false);
         ALTER TABLE audit_serials SET (autovacuum_enabled = false);",
    );
    issue(500, 600);
    let busy_hour: Vec<_> = (600..20_000)
        .map(|i| (Actor::System, issued("bob", "h2.prod", i)))
        .collect();
    log.append_many(busy_hour).unwrap();
    let before = rows_read(&cfg);

    let checks = 200;
    for i in 0..checks {
        assert!(!log.serial_issued(1_000_000 + i).unwrap());
    }
    assert!(log.serial_issued(550).unwrap());
    assert!(log.serial_issued(19_999).unwrap());
    let read = rows_read(&cfg) - before;
    assert!(
        read <= 10,
        "{checks} checks of serials nobody was issued, and two that were, read {read} rows \
         of the 20,000-record chain"
    );
}
