//! A rule's session policy reaches the certificate (`force-command` runs
//! the host's session wrapper when the policy asks for anything) and the
//! `certificate_issued` audit record.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::TestCa;
use jit_ssh_audit::{AuditLog, AuditQuery, Event, SessionTerms};

const POLICY: &str = r#"
[host_groups.plain]
hosts = ["*.plain"]
accounts = ["oncall"]

[host_groups.recorded]
hosts = ["*.recorded"]
accounts = ["oncall"]

[[rules]]
groups = ["sre"]
host_groups = ["plain"]
max_ttl = "15m"
session = { end_at_expiry = false, record = "off" }

[[rules]]
groups = ["sre"]
host_groups = ["recorded"]
max_ttl = "15m"
session = { end_at_expiry = false, record = "output" }

[sessions]
wrapper = "/opt/jit/jit-ssh-host session --dir /etc/ssh/jit-ssh"
"#;

/// Issues a certificate for alice on `host`; its force-command and the
/// session terms of its audit record.
async fn issued(t: &TestCa, host: &str) -> (Option<String>, Option<SessionTerms>, String) {
    let mut key = t.enroll("alice").await;
    let (_, created) = t.request("alice", host, "oncall", "5m").await;
    let id = created["id"].as_str().unwrap();
    let (s, _, _) = t.touch(id, &mut key).await;
    assert_eq!(s, StatusCode::OK);
    let (_, state) = t
        .get(&format!("/v1/requests/{id}"), created["secret"].as_str())
        .await;
    let cert =
        ssh_key::Certificate::from_openssh(state["certificate"]["certificate"].as_str().unwrap())
            .unwrap();
    let recs = t
        .audit
        .query(&AuditQuery {
            serial: Some(cert.serial()),
            kinds: vec!["certificate_issued".into()],
            ..Default::default()
        })
        .unwrap();
    let Event::CertificateIssued(c) = &recs[0].event else {
        panic!("{:?}", recs[0].event)
    };
    let forced = cert.critical_options().get("force-command").cloned();
    let recorded = c
        .critical_options
        .iter()
        .find(|(k, _)| k == "force-command")
        .map(|(_, v)| v.clone());
    assert_eq!(
        forced, recorded,
        "the audit record lists the certificate's options"
    );
    (forced, c.session.clone(), c.grant.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_without_a_session_key_ends_sessions_at_expiry_and_records_output_through_the_wrapper(
) {
    let t = TestCa::with_policy("", POLICY);
    let (forced, terms, grant) = issued(&t, "web.dev").await;
    assert_eq!(
        forced.as_deref(),
        Some(
            format!(
                "/opt/jit/jit-ssh-host session --dir /etc/ssh/jit-ssh --record output --grant {grant}"
            )
            .as_str()
        )
    );
    assert_eq!(
        terms,
        Some(SessionTerms {
            end_at_expiry: true,
            record: "output".into()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_that_asks_for_nothing_gets_no_force_command() {
    let t = TestCa::with_policy("", POLICY);
    let (forced, terms, _) = issued(&t, "web.plain").await;
    assert_eq!(forced, None);
    assert_eq!(
        terms,
        Some(SessionTerms {
            end_at_expiry: false,
            record: "off".into()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_that_records_runs_the_wrapper_even_without_end_at_expiry() {
    let t = TestCa::with_policy("", POLICY);
    let (forced, terms, grant) = issued(&t, "web.recorded").await;
    assert_eq!(
        forced.as_deref(),
        Some(format!("/opt/jit/jit-ssh-host session --dir /etc/ssh/jit-ssh --record output --keep-after-expiry --grant {grant}").as_str())
    );
    assert_eq!(terms.unwrap().record, "output");
}
