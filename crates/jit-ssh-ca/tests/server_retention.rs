//! Old state goes away: requests, sign-ins, revocations, decisions and
//! WebAuthn ceremonies are removed `limits.state_retention` after they
//! ended (the audit log keeps their history), and the approvers' list of
//! pending requests stays right.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use serde_json::json;

use common::TestCa;

const MIN: i64 = 60;

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_state_is_removed_after_the_retention_time() {
    // Requests wait 5 min for the touch, approvals 2 h; kept 1 h after.
    let t = TestCa::with_limits("state_retention = \"1h\"\napproval_ttl = \"2h\"");
    let start = now();
    let mut alice = t.enroll("alice").await;
    let mut lead1 = t.enroll("lead1").await;
    let mut sec = t.enroll("sec").await;

    // Issued (certificate valid 5 min).
    let (_, issued) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let (s, st, _) = t.touch(issued["id"].as_str().unwrap(), &mut alice).await;
    assert_eq!((s, st["status"].as_str()), (StatusCode::OK, Some("issued")));
    // Waiting for approvers (2 h).
    let (_, waiting) = t.request("alice", "db-1.prod", "postgres", "5m").await;
    let waiting_id = waiting["id"].as_str().unwrap();
    let (_, st, _) = t.touch(waiting_id, &mut alice).await;
    assert_eq!(st["status"], "pending_approval");
    // Never touched, with a ceremony started (5 min).
    let (_, untouched) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let _ = t.mfa_challenge(untouched["id"].as_str().unwrap()).await;
    // A revocation never confirmed (5 min), and lead1's sign-in (15 min).
    let (s, revocation) = t
        .post(
            "/v1/revocations",
            &json!({"user": "sec", "target": {"serial": 5}, "reason": "r"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{revocation}");
    let token = t.sign_in("lead1", &mut lead1).await;
    let _ = &mut sec;

    let pending = |token: String| {
        let t = &t;
        async move {
            let (s, v) = t.get("/v1/requests", Some(&token)).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(pending(token.clone()).await, vec![waiting_id.to_owned()]);
    let records_before = t.audit_count();

    // Within the retention time only what was never confirmed goes: the
    // expired ceremony, and the untouched request (anyone can create one;
    // its audit record stays).
    let p = t.ca.prune_state(start + 30 * MIN).unwrap();
    assert_eq!(
        (p.requests, p.sessions, p.revocations, p.ceremonies),
        (1, 0, 0, 1),
        "{p:?}"
    );
    let state_of = |id: &serde_json::Value, secret: &serde_json::Value| {
        let t = &t;
        let (id, secret) = (
            id.as_str().unwrap().to_owned(),
            secret.as_str().unwrap().to_owned(),
        );
        async move { t.get(&format!("/v1/requests/{id}"), Some(&secret)).await.0 }
    };
    assert_eq!(
        state_of(&issued["id"], &issued["secret"]).await,
        StatusCode::OK
    );

    // An hour after they ended: the issued request, the revocation and
    // the sign-in are gone too; the waiting request stays, and is still
    // listed for its approver (signed in again).
    let p = t.ca.prune_state(start + 80 * MIN).unwrap();
    assert_eq!((p.requests, p.sessions, p.revocations), (1, 1, 1), "{p:?}");
    assert_eq!(
        state_of(&issued["id"], &issued["secret"]).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        state_of(&untouched["id"], &untouched["secret"]).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.get("/v1/requests", Some(&token)).await.0,
        StatusCode::UNAUTHORIZED,
        "the pruned sign-in no longer works"
    );
    let token = t.sign_in("lead1", &mut lead1).await;
    assert_eq!(pending(token.clone()).await, vec![waiting_id.to_owned()]);
    assert_eq!(
        state_of(&waiting["id"], &waiting["secret"]).await,
        StatusCode::OK
    );

    // Once the approval time has run out and an hour more: gone too.
    let p = t.ca.prune_state(start + 4 * 60 * MIN).unwrap();
    assert!(p.requests >= 1, "{p:?}");
    assert_eq!(
        state_of(&waiting["id"], &waiting["secret"]).await,
        StatusCode::NOT_FOUND
    );
    // The audit log keeps every record (signing in again added some).
    assert!(t.audit_count() >= records_before);
}
