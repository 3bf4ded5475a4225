//! The CA takes "now" from its clock, never the system's: a request's
//! deadline and the certificate it gets follow the clock the CA was given.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::TestCa;
use jit_ssh_ca::clock::Clock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_and_certificates_follow_the_cas_clock() {
    let t = TestCa::new();
    let mut key = t.enroll("alice").await;
    t.clock.advance(Duration::from_secs(86_400));
    let now = t.clock.now_unix();
    let (s, created) = t.request("alice", "db-1.dev", "oncall", "10m").await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let expires = time::OffsetDateTime::parse(
        created["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    assert!(
        expires > now,
        "the deadline ignores the CA's clock: {created}"
    );
    let id = created["id"].as_str().unwrap();
    let (s, after, _) = t.touch(id, &mut key).await;
    assert_eq!(s, StatusCode::OK, "{after}");
    let (_, st) = t
        .get(&format!("/v1/requests/{id}"), created["secret"].as_str())
        .await;
    let cert = &st["certificate"];
    let valid_before = i64::try_from(cert["valid_before"].as_u64().unwrap()).unwrap();
    // Ten minutes from the CA's now (a day ahead of the system clock).
    assert!(
        (now + 600..=now + 605).contains(&valid_before),
        "valid_before {valid_before}, CA clock {now}"
    );
}
