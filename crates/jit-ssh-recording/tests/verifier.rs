//! The verifier one chunk at a time (the CA on upload), and what it
//! refuses in chunks the host key did sign: a buggy or dishonest recorder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{header, host_key, record};
use jit_ssh_recording::chain::header_hash;
use jit_ssh_recording::{
    verify, Chunk, ChunkBody, EndReason, EndRecord, RecordMode, SessionId, Totals, Verifier,
};

#[test]
fn chunks_verify_as_they_arrive_and_across_a_restart() {
    let key = host_key();
    let r = record("up-1", &key, 120);
    let (first, rest) = r.chunks.split_at(3);
    let mut v = Verifier::new(&r.header_line, key.public_key().clone()).unwrap();
    for c in first {
        v.push(c).unwrap();
    }
    // The CA stores the state, restarts, and resumes from it.
    let saved = v.state().clone();
    let mut v = Verifier::resume(&r.header_line, key.public_key().clone(), saved).unwrap();
    // A refused chunk changes nothing: the right one still fits after it.
    let e = v.push(&rest[1]).unwrap_err();
    assert_eq!(e.to_string(), "chunk 3: expected index 3, found 4");
    for c in rest {
        v.push(c).unwrap();
    }
    let state = v.finish(Some(&r.final_hash)).unwrap();
    assert_eq!(state.end.unwrap().reason, EndReason::Exit);
}

/// A data chunk the host key signs over `lines`, as chunk 0 of `line`.
fn signed(key: &ssh_key::PrivateKey, line: &str, lines: &str, events: u64, t: (u64, u64)) -> Chunk {
    let raw = lines.as_bytes();
    Chunk::sign(
        ChunkBody {
            session_id: SessionId::try_from("bad-1").unwrap(),
            index: 0,
            prev: header_hash(line),
            start: Duration::from_secs(t.0),
            end: Duration::from_secs(t.1),
            events,
            raw_len: raw.len() as u64,
            payload: zstd::bulk::compress(raw, 3).unwrap(),
            end_record: None,
        },
        key,
    )
    .unwrap()
}

#[test]
fn signed_but_wrong_chunks_are_refused_naming_what_is_wrong() {
    let key = host_key();
    let out = header("bad-1", RecordMode::Output).to_line().unwrap();
    let cases = [
        (
            signed(&key, &out, "[1.0, \"o\", \"a\"]\n", 2, (1, 1)),
            "chunk 0: payload holds 1 events, the chunk says 2",
        ),
        (
            signed(
                &key,
                &out,
                "[1.0, \"o\", \"a\"]\n[0.5, \"o\", \"b\"]\n",
                2,
                (0, 1),
            ),
            "chunk 0: payload event 1: time goes backwards",
        ),
        (
            signed(&key, &out, "[9.0, \"o\", \"a\"]\n", 1, (1, 2)),
            "chunk 0: payload event 0: time 9s is outside the chunk's 1s..=2s",
        ),
        (
            signed(&key, &out, "[1.0, \"i\", \"hunter2\"]\n", 1, (1, 1)),
            "chunk 0: records typed input, but the session's policy records output only",
        ),
        (
            signed(&key, &out, "[1.0, \"o\", \"a\"]", 1, (1, 1)),
            "chunk 0: payload does not end with a newline",
        ),
    ];
    for (chunk, msg) in cases {
        let e = verify(&out, vec![chunk], key.public_key(), None).unwrap_err();
        assert_eq!(e.to_string(), msg);
    }
}

#[test]
fn a_payload_that_is_not_its_stated_length_is_refused() {
    let key = host_key();
    let line = header("bad-1", RecordMode::Output).to_line().unwrap();
    let good = signed(&key, &line, "[1.0, \"o\", \"abc\"]\n", 1, (1, 1));
    let mut body = good.body().clone();
    body.raw_len -= 1;
    let short = Chunk::sign(body, &key).unwrap();
    let e = verify(&line, vec![short], key.public_key(), None).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("chunk 0: payload does not decompress"),
        "{e}"
    );
}

#[test]
fn end_totals_that_do_not_add_up_are_refused() {
    let key = host_key();
    let line = header("bad-1", RecordMode::Output).to_line().unwrap();
    let data = signed(&key, &line, "[1.0, \"o\", \"a\"]\n", 1, (1, 1));
    let end = Chunk::sign(
        ChunkBody {
            session_id: SessionId::try_from("bad-1").unwrap(),
            index: 1,
            prev: data.hash(),
            start: Duration::from_secs(2),
            end: Duration::from_secs(2),
            events: 0,
            raw_len: 0,
            payload: Vec::new(),
            end_record: Some(EndRecord {
                reason: EndReason::Revoked,
                totals: Totals {
                    data_chunks: 1,
                    events: 5,
                    ..Totals::default()
                },
            }),
        },
        &key,
    )
    .unwrap();
    let e = verify(&line, vec![data, end], key.public_key(), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "chunk 1: the end chunk's totals do not match the chunks (events)"
    );
}

#[test]
fn a_recording_whose_recorder_died_verifies_against_the_last_hash_the_ca_recorded() {
    let key = host_key();
    let r = record("lost-1", &key, 120);
    // The recorder died after chunk 4: no end chunk; the CA's
    // session_ended (recorder-lost) names chunk 4's hash.
    let kept = r.chunks[..5].to_vec();
    let last = kept[4].hash();
    let v = verify(&r.header_line, kept.clone(), key.public_key(), Some(&last)).unwrap();
    assert!(v.end().is_none());
    assert_eq!(v.totals().data_chunks, 5);
    // One chunk fewer than the CA recorded is a truncation.
    let e = verify(
        &r.header_line,
        kept[..4].to_vec(),
        key.public_key(),
        Some(&last),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("the recording stops after chunk 3 without its end chunk"),
        "{e}"
    );
}

#[test]
fn a_session_the_recorder_ended_for_want_of_space_says_so_in_its_signed_end() {
    // The host recorder ends a session whose spool ran out of room
    // (`spool-full`): the reason survives the bytes and the verifier, as
    // the CA's `session_ended` record and `audit sessions` show it.
    let key = host_key();
    let mut enc = jit_ssh_recording::Encoder::new(
        &header("full-1", RecordMode::Output),
        key.clone(),
        jit_ssh_recording::ChunkPolicy::default(),
    )
    .unwrap();
    enc.push_output(Duration::from_millis(3), b"base64 noise\r\n")
        .unwrap();
    let done = enc
        .finish(Duration::from_secs(1), EndReason::SpoolFull)
        .unwrap();
    let chunks: Vec<Chunk> = done
        .chunks
        .iter()
        .map(|c| Chunk::from_bytes(&c.to_bytes()).unwrap())
        .collect();
    let line = header("full-1", RecordMode::Output).to_line().unwrap();
    let v = verify(&line, chunks, key.public_key(), None).unwrap();
    let end = v.end().unwrap();
    assert_eq!(end.reason, EndReason::SpoolFull);
    assert_eq!(end.reason.as_str(), "spool-full");
}
