//! What an attacker with a replayed request, someone else's ceremony, a
//! stolen credential or a malformed body can do: nothing, and nothing
//! changes.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{TestCa, ORIGIN};
use jit_ssh_audit::AuditLog;
use serde_json::{json, Value};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::Url;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("(no error body)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_assertion_is_refused() {
    let t = TestCa::new();
    let mut key = t.enroll("alice").await;
    let (_, created) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let id = created["id"].as_str().unwrap();
    let (s, _, assertion) = t.touch(id, &mut key).await;
    assert_eq!(s, StatusCode::OK);
    let issued = t.audit_count();

    // The same assertion again: the ceremony state is gone.
    let (s, e) = t
        .post(&format!("/v1/requests/{id}/mfa/finish"), &assertion)
        .await;
    assert_eq!((s, code(&e)), (StatusCode::UNAUTHORIZED, "mfa_failed"));

    // Replayed against a fresh ceremony of a second request: its challenge differs.
    let (_, second) = t.request("alice", "db-2.dev", "oncall", "5m").await;
    let id2 = second["id"].as_str().unwrap();
    let _ = t.mfa_challenge(id2).await;
    let (s, e) = t
        .post(&format!("/v1/requests/{id2}/mfa/finish"), &assertion)
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNAUTHORIZED, "mfa_failed"),
        "{e}"
    );
    let (_, state) = t
        .get(&format!("/v1/requests/{id2}"), second["secret"].as_str())
        .await;
    assert_eq!(state["status"], "pending_mfa");
    // Only the new request and the failures were recorded; nothing issued.
    let certs = t
        .audit
        .query(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|r| matches!(r.event, jit_ssh_audit::Event::CertificateIssued(_)))
        .count();
    assert_eq!(certs, 1);
    assert!(t.audit_count() > issued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_requests_ceremony_cannot_finish_this_one() {
    let t = TestCa::new();
    let mut key = t.enroll("alice").await;
    let (_, a) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let (_, b) = t.request("alice", "db-9.dev", "oncall", "5m").await;
    let (ida, idb) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let _challenge_a = t.mfa_challenge(ida).await;
    let challenge_b = t.mfa_challenge(idb).await;
    // A genuine assertion for B's challenge, posted to A.
    let for_b = key
        .do_authentication(Url::parse(ORIGIN).unwrap(), challenge_b)
        .unwrap();
    let (s, e) = t
        .post(
            &format!("/v1/requests/{ida}/mfa/finish"),
            &serde_json::to_value(&for_b).unwrap(),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNAUTHORIZED, "mfa_failed"),
        "{e}"
    );
    // A's ceremony was spent by that attempt (single use): A needs a new start.
    let (s, e) = t
        .post(
            &format!("/v1/requests/{ida}/mfa/finish"),
            &serde_json::to_value(&for_b).unwrap(),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::UNAUTHORIZED, "mfa_failed"));
    for (id, secret) in [(ida, a["secret"].as_str()), (idb, b["secret"].as_str())] {
        let (_, st) = t.get(&format!("/v1/requests/{id}"), secret).await;
        assert_eq!(st["status"], "pending_mfa");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_credential_is_refused() {
    let t = TestCa::new();
    let mut alice = t.enroll("alice").await;
    let _bob = t.enroll("bob").await;
    // Alice asks for access as herself, then someone tries to approve a
    // request made in bob's name with alice's key.
    let (_, mine) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let alice_cred = t
        .mfa_challenge(mine["id"].as_str().unwrap())
        .await
        .public_key
        .allow_credentials;
    let (_, theirs) = t.request("bob", "db-1.dev", "oncall", "5m").await;
    let id = theirs["id"].as_str().unwrap();
    let mut challenge = t.mfa_challenge(id).await;
    // Bob's ceremony only allows bob's credential; point it at alice's so
    // her authenticator signs bob's challenge.
    challenge.public_key.allow_credentials = alice_cred;
    let forged = alice
        .do_authentication(Url::parse(ORIGIN).unwrap(), challenge)
        .unwrap();
    let (s, e) = t
        .post(
            &format!("/v1/requests/{id}/mfa/finish"),
            &serde_json::to_value(&forged).unwrap(),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNAUTHORIZED, "mfa_failed"),
        "{e}"
    );
    let (_, st) = t
        .get(&format!("/v1/requests/{id}"), theirs["secret"].as_str())
        .await;
    assert_eq!(st["status"], "pending_mfa");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_request_cannot_be_approved() {
    let t = TestCa::with_limits("request_ttl = \"1s\"");
    let mut key = t.enroll("alice").await;
    let (_, created) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let id = created["id"].as_str().unwrap();
    let challenge = t.mfa_challenge(id).await;
    t.clock.advance(std::time::Duration::from_secs(2));
    let assertion = key
        .do_authentication(Url::parse(ORIGIN).unwrap(), challenge)
        .unwrap();
    let (s, e) = t
        .post(
            &format!("/v1/requests/{id}/mfa/finish"),
            &serde_json::to_value(&assertion).unwrap(),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "wrong_state"), "{e}");
    let (_, st) = t
        .get(&format!("/v1/requests/{id}"), created["secret"].as_str())
        .await;
    assert_eq!(st["status"], "expired");
    assert!(st.get("certificate").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_request_needs_its_secret() {
    let t = TestCa::new();
    let _ = t.enroll("alice").await;
    let (_, created) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let id = created["id"].as_str().unwrap();
    for secret in [None, Some("wrong"), Some(&"0".repeat(64)[..])] {
        let (s, e) = t.get(&format!("/v1/requests/{id}"), secret).await;
        assert_eq!((s, code(&e)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    }
    let (s, e) = t
        .get(
            &format!("/v1/requests/{}", "f".repeat(32)),
            created["secret"].as_str(),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_a_clear_4xx_and_change_nothing() {
    let t = TestCa::new();
    let _ = t.enroll("alice").await;
    let before = t.audit_count();
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let good = json!({
        "user": "alice", "host": "db-1.dev", "account": "oncall", "ttl": "5m",
        "reason": "r", "public_key": key.public_key().to_openssh().unwrap(),
    });
    let with = |field: &str, value: Value| {
        let mut v = good.clone();
        v[field] = value;
        v
    };
    let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDT6xxxxxxxxxxxxxxxxxxxxxxxx user";
    let cases: Vec<(Value, &str)> = vec![
        (with("admin", json!(true)), "invalid_request"),
        (with("ttl", json!(5)), "invalid_request"),
        (with("host", json!("db-1.dev,db-2.dev")), "invalid_field"),
        (with("host", json!("db 1.dev")), "invalid_field"),
        (
            with("account", json!("root\nAuthorizedKeysFile")),
            "invalid_field",
        ),
        (with("account", json!("-oProxyCommand")), "invalid_field"),
        (with("user", json!("alice:admin")), "invalid_field"),
        (with("reason", json!("")), "invalid_field"),
        (with("ttl", json!("0s")), "invalid_field"),
        (with("ttl", json!("2h")), "invalid_field"),
        (with("ttl", json!("soon")), "invalid_field"),
        (with("public_key", json!("not a key")), "invalid_public_key"),
        (with("public_key", json!(rsa)), "invalid_public_key"),
        (
            with(
                "public_key",
                json!(format!(
                    "{}\nssh-ed25519 AAAA",
                    key.public_key().to_openssh().unwrap()
                )),
            ),
            "invalid_public_key",
        ),
    ];
    for (body, want) in cases {
        let (s, e) = t.post("/v1/requests", &body).await;
        assert_eq!(
            (s, code(&e)),
            (StatusCode::BAD_REQUEST, want),
            "{body}: {e}"
        );
        assert!(e["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let raw = |body: Body, ctype: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/v1/requests")
            .header(header::CONTENT_TYPE, ctype)
            .body(body)
            .unwrap()
    };
    let (s, _, e) = t
        .send(raw(
            Body::from("{\"user\": \"alice\", "),
            "application/json",
        ))
        .await;
    assert_eq!((s, code(&e)), (StatusCode::BAD_REQUEST, "invalid_request"));
    let (s, _, e) = t
        .send(raw(Body::from(good.to_string()), "text/plain"))
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let big = format!("{{\"user\": \"{}\"}}", "a".repeat(20_000));
    let (s, _, e) = t.send(raw(Body::from(big), "application/json")).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let (s, e) = t
        .post(
            &format!("/v1/requests/{}/mfa/finish", "a".repeat(32)),
            &json!({"id": 1}),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::BAD_REQUEST, "invalid_request"));
    let (s, e) = t.post("/v1/enroll/nope/finish", &json!({})).await;
    assert_eq!((s, code(&e)), (StatusCode::BAD_REQUEST, "invalid_request"));
    let (s, e) = t.post("/v1/enroll/nope/start", &json!({})).await;
    assert_eq!((s, code(&e)), (StatusCode::GONE, "invite_invalid"));
    let (s, e) = t.get("/v1/nothing-here", None).await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "not_found"));

    assert_eq!(
        t.audit_count(),
        before,
        "a refused request changed the audit log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_creation_is_rate_limited_per_address() {
    // Per-user and per-resource budgets: see server_lockout.rs.
    let t = TestCa::with_limits("requests_per_minute_per_address = 4");
    let _ = t.enroll("alice").await;
    let mut last = (StatusCode::OK, axum::http::HeaderMap::new());
    for _ in 0..6 {
        // Garbage counts too: floods are limited before parsing the names.
        let req = Request::builder()
            .method(Method::POST)
            .uri("/v1/requests")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"user": "x", "host": "h", "account": "a", "ttl": "1m", "reason": "r", "public_key": "k"})
                    .to_string(),
            ))
            .unwrap();
        let (s, headers, _) = t.send(req).await;
        last = (s, headers);
    }
    assert_eq!(last.0, StatusCode::TOO_MANY_REQUESTS);
    assert!(last.1.get(header::RETRY_AFTER).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_works_once() {
    let t = TestCa::new();
    let link =
        t.ca.invite("alice", &[], jit_ssh_audit::Actor::System)
            .unwrap();
    let token = link.url.rsplit('/').next().unwrap();
    let mut k1 = webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true);
    let mut k2 = webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true);
    // Two registrations started from the same link: a second start replaces
    // the first ceremony, and only one registration can ever finish.
    let r1 = t.register(token, &mut k1).await;
    let r2 = t.register(token, &mut k2).await;
    let (s, e) = t.finish_enroll(token, &r1).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNAUTHORIZED, "mfa_failed"),
        "{e}"
    );
    // Any finish attempt spends the ceremony, so the failed one above
    // also spent the live one: the genuine registration must start again.
    assert_eq!(
        t.finish_enroll(token, &r2).await.0,
        StatusCode::UNAUTHORIZED
    );
    let r3 = t.register(token, &mut k2).await;
    let (s, done) = t.finish_enroll(token, &r3).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["credentials"], 1);
    assert_eq!(
        t.finish_enroll(token, &r3).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, e) = t
        .post(&format!("/v1/enroll/{token}/start"), &json!({}))
        .await;
    assert_eq!((s, code(&e)), (StatusCode::GONE, "invite_invalid"));
    let (s, _) = t.get(&format!("/v1/enroll/{token}"), None).await;
    assert_eq!(s, StatusCode::GONE);
}

/// The audit log refuses certificate records (a full disk, say).
fn refuses_certificates(real: std::sync::Arc<dyn AuditLog>) -> std::sync::Arc<dyn AuditLog> {
    std::sync::Arc::new(common::AppendHook {
        inner: real,
        before: |event: &jit_ssh_audit::Event| {
            if matches!(event, jit_ssh_audit::Event::CertificateIssued(_)) {
                return Err(common::refused_append());
            }
            Ok(())
        },
        on_ready: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_certificate_when_the_audit_log_cannot_record_it() {
    let t = TestCa::build("", refuses_certificates);
    let mut key = t.enroll("alice").await;
    let (_, created) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let id = created["id"].as_str().unwrap();
    let (s, e, _) = t.touch(id, &mut key).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        "{e}"
    );
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nothing was issued"));
    let (_, state) = t
        .get(&format!("/v1/requests/{id}"), created["secret"].as_str())
        .await;
    assert_eq!(state["status"], "pending_mfa");
    assert!(state.get("certificate").is_none(), "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_cannot_be_approved() {
    let t = TestCa::new();
    let mut key = t.enroll("alice").await;
    let (_, created) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let id = created["id"].as_str().unwrap();
    let challenge = t.mfa_challenge(id).await;
    let del = |secret: &str| {
        Request::builder()
            .method(Method::DELETE)
            .uri(format!("/v1/requests/{id}"))
            .header(header::AUTHORIZATION, format!("Bearer {secret}"))
            .body(Body::empty())
            .unwrap()
    };
    let (s, _, e) = t.send(del("wrong")).await;
    assert_eq!((s, code(&e)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, _, st) = t.send(del(created["secret"].as_str().unwrap())).await;
    assert_eq!(
        (s, st["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let assertion = key
        .do_authentication(Url::parse(ORIGIN).unwrap(), challenge)
        .unwrap();
    let (s, e) = t
        .post(
            &format!("/v1/requests/{id}/mfa/finish"),
            &serde_json::to_value(&assertion).unwrap(),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "wrong_state"), "{e}");
}
