//! The stored form is parsed strictly: bad input is a typed error, never
//! a panic, and no change to a stored chunk verifies as anything but the
//! bytes the host signed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::OnceLock;

use common::{host_key, record, Recorded};
use jit_ssh_recording::{bundle, verify, Chunk, ParseError};
use proptest::prelude::*;

struct Fixture {
    r: Recorded,
    key: ssh_key::PublicKey,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = host_key();
        Fixture {
            r: record("p1", &key, 60),
            key: key.public_key().clone(),
        }
    })
}

#[test]
fn stored_chunks_round_trip() {
    for c in &fixture().r.chunks {
        assert_eq!(&Chunk::from_bytes(&c.to_bytes()).unwrap(), c);
    }
}

#[test]
fn every_truncation_and_a_trailing_byte_are_refused() {
    let bytes = fixture().r.chunks[1].to_bytes();
    for len in 0..bytes.len() {
        assert!(Chunk::from_bytes(&bytes[..len]).is_err(), "length {len}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Chunk::from_bytes(&longer),
        Err(ParseError::TrailingBytes(1))
    ));
}

/// The stored bytes of chunk 1 with `f` applied to its body (which starts
/// after the body's 4-byte length).
fn with_body(f: impl FnOnce(&mut Vec<u8>)) -> Result<Chunk, ParseError> {
    let mut bytes = fixture().r.chunks[1].to_bytes();
    f(&mut bytes);
    Chunk::from_bytes(&bytes)
}

#[test]
fn each_bad_field_has_its_own_error() {
    const KIND: usize = 4 + 26;
    let e = with_body(|b| b[4] = b'J').unwrap_err();
    assert_eq!(e.to_string(), "not a jit-ssh recording chunk (bad magic)");
    let e = with_body(|b| b[KIND] = 7).unwrap_err();
    assert_eq!(e.to_string(), "unknown chunk kind 7");
    // The session id's length says 1000.
    let e =
        with_body(|b| b[KIND + 1..KIND + 5].copy_from_slice(&1000u32.to_be_bytes())).unwrap_err();
    assert_eq!(e.to_string(), "session id is 1000 bytes, at most 64");
    // Session id "p1" → "p/".
    let e = with_body(|b| b[KIND + 6] = b'/').unwrap_err();
    assert_eq!(e.to_string(), "bad session id");
    // A body length past the limit: refused before anything is allocated.
    let e = with_body(|b| b[..4].copy_from_slice(&u32::MAX.to_be_bytes())).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("body is 4294967295 bytes, at most"),
        "{e}"
    );
    // The raw length (after kind, id, index, previous hash, start, end,
    // events) says 2^40: a decompression bomb is refused at parse time.
    let raw = KIND + 1 + 4 + 2 + 8 + 32 + 8 + 8 + 8;
    let e =
        with_body(|b| b[raw..raw + 8].copy_from_slice(&(1u64 << 40).to_be_bytes())).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("raw length {} is over the limit", 1u64 << 40)
    );
}

#[test]
fn a_bundle_round_trips_and_names_a_bad_chunk() {
    let r = &fixture().r;
    let mut file = Vec::new();
    bundle::write(&mut file, &r.header_line, &r.chunks).unwrap();
    let (line, chunks) = bundle::read(&file[..]).unwrap();
    assert_eq!((&line, &chunks), (&r.header_line, &r.chunks));
    verify(&line, chunks, &fixture().key, Some(&r.final_hash)).unwrap();

    // Chunk 2's kind byte (its bundle length, its stored length, magic).
    let at = 20
        + 4
        + r.header_line.len()
        + r.chunks[..2]
            .iter()
            .map(|c| 4 + c.to_bytes().len())
            .sum::<usize>()
        + 4
        + 4
        + 26;
    let mut bad = file.clone();
    bad[at] = 9;
    let e = bundle::read(&bad[..]).unwrap_err();
    assert_eq!(e.to_string(), "chunk 2: unknown chunk kind 9");
    let e = bundle::read(&file[..file.len() - 3]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("chunk {}: the input ends inside it", r.chunks.len() - 1)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Chunk::from_bytes(&bytes);
        let mut framed = b"jit-ssh-recording/1\n".to_vec();
        framed.extend_from_slice(&bytes);
        let _ = bundle::read(&framed[..]);
    }

    /// One byte changed anywhere in a stored chunk: refused when parsed,
    /// or refused by the verifier, or it is the very body the host signed.
    #[test]
    fn a_changed_byte_never_verifies_as_other_content(
        which in 0usize..8,
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let f = fixture();
        let which = which % f.r.chunks.len();
        let original = &f.r.chunks[which];
        let mut bytes = original.to_bytes();
        let at = at.index(bytes.len());
        bytes[at] ^= xor;
        if let Ok(changed) = Chunk::from_bytes(&bytes) {
            let mut chunks = f.r.chunks.clone();
            chunks[which] = changed.clone();
            if verify(&f.r.header_line, chunks, &f.key, Some(&f.r.final_hash)).is_ok() {
                prop_assert_eq!(changed.signed_bytes(), original.signed_bytes());
            }
        }
    }
}
