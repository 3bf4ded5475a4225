//! Enrollment, login and every policy outcome through the real router,
//! with soft WebAuthn authenticators.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::TestCa;
use jit_ssh_audit::{AuditLog, AuditQuery, Event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_login_and_issue() {
    let t = TestCa::new();
    let mut key = t.enroll("alice").await;
    let (s, created) = t.request("alice", "db-1.dev", "oncall", "10m").await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let (id, secret) = (
        created["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    assert_eq!(created["status"], "pending_mfa");
    assert_eq!(created["mfa_url"], format!("{}/mfa/{id}", common::ORIGIN));

    // The MFA page's data: who asks for what, nothing secret.
    let (s, summary) = t.get(&format!("/v1/requests/{id}/summary"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (summary["host"].as_str(), summary["account"].as_str()),
        (Some("db-1.dev"), Some("oncall"))
    );
    assert!(summary.get("secret").is_none() && !summary.to_string().contains(secret));

    let (s, after, _) = t.touch(id, &mut key).await;
    assert_eq!(s, StatusCode::OK, "{after}");
    assert_eq!(after["status"], "issued");

    let (s, state) = t.get(&format!("/v1/requests/{id}"), Some(secret)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(state["status"], "issued");
    let cert = state["certificate"]["certificate"].as_str().unwrap();
    let cert = ssh_key::Certificate::from_openssh(cert).unwrap();
    assert_eq!(cert.valid_principals(), ["oncall@db-1.dev"]);
    assert_eq!(cert.valid_before() - cert.valid_after(), 600 + 60);
    assert_eq!(
        cert.key_id(),
        format!("jit-ssh:alice:{id}:{}", cert.serial())
    );
    let ca_key = t.ca.signer().public_key().fingerprint(Default::default());
    cert.validate([&ca_key]).unwrap();

    // Every step is in the audit log, in order, and the chain verifies.
    let kinds: Vec<&str> = t
        .audit
        .query(&AuditQuery {
            grant: Some(id.to_owned()),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|r| match &r.event {
            Event::RequestCreated(_) => "request_created",
            Event::MfaVerified(_) => "mfa_verified",
            Event::PolicyDecision(d) if d.outcome == "approved" => "approved",
            Event::CertificateIssued(_) => "certificate_issued",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "request_created",
            "mfa_verified",
            "approved",
            "certificate_issued"
        ]
    );
    assert!(t.audit.verify().unwrap().first_break.is_none());
}

async fn outcome(t: &TestCa, user: &str, host: &str, account: &str, ttl: &str) -> (String, String) {
    let mut key = t.enroll(user).await;
    let (s, created) = t.request(user, host, account, ttl).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (s, after, _) = t.touch(id, &mut key).await;
    assert_eq!(s, StatusCode::OK, "{after}");
    let (_, state) = t
        .get(&format!("/v1/requests/{id}"), created["secret"].as_str())
        .await;
    assert!(state.get("certificate").is_none() || state["status"] == "issued");
    // The MFA page's summary carries the same decision text.
    assert_eq!(after["decision"], state["reason"]);
    (
        state["status"].as_str().unwrap().to_owned(),
        state["reason"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_denial_says_why_and_approvers_mode_waits() {
    let t = TestCa::new();
    let (status, reason) = outcome(&t, "alice", "web.prod", "oncall", "5m").await;
    assert_eq!(status, "denied");
    assert!(
        reason.contains("no rule lets you reach web.prod"),
        "{reason}"
    );

    let (status, reason) = outcome(&t, "bob", "db-1.dev", "root", "5m").await;
    assert_eq!(status, "denied");
    assert!(
        reason.contains("account root is not allowed on db-1.dev; allowed: oncall, your own name"),
        "{reason}"
    );

    let (status, reason) = outcome(&t, "carol", "db-1.dev", "oncall", "20m").await;
    assert_eq!(status, "denied");
    assert!(
        reason.contains("TTL 20m is over the cap of 15m"),
        "{reason}"
    );

    let (status, reason) = outcome(&t, "alice", "db-1.prod", "postgres", "5m").await;
    assert_eq!(status, "pending_approval");
    assert!(
        reason.contains("0 of 2 approval(s) from lead1, lead2"),
        "{reason}"
    );

    // Each decision is an audit event.
    let decisions = t
        .audit
        .query(&AuditQuery::default())
        .unwrap()
        .into_iter()
        .filter(|r| matches!(r.event, Event::PolicyDecision(_)))
        .count();
    assert_eq!(decisions, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_enrolled_is_refused_with_a_next_step() {
    let t = TestCa::new();
    let before = t.audit_count();
    let (s, e) = t.request("bob", "db-1.dev", "oncall", "5m").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(e["error"]["code"], "not_enrolled");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("jit-ssh-ca invite bob"));
    let (s, e) = t.request("mallory", "db-1.dev", "oncall", "5m").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_enrolled"))
    );
    assert_eq!(t.audit_count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinning_and_extensions_come_from_the_rule() {
    let t = TestCa::new();
    let mut key = t.enroll("alice").await;
    let (_, created) = t.request("alice", "web.pinned", "oncall", "5m").await;
    let id = created["id"].as_str().unwrap();
    let (s, _, _) = t.touch(id, &mut key).await;
    assert_eq!(s, StatusCode::OK);
    let (_, state) = t
        .get(&format!("/v1/requests/{id}"), created["secret"].as_str())
        .await;
    let cert =
        ssh_key::Certificate::from_openssh(state["certificate"]["certificate"].as_str().unwrap())
            .unwrap();
    // The address the CA saw the request come from (the test client's).
    assert_eq!(
        cert.critical_options()
            .get("source-address")
            .map(String::as_str),
        Some("192.0.2.10/32")
    );
    let mut ext: Vec<&String> = cert.extensions().keys().collect();
    ext.sort();
    assert_eq!(ext, ["permit-port-forwarding", "permit-pty"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_returns_when_the_request_is_issued() {
    let t = TestCa::new();
    let mut key = t.enroll("alice").await;
    let (_, created) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let t = std::sync::Arc::new(t);
    let poller = {
        let (t, id) = (t.clone(), id.clone());
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let (s, v) = t
                .get(&format!("/v1/requests/{id}?wait=20"), Some(&secret))
                .await;
            (s, v, start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, _, _) = t.touch(&id, &mut key).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v, took) = poller.await.unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "issued");
    assert!(
        took < Duration::from_secs(10),
        "long poll did not wake: {took:?}"
    );
}
