//! Who the audit log says acted, and what a refusal tells the caller: a
//! name given without a WebAuthn touch is a claim, recorded with the
//! address it came from, and such a caller learns no roles or names.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use jit_ssh_audit::{AuditLog, AuditQuery, AuditRecord};
use serde_json::{json, Value};

use common::TestCa;

fn records(t: &TestCa, kind: &str) -> Vec<AuditRecord> {
    t.audit
        .query(&AuditQuery {
            kinds: vec![kind.into()],
            ..AuditQuery::default()
        })
        .unwrap()
}

fn actor(r: &AuditRecord) -> Value {
    serde_json::to_value(&r.actor).unwrap()
}

fn claim(user: &str) -> Value {
    // TestCa sends from 192.0.2.10.
    json!({"kind": "unauthenticated", "client_addr": "192.0.2.10", "claimed_user": user})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_user_is_an_actor_only_after_their_touch() {
    let t = TestCa::new();
    let mut alice = t.enroll("alice").await;

    // Created by whoever sent it: a claim.
    let (_, created) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(actor(&records(&t, "request_created")[0]), claim("alice"));

    // After her touch, alice is the actor.
    let (s, done, assertion) = t.touch(id, &mut alice).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    let user_alice = json!({"kind": "user", "name": "alice"});
    assert_eq!(actor(&records(&t, "mfa_verified")[0]), user_alice);
    assert_eq!(actor(&records(&t, "certificate_issued")[0]), user_alice);

    // A failed touch (her assertion replayed) proves nothing: a claim.
    let (s, _) = t
        .post(&format!("/v1/requests/{id}/mfa/finish"), &assertion)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(actor(&records(&t, "mfa_failed")[0]), claim("alice"));

    // Cancelling needs only the request secret, not a touch: a claim.
    let (_, created) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let id = created["id"].as_str().unwrap();
    let secret = created["secret"].as_str().unwrap();
    let req = axum::http::Request::builder()
        .method(axum::http::Method::DELETE)
        .uri(format!("/v1/requests/{id}"))
        .header("authorization", format!("Bearer {secret}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let (s, _, v) = t.send(req).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(actor(&records(&t, "request_cancelled")[0]), claim("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_refused_before_the_touch_names_no_role_and_no_actor() {
    let t = TestCa::new();
    let _ = t.enroll("alice").await;
    let (s, e) = t
        .post(
            "/v1/revocations",
            &json!({"user": "alice", "target": {"serial": 5}, "reason": "r"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("security") && !message.contains("role") && !message.contains("alice"),
        "an unauthenticated caller learns no roles: {message}"
    );
    let refused = records(&t, "revocation_refused");
    assert_eq!(actor(&refused[0]), claim("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_refused_before_the_touch_names_no_approvers() {
    let t = TestCa::new();
    let mut alice = t.enroll("alice").await;
    let _ = t.enroll("bob").await;
    let _ = t.enroll("lead1").await;
    let (_, created) = t.request("alice", "db-1.prod", "postgres", "5m").await;
    let id = created["id"].as_str().unwrap();
    let (s, st, _) = t.touch(id, &mut alice).await;
    assert_eq!(
        (s, st["status"].as_str()),
        (StatusCode::OK, Some("pending_approval")),
        "{st}"
    );

    // The requester is told why (the page names them anyway); a
    // non-approver only "not allowed". Neither learns the approvers.
    for who in ["bob", "alice"] {
        let (s, e) = t
            .post(
                &format!("/v1/requests/{id}/decisions"),
                &json!({"user": who, "verdict": "approve", "comment": ""}),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("lead1") && !message.contains("lead2"),
            "an unauthenticated caller learns no approvers: {message}"
        );
        if who == "bob" {
            assert_eq!(message, "not allowed; nothing was created");
        }
    }
    let refused = records(&t, "approval_refused");
    assert_eq!(actor(&refused[0]), claim("bob"));
    assert_eq!(actor(&refused[1]), claim("alice"));

    // A name nobody enrolled (or not in the config) writes no record.
    let before = t.audit_count();
    let (s, e) = t
        .post(
            &format!("/v1/requests/{id}/decisions"),
            &json!({"user": "nobody", "verdict": "approve", "comment": ""}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_enrolled")),
        "{e}"
    );
    assert_eq!(t.audit_count(), before, "a stranger's name is not audited");
}
