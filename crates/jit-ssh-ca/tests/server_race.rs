//! One request yields at most one certificate, however many touches race
//! to finish it: the winner is decided in the store before signing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jit_ssh_audit::{AuditLog, AuditQuery};
use jit_ssh_ca::service::Ca;
use jit_ssh_ca::store::AccessRequest;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::Url;

use common::{refused_append, AppendHook, TestCa, ORIGIN};

/// Holds every certificate record for a while before writing it, as a
/// slow disk would: the window in which a second finish could race.
/// With `fail_first`, refuses the first certificate record (a full disk
/// for a moment).
fn slow_certificates(real: Arc<dyn AuditLog>, fail_first: bool) -> Arc<dyn AuditLog> {
    let fail_first = std::sync::atomic::AtomicBool::new(fail_first);
    Arc::new(AppendHook {
        inner: real,
        before: move |event: &jit_ssh_audit::Event| {
            if matches!(event, jit_ssh_audit::Event::CertificateIssued(_)) {
                if fail_first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    return Err(refused_append());
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            Ok(())
        },
        on_ready: None,
    })
}

fn certificates_for(t: &TestCa, request: &str) -> usize {
    t.audit
        .query(&AuditQuery {
            grant: Some(request.to_owned()),
            kinds: vec!["certificate_issued".into()],
            ..AuditQuery::default()
        })
        .unwrap()
        .len()
}

/// Starts and finishes one touch on `id`; the outcome does not matter.
fn touch_once(ca: &Ca, id: &str, key: &Mutex<SoftPasskey>, client: std::net::SocketAddr) {
    let Ok(challenge) = ca.confirm_start::<AccessRequest>(id, client) else {
        return;
    };
    let assertion = key
        .lock()
        .unwrap()
        .do_authentication(Url::parse(ORIGIN).unwrap(), challenge)
        .unwrap();
    let _ = ca.confirm_finish::<AccessRequest>(id, &assertion, client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_touches_issue_one_certificate_per_request() {
    let t = TestCa::build(
        "requests_per_minute_per_user = 1000\nrequests_per_minute_per_address = 100000",
        |a| slow_certificates(a, false),
    );
    let key = Arc::new(Mutex::new(t.enroll("alice").await));
    for round in 0..8 {
        let (_, created) = t.request("alice", "db-1.dev", "oncall", "5m").await;
        let id = created["id"].as_str().unwrap().to_owned();
        let ca = t.ca.clone();
        let client = t.client;
        // The first finish, then a second start+finish while the first is
        // still writing its certificate record, then a crowd of finishers.
        let challenge = ca.confirm_start::<AccessRequest>(&id, client).unwrap();
        let first = key
            .lock()
            .unwrap()
            .do_authentication(Url::parse(ORIGIN).unwrap(), challenge)
            .unwrap();
        std::thread::scope(|s| {
            let winner = s.spawn(|| ca.confirm_finish::<AccessRequest>(&id, &first, client));
            std::thread::sleep(Duration::from_millis(100));
            touch_once(&ca, &id, &key, client);
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..3 {
                        touch_once(&ca, &id, &key, client);
                    }
                });
            }
            let winner = winner.join().unwrap();
            assert!(winner.is_ok(), "round {round}: {winner:?}");
        });
        assert_eq!(
            certificates_for(&t, &id),
            1,
            "round {round}: one request, one certificate"
        );
        let (_, state) = t
            .get(
                &format!("/v1/requests/{id}"),
                Some(created["secret"].as_str().unwrap()),
            )
            .await;
        assert_eq!(state["status"], "issued", "round {round}: {state}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_touch_that_failed_to_record_its_certificate_can_be_retried() {
    let t = TestCa::build("", |a| slow_certificates(a, true));
    let mut key = t.enroll("alice").await;
    let (_, created) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let id = created["id"].as_str().unwrap();
    let (s, e, _) = t.touch(id, &mut key).await;
    assert_eq!(s, axum::http::StatusCode::INTERNAL_SERVER_ERROR, "{e}");
    assert_eq!(certificates_for(&t, id), 0);
    // Nothing was recorded, so the claim was released: the retry issues.
    let (s, done, _) = t.touch(id, &mut key).await;
    assert_eq!(
        (s, done["status"].as_str()),
        (axum::http::StatusCode::OK, Some("issued")),
        "{done}"
    );
    assert_eq!(certificates_for(&t, id), 1);
}
