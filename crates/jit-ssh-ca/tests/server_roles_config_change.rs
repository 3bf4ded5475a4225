//! A sign-in's roles follow the config (session 12): someone the
//! operator takes a role from — the role removed from their `[[users]]`
//! entry, or the entry removed — loses it at their next request with a
//! token they already hold, not when the token ends (15 minutes later).
//! The config changes by a restart with the edited file; with replicas,
//! each answers by the config it runs, whichever made the sign-in.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod pg;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{config_text, TestCa};
use serde_json::Value;

use jit_ssh_audit::{Actor, AuditLog};
use jit_ssh_ca::policy::Role;
use jit_ssh_ca::store::{PgAuditLog, PgStore, Store};

/// The auditor's entry in [`config_text`], and the same without the role.
const AUD: &str = "name = \"aud\"\nroles = [\"auditor\"]\n";
const AUD_WITHOUT_ROLE: &str = "name = \"aud\"\n";

/// Reading alice's records: only the auditor, security and admin roles may.
async fn read_alices(t: &TestCa, token: &str) -> (StatusCode, Value) {
    t.get("/v1/audit?user=alice", Some(token)).await
}

/// The CA stopped and started again on its data dir with `config`.
fn restart(t: TestCa, config: &str) -> TestCa {
    let TestCa {
        dir,
        ca,
        router,
        audit,
        ..
    } = t;
    drop((ca, router, audit));
    TestCa::on_dir_with_config(dir, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_taken_from_the_config_ends_with_the_next_request() {
    let t = TestCa::on_dir_with_config(tempfile::tempdir().unwrap(), &config_text(""));
    t.enroll("alice").await;
    let mut aud = t.enroll("aud").await;
    let token = t.sign_in("aud", &mut aud).await;
    let (s, page) = read_alices(&t, &token).await;
    assert_eq!(s, StatusCode::OK, "{page}");

    let edited = config_text("").replace(AUD, AUD_WITHOUT_ROLE);
    assert_ne!(edited, config_text(""));
    let t = restart(t, &edited);
    let (s, page) = read_alices(&t, &token).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "the token kept the auditor role the config took away: {page}"
    );
    let (s, page) = t.get("/v1/recordings", Some(&token)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{page}");
    // The token still works for what is left: aud's own records.
    let (s, page) = t.get("/v1/audit", Some(&token)).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    // And says so.
    let id = token.split('.').next().unwrap();
    let secret = token.split('.').nth(1).unwrap();
    let (s, state) = t.get(&format!("/v1/sessions/{id}"), Some(secret)).await;
    assert_eq!(s, StatusCode::OK, "{state}");
    assert!(
        state["roles"].as_array().is_none_or(Vec::is_empty),
        "{state}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_role_ends_with_the_next_request_once_the_user_leaves_the_config() {
    let with_ex = config_text("") + "\n[[users]]\nname = \"ex\"\ngroups = [\"sre\"]\n";
    let t = TestCa::on_dir_with_config(tempfile::tempdir().unwrap(), &with_ex);
    t.enroll("alice").await;
    let (ca, roles) = (t.ca.clone(), vec![Role::Auditor]);
    let link = tokio::task::spawn_blocking(move || ca.invite("ex", &roles, Actor::System))
        .await
        .unwrap()
        .unwrap();
    let invite = link.url.rsplit('/').next().unwrap().to_owned();
    let mut ex = webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true);
    let reg = t.register(&invite, &mut ex).await;
    assert_eq!(t.finish_enroll(&invite, &reg).await.0, StatusCode::OK);
    let token = t.sign_in("ex", &mut ex).await;
    assert_eq!(read_alices(&t, &token).await.0, StatusCode::OK);

    // ex left: the operator removes the entry and restarts the CA.
    let t = restart(t, &config_text(""));
    let (s, page) = read_alices(&t, &token).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a token of someone removed from the config kept their invited role: {page}"
    );
}

/// The token never does more than its `signed_in` record says: a role
/// given after the sign-in needs a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_given_after_the_sign_in_needs_a_new_sign_in() {
    let t = TestCa::on_dir_with_config(tempfile::tempdir().unwrap(), &config_text(""));
    t.enroll("alice").await;
    let mut bob = t.enroll("bob").await;
    let token = t.sign_in("bob", &mut bob).await;
    assert_eq!(read_alices(&t, &token).await.0, StatusCode::FORBIDDEN);

    let bob_entry = "name = \"bob\"\ngroups = [\"sre\"]\nroles = [\"engineer\"]\n";
    let promoted = config_text("").replace(
        bob_entry,
        "name = \"bob\"\ngroups = [\"sre\"]\nroles = [\"engineer\", \"auditor\"]\n",
    );
    assert_ne!(promoted, config_text(""));
    let t = restart(t, &promoted);
    assert_eq!(read_alices(&t, &token).await.0, StatusCode::FORBIDDEN);
    let fresh = t.sign_in("bob", &mut bob).await;
    assert_eq!(read_alices(&t, &fresh).await.0, StatusCode::OK);
}

/// Two replicas on one database while a config change rolls out: B
/// already runs the config without aud's auditor role, A not yet. A
/// sign-in made on A reads everything on A, and only aud's own on B.
#[test]
fn a_sign_in_made_on_one_replica_holds_the_roles_of_the_replica_it_is_used_on() {
    let name = "a_sign_in_made_on_one_replica_holds_the_roles_of_the_replica_it_is_used_on";
    let Some(cfg) = pg::database(name) else {
        return;
    };
    // Opened outside the async runtime (the blocking driver).
    let open = || -> (Arc<dyn Store>, Arc<dyn AuditLog>) {
        (
            Arc::new(PgStore::open(&cfg).unwrap()),
            Arc::new(PgAuditLog::open(&cfg).unwrap()),
        )
    };
    let (sa, aa) = open();
    let (sb, ab) = open();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let a = TestCa::replica_with_config(&config_text(""), sa, aa);
            let b = TestCa::replica_with_config(
                &config_text("").replace(AUD, AUD_WITHOUT_ROLE),
                sb,
                ab,
            );
            a.enroll("alice").await;
            let mut aud = a.enroll("aud").await;
            let token = a.sign_in("aud", &mut aud).await;
            assert_eq!(read_alices(&a, &token).await.0, StatusCode::OK);
            let (s, page) = read_alices(&b, &token).await;
            assert_eq!(
                s,
                StatusCode::FORBIDDEN,
                "replica B honoured a role its config does not give: {page}"
            );
            assert_eq!(b.get("/v1/audit", Some(&token)).await.0, StatusCode::OK);
        });
}
