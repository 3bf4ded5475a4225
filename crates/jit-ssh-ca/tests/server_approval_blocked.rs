//! Approvals and user revocations (session 11's review): a user security
//! revoked (blocked) gets no certificate through approvals given later,
//! and does not approve anyone else's request.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::TestCa;
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use jit_ssh_audit::{AuditLog, AuditQuery};

/// `user` asks for postgres on db-1.prod (two approvals from leads) and
/// touches; returns (id, secret).
async fn ask(t: &TestCa, key: &mut SoftPasskey, user: &str) -> (String, String) {
    let (s, created) = t.request(user, "db-1.prod", "postgres", "5m").await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(t.touch(&id, key).await.0, StatusCode::OK);
    assert_eq!(state(t, &id, &secret).await["status"], "pending_approval");
    (id, secret)
}

async fn state(t: &TestCa, id: &str, secret: &str) -> Value {
    t.get(&format!("/v1/requests/{id}"), Some(secret)).await.1
}

/// `who` approves `id` and confirms with `key`: (status, final state or error).
async fn approve(t: &TestCa, who: &str, key: &mut SoftPasskey, id: &str) -> (StatusCode, Value) {
    let (s, created) = t
        .post(
            &format!("/v1/requests/{id}/decisions"),
            &json!({"user": who, "verdict": "approve", "comment": ""}),
        )
        .await;
    if s != StatusCode::CREATED {
        return (s, created);
    }
    let did = created["id"].as_str().unwrap();
    let (s, done, _) = t.confirm("decisions", did, key).await;
    (s, done)
}

/// Security revokes (and so blocks) `user`, confirmed with `sec`'s key.
async fn block(t: &TestCa, sec: &mut SoftPasskey, user: &str) {
    let (s, created) = t
        .post(
            "/v1/revocations",
            &json!({"user": "sec", "target": {"user": user}, "reason": "laptop stolen"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (s, done, _) = t.confirm("revocations", id, sec).await;
    assert_eq!(
        (s, done["status"].as_str()),
        (StatusCode::OK, Some("revoked"))
    );
}

fn issued(t: &TestCa, id: &str) -> usize {
    t.audit
        .query(&AuditQuery {
            grant: Some(id.into()),
            kinds: vec!["certificate_issued".into()],
            ..Default::default()
        })
        .unwrap()
        .len()
}

/// Security revokes bob while his request waits for approvers: the
/// approvals that come later must not hand him a certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_users_waiting_request_is_not_issued_by_later_approvals() {
    let t = TestCa::new();
    let mut bob = t.enroll("bob").await;
    let mut sec = t.enroll("sec").await;
    let mut lead1 = t.enroll("lead1").await;
    let mut lead2 = t.enroll("lead2").await;
    let (id, secret) = ask(&t, &mut bob, "bob").await;
    // One approval before the revocation, the last one after it.
    let (_, d) = approve(&t, "lead1", &mut lead1, &id).await;
    assert_eq!(d["status"], "recorded", "{d}");

    block(&t, &mut sec, "bob").await;

    let (s, d) = approve(&t, "lead2", &mut lead2, &id).await;
    let st = state(&t, &id, &secret).await;
    assert_ne!(
        st["status"], "issued",
        "a blocked user got a certificate: {st}"
    );
    assert!(st["certificate"].is_null(), "{st}");
    assert_eq!(
        issued(&t, &id),
        0,
        "no certificate_issued for a blocked user"
    );
    // The approver is told why, and it is on record.
    let said = if s == StatusCode::OK {
        assert_eq!(d["status"], "refused", "{d}");
        d["outcome"].as_str().unwrap_or_default().to_owned()
    } else {
        assert_eq!(s, StatusCode::FORBIDDEN, "{d}");
        d["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(said.contains("bob") && said.contains("revoked"), "{said}");
}

/// Security revokes an approver (their key was stolen, or they left):
/// their approval no longer counts, before or after the touch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_approver_cannot_approve() {
    let t = TestCa::new();
    let mut bob = t.enroll("bob").await;
    let mut sec = t.enroll("sec").await;
    let mut lead1 = t.enroll("lead1").await;
    let mut lead2 = t.enroll("lead2").await;
    let (id, secret) = ask(&t, &mut bob, "bob").await;

    // Blocked between creating the decision and touching for it.
    let (s, created) = t
        .post(
            &format!("/v1/requests/{id}/decisions"),
            &json!({"user": "lead1", "verdict": "approve", "comment": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    block(&t, &mut sec, "lead1").await;
    let did = created["id"].as_str().unwrap();
    let (s, d, _) = t.confirm("decisions", did, &mut lead1).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "refused", "{d}");
    assert!(
        d["outcome"]
            .as_str()
            .unwrap_or_default()
            .contains("revoked"),
        "{d}"
    );

    // Blocked before: refused at once, nothing to touch.
    let (s, e) = approve(&t, "lead1", &mut lead1, &id).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("user_blocked")),
        "{e}"
    );

    // lead2's approval is the only one: still waiting.
    let (_, d) = approve(&t, "lead2", &mut lead2, &id).await;
    assert_eq!(d["status"], "recorded", "{d}");
    let st = state(&t, &id, &secret).await;
    assert_eq!(st["status"], "pending_approval", "{st}");
    assert_eq!(st["approval"]["approved_by"], json!(["lead2"]), "{st}");
    assert_eq!(issued(&t, &id), 0);
}

/// Security revokes bob while his request waits: an approver's pending
/// list no longer offers it (approving it would be refused anyway), and
/// alice's waiting request, asked for the same way, is still offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_users_request_leaves_the_approvers_pending_list() {
    let t = TestCa::new();
    let mut bob = t.enroll("bob").await;
    let mut alice = t.enroll("alice").await;
    let mut sec = t.enroll("sec").await;
    let mut lead1 = t.enroll("lead1").await;
    let (bob_id, _) = ask(&t, &mut bob, "bob").await;
    let (alice_id, _) = ask(&t, &mut alice, "alice").await;
    let token = t.sign_in("lead1", &mut lead1).await;
    let listed = |list: &Value| -> Vec<String> {
        list["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (s, list) = t.get("/v1/requests", Some(&token)).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let before = listed(&list);
    assert!(
        before.contains(&bob_id) && before.contains(&alice_id),
        "{list}"
    );

    block(&t, &mut sec, "bob").await;

    let (s, list) = t.get("/v1/requests", Some(&token)).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(listed(&list), vec![alice_id], "{list}");
}
