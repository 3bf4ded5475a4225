//! The audit log on PostgreSQL against the disk log, in one run:
//!
//! 1. Durable appends/s and per-append p50/p99 with 32 concurrent writers:
//!    the disk log; PostgreSQL with one instance; PostgreSQL with two
//!    instances (two pools: two replicas) of 16 writers each on one
//!    database; and one writer alone on each.
//! 2. The first page by user, serial and host once the table holds
//!    JIT_SSH_BENCH_RECORDS records (default 1,000,000; 500 users, 5,000
//!    hosts, as the disk log's audit_query bench), loaded with
//!    `generate_series` (valid records, not a valid chain: the queries
//!    do not verify). 0 skips this part.
//!
//! Its own PostgreSQL 15 cluster (unix socket, `fsync = on`,
//! `synchronous_commit = on`: the durability a CA runs with).
//!
//! `cargo bench -p jit-ssh-ca --bench audit_pg`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/pg/mod.rs"]
mod pg;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use jit_ssh_audit::{Actor, AuditLog, AuditQuery, CertificateIssued, Event, IssuedVia};
use jit_ssh_audit_disk::DiskAuditLog;
use jit_ssh_ca::store::PgAuditLog;

const WRITERS: usize = 32;
const PER_WRITER: usize = 100;
const USERS: u64 = 500;
const HOSTS: u64 = 5000;

fn event(user: &str, host: &str, serial: u64) -> Event {
    Event::CertificateIssued(CertificateIssued {
        serial,
        key_id: format!("jit-ssh:{user}:00112233445566778899aabbccddeeff:{serial}"),
        user: user.into(),
        host: host.into(),
        account: "postgres".into(),
        principals: vec![format!("postgres@{host}")],
        valid_after: 1_800_000_000,
        valid_before: 1_800_000_600,
        public_key_fingerprint: "SHA256:7OS6Dx+OHABorl8BixVaEKG77cEZBBmPYu9cRAgjbeY".into(),
        ca_fingerprint: "SHA256:8gqd8KkC/AvRXQT0Q5lWEjooI+ncnxIErOaFz571DQ0".into(),
        grant: "00112233445566778899aabbccddeeff".into(),
        reason: "incident 4242: primary failover".into(),
        critical_options: vec![],
        extensions: vec!["permit-pty".into()],
        via: IssuedVia::Server,
        session: None,
    })
}

fn numbered(i: u64) -> Event {
    event(
        &format!("user{}", i % USERS),
        &format!("db-{}.prod", i % HOSTS),
        i + 1,
    )
}

struct Run {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// `writers` threads spread over `logs`, each appending `per_writer`.
fn appends(logs: &[Arc<dyn AuditLog>], writers: usize, per_writer: usize) -> Run {
    let start = Arc::new(Barrier::new(writers + 1));
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let log = logs[w % logs.len()].clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                (0..per_writer)
                    .map(|i| {
                        let t = Instant::now();
                        log.append(Actor::System, numbered((w * per_writer + i) as u64))
                            .unwrap();
                        t.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let mut lat: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let took = began.elapsed();
    lat.sort_unstable();
    let report = logs[0].verify().unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.records as usize, writers * per_writer);
    Run {
        rate: lat.len() as f64 / took.as_secs_f64(),
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn row(what: &str, r: &Run) {
    println!("| {what} | {:.0} | {} | {} |", r.rate, ms(r.p50), ms(r.p99));
}

fn pg_logs(cluster: &pg::Cluster, n: usize) -> Vec<Arc<dyn AuditLog>> {
    let cfg = cluster.database();
    (0..n)
        .map(|_| Arc::new(PgAuditLog::open(&cfg).unwrap()) as Arc<dyn AuditLog>)
        .collect()
}

fn disk_log() -> (tempfile::TempDir, Vec<Arc<dyn AuditLog>>) {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let log: Arc<dyn AuditLog> = Arc::new(DiskAuditLog::open(dir.path()).unwrap());
    (dir, vec![log])
}

/// Fills database `name` with `n` certificate records in SQL, indexes
/// built after the load (as a restore does).
fn load(cluster: &pg::Cluster, name: &str, n: u64) -> Duration {
    let (_, json) = jit_ssh_audit::chain::seal_json(
        jit_ssh_audit::ChainHead {
            seq: 999_999_998,
            hash: Default::default(),
        },
        time::OffsetDateTime::now_utc(),
        Actor::System,
        event("U_PH", "H_PH", 424_242_424_242),
    )
    .unwrap();
    let json = String::from_utf8(json).unwrap().replace('\'', "''");
    let now_ns = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64;
    let started = Instant::now();
    cluster.sql(
        name,
        "DROP INDEX audit_records_time, audit_records_user, audit_records_host, \
         audit_records_grant; ALTER TABLE audit_serials DROP CONSTRAINT audit_serials_pkey",
    );
    let chunk = 1_000_000u64;
    let mut from = 1;
    while from <= n {
        let to = (from + chunk - 1).min(n);
        cluster.sql(
            name,
            &format!(
                "INSERT INTO audit_records (seq, time_ns, kind, user_name, host, account, grant_id, record)
                 SELECT g, {now_ns}, 'certificate_issued', 'user' || (g % {USERS}),
                        'db-' || (g % {HOSTS}) || '.prod', 'postgres',
                        '00112233445566778899aabbccddeeff',
                        replace(replace(replace(replace('{json}',
                            '\"seq\":999999999', '\"seq\":' || g),
                            'U_PH', 'user' || (g % {USERS})),
                            'H_PH', 'db-' || (g % {HOSTS}) || '.prod'),
                            '424242424242', g::text)
                 FROM generate_series({from}, {to}) g;
                 INSERT INTO audit_serials (serial, seq) SELECT g, g FROM generate_series({from}, {to}) g;"
            ),
        );
        eprintln!("loaded {to} records ({:?})", started.elapsed());
        from = to + 1;
    }
    cluster.sql(
        name,
        "CREATE INDEX audit_records_time ON audit_records (time_ns, seq);
         CREATE INDEX audit_records_user ON audit_records (user_name, seq) WHERE user_name IS NOT NULL;
         CREATE INDEX audit_records_host ON audit_records (host, seq) WHERE host IS NOT NULL;
         CREATE INDEX audit_records_grant ON audit_records (grant_id, seq) WHERE grant_id IS NOT NULL;
         ALTER TABLE audit_serials ADD PRIMARY KEY (serial, seq);
         ANALYZE audit_records; ANALYZE audit_serials;",
    );
    cluster.sql(name, &format!("UPDATE audit_head SET seq = {n}"));
    started.elapsed()
}

fn first_pages(log: &PgAuditLog, what: &str, q: impl Fn(u64) -> AuditQuery, expect: usize) {
    let mut lat = Vec::new();
    for i in 0..200u64 {
        let query = q(i * 7919);
        let t = Instant::now();
        let page = log.query(&query).unwrap();
        lat.push(t.elapsed());
        assert_eq!(page.len(), expect, "{query:?}");
    }
    lat.sort_unstable();
    println!(
        "| first page by {what} | {} | {} | {} |",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );
}

fn main() {
    let records: u64 = std::env::var("JIT_SSH_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    if !pg::available("audit_pg bench") {
        return;
    }
    let cluster = pg::Cluster::start_with(5433, |_| {
        "fsync = on\nsynchronous_commit = on\nshared_buffers = 256MB\n".into()
    });

    println!("\nDurable audit appends ({WRITERS} writers x {PER_WRITER} unless said):\n");
    println!("| log | appends/s | p50 | p99 |");
    println!("|---|---|---|---|");
    let (_d, disk) = disk_log();
    row("disk, 1 writer", &appends(&disk, 1, 300));
    let (_d, disk) = disk_log();
    row("disk, 32 writers", &appends(&disk, WRITERS, PER_WRITER));
    row(
        "PostgreSQL, 1 instance, 1 writer",
        &appends(&pg_logs(&cluster, 1), 1, 300),
    );
    row(
        "PostgreSQL, 1 instance, 32 writers",
        &appends(&pg_logs(&cluster, 1), WRITERS, PER_WRITER),
    );
    row(
        "PostgreSQL, 2 instances x 16 writers",
        &appends(&pg_logs(&cluster, 2), WRITERS, PER_WRITER),
    );

    if records == 0 {
        return;
    }
    let cfg = cluster.database();
    let name = pg::db_name(&cfg);
    let took = load(&cluster, &name, records);
    let log = PgAuditLog::open(&cfg).unwrap();
    println!("\nFirst pages (50 records) at {records} records (loaded in {took:.0?}):\n");
    println!("| query | p50 | p99 | max |");
    println!("|---|---|---|---|");
    first_pages(
        &log,
        "user",
        |i| AuditQuery {
            user: Some(format!("user{}", i % USERS)),
            limit: 50,
            ..Default::default()
        },
        50,
    );
    first_pages(
        &log,
        "serial",
        |i| AuditQuery {
            serial: Some(i % records + 1),
            limit: 50,
            ..Default::default()
        },
        1,
    );
    first_pages(
        &log,
        "host",
        |i| AuditQuery {
            host: Some(format!("db-{}.prod", i % HOSTS)),
            limit: 50,
            ..Default::default()
        },
        50.min((records / HOSTS) as usize),
    );
    first_pages(
        &log,
        "user, cursor half-way",
        |i| AuditQuery {
            user: Some(format!("user{}", i % USERS)),
            after_seq: Some(records / 2),
            limit: 50,
            ..Default::default()
        },
        50,
    );
    let mut c = postgres::Config::new()
        .host_path(cluster.dir())
        .port(cluster.port())
        .user("jit")
        .dbname(&name)
        .connect(postgres::NoTls)
        .unwrap();
    // The same first page by user as SQL alone, rows not decoded: what
    // the database takes, without this (debug or release) build's JSON.
    let mut lat = Vec::new();
    for i in 0..200u64 {
        let user = format!("user{}", (i * 7919) % USERS);
        let t = Instant::now();
        let rows = c
            .query(
                "SELECT seq, record FROM audit_records WHERE seq >= 1 AND user_name = $1 \
                 ORDER BY seq LIMIT 50",
                &[&user],
            )
            .unwrap();
        lat.push(t.elapsed());
        assert_eq!(rows.len(), 50);
    }
    lat.sort_unstable();
    println!(
        "| first page by user, SQL alone | {} | {} | {} |",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );
    let size = {
        let row = c
            .query_one(
                "SELECT pg_size_pretty(pg_total_relation_size('audit_records') \
                 + pg_total_relation_size('audit_serials'))",
                &[],
            )
            .unwrap();
        row.get::<_, String>(0)
    };
    println!("\nTables and indexes on disk: {size}");
    drop(log);
    drop(cluster);
}
