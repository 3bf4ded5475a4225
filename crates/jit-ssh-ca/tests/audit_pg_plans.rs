//! What the PostgreSQL audit log's queries read once the chain has
//! grown since the server last analysed it (a new deployment, a busy
//! hour): the serial check every issuance makes reads that serial's own
//! records, and an auditor's first page of a user, host or grant that
//! page, never a range of the chain. Plans made while the chain was
//! short and kept by pooled connections read the whole of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit_events;
mod pg;

use std::time::Duration;

use jit_ssh_audit::record::{Actor, Event};
use jit_ssh_audit::{AuditLog, AuditQuery};
use jit_ssh_ca::config::storage::PostgresConfig;
use jit_ssh_ca::store::PgAuditLog;

use audit_events::issued;

/// Entries read from `audit_records` so far, from its indexes or by a
/// scan of the table. A backend reports its counts when it goes idle at
/// least a second after its last report (else ten seconds later): after
/// a second's wait, one more check on `log`'s one reading connection
/// makes it report all it read.
fn rows_read(cfg: &PostgresConfig, log: &PgAuditLog) -> i64 {
    std::thread::sleep(Duration::from_millis(1100));
    assert!(!log.serial_issued(u64::MAX).unwrap());
    let mut c = postgres::Client::connect(&cfg.url, postgres::NoTls).unwrap();
    c.query_one(
        "SELECT (SELECT COALESCE(sum(idx_tup_read), 0) FROM pg_stat_user_indexes \
                 WHERE relname = 'audit_records')::bigint \
              + (SELECT COALESCE(seq_tup_read, 0) FROM pg_stat_user_tables \
                 WHERE relname = 'audit_records')",
        &[],
    )
    .unwrap()
    .get(0)
}

/// A log whose reads all go over one connection, as a long-lived
/// replica's pooled ones do.
fn open_log(cfg: &PostgresConfig) -> PgAuditLog {
    PgAuditLog::open(&PostgresConfig {
        pool_size: 1,
        ..cfg.clone()
    })
    .unwrap()
}

/// The server analyses the audit tables now and not again while the
/// test runs: what the planner knows between two of autovacuum's
/// analyses (a tenth more rows, a minute apart at least).
fn statistics_taken_now(cfg: &PostgresConfig) {
    pg::cluster("audit_pg_plans").unwrap().sql(
        &pg::db_name(cfg),
        "ANALYZE audit_records; ANALYZE audit_serials;
         ALTER TABLE audit_records SET (autovacuum_enabled = false);
         ALTER TABLE audit_serials SET (autovacuum_enabled = false);",
    );
}

/// Records `from` to 19,999 appended at once: the chain grows fortyfold
/// or more past what the statistics say.
fn busy_hour(log: &PgAuditLog, from: u64, event: impl Fn(u64) -> Event) {
    let records: Vec<_> = (from..20_000).map(|i| (Actor::System, event(i))).collect();
    log.append_many(records).unwrap();
}

#[test]
fn a_serial_check_reads_only_that_serials_records_however_the_chain_grew() {
    let Some(cfg) = pg::database("serial_check_plan") else {
        return;
    };
    let log = open_log(&cfg);
    // Issuance as a replica does it from its first minute: a check, then
    // the record, on pooled connections (which keep whatever plan they
    // prepared while the chain was short).
    let issue = |from: u64, to: u64| {
        for i in from..to {
            assert!(!log.serial_issued(i).unwrap());
            log.append(Actor::System, issued("alice", "h1.prod", i))
                .unwrap();
        }
    };
    issue(0, 20);
    // Autovacuum's first analysis comes early, while the chain is short.
    statistics_taken_now(&cfg);
    issue(20, 600);
    busy_hour(&log, 600, |i| issued("bob", "h2.prod", i));
    let before = rows_read(&cfg, &log);

    let checks = 200;
    for i in 0..checks {
        assert!(!log.serial_issued(1_000_000 + i).unwrap());
    }
    assert!(log.serial_issued(550).unwrap());
    assert!(log.serial_issued(19_999).unwrap());
    let read = rows_read(&cfg, &log) - before;
    assert!(
        read <= 10 * i64::try_from(checks).unwrap(),
        "{checks} checks of serials nobody was issued, and two that were, read {read} entries \
         of the 20,000-record chain"
    );
}

/// A certificate issued under `grant`.
fn issued_in(user: &str, host: &str, grant: &str, serial: u64) -> Event {
    let mut event = issued(user, host, serial);
    if let Event::CertificateIssued(c) = &mut event {
        c.grant = grant.into();
    }
    event
}

#[test]
fn a_first_page_by_user_host_or_grant_reads_that_page_however_the_chain_grew() {
    let Some(cfg) = pg::database("first_page_plan") else {
        return;
    };
    let log = open_log(&cfg);
    // Someone with a few records in a chain of mostly others': an
    // auditor's first page of them holds all they have.
    let page = |q: AuditQuery| {
        let found = log.query(&AuditQuery { limit: 50, ..q }).unwrap();
        assert_eq!(found.len(), 5);
    };
    let pages = || {
        page(AuditQuery {
            user: Some("carol".into()),
            ..Default::default()
        });
        page(AuditQuery {
            host: Some("h3.prod".into()),
            ..Default::default()
        });
        page(AuditQuery {
            grant: Some("g3".into()),
            ..Default::default()
        });
    };
    for i in 0..500 {
        let (user, host) = if i % 100 == 3 {
            ("carol", "h3.prod")
        } else {
            ("alice", "h1.prod")
        };
        let grant = if user == "carol" { "g3" } else { "g1" };
        log.append(Actor::System, issued_in(user, host, grant, i))
            .unwrap();
        if i >= 450 {
            pages();
        }
    }
    statistics_taken_now(&cfg);
    for _ in 0..10 {
        pages();
    }
    busy_hour(&log, 500, |i| issued_in("bob", "h2.prod", "g2", i));
    let before = rows_read(&cfg, &log);
    let rounds = 20;
    for _ in 0..rounds {
        pages();
    }
    let read = rows_read(&cfg, &log) - before;
    assert!(
        read <= rounds * 3 * 20,
        "{rounds} rounds of three first pages (each the 5 records there are) read {read} entries \
         of the 20,000-record chain"
    );
}

#[test]
fn an_export_reads_each_record_once_however_the_chain_grew() {
    let Some(cfg) = pg::database("export_plan") else {
        return;
    };
    let log = open_log(&cfg);
    let export_all = || {
        let to = log.head().seq;
        let mut n = 0;
        log.export(1, to, &mut |_| {
            n += 1;
            true
        })
        .unwrap();
        assert_eq!(n, to);
    };
    // Exports (a backup, an auditor's download) from the first minute.
    for i in 0..20 {
        log.append(Actor::System, issued("alice", "h1.prod", i))
            .unwrap();
        export_all();
    }
    statistics_taken_now(&cfg);
    for _ in 0..10 {
        export_all();
    }
    busy_hour(&log, 20, |i| issued("bob", "h2.prod", i));
    let before = rows_read(&cfg, &log);
    export_all();
    let read = rows_read(&cfg, &log) - before;
    assert!(
        read <= 21_000,
        "an export of the 20,000-record chain, in pages of 5,000, read {read} entries"
    );
}
