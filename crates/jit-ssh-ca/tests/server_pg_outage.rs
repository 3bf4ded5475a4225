//! The CA on PostgreSQL while the database is down: requests are answered
//! 503 `unavailable` with `Retry-After` (so clients move to another
//! replica or retry), nothing is recorded or issued, `/readyz` names the
//! store; when the database is back the same CA serves again without a
//! restart. Its own binary: it stops the cluster other tests would share.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use jit_ssh_audit::AuditLog;
use jit_ssh_ca::store::PgStore;

use common::TestCa;

fn request_body() -> serde_json::Value {
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    serde_json::json!({
        "user": "alice", "host": "db-1.prod", "account": "postgres", "ttl": "5m",
        "reason": "incident 42", "public_key": key.public_key().to_openssh().unwrap(),
    })
}

#[test]
fn a_replica_whose_database_is_down_answers_503_and_recovers() {
    let name = "a_replica_whose_database_is_down_answers_503_and_recovers";
    let Some(cluster) = pg::cluster(name) else {
        return;
    };
    let cfg = jit_ssh_ca::config::storage::PostgresConfig {
        connect_timeout: Duration::from_secs(1),
        ..cluster.database()
    };
    // The blocking driver connects outside the async runtime, as `serve`
    // opens its store before starting one.
    let store = Arc::new(PgStore::open(&cfg).unwrap());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(down_and_back(cluster, store));
}

async fn down_and_back(cluster: &pg::Cluster, store: Arc<PgStore>) {
    let t = TestCa::with_store(store);
    let mut key = t.enroll("alice").await;
    let records = t.audit_count();

    cluster.stop("immediate");
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/requests")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(request_body().to_string()))
        .unwrap();
    let (s, headers, body) = t.send(req).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert_eq!(headers[header::RETRY_AFTER], "5");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("nothing was issued") && !message.contains("postgres://"),
        "{message}"
    );
    let (s, ready) = t.get("/readyz", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["failed"], serde_json::json!(["store"]), "{ready}");
    assert_eq!(t.audit_count(), records, "nothing recorded while down");

    cluster.restart();
    // Ready again by itself (the pool replaces the broken connections);
    // the readiness check may answer from its last run for a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, ready) = t.get("/readyz", None).await;
        if s == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "still not ready: {ready}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (s, created) = t.request("alice", "db-1.prod", "postgres", "5m").await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (s, after, _) = t.touch(&id, &mut key).await;
    assert_eq!(s, StatusCode::OK, "{after}");
    // The policy decided and the decision was stored (this host asks
    // for approvers).
    assert_eq!(after["status"], "pending_approval", "{after}");
    t.audit.verify().unwrap();
}
