//! Nobody can spend a named user's budget without their key: work from
//! an unauthenticated caller is counted against the caller's address and
//! against the resource it touches, never against the user it names.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use common::TestCa;

/// Where the attacker sends from (the victim uses `t.client`).
const ATTACKER: &str = "198.51.100.66:5555";

async fn post_from(t: &TestCa, from: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let from: SocketAddr = from.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(from));
    let res = t.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn request_body(user: &str) -> Value {
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    json!({
        "user": user, "host": "db-1.dev", "account": "oncall", "ttl": "5m",
        "reason": "incident 42", "public_key": key.public_key().to_openssh().unwrap(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_named_after_a_user_do_not_lock_them_out() {
    let t = TestCa::with_limits(
        "requests_per_minute_per_user = 3\nrequests_per_minute_per_address = 1000",
    );
    let mut carol = t.enroll("carol").await;
    // The attacker creates many requests and sign-ins naming carol, from
    // their own address (whether these are refused does not matter).
    for _ in 0..10 {
        post_from(&t, ATTACKER, "/v1/requests", &request_body("carol")).await;
    }
    for _ in 0..5 {
        post_from(&t, ATTACKER, "/v1/sessions", &json!({"user": "carol"})).await;
    }
    // carol still gets her access and her sign-in, from her own address.
    let (s, created) = t.request("carol", "db-1.dev", "oncall", "5m").await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let (s, done, _) = t.touch(created["id"].as_str().unwrap(), &mut carol).await;
    assert_eq!(
        (s, done["status"].as_str()),
        (StatusCode::OK, Some("issued")),
        "{done}"
    );
    let _token = t.sign_in("carol", &mut carol).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceremonies_on_one_request_do_not_block_the_users_other_work() {
    let t = TestCa::with_limits(
        "requests_per_minute_per_user = 3\nrequests_per_minute_per_address = 1000",
    );
    let mut bob = t.enroll("bob").await;
    let (s, created) = post_from(&t, ATTACKER, "/v1/requests", &request_body("bob")).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(
            post_from(
                &t,
                ATTACKER,
                &format!("/v1/requests/{id}/mfa/start"),
                &json!({}),
            )
            .await
            .0,
        );
    }
    // The hammered request itself is limited...
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // ...but bob signs in and gets access as usual.
    let _token = t.sign_in("bob", &mut bob).await;
    let (s, mine) = t.request("bob", "db-1.dev", "oncall", "5m").await;
    assert_eq!(s, StatusCode::CREATED, "{mine}");
    let (s, done, _) = t.touch(mine["id"].as_str().unwrap(), &mut bob).await;
    assert_eq!(
        (s, done["status"].as_str()),
        (StatusCode::OK, Some("issued")),
        "{done}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_is_still_cut() {
    let t = TestCa::with_limits("requests_per_minute_per_address = 5");
    let _ = t.enroll("carol").await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            post_from(&t, ATTACKER, "/v1/requests", &request_body("carol"))
                .await
                .0,
        );
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
    // Sign-ins, revocations and ceremonies share the address budget.
    let (s, _) = post_from(&t, ATTACKER, "/v1/sessions", &json!({"user": "carol"})).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // Another address (carol's) is unaffected.
    let (s, v) = t.request("carol", "db-1.dev", "oncall", "5m").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_own_confirmations_are_limited() {
    // Only completed touches count against the user: here, two a minute.
    let t = TestCa::with_limits(
        "requests_per_minute_per_user = 2\nrequests_per_minute_per_address = 1000",
    );
    let mut alice = t.enroll("alice").await;
    let mut results = Vec::new();
    for _ in 0..3 {
        let (_, created) = t.request("alice", "db-1.dev", "oncall", "5m").await;
        let (s, v, _) = t.touch(created["id"].as_str().unwrap(), &mut alice).await;
        results.push((s, v["error"]["code"].as_str().map(str::to_owned)));
    }
    assert_eq!(results[0].0, StatusCode::OK);
    assert_eq!(results[1].0, StatusCode::OK);
    assert_eq!(
        results[2],
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited".into())),
        "{results:?}"
    );
}
