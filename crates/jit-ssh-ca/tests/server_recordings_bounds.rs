//! A recorded session lies within its certificate: a host holding its
//! key cannot keep a session open past the certificate's `valid_before`
//! and append to it later, nor start one outside the certificate's
//! validity. What is bounded is the recorded time, not the upload's: a
//! late upload of a session that ran in time is taken, and so is the end
//! chunk a session ended at expiry writes a few seconds after it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod recordings_common;

use recordings_common::*;

use std::time::Duration;

use axum::http::StatusCode;

fn out(secs: f64, text: &str) -> (Duration, String) {
    (Duration::from_secs_f64(secs), format!("{text}\r\n"))
}

async fn stored_chunks(s: &Setup, session: &str) -> Option<u64> {
    let (st, d) =
        s.t.get(&format!("/v1/recordings/{session}"), Some(&s.auditor))
            .await;
    (st == StatusCode::OK).then(|| d["summary"]["chunks"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_recorded_past_the_certificates_end_are_refused_and_nothing_is_stored() {
    let s = setup().await;
    let t = &s.t;
    let (_, valid_before) = validity(t, &s.alice.grant_id);
    let start = now_unix();
    let to_end = (valid_before - start) as f64;
    // A session that stays open an hour past its 10-minute certificate
    // and keeps printing: what a compromised host could append later.
    let rec = record_timed(
        &s.alice,
        "s-late",
        &s.host_key,
        (start, 80),
        &[
            out(1.0, "$ id"),
            out(to_end + 3600.0, "$ still here an hour later"),
        ],
        Duration::from_secs_f64(to_end + 3601.0),
    );
    assert!(rec.chunks.len() >= 3, "{}", rec.chunks.len());
    let (st, v) = upload(t, "s-late", &rec.header, &rec.chunks[..1]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let before = t.audit_count();

    let (st, v) = upload(t, "s-late", &rec.header, &rec.chunks[1..]).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let m = message(&v);
    assert!(m.starts_with("chunk 1 was recorded at "), "{v}");
    assert!(
        m.contains(&format!(
            "after certificate serial {} expired at",
            s.alice.serial
        )),
        "{v}"
    );
    assert!(m.contains("a session ends with its certificate"), "{v}");
    assert_eq!(t.audit_count(), before, "a refused upload was audited");
    assert_eq!(stored_chunks(&s, "s-late").await, Some(1));
    assert!(session_records(t, "session_ended").is_empty());

    // The same, the late output and the end in the session's first upload.
    let again = record_timed(
        &s.alice,
        "s-late-2",
        &s.host_key,
        (start, 80),
        &[out(to_end + 3600.0, "$ late")],
        Duration::from_secs_f64(to_end + 3601.0),
    );
    let (st, v) = upload(t, "s-late-2", &again.header, &again.chunks).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(message(&v).starts_with("chunk 0 was recorded"), "{v}");
    assert_eq!(t.audit_count(), before);
    assert_eq!(stored_chunks(&s, "s-late-2").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_starts_outside_its_certificate_is_refused() {
    let s = setup().await;
    let t = &s.t;
    let (valid_after, valid_before) = validity(t, &s.alice.grant_id);
    let before = t.audit_count();
    for (id, start) in [
        ("s-after", valid_before + 3600),
        ("s-before", valid_after - 3600),
    ] {
        let rec = record_timed(
            &s.alice,
            id,
            &s.host_key,
            (start, 80),
            &[out(0.5, "$ id")],
            Duration::from_secs(1),
        );
        let (st, v) = upload(t, id, &rec.header, &rec.chunks).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{id}: {v}");
        let m = message(&v);
        assert!(
            m.contains("the session started at")
                && m.contains(&format!(
                    "outside the validity of certificate serial {}",
                    s.alice.serial
                )),
            "{id}: {v}"
        );
        assert_eq!(stored_chunks(&s, id).await, None, "{id}");
    }
    assert_eq!(t.audit_count(), before, "a refused upload was audited");
    assert!(session_records(t, "session_started").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_at_expiry_and_uploaded_a_day_late_is_taken() {
    let s = setup().await;
    let t = &s.t;
    let (_, valid_before) = validity(t, &s.alice.grant_id);
    // Started 20 s before the end; the wrapper hangs up at valid_before,
    // kills 2 s later, and the end chunk is written 2.5 s past it. A
    // stopped wrapper: the recorder ends it about 6 s past it.
    for (id, end_after) in [("s-wrapper", 2.5), ("s-recorder", 7.0)] {
        let start = valid_before - 20;
        let rec = record_timed(
            &s.alice,
            id,
            &s.host_key,
            (start, 80),
            &[
                out(1.0, "$ tail -f log"),
                out(19.9, "last line"),
                out(20.3, "jit-ssh: the certificate expired"),
            ],
            Duration::from_secs_f64(20.0 + end_after),
        );
        // Uploaded a day after the certificate expired (the CA was down).
        t.clock.advance(Duration::from_secs(86_400));
        let (st, v) = upload(t, id, &rec.header, &rec.chunks).await;
        assert_eq!(st, StatusCode::OK, "{id}: {v}");
        assert_eq!(v["ended"], true, "{id}: {v}");
    }
    assert_eq!(session_records(t, "session_ended").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_certificate_keeps_it_after_expiry_may_run_past_it() {
    // A rule with `end_at_expiry = false`: its force-command says
    // --keep-after-expiry, the recorder sets no deadline, and neither
    // does the CA (only the start is bounded).
    let t = common::TestCa::with_policy(
        "",
        r#"
[host_groups.keep]
hosts = ["*.keep"]
accounts = ["oncall"]

[[rules]]
groups = ["sre"]
host_groups = ["keep"]
max_ttl = "15m"
session = { end_at_expiry = false, record = "output" }
"#,
    );
    let host_key = random_key();
    enroll_host_in(&t, "keep", "k-1.keep", &host_key).await;
    let mut alice = t.enroll("alice").await;
    let info = grant(&t, &mut alice, "alice", "k-1.keep").await;
    let (_, valid_before) = validity(&t, &info.grant_id);
    let start = now_unix();
    let to_end = (valid_before - start) as f64;
    let rec = record_timed(
        &info,
        "s-kept",
        &host_key,
        (start, 80),
        &[out(1.0, "$ id"), out(to_end + 3600.0, "$ an hour later")],
        Duration::from_secs_f64(to_end + 3601.0),
    );
    let (st, v) = upload(&t, "s-kept", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["ended"], true);
    // Its start is bounded all the same.
    let late = record_timed(
        &info,
        "s-kept-late",
        &host_key,
        (valid_before + 3600, 80),
        &[out(1.0, "$ id")],
        Duration::from_secs(2),
    );
    let (st, v) = upload(&t, "s-kept-late", &late.header, &late.chunks).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
}
