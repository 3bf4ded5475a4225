//! The local store's own tests: chunks, modes, prune, refusals.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use jit_ssh_recording::{ChunkPolicy, Encoder, EndReason, Header, RecordMode, SessionInfo};
use ssh_key::{Algorithm, PrivateKey};

use super::*;

fn meta(session: &str, at: i64) -> RecordingMeta {
    crate::recordings::test_meta(session, at, "alice")
}

fn recording(session: &str) -> (String, Vec<Chunk>) {
    let key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).unwrap();
    let header = Header {
        width: 80,
        height: 24,
        timestamp: 1,
        env: Default::default(),
        session: SessionInfo {
            session_id: SessionId::try_from(session).unwrap(),
            key_id: "k".into(),
            serial: "7".into(),
            grant_id: "g".into(),
            user: "alice".into(),
            host: "db-1.dev".into(),
            account: "oncall".into(),
            record: RecordMode::Output,
        },
    };
    let mut enc = Encoder::new(&header, key, ChunkPolicy::default()).unwrap();
    let mut chunks = enc
        .push_output(Duration::from_millis(5), b"hello\r\n")
        .unwrap();
    chunks.extend(enc.flush().unwrap());
    chunks.extend(
        enc.finish(Duration::from_secs(1), EndReason::Exit)
            .unwrap()
            .chunks,
    );
    (enc_header(&header), chunks)
}

fn enc_header(h: &Header) -> String {
    h.to_line().unwrap()
}

#[test]
fn chunks_append_read_back_list_and_prune_with_private_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalRecordings::new(tmp.path().join("recordings"));
    let (line, chunks) = recording("s-1");
    let m = meta("s-1", 100);
    store.begin(&m, &line).unwrap();
    assert!(matches!(
        store.begin(&m, &line),
        Err(RecordingStoreError::Exists(_))
    ));
    let m = store.append(&m, &chunks[..1]).unwrap();
    let m = store.append(&m, &chunks[1..]).unwrap();
    assert_eq!(m.chunks, chunks.len() as u64);
    assert_eq!(store.read_chunks(&m.session, 1, 1).unwrap(), chunks[1..2]);
    assert_eq!(
        store.read_chunks(&m.session, 0, 100).unwrap(),
        chunks,
        "fewer than asked when fewer are stored"
    );
    assert!(store.read_chunks(&m.session, 99, 1).unwrap().is_empty());
    let mut open = store.open(&m.session).unwrap().unwrap();
    let mut streamed = Vec::new();
    open.chunks.read_to_end(&mut streamed).unwrap();
    let mut bundled = Vec::new();
    jit_ssh_recording::bundle::write(&mut bundled, &line, &chunks).unwrap();
    let mut prefix = Vec::new();
    jit_ssh_recording::bundle::write(&mut prefix, &open.header_line, &[]).unwrap();
    assert_eq!([prefix, streamed].concat(), bundled);
    let back = store.read(&m.session).unwrap().unwrap();
    assert_eq!(
        (back.header_line, back.chunks),
        (line.clone(), chunks.clone())
    );

    // A crash after appending but before the state: the tail is dropped.
    let dir = tmp.path().join("recordings/s-1");
    let mut f = OpenOptions::new()
        .append(true)
        .open(dir.join(CHUNKS))
        .unwrap();
    f.write_all(b"\0\0\0\x09garbage!!").unwrap();
    assert_eq!(store.read(&m.session).unwrap().unwrap().chunks, chunks);

    for (p, want) in [
        (tmp.path().join("recordings"), 0o700),
        (dir.clone(), 0o700),
        (dir.join(HEADER), 0o600),
        (dir.join(CHUNKS), 0o600),
        (dir.join(STATE), 0o600),
    ] {
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, want, "{}", p.display());
    }

    store.begin(&meta("s-2", 500), &line).unwrap();
    let listed: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|m| m.session.to_string())
        .collect();
    assert_eq!(listed, ["s-2", "s-1"]);
    assert!(!store.retired(&m.session).unwrap());
    assert_eq!(store.prune(200).unwrap(), 1);
    assert!(store.read(&m.session).unwrap().is_none());
    assert_eq!(store.list().unwrap().len(), 1, "the marks are not listed");
    assert!(store.retired(&m.session).unwrap());
    assert!(!store.retired(&SessionId::try_from("s-2").unwrap()).unwrap());
}

#[test]
fn an_append_that_does_not_continue_the_stored_chunks_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalRecordings::new(tmp.path().join("recordings"));
    let (line, chunks) = recording("s-3");
    let m = meta("s-3", 100);
    store.begin(&m, &line).unwrap();
    // What a session pruned while its uploader's cache still stood at
    // chunk 1 would do: append chunk 1 to an empty recording.
    assert!(matches!(
        store.append(&m, &chunks[1..]),
        Err(RecordingStoreError::NotNext {
            stored: 0,
            first: 1,
            ..
        })
    ));
    assert!(store.read(&m.session).unwrap().unwrap().chunks.is_empty());
    let m = store.append(&m, &chunks[..1]).unwrap();
    assert!(store.append(&m, &chunks[..1]).is_err(), "chunk 0 twice");
    store.append(&m, &chunks[1..]).unwrap();
}

#[test]
fn dot_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalRecordings::new(tmp.path().to_owned());
    for bad in [".", ".."] {
        assert!(store.begin(&meta(bad, 1), "x").is_err());
    }
}
