//! A grant under which many sessions were recorded (a deployment loop
//! running `ssh host cmd` every few seconds for a day on one
//! certificate; or a host opening sessions to bury one): a download
//! still carries the final hash and host key fingerprint of *its*
//! session's audit records, which come after ten thousand others of the
//! same grant. Before, the CA read only the grant's first 10,000 session
//! records: a later session's download had neither, and `audit play`
//! refused a recording nothing was wrong with.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod recordings_common;

use axum::http::StatusCode;
use ssh_key::HashAlg;

use jit_ssh_audit::session_record::{SessionEnded, SessionStarted, SessionSubject};
use jit_ssh_audit::{Actor, AuditLog, Event};
use recordings_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_audit_records_are_found_after_ten_thousand_others_of_its_grant() {
    let s = setup().await;
    let t = &s.t;
    t.ca.set_recordings_probe(disk_with(50 << 30));
    let a = &s.alice;
    let fingerprint = s
        .host_key
        .public_key()
        .fingerprint(HashAlg::Sha256)
        .to_string();
    let subject = |i: usize| SessionSubject {
        session: format!("earlier-{i}"),
        user: a.user.clone(),
        host: a.host.clone(),
        account: a.account.clone(),
        serial: a.serial.parse().unwrap(),
        key_id: a.key_id.clone(),
        grant: a.grant_id.clone(),
    };
    let host = || Actor::Host {
        name: a.host.clone(),
        client_addr: "127.0.0.1".into(),
    };
    let earlier: Vec<_> = (0..5_001)
        .flat_map(|i| {
            [
                (
                    host(),
                    Event::SessionStarted(SessionStarted {
                        subject: subject(i),
                        record: "output".into(),
                        host_key_fingerprint: fingerprint.clone(),
                        started_at: 1_790_000_000,
                    }),
                ),
                (
                    host(),
                    Event::SessionEnded(SessionEnded {
                        subject: subject(i),
                        reason: "exit".into(),
                        output_bytes: 1,
                        input_bytes: 0,
                        chunks: 2,
                        duration_secs: 1,
                        final_hash: "00".repeat(32),
                        final_signature: String::new(),
                    }),
                ),
            ]
        })
        .collect();
    t.audit.append_all(earlier).unwrap();

    let rec = record(a, "s-late", &s.host_key, 3);
    let (st, v) = upload(t, "s-late", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, d) = t.get("/v1/recordings/s-late", Some(&s.auditor)).await;
    assert_eq!(st, StatusCode::OK, "{d}");
    assert_eq!(
        d["final_hash"].as_str(),
        Some(&*rec.final_hash.to_string()),
        "the session_ended record of s-late"
    );
    assert_eq!(d["host_key_fingerprint"].as_str(), Some(&*fingerprint));
}
