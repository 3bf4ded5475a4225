//! A session id is used once, for ever: once retention pruned a
//! recording (or it was lost), no host may upload under that id again,
//! under its grant or any other (409, nothing stored or audited). And an
//! id the audit log starts twice (a CA before this took such an upload)
//! is refused by the download `audit play` uses, as offline `verify`
//! refuses it, rather than each picking a different record.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod recordings_common;

use recordings_common::*;

use axum::http::StatusCode;

use jit_ssh_audit::{Actor, AuditLog, Event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_session_id_cannot_be_recorded_again_under_any_grant() {
    let s = setup().await;
    let t = &s.t;
    let rec = record(&s.alice, "s-old", &s.host_key, 3);
    let (st, v) = upload(t, "s-old", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let dir = t.dir.path().join("recordings/s-old");
    t.ca.prune_state(t.ca.now() + 91 * 86_400).unwrap();
    assert!(!dir.exists());
    let before = t.audit_count();

    // The same recording again, a new one under the same grant, and one
    // under Bob's grant (any enrolled host's own certificate would do).
    let again = record_w(&s.alice, "s-old", &s.host_key, 5, 100);
    let bobs = record(&s.bob, "s-old", &s.host_key, 2);
    for (what, r) in [
        ("resend", &rec),
        ("same grant", &again),
        ("other grant", &bobs),
    ] {
        let (st, v) = upload(t, "s-old", &r.header, &r.chunks).await;
        assert_eq!(st, StatusCode::CONFLICT, "{what}: {v}");
        assert_eq!(v["error"]["code"], "wrong_state", "{what}: {v}");
        let m = message(&v);
        assert!(
            m.contains("session s-old was recorded before")
                && m.contains("a session id is used once"),
            "{what}: {v}"
        );
        assert!(!dir.exists(), "{what}: stored");
    }
    assert_eq!(t.audit_count(), before, "a refused upload was audited");
    assert_eq!(session_records(t, "session_started").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_id_whose_recording_was_lost_cannot_start_again_under_its_grant() {
    let s = setup().await;
    let t = &s.t;
    let rec = record(&s.alice, "s-lost", &s.host_key, 3);
    let dir = t.dir.path().join("recordings/s-lost");
    // Started, then its directory lost before anything more was stored
    // (what a failed first store looks like): the host's retry is taken,
    // without a second session_started.
    let (st, v) = upload(t, "s-lost", &rec.header, &rec.chunks[..1]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    std::fs::remove_dir_all(&dir).unwrap();
    let (st, v) = upload(t, "s-lost", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(session_records(t, "session_started").len(), 1);
    // Ended, then lost (not retention: a disk replaced, a restore): the
    // same recording may be taken back (the audit vouches for exactly
    // it), another under that id may not.
    std::fs::remove_dir_all(&dir).unwrap();
    let before = t.audit_count();
    let other = record_w(&s.alice, "s-lost", &s.host_key, 4, 100);
    let (st, v) = upload(t, "s-lost", &other.header, &other.chunks).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let m = message(&v);
    assert!(
        m.contains("session s-lost was recorded before")
            && m.contains("session_started audit record (seq "),
        "{v}"
    );
    assert_eq!(t.audit_count(), before);
    assert!(!dir.exists());
    assert_eq!(session_records(t, "session_ended").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_id_started_twice_in_the_audit_log_is_not_downloaded() {
    let s = setup().await;
    let t = &s.t;
    let rec = record(&s.alice, "s-twice", &s.host_key, 3);
    let (st, v) = upload(t, "s-twice", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = t.get("/v1/recordings/s-twice", Some(&s.auditor)).await;
    assert_eq!(st, StatusCode::OK);
    // What a CA before single-use ids wrote after a re-upload.
    let started = session_records(t, "session_started");
    let [Event::SessionStarted(first)] = &started[..] else {
        panic!("{started:?}")
    };
    t.audit
        .append(
            Actor::Host {
                name: "db-1.dev".into(),
                client_addr: "127.0.0.1".into(),
            },
            Event::SessionStarted(first.clone()),
        )
        .unwrap();
    let (st, v) = t.get("/v1/recordings/s-twice", Some(&s.auditor)).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let m = message(&v);
    assert!(
        m.contains("2 session_started audit records") && m.contains("a session id is used once"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_upload_whose_store_failed_after_its_audit_records_is_taken_on_retry() {
    let s = setup().await;
    let t = &s.t;
    let rec = record(&s.alice, "s-retry", &s.host_key, 3);
    // The whole session in one upload; its header file cannot be written
    // (a directory stands in the way): audited, then the store fails.
    let root = t.dir.path().join("recordings");
    std::fs::create_dir_all(root.join("s-retry/header/x")).unwrap();
    let (st, v) = upload(t, "s-retry", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert_eq!(session_records(t, "session_started").len(), 1);
    assert_eq!(session_records(t, "session_ended").len(), 1);
    std::fs::remove_dir_all(root.join("s-retry")).unwrap();
    // The host retries the same chunks: stored, no second record.
    let (st, v) = upload(t, "s-retry", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["ended"], true);
    assert_eq!(session_records(t, "session_started").len(), 1);
    assert_eq!(session_records(t, "session_ended").len(), 1);
    let (st, d) = t.get("/v1/recordings/s-retry", Some(&s.auditor)).await;
    assert_eq!(st, StatusCode::OK, "{d}");
    assert_eq!(d["final_hash"].as_str(), Some(&*rec.final_hash.to_string()));
    // Another recording under that id (a different end) is not.
    std::fs::remove_dir_all(root.join("s-retry")).unwrap();
    let other = record_w(&s.alice, "s-retry", &s.host_key, 3, 100);
    let (st, v) = upload(t, "s-retry", &other.header, &other.chunks).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(session_records(t, "session_ended").len(), 1);
}
