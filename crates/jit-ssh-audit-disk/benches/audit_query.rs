//! Reading a large audit log: the first page of a query by user, serial,
//! host and account, a page deep behind a cursor, and a full export
//! (stored JSON lines, as `GET /v1/audit/export` streams them), plus
//! offline verification of that export. Prints a table.
//!
//! `cargo bench -p jit-ssh-audit --bench audit_query`
//! (`JIT_SSH_BENCH_RECORDS=N` to change the log size; default 10,000,000.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::time::{Duration, Instant};

use jit_ssh_audit::{Actor, AuditLog, AuditQuery, CertificateIssued, Event, IssuedVia};
use jit_ssh_audit_disk::DiskAuditLog;

const USERS: u64 = 500;
const HOSTS: u64 = 5_000;
const PAGE: usize = 50;

fn event(i: u64) -> Event {
    let user = format!("user{}", i % USERS);
    let host = format!("db-{}.prod", i % HOSTS);
    Event::CertificateIssued(CertificateIssued {
        serial: i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        key_id: format!("jit-ssh:{user}:{i:032x}:{i}"),
        user,
        host: host.clone(),
        account: if i.is_multiple_of(7) {
            "root"
        } else {
            "postgres"
        }
        .into(),
        principals: vec![format!("postgres@{host}")],
        valid_after: 1_800_000_000 + i,
        valid_before: 1_800_000_600 + i,
        public_key_fingerprint: "SHA256:7OS6Dx+OHABorl8BixVaEKG77cEZBBmPYu9cRAgjbeY".into(),
        ca_fingerprint: "SHA256:8gqd8KkC/AvRXQT0Q5lWEjooI+ncnxIErOaFz571DQ0".into(),
        grant: format!("{i:032x}"),
        reason: "incident 4242: primary failover".into(),
        critical_options: vec![],
        extensions: vec!["permit-pty".into()],
        via: IssuedVia::Server,
        session: None,
    })
}

fn fill(log: &DiskAuditLog, n: u64) -> Duration {
    let start = Instant::now();
    let mut i = 1;
    while i <= n {
        let end = (i + 20_000).min(n + 1);
        log.append_many((i..end).map(|j| (Actor::System, event(j))).collect())
            .unwrap();
        i = end;
    }
    start.elapsed()
}

/// Median and worst of `runs` first-page queries, each for another value.
fn first_page(
    log: &DiskAuditLog,
    runs: u64,
    q: impl Fn(u64) -> AuditQuery,
) -> (Duration, Duration, usize) {
    let mut times = Vec::new();
    let mut rows = 0;
    for r in 0..runs {
        let query = AuditQuery {
            limit: PAGE,
            ..q(r)
        };
        let start = Instant::now();
        let page = log.query(&query).unwrap();
        times.push(start.elapsed());
        rows = rows.max(page.len());
        assert!(!page.is_empty(), "{query:?} found nothing");
    }
    times.sort();
    (times[times.len() / 2], times[times.len() - 1], rows)
}

fn main() {
    let n: u64 = std::env::var("JIT_SSH_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let dir = tempfile::tempdir().unwrap();
    let took = {
        let log = DiskAuditLog::open(dir.path()).unwrap();
        fill(&log, n)
    };
    println!(
        "filled {n} records in {:.1} s ({:.0}/s, durable, hash-chained, indexed); reopening\n",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    // Reopen so the queries do not run on the writer's warm caches.
    let log = DiskAuditLog::open(dir.path()).unwrap();

    println!("| first page of {PAGE} (100 different values each) | p50       | max       | rows |");
    println!("|------------------------------------------|-----------|-----------|------|");
    let row = |name: &str, (p50, max, rows): (Duration, Duration, usize)| {
        println!(
            "| {name:<40} | {:>6.2} ms | {:>6.2} ms | {rows:>4} |",
            p50.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    };
    row(
        "by user",
        first_page(&log, 100, |r| AuditQuery {
            user: Some(format!("user{}", r * 5 % USERS)),
            ..Default::default()
        }),
    );
    row(
        "by serial",
        first_page(&log, 100, |r| {
            let i = 1 + r * (n / 100).max(1);
            AuditQuery {
                serial: Some(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
                ..Default::default()
            }
        }),
    );
    row(
        "by host",
        first_page(&log, 100, |r| AuditQuery {
            host: Some(format!("db-{}.prod", r * 37 % HOSTS)),
            ..Default::default()
        }),
    );
    row(
        "by user + account root",
        first_page(&log, 100, |r| AuditQuery {
            user: Some(format!("user{}", r * 5 % USERS)),
            account: Some("root".into()),
            ..Default::default()
        }),
    );
    row(
        "by user, cursor half-way through the log",
        first_page(&log, 100, |r| AuditQuery {
            user: Some(format!("user{}", r * 5 % USERS)),
            after_seq: Some(n / 2),
            ..Default::default()
        }),
    );

    let export_path = dir.path().join("export.jsonl");
    let start = Instant::now();
    let written = {
        let mut out = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&export_path).unwrap(),
        );
        let n = log
            .export(1, log.head().seq, &mut |rec: &[u8]| {
                out.write_all(rec).is_ok() && out.write_all(b"\n").is_ok()
            })
            .unwrap();
        out.flush().unwrap();
        n
    };
    let export = start.elapsed();
    assert_eq!(written, n);
    let bytes = std::fs::metadata(&export_path).unwrap().len();

    let start = Instant::now();
    let file =
        std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&export_path).unwrap());
    let report = jit_ssh_audit::checkpoint::verify_export(file, &[]).unwrap();
    let verify = start.elapsed();
    assert_eq!(report.records, n);
    // No checkpoints here, so the only problem is that nothing is signed.
    assert!(report
        .problem
        .unwrap()
        .what
        .contains("no signed checkpoint"));

    println!();
    println!("| stream                                   | records    | rate         | MB/s  |");
    println!("|------------------------------------------|------------|--------------|-------|");
    for (name, d) in [
        ("export to a file (JSON lines)", export),
        ("verify the export offline (every hash)", verify),
    ] {
        println!(
            "| {name:<40} | {n:>10} | {:>10.0}/s | {:>5.0} |",
            n as f64 / d.as_secs_f64(),
            bytes as f64 / 1e6 / d.as_secs_f64()
        );
    }
    println!("\n(targets: first page ≤ 10 ms by user or serial; export ≥ 200,000 records/s)");
}
