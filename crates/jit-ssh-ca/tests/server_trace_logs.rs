//! At `trace`, the production log setup still shows no secret: not the
//! WebAuthn registration or authentication state (their challenges), the
//! attestation, the assertion, the request secret, the session token or
//! the invite token. Our crates log at every level; dependencies (which
//! print some of these at debug and trace) are capped at info. (Its own
//! test binary: it installs the global subscriber.)

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use common::{TestCa, ORIGIN};
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{RequestChallengeResponse, Url};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn challenge(options: &Value) -> String {
    options["publicKey"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_and_login_at_trace_log_no_secret() {
    let captured = Captured::default();
    let sink = captured.clone();
    // What `jit-ssh-ca serve` does with JIT_SSH_LOG=trace, in both formats'
    // text form.
    jit_ssh_ca::logging::init(
        tracing_subscriber::EnvFilter::new("trace"),
        false,
        false,
        move || sink.clone(),
    );

    // The filter passes trace from our crates and caps dependencies.
    tracing::trace!(target: "jit_ssh_ca::probe", "our trace passes");
    tracing::trace!(target: "webauthn_rs_core::core", "dependency trace passes");
    tracing::debug!(target: "h2::frame", "dependency debug passes");

    let t = TestCa::new();
    // Enrollment.
    let link =
        t.ca.invite("alice", &[], jit_ssh_audit::Actor::System)
            .unwrap();
    let token = link.url.rsplit('/').next().unwrap().to_owned();
    let mut key = SoftPasskey::new(true);
    let (s, reg_options) = t
        .post(&format!("/v1/enroll/{token}/start"), &json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{reg_options}");
    let reg = key
        .do_registration(
            Url::parse(ORIGIN).unwrap(),
            serde_json::from_value(reg_options.clone()).unwrap(),
        )
        .unwrap();
    let reg = serde_json::to_value(&reg).unwrap();
    let (s, done) = t.post(&format!("/v1/enroll/{token}/finish"), &reg).await;
    assert_eq!(s, StatusCode::OK, "{done}");

    // Login: a request confirmed with the key.
    let (_, created) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let (s, auth_options) = t
        .post(&format!("/v1/requests/{id}/mfa/start"), &json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{auth_options}");
    let options: RequestChallengeResponse = serde_json::from_value(auth_options.clone()).unwrap();
    let assertion = serde_json::to_value(
        key.do_authentication(Url::parse(ORIGIN).unwrap(), options)
            .unwrap(),
    )
    .unwrap();
    let (s, v) = t
        .post(&format!("/v1/requests/{id}/mfa/finish"), &assertion)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, state) = t.get(&format!("/v1/requests/{id}"), Some(&secret)).await;
    assert_eq!(state["status"], "issued");
    // A sign-in (session token).
    let session = t.sign_in("alice", &mut key).await;

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works, at trace: the flow's events are there.
    for needle in [
        "certificate issued",
        "credential enrolled",
        "our trace passes",
        "audit record",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
    assert!(!log.contains("dependency trace passes") && !log.contains("dependency debug passes"));
    let response = |v: &Value, field: &str| v["response"][field].as_str().unwrap().to_owned();
    let secrets = [
        ("invite token", token.clone()),
        ("registration challenge (state)", challenge(&reg_options)),
        ("attestation object", response(&reg, "attestationObject")),
        ("registration client data", response(&reg, "clientDataJSON")),
        ("authentication challenge (state)", challenge(&auth_options)),
        ("assertion signature", response(&assertion, "signature")),
        (
            "assertion client data",
            response(&assertion, "clientDataJSON"),
        ),
        (
            "assertion authenticator data",
            response(&assertion, "authenticatorData"),
        ),
        ("request secret", secret.clone()),
        // The token is `ID.SECRET`; the id alone is no secret.
        (
            "session secret",
            session.split_once('.').unwrap().1.to_owned(),
        ),
    ];
    for (what, value) in secrets {
        // Also a prefix: a log may cut or re-encode the tail.
        let head = &value[..value.len().min(24)];
        assert!(
            !log.contains(&value) && !log.contains(head),
            "the log contains the {what} ({head}…)"
        );
    }
    // The state's Debug form would show these.
    for marker in [
        "PasskeyRegistration",
        "RegistrationState",
        "AuthenticationState",
        "attestation is",
    ] {
        assert!(!log.contains(marker), "the log contains {marker:?}");
    }
}
