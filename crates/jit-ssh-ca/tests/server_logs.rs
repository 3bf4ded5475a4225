//! No secret reaches the log: not the request secret, not the one-time
//! enrollment token, not the WebAuthn assertion. (Its own test binary: it
//! installs a global log subscriber.)

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use common::{TestCa, ORIGIN};
use serde_json::json;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::Url;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_logged() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,jit_ssh_ca=trace,jit_ssh_audit=info",
        ))
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();

    let t = TestCa::new();
    let link =
        t.ca.invite("alice", &[], jit_ssh_audit::Actor::System)
            .unwrap();
    let token = link.url.rsplit('/').next().unwrap().to_owned();
    let mut key = SoftPasskey::new(true);
    let (_, opts) = t
        .post(&format!("/v1/enroll/{token}/start"), &json!({}))
        .await;
    let reg = key
        .do_registration(
            Url::parse(ORIGIN).unwrap(),
            serde_json::from_value(opts).unwrap(),
        )
        .unwrap();
    let reg = serde_json::to_value(&reg).unwrap();
    assert_eq!(
        t.post(&format!("/v1/enroll/{token}/finish"), &reg).await.0,
        StatusCode::OK
    );

    let (_, created) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    let id = created["id"].as_str().unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let (s, _, assertion) = t.touch(id, &mut key).await;
    assert_eq!(s, StatusCode::OK);
    // A failed attempt logs its reason, but not what was sent.
    let (s, _) = t
        .post(&format!("/v1/requests/{id}/mfa/finish"), &assertion)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (_, state) = t.get(&format!("/v1/requests/{id}"), Some(&secret)).await;
    assert_eq!(state["status"], "issued");

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works: the flow's events are there.
    for needle in [
        "audit record",
        "certificate_issued",
        "access request created",
        "certificate issued",
        "WebAuthn check failed",
        "route=\"/v1/requests/{id}\"",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
    let secrets = [
        ("request secret", secret.clone()),
        ("invite token", token.clone()),
        (
            "assertion signature",
            assertion["response"]["signature"]
                .as_str()
                .unwrap()
                .to_owned(),
        ),
        (
            "assertion client data",
            assertion["response"]["clientDataJSON"]
                .as_str()
                .unwrap()
                .to_owned(),
        ),
        (
            "attestation",
            reg["response"]["attestationObject"].as_str().unwrap()[..40].to_owned(),
        ),
    ];
    for (what, value) in secrets {
        assert!(!log.contains(&value), "the log contains the {what}:\n{log}");
    }
}
