//! `jit-ssh-ca sign` records every issuance in the audit log in the data
//! directory, and issues nothing when it cannot.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use jit_ssh_audit::{AuditLog, AuditQuery, Event, IssuedVia};
use jit_ssh_audit_disk::DiskAuditLog;
use jit_ssh_e2e::{bin, have_tools, keygen, run, Ca, SSH_KEYGEN};

#[test]
fn sign_records_the_issuance_and_fails_closed_without_the_log() {
    if !have_tools("offline_sign_audited", &[SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path());
    let key = keygen(tmp.path(), "alice");
    let (_, serial) = ca.sign_ok(&key, "alice", "db.dev", "oncall", "10m", &[]);

    let db = ca.data.join("audit");
    {
        let log = DiskAuditLog::open(&db).unwrap();
        let recs = log
            .query(&AuditQuery {
                serial: Some(serial),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(recs.len(), 1);
        let Event::CertificateIssued(c) = &recs[0].event else {
            panic!(
                "expected a certificate_issued record, got {:?}",
                recs[0].event
            )
        };
        assert_eq!(
            (c.user.as_str(), c.host.as_str(), c.account.as_str()),
            ("alice", "db.dev", "oncall")
        );
        assert_eq!(c.via, IssuedVia::OfflineSign);
        assert_eq!(c.reason, "e2e test");
        assert_eq!(c.valid_before - c.valid_after, 600 + 60);
        assert!(log.verify().unwrap().first_break.is_none());

        // While another process holds the log (as `serve` will), sign must
        // refuse, and write no certificate.
        let key2 = keygen(tmp.path(), "bob");
        let out = ca.sign(
            &key2.with_extension("pub"),
            "bob",
            "db.dev",
            "oncall",
            "10m",
            &[],
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("audit log") && err.contains("serve"), "{err}");
        assert!(
            !tmp.path().join("bob-cert.pub").exists(),
            "a certificate was written without an audit record"
        );
        assert_eq!(log.verify().unwrap().records, 1);
    }

    // Bad input changes nothing: no certificate, no record.
    let key3 = keygen(tmp.path(), "carol");
    for (host, account, ttl) in [
        ("db,dev", "oncall", "10m"),
        ("db.dev", "on call", "10m"),
        ("db.dev", "oncall", "0s"),
        ("db.dev", "oncall", "2h"),
    ] {
        let out = ca.sign(
            &key3.with_extension("pub"),
            "carol",
            host,
            account,
            ttl,
            &[],
        );
        assert_eq!(out.status.code(), Some(2), "{host} {account} {ttl}");
        assert!(!tmp.path().join("carol-cert.pub").exists());
    }
    let out = run(Command::new(bin("jit-ssh-ca"))
        .arg("sign")
        .arg("--data")
        .arg(&ca.data)
        .arg("--ca-key")
        .arg(&ca.key)
        .args([
            "--user",
            "carol",
            "--host",
            "db.dev",
            "--as",
            "oncall",
            "--ttl",
            "10m",
            "--reason",
            "line\nbreak",
        ])
        .arg(key3.with_extension("pub")));
    assert!(!out.status.success());
    let log = DiskAuditLog::open(&db).unwrap();
    assert_eq!(log.verify().unwrap().records, 1);
}
