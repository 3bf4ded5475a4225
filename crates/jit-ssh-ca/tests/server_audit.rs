//! Reading the audit log over HTTP: sign-in with a WebAuthn touch,
//! filters and cursor pages that return exactly the matching records,
//! engineers limited to their own records, and an export that verifies
//! offline with only the CA public key.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::TestCa;
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use jit_ssh_audit::{AuditLog, AuditQuery, AuditRecord};

async fn issue(t: &TestCa, key: &mut SoftPasskey, user: &str, host: &str, account: &str) -> u64 {
    let (_, created) = t.request(user, host, account, "10m").await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(t.touch(id, key).await.0, StatusCode::OK);
    let (_, state) = t
        .get(&format!("/v1/requests/{id}"), created["secret"].as_str())
        .await;
    // Serials travel as decimal strings (JavaScript's numbers lose digits).
    state["certificate"]["serial"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Every record matching `query`, following the cursor page by page.
async fn all_pages(t: &TestCa, token: &str, query: &str, limit: u32) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, page) = t
            .get(
                &format!("/v1/audit?{query}&limit={limit}{cursor}"),
                Some(token),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let records: Vec<AuditRecord> = serde_json::from_value(page["records"].clone()).unwrap();
        assert!(records.len() <= limit as usize);
        out.extend(records);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

fn seqs(records: &[AuditRecord]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

/// A TestCa with alice (3 certificates, one as another account), bob (2),
/// and a signed-in auditor.
async fn populated() -> (TestCa, SoftPasskey, SoftPasskey, String, Vec<u64>) {
    let t = TestCa::new();
    let mut alice = t.enroll("alice").await;
    let mut bob = t.enroll("bob").await;
    let mut aud = t.enroll("aud").await;
    let serials = vec![
        issue(&t, &mut alice, "alice", "db-1.dev", "oncall").await,
        issue(&t, &mut bob, "bob", "db-1.dev", "oncall").await,
        issue(&t, &mut alice, "alice", "web-1.dev", "alice").await,
        issue(&t, &mut alice, "alice", "db-1.dev", "oncall").await,
        issue(&t, &mut bob, "bob", "web-1.dev", "oncall").await,
    ];
    let token = t.sign_in("aud", &mut aud).await;
    (t, alice, bob, token, serials)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_pages_return_exactly_the_matching_records() {
    let (t, _alice, _bob, token, serials) = populated().await;
    let store = |q: AuditQuery| seqs(&t.audit.query(&q).unwrap());

    let alice = all_pages(&t, &token, "user=alice", 3).await;
    assert_eq!(
        seqs(&alice),
        store(AuditQuery {
            user: Some("alice".into()),
            ..Default::default()
        })
    );
    assert!(
        alice.len() > 6,
        "alice has requests, MFA, decisions and certificates"
    );

    let issued = all_pages(&t, &token, "user=alice&kind=certificate_issued", 2).await;
    assert_eq!(issued.len(), 3);
    let on_db = all_pages(&t, &token, "host=db-1.dev&kind=certificate_issued", 1).await;
    assert_eq!(on_db.len(), 3);
    let own_account = all_pages(&t, &token, "account=alice&kind=certificate_issued", 5).await;
    assert_eq!(own_account.len(), 1);
    assert_eq!(own_account[0].event.serials(), &[serials[2]]);

    let by_serial = all_pages(&t, &token, &format!("serial={}", serials[3]), 10).await;
    assert_eq!(by_serial.len(), 1);
    let grant = by_serial[0].event.grant().unwrap().to_owned();
    let by_grant = all_pages(&t, &token, &format!("grant={grant}"), 2).await;
    assert_eq!(
        by_grant.iter().map(|r| r.event.kind()).collect::<Vec<_>>(),
        [
            "request_created",
            "mfa_verified",
            "policy_decision",
            "certificate_issued"
        ]
    );

    let all = all_pages(&t, &token, "kind=certificate_issued,signed_in", 4).await;
    assert_eq!(all.len(), 6);
    let middle = all[2]
        .time
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let since = all_pages(
        &t,
        &token,
        &format!("kind=certificate_issued&since={middle}"),
        4,
    )
    .await;
    assert_eq!(
        seqs(&since),
        seqs(&all)
            .into_iter()
            .filter(|s| all.iter().any(|r| r.seq == *s
                && r.time >= all[2].time
                && r.event.kind() == "certificate_issued"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engineers_read_only_their_own_records() {
    let (t, mut alice, _bob, _aud, _) = populated().await;
    let token = t.sign_in("alice", &mut alice).await;
    let (s, e) = t.get("/v1/audit?user=bob", Some(&token)).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let mine = all_pages(&t, &token, "kind=certificate_issued", 10).await;
    assert_eq!(mine.len(), 3);
    assert!(mine.iter().all(|r| r.event.user() == Some("alice")));
    let everything = all_pages(&t, &token, "", 100).await;
    assert!(everything.iter().all(|r| r.event.user() == Some("alice")));
    let (s, _) = t.get("/v1/audit/export", Some(&token)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_bad_queries_are_refused() {
    let (t, _alice, _bob, token, _) = populated().await;
    let before = t.audit_count();
    for (query, token, want) in [
        ("", None, StatusCode::UNAUTHORIZED),
        ("", Some("nonsense".to_owned()), StatusCode::UNAUTHORIZED),
        ("", Some(format!("{}x", token)), StatusCode::UNAUTHORIZED),
        (
            "kind=everything",
            Some(token.clone()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "since=yesterday",
            Some(token.clone()),
            StatusCode::BAD_REQUEST,
        ),
        ("limit=0", Some(token.clone()), StatusCode::BAD_REQUEST),
        ("limit=5000", Some(token.clone()), StatusCode::BAD_REQUEST),
        ("cursor=abc", Some(token.clone()), StatusCode::BAD_REQUEST),
        ("serial=-1", Some(token.clone()), StatusCode::BAD_REQUEST),
        ("user=a%2Cb", Some(token.clone()), StatusCode::BAD_REQUEST),
        ("colour=blue", Some(token.clone()), StatusCode::BAD_REQUEST),
    ] {
        let (s, body) = t.get(&format!("/v1/audit?{query}"), token.as_deref()).await;
        assert_eq!(s, want, "{query}: {body}");
        assert!(body["error"]["code"].is_string(), "{query}: {body}");
    }
    assert_eq!(t.audit_count(), before, "refusals change nothing");

    // A session nobody confirmed is no credential.
    let (_, created) = t.post("/v1/sessions", &json!({"user": "aud"})).await;
    let pending = format!(
        "{}.{}",
        created["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap()
    );
    assert_eq!(
        t.get("/v1/audit", Some(&pending)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_assertion_cannot_be_replayed() {
    let t = TestCa::new();
    let mut aud = t.enroll("aud").await;
    let (_, first) = t.post("/v1/sessions", &json!({"user": "aud"})).await;
    let id = first["id"].as_str().unwrap();
    let (s, _, assertion) = t.confirm("sessions", id, &mut aud).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = t
        .post(&format!("/v1/sessions/{id}/mfa/finish"), &assertion)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Nor used for another sign-in.
    let (_, second) = t.post("/v1/sessions", &json!({"user": "aud"})).await;
    let other = second["id"].as_str().unwrap();
    let _ = t
        .post(&format!("/v1/sessions/{other}/mfa/start"), &json!({}))
        .await;
    let (s, _) = t
        .post(&format!("/v1/sessions/{other}/mfa/finish"), &assertion)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (_, state) = t
        .get(&format!("/v1/sessions/{other}"), second["secret"].as_str())
        .await;
    assert_eq!(state["status"], "pending_mfa");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end() {
    // A minute, not a second: the clock is real time (whole seconds) plus
    // what the test adds, and a loaded machine can cross a second between
    // the sign-in and the first read.
    let t = TestCa::with_limits(r#"session_ttl = "60s""#);
    let mut aud = t.enroll("aud").await;
    let token = t.sign_in("aud", &mut aud).await;
    assert_eq!(t.get("/v1/audit", Some(&token)).await.0, StatusCode::OK);
    t.clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(
        t.get("/v1/audit", Some(&token)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn export(t: &TestCa, token: &str, query: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(Method::GET)
        .uri(format!("/v1/audit/export{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let mut req = req;
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(t.client));
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let res = t.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn ca_key(t: &TestCa) -> ssh_key::PublicKey {
    ssh_key::PublicKey::from_openssh(&t.ca.ca_keys().unwrap().keys[0]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_ends_in_a_checkpoint_and_verifies_offline() {
    let (t, _alice, _bob, token, _) = populated().await;
    let (s, text) = export(&t, &token, "").await;
    assert_eq!(s, StatusCode::OK);
    let head = t.audit.head();
    let report = jit_ssh_audit::checkpoint::verify_export(text.as_bytes(), &[ca_key(&t)]).unwrap();
    assert_eq!(report.problem, None, "{text}");
    assert_eq!((report.first_seq, report.last_seq), (1, head.seq));
    assert_eq!(report.checkpoints, 1);
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"]["kind"], "checkpoint");
    assert_eq!(last["event"]["trigger"], "export");
    assert_eq!(last["actor"], json!({"kind": "user", "name": "aud"}));

    // A second export with nothing new reuses the checkpoint.
    let (_, again) = export(&t, &token, "").await;
    assert_eq!(again, text);

    // From a time: starts mid-chain, still verifies.
    let all: Vec<AuditRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let since = all[10]
        .time
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (_, part) = export(&t, &token, &format!("?since={since}")).await;
    let report = jit_ssh_audit::checkpoint::verify_export(part.as_bytes(), &[ca_key(&t)]).unwrap();
    assert_eq!(report.problem, None);
    assert!(report.first_seq > 1 && report.first_seq <= all[10].seq);

    // Checked with another CA's key, it fails at the checkpoint.
    let other =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let report =
        jit_ssh_audit::checkpoint::verify_export(text.as_bytes(), &[other.public_key().clone()])
            .unwrap();
    assert_eq!(report.problem.unwrap().seq, Some(head.seq));
}
