//! Server-side sign-out (session 11's review): `jit-ssh logout` used to
//! delete only the local token file, so a copy of an auditor's sign-in
//! token read the audit log until its 15-minute end. Ending a sign-in at
//! the CA makes every copy of its token useless at once.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::TestCa;
use serde_json::Value;

use jit_ssh_audit::{AuditLog, AuditQuery};

/// `DELETE /v1/sessions/{id}` with `Authorization: Bearer {token}`.
async fn sign_out(t: &TestCa, id: &str, token: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(Method::DELETE)
        .uri(format!("/v1/sessions/{id}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let (s, _, v) = t.send(req).await;
    (s, v)
}

fn signed_out(t: &TestCa) -> Vec<jit_ssh_audit::AuditRecord> {
    t.audit
        .query(&AuditQuery {
            kinds: vec!["signed_out".into()],
            ..Default::default()
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sign_out_a_copied_auditor_token_reads_nothing() {
    let t = TestCa::new();
    let mut aud = t.enroll("aud").await;
    let token = t.sign_in("aud", &mut aud).await;
    let copy = token.clone();
    let id = token.split_once('.').unwrap().0.to_owned();
    assert_eq!(t.get("/v1/audit", Some(&copy)).await.0, StatusCode::OK);

    // Someone without the secret cannot end it (nor learn whether it exists).
    let forged = format!("{id}.{}", "0".repeat(64));
    let (s, e) = sign_out(&t, &id, &forged).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized")),
        "{e}"
    );
    // A token of one sign-in does not end another.
    let (s, _) = sign_out(&t, &"a".repeat(32), &token).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(t.get("/v1/audit", Some(&copy)).await.0, StatusCode::OK);
    assert!(signed_out(&t).is_empty());

    let (s, ended) = sign_out(&t, &id, &token).await;
    assert_eq!(s, StatusCode::OK, "{ended}");
    assert_eq!(ended["status"], "expired", "{ended}");

    // The copy no longer reads the audit log.
    let (s, e) = t.get("/v1/audit", Some(&copy)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{e}");

    // Signing out again is fine and records nothing more.
    let (s, again) = sign_out(&t, &id, &token).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "expired", "{again}");

    // On record once, as aud, naming the sign-in; the chain still verifies.
    let records = signed_out(&t);
    assert_eq!(records.len(), 1, "{records:?}");
    let step = serde_json::to_value(&records[0].event).unwrap();
    assert_eq!(step["user"], "aud", "{step}");
    assert_eq!(step["request"], id.as_str(), "{step}");
    let report = t.audit.verify().unwrap();
    assert!(report.first_break.is_none(), "{report:?}");
}
