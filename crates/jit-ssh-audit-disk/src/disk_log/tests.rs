//! The on-disk log: appends, reopen, queries against full scans, export,
//! crash recovery, and verification of tampered chain files.

use super::*;
use jit_ssh_audit::chain::ChainBreak;
use jit_ssh_audit::record::{CertificateIssued, IssuedVia};

fn issued(user: &str, host: &str, serial: u64) -> Event {
    Event::CertificateIssued(CertificateIssued {
        serial,
        key_id: format!("jit-ssh:{user}:g{serial}:{serial}"),
        user: user.into(),
        host: host.into(),
        account: "oncall".into(),
        principals: vec![format!("oncall@{host}")],
        valid_after: 1,
        valid_before: 2,
        public_key_fingerprint: "SHA256:x".into(),
        ca_fingerprint: "SHA256:y".into(),
        grant: format!("g{serial}"),
        reason: "test".into(),
        critical_options: vec![],
        extensions: vec!["permit-pty".into()],
        via: IssuedVia::OfflineSign,
        session: None,
    })
}

fn log_with(n: u64) -> (tempfile::TempDir, DiskAuditLog) {
    let dir = tempfile::tempdir().unwrap();
    let log = DiskAuditLog::open(dir.path()).unwrap();
    append_to(&log, 1..=n);
    (dir, log)
}

/// Appends records `seqs` (the log holds the ones before): even ones
/// alice's, odd ones bob's, serial 100 + seq.
fn append_to(log: &DiskAuditLog, seqs: std::ops::RangeInclusive<u64>) {
    for i in seqs {
        let user = if i % 2 == 0 { "alice" } else { "bob" };
        log.append(
            Actor::Operator {
                login: "root".into(),
            },
            issued(user, &format!("h{}", i % 3), 100 + i),
        )
        .unwrap();
    }
}

fn wait_for_the_indexer(log: &DiskAuditLog, seq: u64) {
    let t = std::time::Instant::now();
    while log.indexer.unindexed.lock().unwrap().indexed() < seq {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the indexer is stuck"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = DiskAuditLog::open(dir.path()).unwrap();
    assert!(matches!(
        DiskAuditLog::open(dir.path()),
        Err(StoreError::Locked(_))
    ));
    drop(log);
    DiskAuditLog::open(dir.path()).unwrap();
}

#[test]
fn appends_chain_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = DiskAuditLog::open(dir.path()).unwrap();
        let a = log.append(Actor::System, issued("alice", "db", 7)).unwrap();
        let b = log.append(Actor::System, issued("alice", "db", 8)).unwrap();
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(b.prev_hash, a.hash);
    }
    let log = DiskAuditLog::open(dir.path()).unwrap();
    assert_eq!(AuditLog::head(&log).seq, 2);
    let c = log.append(Actor::System, issued("bob", "db", 9)).unwrap();
    assert_eq!(c.seq, 3);
    let report = log.verify().unwrap();
    assert_eq!((report.records, report.first_break), (3, None));
}

#[test]
fn queries_use_indexes_and_combine_filters() {
    let (_d, log) = log_with(30);
    let q = |q: AuditQuery| {
        log.query(&q)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        q(AuditQuery {
            serial: Some(107),
            ..Default::default()
        }),
        vec![7]
    );
    assert_eq!(
        q(AuditQuery {
            user: Some("alice".into()),
            ..Default::default()
        })
        .len(),
        15
    );
    assert_eq!(
        q(AuditQuery {
            user: Some("alice".into()),
            host: Some("h0".into()),
            ..Default::default()
        }),
        vec![6, 12, 18, 24, 30]
    );
    assert_eq!(
        q(AuditQuery {
            user: Some("alice".into()),
            after_seq: Some(12),
            limit: 2,
            ..Default::default()
        }),
        vec![14, 16]
    );
    assert_eq!(
        q(AuditQuery {
            grant: Some("g105".into()),
            ..Default::default()
        }),
        vec![5]
    );
    assert!(q(AuditQuery {
        user: Some("mallory".into()),
        ..Default::default()
    })
    .is_empty());
    let all = q(AuditQuery {
        since: Some(OffsetDateTime::UNIX_EPOCH),
        ..Default::default()
    });
    assert_eq!(all.len(), 30);
    assert!(log.serial_issued(130).unwrap() && !log.serial_issued(131).unwrap());
}

#[test]
fn a_lagging_index_is_rebuilt_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let five_and_six: Vec<Vec<u8>> = {
        let log = DiskAuditLog::open(dir.path()).unwrap();
        for i in 1..=6 {
            log.append(Actor::System, issued("alice", "db", i)).unwrap();
        }
        log.records
            .scan(5, 6)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    // Simulate a crash after records 5 and 6 were durable but before
    // their index entries reached disk: a chain of 4 with its index,
    // then 5 and 6 written to the chain alone.
    let mut first_four: Vec<Vec<u8>> = {
        let log = DiskAuditLog::open(dir.path()).unwrap();
        log.records
            .scan(1, 4)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    ChainFile::rewrite(dir.path(), &first_four).unwrap();
    drop(DiskAuditLog::open(dir.path()).unwrap());
    assert_eq!(
        PostingIndex::open(&dir.path().join("index"))
            .unwrap()
            .watermark()
            .unwrap(),
        4
    );
    first_four.extend(five_and_six);
    ChainFile::open(dir.path())
        .unwrap()
        .append(&first_four[4..])
        .unwrap();

    let log = DiskAuditLog::open(dir.path()).unwrap();
    assert_eq!(log.index.watermark().unwrap(), 6);
    assert!(log.serial_issued(6).unwrap());
    let recs = log
        .query(&AuditQuery {
            user: Some("alice".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
}

#[test]
fn queries_are_exact_while_the_indexer_lags() {
    let (_d, log) = log_with(4);
    wait_for_the_indexer(&log, 4);
    let held = log.indexer.paused.lock().unwrap();
    append_to(&log, 5..=10);
    // The indexer has reached record 4 and waits.
    assert_eq!(log.indexer.unindexed.lock().unwrap().indexed(), 4);
    let q = AuditQuery {
        user: Some("alice".into()),
        ..Default::default()
    };
    let seqs: Vec<u64> = log.query(&q).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![2, 4, 6, 8, 10]);
    assert!(log.serial_issued(109).unwrap());
    let q = AuditQuery {
        user: Some("alice".into()),
        after_seq: Some(6),
        ..Default::default()
    };
    assert_eq!(
        log.query(&q)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        vec![8, 10]
    );
    drop(held);
    wait_for_the_indexer(&log, 10);
    assert_eq!(log.query(&q).unwrap().len(), 2);
}

#[test]
fn a_keyed_query_reads_only_its_own_records_while_the_indexer_lags() {
    let (_d, log) = log_with(0);
    let _held = log.indexer.paused.lock().unwrap();
    // One group each, under the indexer queue's bound (256 groups).
    append_to(&log, 1..=200);
    assert_eq!(log.indexer.unindexed.lock().unwrap().len(), 200);
    let before = log.reads.load(Ordering::SeqCst);
    assert!(log.serial_issued(250).unwrap());
    assert!(!log.serial_issued(99_999).unwrap());
    // Before, each lookup read and parsed every record the indexer had
    // not reached: 350 reads here.
    assert_eq!(log.reads.load(Ordering::SeqCst) - before, 1);
}

#[test]
fn time_ranges_match_a_full_scan() {
    let (_d, log) = log_with(40);
    let all = log.query(&AuditQuery::default()).unwrap();
    assert_eq!(all.len(), 40);
    assert!(
        all.windows(2).all(|w| w[0].time <= w[1].time),
        "record times went backwards"
    );
    for (a, b) in [(0, 39), (5, 20), (17, 18), (39, 39)] {
        let (since, until) = (all[a].time, all[b].time);
        let want: Vec<u64> = all
            .iter()
            .filter(|r| r.time >= since && r.time < until)
            .map(|r| r.seq)
            .collect();
        let got: Vec<u64> = log
            .query(&AuditQuery {
                since: Some(since),
                until: Some(until),
                ..Default::default()
            })
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(got, want, "since #{a} until #{b}");
        let with_user: Vec<u64> = log
            .query(&AuditQuery {
                since: Some(since),
                user: Some("alice".into()),
                ..Default::default()
            })
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        let want_user: Vec<u64> = all
            .iter()
            .filter(|r| r.time >= since && r.seq % 2 == 0)
            .map(|r| r.seq)
            .collect();
        assert_eq!(with_user, want_user);
    }
}

/// Every combination of filters, paged with a cursor, returns exactly
/// what a full scan with the same filter returns.
#[test]
fn filters_and_pages_match_a_full_scan() {
    let (_d, log) = log_with(60);
    log.append(
        Actor::System,
        Event::Revoked(jit_ssh_audit::record::Revoked {
            target: "serial:107".into(),
            user: "bob".into(),
            reason: "lost laptop".into(),
            serials: vec![107, 111],
            krl_version: 1,
        }),
    )
    .unwrap();
    let all = log.query(&AuditQuery::default()).unwrap();
    let mid = all[20].time;
    let users = [None, Some("alice"), Some("bob")];
    let hosts = [None, Some("h1")];
    let serials = [None, Some(107), Some(999)];
    let kinds = [vec![], vec!["revoked".to_owned()]];
    let accounts = [None, Some("oncall"), Some("root")];
    for u in users {
        for h in hosts {
            for s in serials {
                for k in &kinds {
                    for a in accounts {
                        for since in [None, Some(mid)] {
                            let q = AuditQuery {
                                user: u.map(Into::into),
                                host: h.map(Into::into),
                                account: a.map(Into::into),
                                serial: s,
                                kinds: k.clone(),
                                since,
                                ..Default::default()
                            };
                            let want: Vec<u64> =
                                all.iter().filter(|r| q.matches(r)).map(|r| r.seq).collect();
                            let mut got = Vec::new();
                            let mut cursor = None;
                            loop {
                                let page = log
                                    .query(&AuditQuery {
                                        after_seq: cursor,
                                        limit: 4,
                                        ..q.clone()
                                    })
                                    .unwrap();
                                got.extend(page.iter().map(|r| r.seq));
                                match page.last() {
                                    Some(r) if page.len() == 4 => cursor = Some(r.seq),
                                    _ => break,
                                }
                            }
                            assert_eq!(got, want, "{q:?}");
                        }
                    }
                }
            }
        }
    }
    // A revoked serial finds both its issuance and its revocation.
    let by_serial = log
        .query(&AuditQuery {
            serial: Some(111),
            ..Default::default()
        })
        .unwrap();
    let kinds: Vec<&str> = by_serial.iter().map(|r| r.event.kind()).collect();
    assert_eq!(kinds, ["certificate_issued", "revoked"]);
}

#[test]
fn export_streams_the_stored_records() {
    let (_d, log) = log_with(12);
    let mut lines = Vec::new();
    let n = log
        .export(3, 7, &mut |rec: &[u8]| {
            lines.push(serde_json::from_slice::<AuditRecord>(rec).unwrap().seq);
            true
        })
        .unwrap();
    assert_eq!((n, lines), (5, vec![3, 4, 5, 6, 7]));
}

fn raw(log: &DiskAuditLog, seq: u64) -> AuditRecord {
    log.record(seq).unwrap().unwrap()
}

/// Edits the chain file the way someone with disk access could, and
/// reopens the log over it.
fn tamper(
    dir: &tempfile::TempDir,
    log: DiskAuditLog,
    edit: impl FnOnce(&mut Vec<Vec<u8>>),
) -> DiskAuditLog {
    let mut recs: Vec<Vec<u8>> = log
        .records
        .scan(1, u64::MAX)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(log);
    edit(&mut recs);
    ChainFile::rewrite(dir.path(), &recs).unwrap();
    DiskAuditLog::open(dir.path()).unwrap()
}

fn json(rec: &AuditRecord) -> Vec<u8> {
    serde_json::to_vec(rec).unwrap()
}

#[test]
fn verify_names_an_edited_record() {
    let (d, log) = log_with(10);
    let mut r = raw(&log, 4);
    let Event::CertificateIssued(c) = &mut r.event else {
        unreachable!()
    };
    c.host = "prod-db".into();
    let log = tamper(&d, log, |recs| recs[3] = json(&r));
    assert_eq!(
        log.verify().unwrap().first_break,
        Some(ChainBreak::Altered { seq: 4 })
    );
}

#[test]
fn verify_names_an_edit_with_a_recomputed_hash() {
    let (d, log) = log_with(10);
    let r = raw(&log, 4);
    let prev = ChainHead {
        seq: 3,
        hash: r.prev_hash,
    };
    let mut event = r.event.clone();
    let Event::CertificateIssued(c) = &mut event else {
        unreachable!()
    };
    c.valid_before += 86_400;
    let forged = chain::seal(prev, r.time, r.actor.clone(), event).unwrap();
    let log = tamper(&d, log, |recs| recs[3] = json(&forged));
    assert_eq!(
        log.verify().unwrap().first_break,
        Some(ChainBreak::BrokenLink { seq: 5 })
    );
}

#[test]
fn verify_names_a_removed_record() {
    let (d, log) = log_with(10);
    let log = tamper(&d, log, |recs| drop(recs.remove(5)));
    let report = log.verify().unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak::OutOfOrder {
            position: 6,
            found: 7
        })
    );
    assert_eq!(report.records, 5);
}

#[test]
fn verify_names_reordered_records() {
    let (d, log) = log_with(10);
    let log = tamper(&d, log, |recs| recs.swap(2, 7));
    assert_eq!(
        log.verify().unwrap().first_break,
        Some(ChainBreak::OutOfOrder {
            position: 3,
            found: 8
        })
    );
}

#[test]
fn refuses_to_open_over_a_corrupt_head() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = DiskAuditLog::open(dir.path()).unwrap();
        log.append(Actor::System, issued("a", "b", 1)).unwrap();
    }
    ChainFile::rewrite(dir.path(), &[b"{not json".to_vec()]).unwrap();
    assert!(matches!(
        DiskAuditLog::open(dir.path()),
        Err(StoreError::Corrupt { seq: 1, .. })
    ));
}
