//! What the recordings tests share: an enrolled host, grants, a
//! recorded session cut into small chunks, and uploading it.

// Each test binary uses some of these.
#![allow(dead_code)]

use std::time::Duration;

use axum::http::StatusCode;
use base64ct::{Base64, Encoding};
use serde_json::{json, Value};
use ssh_key::{Algorithm, Certificate, HashAlg, LineEnding, PrivateKey};

use jit_ssh_audit::{Actor, AuditLog, AuditQuery, Event};
use jit_ssh_proto::hosts::{challenge_message, HOST_ENROLL_NAMESPACE};
use jit_ssh_recording::{
    ChainHash, Chunk, ChunkPolicy, Encoder, EndReason, Header, RecordMode, SessionId, SessionInfo,
};

use crate::common::TestCa;

pub fn random_key() -> PrivateKey {
    PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).unwrap()
}

pub async fn enroll_host(t: &TestCa, name: &str, key: &PrivateKey) {
    enroll_host_in(t, "dev", name, key).await;
}

/// Enrolls `name` through a token of host group `group`.
pub async fn enroll_host_in(t: &TestCa, group: &str, name: &str, key: &PrivateKey) {
    // Off the async workers, as the server does: a blocking audit log
    // (PostgreSQL's client) may not run on them.
    let (ca, group) = (t.ca.clone(), group.to_owned());
    let tok = tokio::task::spawn_blocking(move || {
        ca.create_host_token(
            &group,
            None,
            None,
            1,
            Actor::Operator {
                login: "test".into(),
            },
        )
    })
    .await
    .unwrap()
    .unwrap()
    .token;
    let (s, c) = t
        .post(
            "/v1/hosts/enroll",
            &json!({"token_id": tok.id, "token_secret": tok.secret, "name": name,
                    "host_key": key.public_key().to_openssh().unwrap()}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let id = c["id"].as_str().unwrap();
    let msg = challenge_message(id, c["nonce"].as_str().unwrap());
    let sig = key
        .sign(HOST_ENROLL_NAMESPACE, HashAlg::Sha512, msg.as_bytes())
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap();
    let (s, done) = t
        .post(
            &format!("/v1/hosts/enroll/{id}"),
            &json!({ "signature": sig }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
}

/// A grant issued to `user` on `host` as `oncall`: its header fields.
pub async fn grant(
    t: &TestCa,
    key: &mut webauthn_authenticator_rs::softpasskey::SoftPasskey,
    user: &str,
    host: &str,
) -> SessionInfo {
    let (_, created) = t.request(user, host, "oncall", "10m").await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(t.touch(id, key).await.0, StatusCode::OK);
    let (_, state) = t
        .get(&format!("/v1/requests/{id}"), created["secret"].as_str())
        .await;
    let cert =
        Certificate::from_openssh(state["certificate"]["certificate"].as_str().unwrap()).unwrap();
    SessionInfo {
        session_id: SessionId::try_from("s-placeholder").unwrap(),
        key_id: cert.key_id().to_owned(),
        serial: cert.serial().to_string(),
        grant_id: id.to_owned(),
        user: user.to_owned(),
        host: host.to_owned(),
        account: "oncall".into(),
        record: RecordMode::Output,
    }
}

pub struct Recording {
    pub header: String,
    pub chunks: Vec<Chunk>,
    pub final_hash: ChainHash,
}

/// A session of `n` bursts of output cut into small chunks, ended.
pub fn record(info: &SessionInfo, session: &str, key: &PrivateKey, n: usize) -> Recording {
    record_w(info, session, key, n, 80)
}

pub fn record_w(
    info: &SessionInfo,
    session: &str,
    key: &PrivateKey,
    n: usize,
    width: u16,
) -> Recording {
    let lines: Vec<(Duration, String)> = (0..n)
        .map(|i| {
            (
                Duration::from_millis(100 * i as u64),
                format!("$ echo {i}\r\n{}\r\n", "x".repeat(900)),
            )
        })
        .collect();
    record_timed(
        info,
        session,
        key,
        (now_unix(), width),
        &lines,
        Duration::from_millis(100 * n as u64 + 50),
    )
}

/// The wall clock's Unix seconds (what a recorder puts in its header;
/// the test CA's clock reads the same until a test moves it on).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A session started at `start.0` (Unix seconds; `start.1` columns wide)
/// printing each `(offset, text)`, ended at `end`.
pub fn record_timed(
    info: &SessionInfo,
    session: &str,
    key: &PrivateKey,
    start: (u64, u16),
    lines: &[(Duration, String)],
    end: Duration,
) -> Recording {
    let mut info = info.clone();
    info.session_id = SessionId::try_from(session).unwrap();
    let header = Header {
        width: start.1,
        height: 24,
        timestamp: start.0,
        env: Default::default(),
        session: info,
    };
    let policy = ChunkPolicy {
        max_raw_bytes: 1024,
        ..ChunkPolicy::default()
    };
    let mut enc = Encoder::new(&header, key.clone(), policy).unwrap();
    let mut chunks = Vec::new();
    for (t, line) in lines {
        chunks.extend(enc.push_output(*t, line.as_bytes()).unwrap());
    }
    let header = enc.header_line().to_owned();
    let done = enc.finish(end, EndReason::Exit).unwrap();
    chunks.extend(done.chunks);
    Recording {
        header,
        chunks,
        final_hash: done.final_hash,
    }
}

pub async fn upload(
    t: &TestCa,
    session: &str,
    header: &str,
    chunks: &[Chunk],
) -> (StatusCode, Value) {
    let chunks: Vec<String> = chunks
        .iter()
        .map(|c| Base64::encode_string(&c.to_bytes()))
        .collect();
    t.post(
        &format!("/v1/recordings/{session}"),
        &json!({ "header": header, "chunks": chunks }),
    )
    .await
}

/// `(valid_after, valid_before)` of the certificate issued under `grant`,
/// as its `certificate_issued` audit record says.
pub fn validity(t: &TestCa, grant: &str) -> (u64, u64) {
    t.audit
        .query(&AuditQuery {
            grant: Some(grant.into()),
            kinds: vec!["certificate_issued".into()],
            limit: 1,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .find_map(|r| match r.event {
            Event::CertificateIssued(c) => Some((c.valid_after, c.valid_before)),
            _ => None,
        })
        .unwrap()
}

pub fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or("")
}

pub fn session_records(t: &TestCa, kind: &str) -> Vec<Event> {
    t.audit
        .query(&AuditQuery {
            kinds: vec![kind.into()],
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect()
}

pub struct Setup {
    pub t: TestCa,
    pub host_key: PrivateKey,
    pub alice: SessionInfo,
    pub bob: SessionInfo,
    pub auditor: String,
    pub engineer: String,
    /// Alice's passkey, for another grant.
    pub alice_key: webauthn_authenticator_rs::softpasskey::SoftPasskey,
}

pub async fn setup() -> Setup {
    setup_with(TestCa::new()).await
}

/// With the default free-space floor (1 GiB or 5 %) stated: a test CA
/// without a `[recordings]` section has a floor of 16 MiB.
pub async fn setup_with_default_floor() -> Setup {
    setup_with(TestCa::with_policy("", crate::common::DEFAULT_FLOOR)).await
}

/// The shared setup on a CA of the test's (another audit log, say).
pub async fn setup_with(t: TestCa) -> Setup {
    let host_key = random_key();
    enroll_host(&t, "db-1.dev", &host_key).await;
    let mut alice = t.enroll("alice").await;
    let mut bob = t.enroll("bob").await;
    let mut aud = t.enroll("aud").await;
    let a = grant(&t, &mut alice, "alice", "db-1.dev").await;
    let b = grant(&t, &mut bob, "bob", "db-1.dev").await;
    let auditor = t.sign_in("aud", &mut aud).await;
    let engineer = t.sign_in("alice", &mut alice).await;
    Setup {
        t,
        host_key,
        alice: a,
        bob: b,
        auditor,
        engineer,
        alice_key: alice,
    }
}

/// A filesystem of 100 GiB with `free` bytes left.
pub fn disk_with(free: u64) -> jit_ssh_ca::recordings::space::Probe {
    std::sync::Arc::new(move |_: &std::path::Path| {
        Ok(jit_ssh_ca::recordings::space::FsSpace {
            avail: free,
            total: 100 << 30,
            ..Default::default()
        })
    })
}
