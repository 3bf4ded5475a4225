//! `GET /v1/reach` (`jit-ssh hosts`) through the real router with soft
//! passkeys: only a signed-in user, only about themselves, a bad pattern
//! is a clear 400, and — the point of it — each row's "approval now" is
//! what a real request for a host of that row gets after the touch.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::TestCa;
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

/// Besides the usual policy: an on-call rule with no fallback (denied
/// when not on call) and one that allows break-glass instead.
const EXTRA_POLICY: &str = r#"
[host_groups.batch]
hosts = ["*.batch"]
accounts = ["batch"]

[host_groups.edge]
hosts = ["edge-?.prod"]
accounts = ["edge"]

[[rules]]
groups = ["sre"]
host_groups = ["batch"]
max_ttl = "10m"
approval = "oncall"
schedule = "web"

[[rules]]
groups = ["sre"]
host_groups = ["edge"]
max_ttl = "10m"
approval = "oncall"
schedule = "web"
layers = ["primary"]
break_glass = true
break_glass_max_ttl = "5m"
"#;

/// Each agreement test makes about twenty requests in a few seconds.
fn reach_ca() -> TestCa {
    TestCa::with_policy("requests_per_minute_per_user = 100", EXTRA_POLICY)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// A host name a pattern covers.
fn host_of(pattern: &str) -> String {
    pattern.replace('*', "x1").replace('?', "7")
}

async fn reach(t: &TestCa, token: &str, query: &str) -> (StatusCode, Value) {
    t.get(&format!("/v1/reach{query}"), Some(token)).await
}

/// Asks for `host` as `account`, touches, and returns the state after it.
async fn request_and_touch(
    t: &TestCa,
    key: &mut SoftPasskey,
    user: &str,
    host: &str,
    account: &str,
    ttl_secs: u64,
    break_glass: bool,
) -> Value {
    let pk =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let (s, created) = t
        .post(
            "/v1/requests",
            &json!({
                "user": user, "host": host, "account": account,
                "ttl": jit_ssh_proto::format_duration(Duration::from_secs(ttl_secs)),
                "reason": "checking the preview", "break_glass": break_glass,
                "public_key": pk.public_key().to_openssh().unwrap(),
            }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (s, _, _) = t.touch(id, key).await;
    assert_eq!(s, StatusCode::OK);
    let secret = created["secret"].as_str().unwrap();
    t.get(&format!("/v1/requests/{id}"), Some(secret)).await.1
}

#[tokio::test]
async fn asking_needs_an_active_sign_in() {
    let t = reach_ca();
    let mut key = t.enroll("bob").await;
    let (s, v) = t.get("/v1/reach", None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "unauthorized"),
        "{v}"
    );
    let (s, _) = reach(&t, "not.a-session", "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A sign-in not yet confirmed by the touch is no session.
    let (_, created) = t.post("/v1/sessions", &json!({"user": "bob"})).await;
    let pending = format!(
        "{}.{}",
        created["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap()
    );
    let (s, _) = reach(&t, &pending, "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let token = t.sign_in("bob", &mut key).await;
    let (s, v) = reach(&t, &token, "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user"], "bob");
}

#[tokio::test]
async fn users_ask_only_about_themselves() {
    let t = reach_ca();
    let mut key = t.enroll("bob").await;
    let token = t.sign_in("bob", &mut key).await;
    let (s, v) = reach(&t, &token, "?user=alice").await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("signed in as bob") && msg.contains("alice"),
        "{msg}"
    );
    assert!(v.get("rows").is_none());
    // Naming oneself is fine, and the answer is about the session's user.
    let (s, v) = reach(&t, &token, "?user=bob").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user"], "bob");
}

#[tokio::test]
async fn a_malformed_pattern_is_a_clear_400_and_changes_nothing() {
    let t = reach_ca();
    let mut key = t.enroll("bob").await;
    let token = t.sign_in("bob", &mut key).await;
    let before = t.audit_count();
    for bad in ["db%3Brm%20-rf", "", "a,b", &"a".repeat(300)] {
        let (s, v) = reach(&t, &token, &format!("?pattern={bad}")).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "invalid_field"),
            "{bad}: {v}"
        );
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with("pattern: host pattern"), "{msg}");
    }
    let (s, v) = reach(&t, &token, "?host=db-1.prod").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{v}"
    );
    // Asking is a read, like reading one's own audit records: the
    // sign-in is recorded, the questions are not.
    let (s, _) = reach(&t, &token, "?pattern=*.prod").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(t.audit_count(), before);
}

#[tokio::test]
async fn a_pattern_keeps_the_groups_it_names_or_covers() {
    let t = reach_ca();
    let mut key = t.enroll("bob").await;
    let token = t.sign_in("bob", &mut key).await;
    let groups = |v: &Value| -> Vec<String> {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["host_group"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, all) = reach(&t, &token, "").await;
    assert_eq!(
        groups(&all),
        ["dev", "pinned", "prod-db", "web", "batch", "edge"]
    );
    let (_, prod) = reach(&t, &token, "?pattern=*.prod").await;
    assert_eq!(groups(&prod), ["prod-db", "web", "edge"]);
    let (_, one) = reach(&t, &token, "?pattern=DB-1.prod").await;
    assert_eq!(groups(&one), ["prod-db"]);
    let (_, none) = reach(&t, &token, "?pattern=*.nowhere").await;
    assert_eq!(groups(&none), Vec::<String>::new());
    // A user in no rule's groups may ask, and hears nothing is reachable.
    let mut aud = t.enroll("aud").await;
    let aud_token = t.sign_in("aud", &mut aud).await;
    let (s, v) = reach(&t, &aud_token, "").await;
    assert_eq!((s, groups(&v).len()), (StatusCode::OK, 0), "{v}");
}

/// For every row of `user`'s preview: a real request for a host of the
/// row, as its first account, at its TTL cap, ends as the row said.
async fn preview_matches_requests(t: &TestCa, user: &str, key: &mut SoftPasskey) -> Vec<Value> {
    let token = t.sign_in(user, key).await;
    let (s, v) = reach(t, &token, "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let rows = v["rows"].as_array().unwrap().clone();
    for row in &rows {
        let host = host_of(row["hosts"][0].as_str().unwrap());
        let account = row["accounts"][0].as_str().unwrap();
        let ttl = row["max_ttl_secs"].as_u64().unwrap();
        let state = request_and_touch(t, key, user, &host, account, ttl, false).await;
        let approval = &row["approval"];
        let what = format!("{user} {host} as {account}: preview {approval}, request {state}");
        match approval["kind"].as_str().unwrap() {
            "auto" | "on_call" => assert_eq!(state["status"], "issued", "{what}"),
            "approvers" => {
                assert_eq!(state["status"], "pending_approval", "{what}");
                assert_eq!(state["approval"]["needed"], approval["needed"], "{what}");
                assert_eq!(
                    state["approval"]["approvers"], approval["approvers"],
                    "{what}"
                );
                assert_eq!(
                    state["approval"]["not_on_call"].as_str(),
                    approval["not_on_call"].as_str(),
                    "{what}"
                );
            }
            "denied" | "break_glass_only" => {
                assert_eq!(state["status"], "denied", "{what}");
                assert_eq!(state["reason"], approval["reason"], "{what}");
            }
            other => panic!("unknown approval kind {other}"),
        }
        if approval["kind"] == "break_glass_only" {
            let cap = row["break_glass_max_ttl_secs"].as_u64().unwrap();
            let state = request_and_touch(t, key, user, &host, account, cap, true).await;
            assert_eq!(state["status"], "issued", "{what}: break-glass {state}");
        }
        // Over the cap is never what the row promised.
        let over = request_and_touch(t, key, user, &host, account, ttl + 60, false).await;
        assert_eq!(over["status"], "denied", "{what}: over the cap {over}");
    }
    rows
}

fn kinds(rows: &[Value]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| {
            (
                r["host_group"].as_str().unwrap().to_owned(),
                r["approval"]["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn each_row_is_what_a_real_request_gets_off_call() {
    let t = reach_ca();
    let mut bob = t.enroll("bob").await;
    let rows = preview_matches_requests(&t, "bob", &mut bob).await;
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // Every kind of answer is covered, so the agreement above means something.
    assert_eq!(
        kinds(&rows),
        pairs(&[
            ("dev", "auto"),
            ("pinned", "auto"),
            ("prod-db", "approvers"),
            ("web", "approvers"),
            ("batch", "denied"),
            ("edge", "break_glass_only"),
        ])
    );
    assert_eq!(rows[2]["approval"]["needed"], 2);
    assert_eq!(rows[2]["approval"]["approvers"], json!(["lead1", "lead2"]));
    assert_eq!(rows[3]["approval"]["not_on_call"], "web");
    assert_eq!(rows[0]["accounts"], json!(["oncall", "bob"]));
    assert_eq!(rows[0]["max_ttl_secs"], 900);
    assert_eq!(rows[5]["break_glass_max_ttl_secs"], 300);
}

#[tokio::test]
async fn each_row_is_what_a_real_request_gets_on_call() {
    let t = reach_ca();
    let mut alice = t.enroll("alice").await;
    let rows = preview_matches_requests(&t, "alice", &mut alice).await;
    let web = rows.iter().find(|r| r["host_group"] == "web").unwrap();
    assert_eq!(web["approval"]["kind"], "on_call", "{web}");
    assert_eq!(web["approval"]["schedule"], "web");
    assert_eq!(web["approval"]["layer"], "primary");
    assert!(web["approval"]["until"].as_str().unwrap().ends_with('Z'));
    let edge = rows.iter().find(|r| r["host_group"] == "edge").unwrap();
    assert_eq!(edge["approval"]["kind"], "on_call", "{edge}");
}
