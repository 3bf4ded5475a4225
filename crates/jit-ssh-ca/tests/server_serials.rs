//! Certificate serials are random u64s; a page's JavaScript reads JSON
//! numbers as f64 and showed `465906067876377900` for `…908`. Every
//! serial a page or script reads travels as a decimal string (a number
//! is still accepted from older clients), and a revocation's summary
//! says whose certificate it takes away.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::TestCa;
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

/// Issues alice a certificate for db-1.dev as oncall; returns its
/// request's state as the requester reads it, and the certificate.
async fn issue(t: &TestCa, key: &mut SoftPasskey) -> (Value, ssh_key::Certificate) {
    let (_, created) = t.request("alice", "db-1.dev", "oncall", "10m").await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(t.touch(id, key).await.0, StatusCode::OK);
    let (s, state) = t
        .get(&format!("/v1/requests/{id}"), created["secret"].as_str())
        .await;
    assert_eq!(s, StatusCode::OK, "{state}");
    let cert =
        ssh_key::Certificate::from_openssh(state["certificate"]["certificate"].as_str().unwrap())
            .unwrap();
    (state, cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serials_travel_as_strings_and_the_revocation_says_whose_certificate() {
    let t = TestCa::new();
    let mut alice = t.enroll("alice").await;
    let mut sec = t.enroll("sec").await;
    let (state, cert) = issue(&t, &mut alice).await;
    let serial = cert.serial().to_string();

    // The requester's state: the serial as a string, every digit kept.
    assert_eq!(state["certificate"]["serial"], json!(serial), "{state}");

    // A revocation named by a string serial (what a page would send)...
    let (s, created) = t
        .post(
            "/v1/revocations",
            &json!({"user": "sec", "target": {"serial": serial}, "reason": "lost laptop"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();

    // ...whose public summary names the serial as a string and says whose
    // certificate it is: user, host and account from the issuance.
    let (s, summary) = t.get(&format!("/v1/revocations/{id}/summary"), None).await;
    assert_eq!(s, StatusCode::OK, "{summary}");
    assert_eq!(summary["target"], json!({"serial": serial}), "{summary}");
    assert_eq!(summary["certificate"]["user"], "alice", "{summary}");
    assert_eq!(summary["certificate"]["host"], "db-1.dev", "{summary}");
    assert_eq!(summary["certificate"]["account"], "oncall", "{summary}");
    assert!(
        summary["certificate"]["valid_before"]
            .as_str()
            .is_some_and(|v| v.ends_with('Z')),
        "{summary}"
    );

    // Confirmed: the revoked serials are strings too, in the touch's
    // answer and in the state read with the secret.
    let (s, done, _) = t.confirm("revocations", id, &mut sec).await;
    assert_eq!(
        (s, &done["status"]),
        (StatusCode::OK, &json!("revoked")),
        "{done}"
    );
    assert_eq!(done["serials"], json!([serial]), "{done}");
    assert_eq!(done["certificate"]["user"], "alice", "{done}");
    let (_, read) = t
        .get(&format!("/v1/revocations/{id}"), created["secret"].as_str())
        .await;
    assert_eq!(read["serials"], json!([serial]), "{read}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_numeric_serial_from_an_older_client_still_works_and_garbage_is_refused() {
    let t = TestCa::new();
    let mut alice = t.enroll("alice").await;
    t.enroll("sec").await;
    let (_, cert) = issue(&t, &mut alice).await;

    let (s, created) = t
        .post(
            "/v1/revocations",
            &json!({"user": "sec", "target": {"serial": cert.serial()}, "reason": "old client"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (_, summary) = t.get(&format!("/v1/revocations/{id}/summary"), None).await;
    assert_eq!(
        summary["target"]["serial"],
        json!(cert.serial().to_string()),
        "{summary}"
    );

    // Not a serial: 400, nothing created.
    let before = t.audit_count();
    for bad in [
        json!("+5"),
        json!(" 5"),
        json!("5e3"),
        json!(-1),
        json!(1.5),
        json!(""),
    ] {
        let (s, e) = t
            .post(
                "/v1/revocations",
                &json!({"user": "sec", "target": {"serial": bad}, "reason": "r"}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {e}");
        assert!(e["error"]["message"].is_string(), "{e}");
    }
    assert_eq!(t.audit_count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_of_an_unknown_serial_names_no_owner() {
    let t = TestCa::new();
    t.enroll("sec").await;
    let (s, created) = t
        .post(
            "/v1/revocations",
            &json!({"user": "sec", "target": {"serial": "18446744073709551615"}, "reason": "r"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (_, summary) = t.get(&format!("/v1/revocations/{id}/summary"), None).await;
    assert_eq!(
        summary["target"]["serial"], "18446744073709551615",
        "{summary}"
    );
    assert!(summary.get("certificate").is_none(), "{summary}");
}
