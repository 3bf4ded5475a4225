//! Two CA processes on one store and one audit log (as replicas on a
//! shared database will be): nothing in-process decides who issues, so a
//! request still yields one certificate when the last touches race on
//! different replicas.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jit_ssh_audit::{AuditLog, AuditQuery};
use jit_ssh_audit_disk::DiskAuditLog;
use jit_ssh_ca::config;
use jit_ssh_ca::service::Ca;
use jit_ssh_ca::signer::FileSigner;
use jit_ssh_ca::store::{AccessRequest, PendingDecision, SledStore, Store};
use jit_ssh_proto::api::{CreateDecision, Verdict};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::Url;

use common::{AppendHook, TestCa, ORIGIN};

/// Holds certificate records a while (a slow disk): the race window.
fn slow_certificates(real: Arc<dyn AuditLog>) -> Arc<dyn AuditLog> {
    Arc::new(AppendHook {
        inner: real,
        before: |event: &jit_ssh_audit::Event| {
            if matches!(event, jit_ssh_audit::Event::CertificateIssued(_)) {
                std::thread::sleep(Duration::from_millis(300));
            }
            Ok(())
        },
        on_ready: None,
    })
}

/// A second CA on the first one's store, audit log and key.
fn replica(t: &TestCa, store: Arc<dyn Store>, key: ssh_key::PrivateKey) -> Arc<Ca> {
    let text = common::config_text("")
        .replace(
            "ONCALL_ICS",
            &t.dir.path().join("oncall.ics").display().to_string(),
        )
        .replace("WEBHOOK_URL", "http://127.0.0.1:9/hook");
    let cfg = config::parse(&text, "test").unwrap();
    Arc::new(
        Ca::new(
            cfg,
            Arc::new(FileSigner::new(key)),
            store,
            slow_certificates(t.audit.clone()),
        )
        .unwrap(),
    )
}

fn certificates_for(audit: &DiskAuditLog, request: &str) -> usize {
    audit
        .query(&AuditQuery {
            grant: Some(request.to_owned()),
            kinds: vec!["certificate_issued".into()],
            ..AuditQuery::default()
        })
        .unwrap()
        .len()
}

/// Two CAs sharing one state store, one audit log and one CA key.
fn two_replicas() -> (TestCa, Arc<Ca>, Arc<Ca>) {
    // TestCa builds the first (and owns the temp dir); both replicas get
    // their own Ca over a store opened once and shared.
    let t = TestCa::new();
    let store: Arc<dyn Store> =
        Arc::new(SledStore::open(&t.dir.path().join("replicated-state")).unwrap());
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let a = replica(&t, store.clone(), key.clone());
    let b = replica(&t, store, key);
    (t, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_last_approvals_on_two_replicas_issue_once() {
    let (t, a, b) = two_replicas();
    let client = t.client;
    let origin = Url::parse(ORIGIN).unwrap();
    // Enroll on replica a (through its own router).
    let enroll = |ca: &Arc<Ca>, user: &str| {
        let ca = ca.clone();
        let user = user.to_owned();
        async move {
            let link = ca.invite(&user, &[], jit_ssh_audit::Actor::System).unwrap();
            let token = link.url.rsplit('/').next().unwrap().to_owned();
            let mut key = SoftPasskey::new(true);
            let options = ca.enroll_start(&token, client).unwrap();
            let reg = key
                .do_registration(Url::parse(ORIGIN).unwrap(), options)
                .unwrap();
            ca.enroll_finish(&token, &reg, client).unwrap();
            key
        }
    };
    let mut alice = enroll(&a, "alice").await;
    let mut lead1 = enroll(&a, "lead1").await;
    let lead2 = Mutex::new(enroll(&a, "lead2").await);

    for round in 0..4 {
        // alice asks for prod-db (two approvals from leads) and touches.
        let key = ssh_key::PrivateKey::random(
            &mut ssh_key::rand_core::OsRng,
            ssh_key::Algorithm::Ed25519,
        )
        .unwrap();
        let created = a
            .create_request(
                serde_json::from_value(serde_json::json!({
                    "user": "alice", "host": "db-1.prod", "account": "postgres", "ttl": "5m",
                    "reason": "incident 42", "public_key": key.public_key().to_openssh().unwrap(),
                }))
                .unwrap(),
                client,
            )
            .unwrap();
        let id = created.id;
        let c = a.confirm_start::<AccessRequest>(&id, client).unwrap();
        let touch = alice.do_authentication(origin.clone(), c).unwrap();
        let s = a
            .confirm_finish::<AccessRequest>(&id, &touch, client)
            .unwrap();
        assert_eq!(
            s.item.status,
            jit_ssh_proto::api::RequestStatus::PendingApproval
        );
        // lead1 approves: one of two.
        let decide = |ca: &Ca, who: &str| {
            ca.create_decision(
                &id,
                CreateDecision {
                    user: who.into(),
                    verdict: Verdict::Approve,
                    comment: String::new(),
                },
                client,
            )
            .unwrap()
            .id
        };
        let d1 = decide(&a, "lead1");
        let c = a.confirm_start::<PendingDecision>(&d1, client).unwrap();
        let touch = lead1.do_authentication(origin.clone(), c).unwrap();
        a.confirm_finish::<PendingDecision>(&d1, &touch, client)
            .unwrap();
        // lead2's last approval, twice, once on each replica, at once.
        let (x, y) = (decide(&a, "lead2"), decide(&b, "lead2"));
        let cx = a.confirm_start::<PendingDecision>(&x, client).unwrap();
        let cy = b.confirm_start::<PendingDecision>(&y, client).unwrap();
        let tx = lead2
            .lock()
            .unwrap()
            .do_authentication(origin.clone(), cx)
            .unwrap();
        let ty = lead2
            .lock()
            .unwrap()
            .do_authentication(origin.clone(), cy)
            .unwrap();
        std::thread::scope(|s| {
            let one = s.spawn(|| a.confirm_finish::<PendingDecision>(&x, &tx, client));
            std::thread::sleep(Duration::from_millis(50));
            let two = s.spawn(|| b.confirm_finish::<PendingDecision>(&y, &ty, client));
            let _ = (one.join().unwrap(), two.join().unwrap());
        });
        assert_eq!(
            certificates_for(&t.audit, &id),
            1,
            "round {round}: one request, one certificate"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_touches_on_two_replicas_issue_once() {
    let (t, a, b) = two_replicas();
    let client = t.client;
    let origin = Url::parse(ORIGIN).unwrap();
    let link = a
        .invite("alice", &[], jit_ssh_audit::Actor::System)
        .unwrap();
    let token = link.url.rsplit('/').next().unwrap().to_owned();
    let mut key = SoftPasskey::new(true);
    let options = a.enroll_start(&token, client).unwrap();
    let reg = key.do_registration(origin.clone(), options).unwrap();
    a.enroll_finish(&token, &reg, client).unwrap();

    for round in 0..4 {
        let ssh = ssh_key::PrivateKey::random(
            &mut ssh_key::rand_core::OsRng,
            ssh_key::Algorithm::Ed25519,
        )
        .unwrap();
        let id = a
            .create_request(
                serde_json::from_value(serde_json::json!({
                    "user": "alice", "host": "db-1.dev", "account": "oncall", "ttl": "5m",
                    "reason": "incident 42", "public_key": ssh.public_key().to_openssh().unwrap(),
                }))
                .unwrap(),
                client,
            )
            .unwrap()
            .id;
        let c = a.confirm_start::<AccessRequest>(&id, client).unwrap();
        let first = key.do_authentication(origin.clone(), c).unwrap();
        std::thread::scope(|s| {
            let one = s.spawn(|| a.confirm_finish::<AccessRequest>(&id, &first, client));
            std::thread::sleep(Duration::from_millis(100));
            // The second touch goes to the other replica.
            if let Ok(c) = b.confirm_start::<AccessRequest>(&id, client) {
                let second = key.do_authentication(origin.clone(), c).unwrap();
                let _ = b.confirm_finish::<AccessRequest>(&id, &second, client);
            }
            let _ = one.join().unwrap();
        });
        assert_eq!(
            certificates_for(&t.audit, &id),
            1,
            "round {round}: one request, one certificate"
        );
    }
}
