//! Host check-in through the router: an enrolled host proves its key and
//! current certificate, reports what it holds (the inventory shows it and
//! flags a host behind on its KRL), and gets a new certificate when a
//! third of the validity is left. A stolen certificate without the key, a
//! certificate a renewal replaced, a removed host, a replayed challenge
//! and malformed bodies are refused and change nothing.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::TestCa;
use serde_json::{json, Value};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, SshSig};

use jit_ssh_audit::{Actor, AuditLog, AuditQuery};
use jit_ssh_proto::host_checkin::{
    checkin_message, CheckedInDocument, HostReport, HOST_CHECKED_IN_NAMESPACE,
    HOST_CHECKIN_NAMESPACE,
};
use jit_ssh_proto::hosts::{challenge_message, EnrolledDocument, HOST_ENROLL_NAMESPACE};

fn host_key() -> PrivateKey {
    PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).unwrap()
}

fn operator() -> Actor {
    Actor::Operator {
        login: "test".into(),
    }
}

fn sign(key: &PrivateKey, namespace: &str, msg: &str) -> String {
    key.sign(namespace, HashAlg::Sha512, msg.as_bytes())
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap()
}

/// Enrolls `name` with `key`; returns its certificate line.
async fn enrolled(t: &TestCa, name: &str, key: &PrivateKey) -> String {
    enrolled_with_aliases(t, name, &[], key).await
}

/// Enrolled by a token for `db*.dev`, with these aliases.
async fn enrolled_with_aliases(
    t: &TestCa,
    name: &str,
    aliases: &[&str],
    key: &PrivateKey,
) -> String {
    let pattern = (!aliases.is_empty()).then_some("db*.dev");
    let tok =
        t.ca.create_host_token("dev", pattern, None, 1, operator())
            .unwrap()
            .token;
    let mut body = json!({"token_id": tok.id, "token_secret": tok.secret, "name": name,
                          "host_key": key.public_key().to_openssh().unwrap()});
    if !aliases.is_empty() {
        body["aliases"] = json!(aliases);
    }
    let (s, c) = t.post("/v1/hosts/enroll", &body).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let id = c["id"].as_str().unwrap();
    let msg = challenge_message(id, c["nonce"].as_str().unwrap());
    let (s, done) = t
        .post(
            &format!("/v1/hosts/enroll/{id}"),
            &json!({"signature": sign(key, HOST_ENROLL_NAMESPACE, &msg)}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    let doc: EnrolledDocument = serde_json::from_str(done["document"].as_str().unwrap()).unwrap();
    doc.certificate
}

async fn challenge(t: &TestCa, name: &str) -> Value {
    let (s, c) = t.post("/v1/hosts/checkin", &json!({ "name": name })).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    c
}

fn report(krl_signed_at: Option<u64>) -> String {
    serde_json::to_string(&HostReport {
        krl_version: 4,
        krl_signed_at,
        ca_keys_signed_at: krl_signed_at,
        last_error: Some("fetch failed \u{1b}[2J".into()),
    })
    .unwrap()
}

/// Checks in as `name` with `cert`, signed by `signer`.
async fn checkin(
    t: &TestCa,
    name: &str,
    cert: &str,
    report: &str,
    signer: &PrivateKey,
) -> (StatusCode, Value) {
    let c = challenge(t, name).await;
    let id = c["id"].as_str().unwrap();
    let msg = checkin_message(id, c["nonce"].as_str().unwrap(), cert, report);
    t.post(
        &format!("/v1/hosts/checkin/{id}"),
        &json!({"certificate": cert, "report": report,
                "signature": sign(signer, HOST_CHECKIN_NAMESPACE, &msg)}),
    )
    .await
}

fn document(t: &TestCa, answer: &Value) -> CheckedInDocument {
    let doc = answer["document"].as_str().unwrap();
    let sig = SshSig::from_pem(answer["signature"].as_str().unwrap()).unwrap();
    t.ca.signer()
        .public_key()
        .verify(HOST_CHECKED_IN_NAMESPACE, doc.as_bytes(), &sig)
        .unwrap();
    serde_json::from_str(doc).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn message(e: &Value) -> &str {
    e["error"]["message"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_checks_in_with_its_key_and_the_inventory_shows_what_it_holds() {
    let t = TestCa::new();
    let key = host_key();
    let cert = enrolled(&t, "db-1.dev", &key).await;

    // Just enrolled: nothing reported yet, not behind, not silent.
    let list = t.ca.hosts().unwrap();
    assert_eq!(list.hosts[0].krl_version, None);
    assert!(!list.hosts[0].behind_on_krl && !list.hosts[0].silent);

    let (s, answer) = checkin(&t, "db-1.dev", &cert, &report(Some(now())), &key).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    let doc = document(&t, &answer);
    assert_eq!(doc.name, "db-1.dev");
    // A fresh 7-day certificate is not renewed.
    assert_eq!(doc.certificate, None);
    let h = &t.ca.hosts().unwrap().hosts[0];
    assert_eq!(h.krl_version, Some(4));
    assert!(!h.behind_on_krl, "{h:?}");
    // The reported error is kept escaped: it is shown in terminals.
    let err = h.last_error.as_deref().unwrap();
    assert!(
        err.starts_with("fetch failed") && !err.contains('\u{1b}'),
        "{err}"
    );

    // A host holding a KRL signed an hour ago is behind on revocations.
    let (s, _) = checkin(&t, "db-1.dev", &cert, &report(Some(now() - 3600)), &key).await;
    assert_eq!(s, StatusCode::OK);
    assert!(t.ca.hosts().unwrap().hosts[0].behind_on_krl);
    // Metrics count it too (and name no host).
    let scrape = t.ca.metrics.render(&t.ca);
    for line in [
        "jit_ssh_hosts_enrolled 1",
        "jit_ssh_hosts_behind_on_krl 1",
        "jit_ssh_hosts_silent 0",
    ] {
        assert!(
            scrape.lines().any(|l| l == line),
            "no {line:?} in:\n{scrape}"
        );
    }
    assert!(!scrape.contains("db-1.dev"));
    let mut aud = t.enroll("aud").await;
    let auditor = t.sign_in("aud", &mut aud).await;
    let (s, list) = t.get("/v1/hosts", Some(&auditor)).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["hosts"][0]["behind_on_krl"], true, "{list}");
    assert_eq!(list["hosts"][0]["krl_version"], 4, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_certificate_without_the_key_cannot_check_in() {
    let t = TestCa::new();
    let key = host_key();
    let cert = enrolled(&t, "db-1.dev", &key).await;
    let before = t.ca.hosts().unwrap().hosts[0].clone();
    let records = t.audit_count();

    let thief = host_key();
    let (s, e) = checkin(&t, "db-1.dev", &cert, &report(Some(now())), &thief).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(message(&e).contains("not signed by the host key"), "{e}");
    // A certificate for another name, and a user certificate, are refused too.
    let other_key = host_key();
    let other = enrolled(&t, "db-2.dev", &other_key).await;
    let (s, e) = checkin(&t, "db-1.dev", &other, &report(None), &other_key).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(
        message(&e).contains("not a current host certificate"),
        "{e}"
    );

    // Nothing changed for db-1.dev; each refusal is audited.
    assert_eq!(t.ca.hosts().unwrap().hosts[0], before);
    let refused = t
        .audit
        .query(&AuditQuery::default())
        .unwrap()
        .into_iter()
        .filter(|r| r.event.kind() == "host_checkin_refused")
        .count();
    assert_eq!(refused, 2);
    assert!(t.audit_count() > records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_answer_once_and_bad_bodies_change_nothing() {
    let t = TestCa::new();
    let key = host_key();
    let cert = enrolled(&t, "db-1.dev", &key).await;
    let before = t.ca.hosts().unwrap().hosts[0].clone();

    let c = challenge(&t, "db-1.dev").await;
    let id = c["id"].as_str().unwrap();
    let r = report(None);
    let msg = checkin_message(id, c["nonce"].as_str().unwrap(), &cert, &r);
    let body = json!({"certificate": cert, "report": r,
                      "signature": sign(&key, HOST_CHECKIN_NAMESPACE, &msg)});
    let path = format!("/v1/hosts/checkin/{id}");
    assert_eq!(t.post(&path, &body).await.0, StatusCode::OK);
    // Replayed: the challenge is spent.
    assert_eq!(t.post(&path, &body).await.0, StatusCode::NOT_FOUND);
    // The report is part of what is signed: changing it breaks the proof.
    let c = challenge(&t, "db-1.dev").await;
    let id = c["id"].as_str().unwrap();
    let msg = checkin_message(id, c["nonce"].as_str().unwrap(), &cert, &r);
    let (s, e) = t
        .post(
            &format!("/v1/hosts/checkin/{id}"),
            &json!({"certificate": cert, "report": report(Some(1)),
                    "signature": sign(&key, HOST_CHECKIN_NAMESPACE, &msg)}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    // An enrollment challenge is not a check-in challenge.
    let tok =
        t.ca.create_host_token("dev", None, None, 1, operator())
            .unwrap()
            .token;
    let (_, enroll) = t
        .post(
            "/v1/hosts/enroll",
            &json!({"token_id": tok.id, "token_secret": tok.secret, "name": "db-9.dev",
                    "host_key": key.public_key().to_openssh().unwrap()}),
        )
        .await;
    let eid = enroll["id"].as_str().unwrap();
    assert_eq!(
        t.post(&format!("/v1/hosts/checkin/{eid}"), &body).await.0,
        StatusCode::NOT_FOUND
    );

    // Malformed: unknown fields, a report that is not one, a bad name,
    // a certificate that is not one, an oversized body.
    let c = challenge(&t, "db-1.dev").await;
    let path = format!("/v1/hosts/checkin/{}", c["id"].as_str().unwrap());
    for bad in [
        json!({"certificate": cert, "report": r, "signature": "x", "extra": 1}),
        json!({"certificate": cert, "report": "{\"krl_version\": \"many\"}", "signature": "x"}),
        json!({"certificate": "ssh-ed25519 AAAA", "report": r, "signature": "x"}),
    ] {
        let (s, e) = t.post(&path, &bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {e}");
    }
    let (s, _) = t
        .post("/v1/hosts/checkin", &json!({"name": "Not A Name!"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = t
        .post(
            &path,
            &json!({"certificate": "x".repeat(20_000), "report": r, "signature": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        t.ca.hosts().unwrap().hosts[0].cert_serial,
        before.cert_serial
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_host_cannot_check_in() {
    let t = TestCa::new();
    let key = host_key();
    let cert = enrolled(&t, "db-1.dev", &key).await;
    t.ca.remove_host("db-1.dev", operator()).unwrap();
    let (s, e) = checkin(&t, "db-1.dev", &cert, &report(None), &key).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(message(&e).contains("not enrolled"), "{e}");
    assert!(t.ca.hosts().unwrap().hosts.is_empty());
}

/// Seven-day certificates: renewed once less than 2⅓ days are left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_with_a_third_left_is_renewed_once_and_the_old_one_is_refused() {
    let t = TestCa::new();
    let key = host_key();
    let cert = enrolled(&t, "db-1.dev", &key).await;
    t.clock.advance(std::time::Duration::from_secs(4 * 86_400));
    let (s, answer) = checkin(&t, "db-1.dev", &cert, &report(None), &key).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    assert_eq!(document(&t, &answer).certificate, None);

    t.clock.advance(std::time::Duration::from_secs(86_400));
    let (s, answer) = checkin(&t, "db-1.dev", &cert, &report(None), &key).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    let new = document(&t, &answer).certificate.expect("renewed");
    let new_cert = ssh_key::Certificate::from_openssh(&new).unwrap();
    let old_cert = ssh_key::Certificate::from_openssh(&cert).unwrap();
    assert_ne!(new_cert.serial(), old_cert.serial());
    assert!(new_cert.valid_before() > old_cert.valid_before());
    assert_eq!(new_cert.public_key(), key.public_key().key_data());
    let h = &t.ca.hosts().unwrap().hosts[0];
    assert_eq!(h.cert_serial, new_cert.serial());
    // Audited as the host, with the new serial.
    let renewed: Vec<_> = t
        .audit
        .query(&AuditQuery::default())
        .unwrap()
        .into_iter()
        .filter(|r| r.event.kind() == "host_renewed")
        .collect();
    assert_eq!(renewed.len(), 1);
    assert_eq!(renewed[0].event.serials(), [new_cert.serial()]);
    assert!(matches!(&renewed[0].actor, Actor::Host { name, .. } if name == "db-1.dev"));

    // The replaced certificate no longer checks in, even with the key.
    let (s, e) = checkin(&t, "db-1.dev", &cert, &report(None), &key).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(
        message(&e).contains("not the current host certificate"),
        "{e}"
    );
    // The new one does, and is not renewed again.
    let (s, answer) = checkin(&t, "db-1.dev", &new, &report(None), &key).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    assert_eq!(document(&t, &answer).certificate, None);
}

/// A renewal's record names every name the new certificate vouches for
/// (the aliases were missing: session 12's review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_is_audited_with_the_aliases_its_certificate_holds() {
    let t = TestCa::new();
    let key = host_key();
    let cert = enrolled_with_aliases(&t, "db-1.dev", &["db.dev"], &key).await;
    t.clock.advance(std::time::Duration::from_secs(5 * 86_400));
    let (s, answer) = checkin(&t, "db-1.dev", &cert, &report(None), &key).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    let new = document(&t, &answer).certificate.expect("renewed");
    let new_cert = ssh_key::Certificate::from_openssh(&new).unwrap();
    assert_eq!(new_cert.valid_principals(), ["db-1.dev", "db.dev"]);
    let renewed = t
        .audit
        .query(&AuditQuery {
            kinds: vec!["host_renewed".into()],
            ..Default::default()
        })
        .unwrap();
    let event = serde_json::to_value(&renewed[0].event).unwrap();
    assert_eq!(event["aliases"], json!(["db.dev"]), "{event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_challenges_are_pruned_once_expired() {
    let t = TestCa::new();
    let cert = enrolled(&t, "db-1.dev", &host_key()).await;
    let c = challenge(&t, "db-1.dev").await;
    let now = i64::try_from(now()).unwrap();
    assert_eq!(t.ca.prune_state(now).unwrap().host_challenges, 0);
    assert_eq!(t.ca.prune_state(now + 301).unwrap().host_challenges, 1);
    let (s, _) = t
        .post(
            &format!("/v1/hosts/checkin/{}", c["id"].as_str().unwrap()),
            &json!({"certificate": cert, "report": report(None), "signature": "x"}),
        )
        .await;
    // Gone: not even the signature is looked at.
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// Anyone may ask for a check-in challenge under any name. Asking must not
/// spend the host's own budget: ten unauthenticated posts a minute would
/// otherwise keep a host from checking in, and so from renewing, forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_asking_for_challenges_do_not_use_up_a_hosts_check_ins() {
    let t = TestCa::new();
    let key = host_key();
    let cert = enrolled(&t, "db-1.dev", &key).await;
    for _ in 0..12 {
        let (s, e) = t
            .post("/v1/hosts/checkin", &json!({ "name": "db-1.dev" }))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{e}");
    }
    let (s, answer) = checkin(&t, "db-1.dev", &cert, &report(Some(now())), &key).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    // The host's proven check-ins are still bounded (sync runs every 30 s).
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(
            checkin(&t, "db-1.dev", &cert, &report(Some(now())), &key)
                .await
                .0,
        );
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        9,
        "{statuses:?}"
    );
}

/// The renewal's audit record is written after the inventory moved on to
/// the new serial. When that append fails (a full disk) the certificate
/// never leaves the CA, so the inventory must still name the one the
/// host holds: else every later check-in is refused as "replaced" and the
/// host must enroll again with a new token once the disk is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_the_audit_log_refused_leaves_the_host_its_certificate() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let disk_full = std::sync::Arc::new(AtomicBool::new(false));
    let full = disk_full.clone();
    let t = TestCa::build("", move |inner| {
        let hook: std::sync::Arc<dyn AuditLog> = std::sync::Arc::new(common::AppendHook {
            inner,
            before: move |_: &jit_ssh_audit::Event| {
                if full.load(Ordering::SeqCst) {
                    Err(common::refused_append())
                } else {
                    Ok(())
                }
            },
            on_ready: None,
        });
        hook
    });
    let key = host_key();
    let cert = enrolled(&t, "db-1.dev", &key).await;
    let before = t.ca.hosts().unwrap().hosts[0].clone();
    t.clock.advance(std::time::Duration::from_secs(5 * 86_400));

    disk_full.store(true, Ordering::SeqCst);
    let (s, e) = checkin(&t, "db-1.dev", &cert, &report(None), &key).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{e}");
    assert_eq!(
        t.ca.hosts().unwrap().hosts[0].cert_serial,
        before.cert_serial,
        "the inventory names a certificate nobody holds"
    );

    disk_full.store(false, Ordering::SeqCst);
    let (s, answer) = checkin(&t, "db-1.dev", &cert, &report(None), &key).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    let new = document(&t, &answer).certificate.expect("renewed");
    let new = ssh_key::Certificate::from_openssh(&new).unwrap();
    assert_eq!(t.ca.hosts().unwrap().hosts[0].cert_serial, new.serial());
}

/// During a host CA key rotation a host whose certificate the previous
/// host CA key signed still checks in, and gets a certificate from the
/// active key at once (not only when a third of its validity is left), so
/// the fleet is off the previous key well before it is retired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_host_ca_rotation_a_check_in_renews_onto_the_next_key() {
    use jit_ssh_ca::service::KeyRole;
    let t = TestCa::with_policy("", "\n[hosts]\nhost_ca_key = \"unused\"\n");
    let key = host_key();
    let cert = enrolled(&t, "db-1.dev", &key).await;
    let old = ssh_key::Certificate::from_openssh(&cert).unwrap();
    t.ca.rotate_stage(KeyRole::Host, None, operator()).unwrap();
    let next =
        t.ca.rotate_activate(KeyRole::Host, operator())
            .unwrap()
            .active;

    let (s, answer) = checkin(&t, "db-1.dev", &cert, &report(Some(now())), &key).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    let doc = document(&t, &answer);
    assert_eq!(doc.host_ca_keys.len(), 2);
    let renewed = ssh_key::Certificate::from_openssh(&doc.certificate.unwrap()).unwrap();
    assert_ne!(renewed.signature_key(), old.signature_key());
    assert_eq!(
        ssh_key::PublicKey::from(renewed.signature_key().clone())
            .fingerprint(HashAlg::Sha256)
            .to_string(),
        next
    );
}
