//! Approvals after the operator changed the policy (session 11's review):
//! a request waits up to `approval_ttl` for approvers, and the CA may be
//! restarted with a new config meanwhile. The approval that comes later is
//! judged by the policy in force then: a requester removed from the
//! config gets nothing, and an approver removed from the approvers'
//! groups no longer counts.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{config_text, TestCa};
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use jit_ssh_audit::{AuditLog, AuditQuery};

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
    let (s, done, _) = t
        .confirm("decisions", created["id"].as_str().unwrap(), key)
        .await;
    (s, done)
}

/// The same CA restarted on its data with `config`.
fn restart(t: TestCa, config: &str) -> TestCa {
    let TestCa {
        dir,
        ca,
        router,
        audit,
        ..
    } = t;
    drop((ca, router, audit));
    TestCa::on_dir_with_config(dir, config)
}

/// bob asks for postgres on db-1.prod (two approvals from leads), lead1
/// approves; (the CA, request id, secret, bob's, lead1's, lead2's keys).
async fn half_approved() -> (TestCa, String, String, [SoftPasskey; 3]) {
    let t = TestCa::on_dir_with_config(tempfile::tempdir().unwrap(), &config_text(""));
    let mut bob = t.enroll("bob").await;
    let mut lead1 = t.enroll("lead1").await;
    let lead2 = t.enroll("lead2").await;
    let (_, created) = t.request("bob", "db-1.prod", "postgres", "5m").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(t.touch(&id, &mut bob).await.0, StatusCode::OK);
    let (_, d) = approve(&t, "lead1", &mut lead1, &id).await;
    assert_eq!(d["status"], "recorded", "{d}");
    (t, id, secret, [bob, lead1, lead2])
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_removed_from_the_config_gets_nothing_from_later_approvals() {
    let (t, id, secret, [_, _, mut lead2]) = half_approved().await;
    let without_bob = config_text("").replace(
        "[[users]]\nname = \"bob\"\ngroups = [\"sre\"]\nroles = [\"engineer\"]\n",
        "",
    );
    assert!(!without_bob.contains("\"bob\""));
    let t = restart(t, &without_bob);

    let (s, d) = approve(&t, "lead2", &mut lead2, &id).await;
    assert_eq!(
        (s, d["status"].as_str()),
        (StatusCode::OK, Some("refused")),
        "{d}"
    );
    assert!(
        d["outcome"].as_str().unwrap().contains("no longer allows"),
        "{d}"
    );
    let st = t.get(&format!("/v1/requests/{id}"), Some(&secret)).await.1;
    assert_eq!(st["status"], "pending_approval", "{st}");
    assert_eq!(
        issued(&t, &id),
        0,
        "a certificate for a user the policy dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_removed_from_the_approvers_groups_no_longer_counts() {
    let (t, id, secret, [_, _, mut lead2]) = half_approved().await;
    // lead2 moves to another team.
    let moved = config_text("").replace(
        "name = \"lead2\"\ngroups = [\"leads\"]",
        "name = \"lead2\"\ngroups = [\"web\"]",
    );
    assert_ne!(moved, config_text(""));
    let t = restart(t, &moved);

    // Nothing waits for lead2 any more, on the start page either.
    let token = t.sign_in("lead2", &mut lead2).await;
    let (s, list) = t.get("/v1/requests", Some(&token)).await;
    assert_eq!((s, list["requests"].clone()), (StatusCode::OK, json!([])));
    let (s, d) = approve(&t, "lead2", &mut lead2, &id).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{d}");
    let st = t.get(&format!("/v1/requests/{id}"), Some(&secret)).await.1;
    assert_eq!(st["status"], "pending_approval", "{st}");
    assert_eq!(issued(&t, &id), 0, "an ex-approver's approval issued");
}
