//! Confirmation pages bind to one kind of thing: a link for one kind
//! cannot be dressed up as another (`/mfa/..%2Fsessions%2FID`), each
//! summary says its kind and carries the match code the creator was
//! given, and a summary read without the secret tells only what the
//! person holding the link needs to recognise it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::TestCa;
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}

/// One live thing of each kind, with the answer its creator got.
struct Four {
    request: Value,
    revocation: Value,
    decision: Value,
    session: Value,
}

impl Four {
    /// (page route prefix, API collection, kind name, create answer).
    fn each(&self) -> [(&'static str, &'static str, &'static str, &Value); 4] {
        [
            ("approve", "requests", "access_request", &self.request),
            ("revoke", "revocations", "revocation", &self.revocation),
            ("decide", "decisions", "decision", &self.decision),
            ("signin", "sessions", "sign_in", &self.session),
        ]
    }
}

/// Alice's prod-db request waits for approvers; lead1 has asked to
/// approve it; sec has asked to revoke serial 5; aud has asked to sign in.
async fn four(t: &TestCa) -> (Four, SoftPasskey) {
    let mut alice = t.enroll("alice").await;
    t.enroll("lead1").await;
    t.enroll("sec").await;
    let aud = t.enroll("aud").await;
    let (s, request) = t.request("alice", "db-1.prod", "postgres", "5m").await;
    assert_eq!(s, StatusCode::CREATED, "{request}");
    let (s, touched, _) = t.touch(str_of(&request, "id"), &mut alice).await;
    assert_eq!(
        (s, str_of(&touched, "status")),
        (StatusCode::OK, "pending_approval"),
        "{touched}"
    );
    // The touch's answer is labelled like the summary.
    assert_eq!(str_of(&touched, "kind"), "access_request", "{touched}");
    assert_eq!(
        str_of(&touched, "match_code"),
        str_of(&request, "match_code")
    );
    let (s, decision) = t
        .post(
            &format!("/v1/requests/{}/decisions", str_of(&request, "id")),
            &json!({"user": "lead1", "verdict": "approve", "comment": "ok"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{decision}");
    let (s, revocation) = t
        .post(
            "/v1/revocations",
            &json!({"user": "sec", "target": {"serial": 5}, "reason": "lost laptop"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{revocation}");
    let (s, session) = t.post("/v1/sessions", &json!({"user": "aud"})).await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    (
        Four {
            request,
            revocation,
            decision,
            session,
        },
        aud,
    )
}

async fn session_status(t: &TestCa, created: &Value) -> String {
    let (s, v) = t
        .get(
            &format!("/v1/sessions/{}", str_of(created, "id")),
            Some(str_of(created, "secret")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    str_of(&v, "status").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_cannot_be_dressed_as_an_access_request_page() {
    let t = TestCa::new();
    let (four, _) = four(&t).await;
    let sid = str_of(&four.session, "id");
    let before = t.audit_count();

    // The reported attack and its spellings: encoded slashes and dots in
    // the page's id segment, and the bare id of another kind.
    for path in [
        format!("/mfa/..%2Fsessions%2F{sid}"),
        format!("/mfa/..%2fsessions%2f{sid}"),
        format!("/mfa/%2E%2E%2Fsessions%2F{sid}"),
        format!("/mfa/..%2F..%2Fv1%2Fsessions%2F{sid}"),
        format!("/mfa/{sid}%2F"),
        format!("/mfa/{sid}"),
        format!("/mfa/{}", sid.to_uppercase()),
        format!("/revoke/{sid}"),
        format!("/decide/{sid}"),
        format!("/approve/{sid}"),
        "/mfa/..".to_owned(),
        "/mfa/not-an-id".to_owned(),
        format!("/enroll/..%2Fsessions%2F{sid}"),
    ] {
        let (s, _) = t.get(&path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path} was served");
    }
    // The sign-in's own page is served.
    let (s, _) = t.get(&format!("/signin/{sid}"), None).await;
    assert_eq!(s, StatusCode::OK);

    // The API under another kind's name, or through encoded slashes,
    // knows no such thing and starts no ceremony.
    for path in [
        format!("/v1/requests/{sid}/summary"),
        format!("/v1/requests/{sid}/mfa/start"),
        format!("/v1/requests/..%2Fsessions%2F{sid}/mfa/start"),
        format!("/v1/revocations/{sid}/mfa/start"),
        format!("/v1/decisions/{sid}/mfa/start"),
    ] {
        let (s, v) = if path.ends_with("/summary") {
            t.get(&path, None).await
        } else {
            t.post(&path, &json!({})).await
        };
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    assert_eq!(session_status(&t, &four.session).await, "pending_mfa");
    assert_eq!(t.audit_count(), before, "something was recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_serves_only_ids_of_its_own_kind() {
    let t = TestCa::new();
    let (four, _) = four(&t).await;
    let request_id = str_of(&four.request, "id");
    for (page, _, kind, created) in four.each() {
        for (_, _, other_kind, other) in four.each() {
            let path = format!("/{page}/{}", str_of(other, "id"));
            let (s, _) = t.get(&path, None).await;
            let want = if kind == other_kind {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(s, want, "{path} ({other_kind} id on the {kind} page)");
        }
        // The link the creator was given is that page.
        let url = str_of(created, "mfa_url");
        if kind != "access_request" {
            assert!(
                url.ends_with(&format!("/{page}/{}", str_of(created, "id"))),
                "{url}"
            );
        }
    }
    // The requester's own page for an access request is /mfa/.
    let (s, _) = t.get(&format!("/mfa/{request_id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(str_of(&four.request, "mfa_url").ends_with(&format!("/mfa/{request_id}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_name_their_kind_and_show_the_creators_match_code() {
    let t = TestCa::new();
    let (four, _) = four(&t).await;
    let mut codes = Vec::new();
    for (_, collection, kind, created) in four.each() {
        let id = str_of(created, "id");
        let code = str_of(created, "match_code");
        assert!(
            code.len() == 7
                && code.as_bytes()[3] == b'-'
                && code
                    .chars()
                    .filter(|c| *c != '-')
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()),
            "{kind}: match code {code:?}"
        );
        let (s, summary) = t.get(&format!("/v1/{collection}/{id}/summary"), None).await;
        assert_eq!(s, StatusCode::OK, "{summary}");
        assert_eq!(str_of(&summary, "kind"), kind, "{summary}");
        assert_eq!(str_of(&summary, "id"), id, "{summary}");
        assert_eq!(str_of(&summary, "match_code"), code, "{kind}: {summary}");
        codes.push(code.to_owned());
    }
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 4, "match codes repeat: {codes:?}");

    // Two requests for the same host differ in their codes.
    let (_, a) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let (_, b) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    assert_ne!(str_of(&a, "match_code"), str_of(&b, "match_code"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_without_the_secret_shows_no_roles_approvers_or_outcomes() {
    let t = TestCa::new();
    let (four, mut aud) = four(&t).await;

    // A confirmed sign-in: the holder of the secret sees the roles; the
    // summary (no secret) does not.
    let sid = str_of(&four.session, "id");
    let (s, done, _) = t.confirm("sessions", sid, &mut aud).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(str_of(&done, "kind"), "sign_in", "{done}");
    assert_eq!(
        done["roles"],
        json!(["auditor"]),
        "the toucher sees all: {done}"
    );
    let (_, with_secret) = t
        .get(
            &format!("/v1/sessions/{sid}"),
            Some(str_of(&four.session, "secret")),
        )
        .await;
    assert_eq!(with_secret["roles"], json!(["auditor"]), "{with_secret}");
    let (_, summary) = t.get(&format!("/v1/sessions/{sid}/summary"), None).await;
    assert_eq!(str_of(&summary, "user"), "aud");
    assert_eq!(str_of(&summary, "status"), "active");
    assert!(summary.get("roles").is_none(), "{summary}");

    // An access request waiting for approvers: who may approve stays out.
    let rid = str_of(&four.request, "id");
    let (_, summary) = t.get(&format!("/v1/requests/{rid}/summary"), None).await;
    assert_eq!(str_of(&summary, "host"), "db-1.prod", "{summary}");
    let text = summary.to_string();
    assert!(
        !text.contains("lead1") && !text.contains("lead2"),
        "{summary}"
    );
    // The decision's summary embeds the request the same way.
    let did = str_of(&four.decision, "id");
    let (_, summary) = t.get(&format!("/v1/decisions/{did}/summary"), None).await;
    assert_eq!(str_of(&summary, "verdict"), "approve", "{summary}");
    assert_eq!(summary["summary"]["approval"]["needed"], 2, "{summary}");
    assert_eq!(
        summary["summary"]["approval"]["approvers"],
        json!([]),
        "{summary}"
    );
    assert!(!summary.to_string().contains("lead2"), "{summary}");

    // A denied request: why it was denied is for its requester.
    let mut carol = t.enroll("carol").await;
    let (_, denied) = t.request("carol", "db-1.nowhere", "oncall", "5m").await;
    let id = str_of(&denied, "id");
    let (_, after, _) = t.touch(id, &mut carol).await;
    assert_eq!(str_of(&after, "status"), "denied", "{after}");
    assert!(
        after["decision"].is_string(),
        "the touch's answer says why: {after}"
    );
    let (_, summary) = t.get(&format!("/v1/requests/{id}/summary"), None).await;
    assert_eq!(summary["status"], after["status"], "{summary}");
    assert!(summary.get("decision").is_none(), "{summary}");
}
