//! What a resend or a later upload costs the CA. Every upload of every
//! host runs under one lock, and a host resends chunks whenever it lost
//! an answer (nothing limits how often: nothing new is stored). A resend
//! that read the whole stored recording back, and a session whose chain
//! was re-verified from chunk 0 after the in-memory state was dropped
//! (an ended session, a restart, 10,000 open sessions), let one host
//! with one large recording (a day of output, uploaded as it came) hold
//! every other host's uploads and the CA's memory for as long as that
//! takes, as often as it likes.
//!
//! Here chunk 0 of the stored recording is made unreadable: an upload
//! that still reads it fails, one that reads only what it needs goes on.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod recordings_common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;

use jit_ssh_recording::{ChunkPolicy, Encoder, EndReason, Header, SessionId};
use recordings_common::*;

/// Overwrites the stored bytes of chunk 0 (not its length) with zeros.
fn spoil_chunk_0(dir: &Path, session: &str) {
    let path = dir.join("recordings").join(session).join("chunks");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut len = [0u8; 4];
    f.read_exact(&mut len).unwrap();
    f.seek(SeekFrom::Start(4)).unwrap();
    f.write_all(&vec![0u8; u32::from_be_bytes(len) as usize])
        .unwrap();
    f.sync_all().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_or_a_later_upload_reads_back_nothing_it_does_not_resend() {
    let s = setup().await;
    let t = &s.t;
    // Room to spare, whatever the test machine's disk holds.
    t.ca.set_recordings_probe(disk_with(50 << 30));

    // An ended session: its end chunk sent again (the answer was lost).
    let rec = record(&s.alice, "s-1", &s.host_key, 12);
    let n = rec.chunks.len();
    let (st, v) = upload(t, "s-1", &rec.header, &rec.chunks).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    spoil_chunk_0(t.dir.path(), "s-1");
    let before = t.audit_count();
    let (st, v) = upload(t, "s-1", &rec.header, &rec.chunks[n - 2..]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"next_index": n, "ended": true}));
    // A chunk after the end: refused as such, nothing stored or audited.
    let longer = record(&s.alice, "s-1", &s.host_key, 30);
    let (st, v) = upload(t, "s-1", &rec.header, &longer.chunks[n..n + 1]).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(message(&v).contains("has ended"), "{v}");
    assert_eq!(t.audit_count(), before);

    // An open session: a resend with new chunks, then, after the CA
    // dropped what it held in memory (here: a retention run), the next.
    let rec = record(&s.bob, "s-2", &s.host_key, 30);
    assert!(rec.chunks.len() > 10, "{} chunks", rec.chunks.len());
    let (st, v) = upload(t, "s-2", &rec.header, &rec.chunks[..4]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    spoil_chunk_0(t.dir.path(), "s-2");
    let (st, v) = upload(t, "s-2", &rec.header, &rec.chunks[3..6]).await;
    assert_eq!(
        (st, &v),
        (StatusCode::OK, &json!({"next_index": 6, "ended": false})),
        "{v}"
    );
    t.ca.prune_state(t.ca.now()).unwrap();
    let (st, v) = upload(t, "s-2", &rec.header, &rec.chunks[6..8]).await;
    assert_eq!(
        (st, &v),
        (StatusCode::OK, &json!({"next_index": 8, "ended": false})),
        "{v}"
    );
    // What follows is still checked against the chain stored so far.
    let other = record_w(&s.bob, "s-2", &s.host_key, 30, 100);
    let (st, v) = upload(t, "s-2", &rec.header, &other.chunks[8..9]).await;
    assert_ne!(st, StatusCode::OK, "{v}");
    let (st, v) = upload(t, "s-2", &rec.header, &rec.chunks[8..]).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["ended"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn measure_a_resend_of_the_end_of_a_large_session() {
    let s = setup().await;
    let t = &s.t;
    let mut info = s.alice.clone();
    info.session_id = SessionId::try_from("s-big").unwrap();
    let header = Header {
        width: 80,
        height: 24,
        timestamp: now_unix(),
        env: Default::default(),
        session: info,
    };
    let policy = ChunkPolicy {
        max_raw_bytes: 1024,
        ..ChunkPolicy::default()
    };
    let mut enc = Encoder::new(&header, s.host_key.clone(), policy).unwrap();
    let mut chunks = Vec::new();
    for i in 0..4_000u64 {
        let line = format!("{i:>8} {}\r\n", "z".repeat(900));
        chunks.extend(
            enc.push_output(Duration::from_millis(i), line.as_bytes())
                .unwrap(),
        );
    }
    let line = enc.header_line().to_owned();
    chunks.extend(
        enc.finish(Duration::from_secs(5), EndReason::Exit)
            .unwrap()
            .chunks,
    );
    for part in chunks.chunks(64) {
        let (st, v) = upload(t, "s-big", &line, part).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let stored = std::fs::metadata(t.dir.path().join("recordings/s-big/chunks"))
        .unwrap()
        .len();
    let mut took = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let (st, v) = upload(t, "s-big", &line, &chunks[chunks.len() - 1..]).await;
        took.push(start.elapsed());
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    println!(
        "MEASURE resend of the end chunk of a {}-chunk, {stored}-byte recording: {took:?}",
        chunks.len()
    );
}
