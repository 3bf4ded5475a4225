//! A single-node CA on the embedded store, `kill -9`ed right after it
//! issued a certificate (what a power cut does), then started again: the
//! request still says `issued` (recordings of its sessions are checked
//! against that), and the touch that got the certificate cannot be
//! replayed for a second one. sled writes to disk on its own only every
//! half second, so both were lost before the store flushed at a claim
//! and at an issuance.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod replicas;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::RequestChallengeResponse;

use replicas::{init_ca, origin, serial_of, ssh_public_key, write_config_with, Client, Replica};

const PATIENCE: Duration = Duration::from_secs(30);

async fn post(client: &Client, path: &str, body: &Value) -> Value {
    client
        .step(&mut 0, Method::POST, path, None, Some(body), PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e:?}"))
}

async fn state(client: &Client, id: &str, secret: &str) -> Value {
    let path = format!("/v1/requests/{id}");
    client
        .step(&mut 0, Method::GET, &path, Some(secret), None, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e:?}"))
}

#[test]
fn a_crash_right_after_an_issuance_keeps_it_issued_and_its_touch_spent() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path());
    let config = write_config_with(tmp.path(), "solo", "", 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut ca = Replica::start(&config);
    let client = Client::new(vec![ca.base.clone()]);

    let (id, secret, assertion, serial) = rt.block_on(async {
        let mut key = client.enroll(&config, "u0").await;
        let created = post(
            &client,
            "/v1/requests",
            &json!({"user": "u0", "host": "db-1.dev", "account": "oncall", "ttl": "10m",
                    "reason": "crash test", "public_key": ssh_public_key()}),
        )
        .await;
        let id = created["id"].as_str().unwrap().to_owned();
        let secret = created["secret"].as_str().unwrap().to_owned();
        let challenge: RequestChallengeResponse = serde_json::from_value(
            post(&client, &format!("/v1/requests/{id}/mfa/start"), &json!({})).await,
        )
        .unwrap();
        // Long enough for sled's own flush (every 500 ms) to have written
        // the request and the ceremony: what a crash then takes back is
        // only what the touch changed.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let assertion =
            serde_json::to_value(key.do_authentication(origin(), challenge).unwrap()).unwrap();
        post(
            &client,
            &format!("/v1/requests/{id}/mfa/finish"),
            &assertion,
        )
        .await;
        let issued = state(&client, &id, &secret).await;
        assert_eq!(issued["status"], "issued", "{issued}");
        (id, secret, assertion, serial_of(&issued))
    });
    ca.kill();

    let ca = Replica::start(&config);
    let client = Client::new(vec![ca.base.clone()]);
    rt.block_on(async {
        let after = state(&client, &id, &secret).await;
        assert_eq!(
            after["status"], "issued",
            "the issuance was lost in the crash: {after}"
        );
        assert_eq!(serial_of(&after), serial);
        let replayed = client
            .step(
                &mut 0,
                Method::POST,
                &format!("/v1/requests/{id}/mfa/finish"),
                None,
                Some(&assertion),
                PATIENCE,
            )
            .await;
        assert!(
            matches!(replayed, Err(replicas::StepError::Refused(status, _)) if (400..500).contains(&status)),
            "the touch was replayed after the crash: {replayed:?}"
        );
        let again = state(&client, &id, &secret).await;
        assert_eq!(serial_of(&again), serial, "{again}");
    });
}
