//! What an auditor's download of a large recording costs the CA. Any
//! user on a recorded host decides how large a session grows (`base64
//! /dev/urandom` for an hour; the host caps only what it has not uploaded
//! yet), and `jit-ssh audit play` or `audit export --sessions` downloads
//! it whole. A CA that built the answer in memory (the chunks read back,
//! the bundle, its base64, the JSON: about five times the recording) ran
//! out of memory, and issuance with it, on a recording of a fifth of its
//! RAM. The answer is streamed from the stored file.
//!
//! Measured with the process's peak resident size (`VmHWM`, reset through
//! `/proc/self/clear_refs`): one test per binary, nothing else runs.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod recordings_common;

use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use base64ct::{Base64, Encoding};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use jit_ssh_recording::{bundle, verify, ChunkPolicy, Encoder, EndReason, Header, SessionId};
use recordings_common::*;

/// A `/proc/self/status` figure in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// Printable output that does not compress (base64 of xorshift bytes).
fn noise(seed: &mut u64, bytes: usize) -> String {
    let mut raw = Vec::with_capacity(bytes * 3 / 4 + 8);
    while raw.len() < bytes * 3 / 4 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        raw.extend_from_slice(&seed.to_le_bytes());
    }
    Base64::encode_string(&raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloading_a_large_recording_does_not_hold_it_in_the_cas_memory() {
    let s = setup().await;
    let t = &s.t;
    t.ca.set_recordings_probe(disk_with(50 << 30));

    // About 24 MB of output (18 MB stored), uploaded as a recorder would.
    let mut info = s.alice.clone();
    info.session_id = SessionId::try_from("s-big").unwrap();
    let header = Header {
        width: 80,
        height: 24,
        timestamp: now_unix(),
        env: Default::default(),
        session: info,
    };
    let mut enc = Encoder::new(&header, s.host_key.clone(), ChunkPolicy::default()).unwrap();
    let mut chunks = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..1_500u64 {
        let line = noise(&mut seed, 16 * 1024);
        chunks.extend(
            enc.push_output(Duration::from_millis(i), line.as_bytes())
                .unwrap(),
        );
    }
    let line = enc.header_line().to_owned();
    let done = enc.finish(Duration::from_secs(5), EndReason::Exit).unwrap();
    chunks.extend(done.chunks);
    for part in chunks.chunks(4) {
        let (st, v) = upload(t, "s-big", &line, part).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let stored = std::fs::metadata(t.dir.path().join("recordings/s-big/chunks"))
        .unwrap()
        .len();
    assert!(stored > 15_000_000, "{stored} bytes stored");
    drop(chunks);

    let get = || {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri("/v1/recordings/s-big")
            .header(header::AUTHORIZATION, format!("Bearer {}", s.auditor))
            .body(Body::empty())
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(t.client));
        t.router.clone().oneshot(req)
    };

    // The download, read as it comes and only hashed.
    let before = status_bytes("VmRSS:");
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let res = get().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let mut hash = Sha256::new();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            received += data.len() as u64;
            hash.update(&data);
        }
    }
    let peak = status_bytes("VmHWM:");
    let grew = peak.saturating_sub(before);
    println!(
        "MEASURE download of a {stored}-byte recording ({received} bytes of JSON): peak resident size grew {grew} bytes"
    );
    assert!(
        grew < stored / 2,
        "the CA's memory grew by {grew} bytes to answer a {stored}-byte recording"
    );

    // It is the recording, whole, and it verifies against the audit's
    // final hash.
    let whole = get()
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(Sha256::digest(&whole), hash.finalize(), "the same answer");
    let d: serde_json::Value = serde_json::from_slice(&whole).unwrap();
    assert_eq!(
        d["final_hash"].as_str(),
        Some(&*done.final_hash.to_string())
    );
    assert_eq!(d["summary"]["session"], "s-big");
    let bytes = Base64::decode_vec(d["bundle"].as_str().unwrap()).unwrap();
    let (h, back) = bundle::read(&bytes[..]).unwrap();
    assert_eq!(h, line);
    verify(&h, back, s.host_key.public_key(), Some(&done.final_hash)).unwrap();
}
