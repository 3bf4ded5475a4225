//! A verifier refuses every change to a recording and names the first
//! bad chunk, as an auditor running `jit-ssh audit play` would see it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{host_key, record, Recorded};
use jit_ssh_recording::{verify, ChainHash, Chunk, EndReason};

fn refusal(r: &Recorded, chunks: Vec<Chunk>, final_hash: Option<&ChainHash>) -> String {
    let key = host_key_of(r);
    match verify(&r.header_line, chunks, &key, final_hash) {
        Ok(_) => panic!("a changed recording verified"),
        Err(e) => e.to_string(),
    }
}

fn host_key_of(r: &Recorded) -> ssh_key::PublicKey {
    ssh_key::SshSig::from_pem(r.chunks[0].signature())
        .map(|s| ssh_key::PublicKey::from(s.public_key().clone()))
        .unwrap()
}

fn recorded() -> Recorded {
    let r = record("s1", &host_key(), 200);
    assert!(r.chunks.len() >= 8, "{} chunks", r.chunks.len());
    r
}

#[test]
fn an_intact_recording_verifies_with_its_final_hash() {
    let r = recorded();
    let key = host_key_of(&r);
    let n = r.chunks.len() as u64;
    let v = verify(&r.header_line, r.chunks.clone(), &key, Some(&r.final_hash)).unwrap();
    let end = v.end().unwrap();
    assert_eq!(end.reason, EndReason::Exit);
    assert_eq!(end.totals.data_chunks, n - 1);
    assert_eq!(end.totals.output_bytes, r.output.len() as u64);
    assert_eq!(v.final_hash(), r.final_hash);
}

#[test]
fn an_edited_payload_is_refused_naming_the_chunk() {
    let r = recorded();
    let mut bytes = r.chunks[3].to_bytes();
    // A byte inside the compressed payload (the last field of a data
    // chunk's body, which follows a 4-byte length).
    let at = 4 + r.chunks[3].signed_bytes().len() - 5;
    bytes[at] ^= 0x20;
    let mut chunks = r.chunks.clone();
    chunks[3] = Chunk::from_bytes(&bytes).unwrap();
    assert_eq!(
        refusal(&r, chunks, None),
        "chunk 3: signature does not verify with the host key"
    );
}

#[test]
fn a_dropped_chunk_is_refused() {
    let r = recorded();
    let mut chunks = r.chunks.clone();
    chunks.remove(2);
    assert_eq!(
        refusal(&r, chunks, None),
        "chunk 2: expected index 2, found 3"
    );
}

#[test]
fn reordered_chunks_are_refused() {
    let r = recorded();
    let mut chunks = r.chunks.clone();
    chunks.swap(4, 5);
    assert_eq!(
        refusal(&r, chunks, None),
        "chunk 4: expected index 4, found 5"
    );
}

#[test]
fn a_duplicated_chunk_is_refused() {
    let r = recorded();
    let mut chunks = r.chunks.clone();
    chunks.insert(3, r.chunks[2].clone());
    assert_eq!(
        refusal(&r, chunks, None),
        "chunk 3: expected index 3, found 2"
    );
}

#[test]
fn a_truncated_recording_is_refused_against_the_audit_records_final_hash() {
    let r = recorded();
    let n = r.chunks.len();
    // The end chunk and the last data chunk dropped: every signature and
    // link that is left is fine, only the audit record can tell.
    let cut = r.chunks[..n - 2].to_vec();
    assert_eq!(
        refusal(&r, cut.clone(), Some(&r.final_hash)),
        format!(
            "the recording stops after chunk {} without its end chunk: it was truncated (or the session is still open)",
            n - 3
        )
    );
    // Without the audit record it is an open recording, and says so.
    let v = verify(&r.header_line, cut, &host_key_of(&r), None).unwrap();
    assert!(v.end().is_none());
}

#[test]
fn another_final_hash_than_the_audit_records_is_refused() {
    let r = recorded();
    let other = record("s1", &host_key(), 5).final_hash;
    let msg = refusal(&r, r.chunks.clone(), Some(&other));
    assert!(msg.starts_with("the final chain hash is "), "{msg}");
}

#[test]
fn another_host_key_is_refused_at_chunk_0() {
    let r = recorded();
    let other = host_key();
    let e = verify(&r.header_line, r.chunks.clone(), other.public_key(), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "chunk 0: signature does not verify with the host key"
    );
}

#[test]
fn a_chunk_of_another_session_is_refused() {
    let key = host_key();
    let r = record("s1", &key, 200);
    let other = record("s2", &key, 200);
    let mut chunks = r.chunks.clone();
    chunks[2] = other.chunks[2].clone();
    let e = verify(&r.header_line, chunks, key.public_key(), None).unwrap_err();
    assert_eq!(e.to_string(), "chunk 2: belongs to session s2, not s1");
}

#[test]
fn an_edited_header_is_refused_at_chunk_0() {
    let r = recorded();
    let line = r
        .header_line
        .replace("\"user\":\"alice\"", "\"user\":\"bob\"");
    assert_ne!(line, r.header_line);
    let e = verify(&line, r.chunks.clone(), &host_key_of(&r), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "chunk 0: previous hash does not match the header line"
    );
}

#[test]
fn a_chunk_after_the_end_chunk_is_refused() {
    let key = host_key();
    let r = record("s1", &key, 50);
    let mut chunks = r.chunks.clone();
    // The end chunk moved before the last data chunk.
    let n = chunks.len();
    chunks.swap(n - 2, n - 1);
    let e = verify(&r.header_line, chunks, key.public_key(), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("chunk {}: expected index {}, found {}", n - 2, n - 2, n - 1)
    );
}

#[test]
fn an_empty_recording_is_refused() {
    let r = recorded();
    let e = verify(&r.header_line, Vec::new(), &host_key_of(&r), None).unwrap_err();
    assert_eq!(e.to_string(), "the recording has no chunks");
}
