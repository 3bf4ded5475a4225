//! A security officer whose own access was revoked (session 11's review):
//! blocked, they revoke nobody — before or after their touch — so a
//! revoked insider or the thief of their key cannot block everyone else.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::TestCa;
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use jit_ssh_audit::Actor;

/// `who` asks to revoke every certificate of `target`; the create answer.
async fn ask(t: &TestCa, who: &str, target: &str) -> (StatusCode, Value) {
    t.post(
        "/v1/revocations",
        &json!({"user": who, "target": {"user": target}, "reason": "incident 9"}),
    )
    .await
}

/// `who` revokes `target` and confirms with `key`: the final state.
async fn revoke(t: &TestCa, who: &str, key: &mut SoftPasskey, target: &str) -> Value {
    let (s, created) = ask(t, who, target).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let (s, done, _) = t
        .confirm("revocations", created["id"].as_str().unwrap(), key)
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    done
}

fn blocked(t: &TestCa, user: &str) -> bool {
    // enable_user answers whether the user was blocked (and unblocks).
    t.ca.enable_user(user, Actor::System).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_security_officer_revokes_nobody() {
    let t = TestCa::with_policy(
        "",
        "\n[[users]]\nname = \"sec2\"\ngroups = [\"sre\"]\nroles = [\"security\"]\n",
    );
    let mut sec = t.enroll("sec").await;
    let mut sec2 = t.enroll("sec2").await;
    let _alice = t.enroll("alice").await;

    // sec2 asks to revoke alice, then is revoked by sec before touching.
    let (s, pending) = ask(&t, "sec2", "alice").await;
    assert_eq!(s, StatusCode::CREATED, "{pending}");
    assert_eq!(
        revoke(&t, "sec", &mut sec, "sec2").await["status"],
        "revoked"
    );

    let (s, done, _) = t
        .confirm("revocations", pending["id"].as_str().unwrap(), &mut sec2)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("revoked"),
        "{done}"
    );
    // A new one is refused at once.
    let (s, e) = ask(&t, "sec2", "sec").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("user_blocked")),
        "{e}"
    );
    assert!(!blocked(&t, "alice"), "a blocked officer blocked alice");
    assert!(!blocked(&t, "sec"), "a blocked officer blocked sec");
}
