//! Approval workflows through the real router with soft passkeys: on-call
//! auto-approval (per an iCalendar feed), approvers for everyone else,
//! N-of-M with self- and double-approval refused, denial, expiry, the
//! approvers' list, break-glass, and webhook notifications with retries.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Hook, TestCa};
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use jit_ssh_audit::{AuditLog, AuditQuery, Event};
use jit_ssh_ca::notify::Backoff;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// Creates a request and touches it; returns (id, secret, state after MFA).
async fn ask(
    t: &TestCa,
    key: &mut SoftPasskey,
    user: &str,
    host: &str,
    account: &str,
    extra: Value,
) -> (String, String, Value) {
    let pk =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let mut body = json!({
        "user": user, "host": host, "account": account, "ttl": "5m", "reason": "incident 77",
        "public_key": pk.public_key().to_openssh().unwrap(),
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (s, created) = t.post("/v1/requests", &body).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let (s, _, _) = t.touch(&id, key).await;
    assert_eq!(s, StatusCode::OK);
    let state = state(t, &id, &secret).await;
    (id, secret, state)
}

async fn state(t: &TestCa, id: &str, secret: &str) -> Value {
    t.get(&format!("/v1/requests/{id}"), Some(secret)).await.1
}

/// `who` approves or denies `id` and confirms with `key`: (status of the
/// create call, the decision's final state or the error).
async fn decide(
    t: &TestCa,
    who: &str,
    key: &mut SoftPasskey,
    id: &str,
    verdict: &str,
    comment: &str,
) -> (StatusCode, Value) {
    let (s, created) = t
        .post(
            &format!("/v1/requests/{id}/decisions"),
            &json!({"user": who, "verdict": verdict, "comment": comment}),
        )
        .await;
    if s != StatusCode::CREATED {
        return (s, created);
    }
    let did = created["id"].as_str().unwrap();
    assert!(created["mfa_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/decide/{did}")));
    let (s, done, _) = t.confirm("decisions", did, key).await;
    (s, done)
}

fn kinds(t: &TestCa, id: &str) -> Vec<String> {
    t.audit
        .query(&AuditQuery {
            grant: Some(id.into()),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|r| r.event.kind().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_call_engineers_get_in_without_anyone_else() {
    let t = TestCa::new();
    let mut alice = t.enroll("alice").await;
    let (id, _, st) = ask(&t, &mut alice, "alice", "web-1.prod", "www", json!({})).await;
    assert_eq!(st["status"], "issued", "{st}");
    let decision = t
        .audit
        .query(&AuditQuery {
            grant: Some(id.clone()),
            kinds: vec!["policy_decision".into()],
            ..Default::default()
        })
        .unwrap();
    let Event::PolicyDecision(d) = &decision[0].event else {
        panic!()
    };
    let shift = d
        .on_call
        .as_ref()
        .expect("the shift that approved it is recorded");
    assert_eq!(
        (
            shift.schedule.as_str(),
            shift.layer.as_str(),
            shift.member.as_str()
        ),
        ("web", "primary", "alice@example.com")
    );
    assert!(
        shift.start <= decision[0].time.unix_timestamp()
            && decision[0].time.unix_timestamp() < shift.end
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_call_engineers_wait_for_an_approver() {
    let t = TestCa::new();
    let mut bob = t.enroll("bob").await;
    let mut lead1 = t.enroll("lead1").await;
    let (id, secret, st) = ask(&t, &mut bob, "bob", "web-1.prod", "www", json!({})).await;
    assert_eq!(st["status"], "pending_approval", "{st}");
    assert_eq!(st["approval"]["approvers"], json!(["lead1", "lead2"]));
    assert_eq!(st["approval"]["needed"], 1);
    assert_eq!(st["approval"]["not_on_call"], "web");
    assert!(st["approval"]["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/approve/{id}")));

    let (s, d) = decide(&t, "lead1", &mut lead1, &id, "approve", "looks right").await;
    assert_eq!(
        (s, d["status"].as_str()),
        (StatusCode::OK, Some("recorded")),
        "{d}"
    );
    let st = state(&t, &id, &secret).await;
    assert_eq!(st["status"], "issued");
    assert_eq!(st["approval"]["approved_by"], json!(["lead1"]));
    assert!(st["certificate"]["certificate"].is_string());
    assert_eq!(
        kinds(&t, &id),
        [
            "request_created",
            "mfa_verified",
            "policy_decision",
            "request_approved",
            "certificate_issued"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_approves_their_own_request_and_each_approver_counts_once() {
    let t = TestCa::new();
    let mut alice = t.enroll("alice").await;
    let mut bob = t.enroll("bob").await;
    let mut lead1 = t.enroll("lead1").await;
    let mut lead2 = t.enroll("lead2").await;
    // prod-db needs two approvals from leads.
    let (id, secret, st) = ask(&t, &mut alice, "alice", "db-1.prod", "postgres", json!({})).await;
    assert_eq!(st["status"], "pending_approval");

    let (s, e) = decide(&t, "alice", &mut alice, &id, "approve", "").await;
    assert_eq!((s, code(&e)), (StatusCode::FORBIDDEN, "forbidden"), "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cannot approve or deny it themselves"));
    let (s, _) = decide(&t, "bob", &mut bob, &id, "approve", "").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "bob is not an approver");

    let (_, d) = decide(&t, "lead1", &mut lead1, &id, "approve", "").await;
    assert_eq!(d["status"], "recorded");
    assert!(d["outcome"].as_str().unwrap().contains("1 of 2"));
    let (s, e) = decide(&t, "lead1", &mut lead1, &id, "approve", "again").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already approved"),
        "{e}"
    );
    assert_eq!(state(&t, &id, &secret).await["status"], "pending_approval");

    let (_, d) = decide(&t, "lead2", &mut lead2, &id, "approve", "").await;
    assert_eq!(d["status"], "recorded");
    let st = state(&t, &id, &secret).await;
    assert_eq!(
        (st["status"].as_str(), st["approval"]["approved_by"].clone()),
        (Some("issued"), json!(["lead1", "lead2"]))
    );
    let refused = kinds(&t, &id)
        .iter()
        .filter(|k| *k == "approval_refused")
        .count();
    assert_eq!(
        refused, 3,
        "self, non-approver and double approval are audited"
    );

    // Two decisions started before the second approval: only one counts.
    let (_, later) = decide(&t, "lead1", &mut lead1, &id, "approve", "").await;
    assert_eq!(code(&later), "wrong_state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_is_for_one_decision_only() {
    let t = TestCa::new();
    let mut bob = t.enroll("bob").await;
    let mut lead1 = t.enroll("lead1").await;
    let (id, secret, _) = ask(&t, &mut bob, "bob", "web-1.prod", "www", json!({})).await;
    // lead1 starts a denial but confirms with an assertion made for another
    // decision: refused, nothing recorded.
    let (_, a) = t
        .post(
            &format!("/v1/requests/{id}/decisions"),
            &json!({"user": "lead1", "verdict": "approve"}),
        )
        .await;
    let (_, d) = t
        .post(
            &format!("/v1/requests/{id}/decisions"),
            &json!({"user": "lead1", "verdict": "deny", "comment": "no"}),
        )
        .await;
    let (a, d) = (a["id"].as_str().unwrap(), d["id"].as_str().unwrap());
    let (s, _, assertion) = t.confirm("decisions", a, &mut lead1).await;
    assert_eq!(s, StatusCode::OK);
    let _ = t
        .post(&format!("/v1/decisions/{d}/mfa/start"), &json!({}))
        .await;
    let (s, _) = t
        .post(&format!("/v1/decisions/{d}/mfa/finish"), &assertion)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(state(&t, &id, &secret).await["status"], "issued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvers_deny_with_a_reason_and_list_what_they_may_decide() {
    let t = TestCa::new();
    let mut alice = t.enroll("alice").await;
    let mut bob = t.enroll("bob").await;
    let mut lead1 = t.enroll("lead1").await;
    let (id, secret, _) = ask(&t, &mut bob, "bob", "web-1.prod", "www", json!({})).await;
    let (mine, _, _) = ask(&t, &mut alice, "alice", "db-1.prod", "postgres", json!({})).await;

    let token = t.sign_in("lead1", &mut lead1).await;
    let (s, list) = t.get("/v1/requests", Some(&token)).await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&id.as_str()) && ids.contains(&mine.as_str()),
        "{list}"
    );
    let alice_token = t.sign_in("alice", &mut alice).await;
    let (_, list) = t.get("/v1/requests", Some(&alice_token)).await;
    assert!(
        list["requests"].as_array().unwrap().is_empty(),
        "alice may decide neither: {list}"
    );
    assert_eq!(
        t.get("/v1/requests", None).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (s, e) = t
        .post(
            &format!("/v1/requests/{id}/decisions"),
            &json!({"user": "lead1", "verdict": "deny"}),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::BAD_REQUEST, "invalid_field"));
    let (_, d) = decide(
        &t,
        "lead1",
        &mut lead1,
        &id,
        "deny",
        "use the runbook instead",
    )
    .await;
    assert_eq!(d["status"], "recorded");
    let st = state(&t, &id, &secret).await;
    assert_eq!(st["status"], "denied");
    assert!(st["reason"]
        .as_str()
        .unwrap()
        .contains("denied by lead1: use the runbook instead"));
    // Deciding it again says so in words, not a Rust enum name.
    let (s, e) = t
        .post(
            &format!("/v1/requests/{id}/decisions"),
            &json!({"user": "lead1", "verdict": "approve"}),
        )
        .await;
    let said = e["error"]["message"].as_str().unwrap();
    assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "wrong_state"), "{e}");
    assert!(
        said.contains("was already denied") && !said.contains("Denied"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_end_with_the_request() {
    let t = TestCa::with_limits(r#"approval_ttl = "1s""#);
    let mut bob = t.enroll("bob").await;
    let mut lead1 = t.enroll("lead1").await;
    let (id, secret, _) = ask(&t, &mut bob, "bob", "web-1.prod", "www", json!({})).await;
    t.clock.advance(std::time::Duration::from_secs(2));
    assert_eq!(state(&t, &id, &secret).await["status"], "expired");
    let (s, e) = decide(&t, "lead1", &mut lead1, &id, "approve", "").await;
    assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "wrong_state"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_issues_at_once_marked_capped_and_notified() {
    let hook = Hook::start(2).await;
    let t = TestCa::with_webhook("", &hook.url);
    t.ca.start_notifications(Backoff {
        first: std::time::Duration::from_millis(50),
        attempts: 4,
        timeout: std::time::Duration::from_secs(2),
    });
    let mut bob = t.enroll("bob").await;
    let (id, _, st) = ask(
        &t,
        &mut bob,
        "bob",
        "web-1.prod",
        "www",
        json!({"break_glass": true}),
    )
    .await;
    assert_eq!(st["status"], "issued", "{st}");
    let cert =
        ssh_key::Certificate::from_openssh(st["certificate"]["certificate"].as_str().unwrap())
            .unwrap();
    assert!(cert.key_id().ends_with(":break-glass"), "{}", cert.key_id());
    let decision = t
        .audit
        .query(&AuditQuery {
            grant: Some(id.clone()),
            kinds: vec!["policy_decision".into()],
            ..Default::default()
        })
        .unwrap();
    let Event::PolicyDecision(d) = &decision[0].event else {
        panic!()
    };
    assert!(d.break_glass && d.reason.contains("break-glass"));

    // The first two deliveries fail; the retry gets through.
    let n = hook.wait_for("break_glass").await;
    assert_eq!(
        (
            n["user"].as_str(),
            n["host"].as_str(),
            n["request"].as_str()
        ),
        (Some("bob"), Some("web-1.prod"), Some(id.as_str()))
    );
    assert!(n["text"].as_str().unwrap().contains("BREAK-GLASS"));

    // Its own cap (5m here), and only where policy allows it.
    let pk =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let (_, created) = t
        .post("/v1/requests", &json!({"user": "bob", "host": "web-1.prod", "account": "www", "ttl": "10m", "reason": "x", "break_glass": true, "public_key": pk.public_key().to_openssh().unwrap()}))
        .await;
    let cid = created["id"].as_str().unwrap();
    t.touch(cid, &mut bob).await;
    let st = state(&t, cid, created["secret"].as_str().unwrap()).await;
    assert_eq!(st["status"], "denied");
    assert!(
        st["reason"]
            .as_str()
            .unwrap()
            .contains("over the cap of 5m"),
        "{st}"
    );

    // Pending approvals are notified too, with the approvers and the page.
    let (pending, _, _) = ask(&t, &mut bob, "bob", "web-2.prod", "www", json!({})).await;
    let n = hook.wait_for("pending_approval").await;
    assert_eq!(n["approvers"], json!(["lead1", "lead2"]));
    assert!(n["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/approve/{pending}")));

    // And revocations.
    let mut sec = t.enroll("sec").await;
    let (_, created) = t
        .post("/v1/revocations", &json!({"user": "sec", "target": {"serial": cert.serial()}, "reason": "break-glass review"}))
        .await;
    let (s, done, _) = t
        .confirm("revocations", created["id"].as_str().unwrap(), &mut sec)
        .await;
    assert_eq!(
        (s, done["status"].as_str()),
        (StatusCode::OK, Some("revoked")),
        "{done}"
    );
    let n = hook.wait_for("revoked").await;
    assert_eq!(
        (n["by"].as_str(), n["reason"].as_str()),
        (Some("sec"), Some("break-glass review"))
    );
    assert!(
        n["text"]
            .as_str()
            .unwrap()
            .contains(&format!("serial:{}", cert.serial())),
        "{n}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_where_policy_forbids_it_is_denied() {
    let t = TestCa::new();
    let mut alice = t.enroll("alice").await;
    let (_, _, st) = ask(
        &t,
        &mut alice,
        "alice",
        "db-1.prod",
        "postgres",
        json!({"break_glass": true}),
    )
    .await;
    assert_eq!(st["status"], "denied");
    assert!(
        st["reason"]
            .as_str()
            .unwrap()
            .contains("break-glass is not allowed"),
        "{st}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_that_never_arrives_is_audited_and_blocks_nothing() {
    let t = TestCa::new(); // its webhook points at a closed port
    t.ca.start_notifications(Backoff {
        first: std::time::Duration::from_millis(20),
        attempts: 3,
        timeout: std::time::Duration::from_secs(1),
    });
    let mut bob = t.enroll("bob").await;
    let started = std::time::Instant::now();
    let (id, _, st) = ask(
        &t,
        &mut bob,
        "bob",
        "web-1.prod",
        "www",
        json!({"break_glass": true}),
    )
    .await;
    assert_eq!(st["status"], "issued");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let mut failed = vec![];
    for _ in 0..100 {
        failed = t
            .audit
            .query(&AuditQuery {
                kinds: vec!["notification_failed".into()],
                ..Default::default()
            })
            .unwrap();
        if !failed.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let Event::NotificationFailed(f) = &failed.first().expect("a notification_failed record").event
    else {
        panic!()
    };
    assert_eq!(
        (f.event.as_str(), f.request.as_str(), f.attempts),
        ("break_glass", id.as_str(), 3)
    );
    assert_eq!(f.target, "webhook at 127.0.0.1");
    assert_eq!(f.error, "could not connect");
}
