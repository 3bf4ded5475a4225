//! The auditor's path over HTTP on loopback: a signed-in auditor streams
//! `GET /v1/audit/export` (the whole chain, ending in a checkpoint signed
//! for it) and asks `GET /v1/audit` for first pages, against a log of
//! JIT_SSH_BENCH_RECORDS records (default 1,000,000). Prints a table.
//!
//! `cargo bench -p jit-ssh-ca --bench audit_export`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

use jit_ssh_audit::{Actor, CertificateIssued, Event, IssuedVia};
use jit_ssh_audit_disk::DiskAuditLog;
use jit_ssh_ca::config;
use jit_ssh_ca::service::Ca;
use jit_ssh_ca::signer::FileSigner;
use jit_ssh_ca::store::SledStore;

fn config_text(port: u16) -> String {
    format!(
        r#"
listen = "127.0.0.1:{port}"
public_url = "http://localhost:{port}"
data_dir = "unused"
ca_key = {{ kind = "file", path = "unused" }}

[[users]]
name = "aud"
roles = ["auditor"]
"#
    )
}

fn event(i: u64) -> Event {
    let user = format!("user{}", i % 500);
    Event::CertificateIssued(CertificateIssued {
        serial: i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        key_id: format!("jit-ssh:{user}:{i:032x}:{i}"),
        user,
        host: format!("db-{}.prod", i % 5000),
        account: "postgres".into(),
        principals: vec![format!("postgres@db-{}.prod", i % 5000)],
        valid_after: 1_800_000_000 + i,
        valid_before: 1_800_000_600 + i,
        public_key_fingerprint: "SHA256:7OS6Dx+OHABorl8BixVaEKG77cEZBBmPYu9cRAgjbeY".into(),
        ca_fingerprint: "SHA256:8gqd8KkC/AvRXQT0Q5lWEjooI+ncnxIErOaFz571DQ0".into(),
        grant: format!("{i:032x}"),
        reason: "incident 4242: primary failover".into(),
        critical_options: vec![],
        extensions: vec!["permit-pty".into()],
        via: IssuedVia::Server,
        session: None,
    })
}

async fn post(c: &reqwest::Client, url: String, body: Value) -> Value {
    c.post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let n: u64 = std::env::var("JIT_SSH_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let audit = Arc::new(DiskAuditLog::open(&dir.path().join("audit")).unwrap());
    let mut i = 1;
    while i <= n {
        let end = (i + 20_000).min(n + 1);
        audit
            .append_many((i..end).map(|j| (Actor::System, event(j))).collect())
            .unwrap();
        i = end;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let ca = Arc::new(
        Ca::new(
            config::parse(&config_text(port), "bench").unwrap(),
            Arc::new(FileSigner::new(key.clone())),
            Arc::new(SledStore::open(&dir.path().join("state")).unwrap()),
            audit.clone(),
        )
        .unwrap(),
    );
    let app = jit_ssh_ca::http::app(ca.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let base = format!("http://127.0.0.1:{port}");
    let origin = Url::parse(&format!("http://localhost:{port}")).unwrap();
    let client = reqwest::Client::new();

    // Enroll and sign in the auditor with a soft passkey.
    let link = ca.invite("aud", &[], Actor::System).unwrap();
    let token = link.url.rsplit('/').next().unwrap().to_owned();
    let opts: CreationChallengeResponse = serde_json::from_value(
        post(
            &client,
            format!("{base}/v1/enroll/{token}/start"),
            json!({}),
        )
        .await,
    )
    .unwrap();
    let mut passkey = SoftPasskey::new(true);
    let reg = passkey.do_registration(origin.clone(), opts).unwrap();
    post(
        &client,
        format!("{base}/v1/enroll/{token}/finish"),
        serde_json::to_value(&reg).unwrap(),
    )
    .await;
    let created = post(
        &client,
        format!("{base}/v1/sessions"),
        json!({"user": "aud"}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let opts: RequestChallengeResponse = serde_json::from_value(
        post(
            &client,
            format!("{base}/v1/sessions/{id}/mfa/start"),
            json!({}),
        )
        .await,
    )
    .unwrap();
    let assertion = passkey.do_authentication(origin, opts).unwrap();
    post(
        &client,
        format!("{base}/v1/sessions/{id}/mfa/finish"),
        serde_json::to_value(&assertion).unwrap(),
    )
    .await;
    let bearer = format!("{id}.{}", created["secret"].as_str().unwrap());

    // First pages.
    let mut times = Vec::new();
    for r in 0..50u64 {
        let t = Instant::now();
        let page: Value = client
            .get(format!("{base}/v1/audit?user=user{}&limit=50", r * 7 % 500))
            .bearer_auth(&bearer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        times.push(t.elapsed());
        assert_eq!(page["records"].as_array().unwrap().len(), 50);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;

    // The export, streamed and checked to the end.
    let t = Instant::now();
    let mut res = client
        .get(format!("{base}/v1/audit/export"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let (mut bytes, mut lines) = (0usize, 0u64);
    let mut last = Vec::new();
    while let Some(chunk) = res.chunk().await.unwrap() {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        last = chunk.to_vec();
    }
    let took = t.elapsed();
    let tail = String::from_utf8_lossy(&last);
    assert!(tail
        .trim_end()
        .rsplit('\n')
        .next()
        .unwrap()
        .contains("\"checkpoint\""));
    // The bench's records, the enrollment and sign-in, the checkpoint.
    assert!(lines > n, "{lines} lines");

    println!("| over HTTP (loopback), {n} records in the log          | figure |");
    println!("|-----------------------------------------------------------|--------|");
    println!(
        "| GET /v1/audit first page of 50 by user, p50               | {:5.2} ms |",
        ms(times[times.len() / 2])
    );
    println!(
        "| GET /v1/audit first page of 50 by user, max               | {:5.2} ms |",
        ms(times[times.len() - 1])
    );
    println!(
        "| GET /v1/audit/export: records/s (incl. signing its checkpoint) | {:.0}/s |",
        lines as f64 / took.as_secs_f64()
    );
    println!(
        "| GET /v1/audit/export: MB/s                                 | {:.0} |",
        bytes as f64 / 1e6 / took.as_secs_f64()
    );
    println!("\n(target: export ≥ 200,000 records/s)");
}
