//! Durable audit appends per second: 1 writer and 64 concurrent writers
//! with group commit, against flushing once per record (no group commit),
//! measured in the same run. Prints a table.
//!
//! `cargo bench -p jit-ssh-audit --bench audit_append`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use jit_ssh_audit::{Actor, AuditLog, CertificateIssued, Event, IssuedVia};
use jit_ssh_audit_disk::DiskAuditLog;

fn event(i: u64) -> Event {
    Event::CertificateIssued(CertificateIssued {
        serial: i,
        key_id: format!(
            "jit-ssh:user{}:00112233445566778899aabbccddeeff:{i}",
            i % 500
        ),
        user: format!("user{}", i % 500),
        host: format!("db-{}.prod", i % 50),
        account: "postgres".into(),
        principals: vec![format!("postgres@db-{}.prod", i % 50)],
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

fn concurrent(writers: u64, per_writer: u64) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(DiskAuditLog::open(dir.path()).unwrap());
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..per_writer {
                    log.append(Actor::System, event(w * per_writer + i + 1))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let took = start.elapsed();
    let report = log.verify().unwrap();
    assert_eq!(report.records, writers * per_writer);
    assert!(report.first_break.is_none());
    took
}

/// Baseline: the same records through sled, one insert + fsync each.
fn flush_each(n: u64) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let start = Instant::now();
    for i in 1..=n {
        db.insert(i.to_be_bytes(), serde_json::to_vec(&event(i)).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    start.elapsed()
}

fn main() {
    let row = |name: &str, n: u64, d: Duration| {
        println!(
            "| {name:<48} | {n:>7} | {:>9.0}/s | {:>8.1} µs |",
            n as f64 / d.as_secs_f64(),
            d.as_secs_f64() * 1e6 / n as f64
        );
    };
    println!(
        "| durable appends                                  | records |       rate |  per rec. |"
    );
    println!(
        "|--------------------------------------------------|---------|------------|-----------|"
    );
    row(
        "baseline: sled insert + flush per record",
        3_000,
        flush_each(3_000),
    );
    row("jit-ssh-audit, 1 writer", 3_000, concurrent(1, 3_000));
    row(
        "jit-ssh-audit, 64 writers (group commit)",
        64 * 1_000,
        concurrent(64, 1_000),
    );
    println!("\n(each jit-ssh-audit record: hash-chained, 4 index entries, durable before append returns; target ≥ 20,000/s at 64 writers)");
}
