//! Roles an invite granted (session 11's review): they hold only while the
//! user is in the config's `[[users]]`. An operator who removes someone
//! from the config (they left) also ends what their invite granted:
//! reading every audit record and recording, revoking.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{config_text, TestCa};
use serde_json::json;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use jit_ssh_audit::Actor;
use jit_ssh_ca::policy::Role;

/// Invites `user` with `roles` and enrolls a fresh soft passkey.
async fn enroll_with(t: &TestCa, user: &str, roles: Vec<Role>) -> SoftPasskey {
    let (ca, name) = (t.ca.clone(), user.to_owned());
    let link = tokio::task::spawn_blocking(move || ca.invite(&name, &roles, Actor::System))
        .await
        .unwrap()
        .unwrap();
    let token = link.url.rsplit('/').next().unwrap().to_owned();
    let mut key = SoftPasskey::new(true);
    let reg = t.register(&token, &mut key).await;
    assert_eq!(t.finish_enroll(&token, &reg).await.0, StatusCode::OK);
    key
}

/// Signs `user` in; the roles the sign-in carries.
async fn roles(t: &TestCa, user: &str, key: &mut SoftPasskey) -> serde_json::Value {
    let (s, created) = t.post("/v1/sessions", &json!({ "user": user })).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let (s, state, _) = t
        .confirm("sessions", created["id"].as_str().unwrap(), key)
        .await;
    assert_eq!(s, StatusCode::OK, "{state}");
    state["roles"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_an_invite_granted_end_when_the_user_leaves_the_config() {
    let with_ex = config_text("") + "\n[[users]]\nname = \"ex\"\ngroups = [\"sre\"]\n";
    let t = TestCa::on_dir_with_config(tempfile::tempdir().unwrap(), &with_ex);
    let mut ex = enroll_with(&t, "ex", vec![Role::Auditor, Role::Security]).await;
    assert_eq!(
        roles(&t, "ex", &mut ex).await,
        json!(["security", "auditor"])
    );

    // The operator removes ex from the config and restarts the CA.
    let TestCa {
        dir,
        ca,
        router,
        audit,
        ..
    } = t;
    drop((ca, router, audit));
    let t = TestCa::on_dir_with_config(dir, &config_text(""));

    // A sign-in without roles leaves the field out.
    let left = roles(&t, "ex", &mut ex).await;
    assert!(
        left.as_array().is_none_or(Vec::is_empty),
        "ex kept invited roles: {left}"
    );
    let (s, created) = t
        .post(
            "/v1/revocations",
            &json!({"user": "ex", "target": {"user": "alice"}, "reason": "spite"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{created}");
}
