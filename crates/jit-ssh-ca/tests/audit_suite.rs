//! What the CA relies on from an audit log, run against every
//! implementation: the embedded disk log and PostgreSQL (one cluster for
//! this binary, a fresh database per test). Each behaviour is a function
//! over a [`Backend`]; `suite!` makes one test per log. Behaviours only a
//! shared log has (two processes on one chain) are PostgreSQL tests below.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit_events;
mod pg;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use jit_ssh_audit::chain::ChainBreak;
use jit_ssh_audit::checkpoint::{self, NAMESPACE};
use jit_ssh_audit::record::{Actor, AuditRecord, Checkpoint, Event};
use jit_ssh_audit::{AuditLog, AuditQuery};
use jit_ssh_audit_disk::DiskAuditLog;
use jit_ssh_ca::config::storage::PostgresConfig;
use jit_ssh_ca::store::PgAuditLog;

use audit_events::{event, issued};

/// Replaces `from` by `to` in the stored record `seq`.
type Tamper = Box<dyn Fn(u64, &str, &str)>;

/// One log under test, and how to edit a stored record behind its back.
struct Backend {
    log: Arc<dyn AuditLog>,
    tamper: Tamper,
    _dir: Option<tempfile::TempDir>,
}

fn disk() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit");
    let log = Arc::new(DiskAuditLog::open(&path).unwrap());
    let file = path.join("chain.jsonl");
    Backend {
        log,
        // Same length, so the offsets file still frames every record.
        tamper: Box::new(move |seq, from, to| {
            assert_eq!(from.len(), to.len());
            let text = std::fs::read_to_string(&file).unwrap();
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            let line = &mut lines[usize::try_from(seq).unwrap() - 1];
            assert!(line.contains(from));
            *line = line.replacen(from, to, 1);
            std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        }),
        _dir: Some(dir),
    }
}

fn postgres(test: &str) -> Option<Backend> {
    let cfg = pg::database(test)?;
    let log = Arc::new(PgAuditLog::open(&cfg).unwrap());
    Some(Backend {
        log,
        tamper: Box::new(move |seq, from, to| {
            pg::cluster("tamper").unwrap().sql(
                &pg::db_name(&cfg),
                &format!(
                    "UPDATE audit_records SET record = replace(record, '{from}', '{to}') \
                     WHERE seq = {seq}"
                ),
            );
        }),
        _dir: None,
    })
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[test] fn $name() { super::$name(super::disk()) })*
        }
        mod postgres {
            $(#[test] fn $name() {
                if let Some(b) = super::postgres(stringify!($name)) { super::$name(b) }
            })*
        }
    };
}

suite!(
    appends_chain_and_read_back_identical,
    queries_match_a_full_scan,
    an_edited_record_is_reported_at_its_seq,
    a_record_stored_in_another_form_is_reported_at_its_seq,
    an_export_is_the_stored_records_and_verifies_with_the_ca_key,
    time_ranges_are_sequence_ranges,
    concurrent_appends_form_one_chain,
    serials_above_i64_max_are_found,
    a_batch_is_contiguous_among_concurrent_appends,
);

fn fill(log: &dyn AuditLog, n: u64) -> Vec<AuditRecord> {
    (1..=n)
        .map(|i| log.append(Actor::System, event(i)).unwrap())
        .collect()
}

fn appends_chain_and_read_back_identical(b: Backend) {
    let recs = fill(&*b.log, 12);
    assert_eq!(
        recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );
    for w in recs.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash);
        assert!(w[1].time >= w[0].time);
    }
    let head = b.log.head();
    assert_eq!((head.seq, head.hash), (12, recs[11].hash));
    let all = b.log.query(&AuditQuery::default()).unwrap();
    assert_eq!(all, recs, "read back exactly as appended");
    let report = b.log.verify().unwrap();
    assert_eq!(
        (report.records, report.head, report.first_break),
        (12, head, None)
    );
    assert!(b.log.ready().is_ok());
}

fn queries_match_a_full_scan(b: Backend) {
    let all = fill(&*b.log, 60);
    let seqs =
        |q: AuditQuery| -> Vec<u64> { b.log.query(&q).unwrap().iter().map(|r| r.seq).collect() };
    let scan = |q: &AuditQuery| -> Vec<u64> {
        let mut v: Vec<u64> = all.iter().filter(|r| q.matches(r)).map(|r| r.seq).collect();
        if q.limit != 0 {
            v.truncate(q.limit);
        }
        v
    };
    let t = all[29].time;
    let queries = [
        AuditQuery {
            user: Some("alice".into()),
            ..Default::default()
        },
        AuditQuery {
            user: Some("alice".into()),
            limit: 4,
            ..Default::default()
        },
        AuditQuery {
            user: Some("alice".into()),
            after_seq: Some(20),
            limit: 4,
            ..Default::default()
        },
        AuditQuery {
            host: Some("h1.prod".into()),
            ..Default::default()
        },
        AuditQuery {
            account: Some("root".into()),
            ..Default::default()
        },
        AuditQuery {
            serial: Some(100 + 17),
            ..Default::default()
        },
        AuditQuery {
            serial: Some(100 + 20),
            ..Default::default()
        },
        AuditQuery {
            grant: Some("g2".into()),
            ..Default::default()
        },
        AuditQuery {
            kinds: vec!["revoked".into(), "request_expired".into()],
            ..Default::default()
        },
        AuditQuery {
            user: Some("bob".into()),
            host: Some("h2.prod".into()),
            ..Default::default()
        },
        AuditQuery {
            since: Some(t),
            user: Some("carol".into()),
            ..Default::default()
        },
        AuditQuery {
            until: Some(t),
            kinds: vec!["certificate_issued".into()],
            ..Default::default()
        },
        AuditQuery {
            user: Some("nobody".into()),
            ..Default::default()
        },
        AuditQuery {
            serial: Some(999_999),
            ..Default::default()
        },
    ];
    for q in queries {
        let want = scan(&q);
        assert_eq!(seqs(q.clone()), want, "{q:?}");
    }
    // Not vacuous: the filters select something.
    assert!(!scan(&AuditQuery {
        serial: Some(120),
        ..Default::default()
    })
    .is_empty());
    assert!(b.log.serial_issued(100 + 17).unwrap());
    assert!(
        !b.log.serial_issued(100 + 16).unwrap(),
        "revoked, never issued"
    );
}

fn an_edited_record_is_reported_at_its_seq(b: Backend) {
    fill(&*b.log, 10);
    assert!(b.log.verify().unwrap().first_break.is_none());
    // Record 7 is a certificate for h3.prod: say it was for h9.prod.
    (b.tamper)(7, "h3.prod", "h9.prod");
    let report = b.log.verify().unwrap();
    assert_eq!(report.first_break, Some(ChainBreak::Altered { seq: 7 }));
    assert_eq!(report.records, 6);
}

/// Its hash still matches what it parses to (a hash in capitals reads
/// as the same hash), so only the bytes tell; an export carries the
/// bytes, and `migrate --from` copies them (session 12's review).
fn a_record_stored_in_another_form_is_reported_at_its_seq(b: Backend) {
    let records = fill(&*b.log, 10);
    let prev = records[5].hash.to_string();
    (b.tamper)(7, &prev, &prev.to_uppercase());
    let report = b.log.verify().unwrap();
    assert_eq!(report.first_break.map(|b| b.position()), Some(7));
    assert_eq!(report.records, 6);
}

fn an_export_is_the_stored_records_and_verifies_with_the_ca_key(b: Backend) {
    fill(&*b.log, 20);
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let head = b.log.head();
    let sig = key
        .sign(
            NAMESPACE,
            ssh_key::HashAlg::Sha512,
            &checkpoint::message(head.seq, &head.hash),
        )
        .unwrap();
    b.log
        .append(
            Actor::System,
            Event::Checkpoint(Checkpoint {
                seq: head.seq,
                hash: head.hash,
                ca_fingerprint: key
                    .public_key()
                    .fingerprint(ssh_key::HashAlg::Sha256)
                    .to_string(),
                signature: sig.to_pem(ssh_key::LineEnding::LF).unwrap(),
                trigger: "test".into(),
            }),
        )
        .unwrap();
    let mut out = Vec::new();
    let n = b
        .log
        .export(1, 21, &mut |rec| {
            out.extend_from_slice(rec);
            out.push(b'\n');
            true
        })
        .unwrap();
    assert_eq!(n, 21);
    let report = checkpoint::verify_export(&out[..], &[key.public_key().clone()]).unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(
        (report.records, report.checkpoints, report.signed_through),
        (21, 1, 20)
    );
    // A window, and a sink that stops early.
    let mut seen = 0;
    assert_eq!(
        b.log
            .export(5, 9, &mut |_| {
                seen += 1;
                seen < 3
            })
            .unwrap(),
        2
    );
    assert_eq!(b.log.export(5, 9, &mut |_| true).unwrap(), 5);
}

fn time_ranges_are_sequence_ranges(b: Backend) {
    let recs = fill(&*b.log, 5);
    assert_eq!(
        b.log
            .first_seq_at(recs[0].time - Duration::from_secs(1))
            .unwrap(),
        1
    );
    let third = recs[2].time;
    assert!(b.log.first_seq_at(third).unwrap() <= 3);
    assert_eq!(
        b.log
            .first_seq_at(recs[4].time + Duration::from_secs(1))
            .unwrap(),
        6,
        "past the end: one past the head"
    );
}

fn concurrent_appends_form_one_chain(b: Backend) {
    let seqs = hammer(std::slice::from_ref(&b.log), 8, 25);
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    let report = b.log.verify().unwrap();
    assert_eq!((report.records, report.first_break), (200, None));
}

/// Batches of three (a touch, a decision, a certificate) from several
/// writers at once, with single appends between: each batch's records
/// come back in its order, with consecutive seqs, however the writers'
/// batches and singles were grouped into commits.
fn a_batch_is_contiguous_among_concurrent_appends(b: Backend) {
    let threads: Vec<_> = (0..6u64)
        .map(|w| {
            let log = b.log.clone();
            std::thread::spawn(move || {
                for i in 0..20 {
                    let base = w * 1000 + i * 10;
                    let batch: Vec<_> = (0..3).map(|k| (Actor::System, event(base + k))).collect();
                    let recs = log.append_all(batch).unwrap();
                    let seqs: Vec<u64> = recs.iter().map(|r| r.seq).collect();
                    assert_eq!(
                        seqs,
                        [seqs[0], seqs[0] + 1, seqs[0] + 2],
                        "a batch was split"
                    );
                    for (k, r) in (0..3).zip(&recs) {
                        assert_eq!(r.event, event(base + k), "out of order");
                    }
                    log.append(Actor::System, event(base + 5)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let report = b.log.verify().unwrap();
    assert_eq!((report.records, report.first_break), (6 * 20 * 4, None));
}

fn serials_above_i64_max_are_found(b: Backend) {
    let big = u64::MAX - 7;
    b.log
        .append(Actor::System, issued("alice", "h", 5))
        .unwrap();
    b.log
        .append(Actor::System, issued("alice", "h", big))
        .unwrap();
    let found = b
        .log
        .query(&AuditQuery {
            serial: Some(big),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(found.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2]);
    assert!(b.log.serial_issued(big).unwrap());
    assert!(!b.log.serial_issued(big - 1).unwrap());
}

/// `writers` threads per log, each appending `each` records at once
/// through whichever log it was given; returns every seq handed out,
/// sorted.
fn hammer(logs: &[Arc<dyn AuditLog>], writers: u64, each: u64) -> Vec<u64> {
    let start = Arc::new(Barrier::new(logs.len() * writers as usize));
    let threads: Vec<_> = logs
        .iter()
        .flat_map(|log| (0..writers).map(move |w| (log.clone(), w)))
        .map(|(log, w)| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                (0..each)
                    .map(|i| log.append(Actor::System, event(w * 1000 + i)).unwrap().seq)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    seqs
}

/// Two logs on one database (two pools: two replicas).
fn two_replicas(test: &str) -> Option<(PostgresConfig, Arc<PgAuditLog>, Arc<PgAuditLog>)> {
    let cfg = pg::database(test)?;
    let a = Arc::new(PgAuditLog::open(&cfg).unwrap());
    let b = Arc::new(PgAuditLog::open(&cfg).unwrap());
    Some((cfg, a, b))
}

#[test]
fn two_replicas_append_to_one_chain_with_no_gap_and_no_fork() {
    let Some((_cfg, a, b)) = two_replicas("two_replicas_append") else {
        return;
    };
    let groups = Arc::new(AtomicU64::new(0));
    for log in [&a, &b] {
        let groups = groups.clone();
        log.observe_group_sizes(move |_| {
            groups.fetch_add(1, Ordering::SeqCst);
        });
    }
    let logs: Vec<Arc<dyn AuditLog>> = vec![a.clone(), b.clone()];
    let seqs = hammer(&logs, 16, 25);
    // Every seq handed out once (no fork), 1..=800 (no gap).
    assert_eq!(seqs, (1..=800).collect::<Vec<_>>());
    for log in [&a, &b] {
        let report = log.verify().unwrap();
        assert_eq!((report.records, report.first_break), (800, None));
        assert_eq!(log.head(), report.head, "both see the same head");
    }
    // Each record's prev is the record before it, whoever wrote it.
    let all = a.query(&AuditQuery::default()).unwrap();
    assert!(all
        .windows(2)
        .all(|w| w[1].prev_hash == w[0].hash && w[1].time >= w[0].time));
    let g = groups.load(Ordering::SeqCst);
    assert!(g < 800, "{g} transactions for 800 appends: no group commit");
}

#[test]
fn replicas_sign_checkpoints_one_at_a_time() {
    let Some((_cfg, a, b)) = two_replicas("checkpoint_lock") else {
        return;
    };
    let inside = Arc::new(AtomicBool::new(false));
    let overlaps = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = [a, b]
        .into_iter()
        .map(|log| {
            let (inside, overlaps, start) = (inside.clone(), overlaps.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..3 {
                    log.with_checkpoint_lock(&mut || {
                        if inside.swap(true, Ordering::SeqCst) {
                            overlaps.fetch_add(1, Ordering::SeqCst);
                        }
                        // An append while holding it (what a checkpoint does).
                        log.append(Actor::System, event(1)).unwrap();
                        std::thread::sleep(Duration::from_millis(100));
                        inside.store(false, Ordering::SeqCst);
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
}

#[test]
fn a_database_without_the_audit_tables_is_not_ready() {
    let Some(cfg) = pg::database("not_ready") else {
        return;
    };
    let log = PgAuditLog::open(&cfg).unwrap();
    log.append(Actor::System, event(1)).unwrap();
    assert!(log.ready().is_ok());
    pg::cluster("not_ready")
        .unwrap()
        .sql(&pg::db_name(&cfg), "DROP TABLE audit_head");
    assert!(log.ready().is_err());
    assert!(log.append(Actor::System, event(2)).is_err(), "fails closed");
}

/// The same events through both logs: every query answers the same
/// records (same seq, same event), whichever log holds them.
#[test]
fn postgresql_answers_queries_as_the_disk_log_does() {
    let Some(pg) = postgres("same_answers") else {
        return;
    };
    let disk = disk();
    for i in 1..=80 {
        pg.log.append(Actor::System, event(i)).unwrap();
        disk.log.append(Actor::System, event(i)).unwrap();
    }
    let same = |q: AuditQuery| {
        let key = |r: &AuditRecord| (r.seq, r.event.clone());
        let (p, d) = (pg.log.query(&q).unwrap(), disk.log.query(&q).unwrap());
        assert!(!d.is_empty(), "{q:?} selects nothing");
        assert_eq!(
            p.iter().map(key).collect::<Vec<_>>(),
            d.iter().map(key).collect::<Vec<_>>(),
            "{q:?}"
        );
    };
    same(AuditQuery {
        user: Some("bob".into()),
        ..Default::default()
    });
    same(AuditQuery {
        user: Some("bob".into()),
        after_seq: Some(30),
        limit: 5,
        ..Default::default()
    });
    same(AuditQuery {
        host: Some("h3.prod".into()),
        ..Default::default()
    });
    same(AuditQuery {
        serial: Some(150),
        ..Default::default()
    });
    same(AuditQuery {
        serial: Some(140),
        ..Default::default()
    });
    same(AuditQuery {
        grant: Some("g1".into()),
        limit: 7,
        ..Default::default()
    });
}

/// Readers have connections of their own: exports to slow clients (more
/// of them than the pool holds) never keep an append, and so an
/// issuance, waiting for a connection.
#[test]
fn slow_readers_never_keep_an_append_waiting() {
    let Some(cfg) = pg::database("slow_readers") else {
        return;
    };
    let cfg = PostgresConfig {
        pool_size: 2,
        connect_timeout: Duration::from_secs(1),
        ..cfg
    };
    let log = Arc::new(PgAuditLog::open(&cfg).unwrap());
    fill(&*log, 3);
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let log = log.clone();
            std::thread::spawn(move || {
                log.export(1, 3, &mut |_| {
                    std::thread::sleep(Duration::from_millis(700));
                    true
                })
                .unwrap()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let rec = log.append(Actor::System, event(9)).unwrap();
    assert_eq!(rec.seq, 4);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    for r in readers {
        assert_eq!(r.join().unwrap(), 3);
    }
}
