//! The issuance path under load: real HTTP on 127.0.0.1, the real router,
//! sled state and a durable audit log, and soft WebAuthn authenticators.
//! Each issuance is four round trips: create request, start MFA, finish
//! MFA (soft passkey signs), read the certificate. Prints a table.
//!
//! `cargo bench -p jit-ssh-ca --bench issuance`
//!
//! Clients run in the same process and share the machine's two cores with
//! the server, so the figures are conservative.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

use jit_ssh_audit::{Actor, AuditLog};
use jit_ssh_audit_disk::DiskAuditLog;
use jit_ssh_ca::config;
use jit_ssh_ca::service::Ca;
use jit_ssh_ca::signer::FileSigner;
use jit_ssh_ca::store::SledStore;

const USERS: usize = 32;
const ISSUANCES: usize = 4000;

fn config_text(port: u16) -> String {
    let users: String = (0..USERS)
        .map(|i| format!("[[users]]\nname = \"u{i}\"\ngroups = [\"sre\"]\n\n"))
        .collect();
    format!(
        r#"listen = "127.0.0.1:{port}"
public_url = "http://localhost:{port}"
data_dir = "unused"
ca_key = {{ kind = "file", path = "unused" }}
[limits]
requests_per_minute_per_user = 1000000
requests_per_minute_per_address = 1000000
{users}
[host_groups.dev]
hosts = ["*.dev"]
accounts = ["oncall"]
[[rules]]
groups = ["sre"]
host_groups = ["dev"]
max_ttl = "15m"
"#
    )
}

async fn post(c: &reqwest::Client, url: String, body: Value) -> Value {
    let res = c.post(url).json(&body).send().await.unwrap();
    let status = res.status();
    let v: Value = res.json().await.unwrap();
    assert!(status.is_success(), "{status}: {v}");
    v
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
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cfg = config::parse(&config_text(port), "bench").unwrap();
    cfg.data_dir = dir.path().to_owned();
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let audit = Arc::new(DiskAuditLog::open(&dir.path().join("audit")).unwrap());
    let ca = Arc::new(
        Ca::new(
            cfg,
            Arc::new(FileSigner::new(key)),
            Arc::new(SledStore::open(&dir.path().join("state")).unwrap()),
            audit.clone(),
        )
        .unwrap(),
    );
    // As the server wires it: group sizes reach the metrics.
    let metrics = ca.metrics.clone();
    audit.observe_group_sizes(move |n| metrics.audit_group(n));
    let app = jit_ssh_ca::http::app(ca.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let base = format!("http://127.0.0.1:{port}");
    let origin = Url::parse(&format!("http://localhost:{port}")).unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    // Enroll every user with its own soft passkey.
    let mut keys = Vec::new();
    for i in 0..USERS {
        let link = ca.invite(&format!("u{i}"), &[], Actor::System).unwrap();
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
        let mut k = SoftPasskey::new(true);
        let reg = k.do_registration(origin.clone(), opts).unwrap();
        post(
            &client,
            format!("{base}/v1/enroll/{token}/finish"),
            serde_json::to_value(&reg).unwrap(),
        )
        .await;
        keys.push(k);
    }
    let ssh_pub =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap()
            .public_key()
            .to_openssh()
            .unwrap();
    let records_before = audit.verify().unwrap().records;

    // Each user is one concurrent client, issuing back to back.
    let per_user = ISSUANCES / USERS;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, mut k) in keys.into_iter().enumerate() {
        let (client, base, origin, ssh_pub) = (
            client.clone(),
            base.clone(),
            origin.clone(),
            ssh_pub.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_user);
            let mut sign_time = Duration::ZERO;
            for _ in 0..per_user {
                let t0 = Instant::now();
                let created = post(
                    &client,
                    format!("{base}/v1/requests"),
                    json!({"user": format!("u{i}"), "host": "db-1.dev", "account": "oncall", "ttl": "10m",
                           "reason": "load test", "public_key": ssh_pub}),
                )
                .await;
                let id = created["id"].as_str().unwrap().to_owned();
                let challenge: RequestChallengeResponse =
                    serde_json::from_value(post(&client, format!("{base}/v1/requests/{id}/mfa/start"), json!({})).await)
                        .unwrap();
                let s0 = Instant::now();
                let assertion = k.do_authentication(origin.clone(), challenge).unwrap();
                sign_time += s0.elapsed();
                post(&client, format!("{base}/v1/requests/{id}/mfa/finish"), serde_json::to_value(&assertion).unwrap())
                    .await;
                let state: Value = client
                    .get(format!("{base}/v1/requests/{id}"))
                    .bearer_auth(created["secret"].as_str().unwrap())
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(state["status"], "issued");
                latencies.push(t0.elapsed());
            }
            (latencies, sign_time)
        }));
    }
    let mut latencies = Vec::new();
    let mut sign_time = Duration::ZERO;
    for t in tasks {
        let (l, s) = t.await.unwrap();
        latencies.extend(l);
        sign_time += s;
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    let n = latencies.len();
    let report = audit.verify().unwrap();
    assert!(report.first_break.is_none());
    // Four durable records per issuance: request, MFA, decision, certificate.
    assert_eq!(report.records - records_before, 4 * n as u64);

    println!("| issuance over HTTP ({USERS} concurrent clients, 2 cores) | value |");
    println!("|------------------------------------------------------|-------|");
    println!("| certificates issued                                  | {n} |");
    println!(
        "| issued certificates/s                                | {:.0} |",
        n as f64 / elapsed.as_secs_f64()
    );
    println!(
        "| latency p50 (4 round trips + client signing)         | {:.1} ms |",
        pct(0.50).as_secs_f64() * 1e3
    );
    println!(
        "| latency p99                                          | {:.1} ms |",
        pct(0.99).as_secs_f64() * 1e3
    );
    println!(
        "| latency max                                          | {:.1} ms |",
        latencies[n - 1].as_secs_f64() * 1e3
    );
    println!(
        "| client-side soft passkey signing, mean               | {:.2} ms |",
        sign_time.as_secs_f64() * 1e3 / n as f64
    );
    println!(
        "| durable audit records written                        | {} |",
        report.records - records_before
    );
}
