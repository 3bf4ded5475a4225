//! A recorded session for the tests: many small chunks.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use jit_ssh_recording::{
    ChainHash, Chunk, ChunkPolicy, Encoder, EndReason, Header, RecordMode, SessionId, SessionInfo,
};
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, PrivateKey};

pub fn host_key() -> PrivateKey {
    PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap()
}

pub fn header(id: &str, record: RecordMode) -> Header {
    Header {
        width: 80,
        height: 24,
        timestamp: 1_790_000_000,
        env: BTreeMap::from([
            ("SHELL".into(), "/bin/bash".into()),
            ("TERM".into(), "xterm-256color".into()),
        ]),
        session: SessionInfo {
            session_id: SessionId::try_from(id).unwrap(),
            key_id: "alice@grant-7".into(),
            serial: "42".into(),
            grant_id: "grant-7".into(),
            user: "alice".into(),
            host: "web1".into(),
            account: "deploy".into(),
            record,
        },
    }
}

pub fn small_chunks() -> ChunkPolicy {
    ChunkPolicy {
        max_raw_bytes: 1024,
        ..ChunkPolicy::default()
    }
}

pub struct Recorded {
    pub header_line: String,
    pub chunks: Vec<Chunk>,
    pub final_hash: ChainHash,
    /// Every output byte pushed, in order.
    pub output: Vec<u8>,
}

/// A session of `lines` output lines (one per 100 ms) with a resize and
/// some typing, cut into ~1 KiB chunks.
pub fn record(id: &str, key: &PrivateKey, lines: usize) -> Recorded {
    let mut enc = Encoder::new(&header(id, RecordMode::Full), key.clone(), small_chunks()).unwrap();
    let mut chunks = Vec::new();
    let mut output = Vec::new();
    for i in 0..lines {
        let t = Duration::from_millis(100 * i as u64);
        let line = format!("line {i}: \u{1b}[1mdrwxr-xr-x\u{1b}[0m root root 4096 é\r\n");
        output.extend_from_slice(line.as_bytes());
        chunks.extend(enc.push_output(t, line.as_bytes()).unwrap());
        if i == 3 {
            chunks.extend(enc.push_resize(t, 120, 40).unwrap());
            chunks.extend(enc.push_input(t, b"ls\r").unwrap());
        }
    }
    let header_line = enc.header_line().to_owned();
    let done = enc
        .finish(Duration::from_millis(100 * lines as u64), EndReason::Exit)
        .unwrap();
    chunks.extend(done.chunks);
    Recorded {
        header_line,
        chunks,
        final_hash: done.final_hash,
        output,
    }
}
