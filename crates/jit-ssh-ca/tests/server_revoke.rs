//! Revocation as a confirmed action: only `security` may revoke (refusals
//! audited), the revoker's own WebAuthn touch confirms it, and the result
//! is in the published KRL; a user revocation blocks new certificates
//! until an admin re-enables the user.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{TestCa, ORIGIN};
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use jit_ssh_audit::{Actor, AuditLog, Event};
use jit_ssh_krl::Krl;

async fn issue(t: &TestCa, key: &mut SoftPasskey, user: &str, host: &str) -> ssh_key::Certificate {
    let (_, created) = t.request(user, host, "oncall", "10m").await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(t.touch(id, key).await.0, StatusCode::OK);
    let (_, state) = t
        .get(&format!("/v1/requests/{id}"), created["secret"].as_str())
        .await;
    ssh_key::Certificate::from_openssh(state["certificate"]["certificate"].as_str().unwrap())
        .unwrap()
}

/// Asks to revoke and confirms with `key`; returns the final state.
async fn revoke(
    t: &TestCa,
    user: &str,
    key: &mut SoftPasskey,
    target: Value,
) -> (StatusCode, Value, Value) {
    let (s, created) = t
        .post(
            "/v1/revocations",
            &json!({"user": user, "target": target, "reason": "incident 7"}),
        )
        .await;
    if s != StatusCode::CREATED {
        return (s, created, Value::Null);
    }
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["mfa_url"], format!("{ORIGIN}/revoke/{id}"));
    t.confirm("revocations", id, key).await
}

async fn krl(t: &TestCa) -> Krl {
    Krl::decode(&t.ca.krl().unwrap().bytes).unwrap()
}

fn refusals(t: &TestCa) -> usize {
    t.audit
        .query(&Default::default())
        .unwrap()
        .iter()
        .filter(|r| matches!(r.event, Event::RevocationRefused(_)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_security_revokes_after_a_touch() {
    let t = TestCa::new();
    let mut alice = t.enroll("alice").await;
    let mut bob = t.enroll("bob").await;
    let mut sec = t.enroll("sec").await;
    let a1 = issue(&t, &mut alice, "alice", "db-1.dev").await;
    let b1 = issue(&t, &mut bob, "bob", "db-1.dev").await;

    // An engineer may not revoke: 403, and the refusal is audited.
    let (s, e, _) = revoke(&t, "alice", &mut alice, json!({"serial": b1.serial()})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{e}"
    );
    assert_eq!(refusals(&t), 1);

    // Security revokes alice's certificate by serial.
    let (s, state, assertion) = revoke(&t, "sec", &mut sec, json!({"serial": a1.serial()})).await;
    assert_eq!(s, StatusCode::OK, "{state}");
    assert_eq!(state["status"], "revoked");
    assert_eq!(state["serials"], json!([a1.serial().to_string()]));
    let k = krl(&t).await;
    assert!(k.is_cert_revoked(&a1) && !k.is_cert_revoked(&b1));
    // The confirmation cannot be replayed.
    let id = state["id"].as_str().unwrap();
    let (s, e) = t
        .post(&format!("/v1/revocations/{id}/mfa/finish"), &assertion)
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("mfa_failed"))
    );

    // Again, or something unknown: refused with a reason, audited.
    let (_, state, _) = revoke(&t, "sec", &mut sec, json!({"serial": a1.serial()})).await;
    assert_eq!(state["status"], "refused");
    assert!(
        state["outcome"]
            .as_str()
            .unwrap()
            .contains("nothing to revoke"),
        "{state}"
    );
    assert_eq!(refusals(&t), 2);

    // By grant (the grant is the request id in the key id).
    let b2 = issue(&t, &mut bob, "bob", "db-2.dev").await;
    let grant = b2.key_id().split(':').nth(2).unwrap().to_owned();
    let (_, state, _) = revoke(&t, "sec", &mut sec, json!({"grant": grant})).await;
    assert_eq!(state["serials"], json!([b2.serial().to_string()]));
    assert!(krl(&t).await.is_cert_revoked(&b2));
    assert!(!krl(&t).await.is_cert_revoked(&b1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_revocation_blocks_new_certificates_until_re_enabled() {
    let t = TestCa::new();
    let mut alice = t.enroll("alice").await;
    let mut sec = t.enroll("sec").await;
    let a1 = issue(&t, &mut alice, "alice", "db-1.dev").await;
    let a2 = issue(&t, &mut alice, "alice", "db-2.dev").await;
    // A request made before the revocation, confirmed after it.
    let (_, pending) = t.request("alice", "db-3.dev", "oncall", "5m").await;

    let (_, state, _) = revoke(&t, "sec", &mut sec, json!({"user": "alice"})).await;
    assert_eq!(state["status"], "revoked");
    assert!(
        state["outcome"]
            .as_str()
            .unwrap()
            .contains("enable-user alice"),
        "{state}"
    );
    let k = krl(&t).await;
    assert!(k.is_cert_revoked(&a1) && k.is_cert_revoked(&a2));

    let (s, e) = t.request("alice", "db-4.dev", "oncall", "5m").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("user_blocked")),
        "{e}"
    );
    let id = pending["id"].as_str().unwrap();
    let (s, after, _) = t.touch(id, &mut alice).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(after["status"], "denied");
    assert!(
        after["decision"].as_str().unwrap().contains("blocked"),
        "{after}"
    );

    assert!(t.ca.enable_user("alice", Actor::System).unwrap());
    let a3 = issue(&t, &mut alice, "alice", "db-5.dev").await;
    assert!(!krl(&t).await.is_cert_revoked(&a3));
    assert!(
        krl(&t).await.is_cert_revoked(&a1),
        "re-enabling must not un-revoke"
    );
    assert!(!t.ca.enable_user("alice", Actor::System).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_revocation_requests_change_nothing() {
    let t = TestCa::new();
    let _ = t.enroll("sec").await;
    let before = t.audit_count();
    for body in [
        json!({"user": "sec", "target": {"serial": 0}, "reason": "r"}),
        json!({"user": "sec", "target": {"grant": "not-hex"}, "reason": "r"}),
        json!({"user": "sec", "target": {"user": "a,b"}, "reason": "r"}),
        json!({"user": "sec", "target": {"key_id": "other:1"}, "reason": "r"}),
        json!({"user": "sec", "target": {"everything": true}, "reason": "r"}),
        json!({"user": "sec", "target": {"serial": 5}, "reason": ""}),
    ] {
        let (s, e) = t.post("/v1/revocations", &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {e}");
    }
    let (s, e) = t
        .post(
            "/v1/revocations",
            &json!({"user": "nobody", "target": {"serial": 5}, "reason": "r"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_enrolled"))
    );
    assert_eq!(t.audit_count(), before);
}
