//! Two approvers at once on two replicas (session 11's review): each
//! replica records its approver's verdict, then only one of the two
//! compare-and-swaps of the request wins. The audit log must not keep an
//! approval that did not count as if it had.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use jit_ssh_audit::{AuditLog, AuditQuery, Event};
use jit_ssh_ca::config;
use jit_ssh_ca::service::Ca;
use jit_ssh_ca::signer::FileSigner;
use jit_ssh_ca::store::{AccessRequest, PendingDecision, SledStore, Store};
use jit_ssh_proto::api::{CreateDecision, DecisionStatus, Verdict};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::Url;

use common::{AppendHook, TestCa, ORIGIN};

/// A replica on `store` whose approval records take a while (a slow
/// disk): both replicas have read the request before either swaps it.
fn replica(t: &TestCa, store: Arc<dyn Store>, key: ssh_key::PrivateKey) -> Arc<Ca> {
    let text = common::config_text("")
        .replace(
            "ONCALL_ICS",
            &t.dir.path().join("oncall.ics").display().to_string(),
        )
        .replace("WEBHOOK_URL", "http://127.0.0.1:9/hook");
    let audit: Arc<dyn AuditLog> = Arc::new(AppendHook {
        inner: t.audit.clone(),
        before: |event: &Event| {
            if matches!(event, Event::RequestApproved(_)) {
                std::thread::sleep(Duration::from_millis(300));
            }
            Ok(())
        },
        on_ready: None,
    });
    let ca = Ca::new(
        config::parse(&text, "test").unwrap(),
        Arc::new(FileSigner::new(key)),
        store,
        audit,
    )
    .unwrap();
    Arc::new(ca)
}

fn enroll(ca: &Ca, user: &str, client: std::net::SocketAddr) -> SoftPasskey {
    let link = ca.invite(user, &[], jit_ssh_audit::Actor::System).unwrap();
    let token = link.url.rsplit('/').next().unwrap().to_owned();
    let mut key = SoftPasskey::new(true);
    let options = ca.enroll_start(&token, client).unwrap();
    let reg = key
        .do_registration(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    ca.enroll_finish(&token, &reg, client).unwrap();
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_that_lost_the_race_is_not_left_in_the_log_as_counted() {
    let t = TestCa::new();
    let store: Arc<dyn Store> =
        Arc::new(SledStore::open(&t.dir.path().join("replicated-state")).unwrap());
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let (a, b) = (
        replica(&t, store.clone(), key.clone()),
        replica(&t, store, key),
    );
    let client = t.client;
    let origin = Url::parse(ORIGIN).unwrap();
    let mut alice = enroll(&a, "alice", client);
    let mut lead1 = enroll(&a, "lead1", client);
    let mut lead2 = enroll(&a, "lead2", client);

    // alice asks for prod-db (two approvals from leads) and touches.
    let ssh =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let id = a
        .create_request(
            serde_json::from_value(serde_json::json!({
                "user": "alice", "host": "db-1.prod", "account": "postgres", "ttl": "5m",
                "reason": "incident 42", "public_key": ssh.public_key().to_openssh().unwrap(),
            }))
            .unwrap(),
            client,
        )
        .unwrap()
        .id;
    let c = a.confirm_start::<AccessRequest>(&id, client).unwrap();
    let touch = alice.do_authentication(origin.clone(), c).unwrap();
    a.confirm_finish::<AccessRequest>(&id, &touch, client)
        .unwrap();

    // lead1 on one replica, lead2 on the other, at once: each the first.
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
    let (x, y) = (decide(&a, "lead1"), decide(&b, "lead2"));
    let cx = a.confirm_start::<PendingDecision>(&x, client).unwrap();
    let cy = b.confirm_start::<PendingDecision>(&y, client).unwrap();
    let tx = lead1.do_authentication(origin.clone(), cx).unwrap();
    let ty = lead2.do_authentication(origin.clone(), cy).unwrap();
    let (rx, ry) = std::thread::scope(|s| {
        let one = s.spawn(|| a.confirm_finish::<PendingDecision>(&x, &tx, client));
        let two = s.spawn(|| b.confirm_finish::<PendingDecision>(&y, &ty, client));
        (one.join().unwrap(), two.join().unwrap())
    });
    let counted: Vec<&str> = [("lead1", &rx), ("lead2", &ry)]
        .into_iter()
        .filter(|(_, r)| {
            r.as_ref()
                .is_ok_and(|c| c.item.status == DecisionStatus::Recorded)
        })
        .map(|(who, _)| who)
        .collect();
    // What the log says: approvals recorded, less those refused after.
    let records = t
        .audit
        .query(&AuditQuery {
            grant: Some(id.clone()),
            ..AuditQuery::default()
        })
        .unwrap();
    let mut in_log: Vec<String> = Vec::new();
    for r in &records {
        match &r.event {
            Event::RequestApproved(s) => in_log.push(s.approver.clone()),
            Event::ApprovalRefused(s) => in_log.retain(|w| *w != s.approver),
            _ => {}
        }
    }
    let state = a
        .confirm_start::<AccessRequest>(&id, client)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        in_log, counted,
        "the log counts approvals the request does not ({rx:?} / {ry:?}; {state:?})"
    );
}
