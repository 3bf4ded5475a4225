//! Reading the audit log on PostgreSQL when the read fails (session 12):
//! while the database is away, `GET /v1/audit` and its export answer 503
//! `unavailable` with `Retry-After`, as the recordings paths and every
//! write do, so a client retries or moves to another replica, and serve
//! again once it is back; a read the database refuses (here its table
//! is gone) is 500, on the recordings paths too: retrying will not mend
//! it. Its own binary: one test stops a cluster (its own).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod pg;
mod recordings_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use jit_ssh_audit::AuditLog;
use jit_ssh_ca::config::storage::PostgresConfig;
use jit_ssh_ca::store::{PgAuditLog, SledStore, Store};

use common::TestCa;
use recordings_common::{record, setup_with, upload};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A CA whose state is in sled (it stays up) and whose audit log is on
/// PostgreSQL `cfg`: only the audit reads meet the database. The store
/// dir lives as long as the returned guard.
fn ca_on(cfg: &PostgresConfig) -> (tempfile::TempDir, Arc<dyn Store>, Arc<dyn AuditLog>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("state")).unwrap());
    let audit: Arc<dyn AuditLog> = Arc::new(PgAuditLog::open(cfg).unwrap());
    (dir, store, audit)
}

/// Status, headers and body of `GET path` with the bearer `token`.
async fn read(t: &TestCa, path: &str, token: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let (s, h, v) = t.send(req).await;
    (s, h, v.to_string())
}

#[test]
fn audit_reads_while_the_database_is_away_are_503_and_serve_again_after() {
    let name = "audit_reads_while_the_database_is_away_are_503_and_serve_again_after";
    if !pg::available(name) {
        return;
    }
    // A cluster of this test's own: it is stopped.
    let cluster = pg::Cluster::start_with(5432, |_| String::new());
    let cfg = PostgresConfig {
        connect_timeout: Duration::from_secs(1),
        ..cluster.database()
    };
    let (_dir, store, audit) = ca_on(&cfg);
    runtime().block_on(async move {
        let t = TestCa::with_store_and_audit(store, audit);
        t.enroll("alice").await;
        let mut aud = t.enroll("aud").await;
        let token = t.sign_in("aud", &mut aud).await;
        assert_eq!(read(&t, "/v1/audit", &token).await.0, StatusCode::OK);

        cluster.stop("immediate");
        for path in ["/v1/audit", "/v1/audit?user=alice", "/v1/audit/export"] {
            let (s, headers, body) = read(&t, path, &token).await;
            assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
            assert!(body.contains("\"unavailable\""), "{path}: {body}");
            assert_eq!(headers[header::RETRY_AFTER], "5", "{path}");
            assert!(!body.contains("dbname="), "{path}: {body}");
        }

        cluster.restart();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (s, _, body) = read(&t, "/v1/audit?user=alice", &token).await;
            if s == StatusCode::OK {
                break;
            }
            assert!(Instant::now() < deadline, "still {s}: {body}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
}

#[test]
fn a_read_the_database_refuses_is_500_on_the_audit_and_the_recordings_paths() {
    let name = "a_read_the_database_refuses_is_500_on_the_audit_and_the_recordings_paths";
    let Some(cluster) = pg::cluster(name) else {
        return;
    };
    let cfg = cluster.database();
    let (_dir, store, audit) = ca_on(&cfg);
    let rt = runtime();
    let s = rt.block_on(setup_with(TestCa::with_store_and_audit(store, audit)));
    let rec = record(&s.alice, "s-1", &s.host_key, 4);
    // Someone with write access to the database broke the log (the
    // blocking client, outside the async runtime).
    cluster.sql(
        &pg::db_name(&cfg),
        "ALTER TABLE audit_records RENAME TO audit_records_elsewhere",
    );
    rt.block_on(async move {
        let (st, headers, body) = read(&s.t, "/v1/audit", &s.auditor).await;
        assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert!(headers.get(header::RETRY_AFTER).is_none());
        let (st, body) = upload(&s.t, "s-1", &rec.header, &rec.chunks).await;
        assert_eq!(
            st,
            StatusCode::INTERNAL_SERVER_ERROR,
            "a broken audit log told the recorder to retry: {body}"
        );
    });
}
