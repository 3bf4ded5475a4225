//! Two `jit-ssh-ca serve` replicas on one PostgreSQL, engineers spread over
//! both issuing certificates in a loop. One replica is `kill -9`ed
//! mid-load: its engineers finish on the other. Then PostgreSQL is
//! stopped mid-load: the surviving replica answers 503 (nothing issued)
//! and serves again once the database is back, without a restart. At
//! the end, every certificate an engineer received has its committed
//! `certificate_issued` record in the one audit chain, which verifies with
//! only the CA key. Its own binary: it stops the cluster.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg;
mod replicas;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use replicas::{init_ca, ssh_public_key, write_config, Client, Replica, StepError};

/// Engineers issuing at once; even ones start on replica A.
const ENGINEERS: usize = 6;

#[derive(Default)]
struct Tally {
    /// Serials engineers received.
    received: Vec<u64>,
    /// Received after A was killed, by engineers who started on A.
    moved_over: usize,
    /// Steps that gave up (no replica within the step's patience).
    gave_up: usize,
}

#[test]
fn two_replicas_survive_a_killed_replica_and_a_database_restart() {
    let name = "two_replicas_survive_a_killed_replica_and_a_database_restart";
    let Some(cluster) = pg::cluster(name) else {
        return;
    };
    let db = cluster.database();
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path());
    let mut a = Replica::start(&write_config(tmp.path(), "a", &db.url, ENGINEERS));
    let b = Replica::start(&write_config(tmp.path(), "b", &db.url, ENGINEERS));
    let client = Client::new(vec![a.base.clone(), b.base.clone()]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut keys = Vec::new();
    for i in 0..ENGINEERS {
        keys.push(rt.block_on(client.enroll(&a.config, &format!("u{i}"))));
    }
    let mut auditor = rt.block_on(client.enroll(&a.config, "aud"));

    let stop = Arc::new(AtomicBool::new(false));
    let a_killed = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut engineers = Vec::new();
    for (i, mut key) in keys.into_iter().enumerate() {
        let (client, stop, a_killed, tally) = (
            client.clone(),
            stop.clone(),
            a_killed.clone(),
            tally.clone(),
        );
        engineers.push(rt.spawn(async move {
            let public_key = ssh_public_key();
            let user = format!("u{i}");
            while !stop.load(Ordering::SeqCst) {
                let mut at = i % 2;
                let killed_before = a_killed.load(Ordering::SeqCst);
                match client.issue(&mut at, &user, &mut key, &public_key).await {
                    Ok(serial) => {
                        let mut t = tally.lock().unwrap();
                        t.received.push(serial);
                        if killed_before && i % 2 == 0 {
                            t.moved_over += 1;
                        }
                    }
                    Err(StepError::Unavailable(_)) => tally.lock().unwrap().gave_up += 1,
                    Err(StepError::Refused(status, body)) => {
                        // A finish whose replica died after the touch:
                        // the request never issued; the next one will.
                        eprintln!("u{i}: not issued ({status}): {body}");
                    }
                }
            }
        }));
    }

    let count = |t: &Mutex<Tally>| t.lock().unwrap().received.len();
    std::thread::sleep(Duration::from_secs(3));
    let before_kill = count(&tally);
    a.kill();
    a_killed.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(3));
    let after_kill = count(&tally);

    cluster.stop("immediate");
    let down = Instant::now();
    // While the database is down the surviving replica refuses, saying so.
    let probe = rt.block_on(async {
        let http = reqwest::Client::builder().build().unwrap();
        let res = http
            .post(format!("{}/v1/requests", b.base))
            .json(
                &serde_json::json!({"user": "u1", "host": "db-1.dev", "account": "oncall",
                   "ttl": "10m", "reason": "probe", "public_key": ssh_public_key()}),
            )
            .send()
            .await
            .unwrap();
        let ready = http
            .get(format!("{}/readyz", b.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        (res.status().as_u16(), res.text().await.unwrap(), ready)
    });
    std::thread::sleep(Duration::from_secs(3));
    let during_outage = count(&tally);
    cluster.restart();
    let outage = down.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::SeqCst);
    for e in engineers {
        rt.block_on(e).unwrap();
    }
    let t = std::mem::take(&mut *tally.lock().unwrap());
    eprintln!(
        "received {} certificates: {before_kill} before the kill, {} between kill and outage, \
         {} during the {outage:?} outage, {} after; {} by A's engineers after the kill; {} steps gave up",
        t.received.len(),
        after_kill - before_kill,
        during_outage - after_kill,
        t.received.len() - during_outage,
        t.moved_over,
        t.gave_up
    );

    assert_eq!(
        probe.0, 503,
        "a request while the database is down: {}",
        probe.1
    );
    assert!(probe.1.contains("unavailable"), "{}", probe.1);
    assert_eq!(probe.2, 503, "/readyz while the database is down");
    assert!(before_kill > 0, "nothing issued before the kill");
    assert!(t.moved_over > 0, "A's engineers never finished on B");
    assert!(
        t.received.len() > during_outage,
        "nothing issued after the database came back"
    );

    // The auditor's view, from the surviving replica: one chain, every
    // received certificate in it.
    let export = rt.block_on(client.export_audit(&mut auditor));
    let ca_key = ssh_key::PublicKey::read_openssh_file(&tmp.path().join("ca/ca_key.pub")).unwrap();
    let report = jit_ssh_audit::checkpoint::verify_export(export.as_bytes(), &[ca_key]).unwrap();
    assert!(report.problem.is_none(), "{:?}", report.problem);
    let recorded: HashSet<u64> = export
        .lines()
        .filter_map(|l| serde_json::from_str::<jit_ssh_audit::AuditRecord>(l).ok())
        .filter_map(|r| match r.event {
            jit_ssh_audit::Event::CertificateIssued(c) => Some(c.serial),
            _ => None,
        })
        .collect();
    let missing: Vec<&u64> = t
        .received
        .iter()
        .filter(|s| !recorded.contains(s))
        .collect();
    assert!(
        missing.is_empty(),
        "{} certificate(s) left a replica without a certificate_issued record: {missing:?}",
        missing.len()
    );
    eprintln!(
        "audit chain: {} records verify; {} certificate_issued, {} received by engineers",
        report.records,
        recorded.len(),
        t.received.len()
    );
    drop(b);
}
