//! The edge of the API: every error the router gives — routing, method,
//! media type, size, query and path rejections, a body that comes too
//! slowly — is `{"error":{"code","message"}}` with a documented code; text
//! fields refuse characters that disguise them; names refuse `.`/`..`;
//! durations are never silent sums.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use common::TestCa;
use serde_json::{json, Value};

/// Every code in `jit_ssh_proto::error::code`.
const CODES: &[&str] = &[
    "invalid_request",
    "invalid_field",
    "invalid_public_key",
    "payload_too_large",
    "unsupported_media_type",
    "not_found",
    "unauthorized",
    "not_enrolled",
    "forbidden",
    "user_blocked",
    "wrong_state",
    "mfa_failed",
    "invite_invalid",
    "rate_limited",
    "internal",
    "method_not_allowed",
    "request_timeout",
];

/// Asserts the documented error shape and returns the code.
fn error_code(status: StatusCode, headers: &HeaderMap, body: &Value) -> String {
    assert!(
        headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.to_str().unwrap().starts_with("application/json")),
        "{status}: content type {:?}",
        headers.get(header::CONTENT_TYPE)
    );
    let parsed: jit_ssh_proto::error::ErrorBody = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("{status}: not the error shape ({e}): {body}"));
    assert!(!parsed.error.message.is_empty(), "{status}: empty message");
    assert!(
        CODES.contains(&parsed.error.code.as_str()),
        "{status}: undocumented code {:?}",
        parsed.error.code
    );
    parsed.error.code
}

fn req(method: Method, uri: &str, content_type: Option<&str>, body: Body) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.body(body).unwrap()
}

fn a_request(reason: &str, account: &str, ttl: &str) -> Value {
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    json!({
        "user": "alice", "host": "db-1.dev", "account": account, "ttl": ttl,
        "reason": reason, "public_key": key.public_key().to_openssh().unwrap(),
    })
}

#[tokio::test]
async fn every_router_error_has_the_json_shape() {
    let t = TestCa::new();
    let body = a_request("incident 42", "oncall", "5m").to_string();
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            req(Method::GET, "/no/such/route", None, Body::empty()),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            req(
                Method::PUT,
                "/v1/requests",
                Some("application/json"),
                Body::from(body.clone()),
            ),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            req(Method::DELETE, "/v1/ca-keys", None, Body::empty()),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            req(
                Method::GET,
                "/v1/requests/abc?wait=soon",
                None,
                Body::empty(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            req(Method::GET, "/v1/requests/abc?nope=1", None, Body::empty()),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            req(Method::GET, "/v1/requests/%FF%FE", None, Body::empty()),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            req(
                Method::POST,
                "/v1/requests",
                Some("application/json"),
                Body::from(vec![b' '; 20_000]),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            req(
                Method::POST,
                "/v1/requests",
                Some("application/json"),
                Body::from("{"),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (request, status, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (s, headers, body) = t.send(request).await;
        assert_eq!(s, status, "{what}: {body}");
        assert_eq!(error_code(s, &headers, &body), code, "{what}");
        if s == StatusCode::METHOD_NOT_ALLOWED {
            assert!(
                headers.contains_key(header::ALLOW),
                "{what}: no Allow header"
            );
        }
    }
}

#[tokio::test]
async fn only_application_json_is_taken() {
    let t = TestCa::new();
    for ct in [
        Some("application/evil+json"),
        Some("application/vnd.api+json"),
        Some("text/json"),
        Some("text/plain"),
        Some("application/jsonx"),
        None,
    ] {
        let body = a_request("incident 42", "oncall", "5m").to_string();
        let (s, headers, v) = t
            .send(req(Method::POST, "/v1/requests", ct, Body::from(body)))
            .await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}: {v}");
        assert_eq!(error_code(s, &headers, &v), "unsupported_media_type");
    }
    // Parameters and case are fine. (alice is not enrolled: the body was
    // read and judged, past the media type.)
    for ct in ["application/json; charset=utf-8", "Application/JSON"] {
        let body = a_request("incident 42", "oncall", "5m").to_string();
        let (s, _, v) = t
            .send(req(
                Method::POST,
                "/v1/requests",
                Some(ct),
                Body::from(body),
            ))
            .await;
        assert_ne!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}: {v}");
        assert_eq!(v["error"]["code"], "not_enrolled", "{ct}: {v}");
    }
}

#[tokio::test]
async fn disguised_reasons_dot_accounts_and_summed_durations_are_refused() {
    let t = TestCa::new();
    t.enroll("alice").await;
    let before = t.audit_count();
    let cases = [
        a_request("fix \u{202E}bd-1\u{202C}", "oncall", "5m"),
        a_request("fix\u{2066}x\u{2069}", "oncall", "5m"),
        a_request("ok\u{2028}certificate_issued for mallory", "oncall", "5m"),
        a_request("zero\u{200B}width", "oncall", "5m"),
        a_request("bom\u{FEFF}", "oncall", "5m"),
        a_request("esc\u{1B}[2J", "oncall", "5m"),
        a_request("incident 42", "..", "5m"),
        a_request("incident 42", ".", "5m"),
        a_request("incident 42", "oncall", "30m30m"),
        a_request("incident 42", "oncall", "1m1h"),
    ];
    for body in cases {
        let (s, v) = t.post("/v1/requests", &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"]["code"], "invalid_field", "{body}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            !message.chars().any(jit_ssh_proto::text::is_deceptive),
            "the refusal echoes a raw character: {message:?}"
        );
    }
    // Refused at the edge: nothing recorded.
    assert_eq!(t.audit_count(), before);
    // The ordinary request still works.
    let (s, v) = t
        .post(
            "/v1/requests",
            &a_request("incident 42 – Störung", "oncall", "5m"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn a_body_that_comes_too_slowly_is_answered_408_and_the_connection_closed() {
    let t = TestCa::with_limits("\n[connections]\nbody_timeout = \"1s\"\n");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
    // The first byte, then nothing (the sender is held open).
    tx.send(Ok(axum::body::Bytes::from_static(b"{")))
        .await
        .unwrap();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let start = Instant::now();
    let (s, headers, v) = t
        .send(req(
            Method::POST,
            "/v1/requests",
            Some("application/json"),
            Body::from_stream(stream),
        ))
        .await;
    let took = start.elapsed();
    drop(tx);
    assert_eq!(s, StatusCode::REQUEST_TIMEOUT, "{v}");
    assert_eq!(error_code(s, &headers, &v), "request_timeout");
    assert_eq!(headers.get(header::CONNECTION).unwrap(), "close");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}
